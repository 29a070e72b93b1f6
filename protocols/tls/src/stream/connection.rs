//! [`TlsStream`] as a [`Connection`] and as `Read`/`Write`.

use std::any::Any;
use std::fmt;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use gruvi_stream::{Address, Connection, FillNotify};

use super::{SEND_CHUNK, TlsStream, release};

impl Connection for TlsStream {
    fn fill(&self) -> io::Result<bool> {
        loop {
            if self.buffered() > 0 {
                return Ok(true);
            }
            if self.eof.get() {
                return Ok(false);
            }
            self.wait_ready()?;
            if self
                .limits
                .reader_must_send(self.pipe.borrow().ssldata_len())
            {
                self.send_pending()?;
            } else {
                self.send_pending_if_free()?;
            }
            self.receive()?;
        }
    }

    /// Registered with the connection underneath while the session is quiet: no plaintext or
    /// end to report, no handshake running, no failure, no ciphertext waiting to be sent.
    /// Anything else is left to [`fill`](Connection::fill), which does it at once (or blocks
    /// for a handshake run by another fiber). Told when ciphertext (or the end) comes: `fill`
    /// then decrypts, and may still wait for the rest of a record.
    fn notify_when_filled(&self, notify: Rc<dyn FillNotify>) -> Result<(), Rc<dyn FillNotify>> {
        if self.buffered() > 0
            || self.eof.get()
            || !self.ready.is_set()
            || self.failed.borrow().is_some()
            || self.pipe.borrow().has_ssldata()
        {
            return Err(notify);
        }
        self.inner.notify_when_filled(notify)
    }

    fn with_buffered(&self, f: &mut dyn FnMut(&[u8])) {
        f(&self.plain.borrow()[self.pos.get()..])
    }

    fn consume(&self, n: usize) {
        let pos = self.pos.get() + n;
        assert!(
            pos <= self.plain.borrow().len(),
            "consumed more than was buffered"
        );
        if pos == self.plain.borrow().len() {
            self.pos.set(0);
            release(&mut self.plain.borrow_mut());
        } else {
            self.pos.set(pos);
        }
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        self.wait_ready()?;
        if data.is_empty() {
            return Ok(());
        }
        self.check_write_error()?;
        let _guard = self.send_lock.lock().map_err(io::Error::from)?;
        if self.write_closed.get() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "this side of the TLS stream was shut down",
            ));
        }
        // What an earlier write left (it timed out) goes first: if it still cannot go, nothing
        // more is encrypted, so what waits stays bounded however often the caller retries.
        self.drain_locked()?;
        let mut out = Vec::new();
        for chunk in data.chunks(SEND_CHUNK) {
            let result = {
                let mut pipe = self.pipe.borrow_mut();
                let result = pipe.feed_appdata(chunk);
                pipe.take_ssldata_into(&mut out);
                result
            };
            if let Err(err) = result {
                let err = self.outcome(Err(err)).unwrap_err();
                let _ = self.drain_locked();
                return Err(err);
            }
            self.send_records(&mut out)?;
        }
        // Output a reader left (a KeyUpdate response) goes out before the lock does.
        self.drain_locked()
    }

    fn flush_queue(&self) -> io::Result<()> {
        self.check_write_error()?;
        self.send_pending()?;
        self.inner.flush_queue()
    }

    /// Sends `close_notify` and waits until it is with the kernel; reading goes on. Unwrapped,
    /// shuts down the connection's sending side.
    fn shutdown_write(&self) -> io::Result<()> {
        self.wait_ready()?;
        self.check_write_error()?;
        if self.write_closed.get() {
            return self.flush_queue();
        }
        if self.is_wrapped() {
            self.send_close_notify()?;
            self.inner.flush_queue()
        } else {
            self.write_closed.set(true);
            self.inner.shutdown_write()
        }
    }

    /// Closes the connection now, without `close_notify` (use
    /// [`shutdown_write`](Connection::shutdown_write) first for a clean close).
    fn close(&self) {
        self.eof.set(true);
        self.write_closed.set(true);
        self.inner.close();
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }

    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.read_timeout()
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.write_timeout()
    }

    fn peer_address(&self) -> io::Result<Address> {
        self.inner.peer_address()
    }

    fn local_address(&self) -> io::Result<Address> {
        self.inner.local_address()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Read for &TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf)
    }
}

impl Write for &TlsStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.send(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_queue()
    }
}

impl Write for TlsStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        (&*self).write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_queue()
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("pipe", &*self.pipe.borrow())
            .field("buffered", &self.buffered())
            .field("eof", &self.eof.get())
            .finish_non_exhaustive()
    }
}
