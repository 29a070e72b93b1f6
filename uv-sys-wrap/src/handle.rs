//! Handle ownership (`uv_handle_t`): one Rust owner per handle, memory freed in the close
//! callback.
//!
//! Every handle lives in a heap block: a [`Header`], the libuv struct, and the handle's
//! callbacks. The handle's `data` field points to the block. The block is freed when both parties
//! are done with it: libuv (its close callback has run) and the Rust owner (dropped or closed).
//! Usually the owner goes first: dropping it calls `uv_close`, and the close callback frees the
//! block. When [`Loop::close`](crate::Loop::close) closes a handle whose owner still exists, the
//! close callback only marks the block closed; the owner's methods then fail with
//! [`Error::EBADF`] and dropping it frees the block.

use std::cell::{Cell, UnsafeCell};
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::rc::Rc;

use libuv_sys2 as sys;

use crate::callback::Callbacks;
use crate::error::{Error, Result};
use crate::r#loop::{AsLoop, HandleInfo, LoopHandle, LoopShared};

/// `uv_close` has been called.
const CLOSING: u8 = 1;
/// The close callback has run: libuv no longer uses the block.
const CLOSED: u8 = 2;
/// The Rust owner is gone: the close callback frees the block.
const OWNER_GONE: u8 = 4;

/// The type of a handle (`uv_handle_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandleType {
    /// `UV_ASYNC`
    Async,
    /// `UV_CHECK`
    Check,
    /// `UV_FS_EVENT`
    FsEvent,
    /// `UV_FS_POLL`
    FsPoll,
    /// `UV_IDLE`
    Idle,
    /// `UV_NAMED_PIPE`
    Pipe,
    /// `UV_POLL`
    Poll,
    /// `UV_PREPARE`
    Prepare,
    /// `UV_PROCESS`
    Process,
    /// `UV_TCP`
    Tcp,
    /// `UV_TIMER`
    Timer,
    /// `UV_TTY`
    Tty,
    /// `UV_UDP`
    Udp,
    /// `UV_SIGNAL`
    Signal,
    /// `UV_FILE`
    File,
    /// Any other value, including `UV_UNKNOWN_HANDLE`.
    Unknown,
}

impl HandleType {
    pub(crate) fn from_raw(t: sys::uv_handle_type) -> HandleType {
        match t {
            sys::uv_handle_type_UV_ASYNC => HandleType::Async,
            sys::uv_handle_type_UV_CHECK => HandleType::Check,
            sys::uv_handle_type_UV_FS_EVENT => HandleType::FsEvent,
            sys::uv_handle_type_UV_FS_POLL => HandleType::FsPoll,
            sys::uv_handle_type_UV_IDLE => HandleType::Idle,
            sys::uv_handle_type_UV_NAMED_PIPE => HandleType::Pipe,
            sys::uv_handle_type_UV_POLL => HandleType::Poll,
            sys::uv_handle_type_UV_PREPARE => HandleType::Prepare,
            sys::uv_handle_type_UV_PROCESS => HandleType::Process,
            sys::uv_handle_type_UV_TCP => HandleType::Tcp,
            sys::uv_handle_type_UV_TIMER => HandleType::Timer,
            sys::uv_handle_type_UV_TTY => HandleType::Tty,
            sys::uv_handle_type_UV_UDP => HandleType::Udp,
            sys::uv_handle_type_UV_SIGNAL => HandleType::Signal,
            sys::uv_handle_type_UV_FILE => HandleType::File,
            _ => HandleType::Unknown,
        }
    }
}

/// The part of a handle block every handle type shares; `uv_handle_t.data` points to it.
pub(crate) struct Header {
    state: Cell<u8>,
    shared: Rc<LoopShared>,
    /// Frees the whole block this header starts.
    free: unsafe fn(NonNull<Header>),
    /// Drops the block's callbacks (see [`Callbacks`]).
    clear: unsafe fn(NonNull<Header>),
    on_close: Cell<Option<Box<dyn FnOnce()>>>,
}

