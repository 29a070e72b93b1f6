//! Reaching a Hub from other threads: a queue of `Send` callbacks and a libuv async handle that
//! wakes the loop.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use uv_sys_wrap::{Async, AsyncSender, Handle, Loop};

use crate::error::{Error, Result};

type Callback = Box<dyn FnOnce() + Send>;

/// What the Hub and its remote handles share.
struct Shared {
    queue: Mutex<VecDeque<Callback>>,
    /// Set when the queue may be non-empty, so the Hub need not lock it to find out.
    pending: AtomicBool,
    /// Live [`RemoteHub`]s: while any exists, another thread may send work, so the Hub never
    /// reports a deadlock.
    handles: AtomicUsize,
    closed: AtomicBool,
    sender: AsyncSender,
}

/// The Hub's side: owns the async handle.
pub(crate) struct Remote {
    shared: Arc<Shared>,
    /// Fibers of this Hub parked in a sync primitive: another thread may wake them, so while
    /// there are any the Hub must not report a deadlock.
    parked: std::cell::Cell<usize>,
    /// `None` once closed.
    wakeup: RefCell<Option<Async>>,
}

impl Remote {
    pub(crate) fn new(lp: &Loop) -> std::io::Result<Remote> {
        // The callback has nothing to do: waking the loop is the point; the scheduler drains
        // the queue when uv_run returns.
        let wakeup = Async::new(lp, |_| {})?;
        wakeup.unref();
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            pending: AtomicBool::new(false),
            handles: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            sender: wakeup.sender(),
        });
        Ok(Remote {
            shared,
            parked: std::cell::Cell::new(0),
            wakeup: RefCell::new(Some(wakeup)),
        })
    }

    pub(crate) fn handle(&self) -> RemoteHub {
        self.shared.handles.fetch_add(1, Ordering::SeqCst);
        RemoteHub {
            shared: self.shared.clone(),
            counted: true,
        }
    }

    /// A handle for the runtime's own cross-thread wake-ups, which does not count as "another
    /// thread may send work" (the sync primitives count their parked fibers instead).
    pub(crate) fn internal_handle(&self) -> RemoteHub {
        RemoteHub {
            shared: self.shared.clone(),
            counted: false,
        }
    }

    /// Counts fibers parked in sync primitives up or down.
    pub(crate) fn add_parked(&self, delta: isize) {
        self.parked
            .set(self.parked.get().wrapping_add_signed(delta));
    }

    /// Moves the callbacks other threads queued onto `out`, in order.
    pub(crate) fn drain_into(&self, out: &mut VecDeque<Box<dyn FnOnce()>>) {
        if !self.shared.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let mut queue = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        out.extend(queue.drain(..).map(|cb| cb as Box<dyn FnOnce()>));
    }

    /// Whether another thread could still wake the loop.
    pub(crate) fn keeps_alive(&self) -> bool {
        self.parked.get() > 0
            || self.shared.handles.load(Ordering::SeqCst) > 0
            || self.shared.pending.load(Ordering::SeqCst)
    }

    /// References the async handle (so the loop waits for it) or not.
    pub(crate) fn set_ref(&self, on: bool) {
        match &*self.wakeup.borrow() {
            Some(wakeup) if on => wakeup.ref_(),
            Some(wakeup) => wakeup.unref(),
            None => {}
        }
    }

    /// Refuses further callbacks, drops the queued ones and closes the async handle.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        drop(self.wakeup.take());
        let dropped: VecDeque<_> = std::mem::take(
            &mut *self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        drop(dropped);
    }
}

/// A handle to a Hub usable from any thread (`Send + Sync`, clonable).
///
/// While any `RemoteHub` exists, the Hub cannot know that nothing will ever wake its fibers, so
/// it does not report [`Error::WouldBlockForever`]: drop handles you no longer need.
///
/// # Examples
///
/// ```
/// use fiber_core::{Hub, SwitchBack};
///
/// let hub = Hub::current();
/// let remote = hub.remote();
/// let sb = SwitchBack::<()>::new();
/// let cb = sb.callback();
/// // Another thread queues work that runs on this thread's Hub.
/// let thread = std::thread::spawn(move || remote.run_callback(|| {}).unwrap());
/// thread.join().unwrap();
/// hub.run_callback(move || { cb.call(()); });
/// sb.wait()?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct RemoteHub {
    shared: Arc<Shared>,
    /// Whether it counts in `handles` (every handle given to users does).
    counted: bool,
}

impl RemoteHub {
    /// Queues `f` to run on the Hub's thread, inside a no-switch section. Callbacks from one
    /// thread run in the order they were queued.
    ///
    /// # Errors
    ///
    /// [`Error::HubClosed`] once the Hub is closed; `f` is dropped.
    pub fn run_callback(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::HubClosed);
        }
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Box::new(f));
        self.shared.pending.store(true, Ordering::SeqCst);
        self.shared.sender.send().map_err(|_| Error::HubClosed)
    }
}

impl Clone for RemoteHub {
    fn clone(&self) -> RemoteHub {
        if self.counted {
            self.shared.handles.fetch_add(1, Ordering::SeqCst);
        }
        RemoteHub {
            shared: self.shared.clone(),
            counted: self.counted,
        }
    }
}

impl Drop for RemoteHub {
    fn drop(&mut self) {
        if self.counted && self.shared.handles.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last handle is gone: let a blocked Hub re-check for a deadlock.
            let _ = self.shared.sender.send();
        }
    }
}

impl std::fmt::Debug for RemoteHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHub")
            .field("closed", &self.shared.closed.load(Ordering::SeqCst))
            .finish()
    }
}
