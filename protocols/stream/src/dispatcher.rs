//! The per-connection message loop of a protocol (Gruvi's `MessageProtocol`): a reader fiber
//! decodes messages with a [`Framer`] and queues them; the dispatching fiber hands them to the
//! handler in order. Reading pauses while the queue is full.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::rc::Rc;

use fiber_core::{Builder, Callback, JoinHandle, SwitchBack};

use crate::buffered::Stream;
use crate::connection::Connection;
use crate::framing::{Framer, Partial, decode_batch};

/// How many bytes a message may have unless [`Dispatcher::max_message_size`] says otherwise:
/// 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// How many decoded messages may wait for the handler: the reader stops reading when
/// `high_water` are queued and goes on when the handler has brought them down to `low_water`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Reading pauses at this many queued messages (default 64).
    pub high_water: usize,
    /// Reading resumes at this many (default 16).
    pub low_water: usize,
}

impl Default for QueueLimits {
    fn default() -> QueueLimits {
        QueueLimits {
            high_water: 64,
            low_water: 16,
        }
    }
}

/// A message handed straight to the reader fiber (see [`Dispatcher::route`]).
type Route<M> = Box<dyn FnMut(M) -> Option<M>>;

/// Runs a [`Framer`] on one connection (Gruvi's `MessageProtocol`): a reader fiber decodes
/// messages and queues them, and the fiber calling [`run`](Self::run) hands each to the
/// handler in order. Reading and handling overlap, so a handler may block (on a reply arriving
/// on the same connection, say) while the reader goes on; messages that must not wait behind
/// the handler, such as those replies, are taken out by a [`route`](Self::route) function in
/// the reader.
///
/// Flow control by queue depth: the reader stops at [`QueueLimits::high_water`] queued
/// messages, so the connection's receive buffer fills, reading from the socket pauses, and TCP
/// pushes back on the peer. A message longer than
/// [`max_message_size`](Self::max_message_size) bytes is an error, as soon as it is known to
/// be: once it is whole, or while it is still incomplete after that many bytes. Memory stays
/// bounded whatever the peer sends.
///
/// # Examples
///
/// See `examples/line_protocol.rs` for a whole server. In short:
///
/// ```
/// use std::rc::Rc;
/// use gruvi_stream::{Dispatcher, Framer, Stream, TcpListener, TcpStream};
///
/// /// Lines without their newline.
/// struct Lines;
///
/// impl Framer for Lines {
///     type Message = Vec<u8>;
///     type Error = std::io::Error;
///
///     fn decode(&mut self, buf: &[u8]) -> std::io::Result<Option<(Vec<u8>, usize)>> {
///         Ok(buf.iter().position(|&b| b == b'\n').map(|i| (buf[..i].to_vec(), i + 1)))
///     }
/// }
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let client = fiber_core::spawn(move || -> std::io::Result<()> {
///         let stream = Stream::new(TcpStream::connect(addr)?);
///         stream.write_all(b"one\ntwo\n")?;
///         stream.write_eof()
///     });
///     let stream = Rc::new(Stream::new(listener.accept()?.0));
///     let mut seen = Vec::new();
///     Dispatcher::new(Lines).run(stream, |line| {
///         seen.push(line);
///         Ok(())
///     })?;
///     assert_eq!(seen, [b"one".to_vec(), b"two".to_vec()]);
///     client.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Dispatcher<F: Framer> {
    framer: F,
    limits: QueueLimits,
    max_message_size: usize,
    route: Option<Route<F::Message>>,
}

impl<F: Framer + 'static> Dispatcher<F> {
    /// A dispatcher for `framer` with the default limits.
    pub fn new(framer: F) -> Dispatcher<F> {
        Dispatcher {
            framer,
            limits: QueueLimits::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            route: None,
        }
    }

    /// Sets the queue limits.
    ///
    /// # Panics
    ///
    /// If `low_water > high_water` or `high_water` is 0.
    pub fn queue_limits(mut self, limits: QueueLimits) -> Dispatcher<F> {
        assert!(
            limits.low_water <= limits.high_water && limits.high_water > 0,
            "low_water must not exceed high_water, which must not be 0"
        );
        self.limits = limits;
        self
    }

    /// Sets how many bytes a message may have, all that the framer takes for it (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`]): a message of exactly that many passes, one byte more is
    /// an `InvalidData` error after the messages before it were handled.
    pub fn max_message_size(mut self, bytes: usize) -> Dispatcher<F> {
        self.max_message_size = bytes;
        self
    }

    /// Passes every decoded message to `route` in the reader fiber first: it returns the
    /// message to queue it for the handler, or `None` when it dealt with the message itself
    /// (e.g. a reply that wakes the fiber waiting for it). Routed messages do not count
    /// against the queue limits. It may block; reading waits meanwhile.
    pub fn route(mut self, route: impl FnMut(F::Message) -> Option<F::Message> + 'static) -> Self {
        self.route = Some(Box::new(route));
        self
    }

    /// Reads and dispatches messages until end of stream, calling `handler` for each in this
    /// fiber, in order. Returns once every message before the end of stream was handled.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the peer ends the stream or something fails; other fibers run meanwhile.
    ///
    /// # Errors
    ///
    /// The first error of the handler, the framer (bad input from the peer), or the connection
    /// (after the messages received before it were handled). The reader fiber is stopped and
    /// the connection is left open either way.
    ///
    /// # Panics
    ///
    /// A panic of the framer or of the route function, in the reader fiber, is resumed here.
    pub fn run<C, H>(self, stream: Rc<Stream<C>>, mut handler: H) -> Result<(), F::Error>
    where
        C: Connection + ?Sized,
        H: FnMut(F::Message) -> Result<(), F::Error>,
    {
        let queue = Rc::new(Queue::new(self.limits));
        let mut reader = Reader {
            framer: self.framer,
            partial: Partial::new(self.max_message_size),
            route: self.route,
            queue: queue.clone(),
        };
        let fiber = Builder::new().spawn(move || {
            // Ends the queue even if the framer or the route function panics.
            let _ended = Ended(reader.queue.clone());
            let end = reader.run(&stream);
            reader.queue.finish(end);
        });
        let mut reader = StopReader(Some(fiber.map_err(F::Error::from)?));
        let result = loop {
            match queue.pop() {
                Ok(Some(message)) => {
                    if let Err(err) = handler(message) {
                        break Err(err);
                    }
                }
                Ok(None) => break queue.take_end(),
                Err(err) => break Err(io::Error::from(err).into()),
            }
        };
        let fiber = reader.0.take().expect("the reader fiber");
        fiber.cancel();
        match fiber.join() {
            // A panic in the framer or the route function is this caller's panic.
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The reader's own outcome is in `result` already.
            _ => result,
        }
    }
}

