//! The blocking byte stream over a libuv stream handle: buffered reads with flow control,
//! writes with back-pressure, timeouts. [`TcpStream`](crate::TcpStream),
//! [`UnixStream`](crate::UnixStream) and the TTY streams are thin wrappers around it.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{Error as FiberError, Fiber, SwitchBack};
use uv_sys_wrap::{Error as UvError, Stream};

use crate::connection::FillNotify;

/// Buffer and queue limits of a stream; every one has a default and a setter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Reading pauses when this many unread bytes are buffered (default 64 KiB).
    pub read_high_water: usize,
    /// Reading resumes when the buffer drains below this (default 16 KiB).
    pub read_low_water: usize,
    /// A writer blocks while more than this many bytes wait in the write queue (default
    /// 64 KiB).
    pub write_high_water: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            read_high_water: 64 * 1024,
            read_low_water: 16 * 1024,
            write_high_water: 64 * 1024,
        }
    }
}

/// What the libuv callbacks and the blocking side share.
// Laid out in declaration order: what every request touches (reading, waiting, writing)
// comes first, so that it shares as few cache lines as possible (the buffer, its position and
// the flags every read event looks at share the allocation's first line); the rest after.
#[repr(C)]
struct Shared {
    /// Received bytes; `buf[pos..]` is unread. An empty `buf` with room is lent to libuv and
    /// read into in place; otherwise libuv reads into the thread's spare buffer, and a small
    /// read is copied here while a large read into an empty `buf` becomes `buf`. While a
    /// reader waits with nothing unread, `buf` holds no memory: it went to the thread's pool
    /// of receive buffers (`pool_buffer`), so idle connections cost no buffer.
    buf: RefCell<Vec<u8>>,
    pos: Cell<usize>,
    /// `buf` is lent to libuv for the read in progress (`buf` holds an empty stand-in).
    lent: Cell<bool>,
    /// The peer sends more than a lent buffer holds at a time (a lent buffer was filled):
    /// reads go to the thread's spare buffer, so that one `read` takes all that came.
    large: Cell<bool>,
    eof: Cell<bool>,
    /// `read_start` is in effect.
    reading: Cell<bool>,
    /// Reading was stopped because the buffer reached the high-water mark.
    paused: Cell<bool>,
    readers: Waiters,
    /// Told, instead of a waiting reader, when bytes (or the end) come
    /// (`Connection::notify_when_filled`).
    notify: Cell<Option<Rc<dyn FillNotify>>>,
    read_error: Cell<Option<UvError>>,
    /// Writes submitted to libuv and not completed.
    pending_writes: Cell<usize>,
    write_error: Cell<Option<UvError>>,
    read_timeout: Cell<Option<Duration>>,
    limits: Cell<Limits>,
    writers: Waiters,
    write_timeout: Cell<Option<Duration>>,
    /// The handle of a dropped transport whose writes are still in flight: the last write's
    /// callback drops it (closing it), so that queued bytes still go out, as with std's sockets.
    linger: RefCell<Option<Box<dyn std::any::Any>>>,
}

impl Shared {
    fn buffered(&self) -> usize {
        self.buf.borrow().len() - self.pos.get()
    }

    /// Before waiting for bytes: the drained receive buffer goes to the thread's pool, so that
    /// a connection waiting to read (an idle one) holds no buffer; the next read into this
    /// connection takes one from the pool. With the pool full, the connection keeps its
    /// buffer (no free now and allocation at the next read). (Skipped if the buffer is
    /// borrowed, which a caller that waits must not do.)
    #[inline]
    fn pool_buffer(&self) {
        let Ok(mut buf) = self.buf.try_borrow_mut() else {
            return;
        };
        if buf.capacity() != 0 && self.pos.get() == buf.len() {
            pool_put(&mut buf, &self.pos);
        }
    }

    /// Wakes the fibers waiting to read, and tells the registered notification.
    #[inline]
    fn wake_readers(&self) {
        self.readers.wake_all();
        if let Some(notify) = self.notify.take() {
            notify.filled();
        }
    }
}

/// A blocking stream over the libuv stream handle `S` (TCP, pipe or TTY).
pub(crate) struct Transport<S: Stream + 'static> {
    shared: Rc<Shared>,
    /// `None` once closed.
    handle: RefCell<Option<Rc<S>>>,
}