impl Drop for Header {
    fn drop(&mut self) {
        self.shared
            .live_handles
            .set(self.shared.live_handles.get() - 1);
    }
}

/// A handle's heap block. `repr(C)` with the header first, so a header pointer is a block
/// pointer.
#[repr(C)]
pub(crate) struct Block<R, C> {
    header: Header,
    raw: UnsafeCell<R>,
    cbs: C,
}

/// Marks the libuv handle structs; each starts with the `uv_handle_t` fields.
///
/// # Safety
///
/// Implementors must be libuv handle structs (`uv_timer_t`, `uv_tcp_t`, ...) whose layout starts
/// with `uv_handle_t`, valid when zeroed.
pub(crate) unsafe trait RawHandle {}

macro_rules! raw_handles {
    ($($t:ty),*) => {
        // SAFETY: each is a libuv handle struct starting with the uv_handle_t fields; all are
        // plain C structs for which all-zero bytes are valid.
        $(unsafe impl RawHandle for $t {})*
    };
}
raw_handles!(
    sys::uv_timer_t,
    sys::uv_idle_t,
    sys::uv_prepare_t,
    sys::uv_check_t,
    sys::uv_async_t,
    sys::uv_signal_t,
    sys::uv_poll_t,
    sys::uv_tcp_t,
    sys::uv_pipe_t,
    sys::uv_tty_t,
    sys::uv_udp_t,
    sys::uv_process_t
);

/// The single owner of a handle block.
pub(crate) struct Owned<R: RawHandle, C: Callbacks> {
    // INVARIANT: points to a block made by `Owned::new` and initialised by libuv; it stays
    // allocated at least until this owner is dropped or closed (OWNER_GONE set), because the
    // close callback frees it only once OWNER_GONE is set.
    ptr: NonNull<Block<R, C>>,
    _not_send: PhantomData<(Box<Block<R, C>>, *mut ())>,
}

impl<R: RawHandle, C: Callbacks> Owned<R, C> {
    /// Allocates a block and initialises the handle with `init(loop, handle)` (`uv_*_init`).
    pub(crate) fn new(
        lp: &impl AsLoop,
        cbs: C,
        init: impl FnOnce(*mut sys::uv_loop_t, *mut R) -> std::ffi::c_int,
    ) -> Result<Self> {
        let shared = lp.loop_shared().clone();
        let uv_loop = shared.raw()?;
        shared.live_handles.set(shared.live_handles.get() + 1);
        let block = Box::new(Block {
            header: Header {
                state: Cell::new(0),
                shared,
                free: free_block::<R, C>,
                clear: clear_block::<R, C>,
                on_close: Cell::new(None),
            },
            // SAFETY: R is a libuv handle struct, valid when zeroed (RawHandle contract).
            raw: UnsafeCell::new(unsafe { std::mem::zeroed() }),
            cbs,
        });
        let ptr = Box::into_raw(block);
        // SAFETY: `ptr` is a live block; `raw` is a field of it.
        let raw = unsafe { UnsafeCell::raw_get(&raw const (*ptr).raw) };
        if let Err(err) = Error::check(init(uv_loop, raw)) {
            // SAFETY: init failed, so libuv holds no pointer to the block; it came from
            // Box::into_raw above.
            drop(unsafe { Box::from_raw(ptr) });
            return Err(err);
        }
        // SAFETY: the handle is initialised and starts with uv_handle_t (RawHandle); `data` is
        // ours to use.
        unsafe { (*raw.cast::<sys::uv_handle_t>()).data = ptr.cast::<c_void>() };
        Ok(Owned {
            // SAFETY: Box::into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _not_send: PhantomData,
        })
    }

