//! [`Peer`]: one end of a JSON-RPC connection, calling and answering in both directions.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{Builder, Fiber, JoinHandle};
use gruvi_stream::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::batch::Batch;
use crate::calls::Calls;
use crate::config::Config;
use crate::error::Error;
use crate::handler::Handler;
use crate::message::Version;
use crate::outbox::Outbox;
use crate::workers::Workers;

/// One end of a JSON-RPC connection (Gruvi's `JsonRpcProtocol`), the same on a client and on a
/// server: it calls methods of the other end and answers the other end's calls with its
/// [`Handler`].
///
/// - Any number of fibers may [`call`](Self::call) at once; answers are matched by id, in
///   any order. A call gives up after its timeout (a late answer is discarded); when the
///   connection ends, every pending call fails at once with [`Error::ConnectionLost`]. An
///   error answer with id null (the other side could not read a request of ours and cannot
///   say which) fails every pending call at once with that [`Error::Rpc`].
/// - Received requests run in a pool of up to [`Config::max_concurrency`] handler fibers per
///   connection, so a handler may block, and may call back into the peer that called it.
/// - Outgoing messages gather in one buffer that a writer fiber sends in one write.
/// - [`batch`](Self::batch) sends several calls and notifications as one 2.0 batch.
/// - Both versions are understood on input; what this end sends first is
///   [`Config::version`], and responses follow their request's version.
///
/// A `Peer` is a handle: clones share the connection. The connection closes when
/// [`close`](Self::close) is called, when the last handle returned by [`new`](Self::new) (and
/// its clones) is dropped, or when the other end goes away. The handle a handler receives does
/// not keep the connection open.
///
/// # Examples
///
/// ```
/// use gruvi_jsonrpc::{Config, Methods, Peer};
/// use gruvi_stream::{Stream, UnixStream};
/// use std::rc::Rc;
///
/// fiber_core::run(|| -> Result<(), Box<dyn std::error::Error>> {
///     let (a, b) = UnixStream::pair()?;
///     let mut methods = Methods::new();
///     methods.add("add", |_peer, (x, y): (i64, i64)| Ok(x + y));
///     let _server = Peer::new(Rc::new(Stream::new(a)), methods, Config::default())?;
///     let client = Peer::new(Rc::new(Stream::new(b)), Methods::new(), Config::default())?;
///     assert_eq!(client.call::<i64>("add", (1, 2))?, 3);
///     client.close();
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Peer {
    inner: Rc<Inner>,
    /// Closes the connection when the last owning handle goes; `None` in handlers' handles.
    _owner: Option<Rc<CloseOnDrop>>,
}

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Open,
    /// Nothing more will be received (end of stream, or a protocol violation): handlers
    /// finish and their answers are sent, then the connection closes.
    Draining,
    Closed,
}

/// What the public handles and the peer's fibers share.
pub(crate) struct Inner {
    pub(crate) stream: Rc<Stream>,
    pub(crate) config: Config,
    pub(crate) handler: Rc<dyn Handler>,
    pub(crate) state: Cell<State>,
    /// Why the connection ended, for the calls that fail because of it.
    reason: RefCell<String>,
    pub(crate) calls: Calls,
    pub(crate) outbox: Outbox,
    pub(crate) workers: Workers,
    /// The reader, parked because the job queue is full.
    pub(crate) reader_waiting: RefCell<Option<Fiber>>,
    /// The reader and writer fibers.
    fibers: RefCell<Vec<JoinHandle<()>>>,
    /// Fibers in [`Peer::join`].
    joiners: RefCell<Vec<Fiber>>,
    /// [`Peer::shutdown`] ended this side's writing: new calls fail.
    write_ended: Cell<bool>,
}

struct CloseOnDrop(Rc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close("the peer was dropped");
    }
}

impl Peer {
    /// Runs JSON-RPC on `stream` (any [`Connection`](gruvi_stream::Connection): TCP, a Unix
    /// socket, TLS), answering requests with `handler` ([`Methods::new()`](crate::Methods::new)
    /// answers every request with `Method not found`). Starts the reader and writer fibers.
    ///
    /// # Errors
    ///
    /// Spawning the fibers failed (out of stacks), or the connection refused
    /// [`Config::write_timeout`].
    ///
    /// # Panics
    ///
    /// If `config.max_depth` is 0 or above [`MAX_DEPTH_LIMIT`](crate::MAX_DEPTH_LIMIT), or
    /// `config.max_message_size` is 0.
    pub fn new(stream: Rc<Stream>, handler: impl Handler, config: Config) -> io::Result<Peer> {
        Peer::with_handler(stream, Rc::new(handler), config)
    }

