//! Waiting on many things at once: [`wait`] and [`as_completed`] (Gruvi's `wait` and
//! `as_completed`), over anything [`Waitable`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sync::waiter::{self, WaitQueue, lock};
use crate::waitable::{CallbackId, Waitable};

/// What the done callbacks of one `wait` share: the indices done so far, in completion order,
/// and the waiter to wake once enough are.
struct Set {
    state: Mutex<SetState>,
}

struct SetState {
    done: Vec<usize>,
    wanted: usize,
    waiter: WaitQueue,
}

/// The objects of one `wait` with their registered callbacks; deregisters them when dropped.
struct Registration<W: Waitable> {
    objects: Vec<Option<W>>,
    ids: Vec<Option<CallbackId>>,
    set: Arc<Set>,
}

impl<W: Waitable> Registration<W> {
    fn new(objects: impl IntoIterator<Item = W>) -> Registration<W> {
        let objects: Vec<Option<W>> = objects.into_iter().map(Some).collect();
        let set = Arc::new(Set {
            state: Mutex::new(SetState {
                done: Vec::new(),
                wanted: usize::MAX,
                waiter: WaitQueue::new(),
            }),
        });
        let mut ids = Vec::with_capacity(objects.len());
        for (index, object) in objects.iter().enumerate() {
            let set = set.clone();
            let notify = Box::new(move || {
                let mut state = lock(&set.state);
                state.done.push(index);
                if state.done.len() >= state.wanted
                    && let Some(waiter) = state.waiter.pop()
                {
                    drop(state);
                    waiter.waker.wake();
                }
            });
            let object = object.as_ref().expect("just made");
            ids.push(object.add_done_callback(notify));
        }
        Registration { objects, ids, set }
    }

