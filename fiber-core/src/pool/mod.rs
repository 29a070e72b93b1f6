//! Pools of workers that run jobs and hand back [`Promise`]s (Gruvi's `FiberPool`,
//! `ThreadPool`, `blocking`).
//!
//! Both pools keep between `minsize` and `maxsize` workers, both really enforced: a worker is
//! spawned only when a job is queued, none is idle and fewer than `maxsize` exist (Gruvi's pools
//! ignore `maxsize`), and idle workers beyond `minsize` leave after `idle_timeout`. Jobs run in
//! submission order. A job that panics completes its promise with
//! [`PromiseError::Panicked`] and the worker carries on.

mod fiber_pool;
mod thread_pool;

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hub::panic_message;
use crate::promise::{Promise, PromiseError};
use crate::sync::waiter;

pub use fiber_pool::FiberPool;
pub use thread_pool::ThreadPool;

/// How long an idle worker beyond `minsize` stays, by default.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for a [`FiberPool`] or a [`ThreadPool`].
///
/// # Examples
///
/// ```
/// let pool = fiber_core::PoolBuilder::new()
///     .name("resolver")
///     .minsize(1)
///     .maxsize(4)
///     .thread_pool();
/// assert_eq!(pool.maxsize(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct PoolBuilder {
    name: Option<String>,
    minsize: usize,
    maxsize: usize,
    idle_timeout: Duration,
}

impl PoolBuilder {
    /// The defaults: no minimum, no maximum (`usize::MAX`), 10 s idle timeout.
    pub fn new() -> PoolBuilder {
        PoolBuilder {
            name: None,
            minsize: 0,
            maxsize: usize::MAX,
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    /// Names the pool (its workers are called `<name>-<n>`).
    pub fn name(mut self, name: impl Into<String>) -> PoolBuilder {
        self.name = Some(name.into());
        self
    }

    /// Workers kept even when idle (started when the pool is built).
    pub fn minsize(mut self, minsize: usize) -> PoolBuilder {
        self.minsize = minsize;
        self
    }

    /// The most workers that ever run at once.
    pub fn maxsize(mut self, maxsize: usize) -> PoolBuilder {
        self.maxsize = maxsize;
        self
    }

    /// How long a worker beyond `minsize` waits for a job before it leaves.
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> PoolBuilder {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Builds a pool of fibers on the current thread's Hub.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0 or below `minsize`.
    pub fn fiber_pool(self) -> FiberPool {
        self.check();
        FiberPool::build(self)
    }

    /// Builds a pool of threads.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0 or below `minsize`, or a thread cannot be spawned.
    pub fn thread_pool(self) -> ThreadPool {
        self.check();
        ThreadPool::build(self)
    }

    fn check(&self) {
        assert!(
            self.maxsize > 0 && self.minsize <= self.maxsize,
            "pool sizes must satisfy 0 <= minsize <= maxsize and maxsize > 0 \
             (minsize {}, maxsize {})",
            self.minsize,
            self.maxsize
        );
    }

    fn name_or(&self, kind: &str) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        self.name
            .clone()
            .unwrap_or_else(|| format!("{kind}-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Default for PoolBuilder {
    fn default() -> PoolBuilder {
        PoolBuilder::new()
    }
}

/// The pool is closing or closed: it takes no more jobs (Gruvi's `RuntimeError('pool is
/// closing/closed')`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolClosed;

impl fmt::Display for PoolClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the pool is closing or closed")
    }
}

impl std::error::Error for PoolClosed {}

/// Runs `job` and completes `promise` with its value or its panic, unless the promise was
/// cancelled before the job started.
fn run_job<T>(promise: &Promise<T>, started: bool, job: impl FnOnce() -> T) {
    if !started {
        return;
    }
    match panic::catch_unwind(AssertUnwindSafe(job)) {
        Ok(value) => {
            promise.set_result(value);
        }
        Err(payload) => {
            promise.set_panicked(panic_message(&*payload).to_owned());
        }
    }
}

/// The results of a pool's `map`, in input order; each `next()` waits for the next one.
///
/// Once a result is an error (the job panicked or was cancelled, or the deadline of
/// `map_timeout` passed), the jobs not done yet are cancelled and the iteration ends; dropping
/// it early cancels them too (Gruvi's map on an error, a timeout or `GeneratorExit`).
pub struct MapResults<T> {
    promises: VecDeque<Promise<T>>,
    deadline: Option<Instant>,
}

impl<T> MapResults<T> {
    fn new(promises: VecDeque<Promise<T>>, deadline: Option<Instant>) -> MapResults<T> {
        MapResults { promises, deadline }
    }

    fn cancel_rest(&mut self) {
        for promise in self.promises.drain(..) {
            promise.cancel();
        }
    }
}

impl<T> Iterator for MapResults<T> {
    type Item = std::result::Result<T, PromiseError>;

    #[track_caller]
    fn next(&mut self) -> Option<Self::Item> {
        let promise = self.promises.pop_front()?;
        if let Err(err) = promise.wait_until(self.deadline) {
            promise.cancel();
            self.cancel_rest();
            return Some(Err(PromiseError::Wait(err)));
        }
        let result = promise.into_result();
        if result.is_err() {
            self.cancel_rest();
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.promises.len(), Some(self.promises.len()))
    }
}

impl<T> Drop for MapResults<T> {
    fn drop(&mut self) {
        self.cancel_rest();
    }
}

impl<T> fmt::Debug for MapResults<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResults")
            .field("left", &self.promises.len())
            .finish_non_exhaustive()
    }
}

fn map_deadline(timeout: Duration) -> Option<Instant> {
    waiter::deadline(timeout)
}

/// The process-wide pool for blocking I/O (Gruvi's `get_io_pool()`): at most 20 threads.
pub fn io_pool() -> &'static ThreadPool {
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| PoolBuilder::new().name("Io").maxsize(20).thread_pool())
}

