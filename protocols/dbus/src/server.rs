//! [`Server`]: a peer-to-peer D-Bus server. Clients (`dbus-send --bus=`, `busctl --address=`,
//! `gdbus call --address`, libdbus, sd-bus, GDBus, or a [`Connection`]) connect to its
//! address, authenticate (`EXTERNAL` against the peer's credentials, `ANONYMOUS` if allowed),
//! get an answer to `Hello`, and have their calls dispatched to the exported objects.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::rc::Rc;

use dbus::arg::AppendAll;
use gruvi_stream::{Address, Stream, UnixStream};

use crate::address::{Endpoint, escape, parse_address};
use crate::auth::{Keyring, ServerAuth, random_hex};
use crate::config::Config;
use crate::connection::{Connection, Role};
use crate::error::Error;
use crate::handshake;
use crate::objects::{Interface, Objects};

/// The default limit on connections served at once by a [`Server`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// What the server and the server side of each of its connections share.
pub(crate) struct ServerShared {
    guid: String,
    config: Config,
    objects: Rc<Objects>,
    pub(crate) require_hello: bool,
    allow_anonymous: bool,
    cookie_sha1: Option<Keyring>,
    next_name: Cell<u64>,
    next_id: Cell<u64>,
    connections: RefCell<BTreeMap<u64, Connection>>,
    on_connect: RefCell<Option<OnConnect>>,
}

/// Called with each new connection.
type OnConnect = Rc<dyn Fn(&Connection)>;

impl ServerShared {
    /// The next unique name given in answer to `Hello`: `:1.1`, `:1.2`, ...
    pub(crate) fn next_unique_name(&self) -> String {
        let n = self.next_name.get() + 1;
        self.next_name.set(n);
        format!(":1.{n}")
    }
}

/// A peer-to-peer D-Bus server (Gruvi's `DbusServer`, made to work with the standard tools).
///
/// Each connection is authenticated, then must start with a `Hello` call (unless
/// [`ServerBuilder::require_hello`] turned that off), which gets a unique name `:1.N`.
/// Method calls go to the objects exported with [`export`](Self::export), answered as a bus
/// would (`UnknownObject`, `UnknownMethod`, `InvalidArgs`, introspection, properties).
/// `AddMatch`/`RemoveMatch` are accepted; [`emit_signal`](Self::emit_signal) sends a signal to
/// every connected peer.
///
/// # Examples
///
/// ```
/// use gruvi_dbus::{Config, Connection, Interface, Server};
///
/// fiber_core::run(|| -> Result<(), gruvi_dbus::Error> {
///     let server = Server::new();
///     server.export(
///         "/com/example/Echo",
///         Interface::new("com.example.Echo")
///             .method("Echo", ("text",), ("text",), |_, (text,): (String,)| Ok((text,))),
///     )?;
///     let dir = tempfile::tempdir().unwrap();
///     let address = server.listen(&format!("unix:dir={}", dir.path().display()))?;
///     let client = Connection::connect(&address)?; // authenticates and says Hello
///     assert!(client.unique_name().unwrap().starts_with(":1."));
///     let (echo,): (String,) = client.call_method(
///         "", "/com/example/Echo", "com.example.Echo", "Echo", ("hi",))?;
///     assert_eq!(echo, "hi");
///     client.close();
///     server.close()
/// })?;
/// # Ok::<(), gruvi_dbus::Error>(())
/// ```
pub struct Server {
    shared: Rc<ServerShared>,
    streams: gruvi_stream::Server,
    addresses: RefCell<Vec<String>>,
}

/// Options of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    config: Config,
    require_hello: bool,
    allow_anonymous: bool,
    cookie_sha1: Option<Keyring>,
    max_connections: Option<usize>,
}

impl Default for ServerBuilder {
    fn default() -> ServerBuilder {
        ServerBuilder {
            config: Config::default(),
            require_hello: true,
            allow_anonymous: false,
            cookie_sha1: None,
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
        }
    }
}

