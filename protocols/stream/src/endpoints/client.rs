//! [`Client`]: connects to an address with a timeout and holds the connection.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use super::listener::tcp_stream;
use crate::address::{Address, waited};
use crate::buffered::Stream;
use crate::tcp::TcpStream;
use crate::unix::UnixStream;

/// How long [`Client::new`] and [`connect`] wait for a connection by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to `addr` (a TCP host and port, every address of a host name in turn, or a Unix
/// socket path), giving up with `ErrorKind::TimedOut` after `timeout` (`None`: never). TCP
/// connections have Nagle's algorithm off.
///
/// # Switchpoint
///
/// Blocks the fiber for the lookup and the connection.
///
/// # Errors
///
/// `ConnectionRefused`, `NotFound` (an unknown host or a missing socket path), `TimedOut`, a
/// cancelled fiber's error.
pub fn connect(addr: &Address, timeout: Option<Duration>) -> io::Result<Rc<Stream>> {
    let attempt = || -> io::Result<Rc<Stream>> {
        match addr {
            Address::Tcp(host, port) => TcpStream::connect((host.as_str(), *port)).map(tcp_stream),
            Address::Unix(path) => Ok(Rc::new(Stream::new(UnixStream::connect(path)?))),
        }
    };
    match timeout {
        None => attempt(),
        Some(limit) => waited(fiber_core::timeout(limit, attempt), "connect timed out")?,
    }
}

/// A stream client (Gruvi's `Client`): [`connect`](Self::connect) opens a connection, with
/// the client's timeout, and keeps it until [`close`](Self::close) or the next `connect`.
///
/// # Examples
///
/// ```
/// use gruvi_stream::{Client, TcpListener};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?.into();
///     let client = Client::new();
///     let stream = client.connect(&addr)?;
///     stream.write_all(b"hi")?;
///     assert!(client.stream().is_some());
///     client.close();
///     assert!(client.stream().is_none());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Client {
    timeout: Option<Duration>,
    stream: RefCell<Option<Rc<Stream>>>,
}

impl Client {
    /// A client whose connections time out after [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new() -> Client {
        Client::with_timeout(Some(DEFAULT_CONNECT_TIMEOUT))
    }

    /// A client with its own connect timeout (`None`: wait as long as the system does).
    pub fn with_timeout(timeout: Option<Duration>) -> Client {
        Client {
            timeout,
            stream: RefCell::new(None),
        }
    }

    /// The connect timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Closes the current connection, if any, and connects to `addr` (see [`connect`]).
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber for at most the client's timeout.
    ///
    /// # Errors
    ///
    /// As [`connect`].
    pub fn connect(&self, addr: &Address) -> io::Result<Rc<Stream>> {
        self.close();
        let stream = connect(addr, self.timeout)?;
        *self.stream.borrow_mut() = Some(stream.clone());
        Ok(stream)
    }

    /// The current connection.
    pub fn stream(&self) -> Option<Rc<Stream>> {
        self.stream.borrow().clone()
    }

    /// Closes the current connection, if any; fibers using it see end of stream. Never
    /// switches.
    pub fn close(&self) {
        let stream = self.stream.borrow_mut().take();
        if let Some(stream) = stream {
            stream.close();
        }
    }
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("stream", &self.stream.borrow())
            .finish()
    }
}