/// Cancels the reader fiber if the handler panics.
struct StopReader(Option<JoinHandle<()>>);

impl Drop for StopReader {
    fn drop(&mut self) {
        if let Some(fiber) = self.0.take() {
            fiber.cancel();
        }
    }
}

/// Ends the queue when the reader fiber ends without saying how (it panicked).
struct Ended<M, E: From<io::Error>>(Rc<Queue<M, E>>);

impl<M, E: From<io::Error>> Drop for Ended<M, E> {
    fn drop(&mut self) {
        if !self.0.finished.get() {
            self.0.finish(Err(
                io::Error::other("the dispatcher's reader panicked").into()
            ));
        }
    }
}

impl<F: Framer> fmt::Debug for Dispatcher<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("limits", &self.limits)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

/// The reader fiber's state.
struct Reader<F: Framer> {
    framer: F,
    partial: Partial,
    route: Option<Route<F::Message>>,
    queue: Rc<Queue<F::Message, F::Error>>,
}

impl<F: Framer> Reader<F> {
    fn run<C: Connection + ?Sized>(&mut self, stream: &Stream<C>) -> Result<(), F::Error> {
        let mut batch = Vec::new();
        loop {
            let room = self.queue.wait_for_room().map_err(io::Error::from)?;
            // Messages left whole in the partial buffer by a full batch come first.
            if !self.partial.is_empty() {
                self.decode(&[], room, &mut batch)?;
            }
            if batch.is_empty() {
                if !stream.fill()? {
                    return self.finish(&mut batch);
                }
                // The framer runs on the connection's buffer in place; it never switches.
                let (framer, partial) = (&mut self.framer, &mut self.partial);
                let used = stream
                    .with_buffered(|data| decode_batch(framer, partial, data, room, &mut batch));
                let used = self.delivered_before(used, &mut batch)?;
                stream.consume(used);
            }
            self.deliver(&mut batch);
        }
    }

