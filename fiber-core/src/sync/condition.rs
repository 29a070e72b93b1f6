//! [`Condition`]: waiting for a notification while holding a lock (Gruvi's `Condition`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::sync::lock::Lock;
use crate::sync::rlock::RLock;
use crate::sync::waiter::{self, WaitQueue, Wakeups, lock};

type Predicate = Box<dyn Fn() -> bool + Send>;

/// A condition variable tied to a [`Lock`] or an [`RLock`] (Gruvi's `Condition`).
///
/// Edge-triggered: [`notify`](Self::notify) wakes only the fibers waiting at that moment, in
/// FIFO order. A waiter registers before it releases the lock, so a notification sent by the
/// next holder of the lock cannot be missed. [`wait_for`](Self::wait_for) takes a predicate
/// that the *notifier* evaluates when it notifies: waiters whose predicate is false are skipped,
/// stay queued and do not count towards `n`.
///
/// [`wait`](Self::wait) returns with the lock held again, also when it fails (timed out,
/// cancelled): re-acquiring the lock is shielded from the fiber's cancellation and timeout
/// scopes, which apply again afterwards.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use fiber_core::{Condition, spawn};
///
/// fiber_core::run(|| {
///     let cond = Arc::new(Condition::new());
///     let ready = Arc::new(AtomicBool::new(false));
///     let waiter = {
///         let (cond, ready) = (cond.clone(), ready.clone());
///         spawn(move || {
///             cond.acquire()?;
///             let check = ready.clone();
///             cond.wait_for(move || check.load(Ordering::Relaxed))?;
///             cond.release();
///             fiber_core::Result::Ok(ready.load(Ordering::Relaxed))
///         })
///     };
///     fiber_core::yield_now()?; // the waiter is waiting now
///     cond.acquire()?;
///     cond.notify_all(); // predicate false: nobody wakes
///     ready.store(true, Ordering::Relaxed);
///     cond.notify_all();
///     cond.release();
///     assert!(waiter.join().unwrap()?);
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct Condition {
    lock: CondLock,
    waiters: Mutex<WaitQueue<Option<Predicate>>>,
}

enum CondLock {
    Lock(Arc<Lock>),
    RLock(Arc<RLock>),
}

impl Condition {
    /// A condition with its own [`RLock`] (Gruvi's default).
    pub fn new() -> Condition {
        Condition::with_rlock(Arc::new(RLock::new()))
    }

    /// A condition on `lock`, which may be shared with other conditions.
    pub fn with_lock(lock: Arc<Lock>) -> Condition {
        Condition {
            lock: CondLock::Lock(lock),
            waiters: Mutex::new(WaitQueue::new()),
        }
    }

    /// A condition on the reentrant `lock`, which may be shared with other conditions.
    pub fn with_rlock(lock: Arc<RLock>) -> Condition {
        Condition {
            lock: CondLock::RLock(lock),
            waiters: Mutex::new(WaitQueue::new()),
        }
    }

