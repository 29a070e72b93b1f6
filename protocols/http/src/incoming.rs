//! [`Incoming`]: a received body, read as it arrives.

use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use gruvi_stream::Address;
use http::HeaderMap;

use crate::error::Error;
use crate::parser::Event;
use crate::wire::{Step, Wire};

/// How much more room [`Incoming::read_to_vec`] and [`Incoming::discard`] read at a time.
const READ_STEP: usize = 8 * 1024;

/// The `100 Continue` interim response.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A message body as it arrives: a request body on the server, a response body on the
/// client. It implements [`Read`], decoding the framing (Content-Length, chunked, until end of
/// stream) from the connection's buffer as it goes; nothing is buffered beyond what the
/// connection holds.
///
/// On the server, a request with `Expect: 100-continue` gets its `100 Continue` when the
/// handler first reads the body; a handler that answers without reading never gets the body
/// sent.
///
/// # Switchpoint
///
/// [`Read::read`] blocks the fiber until body bytes arrive (or the body's read timeout
/// passes).
///
/// # Errors
///
/// A read fails with the connection's error, `TimedOut`, or a protocol [`Error`] inside an
/// `io::Error` (`InvalidData`; `UnexpectedEof` when the connection ended early).
pub struct Incoming {
    wire: Option<Rc<Wire>>,
    /// The message this body belongs to (see `Wire::message`).
    message: u64,
    done: bool,
    /// Boxed: most bodies have none, and the request carrying this is moved around.
    trailers: Option<Box<HeaderMap>>,
    len: u64,
}

impl Incoming {
    /// An empty body.
    pub fn empty() -> Incoming {
        Incoming {
            wire: None,
            message: 0,
            done: true,
            trailers: None,
            len: 0,
        }
    }

    pub(crate) fn new(wire: Rc<Wire>, has_body: bool) -> Incoming {
        Incoming {
            message: wire.message.get(),
            wire: Some(wire),
            done: !has_body,
            trailers: None,
            len: 0,
        }
    }

    /// Whether the whole body has been read.
    pub fn is_end(&self) -> bool {
        self.done
    }

    /// The trailer fields of a chunked body, once it has been read to the end.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_deref()
    }

    /// Body bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.len
    }

    /// The address of the peer that sent this message (Gruvi's `REMOTE_ADDR`; behind a proxy,
    /// the proxy's).
    ///
    /// # Errors
    ///
    /// `NotConnected` for an [empty](Self::empty) body made by hand or a closed connection.
    pub fn peer_address(&self) -> io::Result<Address> {
        self.connection()?.peer_address()
    }

    /// The local address the message came in on.
    ///
    /// # Errors
    ///
    /// As [`peer_address`](Self::peer_address).
    pub fn local_address(&self) -> io::Result<Address> {
        self.connection()?.local_address()
    }

    fn connection(&self) -> io::Result<&dyn gruvi_stream::Connection> {
        match &self.wire {
            Some(wire) => Ok(&*wire.conn),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "no connection")),
        }
    }

    /// Reads the rest of the body into a vector, failing past `limit` bytes.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the whole body arrived.
    ///
    /// # Errors
    ///
    /// As [`Read::read`]; `InvalidData` past `limit`.
    pub fn read_to_vec(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        // Nothing (left) to read: nothing allocated.
        if self.done {
            return Ok(out);
        }
        // Read straight into the vector (no stack buffer: a connection fiber's stack is
        // better kept small and warm), asking for one byte past the limit to see it exceeded.
        // The vector is zeroed as it grows, each byte once, and read into over as many reads
        // as it takes (zeroing its room again for every read would cost time quadratic in the
        // body's size).
        let max = limit.saturating_add(1);
        let mut filled = 0;
        loop {
            if filled == out.len() {
                let room = filled
                    .saturating_mul(2)
                    .max(filled.saturating_add(READ_STEP))
                    .min(max);
                out.resize(room, 0);
            }
            let n = self.read(&mut out[filled..])?;
            if n == 0 {
                out.truncate(filled);
                return Ok(out);
            }
            filled += n;
            if filled > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("body longer than {limit} bytes"),
                ));
            }
        }
    }

    /// Reads and drops the rest of the body, up to `limit` bytes: `Ok(true)` if the body
    /// ended within them.
    #[cold]
    #[inline(never)]
    pub(crate) fn discard(&mut self, limit: u64) -> io::Result<bool> {
        // Taken from the connection's buffer without a copy: at most one byte past the limit.
        let start = self.len;
        while !self.done {
            let taken = self.len - start;
            if taken > limit {
                return Ok(false);
            }
            let room = usize::try_from(limit - taken).map_or(usize::MAX, |r| r.saturating_add(1));
            if self.next_piece(room, |_| {})? == 0 {
                break;
            }
        }
        Ok(true)
    }

    /// Takes the next piece of the body, at most `max` bytes, and hands it to `sink` (which
    /// copies it, or not): its length, 0 at the end of the body.
    ///
    /// # Switchpoint
    ///
    /// Waits for the body's bytes to arrive.
    fn next_piece(&mut self, max: usize, mut sink: impl FnMut(&[u8])) -> io::Result<usize> {
        if self.done || max == 0 {
            return Ok(0);
        }
        let Some(wire) = self.wire.clone() else {
            return Ok(0);
        };
        // Another reader of this body finished it, or the connection moved on.
        if wire.message.get() != self.message || !wire.parser.borrow().in_body() {
            self.done = true;
            return Ok(0);
        }
        if wire.continue_pending.replace(false) {
            wire.flush()?;
            wire.conn.send(CONTINUE)?;
        }
        loop {
            let step = wire.parse(max, |event| match event {
                Event::Data(data) => {
                    sink(data);
                    Some(data.len())
                }
                Event::End => Some(0),
                // A head cannot come while a body is being decoded.
                _ => None,
            });
            match step.map_err(|err| Incoming::fail(&wire, err))? {
                Step::Got(Some(0)) => {
                    self.done = true;
                    self.trailers = wire.parser.borrow_mut().take_trailers().map(Box::new);
                    return Ok(0);
                }
                Step::Got(Some(n)) => {
                    self.len += n as u64;
                    return Ok(n);
                }
                Step::Got(None) => return Err(io::Error::other("a head inside a body")),
                Step::NeedMore => {}
            }
            if !wire.fill(wire.body_timeout.get())? {
                let end = wire.parser.borrow_mut().finish();
                match end.map_err(|err| Incoming::fail(&wire, err))? {
                    Event::End => {
                        self.done = true;
                        return Ok(0);
                    }
                    _ => return Err(Incoming::fail(&wire, Error::IncompleteMessage)),
                }
            }
        }
    }

    fn fail(wire: &Wire, err: Error) -> io::Error {
        wire.body_error.borrow_mut().get_or_insert(err.clone());
        err.into()
    }
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.next_piece(buf.len(), |data| buf[..data.len()].copy_from_slice(data))
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("done", &self.done)
            .field("bytes_read", &self.len)
            .finish()
    }
}

impl Default for Incoming {
    fn default() -> Incoming {
        Incoming::empty()
    }
}
