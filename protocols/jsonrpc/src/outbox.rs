//! The sending side of a peer: messages are serialized into one buffer and a writer fiber
//! sends whatever has gathered in one write, so replies made while the writer waited for its
//! turn go out together.

use std::cell::{Cell, RefCell};
use std::mem;

use fiber_core::Fiber;

/// Drops the writer's own buffer when it grew past this, so a burst does not pin memory.
const KEEP_CAPACITY: usize = 256 * 1024;

/// The buffer of serialized messages waiting for the writer, and the fibers waiting for room.
pub(crate) struct Outbox {
    buf: RefCell<Vec<u8>>,
    /// Callers and handlers block while more than this is waiting.
    limit: usize,
    /// The writer fiber, once it runs, and whether it is parked waiting for bytes.
    writer: RefCell<Option<Fiber>>,
    writer_parked: Cell<bool>,
    /// Fibers waiting for the buffer to go below the limit (or to be sent).
    waiters: RefCell<Vec<Fiber>>,
    /// The writer is handing a buffer to the connection.
    sending: Cell<bool>,
}

impl Outbox {
    pub(crate) fn new(limit: usize) -> Outbox {
        Outbox {
            buf: RefCell::new(Vec::new()),
            limit,
            writer: RefCell::new(None),
            writer_parked: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            sending: Cell::new(false),
        }
    }

    /// How many bytes wait for the writer.
    pub(crate) fn len(&self) -> usize {
        self.buf.borrow().len()
    }

    /// Whether more than the limit is waiting to be sent.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.borrow().len() > self.limit
    }

    /// Waits until the buffer is at or below its limit, while `open` says the connection is.
    ///
    /// Switchpoint: parks the fiber.
    pub(crate) fn wait_for_room(&self, open: impl Fn() -> bool) -> fiber_core::Result<()> {
        while self.is_full() && open() {
            self.waiters.borrow_mut().push(fiber_core::current());
            self.wake_writer();
            fiber_core::park()?;
        }
        Ok(())
    }

    /// Waits until everything pushed so far was handed to the connection, while `open` says
    /// the connection is.
    ///
    /// Switchpoint: parks the fiber.
    pub(crate) fn wait_sent(&self, open: impl Fn() -> bool) -> fiber_core::Result<()> {
        while (self.len() > 0 || self.sending.get()) && open() {
            self.waiters.borrow_mut().push(fiber_core::current());
            self.wake_writer();
            fiber_core::park()?;
        }
        Ok(())
    }

    /// Marks the writer as handing a buffer to the connection (`true`) or done with it; done
    /// wakes the fibers waiting in [`wait_sent`](Self::wait_sent).
    pub(crate) fn set_sending(&self, sending: bool) {
        self.sending.set(sending);
        if !sending {
            self.wake_waiters();
        }
    }

    /// Appends one message written by `write`, and wakes the writer. Never switches.
    pub(crate) fn push(&self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.buf.borrow_mut());
        self.wake_writer();
    }

    /// Wakes the writer fiber if it is parked (to send, or to see that the peer finished).
    pub(crate) fn wake_writer(&self) {
        if self.writer_parked.replace(false)
            && let Some(writer) = &*self.writer.borrow()
        {
            writer.unpark();
        }
    }

    /// Wakes every fiber waiting for room (after the writer took the buffer, or at close).
    pub(crate) fn wake_waiters(&self) {
        for fiber in self.waiters.take() {
            fiber.unpark();
        }
    }

    /// Called by the writer fiber when it starts.
    pub(crate) fn set_writer(&self, fiber: Fiber) {
        *self.writer.borrow_mut() = Some(fiber);
    }

    /// Swaps what is waiting into `out` (empty), for the writer to send; `false` if nothing is
    /// waiting.
    pub(crate) fn take(&self, out: &mut Vec<u8>) -> bool {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return false;
        }
        if out.capacity() > KEEP_CAPACITY {
            *out = Vec::new();
        }
        mem::swap(&mut *buf, out);
        drop(buf);
        self.wake_waiters();
        true
    }

    /// Parks the writer until more bytes come (or it is woken to check the peer's state).
    ///
    /// Switchpoint: parks the fiber.
    pub(crate) fn park_writer(&self) -> fiber_core::Result<()> {
        self.writer_parked.set(true);
        let parked = fiber_core::park();
        self.writer_parked.set(false);
        parked
    }

    /// Drops everything still waiting (the connection is gone).
    pub(crate) fn clear(&self) {
        self.buf.borrow_mut().clear();
        self.wake_waiters();
    }
}
