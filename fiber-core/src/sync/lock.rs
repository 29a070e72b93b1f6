//! [`Lock`]: a fair lock for fibers and threads (Gruvi's `Lock`).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::sync::waiter::{self, SpinLock, WaitQueue};

/// Set while somebody owns the lock.
const LOCKED: u8 = 1;
/// Set while waiters are queued: `release` must hand the lock over instead of freeing it.
/// Under the waiter queue's mutex, set exactly when the queue is not empty. `QUEUED` without
/// `LOCKED` is a hand-over in progress: the owner released, and is about to give the lock to
/// the first waiter; nobody else can take it meanwhile (the fast path wants a zero state).
const QUEUED: u8 = 2;

/// A lock that blocks only the calling fiber (Gruvi's `Lock`), usable from fibers on any
/// thread's Hub and from plain threads.
///
/// Fair: waiters get the lock in strict FIFO order, because [`release`](Self::release) hands it
/// directly to the first waiter instead of freeing it for whoever comes next. A waiter that
/// times out or is cancelled leaves the queue; if the lock was handed to it in that very
/// moment, it keeps it (and its call succeeds), so ownership is never lost.
///
/// The lock has no owner: any fiber or thread may release it (Gruvi allows that too); for an
/// owner-checked, reentrant lock use [`RLock`](crate::RLock), for a lock that guards data use
/// [`Mutex`](crate::Mutex). An uncontended acquire and release are one atomic operation each.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use fiber_core::{Lock, spawn};
///
/// fiber_core::run(|| {
///     let lock = Arc::new(Lock::new());
///     let guard = lock.lock()?;
///     let other = {
///         let lock = lock.clone();
///         spawn(move || lock.lock().map(|_guard| "got it after the root"))
///     };
///     fiber_core::yield_now()?; // `other` now waits for the lock
///     drop(guard); // hands the lock to `other`
///     assert_eq!(other.join().unwrap()?, "got it after the root");
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct Lock {
    state: AtomicU8,
    waiters: SpinLock<WaitQueue>,
}

impl Lock {
    /// An unlocked lock.
    pub const fn new() -> Lock {
        Lock {
            state: AtomicU8::new(0),
            waiters: SpinLock::new(WaitQueue::new()),
        }
    }

    /// Whether somebody holds the lock now (Gruvi's `locked()`).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// Acquires the lock, waiting for it if needed.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) while another holds the lock.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`](crate::Error::Cancelled), or [`Error::TimedOut`](crate::Error::TimedOut)
    /// from an enclosing [`timeout`](crate::timeout) scope; the lock is then not acquired.
    #[inline]
    #[track_caller]
    pub fn acquire(&self) -> Result<()> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_slow(None)
    }

    /// Like [`acquire`](Self::acquire), giving up with
    /// [`Error::TimedOut`](crate::Error::TimedOut) after `timeout` (Gruvi's
    /// `acquire(timeout=...)` returning `False`). A timed-out waiter leaves nothing behind.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_slow(waiter::deadline(timeout))
    }

    /// Acquires the lock if it is free now (Gruvi's `acquire(blocking=False)`). Never switches.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        // Free means no waiters either: a release with waiters hands the lock over.
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the lock: the first waiter, if any, now owns it. Never switches.
    ///
    /// # Panics
    ///
    /// If the lock is not held (Gruvi: `RuntimeError('lock not currently held')`).
    #[inline]
    pub fn release(&self) {
        assert!(self.is_locked(), "Lock::release: lock not currently held");
        // One atomic operation: `LOCKED` alone becomes free; with `QUEUED`, a hand-over starts.
        if self.state.fetch_sub(LOCKED, Ordering::Release) != LOCKED {
            self.hand_over();
        }
    }

    /// Acquires the lock and returns a guard that releases it when dropped (Gruvi's `with lock:`).
    ///
    /// # Switchpoint
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    #[track_caller]
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        self.acquire()?;
        Ok(LockGuard { lock: self })
    }

    /// Like [`lock`](Self::lock), giving up after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        self.acquire_timeout(timeout)?;
        Ok(LockGuard { lock: self })
    }

    /// A guard if the lock is free now. Never switches.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.try_acquire().then(|| LockGuard { lock: self })
    }

    #[cold]
    #[track_caller]
    fn acquire_slow(&self, deadline: Option<Instant>) -> Result<()> {
        let mut queue = self.waiters.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & QUEUED != 0 {
                // Others wait (or are being handed the lock): queue behind them.
                break;
            }
            let (want, acquires) = if state == 0 {
                (LOCKED, true)
            } else {
                (LOCKED | QUEUED, false)
            };
            match self.state.compare_exchange_weak(
                state,
                want,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) if acquires => return Ok(()),
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        let (id, parker) = queue.push(());
        drop(queue);
        waiter::block(
            parker,
            "Lock::acquire",
            deadline,
            || self.withdraw(id),
            || self.release(),
        )
    }

    /// Takes a waiter that gave up out of the queue; false if the lock was handed to it.
    fn withdraw(&self, id: u64) -> bool {
        let mut queue = self.waiters.lock();
        if queue.remove(id).is_none() {
            return false;
        }
        if queue.is_empty() {
            self.state.fetch_and(!QUEUED, Ordering::Relaxed);
        }
        true
    }

    /// Finishes a release that found waiters: the first one still there owns the lock now.
    #[cold]
    fn hand_over(&self) {
        let mut queue = self.waiters.lock();
        match queue.pop() {
            Some(next) => {
                // The state is exactly `QUEUED` here: the fast path wants zero, and the queue
                // (which only changes under its lock) is not empty.
                let rest = if queue.is_empty() { 0 } else { QUEUED };
                self.state.store(LOCKED | rest, Ordering::Relaxed);
                drop(queue);
                next.waker.wake();
            }
            // Every waiter withdrew (or its Hub is gone) since the release: the lock is free,
            // and may already be someone's again; only the queue's bit is ours to clear.
            None => {
                self.state.fetch_and(!QUEUED, Ordering::Relaxed);
            }
        }
    }

    /// How many waiters are queued (for tests: nothing is left behind).
    #[doc(hidden)]
    pub fn waiter_count(&self) -> usize {
        self.waiters.lock().len()
    }
}

impl Default for Lock {
    fn default() -> Lock {
        Lock::new()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Releases a [`Lock`] when dropped; from [`Lock::lock`].
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // An unwinding fiber may have lost the lock (a condition wait that could not take it
        // back): never panic again while unwinding.
        if std::thread::panicking() && !self.lock.is_locked() {
            return;
        }
        self.lock.release();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
