//! [`FiberPool`]: jobs on a bounded set of fibers of the current Hub.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fiber::Builder;
use crate::hub::Hub;
use crate::join::JoinHandle;
use crate::pool::{MapResults, PoolBuilder, PoolClosed, map_deadline, run_job};
use crate::promise::Promise;
use crate::remote::RemoteHub;
use crate::switch_back::{Callback, SwitchBack};
use crate::sync::parking::thread_token;

type Job = Box<dyn FnOnce()>;

/// A pool of fibers on the current thread's Hub running jobs (Gruvi's `FiberPool`): for
/// bounding how much of some work runs at once. Jobs need not be `Send`; the pool stays on its
/// thread (it is not `Send`), but its [`Promise`]s can be waited for and cancelled anywhere.
///
/// Cancelling the promise of a running job cancels the worker fiber running it (its
/// switchpoints fail with [`Error::Cancelled`]); that worker then exits and another takes its
/// place if jobs are queued.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fiber_core::FiberPool;
///
/// fiber_core::run(|| {
///     let pool = FiberPool::new(2); // at most two jobs at once
///     let jobs: Vec<_> = (0..4)
///         .map(|i| {
///             pool.submit(move || {
///                 fiber_core::sleep(Duration::from_millis(2)).unwrap();
///                 i * 10
///             })
///             .unwrap()
///         })
///         .collect();
///     let results: Vec<i32> = jobs.into_iter().map(|p| p.into_result().unwrap()).collect();
///     assert_eq!(results, [0, 10, 20, 30]);
///     pool.close().unwrap();
/// });
/// ```
pub struct FiberPool {
    shared: Rc<Shared>,
}

struct Shared {
    name: String,
    minsize: usize,
    maxsize: usize,
    idle_timeout: Duration,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Idle workers waiting for a job (`None`: leave).
    idle: VecDeque<Callback<Option<Job>>>,
    workers: HashMap<u64, JoinHandle<()>>,
    unfinished: usize,
    closed: bool,
    spawned: u64,
    joiners: Vec<Callback<()>>,
    exit_waiters: Vec<Callback<()>>,
}

