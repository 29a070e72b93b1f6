//! [`Server`]: listens on addresses and runs a handler fiber per connection.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{Builder, Callback, JoinHandle, SwitchBack};

use super::listener::Listener;
use crate::address::{Address, waited};
use crate::buffered::Stream;

/// What a server runs for each connection.
type Handler = dyn Fn(Rc<Stream>) -> io::Result<()>;

/// How many connections a [`Server`] serves at once unless told otherwise (as the HTTP
/// server's `ServerConfig::max_connections`): enough for any ordinary service, and below the
/// file descriptors a peer could otherwise take until none are left.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The first and the longest pause after an accept error such as running out of descriptors.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// A stream server (Gruvi's `Server`): listens on one or more addresses (TCP host and port, Unix
/// socket path) and runs `handler` in a new fiber for each connection, with the connection as a
/// [`Stream`].
///
/// When the handler returns (an error too) or panics, its connection is closed; nothing else
/// is affected. Connections beyond [`max_connections`](Self::max_connections) (default
/// [`DEFAULT_MAX_CONNECTIONS`]) are closed as soon as they are accepted.
/// [`close`](Self::close) stops accepting, closes every connection and waits for the handlers;
/// [`shutdown`](Self::shutdown) first gives them a grace period to finish on their own.
/// Dropping the server stops it without waiting.
///
/// TCP connections have Nagle's algorithm off (`TCP_NODELAY`).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use gruvi_stream::{Client, Server, Stream};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let server = Server::new(|stream: Rc<Stream>| {
///         for line in &*stream {
///             stream.write_all(&line?.to_ascii_uppercase())?;
///         }
///         Ok(())
///     });
///     server.listen(&"127.0.0.1:0".parse()?)?;
///     let client = Client::new();
///     let stream = client.connect(&server.addresses()[0])?;
///     stream.write_all(b"hello\n")?;
///     assert_eq!(stream.readline(None)?, b"HELLO\n");
///     client.close();
///     server.close()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    inner: Rc<Inner>,
}

/// What the server, its accepting fibers and its connection fibers share.
struct Inner {
    handler: Rc<Handler>,
    max_connections: Cell<Option<usize>>,
    listeners: RefCell<Vec<Rc<Listener>>>,
    acceptors: RefCell<Vec<JoinHandle<()>>>,
    /// The open connections by id, in the order they were accepted.
    connections: RefCell<BTreeMap<u64, Connection>>,
    next_id: Cell<u64>,
    /// Fibers waiting for the last connection to end.
    idle: RefCell<Vec<Callback<()>>>,
}

struct Connection {
    stream: Rc<Stream>,
    fiber: JoinHandle<()>,
}

impl Server {
    /// A server that will run `handler` for each connection; it listens once
    /// [`listen`](Self::listen) is called.
    pub fn new(handler: impl Fn(Rc<Stream>) -> io::Result<()> + 'static) -> Server {
        Server {
            inner: Rc::new(Inner {
                handler: Rc::new(handler),
                max_connections: Cell::new(Some(DEFAULT_MAX_CONNECTIONS)),
                listeners: RefCell::new(Vec::new()),
                acceptors: RefCell::new(Vec::new()),
                connections: RefCell::new(BTreeMap::new()),
                next_id: Cell::new(1),
                idle: RefCell::new(Vec::new()),
            }),
        }
    }

    /// Limits how many connections are served at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]; `None`: no limit, until file descriptors run out).
    /// Connections accepted beyond it are closed at once; the peer reads end of stream or gets
    /// a reset. Lowering it closes no connection already served.
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_stream::{DEFAULT_MAX_CONNECTIONS, Server};
    ///
    /// let server = Server::new(|_stream| Ok(()));
    /// assert_eq!(server.max_connections(), Some(DEFAULT_MAX_CONNECTIONS));
    /// server.set_max_connections(Some(100));
    /// assert_eq!(server.max_connections(), Some(100));
    /// ```
    pub fn set_max_connections(&self, max: Option<usize>) {
        self.inner.max_connections.set(max);
    }

    /// The connection limit (`None`: no limit).
    pub fn max_connections(&self) -> Option<usize> {
        self.inner.max_connections.get()
    }

    /// Starts listening on `addr`: every address a host name resolves to, or a Unix socket
    /// path. May be called again for more addresses.
    ///
    /// # Switchpoint
    ///
    /// Host names are looked up through libuv.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, a lookup error, or the error of spawning the accepting fiber.
    pub fn listen(&self, addr: &Address) -> io::Result<()> {
        for listener in Listener::bind(addr)? {
            let listener = Rc::new(listener);
            let (inner, l) = (self.inner.clone(), listener.clone());
            let name = format!("accept {}", listener.address()?);
            let acceptor = Builder::new()
                .name(name)
                .spawn(move || accept_loop(&inner, &l))?;
            self.inner.listeners.borrow_mut().push(listener);
            self.inner.acceptors.borrow_mut().push(acceptor);
        }
        Ok(())
    }

    /// The addresses listened on, with the ports the system chose for port 0.
    pub fn addresses(&self) -> Vec<Address> {
        let listeners = self.inner.listeners.borrow();
        listeners.iter().filter_map(|l| l.address().ok()).collect()
    }