impl<S: Stream + 'static> Transport<S> {
    pub(crate) fn new(handle: S) -> Transport<S> {
        Transport {
            shared: Rc::new(Shared {
                buf: RefCell::new(Vec::new()),
                pos: Cell::new(0),
                lent: Cell::new(false),
                large: Cell::new(false),
                eof: Cell::new(false),
                read_error: Cell::new(None),
                reading: Cell::new(false),
                paused: Cell::new(false),
                readers: Waiters::default(),
                notify: Cell::new(None),
                pending_writes: Cell::new(0),
                write_error: Cell::new(None),
                writers: Waiters::default(),
                limits: Cell::new(Limits::default()),
                read_timeout: Cell::new(None),
                write_timeout: Cell::new(None),
                linger: RefCell::new(None),
            }),
            handle: RefCell::new(Some(Rc::new(handle))),
        }
    }

    /// The handle, or `NotConnected` once the transport is closed.
    pub(crate) fn handle(&self) -> io::Result<Rc<S>> {
        self.handle.borrow().clone().ok_or_else(closed)
    }

    pub(crate) fn limits(&self) -> Limits {
        self.shared.limits.get()
    }

    pub(crate) fn set_limits(&self, limits: Limits) {
        assert!(
            limits.read_low_water <= limits.read_high_water && limits.read_high_water > 0,
            "read_low_water must not exceed read_high_water, which must not be 0"
        );
        self.shared.limits.set(limits);
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.shared.read_timeout.set(timeout);
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.shared.read_timeout.get()
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) {
        self.shared.write_timeout.set(timeout);
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.shared.write_timeout.get()
    }

    /// Starts libuv reading into the buffer, unless it already is, the buffer is full, or the
    /// stream ended.
    fn start_reading(&self, handle: &S) -> io::Result<()> {
        let shared = &self.shared;
        if shared.reading.get()
            || shared.eof.get()
            || shared.buffered() >= shared.limits.get().read_high_water
        {
            return Ok(());
        }
        // Strong references: no upgrade per read event. No cycle outlives the handle: a
        // handle's callbacks are dropped when it closes (also when its loop closes it).
        let (for_alloc, for_read) = (shared.clone(), shared.clone());
        handle
            .read_start(
                move |suggested| alloc(&for_alloc, suggested),
                move |h: &S, data| on_read(&for_read, h, data),
            )
            .map_err(io::Error::from)?;
        shared.reading.set(true);
        Ok(())
    }

    /// Waits until data, EOF or an error is buffered (or the read timeout passes).
    ///
    /// Returns `Ok(true)` when bytes are buffered and `Ok(false)` at end of stream.
    pub(crate) fn fill(&self) -> io::Result<bool> {
        // Read the clock only when about to wait: buffered bytes cost no clock read.
        let mut deadline = None;
        loop {
            let shared = &self.shared;
            if shared.buffered() > 0 {
                return Ok(true);
            }
            // EOF comes before an error: the peer's orderly close is what the reader sees.
            if shared.eof.get() {
                return Ok(false);
            }
            if let Some(err) = shared.read_error.get() {
                return Err(err.into());
            }
            // Reading already (the usual case between two requests): no handle to look at.
            // A closed transport has seen its end of stream above.
            if !shared.reading.get() {
                self.start_reading(&*self.handle()?)?;
            }
            if deadline.is_none() {
                deadline = self
                    .shared
                    .read_timeout
                    .get()
                    .map(fiber_core::deadline_after);
            }
            shared.pool_buffer();
            block_on(&shared.readers, deadline, "read timed out")?;
        }
    }

    /// Registers `notify` for when [`fill`](Self::fill) would not block, unless it would not
    /// now (`Connection::notify_when_filled`).
    pub(crate) fn notify_when_filled(
        &self,
        notify: Rc<dyn FillNotify>,
    ) -> Result<(), Rc<dyn FillNotify>> {
        let shared = &self.shared;
        if shared.buffered() > 0 || shared.eof.get() || shared.read_error.get().is_some() {
            return Err(notify);
        }
        if !shared.reading.get() && !self.start_reading_now() {
            return Err(notify);
        }
        match shared.notify.take() {
            None => {
                shared.notify.set(Some(notify));
                shared.pool_buffer();
                Ok(())
            }
            registered => {
                shared.notify.set(registered);
                Err(notify)
            }
        }
    }

    /// Starts reading for [`notify_when_filled`](Self::notify_when_filled): `false` if the
    /// transport is closed or libuv refused. Out of line: reading is started already between
    /// two requests.
    #[cold]
    #[inline(never)]
    fn start_reading_now(&self) -> bool {
        self.handle()
            .is_ok_and(|handle| self.start_reading(&handle).is_ok())
    }

    /// Reads buffered bytes into `out`, waiting for some if none are buffered.
    pub(crate) fn read(&self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = self.with_buffered(|data| {
            let n = data.len().min(out.len());
            out[..n].copy_from_slice(&data[..n]);
            n
        });
        self.consume(n);
        Ok(n)
    }

    /// The receive buffer's capacity (tests: a waiting reader holds none).
    #[cfg(test)]
    pub(crate) fn receive_capacity(&self) -> usize {
        self.shared.buf.borrow().capacity()
    }

    /// Calls `f` on the unread bytes.
    pub(crate) fn with_buffered<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let buf = self.shared.buf.borrow();
        f(&buf[self.shared.pos.get()..])
    }

    /// The unread bytes, borrowed.
    pub(crate) fn buffered(&self) -> std::cell::Ref<'_, [u8]> {
        let pos = self.shared.pos.get();
        std::cell::Ref::map(self.shared.buf.borrow(), |buf| &buf[pos..])
    }

    /// Marks `n` buffered bytes as read, resuming reading below the low-water mark.
    pub(crate) fn consume(&self, n: usize) {
        let shared = &self.shared;
        let pos = shared.pos.get() + n;
        debug_assert!(pos <= shared.buf.borrow().len());
        if pos == shared.buf.borrow().len() {
            let mut buf = shared.buf.borrow_mut();
            if buf.capacity() > KEEP {
                give_spare(std::mem::take(&mut *buf));
            } else {
                buf.clear();
            }
            shared.pos.set(0);
        } else {
            shared.pos.set(pos);
        }
        if shared.paused.get() && shared.buffered() < shared.limits.get().read_low_water {
            self.resume_reading();
        }
    }

    /// Resumes reading paused at the high-water mark. Out of line: rarely needed.
    #[cold]
    #[inline(never)]
    fn resume_reading(&self) {
        if let Ok(handle) = self.handle() {
            self.shared.paused.set(false);
            let _ = self.start_reading(&handle);
        }
    }

    /// Queues the concatenation of `bufs` as one write.
    pub(crate) fn write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match bufs {
            [] => Ok(0),
            [one] => self.write(one),
            _ => {
                let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                self.write(&joined)
            }
        }
    }

    /// Queues `data` for writing: written at once when the kernel takes it, else copied into
    /// libuv's queue. Blocks first while the queue is over its limit.
    pub(crate) fn write(&self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // Nothing queued and no error (the usual case): the queue limit cannot apply, so this
        // cannot block, and the handle is only borrowed (no clone) for the write.
        if self.shared.pending_writes.get() == 0 && self.shared.write_error.get().is_none() {
            let handle = self.handle.borrow();
            let Some(handle) = handle.as_deref() else {
                return Err(closed());
            };
            return self.write_now(handle, data);
        }
        self.write_queued(data)
    }

    /// [`write`](Self::write) with writes queued or failed: waits while the queue is over its
    /// limit. Out of line: the usual write finds nothing queued.
    #[cold]
    #[inline(never)]
    fn write_queued(&self, data: &[u8]) -> io::Result<usize> {
        let handle = self.handle()?;
        self.wait_for_queue(&handle, self.shared.limits.get().write_high_water)?;
        if handle.write_queue_size() == 0 && self.shared.pending_writes.get() == 0 {
            return self.write_now(&handle, data);
        }
        self.submit(&handle, data.to_vec())?;
        Ok(data.len())
    }

    /// Writes `data` with nothing queued before it: what the kernel takes at once, the rest
    /// copied into libuv's queue. Never blocks.
    #[inline(always)]
    fn write_now(&self, handle: &S, data: &[u8]) -> io::Result<usize> {
        let written = match handle.try_write(data) {
            Ok(n) => n,
            Err(err) if err == UvError::EAGAIN => 0,
            Err(err) => return Err(err.into()),
        };
        if written < data.len() {
            self.queue_rest(handle, &data[written..])?;
        }
        Ok(data.len())
    }

    /// Copies what the kernel did not take into libuv's queue. Out of line: the usual write
    /// is taken whole.
    #[cold]
    #[inline(never)]
    fn queue_rest(&self, handle: &S, rest: &[u8]) -> io::Result<()> {
        self.submit(handle, rest.to_vec())
    }

    /// Hands an owned buffer to libuv's write queue.
    fn submit(&self, handle: &S, data: Vec<u8>) -> io::Result<()> {
        let shared = self.shared.clone();
        handle
            .write(data, move |result| {
                let pending = shared.pending_writes.get() - 1;
                shared.pending_writes.set(pending);
                if let Err(err) = result {
                    shared.write_error.set(Some(err));
                }
                shared.writers.wake_all();
                if pending == 0 {
                    // The last write of a dropped transport closes its handle.
                    drop(shared.linger.take());
                }
            })
            .map_err(io::Error::from)?;
        self.shared
            .pending_writes
            .set(self.shared.pending_writes.get() + 1);
        Ok(())
    }

    /// Waits until at most `limit` bytes are queued (0: every write completed), reporting the
    /// first write error.
    fn wait_for_queue(&self, handle: &S, limit: usize) -> io::Result<()> {
        let deadline = self
            .shared
            .write_timeout
            .get()
            .map(fiber_core::deadline_after);
        loop {
            if let Some(err) = self.shared.write_error.get() {
                return Err(err.into());
            }
            // Closed meanwhile (`close()` wakes writers): give up; the caller's handle
            // reference goes with its return, closing the handle.
            self.handle()?;
            let queued = handle.write_queue_size();
            let done = if limit == 0 {
                self.shared.pending_writes.get() == 0
            } else {
                queued <= limit
            };
            if done {
                return Ok(());
            }
            block_on(&self.shared.writers, deadline, "write timed out")?;
        }
    }

    /// Waits until every queued write has completed.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let handle = self.handle()?;
        self.wait_for_queue(&handle, 0)
    }

    /// Flushes, then shuts down the write side (the peer reads EOF).
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.flush()?;
        let handle = self.handle()?;
        let sb = SwitchBack::new();
        let done = sb.callback();
        match handle.shutdown(move |r| {
            done.call(r);
        }) {
            // Already shut down: nothing more to do.
            Err(err) if err == UvError::ENOTCONN => return Ok(()),
            Err(err) => return Err(err.into()),
            Ok(()) => {}
        }
        sb.wait().map_err(io::Error::from)?.map_err(io::Error::from)
    }

    /// Shuts down the read side, the write side or both (std's `shutdown`).
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        use std::net::Shutdown;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.shutdown_read();
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.shutdown_write()?;
        }
        Ok(())
    }

    /// Stops reading: buffered bytes are dropped and reads return end of stream.
    pub(crate) fn shutdown_read(&self) {
        self.shared.eof.set(true);
        self.shared.buf.borrow_mut().clear();
        self.shared.pos.set(0);
        if self.shared.reading.replace(false)
            && let Ok(handle) = self.handle()
        {
            let _ = handle.read_stop();
        }
        self.shared.wake_readers();
    }

    /// Closes the handle now; queued writes are cancelled.
    pub(crate) fn close(&self) {
        drop(self.handle.take());
        self.shared.eof.set(true);
        self.shared.wake_readers();
        self.shared.writers.wake_all();
    }
}