/// The process-wide pool for CPU-bound work (Gruvi's `get_cpu_pool()`): one thread per CPU.
pub fn cpu_pool() -> &'static ThreadPool {
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        PoolBuilder::new().name("Cpu").maxsize(cpus).thread_pool()
    })
}

/// Runs blocking code (a third-party call, a file read, a DNS lookup) on the [`io_pool`] and
/// returns its value to the calling fiber, while the other fibers of its Hub keep running
/// (Gruvi's `blocking`).
///
/// # Switchpoint
///
/// Blocks the calling fiber until `f` returns.
///
/// # Errors
///
/// [`Error::Cancelled`] if the calling fiber is cancelled (or [`Error::TimedOut`] if a
/// [`timeout`](crate::timeout) scope expires) while `f` runs; `f` still runs to its end and its
/// value is dropped.
///
/// # Panics
///
/// If `f` panics, with its message.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fiber_core::run(|| {
///     let ticker = fiber_core::spawn(|| {
///         let mut ticks = 0;
///         while fiber_core::sleep(Duration::from_millis(1)).is_ok() {
///             ticks += 1;
///         }
///         ticks
///     });
///     let value = fiber_core::blocking(|| {
///         std::thread::sleep(Duration::from_millis(30)); // blocks a pool thread, not the Hub
///         6 * 7
///     })?;
///     assert_eq!(value, 42);
///     ticker.cancel();
///     assert!(ticker.join().unwrap() > 0); // it ticked meanwhile
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
#[track_caller]
pub fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let promise = io_pool()
        .submit(f)
        .expect("the process-wide I/O pool is never closed");
    match promise.into_result() {
        Ok(value) => Ok(value),
        Err(PromiseError::Wait(err)) => Err(err),
        Err(PromiseError::Panicked(message)) => {
            panic::resume_unwind(Box::new(format!("blocking job panicked: {message}")))
        }
        Err(_) => Err(Error::Cancelled),
    }
}
