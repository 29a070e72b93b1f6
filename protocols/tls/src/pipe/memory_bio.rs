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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_pushed_in_pieces_then_would_block() {
        let mut bio = MemoryBio::default();
        bio.push(b"hello");
        let mut buf = [0; 3];
        assert_eq!(bio.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        bio.push(b" world");
        let mut rest = [0; 16];
        assert_eq!(bio.read(&mut rest).unwrap(), 8);
        assert_eq!(&rest[..8], b"lo world");
        let err = bio.read(&mut rest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn end_of_stream_shows_only_once_drained() {
        let mut bio = MemoryBio::default();
        bio.push(b"ab");
        bio.eof = true;
        let mut buf = [0; 1];
        assert_eq!(bio.read(&mut buf).unwrap(), 1);
        assert_eq!(bio.read(&mut buf).unwrap(), 1);
        assert_eq!(
            bio.read(&mut buf).unwrap(),
            0,
            "end of stream after the data"
        );
    }

    #[test]
    fn a_drained_large_buffer_is_freed_and_a_small_one_kept() {
        let mut bio = MemoryBio::default();
        bio.push(&[1; 100]);
        let mut buf = [0; 100];
        bio.read_exact(&mut buf).unwrap();
        bio.release_if_drained();
        assert!(bio.incoming.capacity() >= 100, "small: kept");
        bio.push(&[1; 2 * KEEP]);
        bio.release_if_drained();
        assert!(bio.incoming.capacity() > KEEP, "not drained: kept");
        let mut big = vec![0; 2 * KEEP];
        bio.read_exact(&mut big).unwrap();
        bio.release_if_drained();
        assert_eq!(bio.incoming.capacity(), 0, "drained and large: freed");
        // Writes collect in order.
        bio.write_all(b"out").unwrap();
        bio.write_all(b"put").unwrap();
        assert_eq!(bio.outgoing, b"output");
    }
}
