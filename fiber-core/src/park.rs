//! Parking and unparking fibers, the shape of `std::thread::park` for fibers: the cheapest way
//! for a data structure to block its users (no allocation per wait).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::fiber::Wake;
use crate::hub::Hub;

/// What a parked fiber shows as waiting on (see [`dump`](crate::dump)).
pub(crate) const PARK: &str = "park";

/// Blocks the current fiber until [`Fiber::unpark`](crate::Fiber::unpark) is called for it,
/// returning at once if it was called since the last `park`. Like `std::thread::park`, it may
/// also return spuriously: call it in a loop that checks what you wait for.
///
/// # Switchpoint
///
/// Other fibers run meanwhile.
///
/// # Errors
///
/// [`Error::Cancelled`], [`Error::TimedOut`] from an enclosing [`timeout`](crate::timeout)
/// scope, [`Error::WouldBlockForever`] if nothing could ever unpark it.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// fiber_core::run(|| {
///     let ready = Rc::new(Cell::new(false));
///     let waiter = fiber_core::current();
///     let r = ready.clone();
///     fiber_core::spawn(move || {
///         r.set(true);
///         waiter.unpark();
///     });
///     while !ready.get() {
///         fiber_core::park().unwrap();
///     }
/// });
/// ```
#[track_caller]
#[inline]
pub fn park() -> Result<()> {
    park_inner(None)
}

/// Like [`park`], giving up with [`Error::TimedOut`] after `timeout`.
///
/// # Switchpoint
///
/// Blocks the current fiber for at most `timeout`.
#[track_caller]
pub fn park_timeout(timeout: Duration) -> Result<()> {
    park_inner(Some(timeout))
}

// Inlined into its callers: a fiber parked here has one frame fewer on its stack, and the
// lines of the frames a resumed fiber returns through are cold again by then (with many
// fibers, each runs after all the others did).
#[track_caller]
#[inline(always)]
fn park_inner(timeout: Option<Duration>) -> Result<()> {
    let hub = Hub::current();
    let fiber = hub.current_fiber();
    if fiber.unpark_token.replace(false) {
        crate::no_switch::assert_may_switch(PARK);
        return if fiber.cancelled.get() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        };
    }
    let wake = hub.park_current(&fiber, PARK, timeout);
    fiber.unpark_token.set(false);
    match wake {
        Wake::Fired => Ok(()),
        Wake::TimedOut(_) => Err(Error::TimedOut),
        Wake::Cancelled => Err(Error::Cancelled),
        Wake::Deadlock => Err(Error::WouldBlockForever),
    }
}
