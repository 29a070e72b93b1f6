//! [`RLock`]: a reentrant lock with an owner (Gruvi's `RLock`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::Result;
use crate::hub::Hub;
use crate::sync::lock::Lock;
use crate::sync::parking::thread_token;

/// A reentrant lock: the fiber that holds it may acquire it again, and it is free once released
/// as many times as it was acquired (Gruvi's `RLock`). Only the owner may release it.
///
/// The owner is a fiber on some thread's Hub, or a plain thread without one: identity is the
/// pair (thread, fiber id), so fibers with equal ids on different threads are different owners.
/// Waiters are served in FIFO order, as for [`Lock`].
///
/// # Examples
///
/// ```
/// use fiber_core::RLock;
///
/// fiber_core::run(|| {
///     let lock = RLock::new();
///     let outer = lock.lock()?;
///     let inner = lock.lock()?; // the same fiber: no deadlock
///     assert_eq!(lock.count(), 2);
///     drop(inner);
///     drop(outer);
///     assert!(!lock.is_locked());
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct RLock {
    lock: Lock,
    /// The owner's thread token (0: none) and fiber id. Only the owner writes them, so a caller
    /// that reads its own identity there is the owner (see [`Owner::holds`]).
    owner_thread: AtomicU64,
    owner_fiber: AtomicU64,
    count: AtomicUsize,
}

/// Who is calling: the thread and the fiber on it (0, the root, for a thread without a Hub).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Owner {
    thread: u64,
    fiber: u64,
}

impl Owner {
    fn current() -> Owner {
        let fiber = Hub::try_current().map_or(0, |hub| hub.current_fiber().id);
        Owner {
            thread: thread_token(),
            fiber,
        }
    }

    /// Whether `self` owns `lock`. The thread is read first: only fibers of the caller's own
    /// thread ever store the caller's token there, and they run one at a time, so a match
    /// cannot be torn by another thread's writes.
    fn holds(self, lock: &RLock) -> bool {
        lock.owner_thread.load(Ordering::Relaxed) == self.thread
            && lock.owner_fiber.load(Ordering::Relaxed) == self.fiber
    }
}

impl RLock {
    /// An unlocked reentrant lock.
    pub const fn new() -> RLock {
        RLock {
            lock: Lock::new(),
            owner_thread: AtomicU64::new(0),
            owner_fiber: AtomicU64::new(0),
            count: AtomicUsize::new(0),
        }
    }

    /// Whether somebody holds the lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Whether the calling fiber (or thread) holds the lock.
    pub fn is_owned(&self) -> bool {
        Owner::current().holds(self)
    }

    /// How many times the owner has acquired the lock (0 when free).
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Acquires the lock, or counts one more acquisition if the caller holds it already.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber while another one holds the lock.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`](crate::Error::Cancelled), or [`Error::TimedOut`](crate::Error::TimedOut)
    /// from an enclosing [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn acquire(&self) -> Result<()> {
        let me = Owner::current();
        if self.reenter(me) {
            return Ok(());
        }
        self.lock.acquire()?;
        self.own(me, 1);
        Ok(())
    }

    /// Like [`acquire`](Self::acquire), giving up with
    /// [`Error::TimedOut`](crate::Error::TimedOut) after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        let me = Owner::current();
        if self.reenter(me) {
            return Ok(());
        }
        self.lock.acquire_timeout(timeout)?;
        self.own(me, 1);
        Ok(())
    }

    /// Acquires the lock if it is free or already the caller's. Never switches.
    pub fn try_acquire(&self) -> bool {
        let me = Owner::current();
        if self.reenter(me) {
            return true;
        }
        if self.lock.try_acquire() {
            self.own(me, 1);
            return true;
        }
        false
    }

    /// Releases one acquisition; the lock is free (and handed to the first waiter) after the
    /// last. Never switches.
    ///
    /// # Panics
    ///
    /// If the lock is not held (Gruvi: `RuntimeError('lock not currently held')`), or if another
    /// fiber holds it (`'lock not owned by this fiber'`).
    pub fn release(&self) {
        assert!(self.is_locked(), "RLock::release: lock not currently held");
        assert!(
            Owner::current().holds(self),
            "RLock::release: lock not owned by this fiber"
        );
        let count = self.count.load(Ordering::Relaxed) - 1;
        self.count.store(count, Ordering::Relaxed);
        if count == 0 {
            self.disown();
            self.lock.release();
        }
    }

    /// Acquires the lock and returns a guard that releases it once when dropped.
    ///
    /// # Switchpoint
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    #[track_caller]
    pub fn lock(&self) -> Result<RLockGuard<'_>> {
        self.acquire()?;
        Ok(RLockGuard {
            lock: self,
            _owner: PhantomData,
        })
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
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_>> {
        self.acquire_timeout(timeout)?;
        Ok(RLockGuard {
            lock: self,
            _owner: PhantomData,
        })
    }

    /// A guard if the lock is free or the caller's. Never switches.
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        self.try_acquire().then(|| RLockGuard {
            lock: self,
            _owner: PhantomData,
        })
    }

    fn reenter(&self, me: Owner) -> bool {
        if me.holds(self) {
            self.count.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn own(&self, me: Owner, count: usize) {
        self.owner_fiber.store(me.fiber, Ordering::Relaxed);
        self.owner_thread.store(me.thread, Ordering::Relaxed);
        self.count.store(count, Ordering::Relaxed);
    }

    fn disown(&self) {
        self.owner_thread.store(0, Ordering::Relaxed);
        self.owner_fiber.store(0, Ordering::Relaxed);
    }

    /// Releases the lock however often the caller acquired it and returns that count, for
    /// [`Condition::wait`](crate::Condition::wait). Never switches.
    pub(crate) fn release_save(&self) -> usize {
        assert!(
            Owner::current().holds(self),
            "RLock::release: lock not owned by this fiber"
        );
        let count = self.count.swap(0, Ordering::Relaxed);
        self.disown();
        self.lock.release();
        count
    }

    /// Takes ownership after the inner lock was acquired for `count` acquisitions.
    pub(crate) fn restore(&self, count: usize) {
        self.own(Owner::current(), count);
    }

    pub(crate) fn inner(&self) -> &Lock {
        &self.lock
    }
}

impl Default for RLock {
    fn default() -> RLock {
        RLock::new()
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &self.is_locked())
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

/// Releases one acquisition of an [`RLock`] when dropped; from [`RLock::lock`].
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    /// The guard belongs to the owner: it must not be released from another thread.
    _owner: PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // An unwinding fiber may have lost the lock (a condition wait that could not take it
        // back): never panic again while unwinding.
        if std::thread::panicking() && !self.lock.is_owned() {
            return;
        }
        self.lock.release();
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}
