//! The handler pool of a connection: received requests wait in a queue, and up to
//! `max_concurrency` worker fibers run the handler on them. Workers stay alive while idle
//! (spawning a fiber per request would cost more than the request), and only one idle worker
//! is woken at a time: a worker that takes a job while more are queued wakes the next, so a
//! burst of quick requests is handled by one fiber without a switch per request, and a
//! blocking handler lets the next worker start at once.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use fiber_core::{Fiber, JoinHandle};

use crate::message::{Request, Response};

/// One request for the handler, alone or from a batch.
pub(crate) struct Job {
    pub(crate) request: Request,
    pub(crate) batch: Option<Rc<BatchReplies>>,
}

/// The responses of a batch, sent in one array once every request in it was handled.
pub(crate) struct BatchReplies {
    /// Requests of the batch not handled yet.
    remaining: Cell<usize>,
    responses: RefCell<Vec<Response>>,
}

impl BatchReplies {
    /// A batch of `jobs` requests whose invalid entries were answered with `responses`.
    pub(crate) fn new(jobs: usize, responses: Vec<Response>) -> Rc<BatchReplies> {
        Rc::new(BatchReplies {
            remaining: Cell::new(jobs),
            responses: RefCell::new(responses),
        })
    }

    /// Records one handled request (and its response, unless it was a notification); returns
    /// all the responses when it was the last one.
    pub(crate) fn complete(&self, response: Option<Response>) -> Option<Vec<Response>> {
        if let Some(response) = response {
            self.responses.borrow_mut().push(response);
        }
        self.remaining.set(self.remaining.get() - 1);
        (self.remaining.get() == 0).then(|| self.responses.take())
    }
}

/// An idle worker's entry: it was woken on purpose when `woken` is set (`park` may also return
/// spuriously).
struct Idle {
    fiber: Fiber,
    woken: Cell<bool>,
}

/// The queue of jobs and the worker fibers.
pub(crate) struct Workers {
    jobs: RefCell<VecDeque<Job>>,
    idle: RefCell<Vec<Rc<Idle>>>,
    max: usize,
    /// Worker fibers alive.
    count: Cell<usize>,
    /// Workers running the handler now.
    busy: Cell<usize>,
    /// When the last job ended (the idle timeout counts from there, not only from the last
    /// bytes read); kept only with an idle timeout (`None` otherwise: no clock read per job).
    last_done: Option<Cell<Option<Instant>>>,
    /// Workers woken (or spawned) that have not taken a job yet.
    waking: Cell<usize>,
    handles: RefCell<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// `max` workers at most; `timed` keeps the time the last job ended (for an idle timeout).
    pub(crate) fn new(max: usize, timed: bool) -> Workers {
        Workers {
            jobs: RefCell::new(VecDeque::new()),
            idle: RefCell::new(Vec::new()),
            max: max.max(1),
            count: Cell::new(0),
            busy: Cell::new(0),
            last_done: timed.then(|| Cell::new(None)),
            waking: Cell::new(0),
            handles: RefCell::new(Vec::new()),
        }
    }

    /// Jobs waiting for a worker.
    pub(crate) fn queued(&self) -> usize {
        self.jobs.borrow().len()
    }

    /// Whether no job is queued or running.
    pub(crate) fn is_idle(&self) -> bool {
        self.busy.get() == 0 && self.jobs.borrow().is_empty()
    }

    /// When the last job ended, if any has.
    pub(crate) fn last_done(&self) -> Option<Instant> {
        self.last_done.as_ref().and_then(Cell::get)
    }

    /// Queues a job and makes sure a worker will take it; `spawn` starts a new worker fiber
    /// running [`work`](Self::work). Never switches.
    pub(crate) fn push(&self, job: Job, spawn: &dyn Fn() -> std::io::Result<JoinHandle<()>>) {
        self.jobs.borrow_mut().push_back(job);
        self.kick(spawn);
    }

    /// Wakes one idle worker, or spawns one below the limit, unless one is already on its way.
    fn kick(&self, spawn: &dyn Fn() -> std::io::Result<JoinHandle<()>>) {
        if self.waking.get() > 0 || self.jobs.borrow().is_empty() {
            return;
        }
        let idle = self.idle.borrow_mut().pop();
        if let Some(idle) = idle {
            idle.woken.set(true);
            self.waking.set(self.waking.get() + 1);
            idle.fiber.unpark();
        } else if self.count.get() < self.max {
            match spawn() {
                Ok(handle) => {
                    self.count.set(self.count.get() + 1);
                    self.waking.set(self.waking.get() + 1);
                    let mut handles = self.handles.borrow_mut();
                    handles.retain(|h| !h.is_finished());
                    handles.push(handle);
                }
                // Out of stacks: the queued job waits for a running worker.
                Err(err) => log::error!("cannot start a JSON-RPC handler fiber: {err}"),
            }
        }
    }

    /// The body of a worker fiber: takes jobs and runs them with `run` until `stopped` says
    /// so while no job is queued. `taken` is told each time a job leaves the queue.
    pub(crate) fn work(
        &self,
        spawn: &dyn Fn() -> std::io::Result<JoinHandle<()>>,
        run: &dyn Fn(Job),
        taken: &dyn Fn(),
        stopped: &dyn Fn() -> bool,
    ) {
        // A new worker counts as woken until it takes its first job.
        self.waking.set(self.waking.get() - 1);
        loop {
            let job = self.jobs.borrow_mut().pop_front();
            if let Some(job) = job {
                taken();
                self.kick(spawn);
                self.busy.set(self.busy.get() + 1);
                let _busy = Busy {
                    busy: &self.busy,
                    last_done: self.last_done.as_ref(),
                };
                run(job);
                continue;
            }
            if stopped() || !self.wait_idle() {
                break;
            }
        }
        self.count.set(self.count.get() - 1);
    }

    /// Parks the worker until it is woken for a job; `false` if it was cancelled instead.
    fn wait_idle(&self) -> bool {
        let me = Rc::new(Idle {
            fiber: fiber_core::current(),
            woken: Cell::new(false),
        });
        self.idle.borrow_mut().push(me.clone());
        loop {
            let parked = fiber_core::park();
            if me.woken.get() {
                self.waking.set(self.waking.get() - 1);
                return parked.is_ok();
            }
            if parked.is_err() {
                self.idle.borrow_mut().retain(|i| !Rc::ptr_eq(i, &me));
                return false;
            }
        }
    }

    /// Wakes every idle worker (the connection is ending: they see it and leave).
    pub(crate) fn wake_all(&self) {
        for idle in self.idle.take() {
            idle.woken.set(true);
            self.waking.set(self.waking.get() + 1);
            idle.fiber.unpark();
        }
    }

    /// Drops the queued jobs and cancels every worker (a hard close).
    pub(crate) fn cancel_all(&self) {
        self.jobs.borrow_mut().clear();
        for handle in self.handles.take() {
            handle.cancel();
        }
    }
}

/// Counts a worker as busy while it runs a job, also when the handler unwinds.
struct Busy<'a> {
    busy: &'a Cell<usize>,
    last_done: Option<&'a Cell<Option<Instant>>>,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.busy.set(self.busy.get() - 1);
        if let Some(last_done) = self.last_done {
            last_done.set(Some(Instant::now()));
        }
    }
}
