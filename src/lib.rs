//! Gruvi for Rust: fibers on libuv with blocking-style network protocols.
//!
//! Users write plain sequential code in cheap fibers while one libuv event loop per thread
//! multiplexes all I/O underneath. This crate is the facade over the layers:
//!
//! - [`uv`] (crate `uv-sys-wrap`): a thin, safe, callback-style wrapper over libuv: loops,
//!   handles (timers, TCP, pipes, UDP, TTYs, signals, processes...) and requests.
//! - [`fiber`] (crate `fiber-core`): fibers, the Hub and switchpoints: blocking-style code on
//!   cheap stackful fibers, scheduled by one Hub per thread that owns the libuv loop.
//! - [`stream`] (crate `gruvi-stream`): TCP and Unix streams, listeners, addresses with std's
//!   names, blocking only the calling fiber (in progress).
//! - TLS, HTTP, JSON-RPC and D-Bus: not built yet; see the README's status table.
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
pub use gruvi_http as http;
pub use gruvi_stream as stream;
pub use uv_sys_wrap as uv;

/// The README's code, compiled as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
