//! HTTP/1.1 on Gruvi fibers: a sans-IO parser and serializer, a server and a client.
//!
//! The core is sans-IO: [`Parser`] turns bytes into request or response heads (parsed by
//! `httparse`), body data and message ends, with RFC 9112 framing (Content-Length, chunked with
//! extensions and trailers, until end of stream) and its request-smuggling defences; every
//! size has a limit ([`Limits`]). Messages are the `http` crate's types (re-exported as
//! [`http`]).
//!
//! On top of it, blocking-style, a fiber per connection while it has a request in progress:
//!
//! - [`Server`] calls a handler for each request in the connection's fiber, with the body as
//!   a streaming [`Incoming`] reader, and sends the returned response's [`Body`] (bytes, a
//!   reader, or a function writing through a [`BodyWriter`]), or fills in a response the
//!   server reuses ([`Server::in_place`]); keep-alive, pipelining,
//!   HEAD/1xx/204/304, `100 Continue`, an error status and a close for bad requests,
//!   timeouts, a connection limit and graceful shutdown. A kept-alive connection waiting for its
//!   next request holds no fiber. [`Workers`] runs one per thread on a
//!   `SO_REUSEPORT` address.
//! - [`Client`] sends requests on one connection (pipelined if wished) and reads responses
//!   with streaming bodies; [`get`] fetches a URL in one call; [`Target`] is what a URL means
//!   to the client.
//!
//! Both run over any [`gruvi_stream::Connection`]: TCP, Unix sockets and TLS. HTTPS is
//! [`ServerConfig::tls`] on the server (each connection's handshake runs in its own fiber,
//! within the TLS handshake timeout) and [`ClientConfig::tls`] with
//! [`Client::connect_tls`], [`Client::connect_target`] or [`get`] on the client (the system
//! trust store by default, the server verified as the URL's host); [`tls_server_builder`] and
//! [`tls_client_builder`] start TLS configurations offering ALPN `http/1.1`. Other wrappings
//! plug in through [`Server::set_connection_wrapper`] and [`Client::connect_with`].
//!
//! # Examples
//!
//! ```
//! use gruvi_http::{Event, Limits, Parser};
//!
//! let mut parser = Parser::requests(Limits::default());
//! let (used, event) = parser.parse(b"GET /hello?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", 4096)?;
//! let Event::Request(head) = event else { panic!("a head") };
//! assert_eq!(used, 46);
//! assert_eq!(head.request.uri().query(), Some("x=1"));
//! assert!(head.keep_alive);
//! # Ok::<(), gruvi_http::Error>(())
//! ```
#![forbid(unsafe_code)]

mod body;
mod client;
mod decoder;
mod encode;
mod error;
mod head;
mod incoming;
mod limits;
mod parser;
mod server;
mod tls;
mod url;
mod wire;

pub use body::{Body, BodyWriter};
pub use client::{Client, ClientConfig, get};
pub use decoder::{BodyDecoder, Decoded};
pub use encode::{encode_chunk, encode_last_chunk};
pub use error::Error;
pub use head::{Framing, RequestHead, ResponseHead, parse_request_head, parse_response_head};
pub use incoming::Incoming;
pub use limits::Limits;
pub use parser::{Event, Parser};
pub use server::{Server, ServerConfig, Workers};
pub use tls::{tls_client_builder, tls_server_builder};
pub use url::Target;

pub use http;