impl<S: Stream + 'static> Drop for Transport<S> {
    fn drop(&mut self) {
        // With writes in flight the handle lingers until the last one completes, so that
        // written data is not lost; otherwise it closes now.
        if let Some(handle) = self.handle.take()
            && self.shared.pending_writes.get() > 0
        {
            *self.shared.linger.borrow_mut() = Some(Box::new(handle));
        }
    }
}

/// The error of an operation on a closed transport.
fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the stream is closed")
}

/// Fibers blocked on a condition of a stream, woken all at once when it may have changed.
/// The first one is kept inline: the usual waiter is the one fiber reading (or writing), and
/// its wait then touches no memory but the stream's own.
#[derive(Default)]
pub(crate) struct Waiters {
    first: Cell<Option<Fiber>>,
    more: RefCell<Vec<Fiber>>,
}

impl Waiters {
    #[inline(always)]
    fn add(&self, fiber: Fiber) {
        match self.first.take() {
            None => self.first.set(Some(fiber)),
            first => {
                self.first.set(first);
                self.more.borrow_mut().push(fiber);
            }
        }
    }

    /// Forgets the fiber `id` if it is still waiting (its wait ended otherwise than by a
    /// wake-up).
    #[inline(always)]
    fn remove(&self, id: u64) {
        match self.first.take() {
            Some(first) if first.id() == id => {}
            first => self.first.set(first),
        }
        if !self.more.borrow().is_empty() {
            self.more.borrow_mut().retain(|f| f.id() != id);
        }
    }