thread_local! {
    /// Running jobs that can be cancelled: job id -> (pool, worker fiber id).
    static RUNNING: RefCell<HashMap<u64, (Weak<Shared>, u64)>> = RefCell::new(HashMap::new());
    static NEXT_JOB: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

impl FiberPool {
    /// A pool of at most `maxsize` fibers (more options: [`PoolBuilder`]).
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0.
    pub fn new(maxsize: usize) -> FiberPool {
        PoolBuilder::new().maxsize(maxsize).fiber_pool()
    }

    pub(crate) fn build(builder: PoolBuilder) -> FiberPool {
        let shared = Rc::new(Shared {
            name: builder.name_or("FiberPool"),
            minsize: builder.minsize,
            maxsize: builder.maxsize,
            idle_timeout: builder.idle_timeout,
            state: RefCell::new(State::default()),
        });
        for _ in 0..builder.minsize {
            spawn_worker(&shared);
        }
        FiberPool { shared }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The workers it keeps even when idle.
    pub fn minsize(&self) -> usize {
        self.shared.minsize
    }

    /// The most workers it runs at once.
    pub fn maxsize(&self) -> usize {
        self.shared.maxsize
    }

    /// How many worker fibers exist now.
    pub fn size(&self) -> usize {
        self.shared.state.borrow().workers.len()
    }

    /// Queues `job` and returns the promise of its value. Never switches: the job starts when
    /// the caller next blocks or yields.
    ///
    /// # Errors
    ///
    /// [`PoolClosed`] once [`close`](Self::close) was called.
    pub fn submit<T: 'static>(
        &self,
        job: impl FnOnce() -> T + 'static,
    ) -> std::result::Result<Promise<T>, PoolClosed> {
        let promise = Promise::new();
        let done = promise.clone();
        let weak = Rc::downgrade(&self.shared);
        self.push(Box::new(move || {
            let id = NEXT_JOB.with(|n| n.replace(n.get() + 1));
            let me = Hub::current().current_fiber().id;
            RUNNING.with(|r| r.borrow_mut().insert(id, (weak, me)));
            let started = done.set_running_with(canceller(id));
            run_job(&done, started, job);
            RUNNING.with(|r| r.borrow_mut().remove(&id));
        }))?;
        Ok(promise)
    }

    /// Runs `f` on every input, up to `maxsize` at once, and yields the results in input
    /// order. Never switches itself; iterating waits.
    ///
    /// # Errors
    ///
    /// [`PoolClosed`] once [`close`](Self::close) was called.
    pub fn map<I, T, F>(&self, f: F, inputs: I) -> std::result::Result<MapResults<T>, PoolClosed>
    where
        I: IntoIterator,
        I::Item: 'static,
        T: 'static,
        F: Fn(I::Item) -> T + 'static,
    {
        self.map_until(f, inputs, None)
    }

    /// Like [`map`](Self::map), with one deadline `timeout` from now for all the results.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    pub fn map_timeout<I, T, F>(
        &self,
        f: F,
        inputs: I,
        timeout: Duration,
    ) -> std::result::Result<MapResults<T>, PoolClosed>
    where
        I: IntoIterator,
        I::Item: 'static,
        T: 'static,
        F: Fn(I::Item) -> T + 'static,
    {
        self.map_until(f, inputs, map_deadline(timeout))
    }

    fn map_until<I, T, F>(
        &self,
        f: F,
        inputs: I,
        deadline: Option<Instant>,
    ) -> std::result::Result<MapResults<T>, PoolClosed>
    where
        I: IntoIterator,
        I::Item: 'static,
        T: 'static,
        F: Fn(I::Item) -> T + 'static,
    {
        if self.shared.state.borrow().closed {
            return Err(PoolClosed);
        }
        let f = Rc::new(f);
        let promises = inputs
            .into_iter()
            .map(|input| {
                let f = f.clone();
                self.submit(move || f(input)).expect("checked open above")
            })
            .collect();
        Ok(MapResults::new(promises, deadline))
    }

    fn push(&self, job: Job) -> std::result::Result<(), PoolClosed> {
        let shared = &self.shared;
        let mut state = shared.state.borrow_mut();
        if state.closed {
            return Err(PoolClosed);
        }
        state.unfinished += 1;
        // Straight to an idle worker if there is one (a worker whose wait just timed out is
        // no longer active and is skipped).
        while let Some(idle) = state.idle.pop_front() {
            if idle.is_active() {
                idle.call(Some(job));
                return Ok(());
            }
        }
        state.jobs.push_back(job);
        let spawn = state.workers.len() < shared.maxsize;
        drop(state);
        if spawn {
            spawn_worker(shared);
        }
        Ok(())
    }

    /// Waits until every job submitted so far has finished (Gruvi's `join`).
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber while jobs are queued or running.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], or [`Error::TimedOut`] from a [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn join(&self) -> Result<()> {
        while self.shared.state.borrow().unfinished > 0 {
            let wait = SwitchBack::new();
            self.shared.state.borrow_mut().joiners.push(wait.callback());
            wait.wait()?;
        }
        Ok(())
    }

    /// Refuses new jobs, lets the workers finish the queued ones, and waits until every
    /// worker has exited.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber until the workers are gone.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join); the pool is closed all the same.
    #[track_caller]
    pub fn close(&self) -> Result<()> {
        self.shutdown();
        while !self.shared.state.borrow().workers.is_empty() {
            let wait = SwitchBack::new();
            self.shared
                .state
                .borrow_mut()
                .exit_waiters
                .push(wait.callback());
            wait.wait()?;
        }
        Ok(())
    }

    fn shutdown(&self) {
        let idle = {
            let mut state = self.shared.state.borrow_mut();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for worker in idle {
            worker.call(None);
        }
    }
}

/// The canceller of a running job: cancels its worker fiber, from any thread.
fn canceller(job: u64) -> Box<dyn FnOnce() + Send> {
    let home = thread_token();
    let remote: RemoteHub = Hub::current().remote();
    Box::new(move || {
        if thread_token() == home {
            cancel_job(job);
        } else {
            let _ = remote.run_callback(move || cancel_job(job));
        }
    })
}

fn cancel_job(job: u64) {
    let Some((pool, worker)) = RUNNING.with(|r| r.borrow().get(&job).cloned()) else {
        return;
    };
    if let Some(pool) = pool.upgrade()
        && let Some(handle) = pool.state.borrow().workers.get(&worker)
    {
        handle.cancel();
    }
}

fn spawn_worker(shared: &Rc<Shared>) {
    let mut state = shared.state.borrow_mut();
    state.spawned += 1;
    let name = format!("{}-{}", shared.name, state.spawned);
    drop(state);
    let worker = shared.clone();
    let handle = Builder::new()
        .name(name)
        .spawn(move || work(&worker))
        .expect("failed to spawn a pool fiber");
    let id = handle.fiber().id();
    shared.state.borrow_mut().workers.insert(id, handle);
}

/// A worker fiber: runs jobs, leaves when the pool closes (and the queue is empty), when
/// cancelled, or after idling beyond `minsize`.
fn work(shared: &Rc<Shared>) {
    let me = Hub::current().current_fiber();
    loop {
        let Some(job) = next_job(shared) else {
            break;
        };
        job();
        let joiners = {
            let mut state = shared.state.borrow_mut();
            state.unfinished -= 1;
            if state.unfinished == 0 {
                std::mem::take(&mut state.joiners)
            } else {
                Vec::new()
            }
        };
        for joiner in joiners {
            joiner.call(());
        }
        if me.cancelled.get() {
            break;
        }
    }
    leave(shared, me.id);
}

/// The next job: queued, or handed over while idle; `None` when the worker should leave.
fn next_job(shared: &Rc<Shared>) -> Option<Job> {
    loop {
        let wait = {
            let mut state = shared.state.borrow_mut();
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            let wait = SwitchBack::new();
            state.idle.push_back(wait.callback());
            wait
        };
        let extra = shared.state.borrow().workers.len() > shared.minsize;
        let got = if extra {
            wait.wait_timeout(shared.idle_timeout)
        } else {
            wait.wait()
        };
        match got {
            Ok(job) => return job,
            Err(Error::TimedOut) if extra => {
                let state = shared.state.borrow();
                if state.jobs.is_empty() && state.workers.len() > shared.minsize {
                    return None;
                }
            }
            Err(Error::TimedOut) => {}
            Err(_) => return None,
        }
    }
}

/// Deregisters an exiting worker; replaces it if jobs are still queued.
fn leave(shared: &Rc<Shared>, id: u64) {
    let (handle, exit_waiters, replace) = {
        let mut state = shared.state.borrow_mut();
        let handle = state.workers.remove(&id);
        let waiters = if state.workers.is_empty() {
            std::mem::take(&mut state.exit_waiters)
        } else {
            Vec::new()
        };
        let replace = !state.jobs.is_empty() && state.workers.len() < shared.maxsize;
        (handle, waiters, replace)
    };
    // Our own handle: dropping it detaches this fiber, which is finishing anyway.
    drop(handle);
    for waiter in exit_waiters {
        waiter.call(());
    }
    if replace {
        spawn_worker(shared);
    }
}

impl Drop for FiberPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for FiberPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberPool")
            .field("name", &self.shared.name)
            .field("size", &self.size())
            .field("maxsize", &self.shared.maxsize)
            .finish_non_exhaustive()
    }
}
