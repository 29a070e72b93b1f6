//! Channels: multi-producer, multi-consumer, bounded or not, with `std::sync::mpsc`'s
//! disconnection rules, for fibers and threads.
//!
//! - [`unbounded()`]: sends never wait. [`bounded(n)`](bounded): sends wait while `n` values
//!   are queued; `bounded(0)` is a rendezvous (a send waits for a receiver to take the value).
//! - [`Sender`] and [`Receiver`] are both `Clone`, `Send` and `Sync`. When every `Sender` is
//!   gone, receivers get the values still queued, then [`RecvError::Disconnected`]; when every
//!   `Receiver` is gone, sends fail with the value back and queued values are dropped.
//! - Values are handed over in FIFO order and directly to the first waiting receiver; a
//!   receiver that times out or is cancelled never loses a value handed to it in that moment.
//!
//! # Examples
//!
//! ```
//! use fiber_core::channel;
//!
//! fiber_core::run(|| {
//!     let (tx, rx) = channel::bounded(1);
//!     let producer = fiber_core::spawn(move || {
//!         for i in 0..3 {
//!             tx.send(i).unwrap(); // waits for room
//!         }
//!         // `tx` is dropped here: the channel disconnects once drained.
//!     });
//!     let got: Vec<i32> = rx.iter().collect();
//!     assert_eq!(got, [0, 1, 2]);
//!     producer.join().unwrap();
//! });
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sync::queue_core::{self, Core, GetFail, PutFail, TryGetError, TryPutError};
use crate::sync::waiter;

struct Shared<T> {
    core: Core<T>,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

/// A channel whose sends never wait.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    make(None)
}

/// A channel holding at most `capacity` values: sends wait for room. With `capacity` 0 every
/// send waits until a receiver takes its value (a rendezvous).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    make(Some(capacity))
}

fn make<T>(capacity: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        core: Core::new(capacity, queue_core::fifo(), None),
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// The sending side of a channel; clone it for more producers.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving side of a channel; clone it for more consumers (each value goes to one).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for room in a bounded channel.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) while a bounded channel is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] if every receiver is gone; [`SendError::Wait`] if the fiber
    /// was cancelled or a [`timeout`](crate::timeout) scope expired. The value comes back.
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.send_until(value, None)
    }

    /// Like [`send`](Self::send), giving up after `timeout` with
    /// [`SendError::Wait`]`(value, `[`Error::TimedOut`]`)`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    #[track_caller]
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_until(value, waiter::deadline(timeout))
    }

    #[track_caller]
    fn send_until(&self, value: T, deadline: Option<Instant>) -> Result<(), SendError<T>> {
        match self.shared.core.put(value, deadline, "Sender::send") {
            Ok(()) => Ok(()),
            Err(PutFail::Closed(value)) => Err(SendError::Disconnected(value)),
            Err(PutFail::Wait(value, err)) => Err(SendError::Wait(value, err)),
        }
    }

    /// Sends `value` if there is room now. Never switches.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`], with the value back.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.shared.core.try_put(value).map_err(|err| match err {
            TryPutError::Full(value) => TrySendError::Full(value),
            TryPutError::Closed(value) => TrySendError::Disconnected(value),
        })
    }

    /// How many values are queued.
    pub fn len(&self) -> usize {
        self.shared.core.len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound (`None`: unbounded).
    pub fn capacity(&self) -> Option<usize> {
        self.shared.core.capacity()
    }
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting for one.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once every sender is gone and the channel is drained;
    /// [`RecvError::Wait`] if the fiber was cancelled or a [`timeout`](crate::timeout) scope
    /// expired.
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout` with
    /// [`RecvError::Wait`]`(`[`Error::TimedOut`]`)`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_until(waiter::deadline(timeout))
    }

    #[track_caller]
    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvError> {
        self.shared
            .core
            .get(deadline, "Receiver::recv")
            .map_err(|err| match err {
                GetFail::Closed => RecvError::Disconnected,
                GetFail::Wait(err) => RecvError::Wait(err),
            })
    }

    /// Receives a value if one is there now. Never switches.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once every sender is gone
    /// and the channel is drained.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.shared.core.try_get().map_err(|err| match err {
            TryGetError::Empty => TryRecvError::Empty,
            TryGetError::Closed => TryRecvError::Disconnected,
        })
    }

    /// An iterator of received values that ends when [`recv`](Self::recv) fails (the channel
    /// disconnected, or the fiber was cancelled).
    ///
    /// # Switchpoint
    ///
    /// Each `next()` is one [`recv`](Self::recv).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// An iterator of the values there now. Never switches.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// How many values are queued.
    pub fn len(&self) -> usize {
        self.shared.core.len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound (`None`: unbounded).
    pub fn capacity(&self) -> Option<usize> {
        self.shared.core.capacity()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.core.close_senders();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.shared.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.core.close_receivers();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// Why [`Sender::send`] did not send; the value comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendError<T> {
    /// Every receiver is gone.
    Disconnected(T),
    /// Waiting for room failed: [`Error::TimedOut`], [`Error::Cancelled`]...
    Wait(T, Error),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Disconnected(value) | SendError::Wait(value, _) => value,
        }
    }
}

/// Why [`Sender::try_send`] did not send; the value comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// A bounded channel is full.
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) | TrySendError::Disconnected(value) => value,
        }
    }
}

/// Why [`Receiver::recv`] returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and the channel is drained.
    Disconnected,
    /// Waiting failed: [`Error::TimedOut`], [`Error::Cancelled`]...
    Wait(Error),
}

/// Why [`Receiver::try_recv`] returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is queued now.
    Empty,
    /// Every sender is gone and the channel is drained.
    Disconnected,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::Wait(_, err) => write!(f, "Wait(.., {err:?})"),
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            SendError::Wait(_, err) => write!(f, "sending failed: {err}"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => f.write_str("receiving on a disconnected channel"),
            RecvError::Wait(err) => write!(f, "receiving failed: {err}"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str("receiving on a disconnected channel"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}
impl<T> std::error::Error for TrySendError<T> {}
impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
