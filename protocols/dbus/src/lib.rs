//! D-Bus on Gruvi fibers: a client [`Connection`] to a message bus or a peer, exported
//! objects ([`Interface`]), signals ([`Subscription`]), and a peer-to-peer [`Server`] that
//! `dbus-send`, `busctl` and `gdbus` can talk to directly.
//!
//! Messages are the `dbus` crate's [`Message`] (marshalled and demarshalled by libdbus);
//! framing, SASL authentication (client: `EXTERNAL`, `DBUS_COOKIE_SHA1`, `ANONYMOUS`; server:
//! `EXTERNAL` checked against `SO_PEERCRED`, `DBUS_COOKIE_SHA1` when given a keyring,
//! `ANONYMOUS`), serial matching, dispatch and the
//! server are this crate's, on `gruvi-stream`'s streams. Every blocking call blocks only the
//! calling fiber.
//!
//! # Examples
//!
//! A peer-to-peer server and a client calling it:
//!
//! ```
//! use gruvi_dbus::{Connection, Interface, MethodError, Server};
//!
//! fiber_core::run(|| -> Result<(), gruvi_dbus::Error> {
//!     let server = Server::new();
//!     server.export(
//!         "/com/example/Calc",
//!         Interface::new("com.example.Calc").method(
//!             "Add",
//!             ("a", "b"),
//!             ("sum",),
//!             |_call, (a, b): (i32, i32)| Ok((a + b,)),
//!         ),
//!     )?;
//!     let dir = tempfile::tempdir().unwrap();
//!     let address = server.listen(&format!("unix:dir={}", dir.path().display()))?;
//!
//!     let client = Connection::connect(&address)?;
//!     let (sum,): (i32,) =
//!         client.call_method("", "/com/example/Calc", "com.example.Calc", "Add", (2, 3))?;
//!     assert_eq!(sum, 5);
//!     let err = client
//!         .call_method::<_, ()>("", "/com/example/Calc", "com.example.Calc", "Sub", (2, 3))
//!         .unwrap_err();
//!     assert_eq!(err.name(), Some("org.freedesktop.DBus.Error.UnknownMethod"));
//!     client.close();
//!     server.close()
//! })?;
//! # Ok::<(), gruvi_dbus::Error>(())
//! ```
//!
//! A client of the session bus: bus methods, a call with typed arguments and reply, and
//! signals received with a blocking `recv`:
//!
//! ```no_run
//! use std::time::Duration;
//! use gruvi_dbus::{Connection, Error};
//!
//! fiber_core::run(|| -> Result<(), Error> {
//!     let bus = Connection::session()?; // $DBUS_SESSION_BUS_ADDRESS, Hello
//!     println!("I am {}", bus.unique_name().unwrap());
//!     println!("names: {:?}", bus.list_names()?);
//!     let changes = bus.add_match(
//!         "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'",
//!     )?;
//!     bus.request_name("com.example.Gruvi", 0)?;
//!     let change = changes.recv_timeout(Duration::from_secs(5))?;
//!     let (name, _old, new): (String, String, String) = change.read3().unwrap();
//!     println!("{name} is now owned by {new}");
//!     // Errors come back typed, with the D-Bus error name.
//!     let err = bus
//!         .call_method::<_, ()>("org.freedesktop.DBus", "/", "org.freedesktop.DBus", "Nope", ())
//!         .unwrap_err();
//!     assert_eq!(err.name(), Some("org.freedesktop.DBus.Error.UnknownMethod"));
//!     Ok(())
//! })?;
//! # Ok::<(), Error>(())
//! ```
#![forbid(unsafe_code)]

mod address;
pub mod auth;
mod bus;
mod calls;
mod client;
mod config;
mod connection;
mod dispatch;
mod error;
mod framing;
mod handshake;
mod introspection;
mod match_rule;
mod message;
mod objects;
mod outbox;
mod server;
mod signals;

pub use address::{AddressEntry, DEFAULT_SYSTEM_BUS_ADDRESS, Endpoint, bus_address, parse_address};
pub use bus::{
    BUS_NAME, BUS_PATH, NAME_FLAG_ALLOW_REPLACEMENT, NAME_FLAG_DO_NOT_QUEUE,
    NAME_FLAG_REPLACE_EXISTING, ReleaseNameReply, RequestNameReply,
};
pub use config::{
    Config, DEFAULT_CALL_TIMEOUT, DEFAULT_CLOSE_FLUSH_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MESSAGE_TIMEOUT, DEFAULT_WRITE_BUFFER_LIMIT, DEFAULT_WRITE_TIMEOUT,
};
pub use connection::Connection;
pub use error::{Error, MethodError, names};
pub use framing::{DEFAULT_MAX_MESSAGE_SIZE, SPEC_MAX_MESSAGE_SIZE};
pub use message::{method_call, signal};
pub use objects::{Interface, MethodCall};
pub use server::{DEFAULT_MAX_CONNECTIONS, Server, ServerBuilder};
pub use signals::Subscription;

/// The `dbus` crate, whose message and argument types this crate uses.
pub use dbus;
pub use dbus::{Message, MessageType};
