//! [`Waitable`]: anything [`wait`](crate::wait) and [`as_completed`](crate::as_completed) can
//! wait on, through done callbacks (Gruvi's `add_done_callback`/`remove_done_callback`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fiber::{Fiber, FiberInner, FiberState};
use crate::hub::panic_message;
use crate::join::JoinHandle;
use crate::no_switch::NoSwitch;

/// A callback run once when a [`Waitable`] is done. It may run on any thread (whichever
/// completes the object) and always in a no-switch section: it must not block.
pub type DoneCallback = Box<dyn FnOnce() + Send>;

/// Names a registered [`DoneCallback`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

impl CallbackId {
    fn next() -> CallbackId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        CallbackId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Something that becomes done once and tells callbacks about it: fibers ([`JoinHandle`],
/// [`Fiber`]), [`Event`](crate::Event)s, [`Promise`](crate::Promise)s, and child processes
/// (`gruvi_stream::Child`).
/// Implement it with [`DoneCallbacks`] to make your own objects work with
/// [`wait`](crate::wait) and [`as_completed`](crate::as_completed).
pub trait Waitable {
    /// Arranges for `callback` to run once, when the object is done. If it is done already,
    /// `callback` runs at once (in a no-switch section) and `None` is returned.
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId>;

    /// Removes a callback that has not run yet; false if it ran or was removed already.
    fn remove_done_callback(&self, id: CallbackId) -> bool;
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        (**self).add_done_callback(callback)
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        (**self).remove_done_callback(id)
    }
}

impl<W: Waitable + ?Sized> Waitable for Arc<W> {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        (**self).add_done_callback(callback)
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        (**self).remove_done_callback(id)
    }
}

impl<W: Waitable + ?Sized> Waitable for Rc<W> {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        (**self).add_done_callback(callback)
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        (**self).remove_done_callback(id)
    }
}

/// The done callbacks of one object: keep it under the object's own mutex, [`take`] them when
/// the object becomes done, and [`run`](Self::run) them after unlocking.
///
/// [`take`]: std::mem::take
#[derive(Default)]
pub struct DoneCallbacks {
    list: Vec<(CallbackId, DoneCallback)>,
}

impl DoneCallbacks {
    /// No callbacks.
    pub const fn new() -> DoneCallbacks {
        DoneCallbacks { list: Vec::new() }
    }

    /// Adds `callback`; returns its id for [`remove`](Self::remove).
    pub fn add(&mut self, callback: DoneCallback) -> CallbackId {
        let id = CallbackId::next();
        self.list.push((id, callback));
        id
    }

    /// Removes callback `id`; false if it is not here (ran or removed already).
    pub fn remove(&mut self, id: CallbackId) -> bool {
        match self.list.iter().position(|(i, _)| *i == id) {
            Some(at) => {
                // Dropped here: a callback owns nothing that could call back into the object.
                drop(self.list.remove(at));
                true
            }
            None => false,
        }
    }

    /// How many callbacks are registered.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Runs every callback, in the order they were added, in a no-switch section. A callback
    /// that panics is reported on stderr and the others still run.
    pub fn run(self) {
        let _guard = NoSwitch::enter();
        for (_, callback) in self.list {
            run_one(callback);
        }
    }
}

/// Runs one callback, reporting a panic instead of unwinding into the completer.
fn run_one(callback: DoneCallback) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(callback)) {
        eprintln!(
            "gruvi: a done callback panicked: {}",
            panic_message(&*payload)
        );
    }
}

/// Runs `callback` now, for an object that is done already.
pub(crate) fn run_now(callback: DoneCallback) {
    let _guard = NoSwitch::enter();
    run_one(callback);
}

impl fmt::Debug for DoneCallbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoneCallbacks")
            .field("len", &self.len())
            .finish()
    }
}

type FiberCallback = Rc<RefCell<Option<DoneCallback>>>;

thread_local! {
    /// Done callbacks registered on this thread's fibers, by id, for removal. A fiber's own
    /// list of finish hooks cannot remove entries, so a removed callback leaves an empty hook
    /// there (freed when the fiber finishes) and is dropped at once.
    static FIBER_CALLBACKS: RefCell<HashMap<CallbackId, Weak<RefCell<Option<DoneCallback>>>>> =
        RefCell::new(HashMap::new());
}

fn fiber_add(fiber: &FiberInner, callback: DoneCallback) -> Option<CallbackId> {
    if fiber.state.get() == FiberState::Done {
        run_now(callback);
        return None;
    }
    let id = CallbackId::next();
    let cell: FiberCallback = Rc::new(RefCell::new(Some(callback)));
    FIBER_CALLBACKS.with(|map| map.borrow_mut().insert(id, Rc::downgrade(&cell)));
    fiber.on_done.borrow_mut().push(Box::new(move || {
        let _ = FIBER_CALLBACKS.try_with(|map| map.borrow_mut().remove(&id));
        let callback = cell.borrow_mut().take();
        if let Some(callback) = callback {
            run_one(callback);
        }
    }));
    Some(id)
}

fn fiber_remove(id: CallbackId) -> bool {
    let cell = FIBER_CALLBACKS
        .with(|map| map.borrow_mut().remove(&id))
        .and_then(|weak| weak.upgrade());
    let callback = cell.and_then(|cell| cell.borrow_mut().take());
    callback.is_some()
}

/// Done when the fiber finishes (returns, panics, or is cancelled before it ran).
impl<T> Waitable for JoinHandle<T> {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        fiber_add(&self.fiber().inner, callback)
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        fiber_remove(id)
    }
}

/// Done when the fiber finishes.
impl Waitable for Fiber {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        fiber_add(&self.inner, callback)
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        fiber_remove(id)
    }
}
