//! [`Promise`]: a result that becomes available later (Gruvi's `Future`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sync::waiter::{self, WaitQueue, Wakeups, lock};
use crate::waitable::{CallbackId, DoneCallback, DoneCallbacks, Waitable, run_now};

/// A result that becomes available later, settable and readable from any fiber or thread
/// (Gruvi's `Future`, renamed because Rust's `Future` is something else). Cheap to clone: the
/// clones share the result. Pools return one per submitted job.
///
/// States: pending, running ([`set_running`](Self::set_running)), then done with a value
/// ([`set_result`](Self::set_result)), an error ([`set_error`](Self::set_error)) or cancelled
/// ([`cancel`](Self::cancel)). The first completion wins; later ones are ignored.
///
/// It is [`Waitable`]: done callbacks run when it completes.
///
/// # Examples
///
/// ```
/// use fiber_core::Promise;
///
/// fiber_core::run(|| {
///     let promise = Promise::new();
///     let setter = promise.clone();
///     std::thread::spawn(move || setter.set_result(42));
///     assert_eq!(promise.result().unwrap(), 42); // the fiber waits, other fibers run
///     assert!(!promise.set_result(7)); // the first completion won
/// });
/// ```
pub struct Promise<T> {
    inner: Arc<Mutex<State<T>>>,
}

struct State<T> {
    outcome: Outcome<T>,
    waiters: WaitQueue,
    callbacks: DoneCallbacks,
    /// Cancels the running work (a pool's fiber job).
    canceller: Option<Box<dyn FnOnce() + Send>>,
}

enum Outcome<T> {
    Pending,
    Running {
        cancellable: bool,
    },
    Done(std::result::Result<T, PromiseError>),
    /// [`Promise::into_result`] took the value.
    Taken,
}

/// Why a [`Promise`] gave no value.
#[derive(Clone)]
#[non_exhaustive]
pub enum PromiseError {
    /// It was cancelled ([`Promise::cancel`]) before it completed.
    Cancelled,
    /// The job computing it panicked, with this message.
    Panicked(String),
    /// It completed with an error ([`Promise::set_error`]; Gruvi's `set_exception`).
    Failed(Arc<dyn std::error::Error + Send + Sync>),
    /// Waiting for it failed: it is still pending ([`Error::TimedOut`], [`Error::Cancelled`]
    /// for the waiting fiber...).
    Wait(Error),
}

impl<T> Promise<T> {
    /// A pending promise.
    pub fn new() -> Promise<T> {
        Promise {
            inner: Arc::new(Mutex::new(State {
                outcome: Outcome::Pending,
                waiters: WaitQueue::new(),
                callbacks: DoneCallbacks::new(),
                canceller: None,
            })),
        }
    }

    /// Whether it completed (with a value, an error, or cancelled).
    pub fn is_done(&self) -> bool {
        matches!(lock(&self.inner).outcome, Outcome::Done(_) | Outcome::Taken)
    }

