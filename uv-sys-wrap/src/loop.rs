//! The event loop (`uv_loop_t`).

use std::any::Any;
use std::cell::Cell;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Duration;

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::handle::{self, HandleType};

/// How [`Loop::run`] runs the loop (`uv_run_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Run until no active and referenced handles or requests are left, or [`Loop::stop`] is
    /// called (`UV_RUN_DEFAULT`).
    Default,
    /// Poll for I/O once, blocking if nothing is pending (`UV_RUN_ONCE`).
    Once,
    /// Poll for I/O once without blocking (`UV_RUN_NOWAIT`).
    NoWait,
}

/// State shared by a loop and everything created on it; outlives the `uv_loop_t` itself so
/// that handle owners dropped after [`Loop::close`] can still account for themselves.
#[doc(hidden)]
pub struct LoopShared {
    /// The loop; only dereferenced from callbacks, which run inside `uv_run` while it is alive.
    lp: *mut sys::uv_loop_t,
    /// The first panic caught in a callback of the current `run`, resumed when `uv_run` returns.
    panic: Cell<Option<Box<dyn Any + Send>>>,
    /// Handle blocks allocated and not yet freed.
    pub(crate) live_handles: Cell<usize>,
    /// Request blocks submitted and not yet completed.
    pub(crate) live_requests: Cell<usize>,
    /// Set once the `uv_loop_t` is gone: no new handle or request may use it.
    closed: Cell<bool>,
}

impl LoopShared {
    /// Runs a user callback, keeping a panic from unwinding into libuv: the panic is stored,
    /// the loop is stopped and [`Loop::run`] resumes the panic once `uv_run` has returned.
    pub(crate) fn catch(&self, f: impl FnOnce()) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
            let first = self.panic.take();
            self.panic.set(Some(first.unwrap_or(payload)));
            // SAFETY: callbacks only run inside uv_run on `lp`, which is alive then.
            unsafe { sys::uv_stop(self.lp) };
        }
    }

    /// The loop, or `EBADF` once it has been closed.
    pub(crate) fn raw(&self) -> Result<*mut sys::uv_loop_t> {
        if self.closed.get() {
            Err(Error::EBADF)
        } else {
            Ok(self.lp)
        }
    }

    fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.panic.take()
    }
}

/// What [`Loop::walk`] reports about a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleInfo {
    /// The handle's type.
    pub kind: HandleType,
    /// `uv_is_active`.
    pub active: bool,
    /// `uv_is_closing`.
    pub closing: bool,
    /// `uv_has_ref`.
    pub referenced: bool,
}

/// A clonable reference to a [`Loop`] for creating handles and requests on it, e.g. from a
/// callback accepting a connection. Once the loop is closed, creating anything on it fails with
/// [`Error::EBADF`]. Every handle gives one with [`Handle::loop_handle`](crate::Handle::loop_handle).
#[derive(Clone)]
pub struct LoopHandle {
    shared: Rc<LoopShared>,
}

impl LoopHandle {
    pub(crate) fn from_shared(shared: Rc<LoopShared>) -> LoopHandle {
        LoopHandle { shared }
    }

    /// True once the loop has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.get()
    }
}

impl std::fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopHandle")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Something handles can be created on: a [`Loop`] or a [`LoopHandle`].
pub trait AsLoop: sealed::Sealed {
    #[doc(hidden)]
    fn loop_shared(&self) -> &Rc<LoopShared>;
}

impl AsLoop for Loop {
    fn loop_shared(&self) -> &Rc<LoopShared> {
        &self.shared
    }
}

