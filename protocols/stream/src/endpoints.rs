//! Endpoints (Gruvi's `endpoints` module): a [`Server`] that runs a handler fiber per
//! connection on one or more addresses, and a [`Client`] that connects with a timeout. Both
//! hand out [`Stream`](crate::Stream)s over any [`Connection`](crate::Connection), which is
//! where TLS plugs in.

mod client;
mod listener;
mod server;

pub use client::{Client, DEFAULT_CONNECT_TIMEOUT, connect};
pub use server::{DEFAULT_MAX_CONNECTIONS, Server};