    /// As [`new`](Self::new), with a handler shared by several connections.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_handler(
        stream: Rc<Stream>,
        handler: Rc<dyn Handler>,
        config: Config,
    ) -> io::Result<Peer> {
        let splitter = crate::splitter::Splitter::new(config.max_message_size, config.max_depth);
        stream
            .connection()
            .set_write_timeout(config.write_timeout)?;
        let inner = Rc::new(Inner {
            stream,
            handler,
            state: Cell::new(State::Open),
            reason: RefCell::new(String::new()),
            calls: Calls::new(),
            outbox: Outbox::new(config.write_buffer_limit),
            workers: Workers::new(config.max_concurrency, config.idle_timeout.is_some()),
            reader_waiting: RefCell::new(None),
            fibers: RefCell::new(Vec::new()),
            joiners: RefCell::new(Vec::new()),
            write_ended: Cell::new(false),
            config,
        });
        let peer = Peer {
            _owner: Some(Rc::new(CloseOnDrop(inner.clone()))),
            inner: inner.clone(),
        };
        let i = inner.clone();
        let reader = Builder::new()
            .name("jsonrpc reader")
            .spawn(move || crate::reader::run(&i, splitter))?;
        inner.fibers.borrow_mut().push(reader);
        let i = inner.clone();
        let writer = Builder::new()
            .name("jsonrpc writer")
            .spawn(move || i.write_loop())?;
        inner.fibers.borrow_mut().push(writer);
        Ok(peer)
    }

    /// Calls `method` with `params` and waits for the result, deserialized into `R`, for at
    /// most [`Config::call_timeout`]. Params are any serializable array or object: a tuple
    /// or `Vec` for positional params, a struct or map for named ones (2.0 only), `()` for
    /// none.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the answer comes (other fibers run, this peer's handlers too).
    ///
    /// # Errors
    ///
    /// [`Error::Rpc`] (the peer answered with an error), [`Error::TimedOut`],
    /// [`Error::ConnectionLost`], [`Error::InvalidParams`], [`Error::InvalidResponse`] (the
    /// result does not fit `R`), [`Error::Fiber`] (cancelled).
    pub fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        params: impl Serialize,
    ) -> Result<R, Error> {
        self.call_timeout(method, params, self.inner.config.call_timeout)
    }

    /// As [`call`](Self::call), waiting at most `timeout` (`None`: forever).
    ///
    /// # Switchpoint
    ///
    /// As [`call`](Self::call).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_timeout<R: DeserializeOwned>(
        &self,
        method: &str,
        params: impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<R, Error> {
        let value = self.inner.call(method, &params, timeout)?;
        serde_json::from_value(value).map_err(|e| Error::InvalidResponse(e.to_string()))
    }

    /// Sends a notification: a request that gets no answer.
    ///
    /// # Switchpoint
    ///
    /// Blocks while more than [`Config::write_buffer_limit`] bytes wait to be sent.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`], [`Error::InvalidParams`], [`Error::Fiber`].
    pub fn notify(&self, method: &str, params: impl Serialize) -> Result<(), Error> {
        self.inner.wait_to_send()?;
        let version = self.inner.config.version;
        let mut encoded = Ok(());
        self.inner
            .outbox
            .push(|out| encoded = crate::encode::request(out, version, method, &params, None));
        encoded
    }

    /// Starts a JSON-RPC 2.0 batch of calls and notifications, sent in one message by
    /// [`Batch::send`].
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self, self.inner.config.call_timeout)
    }

    /// The version this peer sends its calls and notifications in.
    pub fn version(&self) -> Version {
        self.inner.config.version
    }

    /// The connection.
    pub fn stream(&self) -> &Rc<Stream> {
        &self.inner.stream
    }

    /// How many bytes of serialized messages wait for the writer fiber (not yet handed to the
    /// connection). Callers and handlers block while it is over
    /// [`Config::write_buffer_limit`].
    pub fn unsent_bytes(&self) -> usize {
        self.inner.outbox.len()
    }

    /// Whether the connection is still fully open (it may be draining its last answers or
    /// closed otherwise).
    pub fn is_open(&self) -> bool {
        self.inner.state.get() == State::Open
    }

    /// Waits until every message sent so far (calls, notifications, answers) was handed to
    /// the kernel. Call it before [`close`](Self::close) to be sure the last notifications go
    /// out.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until then.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] if the connection closed first, [`Error::Fiber`].
    pub fn flush(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner
            .outbox
            .wait_sent(|| inner.state.get() != State::Closed)?;
        if inner.state.get() == State::Closed {
            return Err(Error::ConnectionLost(inner.reason.borrow().clone()));
        }
        inner
            .stream
            .flush()
            .map_err(|e| Error::ConnectionLost(e.to_string()))
    }

    /// Ends the connection gracefully: waits until every message sent so far was handed to
    /// the kernel, ends this side's writing (over TLS that sends `close_notify`, so the other
    /// end sees a clean end of stream rather than a truncated one), then waits for the other
    /// end to finish its answers and end its side, and closes. New calls fail meanwhile.
    /// [`close`](Self::close) instead drops what is unsent and sends no `close_notify`.
    ///
    /// The wait for the other end lasts at most [`Config::linger_time`]; after it the
    /// connection is closed anyway.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber for the flush and the other end's end of stream.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] if the connection closed or failed before this side's end
    /// went out, [`Error::Fiber`]. The connection is closed in every case.
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_jsonrpc::{Config, Methods, Peer};
    /// use gruvi_stream::{Stream, UnixStream};
    /// use std::rc::Rc;
    ///
    /// fiber_core::run(|| -> Result<(), Box<dyn std::error::Error>> {
    ///     let (a, b) = UnixStream::pair()?;
    ///     let server = Peer::new(Rc::new(Stream::new(a)), Methods::new(), Config::default())?;
    ///     let client = Peer::new(Rc::new(Stream::new(b)), Methods::new(), Config::default())?;
    ///     client.notify("bye", ())?;
    ///     client.shutdown()?; // the notification is sent, then end of stream
    ///     server.join()?;
    ///     assert!(!client.is_open() && !server.is_open());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let ended = self.flush().and_then(|()| {
            inner.write_ended.set(true);
            inner
                .stream
                .write_eof()
                .map_err(|e| Error::ConnectionLost(e.to_string()))
        });
        if let Err(err) = ended {
            inner.close("the connection was shut down");
            return Err(err);
        }
        let waited = fiber_core::timeout(inner.config.linger_time, || self.join());
        inner.close("the connection was shut down");
        match waited {
            Ok(joined) => joined.map_err(Error::from),
            Err(fiber_core::Error::TimedOut) => Ok(()),
            Err(err) => Err(Error::from(err)),
        }
    }

    /// Closes the connection now: pending calls fail, running handlers are cancelled, unsent
    /// messages are dropped ([`flush`](Self::flush) first to send them). Never switches.
    /// Over TLS no `close_notify` is sent: [`shutdown`](Self::shutdown) ends a connection
    /// gracefully.
    pub fn close(&self) {
        self.inner.close("the connection was closed");
    }

    /// Waits until the connection has closed: the other end ended it (after the answers to
    /// its last requests were sent), it broke, it violated the protocol, or
    /// [`close`](Self::close) was called.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until then.
    ///
    /// # Errors
    ///
    /// The fiber was cancelled or timed out.
    pub fn join(&self) -> fiber_core::Result<()> {
        while self.inner.state.get() != State::Closed {
            self.inner.joiners.borrow_mut().push(fiber_core::current());
            fiber_core::park()?;
        }
        Ok(())
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A handle to the same connection that does not keep it open.
    pub(crate) fn handle(&self) -> Peer {
        Peer::borrowed(self.inner.clone())
    }

    /// A handle for a handler: it does not keep the connection open.
    pub(crate) fn borrowed(inner: Rc<Inner>) -> Peer {
        Peer {
            inner,
            _owner: None,
        }
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("version", &self.inner.config.version)
            .field("state", &self.inner.state.get())
            .field("pending_calls", &self.inner.calls.len())
            .finish()
    }
}

