//! The Hub: one per thread, owning the libuv loop and scheduling the thread's fibers.
//!
//! Fibers are coroutines that suspend back to whoever resumed them, and only the root fiber (the
//! thread's own stack) resumes them: when the root blocks in a switchpoint, it runs the Hub's
//! scheduler until something wakes it. The scheduler has Gruvi's two loops: the outer one
//! resumes ready fibers and runs queued callbacks; the inner one is `uv_run`, inside a no-switch
//! section, whose callbacks only store results and mark fibers ready.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use uv_sys_wrap::{Loop, LoopHandle, RunMode, Timer};

use crate::error::{Error, Result};
use crate::fiber::{FiberInner, FiberState, Wake};
use crate::no_switch::{NoSwitch, assert_may_switch};
use crate::remote::{Remote, RemoteHub};
use crate::stack::{Stack, StackConfig, StackPool};
use crate::stack_switch::{self, Outcome};
use crate::sync::parking::{self, ParkTable};

/// How many fibers the scheduler resumes between two non-blocking polls of the loop, so that a
/// busy set of fibers cannot starve I/O.
const RESUMES_PER_POLL: u32 = 64;

/// How many rounds [`Hub::close`] gives cancelled fibers to finish before unwinding them.
const CLOSE_ROUNDS: usize = 1000;

thread_local! {
    static HUB: RefCell<Option<Rc<Hub>>> = const { RefCell::new(None) };
    /// Shuts the Hub down when the thread exits. Suspended fibers hold `Rc<Hub>`s on their
    /// stacks, so dropping the thread's own reference would not drop the Hub: this guard
    /// unwinds the fibers (releasing those references) and closes the Hub's handles. It is
    /// first touched right after `HUB`, so its destructor runs before `HUB`'s (thread-local
    /// destructors run in reverse order of first use on Linux) and fibers unwinding then can
    /// still reach their Hub.
    static EXIT_GUARD: ExitGuard = const { ExitGuard };
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let hub = HUB.try_with(|slot| slot.try_borrow().ok().and_then(|s| s.clone()));
        if let Ok(Some(hub)) = hub
            && !hub.closed.get()
        {
            hub.shut_down();
        }
    }
}

/// The per-thread scheduler and event-loop owner (Gruvi's `Hub`).
///
/// Created on first use ([`Hub::current`]); closed by [`Hub::close`], by [`run`] returning, or
/// when its thread exits. Not `Send`: a Hub and its fibers stay on their thread; other threads
/// reach it through [`Hub::remote`].
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<fiber_core::Hub>();
/// ```
pub struct Hub {
    root: Rc<FiberInner>,
    current: RefCell<Rc<FiberInner>>,
    ready: RefCell<VecDeque<Rc<FiberInner>>>,
    callbacks: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    fibers: RefCell<Registry>,
    next_id: Cell<u64>,
    stacks: RefCell<Stacks>,
    remote: Remote,
    park_table: ParkTable,
    closed: Cell<bool>,
    /// Fibers resumed since the loop was last polled (see [`RESUMES_PER_POLL`]). Kept here,
    /// not per scheduler run: the root handing over to a fiber and back runs the scheduler
    /// for one resume at a time, and must not starve I/O and timers either.
    since_poll: Cell<u32>,
    // Dropped last: everything above may own handles on it.
    lp: Loop,
}

/// The Hub's stack pools: the default one and one per custom stack size.
struct Stacks {
    config: StackConfig,
    default: StackPool,
    sized: HashMap<usize, StackPool>,
}

impl Hub {
    /// The current thread's Hub, created on first use.
    ///
    /// # Panics
    ///
    /// If libuv cannot create a loop (out of file descriptors).
    #[inline]
    pub fn current() -> Rc<Hub> {
        match HUB.with(|hub| hub.borrow().clone()) {
            Some(hub) => hub,
            None => Hub::install(),
        }
    }

    /// Makes and installs this thread's Hub (the first [`current`](Self::current) call).
    #[cold]
    #[inline(never)]
    fn install() -> Rc<Hub> {
        let hub = Rc::new(Hub::new().expect("failed to create the Hub's event loop"));
        HUB.with(|slot| {
            let mut slot = slot.borrow_mut();
            debug_assert!(slot.is_none(), "one Hub per thread");
            *slot = Some(hub.clone());
        });
        parking::set_hub_token(hub.park_table.token());
        EXIT_GUARD.with(|_| {});
        hub
    }

