//! [`Body`]: what a response (or a client's request) sends, and [`BodyWriter`] for bodies
//! written piece by piece.

use std::fmt;
use std::io::{self, Read, Write};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::encode;
use crate::wire::Wire;

/// An outgoing body: nothing, bytes, a reader, or a function that writes it.
///
/// Bytes are sent with a `Content-Length`. A reader or a writer function is sent with the
/// `Content-Length` the message's headers give, else chunked on HTTP/1.1, else (to an
/// HTTP/1.0 client) delimited by closing the connection.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use gruvi_http::Body;
///
/// let hello = Body::from("Hello, World!");
/// assert_eq!(hello.len(), Some(13));
/// let streamed = Body::from_reader(std::io::Cursor::new(vec![0u8; 100_000]));
/// assert_eq!(streamed.len(), None);
/// let written = Body::from_writer(|w| {
///     for i in 0..3 {
///         writeln!(w, "line {i}")?;
///     }
///     Ok(())
/// });
/// assert_eq!(written.len(), None);
/// ```
pub struct Body {
    pub(crate) kind: Kind,
}

/// A function writing a body.
type WriteFn = Box<dyn FnOnce(&mut BodyWriter<'_>) -> io::Result<()>>;

pub(crate) enum Kind {
    Empty,
    Bytes(Bytes),
    Reader(Box<dyn Read>),
    Writer(WriteFn),
}

impl Body {
    /// No body (`Content-Length: 0` where a body is allowed).
    pub fn empty() -> Body {
        Body { kind: Kind::Empty }
    }

    /// A body read from `reader` until it ends.
    pub fn from_reader(reader: impl Read + 'static) -> Body {
        Body {
            kind: Kind::Reader(Box::new(reader)),
        }
    }

    /// A body written by `f` through a [`BodyWriter`], after the head was sent.
    pub fn from_writer(f: impl FnOnce(&mut BodyWriter<'_>) -> io::Result<()> + 'static) -> Body {
        Body {
            kind: Kind::Writer(Box::new(f)),
        }
    }

    /// The length when it is known up front (empty and byte bodies).
    pub fn len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Empty => Some(0),
            Kind::Bytes(bytes) => Some(bytes.len() as u64),
            Kind::Reader(_) | Kind::Writer(_) => None,
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body {
            kind: Kind::Bytes(bytes),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::from(Bytes::from(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::from(Bytes::from(text))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Body {
        Body::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body::from(Bytes::from_static(bytes))
    }
}

impl From<()> for Body {
    fn from((): ()) -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("Body::Empty"),
            Kind::Bytes(bytes) => f.debug_tuple("Body::Bytes").field(&bytes.len()).finish(),
            Kind::Reader(_) => f.write_str("Body::Reader"),
            Kind::Writer(_) => f.write_str("Body::Writer"),
        }
    }
}

/// How an outgoing body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutFraming {
    /// No body may be sent (HEAD, 1xx, 204, 304): writes are dropped.
    Suppressed,
    /// This many bytes are still due.
    Length(u64),
    Chunked,
    /// Until the connection closes.
    Close,
}

/// Pending output is sent once it is this large.
pub(crate) const FLUSH_AT: usize = 16 * 1024;

/// Writes `body` after its head in `framing`: small bytes join the pending output, large
/// bytes go in a send of their own, readers and writer functions through a [`BodyWriter`].
/// Used for requests and responses alike.
///
/// Switchpoint: sends when the pending output grows large, and for large, reader and writer
/// bodies.
pub(crate) fn write_body(wire: &Wire, body: Body, framing: OutFraming) -> io::Result<()> {
    match body.kind {
        Kind::Empty => {}
        Kind::Bytes(bytes) if bytes.len() < FLUSH_AT => {
            wire.with_out(|out| out.extend_from_slice(&bytes));
        }
        Kind::Bytes(bytes) => {
            wire.flush()?;
            wire.conn.send(&bytes)?;
        }
        Kind::Reader(mut reader) => {
            let mut writer = BodyWriter::new(wire, framing);
            writer.copy_from(&mut reader)?;
            writer.finish()?;
        }
        Kind::Writer(write) => {
            let mut writer = BodyWriter::new(wire, framing);
            write(&mut writer)?;
            writer.finish()?;
        }
    }
    Ok(())
}

/// Writes a body in the framing chosen for it (Gruvi's response `write`): chunks on
/// HTTP/1.1, raw bytes up to the connection's end on HTTP/1.0, or exactly the
/// `Content-Length` that was given.
///
/// # Switchpoint
///
/// [`Write::write`] blocks while the connection's send queue is full.
///
/// # Errors
///
/// The connection's error; `InvalidInput` for writing past the `Content-Length`.
pub struct BodyWriter<'a> {
    wire: &'a Wire,
    framing: OutFraming,
    trailers: Option<HeaderMap>,
}

impl<'a> BodyWriter<'a> {
    pub(crate) fn new(wire: &'a Wire, framing: OutFraming) -> BodyWriter<'a> {
        BodyWriter {
            wire,
            framing,
            trailers: None,
        }
    }

    /// Whether the body is sent chunked, so that [trailers](Self::add_trailer) can follow it.
    pub fn is_chunked(&self) -> bool {
        self.framing == OutFraming::Chunked
    }

    /// Adds a trailer field, sent after the last chunk (Gruvi's trailers generated during the
    /// body). Trailers need the chunked coding: with any other framing they are dropped.
    pub fn add_trailer(&mut self, name: HeaderName, value: HeaderValue) {
        self.trailers
            .get_or_insert_with(HeaderMap::new)
            .append(name, value);
    }

    /// Ends the body: the last chunk and the trailers, or a check that the whole
    /// `Content-Length` was sent.
    pub(crate) fn finish(self) -> io::Result<()> {
        match self.framing {
            OutFraming::Chunked => {
                let trailers = self.trailers.as_ref();
                self.wire
                    .with_out(|out| encode::encode_last_chunk(out, trailers));
            }
            OutFraming::Length(left) if left > 0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended {left} bytes short of its Content-Length"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Copies `reader` to the body until it ends (or the Content-Length is reached).
    pub(crate) fn copy_from(&mut self, reader: &mut dyn Read) -> io::Result<()> {
        let mut buf = vec![0; FLUSH_AT];
        loop {
            let want = match self.framing {
                OutFraming::Length(0) | OutFraming::Suppressed => return Ok(()),
                OutFraming::Length(left) => buf.len().min(left.try_into().unwrap_or(usize::MAX)),
                _ => buf.len(),
            };
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            self.write_all(&buf[..n])?;
        }
    }
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        match self.framing {
            OutFraming::Suppressed => return Ok(data.len()),
            OutFraming::Length(left) => {
                if data.len() as u64 > left {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "body longer than its Content-Length",
                    ));
                }
                self.framing = OutFraming::Length(left - data.len() as u64);
                self.raw(data)?;
            }
            OutFraming::Chunked => {
                self.wire
                    .with_out(|out| encode::chunk_header(out, data.len()));
                self.raw(data)?;
                self.wire.with_out(|out| out.extend_from_slice(b"\r\n"));
            }
            OutFraming::Close => self.raw(data)?,
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.wire.flush()
    }
}

impl BodyWriter<'_> {
    /// Queues `data`, sending large pieces directly instead of copying them.
    fn raw(&self, data: &[u8]) -> io::Result<()> {
        if data.len() >= FLUSH_AT {
            self.wire.flush()?;
            return self.wire.conn.send(data);
        }
        self.wire.with_out(|out| out.extend_from_slice(data));
        if self.wire.out_len() >= FLUSH_AT {
            self.wire.flush()?;
        }
        Ok(())
    }
}

impl fmt::Debug for BodyWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("framing", &self.framing)
            .finish()
    }
}
