//! Unix signal watchers (`uv_signal_t`).

use std::mem::ManuallyDrop;

use libuv_sys2 as sys;

use crate::callback::Slot;
use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;

type SignalCb = dyn FnMut(&Signal, i32);

/// Watches for a Unix signal and calls its callback from the loop when it arrives
/// (`uv_signal_t`).
///
/// Signal dispositions are process-wide: while any signal handle (of any loop) watches a
/// signal, libuv's handler is installed for it and every handle watching it is called; when
/// the last one stops, the default disposition (`SIG_DFL`) is restored. Signals arriving in
/// quick succession may be coalesced into one callback.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, RunMode, Signal};
/// use std::{cell::Cell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let signal = Signal::new(&lp)?;
/// let got = Rc::new(Cell::new(0));
/// let g = got.clone();
/// signal.start_oneshot(libc::SIGUSR1, move |_, signum| g.set(signum))?;
/// // SAFETY: sending a signal to our own process, which now handles it.
/// assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) }, 0);
/// lp.run(RunMode::Default);
/// assert_eq!(got.get(), libc::SIGUSR1);
/// drop(signal);
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Signal {
    h: Owned<sys::uv_signal_t, Slot<SignalCb>>,
}

impl_handle!(Signal, h);

impl Signal {
    /// Creates a signal handle watching nothing yet (`uv_signal_init`).
    pub fn new(lp: &impl AsLoop) -> Result<Signal> {
        // SAFETY: `lp` and `s` are valid; uv_signal_init initialises `s`.
        let h = Owned::new(lp, Slot::new(), |lp, s| unsafe {
            sys::uv_signal_init(lp, s)
        })?;
        Ok(Signal { h })
    }

    /// Starts watching `signum` (`uv_signal_start`): `cb` runs with the signal number each
    /// time it arrives. Starting again replaces the callback; with another signal number it
    /// also switches to that signal, with the same number it keeps the handle's one-shot or
    /// repeating mode (stop first to change it).
    ///
    /// # Errors
    ///
    /// `EINVAL` for 0 or a signal that cannot be caught (`SIGKILL`, `SIGSTOP`, out of range).
    pub fn start(&self, signum: i32, cb: impl FnMut(&Signal, i32) + 'static) -> Result<()> {
        let raw = self.h.raw()?;
        self.h.cbs().set(Box::new(cb));
        // SAFETY: the handle is open; the callback lives in its block.
        Error::check(unsafe { sys::uv_signal_start(raw, Some(on_signal), signum) }).map(drop)
    }

    /// Like [`Signal::start`], but stops the handle after the first signal
    /// (`uv_signal_start_oneshot`).
    pub fn start_oneshot(
        &self,
        signum: i32,
        cb: impl FnOnce(&Signal, i32) + 'static,
    ) -> Result<()> {
        let raw = self.h.raw()?;
        let mut cb = Some(cb);
        self.h.cbs().set(Box::new(move |s: &Signal, n| {
            if let Some(cb) = cb.take() {
                cb(s, n)
            }
        }));
        // SAFETY: the handle is open; the callback lives in its block.
        Error::check(unsafe { sys::uv_signal_start_oneshot(raw, Some(on_signal), signum) })
            .map(drop)
    }

    /// Stops watching (`uv_signal_stop`). Idempotent.
    pub fn stop(&self) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_signal_stop(raw) }).map(drop)
    }

    /// The signal watched, `None` when stopped (also after a one-shot signal has arrived)
    /// (the `signum` field of `uv_signal_t`).
    pub fn signum(&self) -> Option<i32> {
        // SAFETY: the block is allocated while the owner lives; libuv writes `signum` only from
        // this thread (start, stop and the loop), so reading it here does not race.
        let signum = unsafe { (*self.h.raw_unchecked()).signum };
        (signum != 0).then_some(signum)
    }
}

unsafe extern "C" fn on_signal(raw: *mut sys::uv_signal_t, signum: i32) {
    // SAFETY: libuv calls this for handles started by `Signal::start*`, whose block is
    // allocated during the callback. The view is never dropped.
    let h = unsafe { Owned::borrowed(raw) };
    let signal = ManuallyDrop::new(Signal { h });
    signal.h.catch(|| {
        signal.h.cbs().with(|cb| cb(&signal, signum));
    });
}
