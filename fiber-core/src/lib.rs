//! Fibers, the Hub, switchpoints and sync primitives (work in progress: see issue 3).
//!
//! The lowest layer, done so far, gives fibers their stacks: a [`StackPool`] of mmap'd, lazily
//! committed stacks, guarded by default (a stack overflow prints which fiber overflowed before
//! the process aborts), or unguarded for programs that want a million fibers. All of this crate's
//! `unsafe` code lives in these stack modules: `stack.rs` (the pool), `stack_overflow.rs` (the
//! overflow report) and `stack_switch.rs` with `stack_switch/mxcsr.rs` (the context switch).
//!
//! ```
//! use fiber_core::{StackConfig, StackPool};
//!
//! let pool = StackPool::new(StackConfig::new().stack_size(128 * 1024));
//! let stack = pool.get()?;
//! assert_eq!(stack.size(), 128 * 1024);
//! drop(stack); // back to the pool, reused by the next `get`
//! assert_eq!(pool.stats().cached, 1);
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod stack;
mod stack_error;
#[allow(unsafe_code)]
mod stack_overflow;
#[allow(unsafe_code)]
mod stack_switch;

pub use stack::{Stack, StackConfig, StackPool, StackPoolStats};

/// Internals exposed for this crate's integration tests and benchmarks only; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::stack_switch::{
        Coroutine, Outcome, clear_mxcsr_status, in_coroutine, mxcsr_status_set,
        set_current_identity, set_mxcsr_fix, suspend,
    };
}
