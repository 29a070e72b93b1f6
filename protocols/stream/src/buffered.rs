//! Gruvi's buffered [`Stream`]: reads of exactly n bytes, of what is there, of lines; writes;
//! end of stream. It reads from the connection's own receive buffer, without a copy of its own.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, BufRead, Read, Write};

use crate::connection::Connection;

/// The longest line, newline included, that [`Stream::iter_lines`], [`Stream::readlines`] and
/// `for line in &stream` return unless [`Stream::set_max_line`] says otherwise: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// A buffered byte stream over a [`Connection`] (Gruvi's `Stream`): read exactly `n` bytes or
/// up to end of stream, read what is there, read lines with a limit and a delimiter, write, and
/// send end of stream.
///
/// What the peer sends is seen in order: data, then end of stream, then an error. End of
/// stream wins over a later error, and an error is returned only once the data received before
/// it has been read: a read that collected some bytes when the error came returns them, and the
/// next read returns the error. A read that times out or is cancelled keeps what it collected
/// for the next read.
///
/// Every method takes `&self`, so an `Rc<Stream>` can be read by one fiber and written by
/// another. `Read`, `Write` and `BufRead` are implemented too (`Read` and `Write` also on
/// `&Stream`; std's `BufRead::read_line` and `lines` are std's own, without a line limit).
/// Flow control comes from the connection: reading from the peer pauses while the receive
/// buffer is above its high-water mark, and writers block while the send queue is above its
/// own.
///
/// Lines read by iteration ([`iter_lines`](Self::iter_lines), [`readlines`](Self::readlines),
/// `for line in &stream`) are capped at [`max_line`](Self::max_line) bytes (default
/// [`DEFAULT_MAX_LINE`]): a longer line is an `InvalidData` error, so a peer that never sends
/// a newline cannot make the stream buffer without end. [`readline`](Self::readline) takes its
/// limit as an argument instead.
///
/// `Stream` is `Stream<dyn Connection>`, the type a [`Server`](crate::Server) hands its
/// handler; `Stream<TcpStream>` and the like are the concrete forms, and an
/// `Rc<Stream<TcpStream>>` coerces to `Rc<Stream>`.
///
/// # Examples
///
/// ```
/// use gruvi_stream::{Stream, TcpListener, TcpStream};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = fiber_core::spawn(move || -> std::io::Result<()> {
///         let stream = Stream::new(listener.accept()?.0);
///         stream.write_all(b"HELO\r\nsome data, then EOF")?;
///         stream.write_eof()
///     });
///     let stream = Stream::new(TcpStream::connect(addr)?);
///     assert_eq!(stream.readline_delim(b'\n', None)?, b"HELO\r\n");
///     assert_eq!(stream.read_bytes(9)?, b"some data");
///     assert_eq!(stream.read_bytes(100)?, b", then EOF"); // short: end of stream
///     assert_eq!(stream.read_bytes(100)?, b"");
///     server.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Stream<C: Connection + ?Sized = dyn Connection> {
    /// Bytes taken out of the connection, read before its own: `BufRead::fill_buf` must lend a
    /// slice it owns, and an interrupted read puts back what it had collected.
    held: RefCell<Vec<u8>>,
    held_pos: Cell<usize>,
    /// The longest line iteration returns, newline included.
    max_line: Cell<usize>,
    conn: C,
}

impl<C: Connection> Stream<C> {
    /// A stream over `conn`.
    pub fn new(conn: C) -> Stream<C> {
        Stream {
            held: RefCell::new(Vec::new()),
            held_pos: Cell::new(0),
            max_line: Cell::new(DEFAULT_MAX_LINE),
            conn,
        }
    }
}

impl<C: Connection + ?Sized> Stream<C> {
    /// The connection, e.g. for its addresses and timeouts.
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// The longest line, newline included, that iteration over lines returns (default
    /// [`DEFAULT_MAX_LINE`]).
    pub fn max_line(&self) -> usize {
        self.max_line.get()
    }

