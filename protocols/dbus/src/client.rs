//! Connecting: resolve `session`/`system`, try each entry of an address in order,
//! authenticate, and say `Hello` to a bus.

use std::rc::Rc;

use gruvi_stream::{Address, Stream};

use crate::address::{AddressEntry, Endpoint, bus_address, parse_address};
use crate::auth::ClientAuth;
use crate::bus::{BUS_NAME, BUS_PATH};
use crate::config::Config;
use crate::connection::{Connection, Role};
use crate::error::Error;
use crate::handshake;
use crate::objects::Objects;

impl Connection {
    /// Connects to a message bus: `session`, `system`, or an address string (entries
    /// separated by `;` are tried in order), authenticates, and says `Hello`, which gives the
    /// connection its [`unique_name`](Self::unique_name).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the connection, the authentication and `Hello`.
    ///
    /// # Errors
    ///
    /// [`Error::Address`] for a bad address or when no entry could be connected to (with
    /// each entry's error), a cancelled fiber's error.
    pub fn connect(address: &str) -> Result<Connection, Error> {
        Connection::connect_with(address, Config::default())
    }

    /// [`connect`](Self::connect) with a configuration.
    ///
    /// # Switchpoint
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_with(address: &str, config: Config) -> Result<Connection, Error> {
        open(address, config, true)
    }

    /// Connects to a peer (a [`Server`](crate::Server) or another peer-to-peer server)
    /// without saying `Hello`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for the connection and the authentication.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_peer(address: &str, config: Config) -> Result<Connection, Error> {
        open(address, config, false)
    }

    /// Connects to the session bus (`$DBUS_SESSION_BUS_ADDRESS`).
    ///
    /// # Switchpoint
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`Error::Address`] when the variable is not set.
    pub fn session() -> Result<Connection, Error> {
        Connection::connect("session")
    }

    /// Connects to the system bus.
    ///
    /// # Switchpoint
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn system() -> Result<Connection, Error> {
        Connection::connect("system")
    }
}

fn open(address: &str, config: Config, hello: bool) -> Result<Connection, Error> {
    let entries = parse_address(&bus_address(address)?)?;
    let mut failures = Vec::new();
    for entry in &entries {
        match open_entry(entry, &config, hello) {
            Ok(connection) => return Ok(connection),
            // A cancelled or timed-out fiber stops here; other failures try the next entry.
            Err(Error::Io(err)) if fiber_core::Error::from_io(&err).is_some() => {
                return Err(Error::Io(err));
            }
            Err(err) => failures.push(format!("{}: {err}", entry.endpoint)),
        }
    }
    Err(Error::Address(format!(
        "could not connect to any address ({})",
        failures.join("; ")
    )))
}

fn open_entry(entry: &AddressEntry, config: &Config, hello: bool) -> Result<Connection, Error> {
    let target = match &entry.endpoint {
        Endpoint::Tcp { host, port } => Address::Tcp(host.clone(), *port),
        Endpoint::UnixDir(_) => {
            return Err(Error::Address(
                "unix:dir= and unix:tmpdir= are for listening".into(),
            ));
        }
        other => Address::Unix(other.unix_socket_path().expect("a Unix socket")),
    };
    let stream: Rc<Stream> = gruvi_stream::connect(&target, Some(config.connect_timeout))?;
    let mut auth = ClientAuth::new(&config.mechanisms).negotiate_unix_fd(config.negotiate_unix_fd);
    if let Some(keyring) = &config.keyring {
        auth = auth.keyring(keyring.clone());
    }
    let outcome = handshake::client(&stream, auth, config.max_auth_line, config.auth_timeout);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            stream.close();
            return Err(err);
        }
    };
    if let Some(guid) = &entry.guid
        && !guid.eq_ignore_ascii_case(&outcome.guid)
    {
        stream.close();
        return Err(Error::Auth(format!(
            "the server's GUID {} is not the address' {guid}",
            outcome.guid
        )));
    }
    let connection = Connection::start(
        stream,
        config.clone(),
        outcome.guid,
        Role::Client,
        None,
        Rc::new(Objects::default()),
    )?;
    if hello {
        let (name,): (String,) =
            connection.call_method(BUS_NAME, BUS_PATH, BUS_NAME, "Hello", ())?;
        *connection.inner.unique_name.borrow_mut() = Some(name);
    }
    Ok(connection)
}
