//! [`BodyDecoder`]: takes a body off the wire, whatever its framing, fed in pieces of any size.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::error::Error;
use crate::head::Framing;
use crate::limits::Limits;

/// What one [`BodyDecoder::decode`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used up (framing and data).
    pub consumed: usize,
    /// Where body data lies in the input (`start..end`), if the call reached some.
    pub data: Option<(usize, usize)>,
}

/// Decodes a body in any framing, incrementally: input split at any byte boundary gives the
/// same data. Content-Length, chunked (extensions checked and skipped, trailers collected) and
/// until-end-of-stream bodies; the limits on body size, chunk extensions and trailers apply.
///
/// # Examples
///
/// ```
/// use gruvi_http::{BodyDecoder, Framing, Limits};
///
/// let mut decoder = BodyDecoder::new(Framing::Chunked, &Limits::default());
/// let wire = b"5;ext=1\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n";
/// let mut body = Vec::new();
/// let mut input = &wire[..];
/// while !decoder.is_done() {
///     let step = decoder.decode(input, usize::MAX)?;
///     if let Some((start, end)) = step.data {
///         body.extend_from_slice(&input[start..end]);
///     }
///     input = &input[step.consumed..];
/// }
/// assert_eq!(body, b"hello");
/// assert_eq!(decoder.take_trailers().unwrap()["x-sum"], "5");
/// # Ok::<(), gruvi_http::Error>(())
/// ```
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    /// Body bytes delivered so far.
    total: u64,
    max_body: u64,
    max_extension: usize,
    max_trailers: usize,
    trailer_bytes: Vec<u8>,
    /// Boxed: most bodies have none, and a smaller decoder is cheaper to move.
    trailers: Option<Box<HeaderMap>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Content-Length: this many bytes left.
    Length(u64),
    UntilEof,
    /// Chunked: reading the size; `digits` seen so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size, before `;` or CR.
    SizeSpace {
        size: u64,
    },
    /// Inside a chunk extension, `len` bytes long so far.
    Extension {
        size: u64,
        len: usize,
    },
    /// The CR of the size line was seen; LF must follow.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    Trailers,
    Done,
}

/// The most hex digits of a chunk size, leading zeros included (sizes past 64 bits are
/// rejected as overflows before that).
const MAX_SIZE_DIGITS: u8 = 32;

impl BodyDecoder {
    /// A decoder for a body with `framing`, under `limits`.
    pub fn new(framing: Framing, limits: &Limits) -> BodyDecoder {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size { size: 0, digits: 0 },
            Framing::UntilEof => State::UntilEof,
        };
        BodyDecoder {
            state,
            total: 0,
            max_body: limits.max_body_size,
            max_extension: limits.max_chunk_extension,
            max_trailers: limits.max_trailer_size,
            trailer_bytes: Vec::new(),
            trailers: None,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes of a body with a `Content-Length` still to come (`Some(0)` once done);
    /// `None` for a chunked or close-delimited body in progress.
    pub(crate) fn known_remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Body bytes decoded so far.
    pub fn decoded_len(&self) -> u64 {
        self.total
    }

    /// The trailer fields of a chunked body, once it is done (taken: a second call gets
    /// `None`).
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take().map(|t| *t)
    }

    /// [`take_trailers`](Self::take_trailers) in their box: nothing moved (the parser's
    /// end of every message).
    pub(crate) fn take_boxed_trailers(&mut self) -> Option<Box<HeaderMap>> {
        self.trailers.take()
    }

