//! Waking a loop from another thread (`uv_async_t`).

use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex, PoisonError};

use libuv_sys2 as sys;

use crate::callback::{Callbacks, Slot};
use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;

/// The handle pointer senders use, cleared under the lock before the handle closes.
struct Target {
    // INVARIANT: while `Some`, points to an open uv_async_t whose block is allocated; the owner
    // sets it to `None` (holding the lock) before calling uv_close.
    raw: Option<*mut sys::uv_async_t>,
}

// SAFETY: the pointer is only used for uv_async_send, which libuv documents as callable from
// any thread, and only while the lock is held and the handle is known to be open.
unsafe impl Send for Target {}

type Shared = Arc<Mutex<Target>>;

/// The callbacks of an [`Async`]; clearing them also disconnects every [`AsyncSender`].
#[doc(hidden)]
pub struct AsyncCbs {
    cb: Slot<dyn FnMut(&Async)>,
    target: Shared,
}

impl Callbacks for AsyncCbs {
    fn clear_all(&self) {
        // Runs right after uv_close: no sender may touch the handle from now on. uv_close
        // itself is not a problem for a concurrent uv_async_send (libuv allows sends until the
        // close callback), and the lock orders this against any send in progress.
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .raw = None;
        self.cb.clear();
    }
}

/// Wakes its loop from any thread (`uv_async_t`): [`AsyncSender::send`] makes the loop call the
/// callback. Sends may coalesce: several sends before the loop wakes give one call.
///
/// The handle itself stays on its loop's thread; [`Async::sender`] gives the `Send + Clone`
/// part. A sender outliving the handle is harmless: its sends report that nothing was woken.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Async, Handle, Loop, RunMode};
/// use std::{cell::Cell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let woken = Rc::new(Cell::new(false));
/// let w = woken.clone();
/// let wakeup = Async::new(&lp, move |a| {
///     w.set(true);
///     a.unref(); // let the loop end
/// })?;
/// let sender = wakeup.sender();
/// std::thread::spawn(move || sender.send().unwrap()).join().unwrap();
/// lp.run(RunMode::Default);
/// assert!(woken.get());
/// drop(wakeup);
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Async {
    h: Owned<sys::uv_async_t, AsyncCbs>,
}

impl_handle!(Async, h);

impl Async {
    /// Creates the handle with its callback (`uv_async_init`). It is active at once and keeps
    /// the loop alive until closed or [`unref`](crate::Handle::unref)'d.
    pub fn new(lp: &impl AsLoop, cb: impl FnMut(&Async) + 'static) -> Result<Async> {
        let cbs = AsyncCbs {
            cb: Slot::new(),
            target: Arc::new(Mutex::new(Target { raw: None })),
        };
        cbs.cb.set(Box::new(cb));
        // SAFETY: `lp` and `a` are valid; uv_async_init initialises `a`.
        let h = Owned::new(lp, cbs, |lp, a| unsafe {
            sys::uv_async_init(lp, a, Some(on_async))
        })?;
        let raw = h.raw()?;
        h.cbs()
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .raw = Some(raw);
        Ok(Async { h })
    }

    /// A handle for waking this loop from other threads.
    pub fn sender(&self) -> AsyncSender {
        AsyncSender {
            target: self.h.cbs().target.clone(),
        }
    }

    /// Wakes the loop from its own thread (`uv_async_send`).
    pub fn send(&self) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_async_send(raw) }).map(drop)
    }
}

unsafe extern "C" fn on_async(raw: *mut sys::uv_async_t) {
    // SAFETY: libuv calls this for handles made by `Async::new`, whose block is allocated
    // during the callback. The view is never dropped.
    let h = unsafe { Owned::borrowed(raw) };
    let a = ManuallyDrop::new(Async { h });
    a.h.catch(|| {
        a.h.cbs().cb.with(|cb| cb(&a));
    });
}

/// The thread-safe side of an [`Async`]: `Send`, `Sync` and `Clone`.
#[derive(Clone)]
pub struct AsyncSender {
    target: Shared,
}

impl AsyncSender {
    /// Wakes the loop (`uv_async_send`). Callable from any thread.
    ///
    /// # Errors
    ///
    /// `EBADF` if the [`Async`] has been closed.
    pub fn send(&self) -> Result<()> {
        let target = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        match target.raw {
            // SAFETY: `Some` means the handle is open and allocated (Target invariant), and
            // the lock keeps the owner from closing it during the call.
            Some(raw) => Error::check(unsafe { sys::uv_async_send(raw) }).map(drop),
            None => Err(Error::EBADF),
        }
    }
}

impl std::fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSender").finish_non_exhaustive()
    }
}