    /// Calls `f` with the Hub installed on this thread, if any (`None` too while the thread's
    /// locals are being destroyed), without taking a reference: for hot paths where nothing
    /// switches inside `f`.
    #[inline(always)]
    pub(crate) fn with_installed<R>(f: impl FnOnce(&Hub) -> R) -> Option<R> {
        HUB.try_with(|slot| {
            let slot = slot.try_borrow().ok()?;
            slot.as_deref().map(f)
        })
        .ok()
        .flatten()
    }

    /// The table of this Hub's fibers parked in sync primitives.
    #[inline]
    pub(crate) fn park_table(&self) -> &ParkTable {
        &self.park_table
    }

    /// This thread's Hub if it has one, without creating one (`None` too while the thread
    /// exits): the sync primitives block a thread without a Hub the plain way instead of making
    /// one just to wait, and may run from destructors at thread exit.
    pub(crate) fn try_current() -> Option<Rc<Hub>> {
        HUB.try_with(|hub| hub.try_borrow().ok().and_then(|slot| slot.clone()))
            .ok()
            .flatten()
    }

    fn new() -> io::Result<Hub> {
        // Fibers' locks release with a plain store once the process-wide barrier is known to
        // be there (see `sync/lock.rs`); settle that now rather than in some fiber's wait.
        crate::sync::register_asymmetric();
        let lp = Loop::new()?;
        let remote = Remote::new(&lp)?;
        let root = Rc::new(FiberInner::new(0, "Root".into()));
        root.state.set(FiberState::Running);
        root.started.set(true);
        let config = StackConfig::new();
        Ok(Hub {
            current: RefCell::new(root.clone()),
            root,
            ready: RefCell::new(VecDeque::new()),
            callbacks: RefCell::new(VecDeque::new()),
            fibers: RefCell::new(Registry::default()),
            next_id: Cell::new(1),
            stacks: RefCell::new(Stacks {
                default: StackPool::new(config.clone()),
                config,
                sized: HashMap::new(),
            }),
            remote,
            park_table: ParkTable::new(),
            closed: Cell::new(false),
            since_poll: Cell::new(0),
            lp,
        })
    }

    /// The Hub's libuv loop, for creating handles that callbacks (and [`SwitchBack`]s) drive.
    ///
    /// [`SwitchBack`]: crate::SwitchBack
    pub fn loop_handle(&self) -> LoopHandle {
        self.lp.handle()
    }

    /// A `Send + Sync` handle for other threads: [`RemoteHub::run_callback`] queues work here.
    pub fn remote(&self) -> RemoteHub {
        self.remote.handle()
    }

    /// The sync primitives' handle for waking this Hub's fibers from other threads.
    pub(crate) fn internal_remote(&self) -> RemoteHub {
        self.remote.internal_handle()
    }

    /// Counts fibers parked in sync primitives (see [`Remote::add_parked`]).
    pub(crate) fn add_parked(&self, delta: isize) {
        self.remote.add_parked(delta);
    }

    /// Queues `f` to run on this thread from the Hub, after the fibers that are ready now, in
    /// FIFO order. It runs inside a no-switch section; a panic in it is reported on stderr and
    /// does not stop the Hub. From another thread use [`Hub::remote`].
    pub fn run_callback(&self, f: impl FnOnce() + 'static) {
        self.callbacks.borrow_mut().push_back(Box::new(f));
    }

    /// Sets the stack configuration of fibers spawned from now on without an explicit stack
    /// size, e.g. [`StackConfig::unguarded`] for a million fibers.
    pub fn set_stack_config(&self, config: StackConfig) {
        let mut stacks = self.stacks.borrow_mut();
        stacks.default = StackPool::new(config.clone());
        stacks.config = config;
        stacks.sized.clear();
    }