    /// Sets the longest line, newline included, that [`iter_lines`](Self::iter_lines),
    /// [`readlines`](Self::readlines) and `for line in &stream` return; a longer one is an
    /// `InvalidData` error. `usize::MAX` sets no limit. [`readline`](Self::readline) is not
    /// affected: it takes its own limit.
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_stream::{DEFAULT_MAX_LINE, Stream, UnixStream};
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let (a, b) = UnixStream::pair()?;
    ///     let (a, b) = (Stream::new(a), Stream::new(b));
    ///     assert_eq!(b.max_line(), DEFAULT_MAX_LINE);
    ///     b.set_max_line(6);
    ///     a.write_all(b"short\nrather long\n")?;
    ///     let mut lines = b.iter_lines();
    ///     assert_eq!(lines.next().unwrap()?, b"short\n");
    ///     let err = lines.next().unwrap().unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    ///     // The long line is still there, for a read that expects it.
    ///     assert_eq!(b.readline(None)?, b"rather long\n");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_max_line(&self, bytes: usize) {
        assert!(bytes > 0, "the line limit must not be 0");
        self.max_line.set(bytes);
    }

    fn held_len(&self) -> usize {
        self.held.borrow().len() - self.held_pos.get()
    }

    /// Waits until bytes are buffered: `Ok(true)` when some are, `Ok(false)` at end of stream.
    /// With [`with_buffered`](Self::with_buffered) and [`consume`](Self::consume) this reads
    /// without copying (what a [`Framer`](crate::Framer) works on).
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until bytes, end of stream or an error arrive, or the connection's read
    /// timeout passes.
    ///
    /// # Errors
    ///
    /// The connection's error once the bytes before it are consumed, `TimedOut`, a cancelled
    /// fiber's error.
    pub fn fill(&self) -> io::Result<bool> {
        if self.held_len() > 0 {
            return Ok(true);
        }
        self.conn.fill()
    }

    /// Calls `f` on the buffered bytes (possibly none). Never switches; `f` must not switch.
    pub fn with_buffered<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        if self.held_len() > 0 {
            return f(&self.held.borrow()[self.held_pos.get()..]);
        }
        let mut f = Some(f);
        let mut result = None;
        self.conn.with_buffered(&mut |data| {
            if let Some(f) = f.take() {
                result = Some(f(data));
            }
        });
        result.expect("Connection::with_buffered must call its function once")
    }

    /// Marks the first `n` buffered bytes as consumed.
    ///
    /// # Panics
    ///
    /// If `n` exceeds what [`with_buffered`](Self::with_buffered) showed.
    pub fn consume(&self, n: usize) {
        let held = self.held_len();
        if held == 0 {
            self.conn.consume(n);
            return;
        }
        assert!(n <= held, "consumed more than was buffered");
        if n == held {
            self.held.borrow_mut().clear();
            self.held_pos.set(0);
        } else {
            self.held_pos.set(self.held_pos.get() + n);
        }
    }

    /// Reads `n` bytes, fewer only at end of stream (Gruvi's `read(n)`): waits for more even when
    /// some are there. An empty result means end of stream (or `n == 0`).
    ///
    /// # Switchpoint
    ///
    /// Blocks until `n` bytes or end of stream arrived.
    ///
    /// # Errors
    ///
    /// As [`fill`](Self::fill); bytes collected before a connection error are returned first.
    pub fn read_bytes(&self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n.min(64 * 1024));
        self.collect(&mut out, n, None)?;
        Ok(out)
    }

    /// Reads at most `n` of the bytes that are there, waiting only if there are none (Gruvi's
    /// `read1`). An empty result means end of stream (or `n == 0`).
    ///
    /// # Switchpoint
    ///
    /// Blocks only while nothing is buffered.
    ///
    /// # Errors
    ///
    /// As [`fill`](Self::fill).
    pub fn read1(&self, n: usize) -> io::Result<Vec<u8>> {
        if n == 0 || !self.fill()? {
            return Ok(Vec::new());
        }
        let out = self.with_buffered(|data| data[..n.min(data.len())].to_vec());
        self.consume(out.len());
        Ok(out)
    }

    /// Reads a line ending in `\n`, the newline included; see
    /// [`readline_delim`](Self::readline_delim). `limit` is this call's own: `None` reads
    /// however long the line is (iteration over lines is capped at
    /// [`max_line`](Self::max_line) instead).
    ///
    /// # Switchpoint
    ///
    /// Blocks until a whole line, `limit` bytes or end of stream arrived.
    ///
    /// # Errors
    ///
    /// As [`fill`](Self::fill).
    pub fn readline(&self, limit: Option<usize>) -> io::Result<Vec<u8>> {
        self.readline_delim(b'\n', limit)
    }

    /// Reads up to and including `delim`, or `limit` bytes if no delimiter came within them, or
    /// what is left at end of stream (a last line without its delimiter). An empty result means
    /// end of stream (or a `limit` of 0). Memory stays bounded by `limit`; `None` sets no
    /// limit.
    ///
    /// # Switchpoint
    ///
    /// Blocks until a delimiter, `limit` bytes or end of stream arrived.
    ///
    /// # Errors
    ///
    /// As [`fill`](Self::fill); bytes collected before a connection error are returned first.
    pub fn readline_delim(&self, delim: u8, limit: Option<usize>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.collect(&mut out, limit.unwrap_or(usize::MAX), Some(delim))?;
        Ok(out)
    }

    /// Reads lines until end of stream (Gruvi's `readlines`), each at most
    /// [`max_line`](Self::max_line) bytes long.
    ///
    /// # Switchpoint
    ///
    /// Blocks until end of stream.
    ///
    /// # Errors
    ///
    /// As [`iter_lines`](Self::iter_lines); the lines read before an error are lost with it,
    /// so use [`iter_lines`](Self::iter_lines) to keep them.
    pub fn readlines(&self) -> io::Result<Vec<Vec<u8>>> {
        self.iter_lines().collect()
    }

    /// An iterator over lines (newline included) until end of stream (Gruvi's iteration over a
    /// stream, also `for line in &stream`). It ends after the first error. The last line may
    /// lack its newline.
    ///
    /// Each line may have at most [`max_line`](Self::max_line) bytes, newline included: a line
    /// of exactly that many is returned, a longer one is an error. The bytes of the long line
    /// stay buffered (at most `max_line` of them, plus what the connection buffers), so memory
    /// stays bounded whatever the peer sends, and a read after the error starts at the line.
    ///
    /// # Switchpoint
    ///
    /// Each `next()` blocks as [`readline`](Self::readline) does.
    ///
    /// # Errors
    ///
    /// Each `next()`: `InvalidData` for a line longer than [`max_line`](Self::max_line); as
    /// [`readline`](Self::readline) otherwise.
    pub fn iter_lines(&self) -> Lines<'_, C> {
        Lines {
            stream: self,
            done: false,
        }
    }

    /// Queues all of `data` for sending (Gruvi's `write`).
    ///
    /// # Switchpoint
    ///
    /// Blocks while the send queue is above its high-water mark.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` or `ConnectionReset` once the peer is gone, `TimedOut` after the write
    /// timeout, `NotConnected` after [`close`](Self::close).
    pub fn write_all(&self, data: &[u8]) -> io::Result<()> {
        self.conn.send(data)
    }

    /// Queues each of `lines` for sending, as they are (Gruvi's `writelines`).
    ///
    /// # Switchpoint
    ///
    /// As [`write_all`](Self::write_all).
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    pub fn write_lines<I>(&self, lines: I) -> io::Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        lines
            .into_iter()
            .try_for_each(|line| self.conn.send(line.as_ref()))
    }

    /// Waits until everything written has been handed to the kernel.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the send queue is empty.
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    pub fn flush(&self) -> io::Result<()> {
        self.conn.flush_queue()
    }

    /// Sends what was written, then end of stream (Gruvi's `write_eof`); reading goes on.
    ///
    /// # Switchpoint
    ///
    /// Waits for the send queue to drain.
    ///
    /// # Errors
    ///
    /// As [`write_all`](Self::write_all).
    pub fn write_eof(&self) -> io::Result<()> {
        self.conn.shutdown_write()
    }

    /// Closes the connection now, dropping what is queued; blocked readers see end of stream.
    /// Never switches.
    pub fn close(&self) {
        self.held.borrow_mut().clear();
        self.held_pos.set(0);
        self.conn.close()
    }

    /// Reads a line of at most [`max_line`](Self::max_line) bytes; a longer one is put back and
    /// is an `InvalidData` error.
    fn read_capped_line(&self) -> io::Result<Vec<u8>> {
        let max = self.max_line.get();
        let mut out = Vec::new();
        self.collect(&mut out, max, Some(b'\n'))?;
        if out.len() < max || out.last() == Some(&b'\n') {
            return Ok(out);
        }
        // `max` bytes without a newline: too long, unless the stream ends right here.
        match self.fill() {
            Ok(false) => Ok(out),
            Ok(true) => {
                self.unread(out);
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line is longer than the limit of {max} bytes"),
                ))
            }
            Err(err) => self.interrupted(&mut out, err).map(|()| out),
        }
    }

    /// Puts `bytes` back in front of what is buffered, for the next read.
    fn unread(&self, mut bytes: Vec<u8>) {
        let mut held = self.held.borrow_mut();
        bytes.extend_from_slice(&held[self.held_pos.get()..]);
        *held = bytes;
        self.held_pos.set(0);
    }

    /// Appends bytes to `out` until it holds `max` bytes, ends in `delim`, or the stream ends.
    fn collect(&self, out: &mut Vec<u8>, max: usize, delim: Option<u8>) -> io::Result<()> {
        while out.len() < max {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(err) => return self.interrupted(out, err),
            }
            let (taken, found) = self.with_buffered(|data| {
                let chunk = &data[..data.len().min(max - out.len())];
                let end = delim.and_then(|d| chunk.iter().position(|&b| b == d));
                let taken = end.map_or(chunk.len(), |i| i + 1);
                out.extend_from_slice(&chunk[..taken]);
                (taken, end.is_some())
            });
            self.consume(taken);
            if found {
                break;
            }
        }
        Ok(())
    }

    /// Ends a read that failed after collecting `out`: a timeout or a cancellation keeps the
    /// bytes for the next read; a connection error returns them now and itself next time.
    fn interrupted(&self, out: &mut Vec<u8>, err: io::Error) -> io::Result<()> {
        if out.is_empty() {
            return Err(err);
        }
        let transient =
            err.kind() == io::ErrorKind::TimedOut || fiber_core::Error::from_io(&err).is_some();
        if !transient {
            return Ok(());
        }
        // Waiting means everything held was consumed: the collected bytes are all there is.
        debug_assert_eq!(self.held_len(), 0);
        *self.held.borrow_mut() = std::mem::take(out);
        self.held_pos.set(0);
        Err(err)
    }

    fn read_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = self.with_buffered(|data| {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            n
        });
        self.consume(n);
        Ok(n)
    }
}

