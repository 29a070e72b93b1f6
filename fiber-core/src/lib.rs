//! Fibers, the Hub and switchpoints: blocking-style code on cheap fibers, with one libuv event
//! loop per thread multiplexing the I/O underneath (the heart of Gruvi).
//!
//! - A **fiber** is a function on its own small stack ([`spawn`], [`Builder`]); the thread's own
//!   stack is the **root fiber**. Fibers never move between threads.
//! - The **Hub** ([`Hub::current`], one per thread) owns the libuv loop and schedules the fibers.
//!   When the root blocks, it runs the Hub's scheduler: ready fibers run, then libuv polls for
//!   I/O inside a no-switch section, where callbacks only store results and mark fibers ready.
//! - A **switchpoint** is a call that may block the current fiber and let others run: [`sleep`],
//!   [`yield_now`], [`JoinHandle::join`], [`SwitchBack::wait`], and every blocking protocol call
//!   built on them. Each returns a `Result` that can be [`Error::Cancelled`] or
//!   [`Error::TimedOut`], and says so in a `# Switchpoint` doc section. Naming: `x()` may
//!   switch, `x_timeout(d)` gives up after `d`, `try_x()` never switches.
//! - [`SwitchBack`] turns any callback API (such as a uv-sys-wrap handle) into a switchpoint.
//! - [`timeout`] bounds every switchpoint in a scope; [`JoinHandle::cancel`] cancels a fiber;
//!   a deadlock (nothing could ever wake the root) is reported as [`Error::WouldBlockForever`];
//!   [`dump`] lists every fiber and what it waits on.
//!
//! Stacks are mmap'd and committed lazily ([`StackPool`]): guarded by default (a stack overflow
//! prints which fiber overflowed before the process aborts; about 32k guarded fibers fit under
//! Linux's default `vm.max_map_count`), or unguarded ([`StackConfig::unguarded`],
//! [`Hub::set_stack_config`]) for a million fibers. All of this crate's `unsafe` code lives in
//! the stack modules: `stack.rs`, `stack_overflow.rs` and `stack_switch.rs` with its
//! `stack_switch/x86_64.rs` (the switch itself) and `stack_switch/portable.rs`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! let total = fiber_core::run(|| {
//!     let workers: Vec<_> = (1..=3u64)
//!         .map(|i| {
//!             fiber_core::spawn(move || {
//!                 fiber_core::sleep(Duration::from_millis(i)).unwrap();
//!                 i * 10
//!             })
//!         })
//!         .collect();
//!     workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 60);
//! ```
#![deny(unsafe_code)]

mod dump;
mod error;
mod fiber;
mod hub;
mod join;
mod local;
mod no_switch;
mod park;
mod pool;
mod promise;
mod remote;
mod remote_callback;
mod signal;
#[allow(unsafe_code)]
mod stack;
mod stack_error;
#[allow(unsafe_code)]
mod stack_overflow;
#[allow(unsafe_code)]
mod stack_switch;
mod switch_back;
mod sync;
mod time;
mod wait;
mod waitable;

pub use dump::{FiberInfo, dump};
pub use error::{Error, Result};
pub use fiber::{Builder, Fiber, FiberState, current, spawn};
pub use hub::{Hub, run};
pub use join::{JoinError, JoinHandle};
pub use local::{FiberLocal, clear_locals};
pub use no_switch::{NoSwitch, no_switch};
pub use park::{park, park_timeout};
pub use pool::{
    FiberPool, MapResults, PoolBuilder, PoolClosed, ThreadPool, blocking, cpu_pool, io_pool,
};
pub use promise::{Promise, PromiseError};
pub use remote::RemoteHub;
pub use remote_callback::RemoteCallback;
pub use signal::{wait_for_signal, wait_for_signal_timeout};
pub use stack::{Stack, StackConfig, StackPool, StackPoolStats};
pub use switch_back::{Callback, SwitchBack};
pub use sync::{
    Condition, Event, LifoQueue, Lock, LockGuard, Mutex, MutexGuard, PriorityQueue, PutError,
    Queue, QueueEmpty, QueueFull, RLock, RLockGuard, channel,
};
#[doc(hidden)]
pub use sync::{fence_every_release, refuse_barrier};
pub use time::{deadline_after, sleep, timeout, yield_now};
pub use wait::{AsCompleted, as_completed, as_completed_timeout, wait, wait_timeout};
pub use waitable::{CallbackId, DoneCallback, DoneCallbacks, Waitable};

/// Internals exposed for this crate's integration tests and benchmarks only; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::stack_switch::{
        Coroutine, Outcome, in_coroutine, set_current_identity, suspend,
    };
}
