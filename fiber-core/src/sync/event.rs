//! [`Event`]: a level-triggered flag to wait for (Gruvi's `Event`).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::sync::waiter::{self, WaitQueue, Wakeups, lock};
use crate::waitable::{CallbackId, DoneCallback, DoneCallbacks, Waitable, run_now};

/// A flag that fibers and threads wait for (Gruvi's `Event`). Level-triggered: once
/// [`set`](Self::set), it stays set, waking every waiter and letting later waits pass at once,
/// until [`clear`](Self::clear)ed.
///
/// It is [`Waitable`]: done callbacks run when it is set (once each).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use fiber_core::Event;
///
/// fiber_core::run(|| {
///     let event = Arc::new(Event::new());
///     let setter = {
///         let event = event.clone();
///         // From another thread: wakes the waiting fiber through its Hub.
///         std::thread::spawn(move || event.set())
///     };
///     event.wait()?;
///     assert!(event.is_set());
///     setter.join().unwrap();
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct Event {
    flag: AtomicBool,
    inner: Mutex<Inner>,
}

struct Inner {
    waiters: WaitQueue,
    callbacks: DoneCallbacks,
}

impl Event {
    /// An event that is not set.
    pub const fn new() -> Event {
        Event {
            flag: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                waiters: WaitQueue::new(),
                callbacks: DoneCallbacks::new(),
            }),
        }
    }

    /// Whether the event is set.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Sets the event: wakes every waiter and runs the done callbacks. Never switches.
    pub fn set(&self) {
        if self.is_set() {
            return;
        }
        let mut inner = lock(&self.inner);
        if self.flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let callbacks = std::mem::take(&mut inner.callbacks);
        let mut wakeups = Wakeups::new();
        for waiter in inner.waiters.drain() {
            wakeups.push(waiter.waker);
        }
        drop(inner);
        wakeups.wake();
        callbacks.run();
    }

    /// Clears the event: later waits block until it is set again. Never switches.
    pub fn clear(&self) {
        let _inner = lock(&self.inner);
        self.flag.store(false, Ordering::Release);
    }

    /// Waits until the event is set; returns at once if it is.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) until the event is set.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`](crate::Error::Cancelled), or [`Error::TimedOut`](crate::Error::TimedOut)
    /// from an enclosing [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None)
    }

    /// Like [`wait`](Self::wait), giving up with [`Error::TimedOut`](crate::Error::TimedOut)
    /// after `timeout` (Gruvi's `wait(timeout)` returning `False`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(waiter::deadline(timeout))
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> Result<()> {
        if self.is_set() {
            return Ok(());
        }
        let mut inner = lock(&self.inner);
        if self.is_set() {
            return Ok(());
        }
        let (id, parker) = inner.waiters.push(());
        drop(inner);
        waiter::block(
            parker,
            "Event::wait",
            deadline,
            || lock(&self.inner).waiters.remove(id).is_some(),
            || {},
        )
    }

    /// How many fibers and threads wait (for tests: nothing is left behind).
    #[doc(hidden)]
    pub fn waiter_count(&self) -> usize {
        lock(&self.inner).waiters.len()
    }

    /// How many done callbacks are registered (for tests: all are removed).
    #[doc(hidden)]
    pub fn callback_count(&self) -> usize {
        lock(&self.inner).callbacks.len()
    }
}

/// Done when set.
impl Waitable for Event {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        let mut inner = lock(&self.inner);
        if self.is_set() {
            drop(inner);
            run_now(callback);
            return None;
        }
        Some(inner.callbacks.add(callback))
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        lock(&self.inner).callbacks.remove(id)
    }
}

impl Default for Event {
    fn default() -> Event {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}
