//! Readiness of raw file descriptors, for foreign libraries that do their own I/O (Gruvi's
//! `poll` module): wait until a descriptor is readable or writable as a switchpoint, or get
//! callbacks, with any number of waiters per descriptor.
//!
//! libuv allows one poll handle per descriptor and loop, so each Hub keeps a registry from
//! descriptor to one shared handle, watching the union of its waiters' interests. The handle is
//! made by the first waiter (or [`MultiPoll`]) of a descriptor and closed when the last one
//! leaves. Readiness is level-triggered. To wait on one descriptor again and again, keep a
//! [`MultiPoll`] of it: the handle then stays between the waits.
//!
//! The descriptor must stay open while anything waits on it: libuv cannot tell a closed
//! descriptor from a reused number. Close every [`MultiPoll`] of a descriptor (and let every
//! wait return) before closing it. libuv puts the descriptor in non-blocking mode.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use gruvi_stream::poll;
//!
//! fiber_core::run(|| -> std::io::Result<()> {
//!     let (mut a, mut b) = std::os::unix::net::UnixStream::pair()?;
//!     let reader = fiber_core::spawn(move || -> std::io::Result<Vec<u8>> {
//!         poll::wait_readable(&b)?; // blocks this fiber only
//!         let mut buf = [0; 16];
//!         let n = b.read(&mut buf)?;
//!         Ok(buf[..n].to_vec())
//!     });
//!     poll::wait_writable(&a)?;
//!     a.write_all(b"ready")?;
//!     assert_eq!(reader.join().unwrap()?, b"ready");
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod registry;

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use fiber_core::SwitchBack;

use registry::{Entry, Notify};

pub use uv_sys_wrap::PollEvents;

/// Waits until `fd` is readable (or at end of file, or in error).
///
/// # Switchpoint
///
/// Blocks the fiber until the descriptor is readable.
///
/// # Errors
///
/// As [`wait_fd`].
pub fn wait_readable(fd: &(impl AsRawFd + ?Sized)) -> io::Result<()> {
    wait_fd(fd, PollEvents::READABLE, None).map(drop)
}

/// Like [`wait_readable`], giving up with `ErrorKind::TimedOut` after `timeout`.
///
/// # Switchpoint
///
/// Blocks the fiber for at most `timeout`.
pub fn wait_readable_timeout(fd: &(impl AsRawFd + ?Sized), timeout: Duration) -> io::Result<()> {
    wait_fd(fd, PollEvents::READABLE, Some(timeout)).map(drop)
}

/// Waits until `fd` is writable.
///
/// # Switchpoint
///
/// Blocks the fiber until the descriptor is writable.
///
/// # Errors
///
/// As [`wait_fd`].
pub fn wait_writable(fd: &(impl AsRawFd + ?Sized)) -> io::Result<()> {
    wait_fd(fd, PollEvents::WRITABLE, None).map(drop)
}

/// Like [`wait_writable`], giving up with `ErrorKind::TimedOut` after `timeout`.
///
/// # Switchpoint
///
/// Blocks the fiber for at most `timeout`.
pub fn wait_writable_timeout(fd: &(impl AsRawFd + ?Sized), timeout: Duration) -> io::Result<()> {
    wait_fd(fd, PollEvents::WRITABLE, Some(timeout)).map(drop)
}

/// Waits until one of `events` is ready on `fd` and returns those that are. Waiters of one
/// descriptor are woken in the order they started waiting.
///
/// # Switchpoint
///
/// Blocks the fiber until an event, or for at most `timeout`.
///
/// # Errors
///
/// `InvalidInput` for empty `events`; `PermissionDenied` (`EPERM`) for a descriptor epoll
/// cannot watch, such as a regular file; `AlreadyExists` (`EEXIST`) if a libuv handle of this
/// Hub already owns the descriptor (a stream's: use the stream instead); an error libuv
/// reports for the descriptor (`EBADF`); `TimedOut`; a cancelled fiber's error.
pub fn wait_fd(
    fd: &(impl AsRawFd + ?Sized),
    events: PollEvents,
    timeout: Option<Duration>,
) -> io::Result<PollEvents> {
    let entry = Entry::for_fd(fd.as_raw_fd())?;
    wait_on(&entry, registry::NO_OWNER, events, timeout)
}

/// Registers a fiber waiter on `entry`, waits, and leaves.
fn wait_on(
    entry: &Rc<Entry>,
    owner: u64,
    events: PollEvents,
    timeout: Option<Duration>,
) -> io::Result<PollEvents> {
    if events.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "waiting for no event",
        ));
    }
    let sb = SwitchBack::new();
    let id = entry.add(owner, events, Notify::Fiber(sb.callback()))?;
    let result = match timeout {
        None => sb.wait(),
        Some(timeout) => sb.wait_timeout(timeout),
    };
    // Already gone if it fired; removing it otherwise may stop or close the handle.
    entry.remove(id);
    crate::address::waited(result, "waiting for the descriptor timed out")?
}

