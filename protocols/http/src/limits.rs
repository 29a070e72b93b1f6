//! [`Limits`]: how large a message may be.

/// Size limits of incoming messages; every one has a default, and exceeding one is an
/// [`Error`](crate::Error) with its own status.
///
/// # Examples
///
/// ```
/// use gruvi_http::Limits;
/// let limits = Limits { max_headers: 20, ..Limits::default() };
/// assert_eq!(limits.max_head_size, 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest request line (method, target, version) or status line, in bytes
    /// (default 8 KiB; longer: 414).
    pub max_request_line: usize,
    /// The most header fields in a head (default 100; more: 431).
    pub max_headers: usize,
    /// The largest head, start line and fields together, in bytes (default 64 KiB; larger:
    /// 431).
    pub max_head_size: usize,
    /// The longest chunk extension of one chunk, in bytes (default 4 KiB; longer: 400).
    pub max_chunk_extension: usize,
    /// The largest trailer section, in bytes (default 16 KiB; larger: 431).
    pub max_trailer_size: usize,
    /// The largest body, in bytes (default 64 MiB; larger: 413; `u64::MAX`: no limit).
    pub max_body_size: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_head_size: 64 * 1024,
            max_chunk_extension: 4 * 1024,
            max_trailer_size: 16 * 1024,
            max_body_size: 64 * 1024 * 1024,
        }
    }
}
