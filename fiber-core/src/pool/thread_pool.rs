//! [`ThreadPool`]: jobs on a bounded set of OS threads.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::Result;
use crate::pool::{MapResults, PoolBuilder, PoolClosed, map_deadline, run_job};
use crate::promise::Promise;
use crate::sync::Event;
use crate::sync::waiter::lock;

type Job = Box<dyn FnOnce() + Send>;

/// A pool of OS threads running jobs (Gruvi's `ThreadPool`), for blocking code that would
/// stall a Hub. `Send + Sync`: submit from any fiber or thread; wait for the [`Promise`]s from
/// any fiber (other fibers keep running) or thread.
///
/// Running jobs cannot be cancelled (only pending ones). Dropping the pool lets its workers
/// finish the queued jobs and exit without waiting for them; [`close`](Self::close) waits.
///
/// # Examples
///
/// ```
/// use fiber_core::ThreadPool;
///
/// fiber_core::run(|| {
///     let pool = ThreadPool::new(2);
///     let squares: Vec<u64> = pool
///         .map(|x: u64| x * x, 1..=5)
///         .unwrap()
///         .collect::<Result<_, _>>()
///         .unwrap();
///     assert_eq!(squares, [1, 4, 9, 16, 25]);
///     pool.close().unwrap();
/// });
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    minsize: usize,
    maxsize: usize,
    idle_timeout: Duration,
    state: Mutex<State>,
    work: Condvar,
    /// Set while no job is queued or running.
    all_done: Event,
    /// Set once closed and every worker has exited.
    exited: Event,
}

struct State {
    jobs: VecDeque<Job>,
    workers: usize,
    idle: usize,
    unfinished: usize,
    closed: bool,
    spawned: u64,
}

impl ThreadPool {
    /// A pool of at most `maxsize` threads (more options: [`PoolBuilder`]).
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0.
    pub fn new(maxsize: usize) -> ThreadPool {
        PoolBuilder::new().maxsize(maxsize).thread_pool()
    }

    pub(crate) fn build(builder: PoolBuilder) -> ThreadPool {
        let shared = Arc::new(Shared {
            name: builder.name_or("ThreadPool"),
            minsize: builder.minsize,
            maxsize: builder.maxsize,
            idle_timeout: builder.idle_timeout,
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                workers: 0,
                idle: 0,
                unfinished: 0,
                closed: false,
                spawned: 0,
            }),
            work: Condvar::new(),
            all_done: Event::new(),
            exited: Event::new(),
        });
        shared.all_done.set();
        let mut state = lock(&shared.state);
        for _ in 0..builder.minsize {
            spawn_worker(&shared, &mut state);
        }
        drop(state);
        ThreadPool { shared }
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

    /// How many worker threads exist now.
    pub fn size(&self) -> usize {
        lock(&self.shared.state).workers
    }

    /// Queues `job` and returns the promise of its value. Never switches.
    ///
    /// # Errors
    ///
    /// [`PoolClosed`] once [`close`](Self::close) was called.
    pub fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<Promise<T>, PoolClosed> {
        let promise = Promise::new();
        let done = promise.clone();
        self.push(Box::new(move || {
            let started = done.set_running(false);
            run_job(&done, started, job);
        }))?;
        Ok(promise)
    }

    /// Runs `f` on every input, in parallel up to `maxsize`, and yields the results in input
    /// order. Never switches itself; iterating waits.
    ///
    /// # Errors
    ///
    /// [`PoolClosed`] once [`close`](Self::close) was called.
    pub fn map<I, T, F>(&self, f: F, inputs: I) -> std::result::Result<MapResults<T>, PoolClosed>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        T: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
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
        I::Item: Send + 'static,
        T: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
    {
        self.map_until(f, inputs, map_deadline(timeout))
    }

    fn map_until<I, T, F>(
        &self,
        f: F,
        inputs: I,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<MapResults<T>, PoolClosed>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        T: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let mut promises = VecDeque::new();
        for input in inputs {
            let f = f.clone();
            match self.submit(move || f(input)) {
                Ok(promise) => promises.push_back(promise),
                Err(closed) => {
                    // Dropping the results cancels what was submitted.
                    drop(MapResults::new(promises, None));
                    return Err(closed);
                }
            }
        }
        Ok(MapResults::new(promises, deadline))
    }

    fn push(&self, job: Job) -> std::result::Result<(), PoolClosed> {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        if state.closed {
            return Err(PoolClosed);
        }
        state.jobs.push_back(job);
        state.unfinished += 1;
        shared.all_done.clear();
        if state.jobs.len() > state.idle && state.workers < shared.maxsize {
            spawn_worker(shared, &mut state);
        } else {
            shared.work.notify_one();
        }
        Ok(())
    }

    /// Waits until every job submitted so far has finished (Gruvi's `join`).
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread) while jobs are queued or running.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`](crate::Error::Cancelled), or
    /// [`Error::TimedOut`](crate::Error::TimedOut) from a [`timeout`](crate::timeout) scope.
    #[track_caller]
    pub fn join(&self) -> Result<()> {
        self.shared.all_done.wait()
    }

    /// Refuses new jobs, lets the workers finish the queued ones, and waits until every
    /// worker has exited.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread) until the workers are gone.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join); the pool is closed all the same.
    #[track_caller]
    pub fn close(&self) -> Result<()> {
        self.shutdown();
        self.shared.exited.wait()
    }

    fn shutdown(&self) {
        let mut state = lock(&self.shared.state);
        state.closed = true;
        if state.workers == 0 {
            self.shared.exited.set();
        }
        drop(state);
        self.shared.work.notify_all();
    }
}

/// Starts one more worker thread; the caller holds the state lock.
fn spawn_worker(shared: &Arc<Shared>, state: &mut State) {
    state.workers += 1;
    state.spawned += 1;
    let worker = shared.clone();
    std::thread::Builder::new()
        .name(format!("{}-{}", shared.name, state.spawned))
        .spawn(move || work(&worker))
        .expect("failed to spawn a pool thread");
}

/// A worker thread: runs queued jobs, leaves when the pool closes (and the queue is empty) or
/// after idling beyond `minsize`.
fn work(shared: &Shared) {
    let mut state = lock(&shared.state);
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            job();
            state = lock(&shared.state);
            state.unfinished -= 1;
            if state.unfinished == 0 {
                shared.all_done.set();
            }
            continue;
        }
        if state.closed {
            break;
        }
        state.idle += 1;
        let (next, waited) = shared
            .work
            .wait_timeout(state, shared.idle_timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state = next;
        state.idle -= 1;
        if waited.timed_out() && state.jobs.is_empty() && state.workers > shared.minsize {
            break;
        }
    }
    state.workers -= 1;
    if state.closed && state.workers == 0 {
        shared.exited.set();
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.shared.name)
            .field("size", &self.size())
            .field("maxsize", &self.shared.maxsize)
            .finish_non_exhaustive()
    }
}