    /// Whether [`Hub::close`] has run.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(crate) fn stack(&self, size: Option<usize>) -> io::Result<Stack> {
        let mut stacks = self.stacks.borrow_mut();
        match size {
            None => stacks.default.get(),
            Some(size) => {
                let config = stacks.config.clone().stack_size(size);
                stacks
                    .sized
                    .entry(size)
                    .or_insert_with(|| StackPool::new(config))
                    .get()
            }
        }
    }

    pub(crate) fn next_fiber_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Adds a new fiber to the registry and the ready queue.
    pub(crate) fn register(&self, fiber: &Rc<FiberInner>) {
        self.fibers.borrow_mut().insert(fiber);
        self.ready.borrow_mut().push_back(fiber.clone());
    }

    pub(crate) fn root_fiber(&self) -> &Rc<FiberInner> {
        &self.root
    }

    /// The live fiber in registry slot `slot`, if any.
    #[inline]
    pub(crate) fn registered_fiber(&self, slot: usize) -> Option<Rc<FiberInner>> {
        self.fibers.borrow().slots.get(slot).and_then(Option::clone)
    }

    pub(crate) fn current_fiber(&self) -> Rc<FiberInner> {
        self.current.borrow().clone()
    }

    /// Every fiber alive, root first.
    pub(crate) fn all_fibers(&self) -> Vec<Rc<FiberInner>> {
        let mut all = vec![self.root.clone()];
        let mut others: Vec<_> = self
            .fibers
            .borrow()
            .slots
            .iter()
            .flatten()
            .cloned()
            .collect();
        others.sort_by_key(|f| f.id);
        all.extend(others);
        all
    }

    /// Makes a waiting fiber ready for `reason`; does nothing if it is not waiting.
    #[inline]
    pub(crate) fn wake(&self, fiber: &Rc<FiberInner>, reason: Wake) -> bool {
        if fiber.state.get() != FiberState::Waiting {
            return false;
        }
        self.make_ready(fiber.clone(), reason);
        true
    }

    /// [`wake`](Self::wake) for a caller that owns a reference to give away.
    #[inline]
    pub(crate) fn wake_owned(&self, fiber: Rc<FiberInner>, reason: Wake) -> bool {
        if fiber.state.get() != FiberState::Waiting {
            return false;
        }
        self.make_ready(fiber, reason);
        true
    }

    #[inline(always)]
    fn make_ready(&self, fiber: Rc<FiberInner>, reason: Wake) {
        fiber.state.set(FiberState::Ready);
        fiber.wake.set(reason);
        self.ready.borrow_mut().push_back(fiber);
    }

    /// Blocks the current fiber until something wakes it (the core of every switchpoint).
    ///
    /// `timeout` bounds this wait; enclosing [`timeout`](crate::timeout) scopes bound it too.
    /// Returns why the fiber was woken; a cancelled fiber returns at once.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn park(&self, what: &'static str, timeout: Option<Duration>) -> Wake {
        self.park_current(&self.current_fiber(), what, timeout)
    }

    /// [`park`](Self::park) for a caller that holds the current fiber already.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn park_current(
        &self,
        fiber: &Rc<FiberInner>,
        what: &'static str,
        timeout: Option<Duration>,
    ) -> Wake {
        assert_may_switch(what);
        debug_assert!(Rc::ptr_eq(fiber, &self.current.borrow()));
        if fiber.cancelled.get() || std::thread::panicking() {
            // Cancellation is sticky, and a fiber unwinding must never block again.
            return Wake::Cancelled;
        }
        if self.closed.get() {
            return Wake::Deadlock;
        }
        fiber.wait_gen.set(fiber.wait_gen.get() + 1);
        // The clock is read only when some deadline applies; that path is out of line, so
        // that the usual wait (no deadline) keeps a small frame on the fiber's stack.
        let timed = timeout.is_some() || !fiber.scopes.borrow().is_empty();
        if timed && let Some(expired) = self.arm_deadline(fiber, timeout) {
            return expired;
        }
        fiber.waiting_on.set(what);
        fiber.state.set(FiberState::Waiting);
        self.switch_out(fiber);
        fiber.waiting_on.set("");
        if timed {
            self.disarm(fiber);
        }
        let wake = fiber.wake.get();
        if let Wake::TimedOut(source) = wake {
            self.mark_expired(fiber, source);
        }
        wake
    }

    /// Arms the fiber's timer for the nearest of `timeout` and its scopes' deadlines, or
    /// returns the timed-out wake-up if that deadline has passed already.
    #[cold]
    #[inline(never)]
    fn arm_deadline(&self, fiber: &Rc<FiberInner>, timeout: Option<Duration>) -> Option<Wake> {
        let now = Instant::now();
        let own = timeout.map(|d| (crate::sync::waiter::deadline_after(now, d), None));
        let nearest = {
            let scopes = fiber.scopes.borrow();
            let scope = scopes.iter().map(|s| (s.deadline, Some(s.id))).min();
            own.into_iter().chain(scope).min()
        };
        let (at, source) = nearest?;
        if at <= now {
            self.mark_expired(fiber, source);
            return Some(Wake::TimedOut(source));
        }
        self.arm_timer(fiber, at, source);
        None
    }

    /// Stops the fiber's timer after a wait with a deadline.
    #[cold]
    #[inline(never)]
    fn disarm(&self, fiber: &FiberInner) {
        if let Some(timer) = &*fiber.timer.borrow() {
            let _ = timer.stop();
        }
    }

    /// Requeues the current fiber behind the ready ones and lets them run.
    #[track_caller]
    #[inline]
    pub(crate) fn yield_now(&self) -> Result<()> {
        assert_may_switch("yield_now");
        let fiber = self.current_fiber();
        if fiber.cancelled.get() {
            return Err(Error::Cancelled);
        }
        if self.ready.borrow().is_empty() && self.callbacks.borrow().is_empty() {
            // Nothing else to run: still give the loop a look, as a yield promises.
            self.poll(RunMode::NoWait);
            if self.ready.borrow().is_empty() {
                return Ok(());
            }
        }
        fiber.state.set(FiberState::Ready);
        self.ready.borrow_mut().push_back(fiber.clone());
        self.switch_out(&fiber);
        if fiber.cancelled.get() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    fn mark_expired(&self, fiber: &FiberInner, source: Option<u64>) {
        if let Some(id) = source
            && let Some(scope) = fiber.scopes.borrow_mut().iter_mut().find(|s| s.id == id)
        {
            scope.expired = true;
        }
    }

    fn arm_timer(&self, fiber: &Rc<FiberInner>, at: Instant, source: Option<u64>) {
        let mut slot = fiber.timer.borrow_mut();
        if slot.is_none() {
            *slot = Some(Timer::new(&self.lp).expect("timer on the Hub's loop"));
        }
        let timer = slot.as_ref().expect("just made");
        fiber.timer_source.set(source);
        // libuv counts from its cached time in whole milliseconds: refresh it and round up (one
        // more millisecond makes a re-arm by `on_deadline` rare).
        self.lp.update_time();
        let after = at.saturating_duration_since(Instant::now());
        // Saturating: a wait of u64::MAX ms or more must not wrap to an immediate timer.
        let ms = u64::try_from(after.as_nanos().div_ceil(1_000_000))
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let (weak, generation) = (Rc::downgrade(fiber), fiber.wait_gen.get());
        timer
            .start(ms, 0, on_deadline(weak, generation, at))
            .expect("start the fiber's timer");
    }

    /// Leaves the current fiber (already marked waiting or ready) until it is resumed.
    #[inline(always)]
    fn switch_out(&self, fiber: &Rc<FiberInner>) {
        if fiber.is_root() {
            self.schedule();
            fiber.state.set(FiberState::Running);
        } else {
            stack_switch::suspend(0);
        }
    }

    /// The scheduler, run by the root fiber while it is blocked: resumes ready fibers, runs
    /// callbacks and polls the loop until the root itself is ready again.
    ///
    /// Inlined into the root's switchpoints, so that the root resumes fibers from the frame
    /// of its own wait: after a switch back, the processor's return predictor holds the other
    /// stack's return addresses, so every `ret` the root makes before its next call
    /// mispredicts, and a scheduler of its own would add one to each hand-over between the
    /// root and a fiber (measured: the queue hand-over took ~7 ns longer with it out of line).
    /// The price is code size: with the parker's inlined release it added 22 KB (2%) to the
    /// HTTP example, whose per-request instructions and cache misses did not change.
    // One function on purpose: it is the Hub's run loop, read as a whole.
    #[inline(always)]
    fn schedule(&self) {
        loop {
            let next = self.ready.borrow_mut().pop_front();
            if let Some(fiber) = next {
                if fiber.is_root() {
                    return;
                }
                self.resume_counted(fiber);
                continue;
            }
            if self.run_callbacks() {
                continue;
            }
            self.since_poll.set(0);
            if !self.block_for_events() {
                // Nothing can wake anybody: tell the root, the only one who can act on it.
                self.wake(&self.root, Wake::Deadlock);
            }
        }
    }

    /// [`resume`](Self::resume), polling the loop without blocking after every
    /// [`RESUMES_PER_POLL`] resumes so that busy fibers cannot starve I/O and timers.
    #[inline(always)]
    fn resume_counted(&self, fiber: Rc<FiberInner>) {
        self.resume(fiber);
        let resumed = self.since_poll.get() + 1;
        if resumed >= RESUMES_PER_POLL {
            self.since_poll.set(0);
            self.poll(RunMode::NoWait);
        } else {
            self.since_poll.set(resumed);
        }
    }

    /// Switches to `fiber` until it blocks, yields or finishes.
    #[inline(always)]
    fn resume(&self, fiber: Rc<FiberInner>) {
        // Borrowed in place for the switch (moving the coroutine out and back in costs a copy
        // each way); nothing else touches a running fiber's coroutine (`unwind_all` skips it).
        let mut slot = fiber.coroutine.borrow_mut();
        let Some(coroutine) = slot.as_mut() else {
            return;
        };
        if !fiber.started.get() && fiber.cancelled.get() {
            // Cancelled before it ever ran: it never will (dropping the coroutine drops the
            // closure unrun).
            *slot = None;
            drop(slot);
            self.finish(&fiber);
            return;
        }
        fiber.started.set(true);
        fiber.state.set(FiberState::Running);
        let previous = self.current.replace(fiber.clone());
        let outcome = coroutine.resume(0);
        *self.current.borrow_mut() = previous;
        if let Outcome::Finished(_) = outcome {
            *slot = None;
            drop(slot);
            self.finish(&fiber);
        }
    }

    /// Retires a fiber whose function has returned (or that never ran).
    fn finish(&self, fiber: &Rc<FiberInner>) {
        fiber.state.set(FiberState::Done);
        self.fibers.borrow_mut().remove(fiber);
        drop(fiber.timer.take());
        let waiters = fiber.on_done.take();
        let _guard = NoSwitch::enter();
        for wake in waiters {
            wake();
        }
    }

    /// Runs the queued callbacks (local and from other threads); false if there were none.
    fn run_callbacks(&self) -> bool {
        self.remote.drain_into(&mut self.callbacks.borrow_mut());
        let batch: VecDeque<_> = self.callbacks.take();
        if batch.is_empty() {
            return false;
        }
        let _guard = NoSwitch::enter();
        for callback in batch {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(callback)) {
                eprintln!(
                    "gruvi: a Hub callback panicked: {}",
                    panic_message(&*payload)
                );
            }
        }
        true
    }

    /// Polls the loop, blocking until something happens; false (without polling) when nothing
    /// ever could: no active handle or request, no callback, and no other thread able to send.
    fn block_for_events(&self) -> bool {
        let remote_alive = self.remote.keeps_alive();
        if !remote_alive && !self.lp.alive() && self.callbacks.borrow().is_empty() {
            return false;
        }
        self.remote.set_ref(remote_alive);
        self.poll(RunMode::Once);
        self.remote.set_ref(false);
        true
    }

    fn poll(&self, mode: RunMode) {
        let _guard = NoSwitch::enter();
        self.lp.run(mode);
    }

    /// Closes the Hub: cancels every fiber and lets them finish (those that keep running after
    /// many rounds are unwound) and closes its own handles. The next use of the thread's Hub
    /// creates a fresh one; the loop itself closes when the last `Rc<Hub>` goes, closing any
    /// handle still open.
    ///
    /// Returns how many handles made by others (users, protocol layers) were still open, which
    /// tests use to assert that nothing leaked.
    ///
    /// # Switchpoint
    ///
    /// Runs the cancelled fibers before returning.
    ///
    /// # Panics
    ///
    /// If called from a fiber other than the root (the thread's own stack).
    pub fn close(&self) -> usize {
        assert!(
            self.current.borrow().is_root(),
            "Hub::close() may only be called from the root fiber"
        );
        assert_may_switch("Hub::close");
        if self.closed.get() {
            return 0;
        }
        for fiber in self.all_fibers().into_iter().skip(1) {
            fiber.cancelled.set(true);
            self.wake(&fiber, Wake::Cancelled);
        }
        for _ in 0..CLOSE_ROUNDS {
            if self.fibers.borrow().is_empty() {
                break;
            }
            let batch: Vec<_> = self.ready.take().into_iter().collect();
            for fiber in batch {
                if !fiber.is_root() {
                    self.resume(fiber);
                }
            }
            self.run_callbacks();
            self.poll(RunMode::NoWait);
        }
        self.closed.set(true);
        self.unwind_all();
        self.park_table.unregister();
        self.remote.close();
        HUB.with(|hub| {
            if let Ok(mut slot) = hub.try_borrow_mut()
                && slot.as_ref().is_some_and(|h| std::ptr::eq(&**h, self))
            {
                *slot = None;
                parking::set_hub_token(0);
            }
        });
        let mut open = 0;
        self.lp.walk(|info| open += usize::from(!info.closing));
        open
    }

    /// Drops every fiber still alive, unwinding its stack (its destructors run; switchpoints
    /// in them fail at once).
    fn unwind_all(&self) {
        let fibers: Vec<_> = self.fibers.take().slots.into_iter().flatten().collect();
        for fiber in &fibers {
            fiber.cancelled.set(true);
            // The unwinding code runs as that fiber.
            let previous = self.current.replace(fiber.clone());
            // A fiber running now (this call comes from it) keeps its coroutine borrowed.
            let coroutine = fiber
                .coroutine
                .try_borrow_mut()
                .ok()
                .and_then(|mut c| c.take());
            drop(coroutine);
            *self.current.borrow_mut() = previous;
            fiber.state.set(FiberState::Done);
            drop(fiber.timer.take());
        }
        self.ready.take();
        self.callbacks.take();
        drop(self.root.timer.take());
        crate::remote_callback::clear_registry();
    }
}