impl ServerBuilder {
    /// The connections' limits and timeouts.
    pub fn config(mut self, config: Config) -> ServerBuilder {
        self.config = config;
        self
    }

    /// Whether the first message must be `Hello` (default: yes; a client that sends
    /// something else first is disconnected). Off, `Hello` is still answered.
    pub fn require_hello(mut self, require: bool) -> ServerBuilder {
        self.require_hello = require;
        self
    }

    /// Whether `ANONYMOUS` authentication is accepted (default: no). TCP clients have no
    /// credentials, so they need it.
    pub fn allow_anonymous(mut self, allow: bool) -> ServerBuilder {
        self.allow_anonymous = allow;
        self
    }

    /// Whether `DBUS_COOKIE_SHA1` authentication is offered, with cookies of `keyring`
    /// (default: no). It lets a TCP client that runs as this process's user prove it: it
    /// reads the cookie this server writes there, so give the directory the clients use:
    /// `.dbus-keyrings` in the home directory, which libdbus (`dbus-send`) takes from the
    /// password database and GLib (`gdbus`) and [`Keyring::default_dir`] from `$HOME`; the
    /// two differ only where `$HOME` was changed. See [`ServerAuth::cookie_sha1`].
    pub fn cookie_sha1(mut self, keyring: Option<Keyring>) -> ServerBuilder {
        self.cookie_sha1 = keyring;
        self
    }

    /// How many connections are served at once (default [`DEFAULT_MAX_CONNECTIONS`];
    /// `None`: no limit). Connections past it are closed at once.
    pub fn max_connections(mut self, max: Option<usize>) -> ServerBuilder {
        self.max_connections = max;
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        let shared = Rc::new(ServerShared {
            guid: random_hex(),
            config: self.config,
            objects: Rc::new(Objects::default()),
            require_hello: self.require_hello,
            allow_anonymous: self.allow_anonymous,
            cookie_sha1: self.cookie_sha1,
            next_name: Cell::new(0),
            next_id: Cell::new(0),
            connections: RefCell::new(BTreeMap::new()),
            on_connect: RefCell::new(None),
        });
        let s = shared.clone();
        let streams = gruvi_stream::Server::new(move |stream| serve(&s, stream));
        streams.set_max_connections(self.max_connections);
        Server {
            shared,
            streams,
            addresses: RefCell::new(Vec::new()),
        }
    }
}

impl Server {
    /// A server with the default options (see [`ServerBuilder`]).
    pub fn new() -> Server {
        ServerBuilder::default().build()
    }

    /// Options for a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The server's GUID (sent to clients with `OK`, and in its addresses).
    pub fn guid(&self) -> &str {
        &self.shared.guid
    }

    /// Exports `interface` at `path` for every connection, present and future.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad path or interface name.
    pub fn export(&self, path: &str, interface: Interface) -> Result<(), Error> {
        self.shared.objects.export(path, interface)
    }

    /// Calls `f` with each new connection once it is authenticated.
    pub fn on_connect(&self, f: impl Fn(&Connection) + 'static) {
        *self.shared.on_connect.borrow_mut() = Some(Rc::new(f));
    }

    /// Listens on a D-Bus address: `unix:path=`, `unix:abstract=`, `unix:dir=` or
    /// `unix:tmpdir=` (a fresh socket in that directory), `tcp:host=,port=` (port 0: any).
    /// Every entry of the address is listened on. Returns the address for clients, with the
    /// actual socket names and ports and the server's GUID.
    ///
    /// # Switchpoint
    ///
    /// Host names are looked up through libuv.
    ///
    /// # Errors
    ///
    /// [`Error::Address`] for a bad address, [`Error::Io`] when binding fails.
    pub fn listen(&self, address: &str) -> Result<String, Error> {
        let mut listened = Vec::new();
        for entry in parse_address(address)? {
            let target = match entry.endpoint {
                Endpoint::Tcp { host, port } => Address::Tcp(host, port),
                Endpoint::UnixDir(dir) => {
                    Address::Unix(dir.join(format!("dbus-{}", &random_hex()[..12])))
                }
                other => Address::Unix(other.unix_socket_path().expect("a Unix socket")),
            };
            let before = self.streams.addresses().len();
            self.streams.listen(&target)?;
            for bound in &self.streams.addresses()[before..] {
                listened.push(format!(
                    "{},guid={}",
                    address_string(bound),
                    self.shared.guid
                ));
            }
        }
        self.addresses.borrow_mut().extend(listened.iter().cloned());
        Ok(listened.join(";"))
    }

