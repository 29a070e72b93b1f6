//! Sleeping, yielding and scoped deadlines.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fiber::{Scope, Wake};
use crate::hub::Hub;

/// The instant `timeout` from now, or 100 years from now when that does not fit in an
/// `Instant`: a deadline for a user's timeout that a huge one (`Duration::MAX` for "no
/// limit") cannot make overflow, as `Instant::now() + timeout` would (a panic). The waits of
/// this crate treat their timeouts so.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let soon = fiber_core::deadline_after(Duration::from_secs(1));
/// assert!(soon > Instant::now());
/// let never = fiber_core::deadline_after(Duration::MAX);
/// assert!(never > Instant::now() + Duration::from_secs(99 * 365 * 24 * 3600));
/// ```
pub fn deadline_after(timeout: Duration) -> Instant {
    crate::sync::waiter::deadline_after(Instant::now(), timeout)
}

/// Blocks the current fiber for at least `duration` (Gruvi's `sleep`). `sleep(0)` yields once.
///
/// # Switchpoint
///
/// Other fibers run meanwhile.
///
/// # Errors
///
/// [`Error::Cancelled`]; [`Error::TimedOut`] if an enclosing [`timeout`] scope expires first.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// fiber_core::run(|| {
///     let start = Instant::now();
///     fiber_core::sleep(Duration::from_millis(10)).unwrap();
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> Result<()> {
    let hub = Hub::current();
    if duration.is_zero() {
        return hub.yield_now();
    }
    let deadline = crate::sync::waiter::deadline_after(Instant::now(), duration);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match hub.park("sleep", Some(left)) {
            Wake::TimedOut(None) => return Ok(()),
            Wake::TimedOut(Some(_)) => return Err(Error::TimedOut),
            Wake::Cancelled => return Err(Error::Cancelled),
            Wake::Deadlock => return Err(Error::WouldBlockForever),
            // A stale wake-up: sleep on.
            Wake::Fired => {}
        }
    }
}

/// Lets the other ready fibers run, then continues (Go's `Gosched`, may's `yield_now`).
///
/// # Switchpoint
///
/// Requeues the current fiber behind the ready ones; the loop is polled if nothing else is
/// ready.
///
/// # Errors
///
/// [`Error::Cancelled`].
#[track_caller]
#[inline]
pub fn yield_now() -> Result<()> {
    Hub::current().yield_now()
}

thread_local! {
    static NEXT_SCOPE: Cell<u64> = const { Cell::new(1) };
}

/// Runs `f` with a deadline: every switchpoint inside it fails with [`Error::TimedOut`] once
/// `duration` has passed (and at once after that). Returns `f`'s value, or
/// `Err(Error::TimedOut)` if this scope's deadline made a switchpoint inside fail.
///
/// Scopes nest, each reporting only its own expiry: an inner scope expiring does not make the
/// outer one fail, and an outer scope expiring inside an inner one makes the inner return `f`'s
/// value (with the failed switchpoint's error in it) and the outer return `Err`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fiber_core::{Error, timeout, sleep};
///
/// fiber_core::run(|| {
///     let slow = timeout(Duration::from_millis(5), || sleep(Duration::from_secs(60)));
///     assert_eq!(slow, Err(Error::TimedOut));
///     let fast = timeout(Duration::from_secs(60), || 7);
///     assert_eq!(fast, Ok(7));
/// });
/// ```
pub fn timeout<R>(duration: Duration, f: impl FnOnce() -> R) -> Result<R> {
    let fiber = Hub::current().current_fiber();
    let id = NEXT_SCOPE.with(|n| n.replace(n.get() + 1));
    fiber.scopes.borrow_mut().push(Scope {
        id,
        deadline: crate::sync::waiter::deadline_after(Instant::now(), duration),
        expired: false,
    });
    /// Pops the scope even if `f` panics.
    struct Pop(std::rc::Rc<crate::fiber::FiberInner>, u64);
    impl Drop for Pop {
        fn drop(&mut self) {
            let mut scopes = self.0.scopes.borrow_mut();
            if let Some(at) = scopes.iter().position(|s| s.id == self.1) {
                scopes.remove(at);
            }
        }
    }
    let pop = Pop(fiber, id);
    let value = f();
    let expired = pop
        .0
        .scopes
        .borrow()
        .iter()
        .any(|s| s.id == id && s.expired);
    drop(pop);
    if expired {
        Err(Error::TimedOut)
    } else {
        Ok(value)
    }
}