    /// Rebuilds an owner from a handle pointer libuv passed to a callback, for lending it to
    /// the callback as a borrowed view. The caller must never drop it (wrap it in
    /// `ManuallyDrop`).
    ///
    /// # Safety
    ///
    /// `raw` must be a handle made by `Owned::<R, C>::new` whose block is still allocated, as
    /// it is for the duration of any libuv callback on it.
    pub(crate) unsafe fn borrowed(raw: *mut R) -> Self {
        // SAFETY: the caller guarantees `raw` is one of our initialised handles, whose `data`
        // points to its block (set in `new`, never changed).
        let data = unsafe { (*raw.cast::<sys::uv_handle_t>()).data };
        Owned {
            // SAFETY: `data` is the non-null block pointer stored by `new`.
            ptr: unsafe { NonNull::new_unchecked(data.cast()) },
            _not_send: PhantomData,
        }
    }

    fn block(&self) -> &Block<R, C> {
        // SAFETY: the block is allocated while the owner lives (type invariant); libuv only
        // mutates the `raw` field, which is an UnsafeCell.
        unsafe { self.ptr.as_ref() }
    }

    /// The handle's callbacks.
    pub(crate) fn cbs(&self) -> &C {
        &self.block().cbs
    }

    /// The libuv handle, or `EBADF` once it is closing.
    pub(crate) fn raw(&self) -> Result<*mut R> {
        if self.block().header.state.get() & CLOSING != 0 {
            return Err(Error::EBADF);
        }
        Ok(self.raw_unchecked())
    }

    /// The libuv handle even when it is closing: only for reading its fields.
    pub(crate) fn raw_unchecked(&self) -> *mut R {
        self.block().raw.get()
    }

    pub(crate) fn as_handle(&self) -> *mut sys::uv_handle_t {
        self.raw_unchecked().cast()
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.block().header.state.get() & CLOSING != 0
    }

    /// Runs a user callback, catching a panic (see [`LoopShared::catch`]).
    pub(crate) fn catch(&self, f: impl FnOnce()) {
        self.block().header.shared.catch(f);
    }

    /// The loop's shared state.
    pub(crate) fn shared(&self) -> &Rc<LoopShared> {
        &self.block().header.shared
    }

    /// Hands the close to a libuv function that calls `uv_close` itself on success (such as
    /// `uv_tcp_close_reset`), giving it our close callback.
    pub(crate) fn close_by(
        self,
        f: impl FnOnce(*mut R, sys::uv_close_cb) -> std::ffi::c_int,
    ) -> Result<()> {
        let raw = self.raw()?;
        Error::check(f(raw, Some(on_close_cb)))?;
        let header = &self.block().header;
        header.state.set(header.state.get() | CLOSING | OWNER_GONE);
        self.block().cbs.clear_all();
        std::mem::forget(self);
        Ok(())
    }

    /// Closes the handle (`uv_close`); `on_close` runs from the loop once libuv is done with it.
    /// If the loop already closed the handle, `on_close` is dropped without being called.
    pub(crate) fn close(self, on_close: Option<Box<dyn FnOnce()>>) {
        let this = std::mem::ManuallyDrop::new(self);
        this.release(on_close);
    }

    fn release(&self, on_close: Option<Box<dyn FnOnce()>>) {
        let header = &self.block().header;
        let state = header.state.get();
        if state & CLOSED != 0 {
            // SAFETY: libuv is done with the block and the owner is going away: nobody else
            // refers to it.
            unsafe { free_block::<R, C>(self.ptr.cast()) };
        } else if state & CLOSING != 0 {
            header.state.set(state | OWNER_GONE);
        } else {
            header.state.set(state | CLOSING | OWNER_GONE);
            header.on_close.set(on_close);
            // SAFETY: the handle is initialised and not closing; the block stays allocated
            // until `on_close_cb` frees it.
            unsafe { sys::uv_close(self.as_handle(), Some(on_close_cb)) };
            // libuv calls none of the handle's callbacks after uv_close: drop them (and what
            // they capture) now. One that is running is dropped when it returns.
            self.block().cbs.clear_all();
        }
    }
}

