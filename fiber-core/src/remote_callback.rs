//! Completing a [`SwitchBack`] from any thread.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;

use crate::error::Result;
use crate::hub::Hub;
use crate::remote::RemoteHub;
use crate::switch_back::{Callback, SwitchBack};

thread_local! {
    /// The callbacks reachable from other threads, by id. Its address identifies the thread.
    static REGISTRY: RefCell<HashMap<u64, Box<dyn Any>>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

/// An identity for the current thread that costs one TLS address computation; 0 (nobody's)
/// once the thread's locals are being destroyed.
fn thread_token() -> usize {
    REGISTRY.try_with(|r| r as *const _ as usize).unwrap_or(0)
}

/// The `Send` side of a [`SwitchBack`]: [`call`](Self::call) completes the wait from any thread
/// (Gruvi's thread-safe `switch_back`). From the waiting fiber's own thread the call is direct;
/// from another thread it goes through the Hub's [`RemoteHub`] queue.
///
/// While it exists, the Hub knows another thread may still complete the wait, so it does not
/// report a deadlock. This is what the cross-thread sync primitives build on.
///
/// # Examples
///
/// ```
/// use fiber_core::SwitchBack;
///
/// fiber_core::run(|| {
///     let sb = SwitchBack::new();
///     let done = sb.remote_callback();
///     std::thread::spawn(move || done.call(6 * 7).unwrap());
///     assert_eq!(sb.wait(), Ok(42));
/// });
/// ```
pub struct RemoteCallback<T: Send + 'static> {
    owner: usize,
    id: u64,
    remote: RemoteHub,
    _value: PhantomData<fn(T)>,
}

impl<T: Send + 'static> SwitchBack<T> {
    /// A callback that may be sent to and called from another thread.
    pub fn remote_callback(&self) -> RemoteCallback<T> {
        let id = NEXT_ID.with(|n| n.replace(n.get() + 1));
        let callback: Callback<T> = self.callback();
        REGISTRY.with(|r| r.borrow_mut().insert(id, Box::new(callback)));
        RemoteCallback {
            owner: thread_token(),
            id,
            remote: Hub::current().remote(),
            _value: PhantomData,
        }
    }
}

impl<T: Send + 'static> RemoteCallback<T> {
    /// Completes the wait with `value` (the first call of any of the wait's callbacks wins;
    /// later ones are dropped). Never switches.
    ///
    /// # Errors
    ///
    /// [`Error::HubClosed`](crate::Error::HubClosed) if the waiter's Hub is gone.
    pub fn call(&self, value: T) -> Result<()> {
        let id = self.id;
        if thread_token() == self.owner {
            fire(id, value);
            Ok(())
        } else {
            self.remote.run_callback(move || fire(id, value))
        }
    }
}

/// Calls the registered callback `id` on this thread, if it is still there.
fn fire<T: 'static>(id: u64, value: T) {
    let callback = REGISTRY
        .try_with(|r| {
            r.borrow()
                .get(&id)
                .and_then(|cb| cb.downcast_ref::<Callback<T>>())
                .cloned()
        })
        .ok()
        .flatten();
    if let Some(callback) = callback {
        callback.call(value);
    }
}

/// Forgets every callback registered on this thread (its Hub is closing). Nothing to do once
/// the thread's locals are being destroyed: the registry goes with them.
pub(crate) fn clear_registry() {
    let entries = REGISTRY.try_with(|r| std::mem::take(&mut *r.borrow_mut()));
    drop(entries);
}

impl<T: Send + 'static> Drop for RemoteCallback<T> {
    fn drop(&mut self) {
        let id = self.id;
        let forget = move || {
            // The entry may hold the last reference to the wait's state: drop it outside the
            // registry borrow.
            let entry = REGISTRY.try_with(|r| r.borrow_mut().remove(&id));
            drop(entry);
        };
        if thread_token() == self.owner {
            forget();
        } else {
            // Ignored if the Hub is closed: its thread's registry goes with it.
            let _ = self.remote.run_callback(forget);
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for RemoteCallback<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCallback")
            .field("id", &self.id)
            .finish()
    }
}
