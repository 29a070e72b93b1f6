//! Serving idle connections without a fiber each: a connection waiting for its next request
//! head with nothing received holds no fiber (and no stack). When bytes come, the connection
//! is queued, and one of a few runner fibers serves it until it is idle again, then takes the
//! next. Runners are reused last-in first-out, so the stack a request runs on is one that ran
//! a request a moment ago, still in cache, where a fiber per connection would run each request
//! on a stack that went cold while the other connections were served.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use fiber_core::{Builder, Fiber, JoinHandle};
use gruvi_stream::FillNotify;

use super::Shared;
use super::conn::{self, ConnState};
use crate::wire::Wire;

/// The most runners kept parked for the next requests; more exit once idle.
const MAX_IDLE: usize = 8;

/// One connection being served, by whichever fiber is serving it.
pub(crate) struct Task {
    pub(crate) shared: Rc<Shared>,
    pub(crate) wire: Rc<Wire>,
    pub(crate) state: Rc<ConnState>,
    /// No request head was read yet: the idle wait is the first head's.
    pub(crate) first: Cell<bool>,
    pub(crate) id: u64,
}

impl Drop for Task {
    /// The connection is over (however it ended): closed and forgotten.
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

impl FillNotify for Task {
    /// Bytes (or the end) came for an idle connection: queued for a runner.
    fn filled(self: Rc<Self>) {
        // Bytes came: no longer idle, though a runner has yet to take it (neither the sweeper
        // nor a shutdown closes it meanwhile).
        self.state.idle_until.set(0);
        let shared = self.shared.clone();
        shared.runners.push(self, &shared);
    }
}

impl Task {
    /// Serves the connection in the fiber `fiber` (the calling one) until it closes or waits
    /// idle without a fiber; `resumed`: it was waiting so.
    pub(crate) fn run(self: Rc<Self>, fiber: u64, resumed: bool) {
        self.state.fiber.set(fiber);
        conn::serve(&self, resumed);
        self.state.fiber.set(0);
    }
}

/// A server's queue of connections to serve and the fibers serving them.
#[derive(Default)]
pub(crate) struct Runners {
    jobs: RefCell<VecDeque<Rc<Task>>>,
    /// Parked runners, the last parked last.
    idle: RefCell<Vec<Fiber>>,
    /// Runners woken or started that have not looked at the queue yet.
    ready: Cell<usize>,
    /// Every runner started (finished ones are dropped when the next starts).
    all: RefCell<Vec<JoinHandle<()>>>,
    /// The server closed: nothing is queued any more.
    stopped: Cell<bool>,
}

impl Runners {
    /// Queues `task`, making sure a runner will look at the queue.
    fn push(&self, task: Rc<Task>, shared: &Rc<Shared>) {
        if self.stopped.get() {
            // Dropped: the connection closes.
            return;
        }
        self.jobs.borrow_mut().push_back(task);
        self.ensure_ready(shared);
    }

    /// Wakes or starts a runner unless one is about to look at the queue. Inlined: the usual
    /// call finds a runner about to look.
    #[inline(always)]
    fn ensure_ready(&self, shared: &Rc<Shared>) {
        if self.ready.get() == 0 {
            self.make_ready(shared);
        }
    }

    /// [`ensure_ready`](Self::ensure_ready) when no runner is about to look at the queue.
    #[inline(never)]
    fn make_ready(&self, shared: &Rc<Shared>) {
        let parked = self.idle.borrow_mut().pop();
        if let Some(runner) = parked {
            self.ready.set(self.ready.get() + 1);
            runner.unpark();
            return;
        }
        self.start(shared);
    }

    /// Starts a runner.
    #[cold]
    #[inline(never)]
    fn start(&self, shared: &Rc<Shared>) {
        #[cfg(test)]
        if tests::refuse_start() {
            return;
        }
        let weak = Rc::downgrade(shared);
        let Ok(runner) = Builder::new().name("http runner").spawn(move || run(&weak)) else {
            // No stack to be had: the queued connections wait for a runner that is busy, or
            // for the sweeper's next tick to try again (`retry`).
            return;
        };
        self.ready.set(self.ready.get() + 1);
        let mut all = self.all.borrow_mut();
        all.retain(|runner| !runner.is_finished());
        all.push(runner);
    }

    /// Makes sure a runner will look at the queue if connections are queued: a runner that
    /// could not be started (no stack to be had) is tried again. The sweeper calls this on
    /// every tick.
    pub(crate) fn retry(&self, shared: &Rc<Shared>) {
        if !self.jobs.borrow().is_empty() {
            self.ensure_ready(shared);
        }
    }

    /// Takes the next queued connection.
    fn pop(&self) -> Option<Rc<Task>> {
        self.jobs.borrow_mut().pop_front()
    }

