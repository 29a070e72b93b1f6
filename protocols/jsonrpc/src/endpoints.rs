//! [`Server`] and [`connect`]: JSON-RPC peers on listening and connecting endpoints.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use gruvi_stream::{Address, DEFAULT_CONNECT_TIMEOUT, Stream};

use crate::config::Config;
use crate::handler::Handler;
use crate::peer::Peer;

/// How many connections a [`Server`] serves at once by default (as Gruvi's `JsonRpcServer`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// A JSON-RPC server (Gruvi's `JsonRpcServer`): a [`Peer`] per connection, all answering with
/// one handler. Connections beyond [`max_connections`](Self::set_max_connections) (default
/// [`DEFAULT_MAX_CONNECTIONS`]) are closed as soon as they are accepted.
///
/// Handlers get the connection's [`Peer`], so they can call back into the client or notify it.
/// For TLS, wrap each accepted connection in a TLS stream and hand it to
/// [`Peer::with_handler`]; `Peer` takes any `Stream<dyn Connection>`.
///
/// # Examples
///
/// ```
/// use gruvi_jsonrpc::{Config, Methods, Server, connect};
///
/// fiber_core::run(|| -> Result<(), Box<dyn std::error::Error>> {
///     let mut methods = Methods::new();
///     methods.add("hello", |_peer, (name,): (String,)| Ok(format!("hello {name}")));
///     let server = Server::new(methods, Config::default());
///     server.listen(&"127.0.0.1:0".parse()?)?;
///     let client = connect(&server.addresses()[0], Methods::new(), Config::default())?;
///     assert_eq!(client.call::<String>("hello", ("fibers",))?, "hello fibers");
///     server.close()?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    server: gruvi_stream::Server,
    peers: Peers,
}

/// The peers of a server's open connections, in the order they were accepted.
type Peers = Rc<RefCell<BTreeMap<u64, Peer>>>;

/// Forgets a connection's peer when its fiber ends, however it ends.
struct Forget(Peers, u64);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.borrow_mut().remove(&self.1);
    }
}

impl Server {
    /// A server answering with `handler`; it listens once [`listen`](Self::listen) is called.
    pub fn new(handler: impl Handler, config: Config) -> Server {
        let handler: Rc<dyn Handler> = Rc::new(handler);
        let peers: Peers = Rc::default();
        let (p, next_id) = (peers.clone(), Cell::new(0u64));
        let server = gruvi_stream::Server::new(move |stream: Rc<Stream>| {
            let peer = Peer::with_handler(stream, handler.clone(), config.clone())?;
            let id = next_id.replace(next_id.get() + 1);
            p.borrow_mut().insert(id, peer.handle());
            let _forget = Forget(p.clone(), id);
            // Cancelled when the server closes; dropping the peer closes the connection.
            peer.join()?;
            Ok(())
        });
        server.set_max_connections(Some(DEFAULT_MAX_CONNECTIONS));
        Server { server, peers }
    }

    /// Limits how many connections are served at once (`None`: no limit).
    pub fn set_max_connections(&self, max: Option<usize>) {
        self.server.set_max_connections(max);
    }

    /// The connection limit.
    pub fn max_connections(&self) -> Option<usize> {
        self.server.max_connections()
    }

    /// Starts listening on `addr` (a TCP host and port, every address of a host name, or a
    /// Unix socket path).
    ///
    /// # Switchpoint
    ///
    /// Host names are looked up through libuv.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, a lookup error.
    pub fn listen(&self, addr: &Address) -> io::Result<()> {
        self.server.listen(addr)
    }

    /// The addresses listened on, with the ports the system chose for port 0.
    pub fn addresses(&self) -> Vec<Address> {
        self.server.addresses()
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.server.connections().len()
    }

    /// The peers of the open connections, in the order they were accepted: to notify or call
    /// every client. The handles do not keep their connections open.
    pub fn peers(&self) -> Vec<Peer> {
        self.peers.borrow().values().cloned().collect()
    }

    /// Stops accepting, closes every connection and waits for their fibers.
    ///
    /// # Switchpoint
    ///
    /// Waits for the connection fibers to end.
    ///
    /// # Errors
    ///
    /// The calling fiber's cancellation or timeout.
    pub fn close(&self) -> io::Result<()> {
        self.server.close()
    }

    /// Stops accepting, lets the connections end on their own for up to `grace`, then closes
    /// the rest.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `grace`, then as [`close`](Self::close).
    ///
    /// # Errors
    ///
    /// As [`close`](Self::close).
    pub fn shutdown(&self, grace: Duration) -> io::Result<()> {
        self.server.shutdown(grace)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server", &self.server)
            .finish()
    }
}

/// Runs a [`Peer`] on `stream` with `handler` until the connection closes, then closes it:
/// what a [`Server`] does for each connection. A server on another kind of connection (TLS:
/// accept, handshake, wrap the TLS stream in a [`Stream`]) calls this in its per-connection
/// fiber.
///
/// # Switchpoint
///
/// Blocks the fiber until the connection closes.
///
/// # Errors
///
/// Spawning the peer's fibers failed, or this fiber was cancelled (the connection is closed
/// then too).
pub fn serve(stream: Rc<Stream>, handler: Rc<dyn Handler>, config: Config) -> io::Result<()> {
    let peer = Peer::with_handler(stream, handler, config)?;
    // Cancelled when the server closes; dropping the peer closes the connection.
    peer.join()?;
    Ok(())
}

/// Connects to `addr` (TCP or a Unix socket path, within [`DEFAULT_CONNECT_TIMEOUT`]) and runs
/// a [`Peer`] on the connection, answering the server's requests with `handler`.
///
/// # Switchpoint
///
/// Blocks the fiber for the lookup and the connection.
///
/// # Errors
///
/// `ConnectionRefused`, `NotFound`, `TimedOut`, or spawning the peer's fibers failed.
pub fn connect(addr: &Address, handler: impl Handler, config: Config) -> io::Result<Peer> {
    let stream = gruvi_stream::connect(addr, Some(DEFAULT_CONNECT_TIMEOUT))?;
    Peer::new(stream, handler, config)
}
