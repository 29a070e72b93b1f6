//! Serializing heads and chunks onto the wire, and the cached `Date` value.

use std::cell::{Cell, RefCell};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode, Version};

/// Appends a status line (`HTTP/1.1 200 OK`) and its CRLF.
pub(crate) fn status_line(out: &mut Vec<u8>, version: Version, status: StatusCode) {
    if status == StatusCode::OK && version != Version::HTTP_10 {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(match version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a request line and its CRLF.
pub(crate) fn request_line(out: &mut Vec<u8>, method: &Method, target: &str, version: Version) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(match version {
        Version::HTTP_10 => b" HTTP/1.0\r\n",
        _ => b" HTTP/1.1\r\n",
    });
}

/// Appends one header field.
pub(crate) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends a `Content-Length` field (in one copy: this is on every response's path).
pub(crate) fn content_length(out: &mut Vec<u8>, len: u64) {
    const NAME: &[u8] = b"content-length: ";
    let mut line = [0; NAME.len() + 20 + 2];
    line[..NAME.len()].copy_from_slice(NAME);
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(len).as_bytes();
    let end = NAME.len() + digits.len();
    line[NAME.len()..end].copy_from_slice(digits);
    line[end..end + 2].copy_from_slice(b"\r\n");
    out.extend_from_slice(&line[..end + 2]);
}

/// Appends every field of `headers` except those `skip` rejects.
pub(crate) fn fields(
    out: &mut Vec<u8>,
    headers: &HeaderMap,
    skip: impl Fn(&http::HeaderName) -> bool,
) {
    for (name, value) in headers {
        if !skip(name) {
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

/// Appends one chunk of the chunked coding (nothing for empty data: that would end the body).
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// gruvi_http::encode_chunk(&mut out, b"hello, world");
/// assert_eq!(out, b"c\r\nhello, world\r\n");
/// ```
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    chunk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the size line of a chunk of `len` bytes (its data and CRLF follow).
pub(crate) fn chunk_header(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(format_hex(len).as_bytes_ref());
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section that ends a chunked body.
///
/// # Examples
///
/// ```
/// let mut trailers = http::HeaderMap::new();
/// trailers.insert("x-checksum", "42".parse().unwrap());
/// let mut out = Vec::new();
/// gruvi_http::encode_last_chunk(&mut out, Some(&trailers));
/// assert_eq!(out, b"0\r\nx-checksum: 42\r\n\r\n");
/// ```
pub fn encode_last_chunk(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    if let Some(trailers) = trailers {
        fields(out, trailers, |_| false);
    }
    out.extend_from_slice(b"\r\n");
}

/// A chunk size in lowercase hex, without an allocation.
struct Hex {
    digits: [u8; 16],
    start: usize,
}

impl Hex {
    fn as_bytes_ref(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

fn format_hex(mut n: usize) -> Hex {
    let mut digits = [b'0'; 16];
    let mut start = 16;
    loop {
        start -= 1;
        digits[start] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    Hex { digits, start }
}

/// `date: ` + an IMF-fixdate (29 bytes) + CRLF.
const DATE_LINE: usize = 6 + 29 + 2;

thread_local! {
    /// The `Date` field of the current second, formatted once per second per thread, and the
    /// second it is for, from its start to the start of the next (compared with the clock as
    /// it is: no conversion per read).
    static DATE: Cell<(SystemTime, SystemTime)> = const { Cell::new((UNIX_EPOCH, UNIX_EPOCH)) };
    /// The `Date` line of that second (apart: appending it copies only the line).
    static DATE_TEXT: RefCell<[u8; DATE_LINE]> = const { RefCell::new([0; DATE_LINE]) };
    /// The cached `Date` may be used without reading the clock: responses answered in one
    /// go (pipelined, between two waits for input) share one clock read.
    static DATE_CURRENT: Cell<bool> = const { Cell::new(false) };
}

/// Marks the cached `Date` as possibly out of date: called before a connection waits.
pub(crate) fn date_may_be_stale() {
    DATE_CURRENT.set(false);
}

/// Appends a `Date` field with the current time (RFC 9110's IMF-fixdate).
pub(crate) fn date(out: &mut Vec<u8>) {
    if !DATE_CURRENT.replace(true) {
        let now = SystemTime::now();
        let (start, end) = DATE.get();
        // Outside the cached second: the clock moved on (or was set back).
        if now >= end || now < start {
            let (start, end, text) = format_date(now);
            DATE.set((start, end));
            DATE_TEXT.set(text);
        }
    }
    DATE_TEXT.with_borrow(|text| out.extend_from_slice(text));
}

/// The `Date` line of the second `now` is in, with that second's start and end.
#[cold]
#[inline(never)]
fn format_date(now: SystemTime) -> (SystemTime, SystemTime, [u8; DATE_LINE]) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut text = [0; DATE_LINE];
    text[..6].copy_from_slice(b"date: ");
    text[6..35].copy_from_slice(&httpdate::fmt_http_date(now).as_bytes()[..29]);
    text[35..].copy_from_slice(b"\r\n");
    let start = UNIX_EPOCH + Duration::from_secs(secs);
    (start, start + Duration::from_secs(1), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_sizes_have_no_leading_zeros() {
        for (n, text) in [
            (0, "0"),
            (1, "1"),
            (255, "ff"),
            (4096, "1000"),
            (usize::MAX, "ffffffffffffffff"),
        ] {
            assert_eq!(format_hex(n).as_bytes_ref(), text.as_bytes());
        }
    }

    #[test]
    fn a_date_line_is_cached_for_its_own_second() {
        let now = UNIX_EPOCH + Duration::from_millis(784_111_777_250);
        let (start, end, text) = format_date(now);
        assert_eq!(start, UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(end, UNIX_EPOCH + Duration::from_secs(784_111_778));
        assert_eq!(&text[..], b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    }

    #[test]
    fn the_date_field_is_an_imf_fixdate() {
        let mut out = Vec::new();
        date(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with("date: ") && text.ends_with(" GMT\r\n"),
            "{text}"
        );
        let value = text["date: ".len()..text.len() - 2].to_owned();
        assert!(httpdate::parse_http_date(&value).is_ok(), "{value}");
    }
}
