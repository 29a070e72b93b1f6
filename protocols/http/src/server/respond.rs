//! Serializing a handler's response onto a connection: framing, HEAD, 1xx/204/304, `Date`,
//! `Server`, `Connection`.

use std::cell::RefCell;
use std::io;

use http::{HeaderMap, HeaderName, Response, StatusCode, Version};

use crate::body::{Body, FLUSH_AT, Kind, OutFraming, write_body};
use crate::encode;
use crate::wire::Wire;

/// What the response is for.
pub(crate) struct Exchange<'a> {
    pub(crate) version: Version,
    pub(crate) is_head: bool,
    pub(crate) keep_alive: bool,
    /// The `Server` field, CRLF included.
    pub(crate) server_line: Option<&'a [u8]>,
    /// The server's default fields.
    pub(crate) defaults: &'a Defaults,
}

/// A server's default response fields ([`ServerConfig::default_headers`]), encoded once.
///
/// [`ServerConfig::default_headers`]: super::ServerConfig::default_headers
#[derive(Default)]
pub(crate) struct Defaults {
    /// The `Server` field (if any) and all the defaults, for a response whose handler set
    /// no fields: one copy.
    tail: Vec<u8>,
    /// Each name, with the lines of all its values.
    fields: Vec<(HeaderName, Vec<u8>)>,
    /// The last usual head written, whole.
    ok_head: RefCell<OkHead>,
}

/// The whole head of the usual response (`200 OK`, no field of the handler's, its length
/// known, kept alive on HTTP/1.1): the status line, `Date`, the `Server` field and the
/// defaults, and `Content-Length`, for the second of its `Date` and that length. The next
/// such head in the same second with the same length (a server answering the same request
/// again, or any fixed answer) is these bytes again: one copy, where the parts were four and
/// the length was formatted each time.
struct OkHead {
    /// The second of its `Date` (`u64::MAX`: nothing kept yet).
    second: u64,
    /// The body length it declares.
    len: u64,
    /// Where the `Content-Length` field starts.
    at_length: usize,
    bytes: Vec<u8>,
}

impl Default for OkHead {
    fn default() -> OkHead {
        OkHead {
            second: u64::MAX,
            len: 0,
            at_length: 0,
            bytes: Vec::new(),
        }
    }
}

impl Defaults {
    /// The fields of `headers` the server takes as defaults: every one but those it writes
    /// or manages itself (`Date`, `Server`, `Content-Length`, and the framing and persistence
    /// fields). `server_line` is the `Server` field, CRLF included.
    pub(crate) fn new(headers: &HeaderMap, server_line: Option<&[u8]>) -> Defaults {
        let mut defaults = Defaults::default();
        defaults
            .tail
            .extend_from_slice(server_line.unwrap_or_default());
        for name in headers.keys() {
            if role(name.as_str()) != Role::Plain {
                continue;
            }
            let mut lines = Vec::new();
            for value in headers.get_all(name) {
                encode::field(&mut lines, name.as_str().as_bytes(), value.as_bytes());
            }
            defaults.tail.extend_from_slice(&lines);
            defaults.fields.push((name.clone(), lines));
        }
        defaults
    }

    /// Appends the usual head (see [`OkHead`]) for a body of `len` bytes, refreshing the kept
    /// one first if its second or its length is not this one's.
    #[inline(always)]
    fn write_ok_head(&self, out: &mut Vec<u8>, len: u64) {
        let mut head = self.ok_head.borrow_mut();
        let second = encode::date_second();
        if head.second != second || head.len != len {
            self.refresh_ok_head(&mut head, second, len);
        }
        out.extend_from_slice(&head.bytes);
    }

    /// Makes `head` the usual head of the second `second` (the cached `Date`'s) for a body of
    /// `len` bytes: only its length if the second is the same.
    #[inline(never)]
    fn refresh_ok_head(&self, head: &mut OkHead, second: u64, len: u64) {
        if head.second == second {
            head.bytes.truncate(head.at_length);
        } else {
            head.bytes.clear();
            encode::ok_and_date(&mut head.bytes);
            head.bytes.extend_from_slice(&self.tail);
            head.at_length = head.bytes.len();
            head.second = second;
        }
        encode::content_length_end(&mut head.bytes, len);
        head.len = len;
    }

    /// Appends the defaults whose names `headers` (the handler's fields, not empty) lacks.
    #[inline(never)]
    fn write_some(&self, out: &mut Vec<u8>, headers: &HeaderMap) {
        for (name, lines) in &self.fields {
            if !headers.contains_key(name) {
                out.extend_from_slice(lines);
            }
        }
    }
}

/// What the server makes of a field of the handler's response.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Written as it is.
    Plain,
    /// Read for the body's length, and written by the server itself.
    ContentLength,
    /// Written as it is; the server adds none of its own.
    Date,
    Server,
    /// Set by the server itself (framing and persistence): the handler's are dropped.
    Managed,
}

/// The role of a field named `text` (a `HeaderName`'s text: always lowercase), by one
/// comparison of the text rather than one per special name.
#[inline(always)]
fn role(text: &str) -> Role {
    match text {
        "date" => Role::Date,
        "server" => Role::Server,
        "connection" | "keep-alive" | "transfer-encoding" => Role::Managed,
        "content-length" => Role::ContentLength,
        _ => Role::Plain,
    }
}

