//! [`Queue`], [`LifoQueue`] and [`PriorityQueue`] (Gruvi's queues), and their errors.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sync::queue_core::{self, Core, GetFail, PutFail, TryGetError, TryPutError};
use crate::sync::waiter;

/// A queue for fibers and threads (Gruvi's `Queue`): FIFO, optionally bounded, with task
/// accounting ([`task_done`](Self::task_done), [`join`](Self::join)).
///
/// - **Bounded by size.** [`qsize`](Self::qsize) is the sum of the items' sizes (1 each, or
///   what the queue's size function says, [`with_size_fn`](Self::with_size_fn)); a put waits
///   while the item does not fit under `maxsize`. An item bigger than `maxsize` still goes into
///   an empty queue (Gruvi would wait forever). `maxsize` 0 means unbounded.
/// - **Fair hand-over.** A put with getters waiting hands the item straight to the first one;
///   a get that makes room moves the first waiting putters' items in, in FIFO order. A waiter
///   that times out or is cancelled leaves the queue; an item handed to it in that moment is
///   still returned, never lost.
/// - **Naming.** `put`/`get` may switch, `put_timeout`/`get_timeout` give up after a while,
///   `try_put`/`try_get` (Gruvi's `put_nowait`/`get_nowait`) never switch, so they are safe in
///   libuv callbacks and no-switch sections.
///
/// [`LifoQueue`] and [`PriorityQueue`] are the same queue with another order.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use fiber_core::{Queue, spawn};
///
/// fiber_core::run(|| {
///     let queue = Arc::new(Queue::new(2));
///     let producer = {
///         let queue = queue.clone();
///         spawn(move || -> fiber_core::Result<()> {
///             for i in 0..5 {
///                 queue.put(i)?; // waits while 2 items are queued
///             }
///             Ok(())
///         })
///     };
///     let got: Vec<i32> = (0..5).map(|_| queue.get()).collect::<Result<_, _>>()?;
///     assert_eq!(got, [0, 1, 2, 3, 4]);
///     producer.join().unwrap()?;
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct Queue<T> {
    core: Core<T>,
}

impl<T> Queue<T> {
    /// A FIFO queue holding items of total size at most `maxsize` (0: unbounded).
    pub fn new(maxsize: usize) -> Queue<T> {
        Queue::with_order(maxsize, queue_core::fifo(), None)
    }

    /// A FIFO queue where each item counts `size_of(item)` towards `maxsize` (Gruvi's `put`
    /// with `size=`, e.g. the length of a buffer).
    pub fn with_size_fn(
        maxsize: usize,
        size_of: impl Fn(&T) -> usize + Send + Sync + 'static,
    ) -> Queue<T> {
        Queue::with_order(maxsize, queue_core::fifo(), Some(Box::new(size_of)))
    }

    fn with_order(
        maxsize: usize,
        order: queue_core::OrderFns<T>,
        size_of: Option<queue_core::SizeFn<T>>,
    ) -> Queue<T> {
        Queue {
            core: Core::new((maxsize > 0).then_some(maxsize), order, size_of),
        }
    }

    /// The total size of the queued items (their count, without a size function).
    pub fn qsize(&self) -> usize {
        self.core.qsize()
    }

    /// How many items are queued.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is bounded and full (Gruvi's `full()`).
    pub fn is_full(&self) -> bool {
        self.core
            .capacity()
            .is_some_and(|max| self.core.qsize() >= max)
    }

    /// The bound given at construction (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.core.capacity().unwrap_or(0)
    }

    /// Items put and not yet marked done with [`task_done`](Self::task_done).
    pub fn unfinished_tasks(&self) -> usize {
        self.core.unfinished()
    }

    /// Puts `item` in, waiting while it does not fit.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) while the queue is full.
    ///
    /// # Errors
    ///
    /// A [`PutError`] with the item back: [`Error::Cancelled`], or [`Error::TimedOut`] from an
    /// enclosing [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.put_until(item, None)
    }

    /// Like [`put`](Self::put), giving up after `timeout` with a [`PutError`] whose error is
    /// [`Error::TimedOut`] (Gruvi's `put(timeout=...)` raising `QueueFull`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    #[track_caller]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.put_until(item, waiter::deadline(timeout))
    }

    #[track_caller]
    fn put_until(
        &self,
        item: T,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<(), PutError<T>> {
        match self.core.put(item, deadline, "Queue::put") {
            Ok(()) => Ok(()),
            Err(PutFail::Wait(item, error)) => Err(PutError { item, error }),
            Err(PutFail::Closed(_)) => unreachable!("a queue is never closed"),
        }
    }

    /// Puts `item` in if it fits now (Gruvi's `put_nowait`). Never switches.
    ///
    /// # Errors
    ///
    /// [`QueueFull`] with the item back.
    pub fn try_put(&self, item: T) -> std::result::Result<(), QueueFull<T>> {
        match self.core.try_put(item) {
            Ok(()) => Ok(()),
            Err(TryPutError::Full(item) | TryPutError::Closed(item)) => Err(QueueFull(item)),
        }
    }

    /// Takes the next item out, waiting for one.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], or [`Error::TimedOut`] from an enclosing
    /// [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn get(&self) -> Result<T> {
        self.get_until(None)
    }

    /// Like [`get`](Self::get), giving up with [`Error::TimedOut`] after `timeout` (Gruvi's
    /// `get(timeout=...)` raising `QueueEmpty`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(waiter::deadline(timeout))
    }

    #[track_caller]
    fn get_until(&self, deadline: Option<std::time::Instant>) -> Result<T> {
        match self.core.get(deadline, "Queue::get") {
            Ok(item) => Ok(item),
            Err(GetFail::Wait(error)) => Err(error),
            Err(GetFail::Closed) => unreachable!("a queue is never closed"),
        }
    }

    /// Takes the next item out if there is one (Gruvi's `get_nowait`). Never switches.
    ///
    /// # Errors
    ///
    /// [`QueueEmpty`].
    pub fn try_get(&self) -> std::result::Result<T, QueueEmpty> {
        self.core.try_get().map_err(|_: TryGetError| QueueEmpty)
    }

    /// Marks one item taken out as processed; [`join`](Self::join) returns once every item
    /// put in is. Never switches.
    ///
    /// # Panics
    ///
    /// If called more often than items were put (Gruvi: `RuntimeError('task_done() called too
    /// many times')`).
    pub fn task_done(&self) {
        self.core.task_done();
    }

    /// Waits until every item put in was marked done with [`task_done`](Self::task_done).
    ///
    /// # Switchpoint
    ///
    /// Blocks while tasks are unfinished.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], or [`Error::TimedOut`] from an enclosing
    /// [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn join(&self) -> Result<()> {
        self.core.join(None)
    }

    /// Like [`join`](Self::join), giving up with [`Error::TimedOut`] after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.core.join(waiter::deadline(timeout))
    }

    /// Waiting getters, putters and joiners (for tests: nothing is left behind).
    #[doc(hidden)]
    pub fn waiter_counts(&self) -> (usize, usize, usize) {
        self.core.waiter_counts()
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize())
            .finish_non_exhaustive()
    }
}

