//! The waiter queue every primitive keeps, and the one way to block on it.
//!
//! The protocol, the same in every primitive:
//!
//! 1. Under the primitive's own lock (a [`SpinLock`] or a `std` mutex), a caller that must wait
//!    [`push`](WaitQueue::push)es itself (with any per-waiter data: an item to put, a
//!    predicate) and gets a [`Parker`]; it unlocks and [`block`]s.
//! 2. Whoever hands something over (a lock, an item, a notification) does it under the same
//!    lock: it [`pop`](WaitQueue::pop)s the waiter (which is then fulfilled: popped means
//!    served) and, after unlocking, wakes it.
//! 3. A waiter whose wait ends without a wake-up (timeout, cancellation) takes the lock again
//!    and withdraws: if it is still queued it leaves the queue (nothing stale is left behind);
//!    if it is not, it was served in the meantime and keeps what it was given (a hand-over is
//!    never lost, even when the wake-up is still travelling from another thread).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Result;
pub(crate) use crate::sync::parking::Waker;
use crate::sync::parking::{Parker, parker};

/// Locks a primitive's internal mutex. Poisoning is ignored: these mutexes guard bookkeeping
/// that no panic can leave half-updated (user code such as predicates runs where a panic leaves
/// the state consistent).
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The internal lock of the primitives on the hand-over paths (`Lock`, the queues and
/// channels): a spin lock, because its release is a plain store where a `std` mutex's is an
/// atomic swap (each locked instruction costs about 10 ns here, and a queue hand-over takes
/// the lock three times). Nothing switches fibers while holding it, so only another thread can
/// be the holder (a fiber never spins on a fiber of its own thread), and the sections are
/// short (bookkeeping, and a priority queue's comparisons): spinning is brief. A thread that
/// finds it taken yields its time slice instead of burning it, in case the holder was
/// preempted.
///
/// Like the `std` mutexes it replaces (whose poisoning the primitives ignore, see [`lock`]),
/// it is unwind-safe: the bookkeeping it guards is consistent at every point where code that
/// may panic runs.
pub(crate) struct SpinLock<T>(spin::mutex::SpinMutex<T, spin::relax::Yield>);

/// A held [`SpinLock`].
pub(crate) type SpinGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T, spin::relax::Yield>;

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> SpinLock<T> {
        SpinLock(spin::mutex::SpinMutex::new(value))
    }

    #[inline(always)]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        self.0.lock()
    }
}

impl<T> std::panic::UnwindSafe for SpinLock<T> {}
impl<T> std::panic::RefUnwindSafe for SpinLock<T> {}

/// A FIFO of waiters, each with some data `X`.
pub(crate) struct WaitQueue<X = ()> {
    entries: VecDeque<Queued<X>>,
    next_id: u64,
}

/// A waiter taken out of the queue: it is served, and must be woken after unlocking.
pub(crate) struct Queued<X> {
    pub(crate) id: u64,
    pub(crate) waker: Waker,
    pub(crate) data: X,
}

impl<X> WaitQueue<X> {
    pub(crate) const fn new() -> WaitQueue<X> {
        WaitQueue {
            entries: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Queues the calling fiber (or thread) at the back; returns its id and the parker to
    /// [`block`] on.
    #[inline]
    pub(crate) fn push(&mut self, data: X) -> (u64, Parker) {
        let (waker, parker) = parker();
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Queued { id, waker, data });
        (id, parker)
    }

    /// Takes the first waiter out to serve it, dropping any whose thread is gone.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Queued<X>> {
        while let Some(first) = self.entries.pop_front() {
            if !first.waker.is_gone() {
                return Some(first);
            }
        }
        None
    }

    /// The first waiter that is not gone (dropping those at the front that are), left queued.
    #[inline]
    pub(crate) fn front_live(&mut self) -> Option<&Queued<X>> {
        while self.entries.front()?.waker.is_gone() {
            self.entries.pop_front();
        }
        self.entries.front()
    }

    /// Drops the waiter at `index` if its thread is gone; true if it did.
    pub(crate) fn drop_if_gone(&mut self, index: usize) -> bool {
        let gone = self
            .entries
            .get(index)
            .is_some_and(|waiter| waiter.waker.is_gone());
        if gone {
            self.entries.remove(index);
        }
        gone
    }

    /// Takes the waiter at `index` out to serve it.
    pub(crate) fn take(&mut self, index: usize) -> Option<Queued<X>> {
        self.entries.remove(index)
    }

    /// Removes waiter `id` if it is still queued (it withdraws); `None` means it was served.
    pub(crate) fn remove(&mut self, id: u64) -> Option<X> {
        let at = self.entries.iter().position(|q| q.id == id)?;
        self.entries.remove(at).map(|q| q.data)
    }

    pub(crate) fn front(&self) -> Option<&Queued<X>> {
        self.entries.front()
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Queued<X>> {
        self.entries.get(index)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes every waiter out to serve them all.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Queued<X>> + '_ {
        self.entries.drain(..)
    }
}

/// Wake-ups collected under a primitive's mutex, sent after unlocking it (a wake-up to another
/// thread takes a lock and a system call; the waker should not hold the primitive meanwhile).
///
/// Most hand-overs wake one waiter or none: those stay in `first`, and the vector of the rest
/// is only made (and dropped) when a second wake-up comes.
pub(crate) struct Wakeups {
    first: Option<Waker>,
    rest: Option<Vec<Waker>>,
}

impl Wakeups {
    #[inline(always)]
    pub(crate) const fn new() -> Wakeups {
        Wakeups {
            first: None,
            rest: None,
        }
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, waker: Waker) {
        match self.first {
            None => self.first = Some(waker),
            Some(_) => self.rest.get_or_insert_with(Vec::new).push(waker),
        }
    }

