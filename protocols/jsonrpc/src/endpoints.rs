//! [`Server`] and [`connect`]: JSON-RPC peers on listening and connecting endpoints.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use gruvi_stream::{Address, DEFAULT_CONNECT_TIMEOUT, Stream};
use gruvi_tls::{ClientConfig, ServerConfig};

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
/// [`Server::with_tls`] makes a server speaking TLS on every address it listens on.
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
    ///
    /// # Panics
    ///
    /// As [`Peer::new`], for a `config` no peer can run with (`max_depth` 0 or above
    /// [`MAX_DEPTH_LIMIT`](crate::MAX_DEPTH_LIMIT), `max_message_size` 0): here, rather than
    /// in the fiber of each connection.
    pub fn new(handler: impl Handler, config: Config) -> Server {
        let (serve, peers) = per_connection(Rc::new(handler), config);
        Server::wrap(gruvi_stream::Server::new(serve), peers)
    }

    /// A server answering with `handler` over TLS only: each connection's handshake runs in
    /// the connection's own fiber, limited by `tls`'s handshake timeout (a silent client never
    /// holds up the others), before its [`Peer`] starts; a failed handshake closes the
    /// connection. The connection limit, [`peers`](Self::peers), [`close`](Self::close) and
    /// [`shutdown`](Self::shutdown) work as without TLS. See [`gruvi_tls::server`].
    ///
    /// A handler finds the TLS details (ALPN, the client's certificate) through
    /// `peer.stream().connection().as_any().downcast_ref::<gruvi_tls::TlsStream>()`.
    ///
    /// # Examples
    ///
    /// A server and a client on one thread (the certificate is made on the spot):
    ///
    /// ```
    /// # fn pems() -> (Vec<u8>, Vec<u8>) {
    /// #     use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509::*};
    /// #     use openssl::x509::extension::SubjectAlternativeName;
    /// #     let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    /// #     let mut name = X509NameBuilder::new().unwrap();
    /// #     name.append_entry_by_text("CN", "localhost").unwrap();
    /// #     let name = name.build();
    /// #     let mut b = X509Builder::new().unwrap();
    /// #     b.set_version(2).unwrap();
    /// #     b.set_subject_name(&name).unwrap();
    /// #     b.set_issuer_name(&name).unwrap();
    /// #     b.set_pubkey(&key).unwrap();
    /// #     b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    /// #     b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
    /// #     let san = SubjectAlternativeName::new().ip("127.0.0.1").build(&b.x509v3_context(None, None)).unwrap();
    /// #     b.append_extension(san).unwrap();
    /// #     b.sign(&key, MessageDigest::sha256()).unwrap();
    /// #     (b.build().to_pem().unwrap(), key.private_key_to_pem_pkcs8().unwrap())
    /// # }
    /// use gruvi_jsonrpc::{Config, Methods, Server, connect_tls};
    /// use gruvi_tls::{CertifiedKey, ClientConfig, ServerConfig};
    ///
    /// let (cert, key) = pems(); // a self-signed certificate for 127.0.0.1
    /// fiber_core::run(|| -> Result<(), Box<dyn std::error::Error>> {
    ///     let tls = ServerConfig::builder(CertifiedKey::from_pem(&cert, &key)?).build()?;
    ///     let mut methods = Methods::new();
    ///     methods.add("add", |_peer, (a, b): (i64, i64)| Ok(a + b));
    ///     let server = Server::with_tls(methods, Config::default(), tls);
    ///     server.listen(&"127.0.0.1:0".parse()?)?;
    ///     let tls = ClientConfig::builder().add_ca_pem(&cert).build()?;
    ///     let addr = &server.addresses()[0];
    ///     let client = connect_tls(addr, &tls, Methods::new(), Config::default())?;
    ///     assert_eq!(client.call::<i64>("add", (1, 2))?, 3);
    ///     client.close();
    ///     server.close()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn with_tls(handler: impl Handler, config: Config, tls: ServerConfig) -> Server {
        let (serve, peers) = per_connection(Rc::new(handler), config);
        Server::wrap(gruvi_tls::server(tls, serve), peers)
    }

    fn wrap(server: gruvi_stream::Server, peers: Peers) -> Server {
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

/// What a server runs in each connection's fiber (after the TLS handshake, with TLS), and the
/// register of the peers it runs.
fn per_connection(
    handler: Rc<dyn Handler>,
    config: Config,
) -> (impl Fn(Rc<Stream>) -> io::Result<()> + 'static, Peers) {
    // The limits a peer checks, checked once here: a bad config fails when the server is
    // made, not once per connection in its fiber.
    let _ = crate::splitter::Splitter::new(config.max_message_size, config.max_depth);
    let peers: Peers = Rc::default();
    let (p, next_id) = (peers.clone(), Cell::new(0u64));
    let serve = move |stream: Rc<Stream>| {
        let peer = Peer::with_handler(stream, handler.clone(), config.clone())?;
        let id = next_id.replace(next_id.get() + 1);
        p.borrow_mut().insert(id, peer.handle());
        let _forget = Forget(p.clone(), id);
        // Cancelled when the server closes; dropping the peer closes the connection.
        peer.join()?;
        Ok(())
    };
    (serve, peers)
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server", &self.server)
            .finish()
    }
}