    /// Wakes every waiter. Every read and write completion comes here: most find nobody
    /// waiting, or only the first.
    #[inline(always)]
    pub(crate) fn wake_all(&self) {
        let first = self.first.take();
        if !self.more.borrow().is_empty() {
            self.wake_more(first);
        } else if let Some(first) = first {
            first.unpark();
        }
    }

    /// [`wake_all`](Self::wake_all) with more than one waiter: out of line, so that the
    /// usual wake-up (nobody or one) needs no registers of its own.
    #[cold]
    #[inline(never)]
    fn wake_more(&self, first: Option<Fiber>) {
        let mut more = std::mem::take(&mut *self.more.borrow_mut());
        for waiter in first.into_iter().chain(more.drain(..)) {
            waiter.unpark();
        }
        // Keep the allocation for the next waits, unless a waiter was added meanwhile.
        let mut slot = self.more.borrow_mut();
        if slot.is_empty() {
            *slot = more;
        }
    }
}

/// Parks the current fiber on `waiters` until woken (or spuriously: callers re-check their
/// condition in a loop) or until `deadline`, mapping a timeout to `ErrorKind::TimedOut`.
/// No allocation per wait: the fiber is the waiter. Inlined, so that a fiber parked here has
/// one frame fewer on its stack (its lines are cold again when the fiber resumes).
#[inline(always)]
pub(crate) fn block_on(waiters: &Waiters, deadline: Option<Instant>, what: &str) -> io::Result<()> {
    // Known by its id afterwards: the list holds the one reference (no second clone).
    let me = fiber_core::current();
    let id = me.id();
    waiters.add(me);
    let result = match deadline {
        None => fiber_core::park(),
        Some(at) => fiber_core::park_timeout(at.saturating_duration_since(Instant::now())),
    };
    // A wake-up took us off the list; a timeout, a cancellation or a spurious return did not.
    waiters.remove(id);
    match result {
        Ok(()) => Ok(()),
        Err(FiberError::TimedOut) => Err(io::Error::new(io::ErrorKind::TimedOut, what.to_owned())),
        Err(err) => Err(err.into()),
    }
}

