//! [`Splitter`]: finds where each JSON value ends in a byte stream of back-to-back values
//! (Gruvi's framing), without parsing them and without doing any I/O.

use std::fmt;
use std::ops::Range;

use gruvi_stream::Framer;

/// The default largest message, whitespace before it included (64 KiB, as Gruvi).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// The default deepest nesting of arrays and objects.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// The deepest nesting a splitter accepts at all: the most `serde_json` parses (its recursion
/// limit of 128 admits 127 nested arrays or objects),
/// and this keeps parsing and dropping a value well within a fiber's stack.
pub const MAX_DEPTH_LIMIT: usize = 127;

/// Why the byte stream cannot be split into messages. The stream is out of sync afterwards:
/// the connection must be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SplitError {
    /// A byte other than whitespace, `{` or `[` between messages.
    UnexpectedByte(u8),
    /// A `}` closing a `[` or a `]` closing a `{`.
    MismatchedBracket(u8),
    /// A message (with the whitespace before it) grew past this many bytes.
    TooLarge(usize),
    /// Arrays and objects nested deeper than this.
    TooDeep(usize),
    /// The connection failed (only when the splitter runs as a [`Framer`]): its kind and
    /// message.
    Io(std::io::ErrorKind, String),
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::UnexpectedByte(b) => {
                write!(
                    f,
                    "unexpected byte 0x{b:02x} where a JSON object or array must start"
                )
            }
            SplitError::MismatchedBracket(b) => {
                write!(f, "mismatched closing bracket '{}'", char::from(*b))
            }
            SplitError::TooLarge(max) => write!(f, "message larger than {max} bytes"),
            SplitError::TooDeep(max) => write!(f, "JSON nested deeper than {max} levels"),
            SplitError::Io(_, msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for SplitError {}

impl From<std::io::Error> for SplitError {
    fn from(err: std::io::Error) -> SplitError {
        SplitError::Io(err.kind(), err.to_string())
    }
}

/// Where the scanner is inside the current value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the value: whitespace is skipped.
    Between,
    /// Inside the value, outside any string.
    Value,
    /// Inside a string.
    String,
    /// Just after a backslash inside a string.
    Escape,
}

/// Splits back-to-back JSON objects and arrays (a JSON-RPC 2.0 batch), with any whitespace
/// between them, as Gruvi frames JSON-RPC: no length prefix, no newline needed.
///
/// The splitter is incremental and linear: [`split`](Self::split) is called with the bytes
/// since the end of the previous message, again and again as more arrive, and only the new bytes
/// are scanned each time. It tracks strings, escapes and the bracket stack (a mismatched bracket
/// is an error at once), counts the bytes of the message while it is incomplete (so endless
/// whitespace or `{` hits [`max_size`](Self::new)), and stops at `max_depth` nesting levels.
/// It does not validate the JSON inside: `serde_json` does that on the slice it returns.
///
/// # Examples
///
/// ```
/// use gruvi_jsonrpc::Splitter;
///
/// let mut splitter = Splitter::default();
/// let input = b" {\"a\": \"}\"} [1, 2]";
/// assert_eq!(splitter.split(&input[..5])?, None); // incomplete: call again with more
/// let (value, end) = splitter.split(input)?.expect("a whole value");
/// assert_eq!(&input[value], &b"{\"a\": \"}\"}"[..]);
/// let (value, _) = splitter.split(&input[end..])?.expect("the next one");
/// assert_eq!(value, 1..7);
/// # Ok::<(), gruvi_jsonrpc::SplitError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Splitter {
    max_size: usize,
    max_depth: usize,
    state: State,
    /// How many bytes of the current message were scanned already.
    scanned: usize,
    /// Where the value starts, once its first bracket was seen.
    start: usize,
    /// The closing bracket each open array or object expects, innermost last.
    stack: Vec<u8>,
}

impl Default for Splitter {
    fn default() -> Splitter {
        Splitter::new(DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_DEPTH)
    }
}

impl Splitter {
    /// A splitter for messages of at most `max_size` bytes (leading whitespace included)
    /// nested at most `max_depth` levels deep.
    ///
    /// # Panics
    ///
    /// If `max_depth` is 0 or above [`MAX_DEPTH_LIMIT`], or `max_size` is 0.
    pub fn new(max_size: usize, max_depth: usize) -> Splitter {
        assert!(
            (1..=MAX_DEPTH_LIMIT).contains(&max_depth),
            "max_depth must be between 1 and {MAX_DEPTH_LIMIT}"
        );
        assert!(max_size > 0, "max_size must not be 0");
        Splitter {
            max_size,
            max_depth,
            state: State::Between,
            scanned: 0,
            start: 0,
            stack: Vec::new(),
        }
    }

    /// The largest message, in bytes.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The deepest nesting.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Whether the splitter is inside a message (its first bracket was seen).
    pub fn in_message(&self) -> bool {
        self.state != State::Between
    }

