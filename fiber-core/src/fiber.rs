//! Fibers: their state, their public handle ([`Fiber`]) and spawning ([`spawn`], [`Builder`]).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use uv_sys_wrap::Timer;

use crate::hub::Hub;
use crate::join::{JoinHandle, ResultSlot};
use crate::stack_switch::Coroutine;

/// Where a fiber is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FiberState {
    /// Queued to run (also: spawned and not started yet).
    Ready,
    /// Running now: the current fiber.
    Running,
    /// Blocked in a switchpoint.
    Waiting,
    /// Its function has returned or panicked.
    Done,
}

/// Why a waiting fiber was made ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Something it waited on fired (a [`SwitchBack`](crate::SwitchBack), a join...).
    Fired,
    /// A deadline passed: its own (`None`) or a [`timeout`](crate::timeout) scope's.
    TimedOut(Option<u64>),
    /// [`JoinHandle::cancel`] was called.
    Cancelled,
    /// Nothing could ever wake it.
    Deadlock,
}

/// A [`timeout`](crate::timeout) scope active in a fiber.
pub(crate) struct Scope {
    pub(crate) id: u64,
    pub(crate) deadline: Instant,
    pub(crate) expired: bool,
}

/// A fiber's state, shared by the Hub, its [`JoinHandle`] and [`Fiber`] handles.
// Laid out in declaration order: what every park, wake-up and resume (and a sync primitive's
// wait) touches comes first, so that a hand-over touches as few of its cache lines as
// possible (with 100 connection fibers, each fiber's record is cold again by its next
// event); the rest after.
#[repr(C)]
pub(crate) struct FiberInner {
    pub(crate) id: u64,
    pub(crate) state: Cell<FiberState>,
    pub(crate) started: Cell<bool>,
    pub(crate) cancelled: Cell<bool>,
    /// Set by [`Fiber::unpark`] while the fiber is not parked: its next [`park`] returns at once.
    ///
    /// [`park`]: crate::park
    pub(crate) unpark_token: Cell<bool>,
    /// Whether its wait in a sync primitive was served.
    pub(crate) park_woken: Cell<bool>,
    pub(crate) wake: Cell<Wake>,
    /// Bumped by every park, so that a stale timer or callback cannot wake a later wait.
    pub(crate) wait_gen: Cell<u64>,
    /// The number of its wait in a sync primitive (0: none); see `sync::parking`.
    pub(crate) park_generation: Cell<u64>,
    /// Its index in the Hub's registry (a sync primitive's waker names the fiber by it).
    pub(crate) slot: Cell<usize>,
    /// What the fiber is blocked on, for the fiber dump.
    pub(crate) waiting_on: Cell<&'static str>,
    pub(crate) scopes: RefCell<Vec<Scope>>,
    /// `None` for the root fiber (the thread's own stack) and once finished; borrowed by the
    /// Hub while the fiber runs.
    pub(crate) coroutine: RefCell<Option<Coroutine>>,
    pub(crate) name: Box<str>,
    /// The timer of its timeouts and sleeps, made on first use.
    pub(crate) timer: RefCell<Option<Timer>>,
    /// Which deadline the running timer stands for (see [`Wake::TimedOut`]).
    pub(crate) timer_source: Cell<Option<u64>>,
    /// Called when the fiber finishes (its joiners' wake-ups).
    pub(crate) on_done: RefCell<Vec<Box<dyn FnOnce()>>>,
    pub(crate) locals: RefCell<HashMap<usize, Rc<dyn Any>>>,
}

impl FiberInner {
    pub(crate) fn new(id: u64, name: Box<str>) -> FiberInner {
        FiberInner {
            id,
            name,
            state: Cell::new(FiberState::Ready),
            coroutine: RefCell::new(None),
            started: Cell::new(false),
            wake: Cell::new(Wake::Fired),
            wait_gen: Cell::new(0),
            waiting_on: Cell::new(""),
            cancelled: Cell::new(false),
            timer: RefCell::new(None),
            timer_source: Cell::new(None),
            scopes: RefCell::new(Vec::new()),
            on_done: RefCell::new(Vec::new()),
            locals: RefCell::new(HashMap::new()),
            slot: Cell::new(usize::MAX),
            unpark_token: Cell::new(false),
            park_generation: Cell::new(0),
            park_woken: Cell::new(false),
        }
    }