/// A [`Queue`] that hands out the most recently put item first (Gruvi's `LifoQueue`); every
/// [`Queue`] method applies.
///
/// # Examples
///
/// ```
/// let queue = fiber_core::LifoQueue::new(0);
/// for i in 0..3 {
///     queue.try_put(i).unwrap();
/// }
/// assert_eq!(queue.try_get(), Ok(2));
/// ```
pub struct LifoQueue<T>(Queue<T>);

impl<T> LifoQueue<T> {
    /// A LIFO queue holding items of total size at most `maxsize` (0: unbounded).
    pub fn new(maxsize: usize) -> LifoQueue<T> {
        LifoQueue(Queue::with_order(maxsize, queue_core::lifo(), None))
    }

    /// A LIFO queue with a per-item size function, as [`Queue::with_size_fn`].
    pub fn with_size_fn(
        maxsize: usize,
        size_of: impl Fn(&T) -> usize + Send + Sync + 'static,
    ) -> LifoQueue<T> {
        LifoQueue(Queue::with_order(
            maxsize,
            queue_core::lifo(),
            Some(Box::new(size_of)),
        ))
    }
}

impl<T> Deref for LifoQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.0
    }
}

impl<T> fmt::Debug for LifoQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LifoQueue").field(&self.0).finish()
    }
}

/// A [`Queue`] that hands out the lowest item first (Gruvi's `PriorityQueue`), typically a
/// `(priority, value)` tuple; every [`Queue`] method applies. Equal items come out in no
/// particular order.
///
/// # Examples
///
/// ```
/// let queue = fiber_core::PriorityQueue::new(0);
/// for item in [(2, "low"), (0, "urgent"), (1, "normal")] {
///     queue.try_put(item).unwrap();
/// }
/// assert_eq!(queue.try_get(), Ok((0, "urgent")));
/// ```
pub struct PriorityQueue<T: Ord>(Queue<T>);

impl<T: Ord> PriorityQueue<T> {
    /// A priority queue holding items of total size at most `maxsize` (0: unbounded).
    pub fn new(maxsize: usize) -> PriorityQueue<T> {
        PriorityQueue(Queue::with_order(maxsize, queue_core::priority(), None))
    }

    /// A priority queue with a per-item size function, as [`Queue::with_size_fn`].
    pub fn with_size_fn(
        maxsize: usize,
        size_of: impl Fn(&T) -> usize + Send + Sync + 'static,
    ) -> PriorityQueue<T> {
        PriorityQueue(Queue::with_order(
            maxsize,
            queue_core::priority(),
            Some(Box::new(size_of)),
        ))
    }
}

impl<T: Ord> Deref for PriorityQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.0
    }
}

impl<T: Ord> fmt::Debug for PriorityQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PriorityQueue").field(&self.0).finish()
    }
}

/// [`Queue::try_get`] found the queue empty (Gruvi's `QueueEmpty`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueEmpty;

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is empty")
    }
}

impl std::error::Error for QueueEmpty {}

/// [`Queue::try_put`] found no room (Gruvi's `QueueFull`); the item comes back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueFull<T>(pub T);

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is full")
    }
}

impl<T> std::error::Error for QueueFull<T> {}

/// A [`Queue::put`] that did not happen: why, and the item back. Converts to [`Error`] for `?`.
#[derive(Clone, PartialEq, Eq)]
pub struct PutError<T> {
    /// The item that was not put.
    pub item: T,
    /// Why: [`Error::TimedOut`] (Gruvi's `QueueFull` after a timeout), [`Error::Cancelled`]...
    pub error: Error,
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "put failed: {}", self.error)
    }
}

impl<T> std::error::Error for PutError<T> {}

impl<T> From<PutError<T>> for Error {
    fn from(err: PutError<T>) -> Error {
        err.error
    }
}
