//! Parking the calling fiber (or a plain thread without a Hub) and waking it from any thread.
//!
//! A [`Parker`] stays with the waiting side; its [`Waker`] (plain data, `Send`) goes into a
//! primitive's waiter queue. A fiber's waker names a slot in its Hub's [`ParkTable`]: woken
//! from the Hub's own thread, it marks the slot and makes the fiber ready directly (no atomic
//! operation, no allocation, one thread-local look-up); from another thread, it sends the same
//! through the owning Hub's remote queue ([`RemoteHub::run_callback`]). The slot's generation
//! makes a late wake-up for a wait that has ended a no-op.
//!
//! Each Hub keeps one internal [`RemoteHub`], found by other threads through a process-wide
//! table by the Hub's token (only on the cross-thread path). While any fiber of the Hub is
//! parked here, the Hub counts it: another thread may release what the fiber waits for, so the
//! Hub must not report a deadlock then (the rule of [`RemoteCallback`](crate::RemoteCallback)).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::thread::{self, Thread};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::fiber::{FiberInner, Wake};
use crate::hub::Hub;
use crate::no_switch::assert_may_switch;
use crate::remote::RemoteHub;

/// Source of thread and Hub tokens: unique for the life of the process.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// The remote handle of each Hub that has parked fibers, by the Hub's token.
static REMOTES: RwLock<BTreeMap<u64, Weak<RemoteHub>>> = RwLock::new(BTreeMap::new());

thread_local! {
    static TOKEN: Cell<u64> = const { Cell::new(0) };
    /// The park-table token of this thread's Hub while it is installed (0: none), so that
    /// telling a waiter of this thread's Hub from others is one thread-local read.
    static HUB_TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// Records the token of the Hub now installed on this thread (0 when it leaves).
pub(crate) fn set_hub_token(token: u64) {
    // `try_with`: may run while the thread's locals are being destroyed.
    let _ = HUB_TOKEN.try_with(|t| t.set(token));
}

/// Forgets `token` as this thread's Hub (it is shutting down), if it is the one recorded.
pub(crate) fn clear_hub_token(token: u64) {
    let _ = HUB_TOKEN.try_with(|t| {
        if t.get() == token {
            t.set(0);
        }
    });
}

/// The token of this thread's installed Hub, 0 if none.
#[inline]
fn hub_token() -> u64 {
    HUB_TOKEN.try_with(Cell::get).unwrap_or(0)
}

/// Reads the table of remote handles (read-mostly: written when a Hub first parks a fiber and
/// when it closes).
fn remotes() -> std::sync::RwLockReadGuard<'static, BTreeMap<u64, Weak<RemoteHub>>> {
    REMOTES.read().unwrap_or_else(PoisonError::into_inner)
}

fn remotes_mut() -> std::sync::RwLockWriteGuard<'static, BTreeMap<u64, Weak<RemoteHub>>> {
    REMOTES.write().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's identity for the primitives: unique for the life of the process, never 0.
#[inline]
pub(crate) fn thread_token() -> u64 {
    match TOKEN.with(Cell::get) {
        0 => fresh_thread_token(),
        known => known,
    }
}

#[cold]
fn fresh_thread_token() -> u64 {
    let fresh = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    TOKEN.with(|token| token.set(fresh));
    fresh
}

/// The parking state of a Hub: its identity for wakers, the numbering of waits and the
/// internal remote handle. A parked fiber keeps its own wait's number and woken flag
/// ([`FiberInner::park_generation`], [`FiberInner::park_woken`]); a waker names the fiber by
/// its slot in the Hub's fiber registry, so that parking allocates and frees nothing.
pub(crate) struct ParkTable {
    /// Names this Hub in wakers and in the table of remote handles.
    token: u64,
    /// The number of the latest wait: unique within the Hub, so that a late wake-up (for a
    /// wait that has ended, perhaps of a fiber that has finished and whose registry slot now
    /// holds another) never matches a later wait.
    last_generation: Cell<u64>,
    /// The Hub's internal remote handle, made when the first fiber parks (threads that never
    /// park pay nothing) and dropped when the Hub closes.
    remote: RefCell<Option<Arc<RemoteHub>>>,
}

/// The key of the root fiber, which is not in the registry.
const ROOT_KEY: u32 = u32::MAX;

impl ParkTable {
    pub(crate) fn new() -> ParkTable {
        ParkTable {
            token: NEXT_TOKEN.fetch_add(1, Ordering::Relaxed),
            last_generation: Cell::new(0),
            remote: RefCell::new(None),
        }
    }