/// A drained receive buffer up to this size stays with its connection; a larger one goes back
/// to the thread's spare, so an idle connection holds no big buffer.
const KEEP: usize = 4096;
/// A read at least this large into an empty receive buffer becomes the buffer (no copy).
const ADOPT: usize = 16 * 1024;
/// An empty receive buffer with at least this much room is lent to libuv for the next read.
const LEND: usize = 2048;

/// The thread keeps at most this many receive buffers of connections waiting to read (4 MiB
/// of [`KEEP`]-sized ones, reached only after that many connections were read from in one
/// turn of the loop); past it, a waiting connection keeps its own. (Smaller in unit tests,
/// which wait on more connections than that.)
pub(crate) const POOL: usize = if cfg!(test) { 64 } else { 1024 };

thread_local! {
    /// The buffer libuv reads into, shared by the thread's connections: each read callback
    /// follows its allocation before the next allocation, so one buffer serves them all.
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Drained receive buffers of connections that wait to read, for the next reads.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Takes the drained receive buffer `buf` (its read position `pos`) for the next connection
/// that reads: one that can be lent (at least [`LEND`], at most [`KEEP`] bytes) into the pool
/// while it has room, a larger one as the thread's spare; otherwise it stays.
fn pool_put(buf: &mut Vec<u8>, pos: &Cell<usize>) {
    if buf.capacity() > KEEP {
        pos.set(0);
        return give_spare(std::mem::take(buf));
    }
    if buf.capacity() >= LEND {
        // At thread exit (a destructor reading while fibers unwind) the pool may be gone
        // already: the buffer stays.
        let _ = BUFFERS.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL {
                buf.clear();
                pos.set(0);
                pool.push(std::mem::take(buf));
            }
        });
    }
}