impl<R: RawHandle, C: Callbacks> Drop for Owned<R, C> {
    fn drop(&mut self) {
        self.release(None);
    }
}

/// Frees a handle block.
///
/// # Safety
///
/// `header` must start a `Block<R, C>` made by `Owned::<R, C>::new` that neither libuv nor any
/// owner will use again.
unsafe fn free_block<R, C>(header: NonNull<Header>) {
    // SAFETY: the header starts a Block<R, C> (repr(C)) allocated by Box in `Owned::new`, and
    // nobody uses it any more (caller contract).
    drop(unsafe { Box::from_raw(header.cast::<Block<R, C>>().as_ptr()) });
}

/// Drops the callbacks of a handle block.
///
/// # Safety
///
/// `header` must start a live `Block<R, C>` made by `Owned::<R, C>::new`.
unsafe fn clear_block<R, C: Callbacks>(header: NonNull<Header>) {
    // SAFETY: the header starts a live Block<R, C> (caller contract); only shared access.
    unsafe { header.cast::<Block<R, C>>().as_ref() }
        .cbs
        .clear_all();
}

/// The close callback of every handle: runs the user's close callback, marks the block closed,
/// and frees it if its owner is gone.
unsafe extern "C" fn on_close_cb(h: *mut sys::uv_handle_t) {
    // SAFETY: every handle is closed with this callback only after `Owned::new` set its `data`
    // to the block, which is allocated until this function frees it.
    let header = unsafe { &*(*h).data.cast::<Header>() };
    if let Some(cb) = header.on_close.take() {
        header.shared.catch(cb);
    }
    // Marked closed only after the user callback, so an owner dropped inside it defers the
    // free to us instead of freeing the block under our feet.
    let state = header.state.get() | CLOSED;
    header.state.set(state);
    if state & OWNER_GONE != 0 {
        let free = header.free;
        // SAFETY: libuv is done (this is the close callback) and the owner is gone.
        unsafe { free(NonNull::from(header)) };
    }
}

/// What `uv_walk` reports about a handle.
///
/// # Safety
///
/// `h` must be a live handle.
pub(crate) unsafe fn info(h: *mut sys::uv_handle_t) -> HandleInfo {
    // SAFETY: `h` is live (caller contract); these functions only read it.
    unsafe {
        HandleInfo {
            kind: HandleType::from_raw(sys::uv_handle_get_type(h)),
            active: sys::uv_is_active(h) != 0,
            closing: sys::uv_is_closing(h) != 0,
            referenced: sys::uv_has_ref(h) != 0,
        }
    }
}

/// Closes every handle of the loop that is not closing yet and drops their callbacks; returns
/// how many it closed. The owners of these handles stay valid: their methods fail with `EBADF`.
pub(crate) fn close_all(lp: *mut sys::uv_loop_t) -> usize {
    unsafe extern "C" fn visit(h: *mut sys::uv_handle_t, arg: *mut c_void) {
        // SAFETY: uv_walk passes live handles; `arg` is the vector below.
        unsafe {
            if sys::uv_is_closing(h) != 0 {
                return;
            }
            // Every handle of a Loop was made by Owned::new, so `data` is its header.
            let header = NonNull::new_unchecked((*h).data.cast::<Header>());
            let state = &header.as_ref().state;
            state.set(state.get() | CLOSING);
            sys::uv_close(h, Some(on_close_cb));
            (*arg.cast::<Vec<NonNull<Header>>>()).push(header);
        }
    }
    let mut closed: Vec<NonNull<Header>> = Vec::new();
    // SAFETY: the loop is initialised and not running; `closed` outlives the call.
    unsafe { sys::uv_walk(lp, Some(visit), (&raw mut closed).cast()) };
    // Callbacks are dropped after the walk: their captures may drop other handle owners.
    for header in &closed {
        // SAFETY: the blocks stay allocated until their close callbacks run, which happens only
        // in the next uv_run; `clear` matches the block type.
        unsafe { (header.as_ref().clear)(*header) };
    }
    closed.len()
}