    /// Starts a wait of `fiber` (the Hub's current fiber); returns its key and generation.
    #[inline(always)]
    fn insert(&self, hub: &Hub, fiber: &FiberInner) -> (u32, u64) {
        if self.remote.borrow().is_none() {
            self.register(hub);
        }
        hub.add_parked(1);
        let generation = self.last_generation.get() + 1;
        self.last_generation.set(generation);
        debug_assert_eq!(fiber.park_generation.get(), 0, "one wait at a time");
        fiber.park_generation.set(generation);
        fiber.park_woken.set(false);
        let key = if fiber.is_root() {
            ROOT_KEY
        } else {
            u32::try_from(fiber.slot.get()).expect("fewer than 2^32 fibers")
        };
        (key, generation)
    }

    /// Makes the Hub reachable from other threads: its first fiber is parking.
    #[cold]
    fn register(&self, hub: &Hub) {
        let remote = Arc::new(hub.internal_remote());
        remotes_mut().insert(self.token, Arc::downgrade(&remote));
        *self.remote.borrow_mut() = Some(remote);
    }

    /// Ends the wait `generation` of `fiber`.
    #[inline(always)]
    fn remove(&self, hub: &Hub, fiber: &FiberInner, generation: u64) {
        if fiber.park_generation.get() == generation {
            fiber.park_generation.set(0);
        }
        hub.add_parked(-1);
    }

    /// Marks the fiber of `key` woken and makes it ready, if it is still in wait `generation`.
    #[inline(always)]
    fn wake(&self, hub: &Hub, key: u32, generation: u64) {
        let fiber = if key == ROOT_KEY {
            Some(hub.root_fiber().clone())
        } else {
            hub.registered_fiber(key as usize)
        };
        if let Some(fiber) = fiber
            && fiber.park_generation.get() == generation
        {
            fiber.park_woken.set(true);
            hub.wake_owned(fiber, Wake::Fired);
        }
    }

    /// This table's token (names its Hub in wakers).
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// Stops other threads from reaching this Hub: its wakers now count as gone.
    pub(crate) fn unregister(&self) {
        if self.remote.borrow_mut().take().is_some() {
            remotes_mut().remove(&self.token);
        }
    }
}

