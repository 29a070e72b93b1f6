//! The per-Hub registry behind [`poll`](super): one shared libuv poll handle per descriptor,
//! with its waiters in registration order and an event mask that is the union of theirs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};

use fiber_core::{Callback, Hub};
use uv_sys_wrap::{Error as UvError, Poll, PollEvents};

/// The owner of waiters that belong to no [`MultiPoll`](super::MultiPoll).
pub(super) const NO_OWNER: u64 = 0;

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

/// Descriptor -> entry, for the Hub in `hub` (a new Hub on this thread starts afresh).
#[derive(Default)]
struct Registry {
    hub: Weak<Hub>,
    fds: HashMap<RawFd, Weak<Entry>>,
}

/// A fresh id for a waiter or an owner (never 0).
fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    })
}

pub(super) fn new_owner() -> u64 {
    next_id()
}

/// How many descriptors have a live entry in the current Hub.
pub(super) fn polled_fds() -> usize {
    let hub = Hub::current();
    REGISTRY.with(|r| {
        let reg = r.borrow();
        if !std::ptr::eq(reg.hub.as_ptr(), Rc::as_ptr(&hub)) {
            return 0;
        }
        reg.fds.values().filter(|e| e.strong_count() > 0).count()
    })
}

/// What a waiter gets when its events are ready.
#[derive(Clone)]
pub(super) enum Notify {
    /// A fiber blocked in a wait: woken once, then removed.
    Fiber(Callback<io::Result<PollEvents>>),
    /// A [`MultiPoll`](super::MultiPoll) callback: called as long as its events are ready.
    Func(Rc<RefCell<dyn FnMut(io::Result<PollEvents>)>>),
}

struct Waiter {
    id: u64,
    owner: u64,
    events: PollEvents,
    notify: Notify,
}

/// One descriptor's poll handle and waiters. Shared (`Rc`) by every `MultiPoll` and wait on the
/// descriptor; the handle closes when the last of them goes.
pub(super) struct Entry {
    fd: RawFd,
    poll: Poll,
    /// In registration order.
    waiters: RefCell<Vec<Waiter>>,
    /// The events the handle is started for (empty: stopped).
    active: Cell<PollEvents>,
}

impl Entry {
    /// The current Hub's entry for `fd`, made (with its poll handle) if there is none.
    pub(super) fn for_fd(fd: RawFd) -> io::Result<Rc<Entry>> {
        let hub = Hub::current();
        REGISTRY.with(|r| {
            let mut reg = r.borrow_mut();
            if !std::ptr::eq(reg.hub.as_ptr(), Rc::as_ptr(&hub)) {
                reg.hub = Rc::downgrade(&hub);
                reg.fds.clear();
            }
            if let Some(entry) = reg.fds.get(&fd).and_then(Weak::upgrade) {
                return Ok(entry);
            }
            let entry = Rc::new(Entry {
                fd,
                poll: Poll::new(&hub.loop_handle(), fd)?,
                waiters: RefCell::new(Vec::new()),
                active: Cell::new(PollEvents::empty()),
            });
            reg.fds.insert(fd, Rc::downgrade(&entry));
            Ok(entry)
        })
    }

    /// Adds a waiter and starts the handle for its events; returns its id.
    pub(super) fn add(
        self: &Rc<Self>,
        owner: u64,
        events: PollEvents,
        notify: Notify,
    ) -> io::Result<u64> {
        let id = next_id();
        self.waiters.borrow_mut().push(Waiter {
            id,
            owner,
            events,
            notify,
        });
        if let Err(err) = self.sync() {
            self.remove(id);
            return Err(err);
        }
        Ok(id)
    }

    /// Removes a waiter if it is still there.
    pub(super) fn remove(self: &Rc<Self>, id: u64) {
        let removed = take_where(&self.waiters, |w| w.id == id);
        if !removed.is_empty() {
            let _ = self.sync();
        }
        drop(removed);
    }

