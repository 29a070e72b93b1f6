//! Per-iteration watchers: idle, prepare and check handles (`uv_idle_t`, `uv_prepare_t`,
//! `uv_check_t`). They share one shape, so one macro defines all three.

use std::mem::ManuallyDrop;

use libuv_sys2 as sys;

use crate::callback::Slot;
use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;

macro_rules! watcher {
    (
        $(#[$doc:meta])*
        $name:ident, $raw:ty, $init:path, $start:path, $stop:path, $cb:ident,
        $cname:literal
    ) => {
        $(#[$doc])*
        pub struct $name {
            h: Owned<$raw, Slot<dyn FnMut(&$name)>>,
        }

        impl_handle!($name, h);

        impl $name {
            #[doc = concat!("Creates a stopped watcher on `lp` (`uv_", $cname, "_init`).")]
            pub fn new(lp: &impl AsLoop) -> Result<$name> {
                // SAFETY: `lp` and `w` are valid; the init function initialises `w`.
                let h = Owned::new(lp, Slot::new(), |lp, w| unsafe { $init(lp, w) })?;
                Ok($name { h })
            }

            #[doc = concat!("Starts calling `cb` once per loop iteration (`uv_", $cname, "_start`); restarting replaces the callback.")]
            pub fn start(&self, cb: impl FnMut(&$name) + 'static) -> Result<()> {
                let raw = self.h.raw()?;
                self.h.cbs().set(Box::new(cb));
                // SAFETY: the handle is initialised and open; the callback lives in its block.
                Error::check(unsafe { $start(raw, Some($cb)) }).map(drop)
            }

            #[doc = concat!("Stops the watcher (`uv_", $cname, "_stop`).")]
            pub fn stop(&self) -> Result<()> {
                let raw = self.h.raw()?;
                // SAFETY: the handle is initialised and open.
                Error::check(unsafe { $stop(raw) }).map(drop)
            }
        }

        unsafe extern "C" fn $cb(raw: *mut $raw) {
            // SAFETY: libuv calls this for watchers started by `start`, whose block is
            // allocated during the callback. The view is never dropped.
            let w = ManuallyDrop::new($name { h: unsafe { Owned::borrowed(raw) } });
            w.h.catch(|| {
                w.h.cbs().with(|cb| cb(&w));
            });
        }
    };
}

watcher!(
    /// Runs its callback once per loop iteration, and while started keeps the loop from blocking
    /// for I/O (`uv_idle_t`).
    ///
    /// # Examples
    ///
    /// ```
    /// use uv_sys_wrap::{Idle, Loop, RunMode};
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let lp = Loop::new()?;
    /// let n = Rc::new(Cell::new(0));
    /// let idle = Idle::new(&lp)?;
    /// let c = n.clone();
    /// idle.start(move |idle| {
    ///     c.set(c.get() + 1);
    ///     if c.get() == 5 {
    ///         idle.stop().unwrap();
    ///     }
    /// })?;
    /// lp.run(RunMode::Default);
    /// assert_eq!(n.get(), 5);
    /// drop(idle);
    /// assert_eq!(lp.close()?, 0);
    /// # Ok::<(), uv_sys_wrap::Error>(())
    /// ```
    Idle, sys::uv_idle_t, sys::uv_idle_init, sys::uv_idle_start, sys::uv_idle_stop, on_idle,
    "idle"
);

watcher!(
    /// Runs its callback once per loop iteration, right before the loop blocks for I/O
    /// (`uv_prepare_t`).
    Prepare, sys::uv_prepare_t, sys::uv_prepare_init, sys::uv_prepare_start,
    sys::uv_prepare_stop, on_prepare, "prepare"
);

watcher!(
    /// Runs its callback once per loop iteration, right after the loop polled for I/O
    /// (`uv_check_t`).
    Check, sys::uv_check_t, sys::uv_check_init, sys::uv_check_start, sys::uv_check_stop,
    on_check, "check"
);
