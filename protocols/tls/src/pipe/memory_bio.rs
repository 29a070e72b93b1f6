//! The in-memory "socket" under an [`SslPipe`](super::SslPipe)'s OpenSSL session.

use std::io::{self, Read, Write};

/// A drained buffer up to this size is kept for the next bytes; a larger one is freed.
const KEEP: usize = 4096;

/// The in-memory "socket" under the `SSL` object: ciphertext fed in, ciphertext produced.
#[derive(Default)]
pub(super) struct MemoryBio {
    pub(super) incoming: Vec<u8>,
    pub(super) pos: usize,
    pub(super) eof: bool,
    pub(super) outgoing: Vec<u8>,
}

impl MemoryBio {
    pub(super) fn unread(&self) -> &[u8] {
        &self.incoming[self.pos..]
    }

    pub(super) fn push(&mut self, data: &[u8]) {
        if self.pos == self.incoming.len() {
            self.incoming.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.incoming.drain(..self.pos);
            self.pos = 0;
        }
        self.incoming.extend_from_slice(data);
    }

    /// Frees the incoming buffer once everything in it was read, unless it is small: an idle
    /// connection keeps no big buffer.
    pub(super) fn release_if_drained(&mut self) {
        if self.pos == self.incoming.len() && self.incoming.capacity() > KEEP {
            self.incoming = Vec::new();
            self.pos = 0;
        }
    }

    /// Moves the unread bytes to `out`.
    pub(super) fn drain_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.unread());
        self.incoming.clear();
        self.pos = 0;
    }
}

impl Read for MemoryBio {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let unread = self.unread();
        if unread.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = unread.len().min(buf.len());
        buf[..n].copy_from_slice(&unread[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemoryBio {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
