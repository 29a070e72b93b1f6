//! Gruvi for Rust: fibers on libuv with blocking-style network protocols.
//!
//! Users write plain sequential code in cheap fibers while one libuv event loop per thread
//! multiplexes all I/O underneath. This crate is the facade over the layers:
//!
//! - [`uv`] (crate `uv-sys-wrap`): a thin, safe, callback-style wrapper over libuv: loops,
//!   handles (timers, TCP, pipes, UDP, TTYs, signals, processes...) and requests.
//! - [`fiber`] (crate `fiber-core`): fibers, the Hub and switchpoints: blocking-style code on
//!   cheap stackful fibers, scheduled by one Hub per thread that owns the libuv loop.
//! - [`stream`] (crate `gruvi-stream`): TCP, Unix sockets, UDP and TTYs with std's names,
//!   endpoints, framing and child processes, blocking only the calling fiber.
//! - [`tls`] (crate `gruvi-tls`): TLS over any stream: an in-memory OpenSSL engine, a TLS
//!   stream, verifying clients and SNI/ALPN servers, STARTTLS.
//! - [`http`] (crate `gruvi-http`): HTTP/1.1 on RFC 9112 framing: a sans-IO parser, a server
//!   whose handlers run in connection fibers, and a pipelining client.
//! - [`jsonrpc`] (crate `gruvi-jsonrpc`): JSON-RPC 1.0 and 2.0 peers that call each other,
//!   clients and servers.
//! - [`dbus`] (crate `gruvi-dbus`): D-Bus client connections, exported objects, signals and a
//!   peer-to-peer server.
//!
//! # Examples
//!
//! A libuv timer through the callback layer:
//!
//! ```
//! use gruvi::uv::{Loop, RunMode, Timer};
//!
//! let lp = Loop::new()?;
//! let timer = Timer::new(&lp)?;
//! timer.start(1, 0, |_| println!("tick"))?;
//! lp.run(RunMode::Default);
//! drop(timer);
//! assert_eq!(lp.close()?, 0);
//! # Ok::<(), gruvi::uv::Error>(())
//! ```

#![forbid(unsafe_code)]

pub use fiber_core as fiber;
pub use gruvi_dbus as dbus;
pub use gruvi_http as http;
pub use gruvi_jsonrpc as jsonrpc;
pub use gruvi_stream as stream;
pub use gruvi_tls as tls;
pub use uv_sys_wrap as uv;

/// The README's code, compiled as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