/// Writes `response` (head into the pending output, body after it); returns whether the
/// connection can stay open afterwards.
///
/// Switchpoint: sends when the pending output grows large, and for reader and writer bodies.
#[inline]
pub(crate) fn write_response(
    wire: &Wire,
    response: &mut Response<Body>,
    exchange: &Exchange<'_>,
) -> io::Result<bool> {
    let status = response.status();
    let body = std::mem::take(response.body_mut());
    let headers = response.headers_mut();
    let mut keep_alive = exchange.keep_alive;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // One pass over the handler's fields: write them, and note what the server adds or
    // manages itself; then the server's own fields, under the same borrow of the output.
    let mut declared = None;
    let framing = wire.with_out(|out| {
        // Drained: the map is emptied as it is read, for the next request head (an owned
        // handler's response, see `conn::exchange`) or the next response (in place). An
        // empty one is left as it is (a drain walks its index anyway), and gets the `Server`
        // field and the defaults in one copy further on.
        let no_fields = headers.is_empty();
        // The usual head, whole: one copy.
        if no_fields
            && status == StatusCode::OK
            && keep_alive
            && exchange.version != Version::HTTP_10
        {
            let len = match &body.kind {
                Kind::Empty => Some(0),
                Kind::Bytes(bytes) => Some(bytes.len() as u64),
                Kind::Reader(_) | Kind::Writer(_) => None,
            };
            if let Some(len) = len {
                exchange.defaults.write_ok_head(out, len);
                return OutFraming::Length(len);
            }
        }
        // The usual start, `200 OK` and no `Date` of the handler's: one copy.
        let (mut has_date, mut has_server) = (false, false);
        if no_fields && status == StatusCode::OK {
            encode::ok_and_date(out);
            has_date = true;
        } else {
            encode::status_line(out, Version::HTTP_11, status);
        }
        if !no_fields {
            if !exchange.defaults.fields.is_empty() {
                exchange.defaults.write_some(out, headers);
            }
            let mut last = None;
            for (name, value) in headers.drain() {
                // A name comes once, before all its values.
                let name = match name {
                    Some(name) => last.insert(name),
                    None => match &last {
                        Some(name) => name,
                        None => continue,
                    },
                };
                let text = name.as_str();
                match role(text) {
                    Role::ContentLength => {
                        declared = value
                            .to_str()
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok());
                        continue;
                    }
                    Role::Managed => continue,
                    Role::Date => has_date = true,
                    Role::Server => has_server = true,
                    Role::Plain => {}
                }
                encode::field(out, text.as_bytes(), value.as_bytes());
            }
        }
        let framing = match &body.kind {
            _ if bodiless => OutFraming::Suppressed,
            Kind::Empty => OutFraming::Length(0),
            Kind::Bytes(bytes) => OutFraming::Length(bytes.len() as u64),
            Kind::Reader(_) | Kind::Writer(_) => match declared {
                Some(n) => OutFraming::Length(n),
                None if exchange.version == Version::HTTP_11 => OutFraming::Chunked,
                None => {
                    keep_alive = false;
                    OutFraming::Close
                }
            },
        };
        if !has_date {
            encode::date(out);
        }
        if no_fields {
            out.extend_from_slice(&exchange.defaults.tail);
        } else if let Some(line) = exchange.server_line
            && !has_server
        {
            out.extend_from_slice(line);
        }
        // The usual end of a head (kept alive on HTTP/1.1): its length and the empty line in
        // one copy.
        let ends_plainly = keep_alive && exchange.version != Version::HTTP_10;
        match framing {
            OutFraming::Length(n) if ends_plainly => {
                encode::content_length_end(out, n);
                return framing;
            }
            OutFraming::Length(n) => encode::content_length(out, n),
            OutFraming::Chunked => encode::field(out, b"transfer-encoding", b"chunked"),
            // A 304 keeps the length the GET would have had.
            OutFraming::Suppressed if status == StatusCode::NOT_MODIFIED => {
                if let Some(n) = declared {
                    encode::content_length(out, n);
                }
            }
            OutFraming::Suppressed | OutFraming::Close => {}
        }
        if !keep_alive {
            encode::field(out, b"connection", b"close");
        } else if exchange.version == Version::HTTP_10 {
            encode::field(out, b"connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        framing
    });
    // HEAD gets the headers a GET would, and no body.
    let framing = if exchange.is_head {
        OutFraming::Suppressed
    } else {
        framing
    };
    if framing == OutFraming::Suppressed {
        return flush_if_large(wire).map(|()| keep_alive);
    }
    write_body(wire, body, framing)?;
    flush_if_large(wire).map(|()| keep_alive)
}

fn flush_if_large(wire: &Wire) -> io::Result<()> {
    if wire.out_len() >= FLUSH_AT {
        wire.flush()?;
    }
    Ok(())
}

/// Writes a short plain-text error response that closes the connection.
#[cold]
#[inline(never)]
pub(crate) fn write_error(wire: &Wire, status: StatusCode, server_line: Option<&[u8]>) {
    let reason = status.canonical_reason().unwrap_or("Error");
    wire.with_out(|out| {
        encode::status_line(out, Version::HTTP_11, status);
        encode::date(out);
        if let Some(line) = server_line {
            out.extend_from_slice(line);
        }
        encode::field(out, b"content-type", b"text/plain; charset=utf-8");
        encode::content_length(out, reason.len() as u64 + 1);
        encode::field(out, b"connection", b"close");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(reason.as_bytes());
        out.push(b'\n');
    });
}