    /// Scans `buf`, the bytes since the end of the previous message (the same prefix as in the
    /// last call, plus whatever arrived since). Returns the range of the next whole value and
    /// the number of bytes it ends at (the value and the whitespace before it), or `None`
    /// when more bytes are needed.
    ///
    /// # Errors
    ///
    /// The input cannot be framed: the splitter is reset, and the stream must be closed.
    pub fn split(&mut self, buf: &[u8]) -> Result<Option<(Range<usize>, usize)>, SplitError> {
        match self.scan(buf) {
            Ok(Some(end)) => {
                let start = self.start;
                self.reset();
                Ok(Some((start..end, end)))
            }
            Ok(None) if buf.len() > self.max_size => {
                self.reset();
                Err(SplitError::TooLarge(self.max_size))
            }
            Ok(None) => Ok(None),
            Err(err) => {
                self.reset();
                Err(err)
            }
        }
    }

    /// Forgets the message in progress.
    pub fn reset(&mut self) {
        self.state = State::Between;
        self.scanned = 0;
        self.start = 0;
        self.stack.clear();
    }

    /// Scans from where the last call stopped; the end of the value if it is complete.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, SplitError> {
        // Never look past max_size + 1 bytes: a larger message is an error either way.
        let limit = buf.len().min(self.max_size.saturating_add(1));
        let mut i = self.scanned;
        while i < limit {
            let b = buf[i];
            i += 1;
            match self.state {
                State::Between => match b {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b'{' | b'[' => {
                        self.start = i - 1;
                        self.state = State::Value;
                        self.open(b)?;
                    }
                    _ => return Err(SplitError::UnexpectedByte(b)),
                },
                State::Value => match b {
                    b'"' => self.state = State::String,
                    b'{' | b'[' => self.open(b)?,
                    b'}' | b']' => {
                        if self.stack.pop() != Some(b) {
                            return Err(SplitError::MismatchedBracket(b));
                        }
                        if self.stack.is_empty() {
                            return self.finish(i);
                        }
                    }
                    _ => {}
                },
                State::String => {
                    // Skip the plain part of a string in one go.
                    let rest = &buf[i - 1..limit];
                    match rest.iter().position(|&c| c == b'"' || c == b'\\') {
                        Some(n) => {
                            i += n;
                            self.state = if rest[n] == b'"' {
                                State::Value
                            } else {
                                State::Escape
                            };
                        }
                        None => i = limit,
                    }
                }
                State::Escape => self.state = State::String,
            }
        }
        self.scanned = i;
        Ok(None)
    }

    fn open(&mut self, b: u8) -> Result<(), SplitError> {
        if self.stack.len() >= self.max_depth {
            return Err(SplitError::TooDeep(self.max_depth));
        }
        self.stack.push(if b == b'{' { b'}' } else { b']' });
        Ok(())
    }

    fn finish(&mut self, end: usize) -> Result<Option<usize>, SplitError> {
        if end > self.max_size {
            return Err(SplitError::TooLarge(self.max_size));
        }
        Ok(Some(end))
    }
}

/// The splitter as a [`Framer`] for [`gruvi_stream::Dispatcher`]: each message is the bytes of
/// one JSON value. (The JSON-RPC [`Peer`](crate::Peer) runs the splitter on the connection's
/// buffer itself, to parse in place.)
impl Framer for Splitter {
    type Message = Vec<u8>;
    type Error = SplitError;