impl Hub {
    /// Marks the Hub closed, unwinds every fiber and closes its own handles, without running
    /// anything (thread exit, drop).
    fn shut_down(&self) {
        self.closed.set(true);
        parking::clear_hub_token(self.park_table.token());
        self.unwind_all();
        self.remote.close();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if !self.closed.get() {
            self.shut_down();
        }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("fibers", &self.fibers.borrow().len())
            .field("ready", &self.ready.borrow().len())
            .field("closed", &self.closed.get())
            .finish()
    }
}

/// The callback of a fiber's deadline timer: wakes the fiber with `TimedOut` if it is still in
/// the wait that armed the timer. libuv's loop clock is coarse (CLOCK_MONOTONIC_COARSE, several
/// milliseconds on some kernels), so the timer may fire a little before `at`: then it is armed
/// again for the rest, and no timeout ever ends early.
fn on_deadline(
    weak: Weak<FiberInner>,
    generation: u64,
    at: Instant,
) -> impl FnMut(&Timer) + 'static {
    move |timer| {
        let Some(fiber) = weak.upgrade() else {
            return;
        };
        if fiber.wait_gen.get() != generation {
            return;
        }
        let now = Instant::now();
        if now < at {
            let ms = (at - now).as_nanos().div_ceil(1_000_000) as u64;
            let _ = timer.start(ms, 0, on_deadline(weak.clone(), generation, at));
            return;
        }
        Hub::current().wake(&fiber, Wake::TimedOut(fiber.timer_source.get()));
    }
}