    /// Removes `owner`'s waiter `id`.
    pub(super) fn remove_owned(self: &Rc<Self>, owner: u64, id: u64) -> io::Result<()> {
        let removed = take_where(&self.waiters, |w| w.id == id && w.owner == owner);
        if removed.is_empty() {
            return Err(no_such_callback());
        }
        drop(removed);
        self.sync()
    }

    /// Changes the events of `owner`'s waiter `id`.
    pub(super) fn update(
        self: &Rc<Self>,
        owner: u64,
        id: u64,
        events: PollEvents,
    ) -> io::Result<()> {
        {
            let mut waiters = self.waiters.borrow_mut();
            let waiter = waiters
                .iter_mut()
                .find(|w| w.id == id && w.owner == owner)
                .ok_or_else(no_such_callback)?;
            waiter.events = events;
        }
        self.sync()
    }

    /// Removes every waiter of `owner` and returns how to notify them.
    pub(super) fn remove_owner(self: &Rc<Self>, owner: u64) -> Vec<Notify> {
        let removed = take_where(&self.waiters, |w| w.owner == owner);
        let _ = self.sync();
        removed.into_iter().map(|w| w.notify).collect()
    }

    /// Starts, restarts or stops the handle for the union of the waiters' events.
    fn sync(self: &Rc<Self>) -> io::Result<()> {
        let want = self
            .waiters
            .borrow()
            .iter()
            .fold(PollEvents::empty(), |all, w| all | w.events);
        if want == self.active.get() {
            return Ok(());
        }
        if want.is_empty() {
            self.poll.stop()?;
        } else {
            let weak = Rc::downgrade(self);
            self.poll.start(want, move |_, result| {
                if let Some(entry) = weak.upgrade() {
                    entry.dispatch(result);
                }
            })?;
        }
        self.active.set(want);
        Ok(())
    }

    /// The poll callback: notifies, in registration order, every waiter whose events are
    /// ready (every waiter on an error). Fiber waiters are removed as they are woken.
    fn dispatch(self: &Rc<Self>, result: Result<PollEvents, UvError>) {
        if result.is_err() {
            // libuv stopped the handle; it rests until the waiters change.
            self.active.set(PollEvents::empty());
        }
        let snapshot: Vec<(u64, PollEvents, Notify)> = self
            .waiters
            .borrow()
            .iter()
            .map(|w| (w.id, w.events, w.notify.clone()))
            .collect();
        for (id, events, notify) in snapshot {
            let ready = match result {
                Ok(fired) => fired & events,
                Err(_) => events,
            };
            // Skip those not interested, and those an earlier callback removed.
            if ready.is_empty() || !self.waiters.borrow().iter().any(|w| w.id == id) {
                continue;
            }
            let outcome = result.map(|_| ready).map_err(io::Error::from);
            match notify {
                Notify::Fiber(waiter) => {
                    drop(take_where(&self.waiters, |w| w.id == id));
                    waiter.call(outcome);
                }
                Notify::Func(callback) => (callback.borrow_mut())(outcome),
            }
        }
        if result.is_ok() {
            let _ = self.sync();
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // The poll handle closes with the entry; forget the registry's dead link to it. The
        // registry may be gone (thread exit) or busy (an entry dropped while it is borrowed):
        // a dead link left behind is replaced on the next lookup.
        let _ = REGISTRY.try_with(|r| {
            if let Ok(mut reg) = r.try_borrow_mut()
                && reg.fds.get(&self.fd).is_some_and(|e| e.strong_count() == 0)
            {
                reg.fds.remove(&self.fd);
            }
        });
    }
}

/// Removes the waiters matching `pred`, returning them (drop them after releasing borrows:
/// dropping a callback may drop the last `MultiPoll` of another entry).
fn take_where(waiters: &RefCell<Vec<Waiter>>, pred: impl Fn(&Waiter) -> bool) -> Vec<Waiter> {
    let mut waiters = waiters.borrow_mut();
    let mut removed = Vec::new();
    let mut i = 0;
    while i < waiters.len() {
        if pred(&waiters[i]) {
            removed.push(waiters.remove(i));
        } else {
            i += 1;
        }
    }
    removed
}

fn no_such_callback() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "no such callback")
}
