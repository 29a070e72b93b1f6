//! [`Connection`]: one authenticated D-Bus connection, client or server side. It sends
//! messages, matches replies to calls by serial, and runs a reader fiber that hands incoming
//! method calls to the exported objects and signals to subscriptions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use dbus::arg::AppendAll;
use dbus::{Message, MessageType};
use fiber_core::{Builder, Callback, JoinHandle, SwitchBack};
use gruvi_stream::{Dispatcher, Stream};

use crate::config::Config;
use crate::error::Error;
use crate::framing::{Frame, MessageFramer, SPEC_MAX_MESSAGE_SIZE, message_timeout_reason};
use crate::message::signal;
use crate::objects::Objects;
use crate::outbox::Outbox;
use crate::server::ServerShared;
use crate::signals::Signals;

/// Which side of the connection this is.
pub(crate) enum Role {
    /// A client: of a bus (after `Hello`) or of a peer.
    Client,
    /// A peer-to-peer server's side: answers `Hello` and a few bus methods itself.
    Server(Rc<ServerShared>),
}

/// An authenticated D-Bus connection (Gruvi's `DbusClient` and the per-client side of
/// `DbusServer`): call methods, emit and receive signals, export objects.
///
/// Cloning gives another handle to the same connection; it closes when
/// [`close`](Self::close) is called, the peer goes away, the peer breaks the protocol, or the
/// last handle is dropped. A reader fiber receives messages: replies wake the fiber waiting
/// in [`call`](Self::call), method calls run in a fiber each (a slow method does not hold up
/// others; at most [`Config::max_concurrent_calls`] at once), signals go to
/// [`Subscription`](crate::Subscription)s and handlers.
///
/// Make one with [`Connection::connect`] (a bus or a peer at an address),
/// [`Connection::session`], [`Connection::system`], or get one from a
/// [`Server`](crate::Server).
///
/// # Examples
///
/// Signals between a peer-to-peer server and its client:
///
/// ```
/// use std::time::Duration;
/// use gruvi_dbus::{Connection, Server};
///
/// fiber_core::run(|| -> Result<(), gruvi_dbus::Error> {
///     let server = Server::new();
///     let dir = tempfile::tempdir().unwrap();
///     let address = server.listen(&format!("unix:dir={}", dir.path().display()))?;
///     let client = Connection::connect(&address)?;
///     let ticks = client.add_match("type='signal',interface='com.example.Clock'")?;
///     server.emit_signal("/com/example/Clock", "com.example.Clock", "Tick", (1u32,))?;
///     let tick = ticks.recv_timeout(Duration::from_secs(5))?;
///     assert_eq!(tick.member().unwrap().to_string(), "Tick");
///     assert_eq!(tick.read1::<u32>().unwrap(), 1);
///     client.close();
///     server.close()
/// })?;
/// # Ok::<(), gruvi_dbus::Error>(())
/// ```
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Rc<Inner>,
}

pub(crate) struct Inner {
    outbox: Rc<Outbox>,
    writer: RefCell<Option<JoinHandle<()>>>,
    pub(crate) config: Config,
    guid: String,
    pub(crate) role: Role,
    peer_uid: Option<u32>,
    pub(crate) unique_name: RefCell<Option<String>>,
    serial: Cell<u32>,
    /// Calls waiting for their reply, by serial.
    pub(crate) pending: RefCell<HashMap<u32, Callback<Result<Message, Error>>>>,
    pub(crate) objects: Rc<Objects>,
    pub(crate) signals: RefCell<Signals>,
    /// Why the connection closed, once it has.
    closed: RefCell<Option<String>>,
    reader: RefCell<Option<JoinHandle<()>>>,
    /// The server side saw `Hello`.
    pub(crate) hello_done: Cell<bool>,
    calls_running: Cell<usize>,
    /// Worker fibers waiting for the next incoming call.
    pub(crate) idle_workers: RefCell<Vec<Callback<Option<Message>>>>,
    call_slot_waiters: RefCell<Vec<Callback<()>>>,
    closed_waiters: RefCell<Vec<Callback<()>>>,
}