/// Identifies a callback added with [`MultiPoll::add_callback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// Several callbacks and waiters on one descriptor, each with its own events (Gruvi's
/// `MultiPoll`). Every `MultiPoll` of a descriptor in a Hub shares one libuv poll handle with
/// the module's free functions.
///
/// Callbacks run from the Hub's event loop in the order they were added, with the ready events
/// among those they asked for, as long as the descriptor stays ready (level-triggered). They
/// must not switch (that panics): to block, wait in a fiber with [`wait`](Self::wait). After
/// an error (libuv's `EBADF` for a failed descriptor) every waiter and callback gets it and the
/// handle rests until a callback or waiter is added, updated or removed.
///
/// [`close`](Self::close) (also on drop) removes this object's callbacks and wakes its waiters
/// with `ErrorKind::NotConnected`; every later call fails the same way.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, io::Write, rc::Rc};
/// use gruvi_stream::poll::{MultiPoll, PollEvents};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
///     let poll = MultiPoll::new(&b)?;
///     let seen = Rc::new(RefCell::new(Vec::new()));
///     let s = seen.clone();
///     let id = poll.add_callback(PollEvents::READABLE, move |events| {
///         s.borrow_mut().push(events.unwrap());
///     })?;
///     a.write_all(b"x")?;
///     // A fiber waiting on the same descriptor, after the callback.
///     assert_eq!(poll.wait(PollEvents::READABLE)?, PollEvents::READABLE);
///     assert_eq!(seen.borrow()[0], PollEvents::READABLE);
///     poll.remove_callback(id)?;
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct MultiPoll {
    fd: RawFd,
    owner: u64,
    /// `None` once closed.
    entry: RefCell<Option<Rc<Entry>>>,
}

impl MultiPoll {
    /// Watches `fd` in this thread's Hub, sharing the Hub's poll handle of that descriptor.
    ///
    /// # Errors
    ///
    /// As [`wait_fd`] for a descriptor libuv cannot poll.
    pub fn new(fd: &(impl AsRawFd + ?Sized)) -> io::Result<MultiPoll> {
        let fd = fd.as_raw_fd();
        Ok(MultiPoll {
            fd,
            owner: registry::new_owner(),
            entry: RefCell::new(Some(Entry::for_fd(fd)?)),
        })
    }

    /// The descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    fn entry(&self) -> io::Result<Rc<Entry>> {
        self.entry.borrow().clone().ok_or_else(closed)
    }

    /// Calls `callback` whenever one of `events` is ready (none with empty `events`: the
    /// callback is kept but disabled). Never switches.
    ///
    /// # Errors
    ///
    /// `NotConnected` once closed; an error starting the poll handle.
    pub fn add_callback(
        &self,
        events: PollEvents,
        callback: impl FnMut(io::Result<PollEvents>) + 'static,
    ) -> io::Result<CallbackId> {
        let notify = Notify::Func(Rc::new(RefCell::new(callback)));
        self.entry()?
            .add(self.owner, events, notify)
            .map(CallbackId)
    }

    /// Changes the events of a callback; empty `events` disables it. Never switches.
    ///
    /// # Errors
    ///
    /// `NotConnected` once closed, `InvalidInput` for an id not of this object's callbacks
    /// (or removed).
    pub fn update_callback(&self, id: CallbackId, events: PollEvents) -> io::Result<()> {
        self.entry()?.update(self.owner, id.0, events)
    }

    /// Removes a callback. Never switches.
    ///
    /// # Errors
    ///
    /// As [`update_callback`](Self::update_callback).
    pub fn remove_callback(&self, id: CallbackId) -> io::Result<()> {
        self.entry()?.remove_owned(self.owner, id.0)
    }

    /// Waits until one of `events` is ready and returns those that are.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until an event.
    ///
    /// # Errors
    ///
    /// `NotConnected` if closed before or meanwhile; otherwise as [`wait_fd`].
    pub fn wait(&self, events: PollEvents) -> io::Result<PollEvents> {
        wait_on(&self.entry()?, self.owner, events, None)
    }

    /// Like [`wait`](Self::wait), giving up with `ErrorKind::TimedOut` after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber for at most `timeout`.
    pub fn wait_timeout(&self, events: PollEvents, timeout: Duration) -> io::Result<PollEvents> {
        wait_on(&self.entry()?, self.owner, events, Some(timeout))
    }

    /// Removes this object's callbacks and wakes its waiting fibers with
    /// `ErrorKind::NotConnected`. The poll handle closes once nothing else uses the
    /// descriptor. Never switches; idempotent.
    pub fn close(&self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        for notify in entry.remove_owner(self.owner) {
            if let Notify::Fiber(waiter) = notify {
                waiter.call(Err(closed()));
            }
        }
    }

    /// Whether [`close`](Self::close) has run.
    pub fn is_closed(&self) -> bool {
        self.entry.borrow().is_none()
    }
}

impl Drop for MultiPoll {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for MultiPoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiPoll")
            .field("fd", &self.fd)
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the poll is closed")
}

/// How many descriptors this thread's Hub is polling (for tests: every handle is gone once
/// nothing waits).
#[doc(hidden)]
pub fn polled_fds() -> usize {
    registry::polled_fds()
}
