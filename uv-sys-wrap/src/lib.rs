//! A thin, safe, callback-style wrapper over libuv.
//!
//! Names mirror libuv's minus the `uv_` prefix (`uv_tcp_bind` is [`Tcp::bind`]), and every
//! wrapper names the C function it wraps. Ownership follows libuv's rules:
//!
//! - a handle is owned by exactly one Rust value (neither `Clone` nor `Send`); dropping it (or
//!   [`Handle::close`]) calls `uv_close`, and its memory is freed only in the close callback;
//! - a request (write, connect, lookup...) owns its buffers and callback until the callback has
//!   run, whatever happens to the value that started it;
//! - a [`Loop`] comes from `uv_loop_init`, never `uv_default_loop`, and [`Loop::close`] closes
//!   whatever is left and reports how many handles were still open;
//! - a panic in a callback never unwinds through libuv: it stops the loop and is resumed by
//!   [`Loop::run`].
//!
//! Callbacks that belong to a handle receive a borrowed view of it (`&Timer`, `&Tcp`), so they
//! can stop, read or accept without reference cycles. Nothing here knows about fibers: that is
//! the next layer up (`fiber-core`).
//!
//! # Examples
//!
//! ```
//! use uv_sys_wrap::{Loop, RunMode, Timer};
//! use std::{cell::Cell, rc::Rc};
//!
//! let lp = Loop::new()?;
//! let timer = Timer::new(&lp)?;
//! let fired = Rc::new(Cell::new(0u64));
//! let f = fired.clone();
//! timer.start(5, 0, move |t| f.set(t.repeat() + 1))?;
//! lp.run(RunMode::Default);
//! assert_eq!(fired.get(), 1);
//! drop(timer);
//! assert_eq!(lp.close()?, 0);
//! # Ok::<(), uv_sys_wrap::Error>(())
//! ```

mod buf;
mod callback;
mod error;
mod getaddrinfo;
mod handle;
mod idle;
mod r#loop;
mod membarrier;
mod pipe;
mod poll;
mod process;
mod request;
mod signal;
mod sockaddr;
mod stream;
mod tcp;
mod timer;
mod tty;
mod udp;
mod wakeup;
mod work;

pub use error::{Error, Result};
pub use getaddrinfo::{AddrInfo, AddrInfoHints, getaddrinfo, getnameinfo};
pub use handle::{Handle, HandleType};
pub use idle::{Check, Idle, Prepare};
pub use r#loop::{AsLoop, HandleInfo, Loop, LoopHandle, RunMode};
pub use membarrier::{barrier, register_barrier};
pub use pipe::{PeerCredentials, Pipe};
pub use poll::{Poll, PollEvents};
pub use process::{Process, ProcessOptions, StdioContainer, StreamRef, kill};
pub use request::Pending;
pub use signal::Signal;
pub use stream::Stream;
pub use tcp::{Tcp, TcpBindFlags};
pub use timer::Timer;
pub use tty::{Tty, TtyMode, tty_reset_mode};
pub use udp::{Datagram, Membership, Udp, UdpBindFlags};
pub use wakeup::{Async, AsyncSender};
pub use work::queue_work;

/// The raw libuv bindings, for crates that wrap their own callback APIs on top of this one.
pub use libuv_sys2 as sys;
