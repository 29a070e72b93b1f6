//! No-switch sections: code that must not reach a switchpoint (Gruvi's
//! `assert_no_switchpoints`).

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// While alive, any switchpoint called on this thread panics with a clear message, even one that
/// would not actually switch. The Hub runs libuv's loop and queued callbacks inside one, so a
/// callback that tries to block fails loudly instead of corrupting the scheduler.
///
/// Sections nest. The guard is not `Send`: it belongs to the thread that made it.
///
/// # Examples
///
/// ```
/// use fiber_core::NoSwitch;
///
/// let result = std::panic::catch_unwind(|| {
///     let _guard = NoSwitch::enter();
///     fiber_core::yield_now() // a switchpoint
/// });
/// assert!(result.is_err());
/// ```
#[derive(Debug)]
pub struct NoSwitch {
    _not_send: PhantomData<*mut ()>,
}

impl NoSwitch {
    /// Enters a no-switch section until the guard is dropped.
    pub fn enter() -> NoSwitch {
        DEPTH.with(|d| d.set(d.get() + 1));
        NoSwitch {
            _not_send: PhantomData,
        }
    }

    /// Whether the current thread is inside a no-switch section.
    pub fn active() -> bool {
        DEPTH.with(|d| d.get() > 0)
    }
}

impl Drop for NoSwitch {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Runs `f` inside a no-switch section.
pub fn no_switch<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoSwitch::enter();
    f()
}

/// Called at the top of every switchpoint.
///
/// # Panics
///
/// Inside a no-switch section.
#[track_caller]
pub(crate) fn assert_may_switch(what: &str) {
    if NoSwitch::active() {
        panic!("switchpoint `{what}` called in a no-switch section (e.g. from a libuv callback)");
    }
}
