//! Writing new protocols: a [`Framer`] turns received bytes into messages, without doing any
//! I/O; a [`Dispatcher`](crate::Dispatcher) runs it on a connection.

use std::io;

/// Bytes in, messages out: the sans-IO half of a message protocol (Gruvi's `MessageProtocol`
/// parser). HTTP, JSON-RPC and D-Bus each implement one; the
/// [`Dispatcher`](crate::Dispatcher) feeds it.
///
/// [`decode`](Self::decode) sees the unconsumed bytes, starting at a message boundary, and
/// returns the first whole message with the number of bytes it took, or `None` when more bytes
/// are needed. It is called again with more bytes appended, so a framer may keep state between
/// calls to avoid scanning the same bytes twice. It never sees an empty buffer.
///
/// # Examples
///
/// A framer for messages prefixed with a one-byte length:
///
/// ```
/// use gruvi_stream::Framer;
///
/// struct LengthPrefixed;
///
/// impl Framer for LengthPrefixed {
///     type Message = Vec<u8>;
///     type Error = std::io::Error;
///
///     fn decode(&mut self, buf: &[u8]) -> std::io::Result<Option<(Vec<u8>, usize)>> {
///         let len = usize::from(buf[0]);
///         Ok(buf.get(1..1 + len).map(|body| (body.to_vec(), 1 + len)))
///     }
/// }
///
/// let mut framer = LengthPrefixed;
/// assert_eq!(framer.decode(b"\x03abc\x01d")?, Some((b"abc".to_vec(), 4)));
/// assert_eq!(framer.decode(b"\x03ab")?, None);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Framer {
    /// A decoded message.
    type Message;
    /// The protocol's error; I/O errors of the connection convert into it.
    type Error: From<io::Error>;

    /// Decodes the message at the front of `buf` (never empty): `Some((message, n))` when the
    /// first `n` bytes (at least one) make a whole message, `None` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// Bad input from the peer; the dispatcher stops reading and returns the error.
    fn decode(&mut self, buf: &[u8]) -> Result<Option<(Self::Message, usize)>, Self::Error>;

    /// Called once at end of stream with the bytes no message took (possibly none): a last
    /// message, or `None`. By default an end of stream inside a message is an
    /// `UnexpectedEof` error.
    ///
    /// # Errors
    ///
    /// A truncated message.
    fn decode_eof(&mut self, buf: &[u8]) -> Result<Option<Self::Message>, Self::Error> {
        if buf.is_empty() {
            Ok(None)
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ended inside a message",
            )
            .into())
        }
    }
}

/// The bytes of a message split across reads, kept between calls of [`decode_batch`].
pub(crate) struct Partial {
    bytes: Vec<u8>,
    /// The most bytes a message may have: a whole one that took more, or an incomplete one
    /// that already has more, is an error.
    max: usize,
}

impl Partial {
    pub(crate) fn new(max: usize) -> Partial {
        Partial {
            bytes: Vec::new(),
            max,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Hands what is left at end of stream to [`Framer::decode_eof`].
    pub(crate) fn finish<F: Framer>(
        &mut self,
        framer: &mut F,
    ) -> Result<Option<F::Message>, F::Error> {
        let last = framer.decode_eof(&self.bytes);
        self.bytes = Vec::new();
        last
    }
}

/// Decodes messages into `out` until it holds `limit` of them or the bytes run out, from the
/// partial message first and then from `data`. Returns how many bytes of `data` it took: all of
/// them unless `limit` was reached first. Zero-copy while no message is split: `data` is
/// decoded in place and only an incomplete tail is copied.
///
/// # Panics
///
/// If the framer claims to have taken no bytes or more than it was given.
pub(crate) fn decode_batch<F: Framer>(
    framer: &mut F,
    partial: &mut Partial,
    data: &[u8],
    limit: usize,
    out: &mut Vec<F::Message>,
) -> Result<usize, F::Error> {
    if partial.bytes.is_empty() {
        let used = decode_from(framer, data, limit, partial.max, out)?;
        if used < data.len() && out.len() < limit {
            partial.bytes.extend_from_slice(&data[used..]);
            partial.check()?;
            return Ok(data.len());
        }
        return Ok(used);
    }
    partial.bytes.extend_from_slice(data);
    let used = decode_from(framer, &partial.bytes, limit, partial.max, out)?;
    partial.bytes.drain(..used);
    if out.len() < limit {
        partial.check()?;
    }
    Ok(data.len())
}

impl Partial {
    /// An incomplete message may not grow past `max`.
    fn check(&self) -> io::Result<()> {
        if self.bytes.len() > self.max {
            return Err(too_long(self.max));
        }
        Ok(())
    }
}

fn too_long(max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a message is longer than the limit of {max} bytes"),
    )
}

/// Decodes whole messages from the front of `buf`; returns the bytes they took. A message
/// that took more than `max` bytes is an error: whether it came in one read or in several
/// does not matter.
fn decode_from<F: Framer>(
    framer: &mut F,
    buf: &[u8],
    limit: usize,
    max: usize,
    out: &mut Vec<F::Message>,
) -> Result<usize, F::Error> {
    let mut pos = 0;
    while pos < buf.len() && out.len() < limit {
        let rest = &buf[pos..];
        let Some((message, n)) = framer.decode(rest)? else {
            break;
        };
        assert!(
            n > 0 && n <= rest.len(),
            "Framer::decode took {n} bytes of {}",
            rest.len()
        );
        if n > max {
            return Err(too_long(max).into());
        }
        out.push(message);
        pos += n;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Newline-terminated lines, without the newline.
    struct Lines;

    impl Framer for Lines {
        type Message = Vec<u8>;
        type Error = io::Error;

        fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
            Ok(buf
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| (buf[..i].to_vec(), i + 1)))
        }
    }

