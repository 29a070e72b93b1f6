//! [`Config`]: the limits and timeouts of a connection, with their defaults.

use std::time::Duration;

use crate::auth::{self, Keyring, Mechanism};
use crate::framing::DEFAULT_MAX_MESSAGE_SIZE;

/// The default timeout of a method call (libdbus' default, 25 s).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// The default timeout of connecting to one address.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a message may take to arrive whole, from its first byte, by default (30 s).
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many bytes may wait to be sent before senders block, by default (1 MiB).
pub const DEFAULT_WRITE_BUFFER_LIMIT: usize = 1 << 20;

/// How long the last messages may take to go out when a connection is closed, by default
/// (5 s).
pub const DEFAULT_CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a send waits for the other end to take bytes, by default
/// ([`Config::write_timeout`]).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits and timeouts of a connection (client or server side). Every limit has a default;
/// change the fields of [`Config::default()`] to set others.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gruvi_dbus::Config;
///
/// let mut config = Config::default();
/// config.call_timeout = Duration::from_secs(5);
/// config.max_message_size = 1 << 20;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// How long a method call waits for its reply.
    pub call_timeout: Duration,
    /// How long connecting to one address entry may take.
    pub connect_timeout: Duration,
    /// How long the whole authentication may take (default 30 s). It is not reset by each
    /// line or byte: a client that trickles its authentication is dropped when it is up.
    pub auth_timeout: Duration,
    /// How long a message may take to arrive whole once its first byte arrived (default
    /// [`DEFAULT_MESSAGE_TIMEOUT`]; [`Duration::MAX`]: no limit). The clock starts at the
    /// first byte of each message and is not reset by the bytes that follow, so a peer that
    /// sends the start of a message and then a byte now and then (slowloris) cannot hold the
    /// connection: when the time is up, the connection is closed (a clean disconnect, as for
    /// other protocol violations). A connection with no message in progress is not affected:
    /// bus clients may stay idle for hours. It costs nothing while messages arrive whole:
    /// the clock is read only when a read ends inside a message. A zero duration counts as
    /// 1 ms.
    pub message_timeout: Duration,
    /// The largest message accepted, in bytes (at most the specification's 128 MiB). A larger
    /// declared size closes the connection before the message is buffered.
    pub max_message_size: usize,
    /// The longest authentication line, CR LF included.
    pub max_auth_line: usize,
    /// How many rejections and errors a server gives a client before dropping it.
    pub max_auth_rejects: usize,
    /// The mechanisms a client tries, in order.
    pub mechanisms: Vec<Mechanism>,
    /// Where a client finds `DBUS_COOKIE_SHA1` cookies (`None`: `$HOME/.dbus-keyrings`).
    pub keyring: Option<Keyring>,
    /// Whether a client asks for Unix fd passing (`NEGOTIATE_UNIX_FD`). Messages carrying
    /// descriptors are not supported either way.
    pub negotiate_unix_fd: bool,
    /// How many incoming method calls of one connection run at once; more wait (and the
    /// connection stops reading meanwhile).
    pub max_concurrent_calls: usize,
    /// How many signals a [`Subscription`](crate::Subscription) holds before it drops new
    /// ones.
    pub signal_queue: usize,
    /// How many bytes of marshalled messages may wait to be sent (default
    /// [`DEFAULT_WRITE_BUFFER_LIMIT`]): once this many wait, senders (calls, signals, method
    /// replies) block until the writer fiber has handed them to the socket, so a peer that
    /// does not read cannot make this side buffer without bound. One message may go over it.
    pub write_buffer_limit: usize,
    /// How long the messages queued when this side closes the connection may take to go out
    /// (default [`DEFAULT_CLOSE_FLUSH_TIMEOUT`]); after it the socket is closed anyway.
    pub close_flush_timeout: Duration,
    /// How long a send may wait for the other end to take bytes (default
    /// [`DEFAULT_WRITE_TIMEOUT`]; `Duration::MAX`: no limit). A peer that sends calls and never
    /// reads the replies cannot hold the connection: once the socket's buffers are full and
    /// a send has waited this long, the connection is closed.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            auth_timeout: auth::DEFAULT_AUTH_TIMEOUT,
            message_timeout: DEFAULT_MESSAGE_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_auth_line: auth::DEFAULT_MAX_LINE,
            max_auth_rejects: auth::DEFAULT_MAX_REJECTS,
            mechanisms: vec![
                Mechanism::External,
                Mechanism::CookieSha1,
                Mechanism::Anonymous,
            ],
            keyring: None,
            negotiate_unix_fd: false,
            max_concurrent_calls: 64,
            signal_queue: 256,
            write_buffer_limit: DEFAULT_WRITE_BUFFER_LIMIT,
            close_flush_timeout: DEFAULT_CLOSE_FLUSH_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}
