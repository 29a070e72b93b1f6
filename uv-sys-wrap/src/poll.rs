//! Readiness polling of file descriptors libuv does not own (`uv_poll_t`).

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::os::fd::RawFd;

use libuv_sys2 as sys;

use crate::callback::Slot;
use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;

type PollCb = dyn FnMut(&Poll, Result<PollEvents>);

/// A set of readiness events (`uv_poll_event`): what [`Poll::start`] watches for and what its
/// callback reports.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::PollEvents;
///
/// let events = PollEvents::READABLE | PollEvents::WRITABLE;
/// assert!(events.contains(PollEvents::READABLE));
/// assert!(!events.contains(PollEvents::DISCONNECT));
/// assert_eq!(format!("{events:?}"), "PollEvents(READABLE | WRITABLE)");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PollEvents(u32);

impl PollEvents {
    /// The descriptor is readable (`UV_READABLE`).
    pub const READABLE: PollEvents = PollEvents(sys::uv_poll_event_UV_READABLE);
    /// The descriptor is writable (`UV_WRITABLE`).
    pub const WRITABLE: PollEvents = PollEvents(sys::uv_poll_event_UV_WRITABLE);
    /// The peer closed its write side of a socket (`UV_DISCONNECT`, `EPOLLRDHUP`).
    pub const DISCONNECT: PollEvents = PollEvents(sys::uv_poll_event_UV_DISCONNECT);
    /// Urgent (out-of-band) data is available (`UV_PRIORITIZED`, `EPOLLPRI`).
    pub const PRIORITIZED: PollEvents = PollEvents(sys::uv_poll_event_UV_PRIORITIZED);

    const ALL: u32 = Self::READABLE.0 | Self::WRITABLE.0 | Self::DISCONNECT.0 | Self::PRIORITIZED.0;
    const NAMES: [(PollEvents, &'static str); 4] = [
        (Self::READABLE, "READABLE"),
        (Self::WRITABLE, "WRITABLE"),
        (Self::DISCONNECT, "DISCONNECT"),
        (Self::PRIORITIZED, "PRIORITIZED"),
    ];

    /// No event.
    pub const fn empty() -> PollEvents {
        PollEvents(0)
    }

    /// True if no event is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True if every event of `other` is set in `self`.
    pub const fn contains(self, other: PollEvents) -> bool {
        self.0 & other.0 == other.0
    }

    /// The `uv_poll_event` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The events among `bits`, ignoring unknown bits.
    pub const fn from_bits_truncate(bits: u32) -> PollEvents {
        PollEvents(bits & Self::ALL)
    }
}

impl BitOr for PollEvents {
    type Output = PollEvents;
    fn bitor(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 | rhs.0)
    }
}

impl BitOrAssign for PollEvents {
    fn bitor_assign(&mut self, rhs: PollEvents) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for PollEvents {
    type Output = PollEvents;
    fn bitand(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 & rhs.0)
    }
}

impl fmt::Debug for PollEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PollEvents(")?;
        let mut sep = "";
        for (event, name) in PollEvents::NAMES {
            if self.contains(event) {
                write!(f, "{sep}{name}")?;
                sep = " | ";
            }
        }
        f.write_str(")")
    }
}

/// Watches a file descriptor for readiness (`uv_poll_t`), for integrating code that does its
/// own I/O on a descriptor (a C library's socket, a device).
///
/// The handle does not own the descriptor: it stays open when the handle is closed, and must
/// stay open (and not be handed to another handle of the same loop) until then. libuv puts it
/// in non-blocking mode. Readiness is level-triggered: the callback keeps coming while the
/// descriptor stays ready.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, Poll, PollEvents, RunMode};
/// use std::{cell::Cell, os::fd::AsRawFd, rc::Rc};
///
/// let lp = Loop::new()?;
/// let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let poll = Poll::new_socket(&lp, socket.as_raw_fd())?;
/// let writable = Rc::new(Cell::new(false));
/// let w = writable.clone();
/// poll.start(PollEvents::WRITABLE, move |poll, events| {
///     w.set(events.unwrap().contains(PollEvents::WRITABLE));
///     poll.stop().unwrap();
/// })?;
/// lp.run(RunMode::Default);
/// assert!(writable.get());
/// drop(poll);
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Poll {
    h: Owned<sys::uv_poll_t, Slot<PollCb>>,
}

impl_handle!(Poll, h);

impl Poll {
    /// Creates a poll handle for the file descriptor `fd` (`uv_poll_init`).
    ///
    /// # Errors
    ///
    /// `EEXIST` if the loop already watches `fd` (another handle uses it), `EPERM` for a
    /// descriptor epoll cannot watch (a regular file), `EBADF` for a closed one.
    pub fn new(lp: &impl AsLoop, fd: RawFd) -> Result<Poll> {
        // SAFETY: `lp` and `p` are valid; uv_poll_init initialises `p` and checks `fd`.
        let h = Owned::new(lp, Slot::new(), |lp, p| unsafe {
            sys::uv_poll_init(lp, p, fd)
        })?;
        Ok(Poll { h })
    }

    /// Creates a poll handle for the socket `socket` (`uv_poll_init_socket`); the same as
    /// [`Poll::new`] on Unix.
    pub fn new_socket(lp: &impl AsLoop, socket: RawFd) -> Result<Poll> {
        // SAFETY: `lp` and `p` are valid; uv_poll_init_socket initialises `p` and checks the
        // socket.
        let h = Owned::new(lp, Slot::new(), |lp, p| unsafe {
            sys::uv_poll_init_socket(lp, p, socket)
        })?;
        Ok(Poll { h })
    }

    /// Starts watching for `events` (`uv_poll_start`): `cb` gets the events that are ready,
    /// or an error (`EBADF` when the descriptor failed, after which the handle is stopped).
    /// Starting again changes the events and replaces the callback; empty `events` stops the
    /// handle.
    pub fn start(
        &self,
        events: PollEvents,
        cb: impl FnMut(&Poll, Result<PollEvents>) + 'static,
    ) -> Result<()> {
        let raw = self.h.raw()?;
        self.h.cbs().set(Box::new(cb));
        // SAFETY: the handle is open; `events` holds only uv_poll_event bits (PollEvents has no
        // other values), as uv_poll_start asserts; the callback lives in the block.
        Error::check(unsafe { sys::uv_poll_start(raw, events.0 as i32, Some(on_poll)) }).map(drop)
    }

    /// Stops watching (`uv_poll_stop`); the callback is kept until the next start or close.
    pub fn stop(&self) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open (uv_poll_stop asserts it is not closing).
        Error::check(unsafe { sys::uv_poll_stop(raw) }).map(drop)
    }
}

unsafe extern "C" fn on_poll(raw: *mut sys::uv_poll_t, status: i32, events: i32) {
    // SAFETY: libuv calls this for handles started by `Poll::start`, whose block is allocated
    // during the callback. The view is never dropped.
    let h = unsafe { Owned::borrowed(raw) };
    let poll = ManuallyDrop::new(Poll { h });
    let result = Error::check(status).map(|_| PollEvents::from_bits_truncate(events as u32));
    poll.h.catch(|| {
        poll.h.cbs().with(|cb| cb(&poll, result));
    });
}