    /// Whether the work producing it has started and not finished.
    pub fn is_running(&self) -> bool {
        matches!(lock(&self.inner).outcome, Outcome::Running { .. })
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            lock(&self.inner).outcome,
            Outcome::Done(Err(PromiseError::Cancelled))
        )
    }

    /// Marks the work as started; if not `cancellable`, [`cancel`](Self::cancel) has no effect
    /// from now on. Returns false (and the work should not start) if it is no longer pending,
    /// e.g. cancelled meanwhile.
    pub fn set_running(&self, cancellable: bool) -> bool {
        let mut state = lock(&self.inner);
        if !matches!(state.outcome, Outcome::Pending) {
            return false;
        }
        state.outcome = Outcome::Running { cancellable };
        true
    }

    /// Marks the work as started, with `canceller` to stop it if the promise is cancelled.
    pub(crate) fn set_running_with(&self, canceller: Box<dyn FnOnce() + Send>) -> bool {
        let mut state = lock(&self.inner);
        if !matches!(state.outcome, Outcome::Pending) {
            return false;
        }
        state.outcome = Outcome::Running { cancellable: true };
        state.canceller = Some(canceller);
        true
    }

    /// Completes it with `value`; false (and `value` dropped) if it was completed already.
    /// Never switches.
    pub fn set_result(&self, value: T) -> bool {
        self.complete(Ok(value))
    }

    /// Completes it with an error (Gruvi's `set_exception`); false if it was completed
    /// already. Never switches.
    pub fn set_error(&self, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> bool {
        self.complete(Err(PromiseError::Failed(Arc::from(error.into()))))
    }

    /// Completes it as panicked with `message`.
    pub(crate) fn set_panicked(&self, message: String) -> bool {
        self.complete(Err(PromiseError::Panicked(message)))
    }

    /// Cancels it if it is pending or running cancellably: it completes with
    /// [`PromiseError::Cancelled`], and work a pool runs in a fiber is cancelled too. Returns
    /// whether it did. Never switches.
    pub fn cancel(&self) -> bool {
        let mut state = lock(&self.inner);
        match state.outcome {
            Outcome::Pending | Outcome::Running { cancellable: true } => {}
            _ => return false,
        }
        let canceller = state.canceller.take();
        drop(state);
        let cancelled = self.complete(Err(PromiseError::Cancelled));
        if cancelled && let Some(canceller) = canceller {
            canceller();
        }
        cancelled
    }

    fn complete(&self, outcome: std::result::Result<T, PromiseError>) -> bool {
        let mut state = lock(&self.inner);
        if matches!(state.outcome, Outcome::Done(_) | Outcome::Taken) {
            return false;
        }
        state.outcome = Outcome::Done(outcome);
        let canceller = state.canceller.take();
        let mut wakeups = Wakeups::new();
        for waiter in state.waiters.drain() {
            wakeups.push(waiter.waker);
        }
        let callbacks = std::mem::take(&mut state.callbacks);
        drop(state);
        drop(canceller);
        wakeups.wake();
        callbacks.run();
        true
    }

    /// Waits until it completes.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) while it is pending or running.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] (the waiting fiber's), [`Error::TimedOut`] from an enclosing
    /// [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None)
    }

    /// Like [`wait`](Self::wait), giving up with [`Error::TimedOut`] after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(waiter::deadline(timeout))
    }

    #[track_caller]
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> Result<()> {
        let mut state = lock(&self.inner);
        if matches!(state.outcome, Outcome::Done(_) | Outcome::Taken) {
            return Ok(());
        }
        let (id, parker) = state.waiters.push(());
        drop(state);
        waiter::block(
            parker,
            "Promise::wait",
            deadline,
            || lock(&self.inner).waiters.remove(id).is_some(),
            || {},
        )
    }

    /// Waits for it and returns its value, consuming this handle: the value moves out, with no
    /// `Clone` needed.
    ///
    /// # Switchpoint
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Errors
    ///
    /// The [`PromiseError`]: cancelled, panicked, failed, or [`PromiseError::Wait`] if waiting
    /// failed.
    ///
    /// # Panics
    ///
    /// If another handle's `into_result` took the value already.
    #[track_caller]
    pub fn into_result(self) -> std::result::Result<T, PromiseError> {
        self.wait().map_err(PromiseError::Wait)?;
        let mut state = lock(&self.inner);
        match std::mem::replace(&mut state.outcome, Outcome::Taken) {
            Outcome::Done(outcome) => outcome,
            _ => panic!("Promise::into_result: the value was taken by another handle"),
        }
    }

    /// Waits for it and returns its error, `None` if it completed with a value (Gruvi's
    /// `exception()`).
    ///
    /// # Switchpoint
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Errors
    ///
    /// The waiting fiber's [`Error`] if waiting failed.
    #[track_caller]
    pub fn error(&self) -> Result<Option<PromiseError>> {
        self.wait()?;
        Ok(self.peek_error())
    }

    /// Like [`error`](Self::error), giving up with [`Error::TimedOut`] after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn error_timeout(&self, timeout: Duration) -> Result<Option<PromiseError>> {
        self.wait_timeout(timeout)?;
        Ok(self.peek_error())
    }

    fn peek_error(&self) -> Option<PromiseError> {
        match &lock(&self.inner).outcome {
            Outcome::Done(Err(err)) => Some(err.clone()),
            _ => None,
        }
    }

    /// How many fibers and threads wait (for tests: nothing is left behind).
    #[doc(hidden)]
    pub fn waiter_count(&self) -> usize {
        lock(&self.inner).waiters.len()
    }

    /// How many done callbacks are registered (for tests: all are removed).
    #[doc(hidden)]
    pub fn callback_count(&self) -> usize {
        lock(&self.inner).callbacks.len()
    }
}