impl Connection {
    /// Wraps an authenticated stream and starts its reader and writer fibers.
    pub(crate) fn start(
        stream: Rc<Stream>,
        config: Config,
        guid: String,
        role: Role,
        peer_uid: Option<u32>,
        objects: Rc<Objects>,
    ) -> Result<Connection, Error> {
        stream
            .connection()
            .set_write_timeout(Some(config.write_timeout))?;
        let outbox = Outbox::new(
            stream.clone(),
            config.write_buffer_limit,
            config.close_flush_timeout,
        );
        let inner = Rc::new(Inner {
            outbox: outbox.clone(),
            writer: RefCell::new(None),
            guid,
            role,
            peer_uid,
            unique_name: RefCell::new(None),
            serial: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
            objects,
            signals: RefCell::new(Signals::default()),
            closed: RefCell::new(None),
            reader: RefCell::new(None),
            hello_done: Cell::new(false),
            calls_running: Cell::new(0),
            idle_workers: RefCell::new(Vec::new()),
            call_slot_waiters: RefCell::new(Vec::new()),
            closed_waiters: RefCell::new(Vec::new()),
            config,
        });
        let weak = Rc::downgrade(&inner);
        let max = inner.config.max_message_size.min(SPEC_MAX_MESSAGE_SIZE);
        let message_timeout = inner.config.message_timeout;
        let reader = Builder::new()
            .name("dbus reader")
            .spawn(move || read_loop(weak, stream, max, message_timeout))
            .map_err(Error::Io)?;
        *inner.reader.borrow_mut() = Some(reader);
        let weak = Rc::downgrade(&inner);
        let writer = outbox.start(move |reason| {
            if let Some(inner) = weak.upgrade() {
                inner.shutdown(reason, false);
            }
        })?;
        *inner.writer.borrow_mut() = Some(writer);
        Ok(Connection { inner })
    }

    /// The server's GUID, as it was sent during authentication.
    pub fn server_guid(&self) -> &str {
        &self.inner.guid
    }

    /// The unique name the bus gave this connection (`:1.42`), or, on a peer-to-peer server,
    /// the one this side gave the client. `None` for a client of a peer-to-peer server that
    /// sent no `Hello`.
    pub fn unique_name(&self) -> Option<String> {
        self.inner.unique_name.borrow().clone()
    }

    /// The uid the peer authenticated as, on the server side of a Unix-socket connection.
    pub fn peer_uid(&self) -> Option<u32> {
        self.inner.peer_uid
    }

    /// The connection's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    /// Closes the connection: pending calls fail with [`Error::Disconnected`], the reader
    /// fiber stops, messages already sent go out (for at most
    /// [`Config::close_flush_timeout`]) before the
    /// socket closes. Never switches.
    pub fn close(&self) {
        self.inner.shutdown("closed by this side".into(), true);
        if let Some(reader) = self.inner.reader.borrow_mut().take() {
            reader.cancel();
        }
    }

    /// Waits until the connection is closed (by either side) and returns why.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the connection closes.
    ///
    /// # Errors
    ///
    /// The calling fiber's cancellation.
    pub fn wait_closed(&self) -> Result<String, Error> {
        loop {
            if let Some(reason) = self.inner.closed.borrow().clone() {
                return Ok(reason);
            }
            let sb = SwitchBack::new();
            self.inner.closed_waiters.borrow_mut().push(sb.callback());
            sb.wait()?;
        }
    }

    /// Sends `message` with the next serial, which it returns; a reply to it, if any, is not
    /// waited for (it is dropped when it comes, unless it is a call's).
    ///
    /// # Switchpoint
    ///
    /// Blocks while the send queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] once closed, [`Error::InvalidInput`] for a message over the
    /// specification's 128 MiB, the connection's I/O error.
    pub fn send(&self, message: Message) -> Result<u32, Error> {
        let serial = self.inner.next_serial();
        self.inner.write(message, serial)?;
        Ok(serial)
    }

    /// Emits a signal from the object at `path`.
    ///
    /// # Switchpoint
    ///
    /// Blocks while the send queue is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); [`Error::InvalidInput`] for a bad path, interface or name.
    pub fn emit_signal<A: AppendAll>(
        &self,
        path: &str,
        interface: &str,
        name: &str,
        args: A,
    ) -> Result<(), Error> {
        let mut message = signal(path, interface, name)?;
        message.append_all(args);
        self.send(message).map(drop)
    }

    /// Answers `call` with `reply` unless the caller asked for no reply.
    pub(crate) fn reply_to(&self, call: &Message, reply: Message) -> Result<(), Error> {
        if call.get_no_reply() {
            return Ok(());
        }
        self.send(reply).map(drop)
    }
}

impl Inner {
    pub(crate) fn next_serial(&self) -> u32 {
        let next = match self.serial.get().wrapping_add(1) {
            0 => 1,
            n => n,
        };
        self.serial.set(next);
        next
    }

    pub(crate) fn check_open(&self) -> Result<(), Error> {
        match &*self.closed.borrow() {
            Some(reason) => Err(Error::Disconnected(reason.clone())),
            None => Ok(()),
        }
    }