    /// Waits until `wanted` objects are done or `deadline` passes; true if they are.
    #[track_caller]
    fn wait_for(&self, wanted: usize, deadline: Option<Instant>) -> Result<bool> {
        let mut state = lock(&self.set.state);
        if state.done.len() >= wanted {
            return Ok(true);
        }
        state.wanted = wanted;
        let (id, parker) = state.waiter.push(());
        drop(state);
        let waited = waiter::block(
            parker,
            "wait",
            deadline,
            || lock(&self.set.state).waiter.remove(id).is_some(),
            || {},
        );
        match waited {
            Ok(()) => Ok(true),
            // Our own deadline: a partial result, not an error.
            Err(Error::TimedOut) if deadline.is_some_and(|at| Instant::now() >= at) => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn done_indices(&self) -> Vec<usize> {
        lock(&self.set.state).done.clone()
    }

    fn deregister(&mut self) {
        for (object, id) in self.objects.iter().zip(&mut self.ids) {
            if let (Some(object), Some(id)) = (object, id.take()) {
                object.remove_done_callback(id);
            }
        }
    }
}

impl<W: Waitable> Drop for Registration<W> {
    fn drop(&mut self) {
        self.deregister();
    }
}

fn check_count(count: Option<usize>, len: usize) -> usize {
    let count = count.unwrap_or(len);
    assert!(
        count <= len,
        "wait: count must be between 0 and the number of objects ({count} > {len})"
    );
    count
}

/// Waits until `count` of `objects` are done (all of them if `None`), and returns them split
/// into `(done, pending)`: the first `count` done, in completion order, and the others in their
/// original order (some may have completed meanwhile). Every done callback it registered is
/// removed before it returns.
///
/// Mix kinds with `&dyn Waitable`: `wait([&event as &dyn Waitable, &promise, &fiber], None)`.
///
/// # Switchpoint
///
/// Blocks until `count` objects are done; returns at once if `count` is 0 or they are.
///
/// # Errors
///
/// [`Error::Cancelled`], or [`Error::TimedOut`] from an enclosing [`timeout`](crate::timeout)
/// scope.
///
/// # Panics
///
/// If `count` is larger than the number of objects (Gruvi's `ValueError`).
///
/// # Examples
///
/// ```
/// use fiber_core::{Event, Promise, Waitable, spawn, wait};
///
/// fiber_core::run(|| {
///     let (event, promise) = (Event::new(), Promise::<u32>::new());
///     let fiber = spawn(|| 7);
///     promise.set_result(1);
///     let objects: [&dyn Waitable; 3] = [&event, &promise, &fiber];
///     let (done, pending) = wait(objects, Some(2))?;
///     assert_eq!((done.len(), pending.len()), (2, 1)); // the promise and the fiber
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
#[track_caller]
pub fn wait<W: Waitable>(
    objects: impl IntoIterator<Item = W>,
    count: Option<usize>,
) -> Result<(Vec<W>, Vec<W>)> {
    wait_until(objects, count, None)
}

/// Like [`wait`], giving up after `timeout`: then it returns what is done so far, not an
/// error (Gruvi's `wait(timeout=...)`).
///
/// # Switchpoint
///
/// Blocks for at most `timeout`.
///
/// # Errors
///
/// As [`wait`].
///
/// # Panics
///
/// As [`wait`].
#[track_caller]
pub fn wait_timeout<W: Waitable>(
    objects: impl IntoIterator<Item = W>,
    count: Option<usize>,
    timeout: Duration,
) -> Result<(Vec<W>, Vec<W>)> {
    wait_until(objects, count, waiter::deadline(timeout))
}

#[track_caller]
fn wait_until<W: Waitable>(
    objects: impl IntoIterator<Item = W>,
    count: Option<usize>,
    deadline: Option<Instant>,
) -> Result<(Vec<W>, Vec<W>)> {
    let mut registration = Registration::new(objects);
    let wanted = check_count(count, registration.objects.len());
    registration.wait_for(wanted, deadline)?;
    registration.deregister();
    let mut done = Vec::new();
    for index in registration.done_indices().into_iter().take(wanted) {
        if let Some(object) = registration.objects[index].take() {
            done.push(object);
        }
    }
    let pending = registration
        .objects
        .iter_mut()
        .filter_map(Option::take)
        .collect();
    Ok((done, pending))
}

/// Yields `objects` as they become done, in completion order, `count` of them (all if
/// `None`) (Gruvi's `as_completed`). Its done callbacks are removed when it ends or is
/// dropped.
///
/// # Switchpoint
///
/// Each `next()` blocks until one more object is done.
///
/// # Panics
///
/// If `count` is larger than the number of objects.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fiber_core::{as_completed, sleep, spawn};
///
/// fiber_core::run(|| {
///     let slow = spawn(|| sleep(Duration::from_millis(20)).map(|()| "slow"));
///     let fast = spawn(|| sleep(Duration::from_millis(1)).map(|()| "fast"));
///     let order: Vec<_> = as_completed([slow, fast], None)
///         .map(|fiber| fiber.unwrap().join().unwrap().unwrap())
///         .collect();
///     assert_eq!(order, ["fast", "slow"]);
/// });
/// ```
pub fn as_completed<W: Waitable>(
    objects: impl IntoIterator<Item = W>,
    count: Option<usize>,
) -> AsCompleted<W> {
    as_completed_until(objects, count, None)
}

/// Like [`as_completed`], with one deadline `timeout` from now for the whole iteration: a
/// `next()` that reaches it yields `Err(`[`Error::TimedOut`]`)` (Gruvi's `Timeout('timeout
/// waiting for objects')`), and the iteration ends.
///
/// # Switchpoint
///
/// Each `next()` blocks until one more object is done, or the deadline.
///
/// # Panics
///
/// As [`as_completed`].
pub fn as_completed_timeout<W: Waitable>(
    objects: impl IntoIterator<Item = W>,
    count: Option<usize>,
    timeout: Duration,
) -> AsCompleted<W> {
    as_completed_until(objects, count, waiter::deadline(timeout))
}

fn as_completed_until<W: Waitable>(
    objects: impl IntoIterator<Item = W>,
    count: Option<usize>,
    deadline: Option<Instant>,
) -> AsCompleted<W> {
    let registration = Registration::new(objects);
    let count = check_count(count, registration.objects.len());
    AsCompleted {
        registration,
        count,
        yielded: 0,
        deadline,
        finished: false,
    }
}

/// The iterator of [`as_completed`]: items are `Ok(object)`, or one `Err` if waiting failed.
pub struct AsCompleted<W: Waitable> {
    registration: Registration<W>,
    count: usize,
    yielded: usize,
    deadline: Option<Instant>,
    finished: bool,
}

impl<W: Waitable> Iterator for AsCompleted<W> {
    type Item = Result<W>;

    #[track_caller]
    fn next(&mut self) -> Option<Result<W>> {
        if self.finished || self.yielded >= self.count {
            self.finish();
            return None;
        }
        match self.registration.wait_for(self.yielded + 1, self.deadline) {
            Ok(true) => {}
            Ok(false) => {
                self.finish();
                return Some(Err(Error::TimedOut));
            }
            Err(err) => {
                self.finish();
                return Some(Err(err));
            }
        }
        let index = lock(&self.registration.set.state).done[self.yielded];
        self.yielded += 1;
        let object = self.registration.objects[index].take()?;
        Some(Ok(object))
    }
}

impl<W: Waitable> AsCompleted<W> {
    fn finish(&mut self) {
        self.finished = true;
        self.registration.deregister();
    }
}

impl<W: Waitable> fmt::Debug for AsCompleted<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("count", &self.count)
            .field("yielded", &self.yielded)
            .finish_non_exhaustive()
    }
}
