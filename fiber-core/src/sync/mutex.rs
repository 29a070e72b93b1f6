//! [`Mutex`]: data guarded by a fair fiber lock, with a guard like `std::sync::Mutex`'s.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{MutexGuard as StdGuard, PoisonError};
use std::time::Duration;

use crate::error::Result;
use crate::sync::lock::Lock;

/// A value guarded by a fair [`Lock`]: `std::sync::Mutex`'s shape, but waiting for it blocks
/// only the calling fiber, and waiters get it in FIFO order.
///
/// There is no poisoning: a panic while the guard is held releases the lock, and the next
/// holder sees the data as the panicking code left it. (Underneath, the data sits in a
/// `std::sync::Mutex` that only the holder of the fair lock ever takes, so it is never
/// contended.)
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use fiber_core::{Mutex, spawn};
///
/// fiber_core::run(|| {
///     let total = Arc::new(Mutex::new(0));
///     let adders: Vec<_> = (1..=4)
///         .map(|i| {
///             let total = total.clone();
///             spawn(move || -> fiber_core::Result<()> {
///                 let mut sum = total.lock()?;
///                 fiber_core::yield_now()?; // others queue up meanwhile
///                 *sum += i;
///                 Ok(())
///             })
///         })
///         .collect();
///     for adder in adders {
///         adder.join().unwrap()?;
///     }
///     assert_eq!(*total.lock()?, 10);
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct Mutex<T: ?Sized> {
    lock: Lock,
    data: std::sync::Mutex<T>,
}

/// Access to a [`Mutex`]'s data; releases the lock when dropped. Not `Send`, like std's.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Lock,
    /// Always `Some` until dropped.
    data: Option<StdGuard<'a, T>>,
}

impl<T> Mutex<T> {
    /// A mutex guarding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            lock: Lock::new(),
            data: std::sync::Mutex::new(value),
        }
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.data
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting for it if needed.
    ///
    /// # Switchpoint
    ///
    /// As [`Lock::acquire`].
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`]: the fiber was cancelled or a [`timeout`](crate::timeout) scope
    /// expired.
    #[track_caller]
    pub fn lock(&self) -> Result<MutexGuard<'_, T>> {
        self.lock.acquire()?;
        Ok(self.guard())
    }

    /// Like [`lock`](Self::lock), giving up with [`Error::TimedOut`](crate::Error::TimedOut)
    /// after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire_timeout`].
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>> {
        self.lock.acquire_timeout(timeout)?;
        Ok(self.guard())
    }

    /// Locks the mutex if it is free now. Never switches.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.lock.try_acquire().then(|| self.guard())
    }

    /// Whether somebody holds the lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// The guard, once the fair lock is held.
    fn guard(&self) -> MutexGuard<'_, T> {
        let data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        MutexGuard {
            lock: &self.lock,
            data: Some(data),
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.data.as_deref().expect("the guard holds the data")
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.data.as_deref_mut().expect("the guard holds the data")
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.data.take());
        self.lock.release();
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
