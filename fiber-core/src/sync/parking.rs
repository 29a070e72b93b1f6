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

/// This thread's identity for the primitives: unique for the life of the process.
pub(crate) fn thread_token() -> u64 {
    TOKEN.with(|token| match token.get() {
        0 => {
            let fresh = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
            token.set(fresh);
            fresh
        }
        known => known,
    })
}

/// A Hub's fibers parked in a primitive, each in a numbered slot.
pub(crate) struct ParkTable {
    /// Names this Hub in wakers and in the table of remote handles.
    token: u64,
    parked: RefCell<Parked>,
}

struct Parked {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The Hub's internal remote handle, made when the first fiber parks (threads that never
    /// park pay nothing) and dropped when the Hub closes.
    remote: Option<Arc<RemoteHub>>,
}

impl Parked {
    /// A new free slot's key.
    #[cold]
    fn grow(&mut self) -> u32 {
        self.slots.push(Slot {
            generation: 0,
            fiber: None,
            woken: false,
        });
        u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 parked fibers")
    }
}

struct Slot {
    generation: u32,
    fiber: Option<Rc<FiberInner>>,
    woken: bool,
}

impl ParkTable {
    pub(crate) fn new() -> ParkTable {
        ParkTable {
            token: NEXT_TOKEN.fetch_add(1, Ordering::Relaxed),
            parked: RefCell::new(Parked {
                slots: Vec::new(),
                free: Vec::new(),
                remote: None,
            }),
        }
    }

    /// Gives `hub`'s current fiber a slot; returns its key and generation.
    #[inline(always)]
    fn insert(&self, hub: &Hub) -> (u32, u32) {
        let fiber = hub.current_fiber();
        let mut parked = self.parked.borrow_mut();
        if parked.remote.is_none() {
            self.register(hub, &mut parked);
        }
        hub.add_parked(1);
        let key = match parked.free.pop() {
            Some(key) => key,
            None => parked.grow(),
        };
        let slot = &mut parked.slots[key as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.fiber = Some(fiber);
        slot.woken = false;
        (key, slot.generation)
    }

    /// Makes the Hub reachable from other threads: its first fiber is parking.
    #[cold]
    fn register(&self, hub: &Hub, parked: &mut Parked) {
        let remote = Arc::new(hub.internal_remote());
        remotes_mut().insert(self.token, Arc::downgrade(&remote));
        parked.remote = Some(remote);
    }

    /// Frees slot `key` if it still holds that wait.
    #[inline(always)]
    fn remove(&self, hub: &Hub, key: u32, generation: u32) {
        let fiber = {
            let mut parked = self.parked.borrow_mut();
            let slot = &mut parked.slots[key as usize];
            if slot.generation != generation {
                return;
            }
            let fiber = slot.fiber.take();
            parked.free.push(key);
            fiber
        };
        hub.add_parked(-1);
        // Dropped outside the borrow: it may be the fiber's last reference.
        drop(fiber);
    }

    #[inline(always)]
    fn is_woken(&self, key: u32) -> bool {
        self.parked.borrow().slots[key as usize].woken
    }

    /// Marks slot `key` woken and makes its fiber ready, if that wait is still on.
    #[inline(always)]
    fn wake(&self, hub: &Hub, key: u32, generation: u32) {
        let mut parked = self.parked.borrow_mut();
        let Some(slot) = parked.slots.get_mut(key as usize) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        slot.woken = true;
        // `Hub::wake` touches only the ready queue, never this table.
        if let Some(fiber) = &slot.fiber {
            hub.wake(fiber, Wake::Fired);
        }
    }

    /// This table's token (names its Hub in wakers).
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// Stops other threads from reaching this Hub: its wakers now count as gone.
    pub(crate) fn unregister(&self) {
        if self.parked.borrow_mut().remote.take().is_some() {
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
        key: u32,
        generation: u32,
    },
    Thread(Arc<ThreadSignal>),
}

/// The waiting side; frees its slot when dropped.
pub(crate) enum Parker {
    Fiber {
        key: u32,
        generation: u32,
        hub: Rc<Hub>,
    },
    Thread(Arc<ThreadSignal>),
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
    let table = hub.park_table();
    let (key, generation) = table.insert(&hub);
    (
        Waker::Fiber {
            hub: table.token,
            key,
            generation,
        },
        Parker::Fiber {
            key,
            generation,
            hub,
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
fn wake_here(hub: u64, key: u32, generation: u32) -> bool {
    if hub != hub_token() {
        return false;
    }
    Hub::with_installed(|current| {
        let here = current.park_table().token == hub;
        if here {
            current.park_table().wake(current, key, generation);
        }
        here
    })
    .unwrap_or(false)
}

/// Sends a wake-up to a fiber parked in another thread's Hub.
#[cold]
fn wake_remote(hub: u64, key: u32, generation: u32) {
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
    /// Blocks until woken, or until `deadline` passes or the fiber is cancelled.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn park(&self, what: &'static str, deadline: Option<Instant>) -> Result<()> {
        match self {
            Parker::Fiber { key, hub, .. } => park_fiber(hub, *key, what, deadline),
            Parker::Thread(signal) => park_thread(signal, what, deadline),
        }
    }
}

#[track_caller]
#[inline(always)]
fn park_fiber(hub: &Hub, key: u32, what: &'static str, deadline: Option<Instant>) -> Result<()> {
    loop {
        if hub.park_table().is_woken(key) {
            return Ok(());
        }
        let left = deadline.map(|at| at.saturating_duration_since(Instant::now()));
        match hub.park(what, left) {
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

impl Drop for Parker {
    #[inline(always)]
    fn drop(&mut self) {
        if let Parker::Fiber {
            key,
            generation,
            ref hub,
        } = *self
        {
            hub.park_table().remove(hub, key, generation);
        }
    }
}