impl Inner {
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.write_ended.get() && self.state.get() == State::Open {
            return Err(Error::ConnectionLost(
                "this end shut the connection down".into(),
            ));
        }
        match self.state.get() {
            State::Open => Ok(()),
            _ => Err(Error::ConnectionLost(self.reason.borrow().clone())),
        }
    }

    /// Waits for room in the outbox; fails once the connection is not open.
    pub(crate) fn wait_to_send(&self) -> Result<(), Error> {
        self.check_open()?;
        self.outbox
            .wait_for_room(|| self.state.get() == State::Open)?;
        self.check_open()
    }

    fn call(
        &self,
        method: &str,
        params: &impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        // A timeout too long to add to the clock is no timeout.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.wait_to_send()?;
        let id = self.calls.next_id();
        let mut encoded = Ok(());
        let version = self.config.version;
        self.outbox
            .push(|out| encoded = crate::encode::request(out, version, method, params, Some(id)));
        encoded?;
        let _unregister = self.calls.register(vec![id]);
        let answers = self.calls.wait(&[id], deadline)?;
        answers
            .into_iter()
            .next()
            .flatten()
            .unwrap_or(Err(Error::TimedOut))
    }

    /// Waits while the job queue is full (reading pauses).
    pub(crate) fn wait_for_job_room(&self) -> fiber_core::Result<()> {
        while self.workers.queued() >= self.config.max_queued.max(1) {
            *self.reader_waiting.borrow_mut() = Some(fiber_core::current());
            fiber_core::park()?;
        }
        Ok(())
    }

    /// Waits while the outbox is over its limit and the connection is open.
    pub(crate) fn wait_for_outbox_room(&self) -> fiber_core::Result<()> {
        self.outbox
            .wait_for_room(|| self.state.get() == State::Open)
    }

    /// How many more jobs the queue takes.
    pub(crate) fn job_room(&self) -> usize {
        self.config
            .max_queued
            .max(1)
            .saturating_sub(self.workers.queued())
    }

    /// Nothing more will be received: pending calls fail, handlers finish, the writer sends
    /// their answers and then closes the connection.
    pub(crate) fn stop_reading(&self, why: &str) {
        if self.state.get() != State::Open {
            return;
        }
        self.state.set(State::Draining);
        *self.reason.borrow_mut() = why.to_owned();
        self.fail_pending();
        self.workers.wake_all();
        self.outbox.wake_writer();
        self.outbox.wake_waiters();
    }

    fn fail_pending(&self) {
        self.calls.fail_all(&self.reason.borrow());
    }

    /// Closes the connection now (see [`Peer::close`]). Never switches.
    pub(crate) fn close(&self, why: &str) {
        if self.state.get() == State::Closed {
            return;
        }
        if self.state.get() == State::Open {
            *self.reason.borrow_mut() = why.to_owned();
        }
        self.state.set(State::Closed);
        self.fail_pending();
        self.stream.close();
        self.outbox.clear();
        self.workers.wake_all();
        self.workers.cancel_all();
        let current = fiber_core::current();
        for fiber in self.fibers.borrow().iter() {
            if *fiber.fiber() != current {
                fiber.cancel();
            }
        }
        for joiner in self.joiners.take() {
            joiner.unpark();
        }
    }

    /// Every answer of a draining connection is queued: sends it and end of stream, then
    /// reads and drops what the other end still sends for a moment
    /// ([`Config::linger_time`]), so that closing with unread bytes does not reset the
    /// connection (a reset can destroy the answers before the other end reads them, such as
    /// the error response to a protocol violation).
    fn finish(&self) {
        if self.stream.write_eof().is_ok() {
            let mut dropped = 0;
            let (time, bytes) = (self.config.linger_time, self.config.linger_bytes);
            let mut drain = || -> io::Result<()> {
                while dropped < bytes && self.stream.fill()? {
                    let n = self.stream.with_buffered(|data| data.len());
                    self.stream.consume(n);
                    dropped += n;
                }
                Ok(())
            };
            // A time too long to add to the clock is no limit (linger_bytes still is).
            let _ = match Instant::now().checked_add(time) {
                Some(_) => fiber_core::timeout(time, drain).map_err(io::Error::from),
                None => Ok(drain()),
            };
        }
        let why = self.reason.borrow().clone();
        self.close(&why);
    }

    /// The writer fiber: sends what gathers in the outbox, one write at a time, and closes
    /// the connection once a draining peer has nothing left to send.
    fn write_loop(self: &Rc<Inner>) {
        self.outbox.set_writer(fiber_core::current());
        let mut buf = Vec::new();
        loop {
            if self.outbox.take(&mut buf) {
                self.outbox.set_sending(true);
                let sent = self.stream.write_all(&buf);
                self.outbox.set_sending(false);
                if let Err(err) = sent {
                    if self.state.get() != State::Closed {
                        self.close(&format!("sending failed: {err}"));
                    }
                    return;
                }
                buf.clear();
                continue;
            }
            match self.state.get() {
                State::Closed => return,
                State::Draining if self.workers.is_idle() => {
                    self.finish();
                    return;
                }
                _ => {}
            }
            if self.outbox.park_writer().is_err() {
                return;
            }
        }
    }
}