/// Runs a [`Peer`] on `stream` with `handler` until the connection closes, then closes it:
/// what a [`Server`] does for each connection. A server on another kind of connection calls
/// this in its per-connection fiber.
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

/// Connects to `addr` (a TCP host and port) over TLS, verifying the server's certificate for
/// the address's host as `tls` says, and runs a [`Peer`] on the connection once the handshake
/// is done, answering the server's requests with `handler`. The connect and handshake
/// timeouts are `tls`'s. See [`gruvi_tls::connect`].
///
/// # Switchpoint
///
/// Blocks the fiber for the lookup, the connection and the handshake.
///
/// # Errors
///
/// As [`connect`], and the handshake's errors ([`gruvi_tls::TlsError`] inside the
/// `io::Error`: `TlsError::from_io(&err)`), such as a certificate that does not verify;
/// `InvalidInput` for a Unix socket address (it names no host: use
/// [`connect_tls_with_name`]).
///
/// # Examples
///
/// ```no_run
/// use gruvi_jsonrpc::{Config, Methods, connect_tls};
/// use gruvi_tls::ClientConfig;
///
/// fiber_core::run(|| -> Result<(), Box<dyn std::error::Error>> {
///     let tls = ClientConfig::builder().add_ca_file("ca.pem").build()?;
///     let peer = connect_tls(&"localhost:7443".parse()?, &tls, Methods::new(), Config::default())?;
///     println!("{}", peer.call::<i64>("add", (1, 2))?);
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect_tls(
    addr: &Address,
    tls: &ClientConfig,
    handler: impl Handler,
    config: Config,
) -> io::Result<Peer> {
    if let Address::Unix(_) = addr {
        // gruvi_tls::connect would name its own function.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a Unix socket address names no host to verify: use connect_tls_with_name",
        ));
    }
    let stream = gruvi_tls::connect(addr, tls)?;
    Peer::new(stream, handler, config)
}

/// As [`connect_tls`], verifying the server as `server_name` (also sent as SNI unless it is
/// an IP address) whatever the address: for a Unix socket, or a server known by another name.
///
/// # Switchpoint
///
/// As [`connect_tls`].
///
/// # Errors
///
/// As [`connect_tls`].
pub fn connect_tls_with_name(
    addr: &Address,
    server_name: &str,
    tls: &ClientConfig,
    handler: impl Handler,
    config: Config,
) -> io::Result<Peer> {
    let stream = gruvi_tls::connect_with_name(addr, server_name, tls)?;
    Peer::new(stream, handler, config)
}