    /// Wakes them all. Call it after unlocking.
    #[inline(always)]
    pub(crate) fn wake(mut self) {
        if let Some(first) = self.first.take() {
            first.wake();
        }
        if let Some(rest) = self.rest.take() {
            wake_all(rest);
        }
    }
}

#[cold]
fn wake_all(rest: Vec<Waker>) {
    for waker in rest {
        waker.wake();
    }
}

/// Dropping wakes too: if a user predicate panics half-way through a notify, the waiters it
/// already took out of the queue are still woken.
impl Drop for Wakeups {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(first) = self.first.take() {
            first.wake();
        }
        if let Some(rest) = self.rest.take() {
            wake_all(rest);
        }
    }
}

/// Blocks until the waiter of `parker` is served, `deadline` passes or the fiber is cancelled.
///
/// When the wait ends without a wake-up, `withdraw` runs: it must lock the primitive and
/// [`remove`](WaitQueue::remove) the waiter, returning whether it was still queued. If it was
/// not, it had been served meanwhile and the call succeeds. If the fiber is unwound while
/// waiting (its Hub closed), `withdraw` runs from the unwinding, and `give_back` runs if the
/// waiter had been served, so that a lock or an item cannot vanish with a dead fiber.
///
/// # Errors
///
/// The wait's error ([`Error::TimedOut`](crate::Error::TimedOut),
/// [`Error::Cancelled`](crate::Error::Cancelled), ...) when the waiter was not served.
#[track_caller]
#[inline(always)]
pub(crate) fn block(
    parker: Parker,
    what: &'static str,
    deadline: Option<Instant>,
    withdraw: impl Fn() -> bool,
    give_back: impl FnOnce(),
) -> Result<()> {
    block_inner(parker, what, deadline, None, withdraw, give_back)
}

/// [`block`] for a waiter that cannot rely on being woken: it also wakes up every `every` to
/// run `check`, which returns true if it served the waiter itself (taking it out of the queue).
#[track_caller]
#[cold]
pub(crate) fn block_polling(
    parker: Parker,
    what: &'static str,
    deadline: Option<Instant>,
    every: Duration,
    check: &dyn Fn() -> bool,
    withdraw: impl Fn() -> bool,
    give_back: impl FnOnce(),
) -> Result<()> {
    block_inner(
        parker,
        what,
        deadline,
        Some((every, check)),
        withdraw,
        give_back,
    )
}

#[track_caller]
#[inline(always)]
fn block_inner(
    parker: Parker,
    what: &'static str,
    deadline: Option<Instant>,
    poll: Option<(Duration, &dyn Fn() -> bool)>,
    withdraw: impl Fn() -> bool,
    give_back: impl FnOnce(),
) -> Result<()> {
    /// Ends the wait and withdraws if the wait unwinds.
    struct Unwinding<'a, W: Fn() -> bool, G: FnOnce()> {
        parker: Option<Parker>,
        withdraw: &'a W,
        give_back: Option<G>,
    }
    impl<W: Fn() -> bool, G: FnOnce()> Drop for Unwinding<'_, W, G> {
        fn drop(&mut self) {
            if let Some(parker) = self.parker.take() {
                parker.release();
            }
            if let Some(give_back) = self.give_back.take()
                && !(self.withdraw)()
            {
                give_back();
            }
        }
    }
    let mut guard = Unwinding {
        parker: Some(parker),
        withdraw: &withdraw,
        give_back: Some(give_back),
    };
    let Some(parker) = &guard.parker else {
        unreachable!("the parker was just put in");
    };
    let outcome = match poll {
        None => parker.park(what, deadline),
        Some((every, check)) => park_polling(parker, what, deadline, every, check),
    };
    // Not unwinding: disarm the guard without running its destructor (a call on the hot path);
    // the closure it held is dropped normally, and the parker's slot is freed before the
    // primitive is touched again.
    drop(guard.give_back.take());
    let parker = guard.parker.take();
    std::mem::forget(guard);
    if let Some(parker) = parker {
        parker.release();
    }
    match outcome {
        Ok(()) => Ok(()),
        Err(_) if !withdraw() => Ok(()),
        Err(err) => Err(err),
    }
}

/// Parks in slices of `every`, running `check` after each slice that ran out (and not after
/// a wait that ended for another reason, such as an enclosing timeout scope expiring).
#[track_caller]
fn park_polling(
    parker: &Parker,
    what: &'static str,
    deadline: Option<Instant>,
    every: Duration,
    check: &dyn Fn() -> bool,
) -> Result<()> {
    loop {
        let slice_end = deadline_after(Instant::now(), every);
        let until = deadline.map_or(slice_end, |at| at.min(slice_end));
        match parker.park(what, Some(until)) {
            Err(crate::Error::TimedOut)
                if until == slice_end && deadline.is_none_or(|at| at > until) =>
            {
                if Instant::now() < slice_end {
                    // Ended early: not this slice's deadline but an enclosing scope's.
                    return Err(crate::Error::TimedOut);
                }
                if check() {
                    return Ok(());
                }
            }
            outcome => return outcome,
        }
    }
}

/// The deadline of a `*_timeout` call (far in the future for huge timeouts).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Some(deadline_after(Instant::now(), timeout))
}

/// `now + timeout`, or 100 years from now when that does not fit in an `Instant`.
pub(crate) fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