/// How many receive buffers the thread keeps (tests).
#[cfg(test)]
pub(crate) fn pooled_buffers() -> usize {
    BUFFERS.with(|pool| pool.borrow().len())
}

/// A receive buffer to lend to libuv: one from the pool, or a new one of [`KEEP`] bytes.
fn pool_take() -> Vec<u8> {
    BUFFERS
        .try_with(|pool| pool.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(KEEP))
}

/// Keeps `buf` as the thread's spare if it is larger than the one there.
fn give_spare(mut buf: Vec<u8>) {
    // As in `pool_put`: at thread exit the spare may be gone; the buffer is freed.
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.capacity() < buf.capacity() {
            buf.clear();
            *spare = buf;
        }
    });
}

/// libuv's allocation callback. An empty receive buffer with room is lent as it is, so the
/// bytes land where the reader looks (the usual case: a request or reply read whole); a
/// connection whose reader waited gave its buffer to the thread's pool, and one from the pool
/// is lent instead. Else, or when this peer's messages came larger than that buffer (one read
/// each, not two), the thread's spare buffer is lent, and the read callback copies or adopts
/// what it got. Either way the lent buffer holds no unread data: libuv drops a buffer whose
/// read fails.
fn alloc(shared: &Shared, suggested: usize) -> Vec<u8> {
    let mut buf = shared.buf.borrow_mut();
    // A connection that waited to read gave its buffer to the pool: it takes one back.
    let lend = shared.pos.get() == buf.len()
        && (buf.capacity() >= LEND || buf.capacity() == 0)
        && !shared.large.get();
    shared.lent.set(lend);
    if lend {
        shared.pos.set(0);
        if buf.capacity() == 0 {
            return pool_take();
        }
        buf.clear();
        return std::mem::take(&mut *buf);
    }
    drop(buf);
    let mut buf = SPARE.with(|spare| spare.take());
    buf.clear();
    buf.reserve(suggested.min(64 * 1024));
    buf
}

/// libuv's read callback: takes the buffer back, pauses above the high-water mark, wakes
/// readers.
fn on_read<S: Stream>(shared: &Shared, handle: &S, data: Result<Vec<u8>, UvError>) {
    // A failed read dropped a lent buffer (it held nothing unread): the empty stand-in stays.
    let lent = shared.lent.replace(false);
    match data {
        Ok(read) if lent => {
            // Filled: libuv reads the rest into the spare now, and the next reads go there
            // first.
            if read.len() == read.capacity() {
                shared.large.set(true);
            }
            // The receive buffer itself, back with the bytes read (`pos` is 0 since the lend).
            *shared.buf.borrow_mut() = read;
        }
        Ok(read) if shared.buffered() == 0 && read.len() >= ADOPT => {
            shared.large.set(true);
            shared.pos.set(0);
            let old = std::mem::replace(&mut *shared.buf.borrow_mut(), read);
            give_spare(old);
        }
        Ok(read) => {
            let mut buf = shared.buf.borrow_mut();
            if shared.pos.get() == buf.len() {
                buf.clear();
                shared.pos.set(0);
                // A read into an empty buffer that a lent one would have held: lend again.
                shared.large.set(read.len() >= LEND);
                // Room to be lent for the next read, so that it needs no copy.
                if buf.capacity() < LEND {
                    if buf.capacity() == 0 {
                        *buf = pool_take();
                    }
                    buf.reserve(KEEP.max(read.len()));
                }
            }
            buf.extend_from_slice(&read);
            drop(buf);
            give_spare(read);
        }
        Err(err) => {
            if err.is_eof() {
                shared.eof.set(true);
            } else {
                shared.read_error.set(Some(err));
            }
            let _ = handle.read_stop();
            shared.reading.set(false);
        }
    }
    if shared.reading.get() && shared.buffered() >= shared.limits.get().read_high_water {
        let _ = handle.read_stop();
        shared.reading.set(false);
        shared.paused.set(true);
    }
    shared.wake_readers();
}