    fn feed(chunks: &[&[u8]], limit: usize) -> Vec<Vec<u8>> {
        let (mut framer, mut partial, mut out) = (Lines, Partial::new(16), Vec::new());
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            loop {
                let mut batch = Vec::new();
                let used =
                    decode_batch(&mut framer, &mut partial, rest, limit, &mut batch).unwrap();
                let progressed = used > 0 || !batch.is_empty();
                out.extend(batch);
                rest = &rest[used..];
                if rest.is_empty() && !progressed {
                    break;
                }
            }
        }
        assert!(partial.finish(&mut framer).unwrap().is_none());
        out
    }

    #[test]
    fn whole_messages_in_one_buffer_decode_in_place() {
        let lines = feed(&[b"a\nbb\nccc\n"], usize::MAX);
        assert_eq!(lines, [&b"a"[..], b"bb", b"ccc"]);
    }

    #[test]
    fn messages_fed_one_byte_at_a_time_decode_the_same() {
        let data = b"one\ntwo\n\nthree\n";
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        let lines = feed(&chunks, usize::MAX);
        assert_eq!(lines, [&b"one"[..], b"two", b"", b"three"]);
    }

    #[test]
    fn a_batch_stops_at_its_limit_and_leaves_the_rest() {
        let (mut framer, mut partial, mut out) = (Lines, Partial::new(16), Vec::new());
        let used = decode_batch(&mut framer, &mut partial, b"a\nb\nc\n", 2, &mut out).unwrap();
        assert_eq!((used, out.len()), (4, 2));
        assert!(partial.is_empty());
    }

    #[test]
    fn a_split_message_longer_than_the_limit_is_invalid_data() {
        let (mut framer, mut partial, mut out) = (Lines, Partial::new(4), Vec::new());
        decode_batch(&mut framer, &mut partial, b"abc", 10, &mut out).unwrap();
        let err = decode_batch(&mut framer, &mut partial, b"def", 10, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_whole_message_of_exactly_the_limit_passes_and_one_byte_more_is_invalid_data() {
        let (mut framer, mut partial, mut out) = (Lines, Partial::new(4), Vec::new());
        // In one read: 4 bytes with the newline, then 5.
        let used = decode_batch(&mut framer, &mut partial, b"abc\n", 10, &mut out).unwrap();
        assert_eq!((used, out.len()), (4, 1));
        let err = decode_batch(&mut framer, &mut partial, b"abcd\n", 10, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "a message is longer than the limit of 4 bytes"
        );
        // Split before its last byte, the same 5-byte message is refused once whole.
        let (mut partial, mut out) = (Partial::new(4), Vec::new());
        decode_batch(&mut framer, &mut partial, b"abcd", 10, &mut out).unwrap();
        let err = decode_batch(&mut framer, &mut partial, b"\n", 10, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(out.is_empty());
    }

    #[test]
    fn end_of_stream_inside_a_message_is_unexpected_eof() {
        let (mut framer, mut partial, mut out) = (Lines, Partial::new(16), Vec::new());
        decode_batch(&mut framer, &mut partial, b"x\ntail", 10, &mut out).unwrap();
        assert_eq!(out, [b"x".to_vec()]);
        let err = partial.finish(&mut framer).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
