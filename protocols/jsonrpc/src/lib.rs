//! JSON-RPC 1.0 and 2.0 on Gruvi fibers (Gruvi's `gruvi.jsonrpc`): back-to-back JSON values on
//! any byte stream (TCP, Unix sockets, TLS), bidirectional peers, a server and a client.
//!
//! - The wire part is sans-IO: [`Splitter`] frames the byte stream (linear, with size and
//!   depth limits), [`parse`] and [`classify`] apply each version's rules, and [`Request`] /
//!   [`Response`] write themselves in either version.
//! - A [`Peer`] runs one connection: calls in both directions (`peer.call::<i64>("add",
//!   (1, 2))`), notifications, 2.0 batches ([`Batch`]), answers by a [`Handler`] ([`Methods`]
//!   is a registry of typed methods) in a bounded pool of fibers per connection. Every limit
//!   is in [`Config`].
//! - [`Server`] serves a handler on TCP and Unix addresses, over TLS with
//!   [`Server::with_tls`]; [`connect`] and [`connect_tls`] make a client peer; [`serve`] runs
//!   a server-side peer on any other connection.
//!
//! # Examples
//!
//! ```
//! use gruvi_jsonrpc::{Config, Methods, Server, connect};
//!
//! fiber_core::run(|| -> Result<(), Box<dyn std::error::Error>> {
//!     let mut methods = Methods::new();
//!     methods.add("subtract", |_peer, (a, b): (i64, i64)| Ok(a - b));
//!     let server = Server::new(methods, Config::default());
//!     server.listen(&"127.0.0.1:0".parse()?)?;
//!     let client = connect(&server.addresses()[0], Methods::new(), Config::default())?;
//!     assert_eq!(client.call::<i64>("subtract", (42, 23))?, 19);
//!     client.close();
//!     server.close()?;
//!     Ok(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod batch;
mod calls;
mod config;
mod encode;
mod endpoints;
mod error;
mod handler;
mod handling;
mod message;
mod outbox;
mod peer;
mod reader;
mod rules;
mod splitter;
mod workers;

pub use batch::Batch;
pub use config::{
    Config, DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_BATCH, DEFAULT_MESSAGE_TIMEOUT, DEFAULT_WRITE_TIMEOUT,
};
pub use endpoints::{
    DEFAULT_MAX_CONNECTIONS, Server, connect, connect_tls, connect_tls_with_name, serve,
};
pub use error::{
    Error, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, MESSAGE_TIMEOUT, MESSAGE_TOO_LARGE,
    METHOD_NOT_FOUND, PARSE_ERROR, RpcError, SERVER_ERROR, strerror,
};
pub use handler::{Handler, Methods};
pub use message::{Id, Message, Params, Request, Response, Version};
pub use peer::Peer;
pub use rules::{Incoming, Invalid, classify, parse};
pub use serde_json::Value;
pub use splitter::{
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_SIZE, MAX_DEPTH_LIMIT, SplitError, Splitter,
};