impl<T: Clone> Promise<T> {
    /// Waits for it and returns a copy of its value (Gruvi's `result()`).
    ///
    /// # Switchpoint
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Errors
    ///
    /// As [`into_result`](Self::into_result).
    ///
    /// # Panics
    ///
    /// If [`into_result`](Self::into_result) took the value.
    #[track_caller]
    pub fn result(&self) -> std::result::Result<T, PromiseError> {
        self.wait().map_err(PromiseError::Wait)?;
        self.try_result().expect("a completed promise has a result")
    }

    /// Like [`result`](Self::result), giving up with
    /// [`PromiseError::Wait`]`(`[`Error::TimedOut`]`)` after `timeout` (Gruvi's
    /// `Timeout('timeout waiting for future')`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`into_result`](Self::into_result).
    #[track_caller]
    pub fn result_timeout(&self, timeout: Duration) -> std::result::Result<T, PromiseError> {
        self.wait_timeout(timeout).map_err(PromiseError::Wait)?;
        self.try_result().expect("a completed promise has a result")
    }

    /// Its result if it has completed, `None` if not. Never switches.
    ///
    /// # Panics
    ///
    /// If [`into_result`](Self::into_result) took the value.
    pub fn try_result(&self) -> Option<std::result::Result<T, PromiseError>> {
        match &lock(&self.inner).outcome {
            Outcome::Done(outcome) => Some(outcome.clone()),
            Outcome::Taken => panic!("Promise::result: the value was taken by into_result"),
            _ => None,
        }
    }
}

/// Done when it completes.
impl<T> Waitable for Promise<T> {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        let mut state = lock(&self.inner);
        if matches!(state.outcome, Outcome::Done(_) | Outcome::Taken) {
            drop(state);
            run_now(callback);
            return None;
        }
        Some(state.callbacks.add(callback))
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        lock(&self.inner).callbacks.remove(id)
    }
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Promise<T> {
        Promise {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for Promise<T> {
    fn default() -> Promise<T> {
        Promise::new()
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &lock(&self.inner).outcome {
            Outcome::Pending => "pending",
            Outcome::Running { .. } => "running",
            Outcome::Done(Ok(_)) | Outcome::Taken => "done",
            Outcome::Done(Err(_)) => "failed",
        };
        f.debug_struct("Promise").field("state", &state).finish()
    }
}

impl PromiseError {
    /// Whether the promise was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, PromiseError::Cancelled)
    }

    /// Whether the job panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, PromiseError::Panicked(_))
    }

    /// The waiting fiber's error, if waiting is what failed.
    pub fn wait_error(&self) -> Option<Error> {
        match self {
            PromiseError::Wait(err) => Some(*err),
            _ => None,
        }
    }
}

impl fmt::Display for PromiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromiseError::Cancelled => f.write_str("the promise was cancelled"),
            PromiseError::Panicked(message) => write!(f, "the job panicked: {message}"),
            PromiseError::Failed(err) => write!(f, "the job failed: {err}"),
            PromiseError::Wait(err) => write!(f, "waiting for the promise failed: {err}"),
        }
    }
}

impl fmt::Debug for PromiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PromiseError({self})")
    }
}

impl std::error::Error for PromiseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PromiseError::Failed(err) => Some(&**err),
            PromiseError::Wait(err) => Some(err),
            _ => None,
        }
    }
}

impl From<Error> for PromiseError {
    fn from(err: Error) -> PromiseError {
        PromiseError::Wait(err)
    }
}
