//! Serializing heads and chunks onto the wire, and the cached `Date` value.

use std::cell::{Cell, RefCell};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::time::SystemTime;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode, Version};

/// Appends a status line (`HTTP/1.1 200 OK`) and its CRLF.
#[inline(always)]
pub(crate) fn status_line(out: &mut Vec<u8>, version: Version, status: StatusCode) {
    if status == StatusCode::OK && version != Version::HTTP_10 {
        out.extend_from_slice(OK_LINE);
    } else {
        other_status_line(out, version, status);
    }
}

/// [`status_line`] for anything but `HTTP/1.1 200 OK`.
#[inline(never)]
fn other_status_line(out: &mut Vec<u8>, version: Version, status: StatusCode) {
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

/// Appends one header field. Inlined: a response's own fields are written with it, once
/// per field.
#[inline(always)]
pub(crate) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends a `Content-Length` field (in one copy: this is on every response's path).
pub(crate) fn content_length(out: &mut Vec<u8>, len: u64) {
    length_line(out, len, b"\r\n");
}

/// Appends a `Content-Length` field and the empty line that ends the head, in one copy.
#[inline(always)]
pub(crate) fn content_length_end(out: &mut Vec<u8>, len: u64) {
    length_line(out, len, b"\r\n\r\n");
}

#[inline(always)]
fn length_line(out: &mut Vec<u8>, len: u64, end: &[u8]) {
    const NAME: &[u8] = b"content-length: ";
    let mut line = [0; NAME.len() + 20 + 4];
    line[..NAME.len()].copy_from_slice(NAME);
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(len).as_bytes();
    let at = NAME.len() + digits.len();
    line[NAME.len()..at].copy_from_slice(digits);
    line[at..at + end.len()].copy_from_slice(end);
    out.extend_from_slice(&line[..at + end.len()]);
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

/// The thread's `Date` line, formatted once per second.
struct DateCache {
    /// The line may be used without reading the clock: responses answered in one go
    /// (pipelined, between two waits for input) share one clock read.
    current: Cell<bool>,
    /// The second (since the epoch) the line is for (compared with the clock's seconds as
    /// they are: any other second, later or earlier, makes a new line).
    second: Cell<u64>,
    /// `HTTP/1.1 200 OK` and its CRLF, then the line: the usual start of a response head
    /// is one copy.
    text: RefCell<[u8; OK_LINE.len() + DATE_LINE]>,
}

/// The usual status line.
const OK_LINE: &[u8] = b"HTTP/1.1 200 OK\r\n";

thread_local! {
    static DATE: DateCache = const {
        DateCache {
            current: Cell::new(false),
            second: Cell::new(u64::MAX),
            text: RefCell::new([0; OK_LINE.len() + DATE_LINE]),
        }
    };
}

/// Marks the cached `Date` as possibly out of date: called before a connection waits.
pub(crate) fn date_may_be_stale() {
    DATE.with(|date| date.current.set(false));
}

/// Appends a `Date` field with the current time (RFC 9110's IMF-fixdate).
#[inline(always)]
pub(crate) fn date(out: &mut Vec<u8>) {
    with_date(|text| out.extend_from_slice(&text[OK_LINE.len()..]));
}

/// Appends `HTTP/1.1 200 OK` and a `Date` field (as [`status_line`] and [`date`] would), in
/// one copy.
#[inline(always)]
pub(crate) fn ok_and_date(out: &mut Vec<u8>) {
    with_date(|text| out.extend_from_slice(text));
}

/// Gives `f` the cached `HTTP/1.1 200 OK` and `Date` lines, refreshed first if they may be
/// stale.
#[inline(always)]
fn with_date(f: impl FnOnce(&[u8])) {
    DATE.with(|date| f(&*fresh(date).text.borrow()));
}

/// The second (since the epoch) of the cached `Date` line, refreshed first if it may be
/// stale: the same second, the same line.
#[inline(always)]
pub(crate) fn date_second() -> u64 {
    DATE.with(|date| fresh(date).second.get())
}

/// `date`, refreshed first if it may be stale.
#[inline(always)]
fn fresh(date: &DateCache) -> &DateCache {
    if !date.current.replace(true) {
        refresh_date(date);
    }
    date
}

/// Reads the clock for a new batch of responses, and formats the line if the second changed.
#[inline(never)]
fn refresh_date(date: &DateCache) {
    let second = clock_seconds();
    if second != date.second.get() {
        let mut text = [0; OK_LINE.len() + DATE_LINE];
        text[..OK_LINE.len()].copy_from_slice(OK_LINE);
        text[OK_LINE.len()..].copy_from_slice(&format_date(second));
        date.text.replace(text);
        date.second.set(second);
    }
}

/// The wall clock's seconds since the epoch, from `CLOCK_REALTIME_COARSE`: the time of the
/// kernel's last tick (at most a tick, 1-10 ms, behind), read without the TSC (about 16 ns
/// here through glibc, against about 55 for `SystemTime::now`). A `Date` is then at most a
/// tick late to change at a second's end, less than a response may take to reach the client.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn clock_seconds() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    u64::try_from(now.tv_sec).unwrap_or(0)
}

/// The wall clock's seconds since the epoch.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn clock_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Date` line of the second `second` (since the epoch).
#[cold]
#[inline(never)]
fn format_date(second: u64) -> [u8; DATE_LINE] {
    let time = UNIX_EPOCH + Duration::from_secs(second);
    let mut text = [0; DATE_LINE];
    text[..6].copy_from_slice(b"date: ");
    text[6..35].copy_from_slice(&httpdate::fmt_http_date(time).as_bytes()[..29]);
    text[35..].copy_from_slice(b"\r\n");
    text
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

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
    fn a_date_line_is_formatted_for_its_second() {
        assert_eq!(
            &format_date(784_111_777)[..],
            b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        );
    }

    /// The `Date` text of one `date` call, as seconds since the epoch.
    fn date_seconds() -> u64 {
        let mut out = Vec::new();
        date(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let value = &text["date: ".len()..text.len() - 2];
        httpdate::parse_http_date(value)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn now_seconds() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_date_changes_across_a_second_boundary() {
        date_may_be_stale();
        let before = now_seconds();
        let first = date_seconds();
        // The coarse clock may be a tick behind the precise one.
        assert!(
            first + 1 >= before && first <= now_seconds(),
            "{first} {before}"
        );
        // Past the next second's start, by more than a clock tick.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        std::thread::sleep(
            Duration::from_secs(now.as_secs() + 1) - now + Duration::from_millis(50),
        );
        // Within one batch the line is reused; the next batch reads the clock again.
        assert_eq!(date_seconds(), first);
        date_may_be_stale();
        let later = now_seconds();
        let second = date_seconds();
        assert!(second > first, "{second} {first}");
        assert!(
            second + 1 >= later && second <= now_seconds(),
            "{second} {later}"
        );
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
