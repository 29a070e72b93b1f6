//! The receive side of a [`UdpSocket`](super::UdpSocket): libuv receives into a bounded queue
//! of datagrams, and pauses while it is full.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use fiber_core::{Callback, SwitchBack};
use uv_sys_wrap::{Datagram, Error as UvError, Udp};

use crate::address::waited;

/// The receive buffer: large enough for any UDP datagram (65,507 bytes over IPv4, 65,527
/// over IPv6), so none is ever cut by libuv.
const RECV_BUFFER: usize = 64 * 1024;

type Item = Result<(Vec<u8>, SocketAddr), UvError>;

/// Received datagrams (and receive errors, in order) plus the socket's timeouts.
pub(super) struct RecvQueue {
    items: RefCell<VecDeque<Item>>,
    limit: Cell<usize>,
    /// Some fiber has received: keep libuv receiving whenever the queue has room.
    wanted: Cell<bool>,
    /// `recv_start` is in effect.
    receiving: Cell<bool>,
    /// The buffer libuv receives into, kept between datagrams (each is copied out to its
    /// own length).
    scratch: Cell<Option<Vec<u8>>>,
    readers: RefCell<Vec<Callback<()>>>,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

impl RecvQueue {
    pub(super) fn new(limit: usize) -> Rc<RecvQueue> {
        Rc::new(RecvQueue {
            items: RefCell::new(VecDeque::new()),
            limit: Cell::new(limit),
            wanted: Cell::new(false),
            receiving: Cell::new(false),
            scratch: Cell::new(None),
            readers: RefCell::new(Vec::new()),
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    pub(super) fn limit(&self) -> usize {
        self.limit.get()
    }

    pub(super) fn set_limit(&self, limit: usize) {
        self.limit.set(limit);
    }

    pub(super) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.read_timeout.set(timeout);
    }

    pub(super) fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    pub(super) fn set_write_timeout(&self, timeout: Option<Duration>) {
        self.write_timeout.set(timeout);
    }

    /// Takes (or with `consume == false` copies) the next datagram, waiting for one.
    pub(super) fn next(
        self: &Rc<Self>,
        handle: &RefCell<Option<Rc<Udp>>>,
        buf: &mut [u8],
        consume: bool,
    ) -> io::Result<(usize, SocketAddr)> {
        let deadline = self.read_timeout.get().map(fiber_core::deadline_after);
        self.wanted.set(true);
        loop {
            let udp = handle.borrow().clone().ok_or_else(closed)?;
            if let Some(result) = self.take(&udp, buf, consume) {
                return result;
            }
            self.resume(&udp)?;
            drop(udp);
            let sb = SwitchBack::new();
            let mut readers = self.readers.borrow_mut();
            // Drop the callbacks of receives that timed out, so the list stays bounded.
            readers.retain(Callback::is_active);
            readers.push(sb.callback());
            drop(readers);
            let result = match deadline {
                None => sb.wait(),
                Some(at) => sb.wait_timeout(at.saturating_duration_since(Instant::now())),
            };
            waited(result, "receive timed out")?;
        }
    }

    /// Takes the next queued datagram, or fails with `WouldBlock`. Never switches.
    pub(super) fn try_next(
        self: &Rc<Self>,
        handle: &RefCell<Option<Rc<Udp>>>,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        self.wanted.set(true);
        let udp = handle.borrow().clone().ok_or_else(closed)?;
        if let Some(result) = self.take(&udp, buf, true) {
            return result;
        }
        self.resume(&udp)?;
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "no datagram is queued",
        ))
    }

    /// Copies the front datagram into `buf` and pops it (an error is always popped); resumes
    /// receiving if that made room.
    fn take(
        self: &Rc<Self>,
        udp: &Udp,
        buf: &mut [u8],
        consume: bool,
    ) -> Option<io::Result<(usize, SocketAddr)>> {
        let result = {
            let mut items = self.items.borrow_mut();
            let result = match items.front()? {
                Ok((data, addr)) => {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    Ok((n, *addr))
                }
                Err(err) => Err(*err),
            };
            if consume || result.is_err() {
                items.pop_front();
            }
            result
        };
        if let Err(err) = self.resume(udp) {
            return Some(Err(err));
        }
        Some(result.map_err(io::Error::from))
    }

    /// Starts libuv receiving if a fiber wants datagrams and the queue has room.
    fn resume(self: &Rc<Self>, udp: &Udp) -> io::Result<()> {
        if !self.wanted.get()
            || self.receiving.get()
            || self.items.borrow().len() >= self.limit.get()
        {
            return Ok(());
        }
        let (for_alloc, for_recv) = (Rc::downgrade(self), Rc::downgrade(self));
        udp.recv_start(
            move |_| alloc(&for_alloc),
            move |udp, datagram| on_recv(&for_recv, udp, datagram),
        )?;
        self.receiving.set(true);
        Ok(())
    }

    /// The socket closed: drop what is queued and wake the readers (they see it closed).
    pub(super) fn close(&self) {
        self.items.borrow_mut().clear();
        self.receiving.set(false);
        for reader in self.readers.take() {
            reader.call(());
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the socket is closed")
}

/// libuv's allocation callback: lends the scratch buffer.
fn alloc(queue: &Weak<RecvQueue>) -> Vec<u8> {
    queue
        .upgrade()
        .and_then(|q| q.scratch.take())
        .unwrap_or_else(|| Vec::with_capacity(RECV_BUFFER))
}

/// libuv's receive callback: queues a copy of the datagram, pauses when the queue is full,
/// wakes the readers.
fn on_recv(queue: &Weak<RecvQueue>, udp: &Udp, datagram: Result<Datagram, UvError>) {
    let Some(queue) = queue.upgrade() else {
        return;
    };
    match datagram {
        Ok(Datagram {
            mut data,
            addr: Some(addr),
            ..
        }) => {
            queue.items.borrow_mut().push_back(Ok((data.clone(), addr)));
            data.clear();
            queue.scratch.set(Some(data));
        }
        // Only sockets of other families than IPv4/IPv6 have no sender address.
        Ok(_) => {}
        Err(err) => queue.items.borrow_mut().push_back(Err(err)),
    }
    if queue.items.borrow().len() >= queue.limit.get() {
        // Further datagrams wait in the kernel's buffer until a reader makes room.
        let _ = udp.recv_stop();
        queue.receiving.set(false);
    }
    for reader in queue.readers.take() {
        reader.call(());
    }
}