impl AsLoop for LoopHandle {
    fn loop_shared(&self) -> &Rc<LoopShared> {
        &self.shared
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Loop {}
    impl Sealed for super::LoopHandle {}
}

/// A libuv event loop, made with `uv_loop_init` (never the process-wide default loop).
///
/// Handles and requests are created on a loop by passing `&Loop` to their constructors. A handle
/// may outlive its loop: [`Loop::close`] (also run on drop) closes every handle still open, and
/// the methods of such a handle then fail with [`Error::EBADF`].
///
/// A panic in any callback is caught before it reaches libuv, stops the loop, and is resumed by
/// [`Loop::run`] once `uv_run` has returned.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, RunMode, Timer};
/// use std::{cell::Cell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let fired = Rc::new(Cell::new(false));
/// let timer = Timer::new(&lp)?;
/// let f = fired.clone();
/// timer.start(10, 0, move |_| f.set(true))?;
/// lp.run(RunMode::Default);
/// assert!(fired.get());
/// drop(timer);
/// assert_eq!(lp.close()?, 0, "no handle was left open");
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Loop {
    // INVARIANT: points to a `uv_loop_t` initialised by `uv_loop_init` whose `data` field is
    // null; it is freed only after `uv_loop_close` returned 0 (otherwise leaked).
    raw: NonNull<sys::uv_loop_t>,
    shared: Rc<LoopShared>,
    running: Cell<bool>,
    closed: Cell<bool>,
    _not_send: PhantomData<*mut ()>,
}

impl Loop {
    /// Creates a loop (`uv_loop_init`).
    pub fn new() -> Result<Loop> {
        // SAFETY: uv_loop_t is a plain C struct for which all-zero bytes are a valid value;
        // uv_loop_init initialises it.
        let boxed: Box<sys::uv_loop_t> = Box::new(unsafe { std::mem::zeroed() });
        let raw = Box::into_raw(boxed);
        // SAFETY: `raw` points to a live, writable, never-moving uv_loop_t.
        let ret = unsafe { sys::uv_loop_init(raw) };
        if let Err(err) = Error::check(ret) {
            // SAFETY: uv_loop_init failed, libuv holds no pointer to `raw`; it came from
            // Box::into_raw above.
            drop(unsafe { Box::from_raw(raw) });
            return Err(err);
        }
        Ok(Loop {
            // SAFETY: Box::into_raw never returns null.
            raw: unsafe { NonNull::new_unchecked(raw) },
            shared: Rc::new(LoopShared {
                lp: raw,
                panic: Cell::new(None),
                live_handles: Cell::new(0),
                live_requests: Cell::new(0),
                closed: Cell::new(false),
            }),
            running: Cell::new(false),
            closed: Cell::new(false),
            _not_send: PhantomData,
        })
    }

    /// The raw `uv_loop_t`, for crates building on this one. It stays valid while `self` lives.
    ///
    /// Handles created directly on it through [`sys`](crate::sys) must be closed by their
    /// creator before [`Loop::close`]: it assumes every open handle is one of this crate's.
    pub fn as_ptr(&self) -> *mut sys::uv_loop_t {
        self.raw.as_ptr()
    }

    /// A cheap, clonable reference for creating handles on this loop from its callbacks.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs the loop (`uv_run`) and returns whether active handles or requests are left.
    ///
    /// # Panics
    ///
    /// Resumes the first panic raised by a callback during this run. Panics if called from one
    /// of this loop's callbacks (libuv's `uv_run` is not reentrant).
    pub fn run(&self, mode: RunMode) -> bool {
        assert!(
            !self.running.get(),
            "Loop::run called from inside the same loop's callback"
        );
        self.running.set(true);
        let mode = match mode {
            RunMode::Default => sys::uv_run_mode_UV_RUN_DEFAULT,
            RunMode::Once => sys::uv_run_mode_UV_RUN_ONCE,
            RunMode::NoWait => sys::uv_run_mode_UV_RUN_NOWAIT,
        };
        // SAFETY: the loop is initialised and not running (checked above).
        let alive = unsafe { sys::uv_run(self.raw.as_ptr(), mode) } != 0;
        self.running.set(false);
        if let Some(payload) = self.shared.take_panic() {
            panic::resume_unwind(payload);
        }
        alive
    }

    /// Makes the running [`Loop::run`] return at the end of this iteration (`uv_stop`).
    pub fn stop(&self) {
        // SAFETY: the loop is initialised.
        unsafe { sys::uv_stop(self.raw.as_ptr()) }
    }

    /// The loop's cached time in milliseconds (`uv_now`).
    pub fn now(&self) -> u64 {
        // SAFETY: the loop is initialised.
        unsafe { sys::uv_now(self.raw.as_ptr()) }
    }

    /// Refreshes the cached time (`uv_update_time`).
    pub fn update_time(&self) {
        // SAFETY: the loop is initialised.
        unsafe { sys::uv_update_time(self.raw.as_ptr()) }
    }

    /// True if there are active and referenced handles or requests, or closing handles
    /// (`uv_loop_alive`).
    pub fn alive(&self) -> bool {
        // SAFETY: the loop is initialised.
        unsafe { sys::uv_loop_alive(self.raw.as_ptr()) != 0 }
    }