    /// Every address listened on, with the GUID, as clients use them.
    pub fn addresses(&self) -> Vec<String> {
        self.addresses.borrow().clone()
    }

    /// The authenticated connections, oldest first.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared.connections.borrow().values().cloned().collect()
    }

    /// Sends a signal from the object at `path` to every connected peer.
    ///
    /// # Switchpoint
    ///
    /// Blocks while a peer's send queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad path, interface or name. Peers that went away are
    /// skipped.
    pub fn emit_signal<A: AppendAll + Clone>(
        &self,
        path: &str,
        interface: &str,
        name: &str,
        args: A,
    ) -> Result<(), Error> {
        crate::message::signal(path, interface, name)?;
        for connection in self.connections() {
            match connection.emit_signal(path, interface, name, args.clone()) {
                Ok(()) | Err(Error::Disconnected(_) | Error::Io(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Stops listening, closes every connection and waits for their fibers to end.
    ///
    /// # Switchpoint
    ///
    /// Waits for the connections' fibers.
    ///
    /// # Errors
    ///
    /// The calling fiber's cancellation.
    pub fn close(&self) -> Result<(), Error> {
        let connections = std::mem::take(&mut *self.shared.connections.borrow_mut());
        for connection in connections.values() {
            connection.close();
        }
        Ok(self.streams.close()?)
    }
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("guid", &self.shared.guid)
            .field("addresses", &self.addresses.borrow())
            .field("connections", &self.shared.connections.borrow().len())
            .finish()
    }
}

/// The D-Bus address of a socket the stream server listens on.
fn address_string(address: &Address) -> String {
    match address {
        Address::Tcp(host, port) => Endpoint::Tcp {
            host: host.clone(),
            port: *port,
        }
        .to_string(),
        Address::Unix(path) => {
            let bytes = path.as_os_str().as_encoded_bytes();
            match bytes.strip_prefix(b"\0") {
                Some(name) => format!("unix:abstract={}", escape(name)),
                None => format!("unix:path={}", escape(bytes)),
            }
        }
    }
}

/// One client: authenticate, then run the connection until it closes.
fn serve(shared: &Rc<ServerShared>, stream: Rc<Stream>) -> io::Result<()> {
    let config = &shared.config;
    let peer_uid = stream
        .connection()
        .as_any()
        .downcast_ref::<UnixStream>()
        .and_then(|unix| unix.peer_cred().ok())
        .map(|cred| cred.uid);
    let auth = ServerAuth::new(&shared.guid, peer_uid)
        .allow_anonymous(shared.allow_anonymous)
        .cookie_sha1(shared.cookie_sha1.clone())
        .max_rejects(config.max_auth_rejects);
    // On failure the stream server closes the connection when this returns.
    let uid = handshake::server(&stream, auth, config.max_auth_line, config.auth_timeout)?;
    let connection = Connection::start(
        stream,
        config.clone(),
        shared.guid.clone(),
        Role::Server(shared.clone()),
        uid,
        shared.objects.clone(),
    )?;
    let id = shared.next_id.get() + 1;
    shared.next_id.set(id);
    shared
        .connections
        .borrow_mut()
        .insert(id, connection.clone());
    let _forget = Forget(shared, id);
    let on_connect = shared.on_connect.borrow().clone();
    if let Some(on_connect) = on_connect {
        on_connect(&connection);
    }
    let result = connection.wait_closed();
    connection.close();
    result.map(drop).map_err(io::Error::from)
}

/// Drops a connection from the server's list when its fiber ends.
struct Forget<'a>(&'a ServerShared, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.connections.borrow_mut().remove(&self.1);
    }
}