/// The text of a panic payload, for reports.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}

/// Runs `f` on this thread's root fiber with a Hub, then closes the Hub (cancelling and
/// finishing any fiber still alive) and returns `f`'s result. The entry point for `main`.
///
/// # Switchpoint
///
/// `f` may block; closing the Hub runs the remaining fibers.
///
/// # Panics
///
/// If called from inside a fiber.
///
/// # Examples
///
/// ```
/// let answer = fiber_core::run(|| {
///     let a = fiber_core::spawn(|| 40);
///     let b = fiber_core::spawn(|| 2);
///     a.join().unwrap() + b.join().unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    assert!(
        !stack_switch::in_coroutine(),
        "fiber_core::run() must be called on a thread's own stack, not from a fiber"
    );
    let hub = Hub::current();
    let result = f();
    hub.close();
    result
}

/// The Hub's live fibers: a slab indexed by each fiber's `slot`, so that registering and
/// retiring a fiber costs no hashing and touches memory in spawn order. It holds strong
/// references (a same-thread wake-up clones one instead of upgrading a weak one): a fiber
/// leaves it when it finishes, or when the Hub closes.
#[derive(Default)]
struct Registry {
    slots: Vec<Option<Rc<FiberInner>>>,
    free: Vec<usize>,
    len: usize,
}

impl Registry {
    fn insert(&mut self, fiber: &Rc<FiberInner>) {
        let entry = Some(fiber.clone());
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        };
        fiber.slot.set(slot);
        self.len += 1;
    }

    fn remove(&mut self, fiber: &FiberInner) {
        let slot = fiber.slot.get();
        if let Some(entry) = self.slots.get_mut(slot)
            && entry.take().is_some()
        {
            self.free.push(slot);
            self.len -= 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }
}