    /// How long the next poll would block, or `None` for "indefinitely" (`uv_backend_timeout`).
    pub fn backend_timeout(&self) -> Option<Duration> {
        // SAFETY: the loop is initialised.
        let ms = unsafe { sys::uv_backend_timeout(self.raw.as_ptr()) };
        u64::try_from(ms).ok().map(Duration::from_millis)
    }

    /// Calls `f` for every handle of the loop that is not internal to libuv (`uv_walk`).
    ///
    /// # Panics
    ///
    /// Resumes a panic of `f` once the walk is over (the walk stops calling `f` after it).
    pub fn walk(&self, mut f: impl FnMut(HandleInfo)) {
        unsafe extern "C" fn visit(h: *mut sys::uv_handle_t, arg: *mut c_void) {
            // SAFETY: `arg` is the `&mut dyn FnMut` passed to uv_walk below, alive for the call.
            let f = unsafe { &mut *arg.cast::<&mut dyn FnMut(HandleInfo)>() };
            // SAFETY: uv_walk passes live handles of the loop.
            f(unsafe { handle::info(h) });
        }
        let mut caught = None;
        let mut guarded = |info: HandleInfo| {
            if caught.is_none()
                && let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| f(info)))
            {
                caught = Some(p);
            }
        };
        let mut obj: &mut dyn FnMut(HandleInfo) = &mut guarded;
        // SAFETY: the loop is initialised; `obj` outlives the call and `visit` only uses it
        // during the call. `guarded` never unwinds into libuv.
        unsafe {
            sys::uv_walk(
                self.raw.as_ptr(),
                Some(visit),
                (&mut obj as *mut &mut dyn FnMut(HandleInfo)).cast(),
            )
        };
        if let Some(p) = caught {
            panic::resume_unwind(p);
        }
    }

    /// Number of handles created on this loop whose memory is not yet released: open handles,
    /// and closed ones whose close callback has not run yet.
    pub fn live_handles(&self) -> usize {
        self.shared.live_handles.get()
    }

    /// Number of requests (writes, connects, lookups, work items...) submitted and not yet
    /// completed.
    pub fn live_requests(&self) -> usize {
        self.shared.live_requests.get()
    }

    /// Closes the loop: closes every handle still open, runs the loop until all close callbacks
    /// and pending requests have completed, then calls `uv_loop_close`.
    ///
    /// Returns how many handles were still open, which tests use to assert that nothing
    /// leaked (`assert_eq!(lp.close()?, 0)`).
    ///
    /// # Errors
    ///
    /// `EBUSY` if the loop could not be emptied (callbacks kept creating new handles); the loop's
    /// memory is then leaked rather than freed under libuv's feet.
    ///
    /// # Panics
    ///
    /// Resumes a panic raised by a close callback.
    pub fn close(self) -> Result<usize> {
        self.close_inner()
    }

    fn close_inner(&self) -> Result<usize> {
        if self.closed.replace(true) {
            return Ok(0);
        }
        let lp = self.raw.as_ptr();
        let mut left_open = 0;
        let mut panic = None;
        // Each round closes what is open and lets libuv finish; a close callback may open new
        // handles, so a few rounds are allowed before giving up.
        for _ in 0..16 {
            left_open += handle::close_all(lp);
            // SAFETY: the loop is initialised and not running (close takes it by value, and
            // Drop cannot run while `run` borrows it).
            unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
            if let Some(p) = self.shared.take_panic() {
                panic.get_or_insert(p);
            }
            // SAFETY: the loop is initialised and not running.
            if unsafe { sys::uv_loop_close(lp) } == 0 {
                self.shared.closed.set(true);
                // SAFETY: uv_loop_close succeeded, libuv holds no pointer into the loop any
                // more; the memory came from Box::into_raw in `new`.
                drop(unsafe { Box::from_raw(lp) });
                if let Some(p) = panic {
                    if !std::thread::panicking() {
                        panic::resume_unwind(p);
                    }
                }
                return Ok(left_open);
            }
        }
        // Leak the loop: freeing it while libuv still references it would be unsound.
        Err(Error::EBUSY)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

impl std::fmt::Debug for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("alive", &(!self.closed.get() && self.alive()))
            .field("live_handles", &self.live_handles())
            .field("live_requests", &self.live_requests())
            .finish()
    }
}