    /// The open connections, in the order they were accepted.
    pub fn connections(&self) -> Vec<Rc<Stream>> {
        let connections = self.inner.connections.borrow();
        connections.values().map(|c| c.stream.clone()).collect()
    }

    /// Stops accepting, closes every connection (their handlers' pending and later
    /// switchpoints fail) and waits for the handlers to end.
    ///
    /// # Switchpoint
    ///
    /// Waits for the accepting and handler fibers to finish.
    ///
    /// # Errors
    ///
    /// The calling fiber's own cancellation or timeout; the server is stopped anyway.
    pub fn close(&self) -> io::Result<()> {
        self.stop_accepting()?;
        let connections = std::mem::take(&mut *self.inner.connections.borrow_mut());
        for connection in connections.values() {
            connection.stream.close();
            connection.fiber.cancel();
        }
        for (_, connection) in connections {
            // A panic was reported when it happened; the connection is closed either way.
            if let Err(err) = connection.fiber.join()
                && let Some(wait) = err.wait_error()
            {
                return Err(wait.into());
            }
        }
        self.inner.wake_idle();
        Ok(())
    }

    /// Stops accepting, lets the handlers finish on their own for up to `grace`, then closes
    /// what is left as [`close`](Self::close) does.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `grace`, then as [`close`](Self::close).
    ///
    /// # Errors
    ///
    /// As [`close`](Self::close).
    pub fn shutdown(&self, grace: Duration) -> io::Result<()> {
        self.stop_accepting()?;
        let deadline = fiber_core::deadline_after(grace);
        while !self.inner.connections.borrow().is_empty() {
            let sb = SwitchBack::new();
            self.inner.idle.borrow_mut().push(sb.callback());
            let left = deadline.saturating_duration_since(Instant::now());
            match waited(sb.wait_timeout(left), "grace period over") {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::TimedOut => break,
                Err(err) => return Err(err),
            }
        }
        self.close()
    }

    /// Closes the listeners and waits for the accepting fibers to end.
    fn stop_accepting(&self) -> io::Result<()> {
        for listener in self.inner.listeners.take() {
            listener.close();
        }
        for acceptor in self.inner.acceptors.take() {
            if let Err(err) = acceptor.join()
                && let Some(wait) = err.wait_error()
            {
                return Err(wait.into());
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    /// Stops listening and closes the connections, without waiting.
    fn drop(&mut self) {
        for listener in self.inner.listeners.take() {
            listener.close();
        }
        for acceptor in self.inner.acceptors.take() {
            acceptor.cancel();
        }
        let connections = std::mem::take(&mut *self.inner.connections.borrow_mut());
        for connection in connections.values() {
            connection.stream.close();
            connection.fiber.cancel();
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addresses", &self.addresses())
            .field("connections", &self.inner.connections.borrow().len())
            .field("max_connections", &self.max_connections())
            .finish()
    }
}

impl Inner {
    /// Serves a new connection in its own fiber, or closes it when the server is full.
    fn start(self: &Rc<Inner>, stream: Rc<Stream>) {
        let full = self
            .max_connections
            .get()
            .is_some_and(|max| self.connections.borrow().len() >= max);
        if full {
            stream.close();
            return;
        }
        let id = self.next_id.replace(self.next_id.get() + 1);
        let (inner, s) = (self.clone(), stream.clone());
        let spawned = Builder::new().spawn(move || {
            // Runs when the handler returns or panics.
            let _finished = Finished { inner, id };
            let handler = _finished.inner.handler.clone();
            let _ = handler(s);
        });
        match spawned {
            // The fiber runs only after this returns, so it finds its entry.
            Ok(fiber) => {
                let connection = Connection { stream, fiber };
                self.connections.borrow_mut().insert(id, connection);
            }
            Err(_) => stream.close(),
        }
    }

    fn wake_idle(&self) {
        for waiter in self.idle.take() {
            waiter.call(());
        }
    }
}

/// Closes a connection and forgets it when its handler ends, however it ends.
struct Finished {
    inner: Rc<Inner>,
    id: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        let connection = self.inner.connections.borrow_mut().remove(&self.id);
        if let Some(connection) = connection {
            connection.stream.close();
        }
        if self.inner.connections.borrow().is_empty() {
            self.inner.wake_idle();
        }
    }
}

/// Accepts connections until the listener closes or the fiber is cancelled.
fn accept_loop(inner: &Rc<Inner>, listener: &Listener) {
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        match listener.accept() {
            Ok(stream) => {
                backoff = ACCEPT_BACKOFF.0;
                inner.start(stream);
            }
            Err(err) if listener.is_closed() || fiber_core::Error::from_io(&err).is_some() => {
                return;
            }
            // The peer left between the connection and its acceptance: nothing to wait for.
            Err(err) if is_peer_gone(&err) => {}
            // Out of descriptors or memory: give the handlers time to release some.
            Err(_) => {
                if fiber_core::sleep(backoff).is_err() {
                    return;
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }
}

fn is_peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotConnected
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}