impl Drop for ParkTable {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// How to wake one parked fiber or thread; `Send`, kept in a primitive's queue.
pub(crate) enum Waker {
    Fiber {
        /// The token of the fiber's Hub.
        hub: u64,
        /// The fiber's slot in the Hub's registry ([`ROOT_KEY`] for the root fiber).
        key: u32,
        generation: u64,
    },
    Thread(Arc<ThreadSignal>),
}

/// The waiting side. Its wait ends with [`release`](Parker::release), which frees its slot:
/// [`block`](crate::sync::waiter::block) calls it, also when the wait unwinds. (An explicit
/// call rather than `Drop`: the drop glue of this enum is not inlined, and this is on every
/// hand-over's path.)
#[must_use = "a parker's wait must end with `release` (through `waiter::block`)"]
pub(crate) enum Parker {
    Fiber {
        fiber: Rc<FiberInner>,
        generation: u64,
        hub: Rc<Hub>,
        /// In debug builds, panics where a parker is dropped without `release` (which would
        /// leave the Hub counting a parked fiber, so that it never reports a deadlock, and
        /// the fiber's next wait tripping over the stale generation far from the cause).
        #[cfg(debug_assertions)]
        armed: Armed,
    },
    Thread(Arc<ThreadSignal>),
}

/// See [`Parker::Fiber`]'s `armed`: disarmed by [`Parker::release`].
#[cfg(debug_assertions)]
pub(crate) struct Armed;

#[cfg(debug_assertions)]
impl Drop for Armed {
    fn drop(&mut self) {
        // Not while unwinding: a second panic would abort, hiding the first.
        if !thread::panicking() {
            panic!("a parker was dropped without `Parker::release`: its wait never ended");
        }
    }
}

/// A plain thread's wake-up flag.
pub(crate) struct ThreadSignal {
    thread: Thread,
    woken: AtomicBool,
}

/// A parker for the calling fiber, or for the calling thread if it has no Hub (no Hub is made
/// just to wait).
#[inline(always)]
pub(crate) fn parker() -> (Waker, Parker) {
    let Some(hub) = Hub::try_current() else {
        return thread_parker();
    };
    let fiber = hub.current_fiber();
    let table = hub.park_table();
    let (key, generation) = table.insert(&hub, &fiber);
    (
        Waker::Fiber {
            hub: table.token,
            key,
            generation,
        },
        Parker::Fiber {
            fiber,
            generation,
            hub,
            #[cfg(debug_assertions)]
            armed: Armed,
        },
    )
}

#[cold]
fn thread_parker() -> (Waker, Parker) {
    let signal = Arc::new(ThreadSignal {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    (Waker::Thread(signal.clone()), Parker::Thread(signal))
}

impl Waker {
    /// Whether the waiting side is certainly gone: a fiber of a Hub that was closed or dropped
    /// (with its thread) before the fiber withdrew. Whoever serves waiters skips these, so that
    /// a lock or an item is not handed to a dead fiber.
    #[inline(always)]
    pub(crate) fn is_gone(&self) -> bool {
        match self {
            Waker::Fiber { hub, .. } => *hub != hub_token() && is_remote_gone(*hub),
            // A thread blocked in `park` is alive.
            Waker::Thread(_) => false,
        }
    }

    /// Wakes the waiting side. Never switches. Call it after unlocking the primitive.
    #[inline(always)]
    pub(crate) fn wake(self) {
        match self {
            Waker::Thread(signal) => wake_thread(signal),
            Waker::Fiber {
                hub,
                key,
                generation,
            } => {
                if !wake_here(hub, key, generation) {
                    wake_remote(hub, key, generation);
                }
            }
        }
    }
}

/// Whether the Hub with token `hub` (not this thread's) is closed or gone.
#[cold]
fn is_remote_gone(hub: u64) -> bool {
    remotes()
        .get(&hub)
        .is_none_or(|remote| remote.strong_count() == 0)
}

#[cold]
fn wake_thread(signal: Arc<ThreadSignal>) {
    signal.woken.store(true, Ordering::Release);
    signal.thread.unpark();
}

/// Wakes a fiber parked in this thread's Hub if the Hub is the one with token `hub`; returns
/// whether it is.
#[inline(always)]
fn wake_here(hub: u64, key: u32, generation: u64) -> bool {
    if hub != hub_token() {
        return false;
    }
    // A reference taken rather than `Hub::with_installed`'s closure: the closure, with the
    // wake-up inlined into it, made the thread-local access an out-of-line call.
    let Some(current) = Hub::try_current() else {
        return false;
    };
    let here = current.park_table().token == hub;
    if here {
        current.park_table().wake(&current, key, generation);
    }
    here
}

/// Sends a wake-up to a fiber parked in another thread's Hub.
#[cold]
fn wake_remote(hub: u64, key: u32, generation: u64) {
    let remote = remotes().get(&hub).and_then(Weak::upgrade);
    // No handle: that Hub is closed or gone, and its fibers with it.
    if let Some(remote) = remote {
        // Refused only once that Hub is closed: its fibers are gone.
        let _ = remote.run_callback(move || {
            wake_here(hub, key, generation);
        });
    }
}

impl Parker {
    /// Ends the wait: frees the fiber's parking slot (nothing to do for a thread).
    #[inline(always)]
    pub(crate) fn release(self) {
        if let Parker::Fiber {
            fiber,
            generation,
            hub,
            #[cfg(debug_assertions)]
            armed,
        } = self
        {
            hub.park_table().remove(&hub, &fiber, generation);
            #[cfg(debug_assertions)]
            std::mem::forget(armed);
        }
    }

    /// Blocks until woken, or until `deadline` passes or the fiber is cancelled.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn park(&self, what: &'static str, deadline: Option<Instant>) -> Result<()> {
        match self {
            Parker::Fiber { fiber, hub, .. } => park_fiber(hub, fiber, what, deadline),

            Parker::Thread(signal) => park_thread(signal, what, deadline),
        }
    }
}

#[track_caller]
#[inline(always)]
fn park_fiber(
    hub: &Hub,
    fiber: &Rc<FiberInner>,
    what: &'static str,
    deadline: Option<Instant>,
) -> Result<()> {
    loop {
        if fiber.park_woken.get() {
            return Ok(());
        }
        let left = deadline.map(|at| at.saturating_duration_since(Instant::now()));
        match hub.park_current(fiber, what, left) {
            // Woken by this wait's waker, or a stale wake-up: look again.
            Wake::Fired => {}
            Wake::TimedOut(_) => return Err(Error::TimedOut),
            Wake::Cancelled => return Err(Error::Cancelled),
            Wake::Deadlock => return Err(Error::WouldBlockForever),
        }
    }
}

#[track_caller]
#[cold]
fn park_thread(signal: &ThreadSignal, what: &'static str, deadline: Option<Instant>) -> Result<()> {
    assert_may_switch(what);
    loop {
        if signal.woken.load(Ordering::Acquire) {
            return Ok(());
        }
        match deadline {
            None => thread::park(),
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    return Err(Error::TimedOut);
                }
                thread::park_timeout(at - now);
            }
        }
    }
}
