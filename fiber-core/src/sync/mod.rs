//! Synchronisation primitives for fibers and threads (Gruvi's `gruvi.sync`).
//!
//! Every primitive here is `Send + Sync` and blocks only the calling fiber: a fiber on one
//! thread's Hub is woken by a `release`/`set`/`put` from any other fiber or thread (through its
//! Hub's remote queue), and a plain thread without a Hub blocks the plain way. They all build on
//! one waiter protocol (`waiter.rs`, over `parking.rs`): a hand-over (a lock, an item, a
//! notification) goes directly to the first waiter, and a waiter that times out or is cancelled
//! leaves the queue without losing anything handed to it.

pub mod channel;
mod condition;
mod event;
mod lock;
mod mutex;
pub(crate) mod parking;
mod queue;
mod queue_core;
mod rlock;
pub(crate) mod waiter;

pub use condition::Condition;
pub use event::Event;
pub(crate) use lock::register_asymmetric;
pub use lock::{Lock, LockGuard, fence_every_release, refuse_barrier};
pub use mutex::{Mutex, MutexGuard};
pub use queue::{LifoQueue, PriorityQueue, PutError, Queue, QueueEmpty, QueueFull};
pub use rlock::{RLock, RLockGuard};
