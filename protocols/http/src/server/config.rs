//! [`ServerConfig`]: the server's limits and timeouts.

use std::time::Duration;

use http::HeaderMap;

use crate::limits::Limits;

/// A server's settings; every one has a default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gruvi_http::ServerConfig;
///
/// let config = ServerConfig {
///     keep_alive_timeout: Duration::from_secs(5),
///     ..ServerConfig::default()
/// };
/// assert_eq!(config.head_timeout, Duration::from_secs(30));
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Size limits of requests.
    pub limits: Limits,
    /// How long a request head may take to arrive, measured from its first byte (and, for a
    /// new connection, from the connection): a client trickling a head in slowly
    /// (slowloris) is answered 408 and closed when it runs out (default 30 s).
    pub head_timeout: Duration,
    /// How long a read of a request body may wait for bytes (default 60 s).
    pub body_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests (default 60 s).
    pub keep_alive_timeout: Duration,
    /// How long sending may block on a client that does not read (default 60 s).
    pub write_timeout: Duration,
    /// The most connections served at once; more are closed as soon as they are accepted
    /// (default 10,000).
    pub max_connections: usize,
    /// After a handler answered without reading the whole request body, the server reads
    /// and drops up to this many bytes of it to keep the connection; a longer rest closes the
    /// connection instead (default 64 KiB).
    pub max_discard: u64,
    /// The `Server` header added to responses that have none (default `gruvi`; `None`: no
    /// header).
    pub server_name: Option<String>,
    /// Fields added to every response a handler gives that has no field of the same name
    /// (default: none). A field most responses carry (a `Content-Type`, a `Cache-Control`)
    /// set here costs the server a copy of bytes it encoded once, where a handler's
    /// `insert` costs a hash and a map entry per response (written again by the server).
    /// `Date`, `Server`, `Content-Length`, `Connection`, `Keep-Alive` and
    /// `Transfer-Encoding` are not taken: the server writes those itself (see
    /// [`server_name`](Self::server_name)). Error responses the server makes itself (400,
    /// 408, 500...) do not get them.
    ///
    /// ```
    /// use gruvi_http::ServerConfig;
    /// use gruvi_http::http::header::{CONTENT_TYPE, HeaderValue};
    ///
    /// let mut config = ServerConfig::default();
    /// let plain = HeaderValue::from_static("text/plain; charset=utf-8");
    /// config.default_headers.insert(CONTENT_TYPE, plain);
    /// ```
    pub default_headers: HeaderMap,
    /// Serve HTTPS: every connection starts with a TLS handshake, in its own fiber within the
    /// config's handshake timeout (default `None`: plain HTTP); a connection wrapper set later
    /// replaces it. See [`crate::tls_server_builder`].
    pub tls: Option<gruvi_tls::ServerConfig>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            limits: Limits::default(),
            head_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_discard: 64 * 1024,
            server_name: Some("gruvi".to_owned()),
            default_headers: HeaderMap::new(),
            tls: None,
        }
    }
}
