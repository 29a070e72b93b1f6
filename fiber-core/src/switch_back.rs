//! Turning a callback into a switchpoint (Gruvi's `switch_back`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fiber::{FiberInner, Wake};
use crate::hub::Hub;

struct Inner<T> {
    fiber: Rc<FiberInner>,
    /// The fiber's Hub: waking needs it, and a thread-local lookup per call costs more. Weak,
    /// so that a callback kept somewhere does not keep a closed Hub alive.
    hub: std::rc::Weak<Hub>,
    value: Cell<Option<T>>,
    /// Cleared when the wait is over: later calls are ignored.
    active: Cell<bool>,
}

/// The waiting side of a callback-turned-switchpoint: make a `SwitchBack` in the fiber that
/// will wait, give its [`callback`](Self::callback) to whatever completes later (a libuv
/// callback, another fiber, a [`Hub::run_callback`]), then [`wait`](Self::wait).
///
/// The first call of the callback wins; later ones are ignored, as are calls after the wait is
/// over. A value delivered before the wait starts is returned at once, and a value delivered
/// together with a timeout or a cancellation is still returned (nothing handed over is lost).
///
/// # Examples
///
/// Wrapping a uv-sys-wrap callback API into a blocking call, the way the protocol layers do
/// (Gruvi: "freely mix pyuv and Gruvi API calls"):
///
/// ```
/// use fiber_core::{Hub, SwitchBack};
/// use uv_sys_wrap::Timer;
///
/// /// Blocks the calling fiber for `ms` milliseconds using a libuv timer directly.
/// fn uv_sleep(ms: u64) -> fiber_core::Result<()> {
///     let hub = Hub::current();
///     let timer = Timer::new(&hub.loop_handle()).expect("timer");
///     let sb = SwitchBack::new();
///     let done = sb.callback();
///     timer.start(ms, 0, move |_| { done.call(()); }).expect("start");
///     sb.wait() // other fibers run meanwhile
/// }
///
/// fiber_core::run(|| uv_sleep(5)).unwrap();
/// ```
pub struct SwitchBack<T> {
    inner: Rc<Inner<T>>,
}

/// The firing side of a [`SwitchBack`]: clonable, not `Send` (from another thread, use
/// [`SwitchBack::remote_callback`]).
pub struct Callback<T> {
    inner: Rc<Inner<T>>,
}

impl<T> SwitchBack<T> {
    /// A switch-back for the current fiber.
    pub fn new() -> SwitchBack<T> {
        let hub = Hub::current();
        SwitchBack {
            inner: Rc::new(Inner {
                fiber: hub.current_fiber(),
                hub: Rc::downgrade(&hub),
                value: Cell::new(None),
                active: Cell::new(true),
            }),
        }
    }

    /// The callback that completes the wait.
    pub fn callback(&self) -> Callback<T> {
        Callback {
            inner: self.inner.clone(),
        }
    }

    /// Waits until the callback is called and returns its value.
    ///
    /// # Switchpoint
    ///
    /// Blocks the current fiber; other fibers run meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], [`Error::TimedOut`] (an enclosing [`timeout`](crate::timeout)),
    /// [`Error::WouldBlockForever`] when nothing could ever call the callback.
    ///
    /// # Panics
    ///
    /// If called from another fiber than the one that made it, or in a no-switch section.
    #[track_caller]
    pub fn wait(self) -> Result<T> {
        self.wait_until(None)
    }

    /// Like [`wait`](Self::wait), giving up with [`Error::TimedOut`] after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks the current fiber for at most `timeout`.
    #[track_caller]
    pub fn wait_timeout(self, timeout: Duration) -> Result<T> {
        self.wait_until(crate::sync::waiter::deadline(timeout))
    }

    #[track_caller]
    fn wait_until(self, deadline: Option<Instant>) -> Result<T> {
        let hub = self.inner.hub.upgrade().unwrap_or_else(Hub::current);
        assert!(
            Rc::ptr_eq(&self.inner.fiber, &hub.current_fiber()),
            "SwitchBack::wait called from a fiber other than the one that made it"
        );
        let result = loop {
            let left = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            if let Some(value) = self.inner.value.take() {
                crate::no_switch::assert_may_switch("SwitchBack::wait");
                break Ok(value);
            }
            let wake = hub.park("SwitchBack::wait", left);
            if let Some(value) = self.inner.value.take() {
                break Ok(value);
            }
            match wake {
                // Woken by something else (a stale wake-up): wait on.
                Wake::Fired => continue,
                Wake::TimedOut(_) => break Err(Error::TimedOut),
                Wake::Cancelled => break Err(Error::Cancelled),
                Wake::Deadlock => break Err(Error::WouldBlockForever),
            }
        };
        self.inner.active.set(false);
        result
    }
}

impl<T> Default for SwitchBack<T> {
    fn default() -> Self {
        SwitchBack::new()
    }
}

impl<T> Drop for SwitchBack<T> {
    fn drop(&mut self) {
        self.inner.active.set(false);
    }
}

impl<T> Callback<T> {
    /// Completes the wait with `value` and makes the waiting fiber ready. Returns false (and
    /// drops `value`) if the wait already completed or is over. Never switches.
    pub fn call(&self, value: T) -> bool {
        let inner = &self.inner;
        if !inner.active.get() {
            return false;
        }
        let previous = inner.value.take();
        if previous.is_some() {
            inner.value.set(previous);
            return false;
        }
        inner.value.set(Some(value));
        match inner.hub.upgrade() {
            Some(hub) => hub.wake(&inner.fiber, Wake::Fired),
            None => Hub::current().wake(&inner.fiber, Wake::Fired),
        };
        true
    }

    /// Whether the wait is still open to a value.
    pub fn is_active(&self) -> bool {
        if !self.inner.active.get() {
            return false;
        }
        let value = self.inner.value.take();
        let open = value.is_none();
        self.inner.value.set(value);
        open
    }
}

impl<T> Clone for Callback<T> {
    fn clone(&self) -> Self {
        Callback {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for SwitchBack<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchBack")
            .field("fiber", &self.inner.fiber.id)
            .finish()
    }
}

impl<T> std::fmt::Debug for Callback<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("fiber", &self.inner.fiber.id)
            .finish()
    }
}
