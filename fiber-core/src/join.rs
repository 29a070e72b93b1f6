//! Waiting for a fiber to finish ([`JoinHandle`]).

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::fiber::{Fiber, FiberState, Wake};
use crate::hub::{Hub, panic_message};
use crate::switch_back::SwitchBack;

/// Where a fiber's closure leaves its result.
pub(crate) struct ResultSlot<T> {
    result: Cell<Option<thread::Result<T>>>,
}

impl<T> ResultSlot<T> {
    pub(crate) fn new() -> Self {
        ResultSlot {
            result: Cell::new(None),
        }
    }

    pub(crate) fn set(&self, result: thread::Result<T>) {
        self.result.set(Some(result));
    }
}

/// Why [`JoinHandle::join`] gave no value.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Panicked(Box<dyn Any + Send>),
    NeverRan,
    Wait(Error),
}

impl JoinError {
    /// Whether the fiber panicked; [`into_panic`](Self::into_panic) gives the payload.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The panic payload, for `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the error is not a panic.
    pub fn into_panic(self) -> Box<dyn Any + Send> {
        match self.repr {
            Repr::Panicked(payload) => payload,
            _ => panic!("JoinError::into_panic on an error that is not a panic: {self}"),
        }
    }

    /// Whether the fiber was cancelled before it ever ran, so it has no result.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::NeverRan)
    }

    /// The error of the joining fiber's own wait (cancelled, timed out, deadlock), if that is
    /// why there is no value; the joined fiber is then still running.
    pub fn wait_error(&self) -> Option<Error> {
        match self.repr {
            Repr::Wait(err) => Some(err),
            _ => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panicked(payload) => {
                write!(f, "the fiber panicked: {}", panic_message(&**payload))
            }
            Repr::NeverRan => f.write_str("the fiber was cancelled before it ran"),
            Repr::Wait(err) => write!(f, "joining the fiber failed: {err}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinError({self})")
    }
}

impl std::error::Error for JoinError {}

impl From<Error> for JoinError {
    fn from(err: Error) -> JoinError {
        JoinError {
            repr: Repr::Wait(err),
        }
    }
}

/// An owned permission to join a fiber (wait for its result) or cancel it. Dropping it
/// detaches the fiber, which runs on.
pub struct JoinHandle<T> {
    fiber: Fiber,
    slot: std::rc::Rc<ResultSlot<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(fiber: Fiber, slot: std::rc::Rc<ResultSlot<T>>) -> Self {
        JoinHandle { fiber, slot }
    }

    /// The fiber.
    pub fn fiber(&self) -> &Fiber {
        &self.fiber
    }

    /// Whether the fiber has finished (returned, panicked or was cancelled before running).
    pub fn is_finished(&self) -> bool {
        self.fiber.state() == FiberState::Done
    }

    /// Waits for the fiber to finish and returns its result.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the fiber finishes.
    ///
    /// # Errors
    ///
    /// A [`JoinError`]: the fiber panicked (with its payload) or was cancelled before it ran, or
    /// the joining fiber's own wait failed ([`JoinError::wait_error`]), e.g. when a fiber joins
    /// itself or two fibers join each other ([`Error::WouldBlockForever`]).
    #[track_caller]
    pub fn join(self) -> Result<T, JoinError> {
        self.join_until(None)
    }

    /// Like [`join`](Self::join), giving up after `timeout` with a [`JoinError`] whose
    /// [`wait_error`](JoinError::wait_error) is [`Error::TimedOut`]; the handle stays usable.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Panics
    ///
    /// If the result was already taken by an earlier successful `join_timeout`.
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Result<T, JoinError> {
        self.join_until(crate::sync::waiter::deadline(timeout))
    }

    #[track_caller]
    fn join_until(&self, deadline: Option<Instant>) -> Result<T, JoinError> {
        let hub = Hub::current();
        crate::no_switch::assert_may_switch("JoinHandle::join");
        if std::rc::Rc::ptr_eq(&self.fiber.inner, &hub.current_fiber()) {
            return Err(Error::WouldBlockForever.into());
        }
        while self.fiber.state() != FiberState::Done {
            let sb = SwitchBack::new();
            let done = sb.callback();
            self.fiber
                .inner
                .on_done
                .borrow_mut()
                .push(Box::new(move || {
                    done.call(());
                }));
            match deadline {
                None => sb.wait()?,
                Some(at) => sb.wait_timeout(at.saturating_duration_since(Instant::now()))?,
            }
        }
        match self.slot.result.take() {
            Some(Ok(value)) => Ok(value),
            Some(Err(payload)) => Err(JoinError {
                repr: Repr::Panicked(payload),
            }),
            None if !self.fiber.inner.started.get() => Err(JoinError {
                repr: Repr::NeverRan,
            }),
            None => panic!("JoinHandle: the fiber's result was already taken"),
        }
    }

    /// Cancels the fiber: if it has not started it never will; if it is blocked, its
    /// switchpoint returns [`Error::Cancelled`] at once, as will every later one (its
    /// destructors still run). Never switches; [`join`](Self::join) to wait for it to finish.
    pub fn cancel(&self) {
        let inner = &self.fiber.inner;
        if inner.state.get() == FiberState::Done {
            return;
        }
        inner.cancelled.set(true);
        Hub::current().wake(inner, Wake::Cancelled);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("fiber", &self.fiber)
            .finish()
    }
}