    /// Decodes up to `limit` messages from the partial buffer and `data` into `batch`.
    fn decode(
        &mut self,
        data: &[u8],
        limit: usize,
        batch: &mut Vec<F::Message>,
    ) -> Result<usize, F::Error> {
        let used = decode_batch(&mut self.framer, &mut self.partial, data, limit, batch);
        self.delivered_before(used, batch)
    }

    /// On bad input, delivers the messages decoded before it, then returns its error.
    fn delivered_before(
        &mut self,
        used: Result<usize, F::Error>,
        batch: &mut Vec<F::Message>,
    ) -> Result<usize, F::Error> {
        if used.is_err() {
            self.deliver(batch);
        }
        used
    }

    /// End of stream: what is left is the last messages, or a truncated one.
    fn finish(&mut self, batch: &mut Vec<F::Message>) -> Result<(), F::Error> {
        loop {
            self.decode(&[], usize::MAX, batch)?;
            if batch.is_empty() {
                break;
            }
            self.deliver(batch);
        }
        if let Some(last) = self.partial.finish(&mut self.framer)? {
            batch.push(last);
            self.deliver(batch);
        }
        Ok(())
    }

    fn deliver(&mut self, batch: &mut Vec<F::Message>) {
        for message in batch.drain(..) {
            let message = match &mut self.route {
                Some(route) => route(message),
                None => Some(message),
            };
            if let Some(message) = message {
                self.queue.push(message);
            }
        }
    }
}

/// The queue between the reader and the dispatching fiber: one waiter on each side.
struct Queue<M, E> {
    items: RefCell<VecDeque<M>>,
    limits: QueueLimits,
    /// The reader stopped above the high-water mark and waits for the low one.
    paused: Cell<bool>,
    /// How the reader ended; set once, after its last message.
    end: RefCell<Option<Result<(), E>>>,
    finished: Cell<bool>,
    consumer: RefCell<Option<Callback<()>>>,
    producer: RefCell<Option<Callback<()>>>,
}

impl<M, E> Queue<M, E> {
    fn new(limits: QueueLimits) -> Queue<M, E> {
        Queue {
            items: RefCell::new(VecDeque::new()),
            limits,
            paused: Cell::new(false),
            end: RefCell::new(None),
            finished: Cell::new(false),
            consumer: RefCell::new(None),
            producer: RefCell::new(None),
        }
    }

    fn wake(waiter: &RefCell<Option<Callback<()>>>) {
        if let Some(waiter) = waiter.take() {
            waiter.call(());
        }
    }

    fn push(&self, message: M) {
        self.items.borrow_mut().push_back(message);
        Queue::<M, E>::wake(&self.consumer);
    }

    fn finish(&self, end: Result<(), E>) {
        self.finished.set(true);
        *self.end.borrow_mut() = Some(end);
        Queue::<M, E>::wake(&self.consumer);
    }

    /// Waits until the queue has room and returns how much: at the high-water mark, until it
    /// drained to the low one.
    fn wait_for_room(&self) -> fiber_core::Result<usize> {
        loop {
            let len = self.items.borrow().len();
            if len >= self.limits.high_water {
                self.paused.set(true);
            } else if !self.paused.get() || len <= self.limits.low_water {
                self.paused.set(false);
                return Ok(self.limits.high_water - len);
            }
            let sb = SwitchBack::new();
            *self.producer.borrow_mut() = Some(sb.callback());
            sb.wait()?;
        }
    }

    /// The next message, or `None` once the reader ended and everything was taken.
    fn pop(&self) -> fiber_core::Result<Option<M>> {
        loop {
            let next = self.items.borrow_mut().pop_front();
            if let Some(message) = next {
                if self.paused.get() && self.items.borrow().len() <= self.limits.low_water {
                    Queue::<M, E>::wake(&self.producer);
                }
                return Ok(Some(message));
            }
            if self.finished.get() {
                return Ok(None);
            }
            let sb = SwitchBack::new();
            *self.consumer.borrow_mut() = Some(sb.callback());
            sb.wait()?;
        }
    }

    fn take_end(&self) -> Result<(), E> {
        self.end.borrow_mut().take().unwrap_or(Ok(()))
    }
}