    /// Drops the queued connections (they close) and queues no more: the server is closing.
    /// Returns the runners, to cancel and join.
    pub(crate) fn stop(&self) -> Vec<JoinHandle<()>> {
        self.stopped.set(true);
        self.idle.borrow_mut().clear();
        let all = std::mem::take(&mut *self.all.borrow_mut());
        let jobs = std::mem::take(&mut *self.jobs.borrow_mut());
        drop(jobs);
        all
    }
}

/// A runner: serves queued connections, parks when there are none.
fn run(weak: &Weak<Shared>) {
    let me = fiber_core::current();
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let runners = &shared.runners;
        runners.ready.set(runners.ready.get().saturating_sub(1));
        while let Some(task) = runners.pop() {
            // This one may block in the handler: the rest are not left waiting for it.
            if !runners.jobs.borrow().is_empty() {
                runners.ensure_ready(&shared);
            }
            task.run(me.id(), true);
            // Nothing a handler left in a fiber-local reaches another connection.
            fiber_core::clear_locals();
        }
        // The server closed (a handler of this runner's closed it), or enough are parked.
        if runners.stopped.get() || runners.idle.borrow().len() >= MAX_IDLE {
            return;
        }
        runners.idle.borrow_mut().push(me.clone());
        drop(shared);
        loop {
            let parked = fiber_core::park();
            let Some(shared) = weak.upgrade() else { return };
            let mut idle = shared.runners.idle.borrow_mut();
            // Still on the idle list: not woken by `ensure_ready` (cancelled, or a spurious
            // return).
            if let Some(at) = idle.iter().position(|f| f.id() == me.id()) {
                if parked.is_err() {
                    idle.remove(at);
                    return;
                }
                continue;
            }
            drop(idle);
            if parked.is_err() {
                // Woken and counted, then cancelled: no longer about to look at the queue.
                let ready = &shared.runners.ready;
                ready.set(ready.get().saturating_sub(1));
                return;
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use gruvi_stream::TcpStream;
    use http::{Request, Response};

    use crate::{Body, Incoming, Server, ServerConfig};

    thread_local! {
        /// How many runner starts to refuse, as if no stack could be had.
        static REFUSED: Cell<usize> = const { Cell::new(0) };
    }

    /// Whether this start is refused (counting it).
    pub(super) fn refuse_start() -> bool {
        REFUSED.with(|refused| {
            let left = refused.get();
            refused.set(left.saturating_sub(1));
            left > 0
        })
    }

    fn exchange(conn: &mut TcpStream) -> Vec<u8> {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0; 1024];
        while !answer.ends_with(b"hello") {
            match conn.read(&mut chunk) {
                Ok(n) if n > 0 => answer.extend_from_slice(&chunk[..n]),
                other => panic!("no answer: {other:?} after {answer:?}"),
            }
        }
        answer
    }

    /// A connection queued when no runner could be started is not stranded: the sweeper tries
    /// again on its next tick. (Before, it waited for other traffic to start a runner: here
    /// there is none, and the read timed out.)
    #[test]
    fn a_runner_that_could_not_be_started_is_tried_again() {
        let hub = fiber_core::Hub::current();
        fiber_core::run(|| {
            let config = ServerConfig {
                // A sweeper tick of 50 ms.
                keep_alive_timeout: Duration::from_millis(400),
                ..ServerConfig::default()
            };
            let handler = |_: Request<Incoming>| Response::new(Body::from("hello"));
            let server = Server::with_config(handler, config);
            server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = server.addresses()[0].to_string();
            // No runner exists yet: the first start, whichever request asks for it, fails.
            REFUSED.with(|refused| refused.set(1));
            let mut conn = TcpStream::connect(addr.as_str()).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            for _ in 0..2 {
                let start = Instant::now();
                assert!(exchange(&mut conn).starts_with(b"HTTP/1.1 200"));
                assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "{:?}",
                    start.elapsed()
                );
                fiber_core::sleep(Duration::from_millis(10)).unwrap();
            }
            assert_eq!(REFUSED.with(Cell::get), 0, "no runner start was refused");
            drop(conn);
            server.close().unwrap();
        });
        assert_eq!(hub.close(), 0, "libuv handles left open");
    }

    /// A graceful shutdown from the root fiber counts a connection that no fiber serves (here
    /// queued for a runner that cannot start) as busy, and closes it at the end. (The root
    /// fiber's id is 0, which also marks "no fiber": such a connection was taken for the
    /// caller's own, left open and unanswered, and the shutdown returned at once.)
    #[test]
    fn a_shutdown_from_the_root_closes_a_connection_no_fiber_serves() {
        let hub = fiber_core::Hub::current();
        fiber_core::run(|| {
            let handler = |_: Request<Incoming>| Response::new(Body::from("hello"));
            let server = Server::with_config(handler, ServerConfig::default());
            server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = server.addresses()[0].to_string();
            // No runner can start: the request stays queued.
            REFUSED.with(|refused| refused.set(usize::MAX));
            let mut conn = TcpStream::connect(addr.as_str()).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            fiber_core::sleep(Duration::from_millis(20)).unwrap();
            assert_eq!(server.connection_count(), 1);
            let start = Instant::now();
            server.shutdown(Duration::from_millis(300)).unwrap();
            assert!(
                start.elapsed() >= Duration::from_millis(300),
                "{:?}",
                start.elapsed()
            );
            assert_eq!(server.connection_count(), 0);
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"", "closed unanswered");
            REFUSED.with(|refused| refused.set(0));
        });
        assert_eq!(hub.close(), 0, "libuv handles left open");
    }
}
