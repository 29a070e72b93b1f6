//! [`Config`]: the limits and timeouts of a connection, with their defaults.

use std::time::Duration;

use crate::auth::{self, Keyring, Mechanism};
use crate::framing::DEFAULT_MAX_MESSAGE_SIZE;

/// The default timeout of a method call (libdbus' default, 25 s).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// The default timeout of connecting to one address.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// How long the whole authentication may take.
    pub auth_timeout: Duration,
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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            auth_timeout: auth::DEFAULT_AUTH_TIMEOUT,
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
        }
    }
}
