//! The context switch off x86_64: boost.context's assembly, through the `context` crate. This
//! project's machines are all x86_64: the module was checked there by selecting it instead of
//! `x86_64.rs` (all of fiber-core's tests passed, session 7), not on another architecture.

use std::ptr::NonNull;

pub(crate) use context::{Context, Transfer};

/// The entry of a new context: receives the first switch's [`Transfer`]; never returns.
pub(crate) type Entry = extern "C" fn(Transfer) -> !;

/// Lays out a new context on the stack memory `bottom..top`, so that the first switch to it
/// calls `entry` with that switch's [`Transfer`].
///
/// # Safety
///
/// `bottom..top` must be writable memory that stays valid and otherwise unused for as long as
/// the context (or any context it switches away from) may be resumed.
pub(crate) unsafe fn new_context(top: NonNull<u8>, bottom: NonNull<u8>, entry: Entry) -> Context {
    // SAFETY: the non-owning `Stack` only carries the two addresses (the caller's contract
    // covers the memory).
    let below = unsafe { context::stack::Stack::new(top.as_ptr().cast(), bottom.as_ptr().cast()) };
    // SAFETY: as above.
    unsafe { Context::new(&below, entry) }
}