/// The lines of a [`Stream`], from [`Stream::iter_lines`].
pub struct Lines<'a, C: Connection + ?Sized = dyn Connection> {
    stream: &'a Stream<C>,
    done: bool,
}

impl<C: Connection + ?Sized> Iterator for Lines<'_, C> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        if self.done {
            return None;
        }
        match self.stream.read_capped_line() {
            Ok(line) if line.is_empty() => {
                self.done = true;
                None
            }
            Ok(line) => Some(Ok(line)),
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

impl<'a, C: Connection + ?Sized> IntoIterator for &'a Stream<C> {
    type Item = io::Result<Vec<u8>>;
    type IntoIter = Lines<'a, C>;

    fn into_iter(self) -> Lines<'a, C> {
        self.iter_lines()
    }
}

impl<C: Connection + ?Sized> Read for Stream<C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf)
    }
}

impl<C: Connection + ?Sized> Read for &Stream<C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf)
    }
}

impl<C: Connection + ?Sized> BufRead for Stream<C> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.held_len() == 0 && self.conn.fill()? {
            // `BufRead` lends a slice for as long as `&mut self`: move the connection's bytes
            // into the stream's own buffer, which can lend it.
            let held = self.held.get_mut();
            held.clear();
            self.held_pos.set(0);
            self.conn
                .with_buffered(&mut |data| held.extend_from_slice(data));
            self.conn.consume(held.len());
        }
        let pos = self.held_pos.get();
        Ok(&self.held.get_mut()[pos..])
    }

    fn consume(&mut self, amt: usize) {
        Stream::consume(self, amt)
    }
}

impl<C: Connection + ?Sized> Write for Stream<C> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.send(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.flush_queue()
    }
}

impl<C: Connection + ?Sized> Write for &Stream<C> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.send(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.flush_queue()
    }
}

impl<C: Connection + ?Sized> fmt::Debug for Stream<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("local", &self.conn.local_address().ok())
            .field("peer", &self.conn.peer_address().ok())
            .field("held", &self.held_len())
            .finish()
    }
}