    pub(crate) fn is_root(&self) -> bool {
        self.id == 0
    }
}

/// A handle to a fiber: its id and name. The thread's own stack is the root fiber, id 0.
///
/// Cheap to clone; not `Send`, like everything that belongs to a Hub.
#[derive(Clone)]
pub struct Fiber {
    pub(crate) inner: Rc<FiberInner>,
}

impl Fiber {
    /// The fiber's id, unique within its Hub; the root fiber is 0.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The fiber's name: the one given to [`Builder::name`], else `Fiber-<id>`; `Root` for the
    /// root fiber.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether this is the root fiber (the thread's own stack).
    pub fn is_root(&self) -> bool {
        self.inner.is_root()
    }

    /// The fiber's state now.
    pub fn state(&self) -> FiberState {
        self.inner.state.get()
    }

    /// Wakes the fiber from [`park`](crate::park): at once if it is parked, otherwise its next
    /// `park` returns immediately (like `std::thread::Thread::unpark`). Never switches.
    pub fn unpark(&self) {
        let inner = &self.inner;
        if inner.state.get() == FiberState::Waiting && inner.waiting_on.get() == crate::park::PARK {
            // A waiting fiber's Hub is this thread's (a `Fiber` stays on its thread); borrowed,
            // since nothing switches here.
            if Hub::with_installed(|hub| hub.wake(inner, Wake::Fired)).is_none() {
                Hub::current().wake(inner, Wake::Fired);
            }
        } else {
            inner.unpark_token.set(true);
        }
    }
}

impl PartialEq for Fiber {
    fn eq(&self, other: &Fiber) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Fiber {}

impl fmt::Debug for Fiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fiber")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

/// The fiber running now (the root fiber on a thread's own stack).
pub fn current() -> Fiber {
    // Borrowed when installed (the usual case): no reference to the Hub taken and dropped.
    let inner =
        Hub::with_installed(Hub::current_fiber).unwrap_or_else(|| Hub::current().current_fiber());
    Fiber { inner }
}

/// Configures a fiber before spawning it, like `std::thread::Builder`.
///
/// # Examples
///
/// ```
/// let handle = fiber_core::Builder::new()
///     .name("worker")
///     .stack_size(64 * 1024)
///     .spawn(|| fiber_core::current().name().to_owned())?;
/// assert_eq!(handle.join().unwrap(), "worker");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the defaults: name `Fiber-<id>`, the Hub's stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the fiber (shown by [`dump`](crate::dump) and in a stack-overflow report).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the stack size in bytes (see [`StackConfig::stack_size`](crate::StackConfig) for
    /// the rounding and bounds).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the fiber. It is queued to run and starts when the current fiber next blocks or
    /// yields.
    ///
    /// # Errors
    ///
    /// When no stack can be had, e.g. past about 32k guarded stacks at Linux's default
    /// `vm.max_map_count`; the message says what to do.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let hub = Hub::current();
        let stack = hub.stack(self.stack_size)?;
        let id = hub.next_fiber_id();
        let name: Box<str> = self.name.unwrap_or_else(|| format!("Fiber-{id}")).into();
        let slot: Rc<ResultSlot<T>> = Rc::new(ResultSlot::new());
        let out = slot.clone();
        let inner = Rc::new(FiberInner::new(id, name));
        let me = Rc::downgrade(&inner);
        let coroutine = Coroutine::new(stack, move |_| {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            out.set(result);
            // Fiber-local values are dropped here, on the fiber's own stack, so their
            // destructors may still block.
            if let Some(me) = me.upgrade() {
                let locals = me.locals.take();
                drop(me);
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(locals)));
            }
            0
        });
        coroutine.set_identity(id, &inner.name);
        *inner.coroutine.borrow_mut() = Some(coroutine);
        hub.register(&inner);
        Ok(JoinHandle::new(Fiber { inner }, slot))
    }
}

/// Spawns a fiber running `f` with the default settings; see [`Builder::spawn`].
///
/// # Panics
///
/// If no stack can be had (use [`Builder::spawn`] to handle that).
///
/// # Examples
///
/// ```
/// let handle = fiber_core::spawn(|| 6 * 7);
/// assert_eq!(handle.join().unwrap(), 42);
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Builder::new().spawn(f).expect("failed to spawn a fiber")
}