    /// Acquires the condition's lock.
    ///
    /// # Switchpoint
    ///
    /// As [`Lock::acquire`].
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`].
    #[track_caller]
    pub fn acquire(&self) -> Result<()> {
        match &self.lock {
            CondLock::Lock(lock) => lock.acquire(),
            CondLock::RLock(lock) => lock.acquire(),
        }
    }

    /// Acquires the condition's lock, giving up after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire_timeout`].
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        match &self.lock {
            CondLock::Lock(lock) => lock.acquire_timeout(timeout),
            CondLock::RLock(lock) => lock.acquire_timeout(timeout),
        }
    }

    /// Acquires the condition's lock if it is free now. Never switches.
    pub fn try_acquire(&self) -> bool {
        match &self.lock {
            CondLock::Lock(lock) => lock.try_acquire(),
            CondLock::RLock(lock) => lock.try_acquire(),
        }
    }

    /// Releases the condition's lock. Never switches.
    ///
    /// # Panics
    ///
    /// As [`Lock::release`] / [`RLock::release`].
    pub fn release(&self) {
        match &self.lock {
            CondLock::Lock(lock) => lock.release(),
            CondLock::RLock(lock) => lock.release(),
        }
    }

    /// Wakes up to `n` waiters, in FIFO order, skipping those whose [`wait_for`](Self::wait_for)
    /// predicate is false now (evaluated here, by the notifier). Never switches.
    ///
    /// # Panics
    ///
    /// If the lock is not held (Gruvi: `RuntimeError('lock is not locked')`).
    pub fn notify(&self, n: usize) {
        self.assert_locked("notify");
        let mut wakeups = Wakeups::new();
        let mut waiters = lock(&self.waiters);
        let mut woken = 0;
        let mut at = 0;
        while woken < n && at < waiters.len() {
            if waiters.drop_if_gone(at) {
                continue;
            }
            let ready = waiters
                .get(at)
                .and_then(|w| w.data.as_ref())
                .is_none_or(|predicate| predicate());
            if ready {
                if let Some(waiter) = waiters.take(at) {
                    wakeups.push(waiter.waker);
                }
                woken += 1;
            } else {
                at += 1;
            }
        }
        drop(waiters);
        wakeups.wake();
    }

    /// Wakes every waiter whose predicate (if any) is true. Never switches.
    ///
    /// # Panics
    ///
    /// If the lock is not held.
    pub fn notify_all(&self) {
        self.notify(usize::MAX);
    }

    /// Releases the lock, waits for a notification and re-acquires the lock.
    ///
    /// # Switchpoint
    ///
    /// Blocks until notified, then while the lock is taken.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], or [`Error::TimedOut`] from an enclosing
    /// [`timeout`](crate::timeout) scope; the lock is held again all the same.
    ///
    /// # Panics
    ///
    /// If the lock is not held (by the caller, for an [`RLock`]).
    #[track_caller]
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None, None)
    }

    /// Like [`wait`](Self::wait), giving up with [`Error::TimedOut`] after `timeout` (Gruvi's
    /// `wait(timeout)` returning `False`); the lock is held again all the same.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`, then while the lock is taken.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(None, waiter::deadline(timeout))
    }

    /// Like [`wait`](Self::wait), but only a notification that finds `predicate` true wakes
    /// the caller. The notifier evaluates it while holding the lock, from whatever fiber or
    /// thread notifies; it must be quick and must not touch this condition.
    ///
    /// # Switchpoint
    ///
    /// Blocks until notified with `predicate` true, then while the lock is taken.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    #[track_caller]
    pub fn wait_for(&self, predicate: impl Fn() -> bool + Send + 'static) -> Result<()> {
        self.wait_until(Some(Box::new(predicate)), None)
    }

    /// [`wait_for`](Self::wait_for), giving up with [`Error::TimedOut`] after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`, then while the lock is taken.
    #[track_caller]
    pub fn wait_for_timeout(
        &self,
        predicate: impl Fn() -> bool + Send + 'static,
        timeout: Duration,
    ) -> Result<()> {
        self.wait_until(Some(Box::new(predicate)), waiter::deadline(timeout))
    }

    #[track_caller]
    fn wait_until(&self, predicate: Option<Predicate>, deadline: Option<Instant>) -> Result<()> {
        self.assert_releasable();
        // Registered before the lock is released: the next holder's notify finds it.
        let (id, parker) = lock(&self.waiters).push(predicate);
        let saved = self.release_save();
        // Re-acquires the lock however the wait ends, unwinding included.
        let _restore = Restore {
            condition: self,
            saved,
        };
        waiter::block(
            parker,
            "Condition::wait",
            deadline,
            || lock(&self.waiters).remove(id).is_some(),
            || {},
        )
    }

    fn assert_locked(&self, what: &str) {
        let locked = match &self.lock {
            CondLock::Lock(lock) => lock.is_locked(),
            CondLock::RLock(lock) => lock.is_locked(),
        };
        assert!(locked, "Condition::{what}: lock is not locked");
    }

    /// A wait must be able to release the lock: checked before the waiter is queued.
    fn assert_releasable(&self) {
        self.assert_locked("wait");
        if let CondLock::RLock(lock) = &self.lock {
            assert!(
                lock.is_owned(),
                "Condition::wait: lock not owned by this fiber"
            );
        }
    }

    /// Releases the lock completely; returns the RLock's count to restore.
    fn release_save(&self) -> usize {
        match &self.lock {
            CondLock::Lock(lock) => {
                lock.release();
                1
            }
            CondLock::RLock(lock) => lock.release_save(),
        }
    }

    fn inner_lock(&self) -> &Lock {
        match &self.lock {
            CondLock::Lock(lock) => lock,
            CondLock::RLock(lock) => lock.inner(),
        }
    }

    /// How many fibers wait for a notification (for tests: nothing is left behind).
    #[doc(hidden)]
    pub fn waiter_count(&self) -> usize {
        lock(&self.waiters).len()
    }
}

/// Re-acquires a condition's lock when a wait ends.
struct Restore<'a> {
    condition: &'a Condition,
    saved: usize,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let lock = self.condition.inner_lock();
        let held = if std::thread::panicking() {
            // An unwinding fiber cannot wait: take the lock only if it is free.
            lock.try_acquire()
        } else {
            acquire_shielded(lock).is_ok()
        };
        if held && let CondLock::RLock(rlock) = &self.condition.lock {
            rlock.restore(self.saved);
        }
    }
}

/// Acquires `lock` with the calling fiber's cancellation and timeout scopes set aside, so that a
/// cancelled or timed-out wait still returns holding the lock (they apply again afterwards).
/// Fails only if the Hub is closing.
fn acquire_shielded(lock: &Lock) -> Result<()> {
    if lock.try_acquire() {
        return Ok(());
    }
    let Some(hub) = Hub::try_current() else {
        // A thread without a Hub is never cancelled.
        return lock.acquire();
    };
    let fiber = hub.current_fiber();
    let mut cancelled = fiber.cancelled.replace(false);
    let scopes = fiber.scopes.take();
    let result = loop {
        match lock.acquire() {
            Err(Error::Cancelled) if !std::thread::panicking() => {
                // Cancelled again meanwhile: remember it, and keep waiting for the lock.
                cancelled = true;
                fiber.cancelled.set(false);
            }
            other => break other,
        }
    };
    *fiber.scopes.borrow_mut() = scopes;
    fiber.cancelled.set(cancelled || fiber.cancelled.get());
    result
}

impl Default for Condition {
    fn default() -> Condition {
        Condition::new()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiters", &self.waiter_count())
            .finish_non_exhaustive()
    }
}
