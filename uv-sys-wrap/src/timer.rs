//! Timers (`uv_timer_t`).

use std::mem::ManuallyDrop;

use libuv_sys2 as sys;

use crate::callback::Slot;
use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;

type TimerCb = dyn FnMut(&Timer);

/// A timer: calls its callback after a timeout, then optionally every `repeat` milliseconds
/// (`uv_timer_t`).
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Handle, Loop, RunMode, Timer};
/// use std::{cell::Cell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let ticks = Rc::new(Cell::new(0));
/// let timer = Timer::new(&lp)?;
/// let t = ticks.clone();
/// timer.start(1, 1, move |timer| {
///     t.set(t.get() + 1);
///     if t.get() == 3 {
///         timer.stop().unwrap();
///     }
/// })?;
/// lp.run(RunMode::Default);
/// assert_eq!(ticks.get(), 3);
/// timer.close();
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Timer {
    h: Owned<sys::uv_timer_t, Slot<TimerCb>>,
}

impl_handle!(Timer, h);

impl Timer {
    /// Creates a stopped timer on `lp` (`uv_timer_init`).
    pub fn new(lp: &impl AsLoop) -> Result<Timer> {
        // SAFETY: `lp` and `t` are valid; uv_timer_init initialises `t`.
        let h = Owned::new(lp, Slot::new(), |lp, t| unsafe {
            sys::uv_timer_init(lp, t)
        })?;
        Ok(Timer { h })
    }

    /// Starts the timer: `cb` runs after `timeout_ms`, then every `repeat_ms` if that is
    /// non-zero (`uv_timer_start`). Restarting replaces the previous callback.
    ///
    /// As in libuv, the timeout counts from the loop's cached time ([`Loop::now`]), which is
    /// refreshed once per loop iteration; call [`Loop::update_time`] first when the loop has
    /// not run for a while.
    ///
    /// [`Loop::now`]: crate::Loop::now
    /// [`Loop::update_time`]: crate::Loop::update_time
    pub fn start(
        &self,
        timeout_ms: u64,
        repeat_ms: u64,
        cb: impl FnMut(&Timer) + 'static,
    ) -> Result<()> {
        let raw = self.h.raw()?;
        self.h.cbs().set(Box::new(cb));
        // SAFETY: the timer is initialised and open; the callback slot lives in its block.
        Error::check(unsafe { sys::uv_timer_start(raw, Some(on_timer), timeout_ms, repeat_ms) })
            .map(drop)
    }

    /// Stops the timer (`uv_timer_stop`); its callback is kept for [`Timer::again`].
    pub fn stop(&self) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the timer is initialised and open.
        Error::check(unsafe { sys::uv_timer_stop(raw) }).map(drop)
    }

    /// Restarts a repeating timer with its repeat value as the timeout (`uv_timer_again`).
    ///
    /// # Errors
    ///
    /// `EINVAL` if the timer was never started.
    pub fn again(&self) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the timer is initialised and open.
        Error::check(unsafe { sys::uv_timer_again(raw) }).map(drop)
    }

    /// Sets the repeat interval in milliseconds (`uv_timer_set_repeat`).
    pub fn set_repeat(&self, repeat_ms: u64) {
        // SAFETY: the block is allocated while the owner lives; this only writes a field.
        unsafe { sys::uv_timer_set_repeat(self.h.raw_unchecked(), repeat_ms) }
    }

    /// The repeat interval in milliseconds (`uv_timer_get_repeat`).
    pub fn repeat(&self) -> u64 {
        // SAFETY: the block is allocated while the owner lives; this only reads a field.
        unsafe { sys::uv_timer_get_repeat(self.h.raw_unchecked()) }
    }

    /// Milliseconds until the timer fires, 0 if it is due or stopped (`uv_timer_get_due_in`).
    pub fn due_in(&self) -> u64 {
        if self.h.is_closing() {
            return 0;
        }
        // SAFETY: the timer is open, so its loop is alive.
        unsafe { sys::uv_timer_get_due_in(self.h.raw_unchecked()) }
    }
}

unsafe extern "C" fn on_timer(raw: *mut sys::uv_timer_t) {
    // SAFETY: libuv calls this for timers started by `Timer::start`, whose block is allocated
    // during the callback. The view is never dropped.
    let h = unsafe { Owned::borrowed(raw) };
    let timer = ManuallyDrop::new(Timer { h });
    timer.h.catch(|| {
        timer.h.cbs().with(|cb| cb(&timer));
    });
}
