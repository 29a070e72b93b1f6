//! Parking the calling fiber (or a plain thread without a Hub) and waking it from any thread.
//!
//! A [`Parker`] stays with the waiting side; its [`Waker`] (plain data, `Send`) goes into a
//! primitive's waiter queue. A fiber's waker names a slot in its thread's table of parked
//! fibers: woken from the same thread, it marks the slot and makes the fiber ready directly (no
//! atomic operation, no allocation); from another thread, it sends the same through the
//! owning Hub's remote queue ([`RemoteHub::run_callback`]). The slot's generation makes a late
//! wake-up for a wait that has ended a no-op.
//!
//! Each thread keeps one internal [`RemoteHub`] of its Hub, found by other threads through a
//! process-wide table (only on the cross-thread path). While any fiber of the Hub is parked
//! here, the Hub counts it: another thread may release what the fiber waits for, so the Hub
//! must not report a deadlock then (the rule of [`RemoteCallback`](crate::RemoteCallback)).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{self, Rc};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::thread::{self, Thread};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::fiber::{FiberInner, Wake};
use crate::hub::Hub;
use crate::no_switch::assert_may_switch;
use crate::remote::RemoteHub;

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// The remote handle of each thread that has parked fibers, by thread token.
static REMOTES: RwLock<BTreeMap<u64, Weak<RemoteHub>>> = RwLock::new(BTreeMap::new());

thread_local! {
    static TOKEN: Cell<u64> = const { Cell::new(0) };
    static PARKED: RefCell<Parked> = const { RefCell::new(Parked::new()) };
}

/// Reads the table of remote handles (read-mostly: written when a thread starts or stops
/// having parked fibers).
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

/// The fibers of this thread parked in a primitive.
struct Parked {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// This thread's Hub's internal remote handle, with the Hub it belongs to (a weak
    /// reference: a later Hub cannot take its address).
    remote: Option<(Arc<RemoteHub>, rc::Weak<Hub>)>,
}

struct Slot {
    generation: u32,
    fiber: Option<Rc<FiberInner>>,
    woken: bool,
}

impl Parked {
    const fn new() -> Parked {
        Parked {
            slots: Vec::new(),
            free: Vec::new(),
            remote: None,
        }
    }

    /// The parked fiber in slot `key`, marked woken, if that wait is still on.
    fn wake(&mut self, key: u32, generation: u32) -> Option<Rc<FiberInner>> {
        let slot = self.slots.get_mut(key as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.woken = true;
        slot.fiber.clone()
    }
}

/// How to wake one parked fiber or thread; `Send`, kept in a primitive's queue.
pub(crate) enum Waker {
    Fiber {
        thread: u64,
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
pub(crate) fn parker() -> (Waker, Parker) {
    let Some(hub) = Hub::try_current() else {
        let signal = Arc::new(ThreadSignal {
            thread: thread::current(),
            woken: AtomicBool::new(false),
        });
        return (Waker::Thread(signal.clone()), Parker::Thread(signal));
    };
    let fiber = hub.current_fiber();
    let thread = thread_token();
    PARKED.with(|parked| {
        let mut parked = parked.borrow_mut();
        let current = parked
            .remote
            .as_ref()
            .is_some_and(|(_, owner)| std::ptr::eq(owner.as_ptr(), Rc::as_ptr(&hub)));
        if !current {
            // First use, or the thread's previous Hub was closed.
            let remote = Arc::new(hub.internal_remote());
            remotes_mut().insert(thread, Arc::downgrade(&remote));
            parked.remote = Some((remote, Rc::downgrade(&hub)));
        }
        hub.add_parked(1);
        let key = match parked.free.pop() {
            Some(key) => key,
            None => {
                parked.slots.push(Slot {
                    generation: 0,
                    fiber: None,
                    woken: false,
                });
                u32::try_from(parked.slots.len() - 1).expect("fewer than 2^32 parked fibers")
            }
        };
        let slot = &mut parked.slots[key as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.fiber = Some(fiber);
        slot.woken = false;
        let generation = slot.generation;
        (
            Waker::Fiber {
                thread,
                key,
                generation,
            },
            Parker::Fiber {
                key,
                generation,
                hub: hub.clone(),
            },
        )
    })
}

impl Waker {
    /// Whether the waiting side is certainly gone: a fiber of a thread that exited without
    /// closing its Hub (such fibers are never unwound, so they never withdraw). Whoever serves
    /// waiters skips these, so that a lock or an item is not handed to a dead fiber.
    pub(crate) fn is_gone(&self) -> bool {
        match self {
            Waker::Fiber { thread, .. } => {
                *thread != thread_token()
                    && remotes()
                        .get(thread)
                        .is_none_or(|remote| remote.strong_count() == 0)
            }
            // A thread blocked in `park` is alive.
            Waker::Thread(_) => false,
        }
    }

    /// Wakes the waiting side. Never switches. Call it after unlocking the primitive.
    pub(crate) fn wake(self) {
        match self {
            Waker::Thread(signal) => {
                signal.woken.store(true, Ordering::Release);
                signal.thread.unpark();
            }
            Waker::Fiber {
                thread,
                key,
                generation,
            } => {
                if thread == thread_token() {
                    wake_here(key, generation);
                } else {
                    wake_remote(thread, key, generation);
                }
            }
        }
    }
}

/// Wakes a fiber parked on this thread.
fn wake_here(key: u32, generation: u32) {
    let fiber = PARKED
        .try_with(|parked| parked.borrow_mut().wake(key, generation))
        .ok()
        .flatten();
    if let Some(fiber) = fiber
        && let Some(hub) = Hub::try_current()
    {
        hub.wake(&fiber, Wake::Fired);
    }
}

/// Sends a wake-up to a fiber parked on another thread.
fn wake_remote(thread: u64, key: u32, generation: u32) {
    let remote = remotes().get(&thread).and_then(Weak::upgrade);
    // No handle: nothing is parked on that thread any more, so that wait is over.
    if let Some(remote) = remote {
        // Refused only once that Hub is closed: its fibers are gone.
        let _ = remote.run_callback(move || wake_here(key, generation));
    }
}

impl Parker {
    /// Blocks until woken, or until `deadline` passes or the fiber is cancelled.
    #[track_caller]
    pub(crate) fn park(&self, what: &'static str, deadline: Option<Instant>) -> Result<()> {
        match self {
            Parker::Fiber { key, hub, .. } => park_fiber(hub, *key, what, deadline),
            Parker::Thread(signal) => park_thread(signal, what, deadline),
        }
    }
}

#[track_caller]
fn park_fiber(hub: &Hub, key: u32, what: &'static str, deadline: Option<Instant>) -> Result<()> {
    let woken = || PARKED.with(|parked| parked.borrow().slots[key as usize].woken);
    loop {
        if woken() {
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
    fn drop(&mut self) {
        let Parker::Fiber {
            key,
            generation,
            ref hub,
        } = *self
        else {
            return;
        };
        // The table may be gone already if the thread is exiting.
        let released = PARKED.try_with(|parked| {
            let mut parked = parked.borrow_mut();
            let slot = &mut parked.slots[key as usize];
            if slot.generation != generation {
                return None;
            }
            let fiber = slot.fiber.take();
            parked.free.push(key);
            Some(fiber)
        });
        if let Ok(Some(fiber)) = released {
            hub.add_parked(-1);
            drop(fiber);
        }
    }
}
