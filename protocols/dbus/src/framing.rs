//! Message framing, sans-IO: the fixed 16-byte header is checked (endianness, type, protocol
//! version, serial, lengths) and the declared size is held against the limit *before* the
//! message is buffered; whole messages are demarshalled by libdbus (`dbus::Message`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use dbus::Message;
use gruvi_stream::{Framer, Stream};

use crate::error::Error;

/// The specification's limit on a whole message: 128 MiB.
pub const SPEC_MAX_MESSAGE_SIZE: usize = 128 * 1024 * 1024;

/// The default limit on a received message: 4 MiB (configurable up to the specification's
/// 128 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The specification's limit on the header-field array: 64 MiB.
const SPEC_MAX_ARRAY: u32 = 64 * 1024 * 1024;

/// The length of the fixed part of the header.
pub(crate) const FIXED_HEADER: usize = 16;

/// What the fixed header of a message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FixedHeader {
    /// 1 method call, 2 method return, 3 error, 4 signal; other non-zero types are ignored.
    pub(crate) kind: u8,
    pub(crate) serial: u32,
    /// The whole message's size in bytes.
    pub(crate) total: usize,
}

/// Reads and checks the fixed header at the start of `head` (at least 16 bytes).
///
/// # Errors
///
/// [`Error::Protocol`] for a bad endianness byte, message type 0, a protocol version other
/// than 1, serial 0, a header array over 64 MiB, or a message longer than `max`.
pub(crate) fn parse_fixed_header(head: &[u8], max: usize) -> Result<FixedHeader, Error> {
    let bad = |what: String| Err(Error::Protocol(what));
    let u32_at = |at: usize, little: bool| {
        let bytes: [u8; 4] = head[at..at + 4].try_into().expect("four bytes");
        if little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    let little = match head[0] {
        b'l' => true,
        b'B' => false,
        other => return bad(format!("invalid endianness byte 0x{other:02x}")),
    };
    let kind = head[1];
    if kind == 0 {
        return bad("invalid message type 0".into());
    }
    if head[3] != 1 {
        return bad(format!("unsupported protocol version {}", head[3]));
    }
    let body = u32_at(4, little);
    let serial = u32_at(8, little);
    if serial == 0 {
        return bad("invalid serial 0".into());
    }
    let fields = u32_at(12, little);
    if fields > SPEC_MAX_ARRAY {
        return bad(format!("header fields of {fields} bytes exceed 64 MiB"));
    }
    // 16 fixed bytes and the array's length word (counted in the 16), the array, padding to
    // 8, the body: at most 16 + 64 MiB + 7 + 4 GiB, which fits a u64.
    let total = (FIXED_HEADER as u64 + u64::from(fields)).next_multiple_of(8) + u64::from(body);
    let limit = max.min(SPEC_MAX_MESSAGE_SIZE) as u64;
    if total > limit {
        return bad(format!(
            "message of {total} bytes exceeds the limit of {limit} bytes"
        ));
    }
    Ok(FixedHeader {
        kind,
        serial,
        total: total as usize,
    })
}

/// A received frame: a message, or one of a type the specification says to ignore.
#[derive(Debug)]
pub(crate) enum Frame {
    Message(Message),
    /// A message of an unknown (non-zero) type, skipped whole.
    Ignored,
}

/// The [`Framer`] of D-Bus messages on an authenticated connection.
#[derive(Debug)]
pub(crate) struct MessageFramer {
    max: usize,
    clock: Option<MessageClock>,
}

/// The message timeout: the stream's read timeout is what is left of it while a message is
/// in progress, and unset otherwise.
#[derive(Debug)]
struct MessageClock {
    stream: Rc<Stream>,
    limit: Duration,
    /// When the first byte of the message in progress arrived; `None` while none is.
    start: Option<Instant>,
    /// The stream's read timeout is set.
    armed: bool,
}

impl MessageFramer {
    pub(crate) fn new(max_message_size: usize) -> MessageFramer {
        MessageFramer {
            max: max_message_size,
            clock: None,
        }
    }

    /// Gives each message `limit` to arrive whole from its first byte: while one is in
    /// progress, `stream`'s read timeout is set to what is left of it (the reader then fails
    /// with `TimedOut`), and a message still incomplete when it is up is an error.
    pub(crate) fn with_timeout(mut self, stream: Rc<Stream>, limit: Duration) -> MessageFramer {
        self.clock = Some(MessageClock {
            stream,
            limit: limit.max(Duration::from_millis(1)),
            start: None,
            armed: false,
        });
        self
    }
}

impl MessageClock {
    /// A message ended `rest` bytes before the end of the buffer.
    #[inline]
    fn ended(&mut self, rest: usize) {
        self.start = None;
        // With bytes left the next decode sees them: it sets the timeout again or unsets it.
        if self.armed && rest == 0 {
            self.armed = false;
            let _ = self.stream.connection().set_read_timeout(None);
        }
    }

    /// A message is in progress: starts its clock or checks it, and sets the read timeout to
    /// what is left.
    #[cold]
    fn in_progress(&mut self) -> Result<(), Error> {
        let left = match self.start {
            None => {
                self.start = Some(Instant::now());
                self.limit
            }
            Some(start) => self
                .limit
                .checked_sub(start.elapsed())
                .ok_or_else(|| Error::Protocol(message_timeout_reason(self.limit)))?,
        };
        self.armed = true;
        // At least 1 ms (0 is refused); `Duration::MAX` is no limit (the stream's deadline
        // saturates, see `fiber_core::deadline_after`).
        let left = left.max(Duration::from_millis(1));
        self.stream
            .connection()
            .set_read_timeout(Some(left))
            .map_err(Error::Io)
    }
}

/// Why a connection closed when a message did not arrive whole in time.
pub(crate) fn message_timeout_reason(limit: Duration) -> String {
    format!(
        "a message did not arrive whole within {limit:?} of its first byte (the message timeout)"
    )
}

impl Framer for MessageFramer {
    type Message = Frame;
    type Error = Error;

    fn decode(&mut self, buf: &[u8]) -> Result<Option<(Frame, usize)>, Error> {
        let decoded = self.decode_message(buf)?;
        if let Some(clock) = &mut self.clock {
            match &decoded {
                Some((_, used)) => clock.ended(buf.len() - used),
                None => clock.in_progress()?,
            }
        }
        Ok(decoded)
    }
}

impl MessageFramer {
    fn decode_message(&mut self, buf: &[u8]) -> Result<Option<(Frame, usize)>, Error> {
        if buf.len() < FIXED_HEADER {
            return Ok(None);
        }
        let header = parse_fixed_header(buf, self.max)?;
        if buf.len() < header.total {
            return Ok(None);
        }
        let bytes = &buf[..header.total];
        if header.kind > 4 {
            return Ok(Some((Frame::Ignored, header.total)));
        }
        // libdbus checks the same sizes again, and the header fields' own padding.
        match Message::demarshal_bytes_needed(bytes) {
            Ok(n) if n == header.total => {}
            _ => return Err(Error::Protocol("invalid message header".into())),
        }
        let message = Message::demarshal(bytes).map_err(|err| {
            Error::Protocol(format!(
                "cannot demarshal a message: {}",
                err.message().unwrap_or("invalid message")
            ))
        })?;
        Ok(Some((Frame::Message(message), header.total)))
    }
}

/// Marshals `message` (its serial set) and hands the bytes to `out`.
#[cfg(test)]
fn marshal(message: &Message, out: &mut Vec<u8>) {
    let _ = message.marshal(|bytes| {
        out.extend_from_slice(bytes);
        Ok::<(), ()>(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(serial: u32, arg: &str) -> Vec<u8> {
        let mut m = Message::new_method_call("com.example", "/a", "com.example.I", "M")
            .unwrap()
            .append1(arg);
        m.set_serial(serial);
        let mut out = Vec::new();
        marshal(&m, &mut out);
        out
    }

    /// Feeds `data` in chunks of `step` bytes the way the dispatcher does: decode from what
    /// has arrived, drop what a message took.
    fn feed(framer: &mut MessageFramer, data: &[u8], step: usize) -> Result<Vec<Frame>, Error> {
        let mut buffered = Vec::new();
        let mut out = Vec::new();
        for chunk in data.chunks(step) {
            buffered.extend_from_slice(chunk);
            while !buffered.is_empty() {
                match framer.decode(&buffered)? {
                    Some((frame, n)) => {
                        out.push(frame);
                        buffered.drain(..n);
                    }
                    None => break,
                }
            }
        }
        assert!(buffered.is_empty(), "bytes left over");
        Ok(out)
    }

    #[test]
    fn messages_decode_whole_and_one_byte_at_a_time() {
        let mut data = call(1, "hello");
        data.extend(call(2, "world"));
        for step in [data.len(), 1, 7] {
            let frames = feed(&mut MessageFramer::new(1 << 20), &data, step).unwrap();
            let args: Vec<String> = frames
                .iter()
                .map(|f| match f {
                    Frame::Message(m) => m.read1::<String>().unwrap(),
                    Frame::Ignored => panic!("ignored"),
                })
                .collect();
            assert_eq!(args, ["hello", "world"], "step {step}");
        }
    }

    #[test]
    fn a_message_exactly_at_the_limit_passes_and_one_byte_over_fails() {
        let data = call(1, "x".repeat(100).as_str());
        let exact = feed(&mut MessageFramer::new(data.len()), &data, data.len()).unwrap();
        assert_eq!(exact.len(), 1);
        // The limit is checked on the first 16 bytes, before the rest is buffered.
        let err = MessageFramer::new(data.len() - 1)
            .decode(&data[..16])
            .unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn bad_fixed_headers_are_protocol_errors() {
        let good = call(5, "x");
        let cases: [(usize, u8, &str); 4] = [
            (0, b'x', "endianness"),
            (1, 0, "message type 0"),
            (3, 2, "protocol version 2"),
            (8, 0, "serial 0"),
        ];
        for (at, value, what) in cases {
            let mut data = good.clone();
            data[at] = value;
            if at == 8 {
                data[8..12].fill(0);
            }
            let err = MessageFramer::new(1 << 20).decode(&data).unwrap_err();
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn big_endian_headers_and_huge_declared_lengths_are_read_right() {
        let mut head = [0u8; 16];
        head[..4].copy_from_slice(&[b'B', 1, 0, 1]);
        head[4..8].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        head[8..12].copy_from_slice(&7u32.to_be_bytes());
        let err = parse_fixed_header(&head, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit of 134217728"));
        head[4..8].copy_from_slice(&8u32.to_be_bytes());
        head[12..16].copy_from_slice(&3u32.to_be_bytes());
        let header = parse_fixed_header(&head, usize::MAX).unwrap();
        assert_eq!((header.kind, header.serial, header.total), (1, 7, 32));
    }

    #[test]
    fn unknown_message_types_are_skipped_whole() {
        let mut data = call(1, "skip me");
        data[1] = 9;
        data.extend(call(2, "keep"));
        let frames = feed(&mut MessageFramer::new(1 << 20), &data, 3).unwrap();
        assert!(matches!(frames[0], Frame::Ignored));
        assert!(matches!(&frames[1], Frame::Message(m) if m.read1::<&str>().unwrap() == "keep"));
    }

    #[test]
    fn garbage_that_passes_the_fixed_header_fails_in_libdbus() {
        let mut data = call(1, "x");
        // Corrupt the header fields' array (first field code).
        data[16] = 0xee;
        let err = MessageFramer::new(1 << 20).decode(&data).unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
    }
}
