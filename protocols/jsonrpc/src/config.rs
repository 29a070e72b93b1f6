//! [`Config`]: the limits and defaults of a peer.

use std::time::Duration;

use crate::message::Version;
use crate::splitter::{DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE};

/// How long a call waits for its answer by default (30 s, as Gruvi).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a message may take to arrive whole, from its first byte, by default (30 s).
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most entries a received batch may have by default.
pub const DEFAULT_MAX_BATCH: usize = 1024;

/// How long a send waits for the other end to take bytes, by default
/// ([`Config::write_timeout`]).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// The settings and limits of a [`Peer`](crate::Peer): every limit has a default and can be
/// changed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gruvi_jsonrpc::{Config, Version};
///
/// let mut config = Config::default();
/// config.version = Version::V1;
/// config.call_timeout = Some(Duration::from_secs(5));
/// assert_eq!(config.max_message_size, 64 * 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The version of the calls and notifications this peer sends (default 2.0). Both versions
    /// are understood on input, and a response always goes out in its request's version.
    pub version: Version,
    /// The largest message accepted, in bytes, counting the whitespace before it (default
    /// 64 KiB). A larger one gets a `-32001` error response with id null, then the connection
    /// is closed.
    pub max_message_size: usize,
    /// The deepest nesting of arrays and objects accepted (default 64, at most
    /// [`MAX_DEPTH_LIMIT`](crate::MAX_DEPTH_LIMIT)); deeper is a `-32700` error and a close.
    pub max_depth: usize,
    /// How many requests the handler may work on at once on one connection (default 64), each
    /// in its own fiber: a slow handler does not stall the others. 0 counts as 1.
    pub max_concurrency: usize,
    /// How many received requests may wait for a free handler fiber (default 1024); beyond
    /// that, reading from the connection pauses (TCP pushes back on the peer). 0 counts as 1.
    /// A batch is queued whole, so the queue may hold up to `max_queued + max_batch - 1`
    /// requests.
    pub max_queued: usize,
    /// The most entries of a received batch that need an answer (requests and invalid
    /// entries; default [`DEFAULT_MAX_BATCH`]). A batch with more is not run: it is answered
    /// with one `-32600` (Invalid Request) error response with id null, and the connection
    /// goes on. 0 refuses every batch of requests. The responses in a batch (the answers to
    /// this side's own batch) are delivered whatever their number.
    pub max_batch: usize,
    /// How long a call waits for its answer (default [`DEFAULT_CALL_TIMEOUT`]; `None`: forever).
    pub call_timeout: Option<Duration>,
    /// How many bytes may wait to be sent before callers and handlers block (default 1 MiB).
    pub write_buffer_limit: usize,
    /// When this end closes a connection whose other end may still be sending (after a
    /// protocol violation), it sends end of stream and then reads and drops input for at most
    /// this long (default 2 s) before it closes: closing with unread input would reset the
    /// connection, which can destroy the error response before the other end reads it.
    pub linger_time: Duration,
    /// ...and at most this many bytes (default 1 MiB).
    pub linger_bytes: usize,
    /// Closes the connection (gracefully: what is queued is sent first) once it was quiet for
    /// this long: nothing received and no request handled in that time, and nothing in
    /// progress (no call of this end waits for its answer, no received request is queued or
    /// being handled). The quiet time starts at the last bytes received or the end of the last
    /// request handled, whichever is later; whitespace between messages is not counted as
    /// received, so a peer cannot keep a quiet connection open by sending a space now and
    /// then. Default `None`: a quiet
    /// other end is waited for forever (a server's connection limit still bounds how many
    /// can wait). A zero duration counts as 1 ms.
    pub idle_timeout: Option<Duration>,
    /// How long a message may take to arrive whole once its first byte arrived (default
    /// [`DEFAULT_MESSAGE_TIMEOUT`]; `None`: no limit). The clock starts at the first byte of
    /// each message (its opening bracket: whitespace between messages is no message) and is
    /// not reset by the bytes that follow, so a peer that sends the start of a message and
    /// then a byte now and then (slowloris) cannot hold the connection: when the time is
    /// up, it gets a `-32002` (Message timeout) error response with id null and the
    /// connection is closed, as after other protocol violations. A connection with no
    /// message in progress is not affected (that is [`idle_timeout`](Self::idle_timeout)).
    /// It costs nothing while messages arrive whole: the clock is read only when a read
    /// ends inside a message. A zero duration counts as 1 ms.
    pub message_timeout: Option<Duration>,
    /// How long a send may wait for the other end to take bytes (default
    /// [`DEFAULT_WRITE_TIMEOUT`]; `None`: forever). A peer that sends requests and never reads
    /// the answers cannot hold the connection: once the send queue is full and a send has
    /// waited this long, the connection is closed. Set on the connection when the peer is
    /// made ([`Connection::set_write_timeout`](gruvi_stream::Connection::set_write_timeout)).
    pub write_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            version: Version::V2,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_depth: DEFAULT_MAX_DEPTH,
            max_concurrency: 64,
            max_queued: 1024,
            call_timeout: Some(DEFAULT_CALL_TIMEOUT),
            write_buffer_limit: 1 << 20,
            linger_time: Duration::from_secs(2),
            linger_bytes: 1 << 20,
            idle_timeout: None,
            message_timeout: Some(DEFAULT_MESSAGE_TIMEOUT),
            max_batch: DEFAULT_MAX_BATCH,
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
        }
    }
}

impl Config {
    /// The default configuration sending `version`.
    pub fn with_version(version: Version) -> Config {
        Config {
            version,
            ..Config::default()
        }
    }
}