    /// Marshals `message` with `serial` and queues it.
    pub(crate) fn write(&self, mut message: Message, serial: u32) -> Result<(), Error> {
        self.check_open()?;
        message.set_serial(serial);
        self.outbox.push(&message).map_err(|err| match err {
            Error::Disconnected(_) => self.disconnected(),
            other => other,
        })
    }

    fn disconnected(&self) -> Error {
        let reason = self.closed.borrow().clone();
        Error::Disconnected(reason.unwrap_or_else(|| "the connection is closed".into()))
    }

    /// Closes the connection once, waking every waiter with `reason`; with `flush`, messages
    /// already queued are sent before the socket closes.
    pub(crate) fn shutdown(&self, reason: String, flush: bool) {
        if self.closed.borrow().is_some() {
            return;
        }
        *self.closed.borrow_mut() = Some(reason.clone());
        if flush {
            self.outbox.close_after_flush();
        } else {
            self.outbox.close_now();
        }
        let pending: Vec<_> = self.pending.borrow_mut().drain().collect();
        for (_, waiter) in pending {
            waiter.call(Err(Error::Disconnected(reason.clone())));
        }
        self.signals.borrow_mut().close();
        for waiter in self.closed_waiters.take() {
            waiter.call(());
        }
        for waiter in self.call_slot_waiters.take() {
            waiter.call(());
        }
        for worker in self.idle_workers.take() {
            worker.call(None);
        }
    }

    /// In the reader: a reply wakes its call; everything else goes on to `dispatch`.
    fn route(&self, frame: Frame) -> Option<Frame> {
        let Frame::Message(message) = &frame else {
            return None;
        };
        if !matches!(
            message.msg_type(),
            MessageType::MethodReturn | MessageType::Error
        ) {
            return Some(frame);
        }
        let waiter = message
            .get_reply_serial()
            .and_then(|serial| self.pending.borrow_mut().remove(&serial));
        if let (Some(waiter), Frame::Message(message)) = (waiter, frame) {
            waiter.call(Ok(message));
        }
        // A reply nobody waits for (timed out, or to a message sent with `send`) is dropped.
        None
    }

    /// Waits for a free slot for an incoming call's fiber.
    pub(crate) fn acquire_call_slot(&self) -> Result<(), Error> {
        while self.calls_running.get() >= self.config.max_concurrent_calls.max(1) {
            self.check_open()?;
            let sb = SwitchBack::new();
            self.call_slot_waiters.borrow_mut().push(sb.callback());
            sb.wait()?;
        }
        self.check_open()?;
        self.calls_running.set(self.calls_running.get() + 1);
        Ok(())
    }

    pub(crate) fn release_call_slot(&self) {
        self.calls_running.set(self.calls_running.get() - 1);
        let waiter = self.call_slot_waiters.borrow_mut().pop();
        if let Some(waiter) = waiter {
            waiter.call(());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown("the last handle was dropped".into(), true);
        if let Some(reader) = self.reader.get_mut().take() {
            reader.cancel();
        }
        // The writer sends what is queued and closes the socket on its own.
        drop(self.writer.get_mut().take());
    }
}

/// Removes a call's entry from the pending map when its wait ends.
pub(crate) struct ForgetPending<'a>(pub(crate) &'a Inner, pub(crate) u32);

impl Drop for ForgetPending<'_> {
    fn drop(&mut self) {
        self.0.pending.borrow_mut().remove(&self.1);
    }
}

/// The reader fiber: decodes messages until the stream ends or breaks the protocol, then
/// closes the connection with the reason.
fn read_loop(weak: Weak<Inner>, stream: Rc<Stream>, max: usize, message_timeout: Duration) {
    let route = weak.clone();
    let framer = MessageFramer::new(max).with_timeout(stream.clone(), message_timeout);
    let dispatcher = Dispatcher::new(framer)
        .max_message_size(max)
        .route(move |frame| route.upgrade().and_then(|inner| inner.route(frame)));
    let result = dispatcher.run(stream, |frame| match weak.upgrade() {
        Some(inner) => crate::dispatch::dispatch(&Connection { inner }, frame),
        None => Err(Error::Disconnected("the last handle was dropped".into())),
    });
    if let Some(inner) = weak.upgrade() {
        let reason = match result {
            Ok(()) => "the peer closed the connection".to_owned(),
            // The message timeout is the only read timeout of an authenticated connection.
            Err(Error::TimedOut) => {
                Error::Protocol(message_timeout_reason(message_timeout)).to_string()
            }
            Err(err) => err.to_string(),
        };
        inner.shutdown(reason, false);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("unique_name", &self.unique_name())
            .field("server_guid", &self.inner.guid)
            .field("closed", &*self.inner.closed.borrow())
            .finish()
    }
}
