//! Request ownership (`uv_req_t`): a request owns its data until its callback has run.
//!
//! A request lives in a heap block holding the libuv struct, the data libuv reads or writes
//! (buffers, addresses) and the user's callback. The block is leaked to libuv on submission and
//! reclaimed by the completion callback, which alone frees it, so a caller that goes away early
//! can never leave libuv writing into freed memory.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::rc::Rc;

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::r#loop::LoopShared;

/// Marks the libuv request structs; each starts with the `uv_req_t` fields.
///
/// # Safety
///
/// Implementors must be libuv request structs whose layout starts with `uv_req_t`, valid when
/// zeroed.
pub(crate) unsafe trait RawReq {}

macro_rules! raw_reqs {
    ($($t:ty),*) => {
        // SAFETY: each is a libuv request struct starting with the uv_req_t fields; all are
        // plain C structs for which all-zero bytes are valid.
        $(unsafe impl RawReq for $t {})*
    };
}
raw_reqs!(
    sys::uv_write_t,
    sys::uv_connect_t,
    sys::uv_shutdown_t,
    sys::uv_udp_send_t,
    sys::uv_getaddrinfo_t,
    sys::uv_getnameinfo_t,
    sys::uv_work_t
);

/// Counts a request as live on its loop while it exists.
struct Live(Rc<LoopShared>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live_requests.set(self.0.live_requests.get() - 1);
    }
}

type PendingSlot = Rc<Cell<Option<NonNull<sys::uv_req_t>>>>;

/// A request's heap block; `repr(C)` with the libuv struct first.
#[repr(C)]
pub(crate) struct Req<R, D, F> {
    raw: UnsafeCell<R>,
    live: Live,
    pending: Option<PendingSlot>,
    data: D,
    cb: F,
}

/// What a completed request hands back to its completion callback.
pub(crate) struct Completed<D, F> {
    /// The request's data, for reading results out of it.
    pub(crate) data: D,
    /// The user's callback.
    pub(crate) cb: F,
    live: Live,
}

impl<D, F> Completed<D, F> {
    /// Runs `f` (which calls the user callback), catching a panic (see `LoopShared::catch`).
    pub(crate) fn run(self, f: impl FnOnce(D, F)) {
        let Completed { data, cb, live } = self;
        live.0.catch(move || f(data, cb));
    }
}

impl<R: RawReq, D, F> Req<R, D, F> {
    /// Allocates a request block and submits it with `submit(req, data)`; the data pointer
    /// given to `submit` stays valid until the completion callback reclaims the block with
    /// [`Req::complete`].
    ///
    /// On a submission error the block is freed at once and the callback is never called.
    /// With `cancellable`, returns a [`Pending`] token for `uv_cancel`.
    pub(crate) fn submit(
        shared: &Rc<LoopShared>,
        data: D,
        cb: F,
        cancellable: bool,
        submit: impl FnOnce(*mut R, *mut D) -> c_int,
    ) -> Result<Option<Pending>> {
        shared.live_requests.set(shared.live_requests.get() + 1);
        let pending: Option<PendingSlot> = cancellable.then(|| Rc::new(Cell::new(None)));
        let block: Box<Self> = Box::new(Req {
            // SAFETY: R is a libuv request struct, valid when zeroed (RawReq contract).
            raw: UnsafeCell::new(unsafe { std::mem::zeroed() }),
            live: Live(shared.clone()),
            pending: pending.clone(),
            data,
            cb,
        });
        let ptr = Box::into_raw(block);
        // SAFETY: `ptr` is a live block; these are its fields.
        let (raw, data) = unsafe {
            (
                UnsafeCell::raw_get(&raw const (*ptr).raw),
                &raw mut (*ptr).data,
            )
        };
        // SAFETY: `raw` starts with uv_req_t (RawReq); `data` is ours to use. libuv's submit
        // functions leave it alone.
        unsafe { (*raw.cast::<sys::uv_req_t>()).data = ptr.cast::<c_void>() };
        if let Err(err) = Error::check(submit(raw, data)) {
            // SAFETY: submission failed, libuv holds no pointer to the block; it came from
            // Box::into_raw above.
            drop(unsafe { Box::from_raw(ptr) });
            return Err(err);
        }
        Ok(pending.map(|slot| {
            slot.set(NonNull::new(raw.cast()));
            Pending { slot }
        }))
    }

    /// Reclaims a completed request's block.
    ///
    /// # Safety
    ///
    /// `raw` must be a request submitted by `Req::<R, D, F>::submit` whose completion callback
    /// is running now; it must be called exactly once per request.
    pub(crate) unsafe fn complete(raw: *mut R) -> Completed<D, F> {
        // SAFETY: `data` was set to the block by `submit`; the block is ours again now that
        // libuv completed the request (caller contract).
        let block = unsafe { Box::from_raw((*raw.cast::<sys::uv_req_t>()).data.cast::<Self>()) };
        let Req {
            live,
            pending,
            data,
            cb,
            ..
        } = *block;
        if let Some(slot) = pending {
            slot.set(None);
        }
        Completed { data, cb, live }
    }
}

/// A token for a request that can be cancelled (lookups, work items).
///
/// Dropping it does not cancel the request.
#[derive(Debug)]
pub struct Pending {
    slot: PendingSlot,
}

impl Pending {
    /// True until the request's callback has run.
    pub fn is_pending(&self) -> bool {
        self.slot.get().is_some()
    }

    /// Cancels the request if it has not started yet (`uv_cancel`). Its callback then runs with
    /// a cancellation error (`ECANCELED` or `EAI_CANCELED`).
    ///
    /// # Errors
    ///
    /// `EBUSY` if the request is already running or done.
    pub fn cancel(&self) -> Result<()> {
        match self.slot.get() {
            // SAFETY: the slot holds the request only while its block is allocated (cleared by
            // `Req::complete` before the block is freed).
            Some(req) => Error::check(unsafe { sys::uv_cancel(req.as_ptr()) }).map(drop),
            None => Err(Error::EBUSY),
        }
    }
}