    /// Decodes from `input`: goes through framing bytes until it reaches body data (at most
    /// `max_data` bytes of it, which are reported and counted as consumed), the end of the body
    /// or the end of the input. Call again with the unconsumed rest, or with more input once
    /// all was consumed.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for a bad chunk size, extension or line ending,
    /// [`Error::BodyTooLarge`], [`Error::ChunkExtensionTooLong`],
    /// [`Error::TrailersTooLarge`]. The decoder is unusable afterwards.
    pub fn decode(&mut self, input: &[u8], max_data: usize) -> Result<Decoded, Error> {
        let mut at = 0;
        while at < input.len() {
            let byte = input[at];
            match self.state {
                State::Done => break,
                State::Length(left) => {
                    let n = take(left, input.len() - at, max_data);
                    self.count(n)?;
                    self.state = if n as u64 == left {
                        State::Done
                    } else {
                        State::Length(left - n as u64)
                    };
                    return Ok(data(at, n));
                }
                State::UntilEof => {
                    let n = (input.len() - at).min(max_data);
                    self.count(n)?;
                    return Ok(data(at, n));
                }
                State::Data(left) => {
                    let n = take(left, input.len() - at, max_data);
                    self.count(n)?;
                    self.state = if n as u64 == left {
                        State::DataCr
                    } else {
                        State::Data(left - n as u64)
                    };
                    return Ok(data(at, n));
                }
                State::Size { size, digits } => {
                    self.state = match hex(byte) {
                        Some(_) if digits >= MAX_SIZE_DIGITS => {
                            return Err(Error::Malformed("chunk size too long"));
                        }
                        Some(d) => State::Size {
                            size: size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(u64::from(d)))
                                .ok_or(Error::Malformed("chunk size overflows"))?,
                            digits: digits + 1,
                        },
                        None if digits == 0 => return Err(Error::Malformed("invalid chunk size")),
                        None => self.after_size(size, byte)?,
                    };
                    at += 1;
                }
                State::SizeSpace { size } => {
                    self.state = self.after_size(size, byte)?;
                    at += 1;
                }
                State::Extension { size, len } => {
                    self.state = match byte {
                        b'\r' => State::SizeLf { size },
                        b'\n' => return Err(Error::Malformed("bare LF in a chunk size line")),
                        0..=0x08 | 0x0a..=0x1f | 0x7f => {
                            return Err(Error::Malformed("control character in a chunk extension"));
                        }
                        _ if len >= self.max_extension => return Err(Error::ChunkExtensionTooLong),
                        _ => State::Extension { size, len: len + 1 },
                    };
                    at += 1;
                }
                State::SizeLf { size } => {
                    if byte != b'\n' {
                        return Err(Error::Malformed("bare CR in a chunk size line"));
                    }
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                    at += 1;
                }
                State::DataCr => {
                    if byte != b'\r' {
                        return Err(Error::Malformed("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                    at += 1;
                }
                State::DataLf => {
                    if byte != b'\n' {
                        return Err(Error::Malformed("chunk data not followed by CRLF"));
                    }
                    self.state = State::Size { size: 0, digits: 0 };
                    at += 1;
                }
                State::Trailers => {
                    let used = self.trailers_from(&input[at..])?;
                    at += used;
                }
            }
        }
        Ok(Decoded {
            consumed: at,
            data: None,
        })
    }

    /// Ends an until-end-of-stream body at the end of the input.
    ///
    /// # Errors
    ///
    /// [`Error::IncompleteMessage`] for any other unfinished body.
    pub fn finish_at_eof(&mut self) -> Result<(), Error> {
        match self.state {
            State::UntilEof | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(Error::IncompleteMessage),
        }
    }

    fn count(&mut self, n: usize) -> Result<(), Error> {
        self.total += n as u64;
        if self.total > self.max_body {
            return Err(Error::BodyTooLarge);
        }
        Ok(())
    }

    /// The state after the chunk size's digits, given the next byte.
    fn after_size(&self, size: u64, byte: u8) -> Result<State, Error> {
        match byte {
            b' ' | b'\t' => Ok(State::SizeSpace { size }),
            b';' => Ok(State::Extension { size, len: 1 }),
            b'\r' => Ok(State::SizeLf { size }),
            b'\n' => Err(Error::Malformed("bare LF in a chunk size line")),
            _ => Err(Error::Malformed("invalid chunk size")),
        }
    }

    /// Collects trailer lines up to the empty line; returns the bytes used.
    fn trailers_from(&mut self, input: &[u8]) -> Result<usize, Error> {
        for (i, &byte) in input.iter().enumerate() {
            self.trailer_bytes.push(byte);
            if self.trailer_bytes.len() > self.max_trailers {
                return Err(Error::TrailersTooLarge);
            }
            if byte != b'\n' {
                continue;
            }
            let t = &self.trailer_bytes;
            if t.len() >= 2 && t[t.len() - 2] != b'\r' {
                return Err(Error::Malformed("bare LF in the trailer section"));
            }
            if t.len() == 1 {
                return Err(Error::Malformed("bare LF in the trailer section"));
            }
            if t.as_slice() == b"\r\n" || t.ends_with(b"\r\n\r\n") {
                self.finish_trailers()?;
                return Ok(i + 1);
            }
        }
        Ok(input.len())
    }

    /// Not inlined: its field storage (2 KiB) would sit in the frame of every parse, pushing
    /// the head parse's frames that much deeper into the fiber's stack (more stack lines
    /// touched per request, each likely cold).
    #[inline(never)]
    fn finish_trailers(&mut self) -> Result<(), Error> {
        self.state = State::Done;
        let bytes = std::mem::take(&mut self.trailer_bytes);
        if bytes.as_slice() == b"\r\n" {
            return Ok(());
        }
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let fields = match httparse::parse_headers(&bytes, &mut storage) {
            Ok(httparse::Status::Complete((_, fields))) => fields,
            Err(httparse::Error::TooManyHeaders) => return Err(Error::TrailersTooLarge),
            _ => return Err(Error::Malformed("invalid trailer field")),
        };
        let mut trailers = HeaderMap::new();
        for field in fields {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| Error::Malformed("invalid trailer field"))?;
            let value = HeaderValue::from_bytes(field.value)
                .map_err(|_| Error::Malformed("invalid trailer field"))?;
            // RFC 9110 6.5.1: framing, routing and the like never come from trailers.
            if !is_forbidden_trailer(&name) {
                trailers.append(name, value);
            }
        }
        self.trailers = Some(Box::new(trailers));
        Ok(())
    }
}

fn is_forbidden_trailer(name: &HeaderName) -> bool {
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::HOST,
        header::CONNECTION,
        header::TRAILER,
        header::TE,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::EXPECT,
    ]
    .contains(name)
}

fn take(left: u64, available: usize, max_data: usize) -> usize {
    (available.min(max_data) as u64).min(left) as usize
}

fn data(at: usize, n: usize) -> Decoded {
    Decoded {
        consumed: at + n,
        data: (n > 0).then_some((at, at + n)),
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}