/// Operations every handle supports.
///
/// Implemented by every handle type of this crate; it cannot be implemented outside it.
pub trait Handle: sealed::AsHandle + Sized {
    /// True while the handle is active (`uv_is_active`): a started timer, a reading stream...
    fn is_active(&self) -> bool {
        // SAFETY: the handle block is allocated while its owner lives; uv_is_active only reads.
        unsafe { sys::uv_is_active(self.handle_ptr()) != 0 }
    }

    /// True once the handle is closing or closed (`uv_is_closing`), including when its loop
    /// closed it.
    fn is_closing(&self) -> bool {
        self.handle_closing()
    }

    /// Makes the handle keep the loop alive again (`uv_ref`).
    fn ref_(&self) {
        if !self.handle_closing() {
            // SAFETY: the handle is initialised and open.
            unsafe { sys::uv_ref(self.handle_ptr()) }
        }
    }

    /// Stops the handle from keeping the loop alive (`uv_unref`).
    fn unref(&self) {
        if !self.handle_closing() {
            // SAFETY: the handle is initialised and open.
            unsafe { sys::uv_unref(self.handle_ptr()) }
        }
    }

    /// True if the handle keeps the loop alive (`uv_has_ref`).
    fn has_ref(&self) -> bool {
        // SAFETY: the handle block is allocated while its owner lives; uv_has_ref only reads.
        unsafe { sys::uv_has_ref(self.handle_ptr()) != 0 }
    }

    /// A reference to the handle's loop, for creating more handles on it.
    fn loop_handle(&self) -> LoopHandle {
        LoopHandle::from_shared(self.handle_shared().clone())
    }

    /// The handle's type (`uv_handle_get_type`).
    fn handle_type(&self) -> HandleType {
        // SAFETY: the handle block is allocated while its owner lives; this only reads.
        HandleType::from_raw(unsafe { sys::uv_handle_get_type(self.handle_ptr()) })
    }

    /// Closes the handle (`uv_close`). Dropping the owner does the same; the memory is freed
    /// from the loop once libuv is done with it.
    fn close(self) {
        self.close_handle(None)
    }

    /// Closes the handle and calls `cb` from the loop once the close has completed. If the
    /// loop was already closed (see [`Loop::close`](crate::Loop::close)), `cb` is never called.
    fn close_with(self, cb: impl FnOnce() + 'static) {
        self.close_handle(Some(Box::new(cb)))
    }
}

pub(crate) mod sealed {
    use super::*;

    /// Type-erased access to a handle owner, for the provided methods of [`Handle`].
    pub trait AsHandle {
        fn handle_ptr(&self) -> *mut sys::uv_handle_t;
        fn handle_closing(&self) -> bool;
        fn handle_shared(&self) -> &std::rc::Rc<LoopShared>;
        fn close_handle(self, cb: Option<Box<dyn FnOnce()>>);
    }
}

/// Implements [`Handle`] for a type whose field `$field` is an `Owned`.
macro_rules! impl_handle {
    ($t:ty, $field:ident) => {
        impl $crate::handle::sealed::AsHandle for $t {
            fn handle_ptr(&self) -> *mut ::libuv_sys2::uv_handle_t {
                self.$field.as_handle()
            }
            fn handle_closing(&self) -> bool {
                self.$field.is_closing()
            }
            fn handle_shared(&self) -> &::std::rc::Rc<$crate::r#loop::LoopShared> {
                self.$field.shared()
            }
            fn close_handle(self, cb: Option<Box<dyn FnOnce()>>) {
                self.$field.close(cb)
            }
        }
        impl $crate::handle::Handle for $t {}
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                use $crate::handle::Handle;
                f.debug_struct(stringify!($t))
                    .field("active", &self.is_active())
                    .field("closing", &self.is_closing())
                    .finish()
            }
        }
    };
}
pub(crate) use impl_handle;