    fn decode(&mut self, buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, SplitError> {
        Ok(self
            .split(buf)?
            .map(|(value, end)| (buf[value].to_vec(), end)))
    }

    fn decode_eof(&mut self, buf: &[u8]) -> Result<Option<Vec<u8>>, SplitError> {
        // Whitespace after the last message is fine; a truncated message is dropped.
        let _ = buf;
        self.reset();
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `input` fed in chunks of `chunk` bytes, as a reader would: the unconsumed
    /// bytes are kept and grow with each chunk.
    fn split_all(input: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, SplitError> {
        let mut splitter = Splitter::default();
        let (mut pending, mut out) = (Vec::new(), Vec::new());
        for piece in input.chunks(chunk) {
            pending.extend_from_slice(piece);
            while let Some((value, end)) = splitter.split(&pending)? {
                out.push(pending[value].to_vec());
                pending.drain(..end);
            }
        }
        Ok(out)
    }

    #[test]
    fn a_simple_object_is_one_message() {
        assert_eq!(split_all(b"{\"a\":1}", 100).unwrap(), [b"{\"a\":1}"]);
    }

    #[test]
    fn whitespace_before_and_after_is_skipped() {
        let out = split_all(b" \r\n\t{ } \n", 100).unwrap();
        assert_eq!(out, [b"{ }"]);
    }

    #[test]
    fn braces_and_brackets_inside_strings_do_not_count() {
        let msg = br#"{"a": "}{][", "b": ["]"]}"#;
        assert_eq!(split_all(msg, 100).unwrap(), [msg.to_vec()]);
    }

    #[test]
    fn an_escaped_quote_does_not_end_a_string() {
        let msg = br#"{"a": "x\"}\\", "b": "\\\""}"#;
        assert_eq!(split_all(msg, 100).unwrap(), [msg.to_vec()]);
    }

    #[test]
    fn back_to_back_values_and_batches_split() {
        let out = split_all(b"{\"a\":1}{\"b\":2} [{}, []]", 100).unwrap();
        assert_eq!(out, [&b"{\"a\":1}"[..], b"{\"b\":2}", b"[{}, []]"]);
    }

    #[test]
    fn input_split_at_every_byte_gives_the_same_messages() {
        let input = br#" {"a": "\"}", "b": [1, {"c": "\\"}]} [1] {"d": "{"}"#;
        let whole = split_all(input, input.len()).unwrap();
        assert_eq!(whole.len(), 3);
        for chunk in 1..input.len() {
            assert_eq!(split_all(input, chunk).unwrap(), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn junk_between_messages_is_an_error() {
        assert_eq!(
            split_all(b"{} x", 100),
            Err(SplitError::UnexpectedByte(b'x'))
        );
        assert_eq!(split_all(b"1", 100), Err(SplitError::UnexpectedByte(b'1')));
    }

    #[test]
    fn a_mismatched_bracket_is_an_error_at_once() {
        assert_eq!(
            split_all(br#"{"a": "b"]"#, 100),
            Err(SplitError::MismatchedBracket(b']'))
        );
        assert_eq!(
            split_all(b"[}", 1),
            Err(SplitError::MismatchedBracket(b'}'))
        );
    }

    #[test]
    fn a_message_of_exactly_max_size_passes_and_one_byte_more_fails() {
        let mut s = Splitter::new(10, 4);
        let msg = b"{\"a\":\"12\"}";
        assert_eq!(msg.len(), 10);
        assert_eq!(s.split(msg).unwrap(), Some((0..10, 10)));
        let msg = b" {\"a\":\"12\"}";
        assert_eq!(s.split(msg), Err(SplitError::TooLarge(10)));
    }

    #[test]
    fn endless_whitespace_or_open_strings_hit_the_size_limit() {
        let mut s = Splitter::new(100, 4);
        let spaces = vec![b' '; 100];
        assert_eq!(s.split(&spaces).unwrap(), None);
        let spaces = vec![b' '; 101];
        assert_eq!(s.split(&spaces), Err(SplitError::TooLarge(100)));
        let mut string = b"{\"".to_vec();
        string.resize(101, b'a');
        assert_eq!(s.split(&string), Err(SplitError::TooLarge(100)));
    }

    #[test]
    fn nesting_to_max_depth_passes_and_one_deeper_fails() {
        let mut s = Splitter::new(1000, 3);
        assert_eq!(s.split(b"[[[]]]").unwrap(), Some((0..6, 6)));
        assert_eq!(s.split(b"[[[{"), Err(SplitError::TooDeep(3)));
        // Endless `{` stops at the depth limit long before any size limit.
        let mut s = Splitter::default();
        assert_eq!(
            s.split(&[b'{'; 1000]),
            Err(SplitError::TooDeep(DEFAULT_MAX_DEPTH))
        );
    }

    #[test]
    fn the_deepest_allowed_nesting_is_max_depth_limit() {
        let mut s = Splitter::new(1000, MAX_DEPTH_LIMIT);
        let deep = [vec![b'['; MAX_DEPTH_LIMIT], vec![b']'; MAX_DEPTH_LIMIT]].concat();
        assert_eq!(s.split(&deep).unwrap(), Some((0..254, 254)));
        // serde_json parses it too: the limit stays within its recursion limit.
        let value: serde_json::Value = serde_json::from_slice(&deep).unwrap();
        assert!(value.is_array());
    }

    #[test]
    #[should_panic(expected = "max_depth must be between 1 and 127")]
    fn a_depth_above_the_limit_is_refused() {
        Splitter::new(1000, MAX_DEPTH_LIMIT + 1);
    }

    #[test]
    #[should_panic(expected = "max_depth must be between 1 and 127")]
    fn a_depth_of_zero_is_refused() {
        Splitter::new(1000, 0);
    }

    #[test]
    fn scanning_is_linear_when_bytes_arrive_one_at_a_time() {
        // A 60 KB message fed byte by byte: each call scans only the new byte, so this takes
        // milliseconds; a rescanning splitter would take 1.8 billion steps.
        let mut msg = b"{\"a\":\"".to_vec();
        msg.resize(60_000, b'x');
        msg.extend_from_slice(b"\"}");
        let mut s = Splitter::default();
        for n in 1..msg.len() {
            assert_eq!(s.split(&msg[..n]).unwrap(), None);
            assert_eq!(s.scanned, n);
        }
        assert_eq!(s.split(&msg).unwrap(), Some((0..msg.len(), msg.len())));
    }
}
