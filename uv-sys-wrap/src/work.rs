//! Running closures on libuv's thread pool (`uv_queue_work`).

use std::ffi::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::r#loop::AsLoop;
use crate::request::{Pending, RawReq, Req};

/// `uv_work_t` plus a pointer to the part of the request block the pool thread may touch.
///
/// The rest of the block (the loop's `Rc`s, the after-callback) is not `Send`: the pool thread
/// reaches the work closure and the result slot only through `pool_data`, never through the
/// block.
#[repr(C)]
struct WorkReq {
    raw: sys::uv_work_t,
    // INVARIANT: set before `uv_queue_work` to the `WorkData<W, T>` of the same request block,
    // which stays at that address until the after-work callback reclaims the block.
    pool_data: *mut c_void,
}

// SAFETY: WorkReq starts with uv_work_t, which starts with the uv_req_t fields (repr(C)); all
// zero bytes are a valid uv_work_t and a null pointer.
unsafe impl RawReq for WorkReq {}

/// What crosses to the pool thread and back: the closure going there, its result coming back.
struct WorkData<W, T> {
    work: Option<W>,
    result: Option<std::thread::Result<T>>,
}

/// Runs `work` on libuv's thread pool, then `after` with its result on the loop thread
/// (`uv_queue_work`).
///
/// `work` must be `Send`, and so must its result; `after` stays on the loop thread and need not
/// be. A panic in `work` is caught on the pool thread and resumed on the loop thread in place
/// of `after`: it stops the loop and [`Loop::run`](crate::Loop::run) re-raises it.
///
/// The returned token cancels the work if it has not started; `after` then gets
/// [`Error::ECANCELED`]. The thread pool is shared by every loop of the process and also runs
/// [`getaddrinfo`](crate::getaddrinfo) lookups; its size is set by `UV_THREADPOOL_SIZE`
/// (default 4).
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, RunMode, queue_work};
/// use std::{cell::Cell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let sum = Rc::new(Cell::new(0u64));
/// let s = sum.clone();
/// queue_work(&lp, || (1..=100u64).sum::<u64>(), move |res| s.set(res.unwrap()))?;
/// lp.run(RunMode::Default);
/// assert_eq!(sum.get(), 5050);
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub fn queue_work<T, W, A>(lp: &impl AsLoop, work: W, after: A) -> Result<Pending>
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
    A: FnOnce(Result<T>) + 'static,
{
    let shared = lp.loop_shared();
    let uv_loop = shared.raw()?;
    let data = WorkData {
        work: Some(work),
        result: None,
    };
    let pending =
        Req::<WorkReq, WorkData<W, T>, A>::submit(shared, data, after, true, |req, d| {
            // SAFETY: `req` and `d` point into the freshly allocated request block, which libuv
            // holds until `on_after_work` reclaims it; `d` does not move meanwhile.
            unsafe {
                (*req).pool_data = d.cast();
                sys::uv_queue_work(
                    uv_loop,
                    &raw mut (*req).raw,
                    Some(on_work::<W, T>),
                    Some(on_after_work::<W, T, A>),
                )
            }
        })?;
    Ok(pending.expect("a cancellable request gives a token"))
}

/// Runs on a pool thread.
unsafe extern "C" fn on_work<W, T>(req: *mut sys::uv_work_t)
where
    W: FnOnce() -> T + Send,
    T: Send,
{
    // SAFETY: `req` is the `raw` field of a WorkReq (repr(C), first field) whose `pool_data`
    // was set before submission. Between submission and the after-work callback the loop
    // thread does not touch the block's data (it may only `uv_cancel`, which touches libuv's
    // fields under libuv's lock), so this thread has exclusive access to the WorkData. That
    // holds a `Send` closure and a `Send` result only; the non-`Send` parts of the block are
    // never reached.
    let data = unsafe { &mut *(*req.cast::<WorkReq>()).pool_data.cast::<WorkData<W, T>>() };
    if let Some(work) = data.work.take() {
        data.result = Some(panic::catch_unwind(AssertUnwindSafe(work)));
    }
}

/// Runs on the loop thread once the work is done or cancelled.
unsafe extern "C" fn on_after_work<W, T, A>(req: *mut sys::uv_work_t, status: c_int)
where
    A: FnOnce(Result<T>),
{
    // SAFETY: libuv completes a request submitted by `queue_work::<T, W, A>` exactly once; the
    // uv_work_t is the start of its WorkReq. The pool thread is done with the data: libuv's
    // queue handoff orders its writes before this call.
    let done = unsafe { Req::<WorkReq, WorkData<W, T>, A>::complete(req.cast()) };
    done.run(|data, after| match data.result {
        Some(Ok(value)) => after(Ok(value)),
        // Resumed inside the loop's catch, which stores it for `Loop::run` to re-raise.
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => after(Err(Error::check(status).err().unwrap_or(Error::ECANCELED))),
    });
}
