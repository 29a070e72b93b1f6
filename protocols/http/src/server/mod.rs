//! [`Server`]: an HTTP/1.1 server running a handler per request in the fiber serving its
//! connection.

mod config;
mod conn;
mod respond;
mod runner;
mod workers;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{Builder, JoinHandle};
use gruvi_stream::{Address, Connection, TcpListener, UnixListener, lookup_host};
use http::{Request, Response};

pub use config::ServerConfig;
pub use workers::Workers;

use crate::body::Body;
use crate::incoming::Incoming;
use crate::wire::Wire;
use conn::ConnState;

/// A server's handler, in one of its two shapes.
pub(crate) enum Handler {
    /// Gets the request, returns the response ([`Server::new`]).
    Owned(Box<OwnedHandler>),
    /// Fills a reused response from the parsed request itself ([`Server::in_place`]).
    InPlace(Box<InPlaceHandler>),
}

/// An owned handler (gets the request with its body still to be read, returns the response)
/// as the server calls it: on the head of a request, whether a body follows, and the slot for
/// the response (see `conn::handler`).
pub(crate) type OwnedHandler =
    dyn Fn(&Rc<Wire>, Box<crate::head::RequestHead<Incoming>>, bool, &mut Option<Response<Body>>);

/// An in-place handler as the user gave it: the parsed request (its body put in) and a reused
/// response are prepared around each call in non-generic code, and nothing is moved into or
/// out of it.
pub(crate) type InPlaceHandler = dyn Fn(&mut Request<Incoming>, &mut Response<Body>);

/// Turns an accepted connection into the one to serve (TLS wraps it here).
pub(crate) type Wrapper = dyn Fn(Rc<dyn Connection>) -> io::Result<Rc<dyn Connection>>;

/// The first and the longest pause after an accept error such as running out of descriptors.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// An HTTP/1.1 server (Gruvi's `HttpServer`): listens on TCP and Unix sockets and serves each
/// connection in a fiber, calling the handler for each request in that fiber.
///
/// A connection has a fiber of its own from its accept to its first wait for a request head.
/// From then on, a kept-alive connection (TCP, Unix, or TLS over either) waiting for its next
/// request with nothing received holds no fiber (nor a stack): when bytes come, one of a few
/// runner fibers serves it until it waits idle again. A handler may block as it likes; the
/// runner blocks with it and another serves the other connections. So idle connections cost
/// only their buffers, and requests run on a stack still in cache. Fiber-locals
/// ([`fiber_core::FiberLocal`]) a handler sets last until its connection next waits idle, at
/// the latest: they never reach another connection's handler. A connection whose
/// [`Connection`] cannot wait without a fiber (see [`Connection::notify_when_filled`]: a
/// custom wrapper, say) keeps its fiber throughout.
///
/// The handler gets an [`http::Request`] whose body ([`Incoming`]) is read as it arrives and
/// returns an [`http::Response`] with a [`Body`]. Everything else is the server's: keep-alive
/// and HTTP/1.0, pipelining (answers in order, sent together; a client that does not read
/// cannot make the server buffer without bound), HEAD and 1xx/204/304 without a body,
/// `100 Continue`, `Date` and `Server`, and an error status followed by a close for every
/// request that breaks the protocol or a [limit](crate::Limits) (400, 408, 413, 414, 417, 431,
/// 501, 505). A panic in the handler is answered 500; the server lives on.
///
/// A handler comes in two shapes: one that gets the request and returns a response
/// ([`Server::new`], the plainer one), and one that fills in a response the server reuses,
/// from a request it reuses ([`Server::in_place`], cheaper per request).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use gruvi_http::{Body, Server};
/// use gruvi_http::http::Response;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let server = Server::new(|request| {
///         Response::new(Body::from(format!("you asked for {}", request.uri().path())))
///     });
///     server.listen(&"127.0.0.1:0".parse()?)?;
///     let addr = server.addresses()[0].to_string();
///     let mut conn = gruvi_stream::TcpStream::connect(addr.as_str())?;
///     conn.write_all(b"GET /fibers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
///     let mut answer = String::new();
///     conn.read_to_string(&mut answer)?;
///     assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
///     assert!(answer.ends_with("\r\n\r\nyou asked for /fibers"));
///     server.close()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    shared: Rc<Shared>,
}

/// What the server, its accepting fibers and its connection fibers share.
pub(crate) struct Shared {
    pub(crate) handler: Handler,
    pub(crate) config: ServerConfig,
    /// `server: <name>` and its CRLF, written as it is.
    pub(crate) server_line: Option<Vec<u8>>,
    /// `config.default_headers`, encoded.
    pub(crate) defaults: respond::Defaults,
    wrapper: RefCell<Option<Rc<Wrapper>>>,
    /// Shutting down: no new requests on kept-alive connections.
    pub(crate) closing: Cell<bool>,
    listeners: RefCell<Vec<Rc<Listener>>>,
    acceptors: RefCell<Vec<JoinHandle<()>>>,
    connections: RefCell<BTreeMap<u64, Entry>>,
    next_id: Cell<u64>,
    /// Fibers waiting for the last connection to end.
    drained: RefCell<Vec<fiber_core::Fiber>>,
    /// The idle waits in ticks (see `deadline_tick`): a connection's first head, and a
    /// kept-alive connection's next one.
    idle_ticks: (u64, u64),
    /// The sweeper's coarse clock: ticks of `tick_len` since it started.
    tick: Cell<u64>,
    tick_len: Duration,
    /// The fiber closing connections idle for too long.
    sweeper: RefCell<Option<JoinHandle<()>>>,
    /// The fibers serving connections that waited idle without one.
    runners: runner::Runners,
}

struct Entry {
    conn: Rc<dyn Connection>,
    state: Rc<ConnState>,
    fiber: Option<JoinHandle<()>>,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl Server {
    /// A server calling `handler` for each request, with the default [`ServerConfig`].
    pub fn new(handler: impl Fn(Request<Incoming>) -> Response<Body> + 'static) -> Server {
        Server::with_config(handler, ServerConfig::default())
    }

    /// A server with its own settings.
    pub fn with_config(
        handler: impl Fn(Request<Incoming>) -> Response<Body> + 'static,
        config: ServerConfig,
    ) -> Server {
        Server::build(Handler::Owned(conn::handler(handler)), config)
    }

    /// A server calling `handler` with a request and a response that it reuses from one
    /// exchange to the next, with the default [`ServerConfig`]; the handler fills in the
    /// response.
    ///
    /// The server keeps requests and responses for reuse, per thread (the ones the thread's
    /// last exchange gave back, whose memory is likely still in cache), and gives them back
    /// once the response is written. The request is the one the server parsed the head into:
    /// its method, target, version and header fields the new request's (its header map keeps
    /// its allocation, and is left as it is when it holds these very fields already), no
    /// extensions, and its body the new request's [`Incoming`]; the response is a fresh one:
    /// `200 OK`, HTTP/1.1, no header fields (the map keeps its allocation), no extensions, an
    /// empty body. After the call the response is written exactly as a response returned by
    /// a [`Server::new`] handler would be, and the bodies and extensions of both are let go.
    /// Nothing of one exchange is seen by the next: whatever the handler leaves in either,
    /// the next call gets them rewritten and reset. A handler may also take or replace parts
    /// (`std::mem::take` the body or a header map, assign a whole new response): that works
    /// as well, only the allocation is not reused then. Exchanges that run at the same time
    /// (handlers that wait) each have their own request and response.
    ///
    /// Everything else is as with [`Server::new`]: limits and error answers, `100 Continue`
    /// on the first read of the body, an unread body skipped, timeouts, graceful shutdown, and
    /// a panic in the handler answered 500 (the connection is then closed, and the request
    /// and response of the exchange are dropped, not reused).
    ///
    /// Which to choose: a handler that returns its response is the plainer code and can move
    /// the request (its body, its fields) anywhere; an in-place handler costs less per request:
    /// no header map is built or freed, and nothing large is moved (a pipelined hello-world
    /// request takes about a fifth fewer instructions, see the HTTP section of the design
    /// notes). That matters when requests are small and many. A field most responses carry
    /// costs less as one of [`ServerConfig::default_headers`] (bytes encoded once) than as an
    /// `insert` per response.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use gruvi_http::{Body, Server};
    /// use gruvi_http::http::header::{CONTENT_TYPE, HeaderValue};
    /// use gruvi_http::http::StatusCode;
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let server = Server::in_place(|request, response| {
    ///         if request.uri().path() == "/hello" {
    ///             let plain = HeaderValue::from_static("text/plain");
    ///             response.headers_mut().insert(CONTENT_TYPE, plain);
    ///             *response.body_mut() = Body::from("Hello, World!");
    ///         } else {
    ///             *response.status_mut() = StatusCode::NOT_FOUND;
    ///         }
    ///     });
    ///     server.listen(&"127.0.0.1:0".parse()?)?;
    ///     let addr = server.addresses()[0].to_string();
    ///     let mut conn = gruvi_stream::TcpStream::connect(addr.as_str())?;
    ///     conn.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\
    ///                      GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    ///     let mut answers = String::new();
    ///     conn.read_to_string(&mut answers)?;
    ///     let (first, second) = answers.split_at(answers.find("HTTP/1.1 404").unwrap());
    ///     assert!(first.starts_with("HTTP/1.1 200 OK\r\n"));
    ///     assert!(first.contains("content-type: text/plain\r\n"));
    ///     assert!(first.ends_with("\r\n\r\nHello, World!"));
    ///     // The second response has nothing of the first's.
    ///     assert!(!second.contains("content-type"));
    ///     assert!(second.ends_with("content-length: 0\r\nconnection: close\r\n\r\n"));
    ///     server.close()
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn in_place(
        handler: impl Fn(&mut Request<Incoming>, &mut Response<Body>) + 'static,
    ) -> Server {
        Server::in_place_with_config(handler, ServerConfig::default())
    }

    /// A server with its own settings calling an in-place handler (see
    /// [`in_place`](Self::in_place)).
    pub fn in_place_with_config(
        handler: impl Fn(&mut Request<Incoming>, &mut Response<Body>) + 'static,
        config: ServerConfig,
    ) -> Server {
        Server::build(Handler::InPlace(Box::new(handler)), config)
    }

    fn build(handler: Handler, config: ServerConfig) -> Server {
        let shortest = config.head_timeout.min(config.keep_alive_timeout);
        let tick_len = (shortest / 8).clamp(Duration::from_millis(5), Duration::from_secs(1));
        let wrapper = config.tls.clone().map(crate::tls::wrapper);
        let server_line = config
            .server_name
            .as_ref()
            .map(|name| format!("server: {name}\r\n").into_bytes());
        let defaults = respond::Defaults::new(&config.default_headers, server_line.as_deref());
        let idle_ticks = (
            ticks(config.head_timeout, tick_len),
            ticks(config.keep_alive_timeout, tick_len),
        );
        Server {
            shared: Rc::new(Shared {
                handler,
                server_line,
                defaults,
                config,
                idle_ticks,
                tick: Cell::new(1),
                tick_len,
                sweeper: RefCell::new(None),
                runners: runner::Runners::default(),
                wrapper: RefCell::new(wrapper),
                closing: Cell::new(false),
                listeners: RefCell::new(Vec::new()),
                acceptors: RefCell::new(Vec::new()),
                connections: RefCell::new(BTreeMap::new()),
                next_id: Cell::new(1),
                drained: RefCell::new(Vec::new()),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Sets a function every accepted connection goes through, in its own fiber, before its
    /// first request; what it returns is served. This is where HTTPS plugs in: a TLS server
    /// stream (which implements [`Connection`]) wraps the accepted connection and does its
    /// handshake here. An error closes the connection.
    pub fn set_connection_wrapper(
        &self,
        wrapper: impl Fn(Rc<dyn Connection>) -> io::Result<Rc<dyn Connection>> + 'static,
    ) {
        *self.shared.wrapper.borrow_mut() = Some(Rc::new(wrapper));
    }

    /// Starts listening on `addr`: every address a host name resolves to, or a Unix socket
    /// path. May be called again for more addresses.
    ///
    /// # Switchpoint
    ///
    /// Host names are looked up through libuv.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, a lookup error, or the error of spawning the accepting fiber.
    pub fn listen(&self, addr: &Address) -> io::Result<()> {
        match addr {
            Address::Tcp(host, port) => {
                let mut first_error = None;
                let mut bound = 0;
                for addr in lookup_host(host, *port)? {
                    match TcpListener::bind(addr) {
                        Ok(listener) => {
                            self.accept_on(Listener::Tcp(listener))?;
                            bound += 1;
                        }
                        Err(err) => {
                            first_error.get_or_insert(err);
                        }
                    }
                }
                match first_error {
                    Some(err) if bound == 0 => Err(err),
                    _ => Ok(()),
                }
            }
            Address::Unix(path) => {
                let listener = UnixListener::bind(path)?;
                self.accept_on(Listener::Unix(listener, path.clone()))
            }
        }
    }

    /// Starts listening on `addr` with `SO_REUSEPORT`: several servers (one per thread, see
    /// [`Workers`]) can listen on the same address and the kernel spreads the connections.
    ///
    /// # Errors
    ///
    /// `AddrInUse` (a listener without `SO_REUSEPORT` holds the address), the error of
    /// spawning the accepting fiber.
    pub fn listen_reuse_port(&self, addr: SocketAddr) -> io::Result<()> {
        self.accept_on(Listener::Tcp(TcpListener::bind_reuse_port(addr)?))
    }

    fn accept_on(&self, listener: Listener) -> io::Result<()> {
        let listener = Rc::new(listener);
        let (shared, l) = (self.shared.clone(), listener.clone());
        let acceptor = Builder::new()
            .name(format!("http accept {}", listener.address()?))
            .spawn(move || accept_loop(&shared, &l))?;
        self.shared.listeners.borrow_mut().push(listener);
        self.shared.acceptors.borrow_mut().push(acceptor);
        Ok(())
    }

    /// Serves a connection accepted elsewhere, in a new fiber, as if it had been accepted by
    /// this server (the connection limit and the wrapper apply).
    pub fn serve_connection(&self, conn: Rc<dyn Connection>) {
        self.shared.start(conn);
    }

    /// The addresses listened on, with the ports the system chose for port 0.
    pub fn addresses(&self) -> Vec<Address> {
        let listeners = self.shared.listeners.borrow();
        listeners.iter().filter_map(|l| l.address().ok()).collect()
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.borrow().len()
    }

    /// Stops accepting and closes every connection at once (requests in progress are cut
    /// off), then waits for their fibers. A handler may close its own server: its own fiber
    /// is neither cancelled nor waited for.
    ///
    /// # Switchpoint
    ///
    /// Waits for the accepting and connection fibers to finish.
    ///
    /// # Errors
    ///
    /// The calling fiber's own cancellation; the server is stopped anyway.
    pub fn close(&self) -> io::Result<()> {
        self.stop(false)
    }

    /// [`close`](Self::close); with `spare_own`, the connection whose handler calls this (a
    /// graceful shutdown from a handler) is left to finish its response.
    fn stop(&self, spare_own: bool) -> io::Result<()> {
        self.shared.closing.set(true);
        let accepting = self.stop_accepting();
        let connections = std::mem::take(&mut *self.shared.connections.borrow_mut());
        let caller = fiber_core::current();
        let me = caller.id();
        // Everything is cancelled before anything is waited for, so that the server is stopped
        // even when a wait fails (the caller cancelled). The calling fiber (a handler closing
        // its own server) is not cancelled or waited for.
        // The runners stop first: a connection waiting idle that its close below tells is
        // dropped then, not queued; those being served are cut off with their runner.
        let mut fibers: Vec<JoinHandle<()>> = self.shared.runners.stop();
        for (id, entry) in connections {
            if spare_own && entry.state.is_served_by(&caller) {
                // Closed and forgotten when its exchange ends (`closing` makes it the last).
                self.shared.connections.borrow_mut().insert(id, entry);
                continue;
            }
            entry.conn.close();
            fibers.extend(entry.fiber);
        }
        fibers.extend(self.shared.sweeper.borrow_mut().take());
        fibers.retain(|fiber| fiber.fiber().id() != me);
        for fiber in &fibers {
            fiber.cancel();
        }
        let mut result = accepting;
        for fiber in fibers {
            if let Err(err) = fiber.join()
                && let Some(wait) = err.wait_error()
                && result.is_ok()
            {
                result = Err(wait.into());
            }
        }
        result
    }

    /// Graceful shutdown: stops accepting, closes idle kept-alive connections at once, lets
    /// requests in progress finish (their responses say `Connection: close`) for up to
    /// `grace`, then closes what is left as [`close`](Self::close) does.
    ///
    /// A handler may shut down its own server: its own request is not waited for (it could
    /// not finish while the handler waits), and it is not cut off either. Its response goes
    /// out, with `Connection: close`, after the handler returns, and then its connection
    /// closes.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `grace`, then as [`close`](Self::close).
    ///
    /// # Errors
    ///
    /// As [`close`](Self::close).
    pub fn shutdown(&self, grace: Duration) -> io::Result<()> {
        self.shared.closing.set(true);
        self.stop_accepting()?;
        let deadline = fiber_core::deadline_after(grace);
        let caller = fiber_core::current();
        loop {
            let (mut busy, mut own) = (false, false);
            for entry in self.shared.connections.borrow().values() {
                if entry.state.is_idle() {
                    entry.conn.close();
                } else if entry.state.is_served_by(&caller) {
                    // The calling handler's own request: it finishes after this returns.
                    own = true;
                } else {
                    busy = true;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let open = self.shared.connections.borrow().len();
            if !busy && open == usize::from(own) || left.is_zero() {
                break;
            }
            self.shared.drained.borrow_mut().push(fiber_core::current());
            let parked = fiber_core::park_timeout(left.min(Duration::from_millis(50)));
            match parked {
                Ok(()) | Err(fiber_core::Error::TimedOut) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.stop(true)
    }

    fn stop_accepting(&self) -> io::Result<()> {
        for listener in self.shared.listeners.take() {
            listener.close();
        }
        for acceptor in self.shared.acceptors.take() {
            if let Err(err) = acceptor.join()
                && let Some(wait) = err.wait_error()
            {
                return Err(wait.into());
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    /// Stops listening and closes the connections, without waiting.
    fn drop(&mut self) {
        self.shared.closing.set(true);
        for listener in self.shared.listeners.take() {
            listener.close();
        }
        for acceptor in self.shared.acceptors.take() {
            acceptor.cancel();
        }
        if let Some(sweeper) = self.shared.sweeper.borrow_mut().take() {
            sweeper.cancel();
        }
        // Not the calling fiber, should a handler drop its server.
        let me = fiber_core::current().id();
        let cancel = |fiber: &JoinHandle<()>| {
            if fiber.fiber().id() != me {
                fiber.cancel();
            }
        };
        // The runners stop first, as in `close`.
        self.shared.runners.stop().iter().for_each(cancel);
        let connections = std::mem::take(&mut *self.shared.connections.borrow_mut());
        for entry in connections.values() {
            entry.conn.close();
            entry.fiber.iter().for_each(cancel);
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addresses", &self.addresses())
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl Shared {
    /// Serves a new connection in a fiber of its own (until it first waits idle, see
    /// `runner`), or closes it when the server is full.
    fn start(self: &Rc<Shared>, conn: Rc<dyn Connection>) {
        if self.connections.borrow().len() >= self.config.max_connections || self.closing.get() {
            conn.close();
            return;
        }
        self.start_sweeper();
        let id = self.next_id.replace(self.next_id.get() + 1);
        let state = Rc::new(ConnState {
            idle_until: Cell::new(0),
            fiber: Cell::new(0),
        });
        let (shared, c, s) = (self.clone(), conn.clone(), state.clone());
        let spawned = Builder::new().spawn(move || {
            let finished = Finished {
                shared: Some(shared.clone()),
                id,
            };
            let wrapper = shared.wrapper.borrow().clone();
            let conn = match wrapper {
                None => c,
                Some(wrap) => match wrap(c.clone()) {
                    Ok(conn) => conn,
                    Err(_) => {
                        c.close();
                        return;
                    }
                },
            };
            if let Some(entry) = shared.connections.borrow_mut().get_mut(&id) {
                entry.conn = conn.clone();
            }
            let wire = Rc::new(Wire::new(conn, conn::parser(&shared)));
            // From here the task forgets the connection when it is dropped.
            finished.disarm();
            let task = Rc::new(runner::Task {
                shared: shared.clone(),
                wire,
                state: s,
                first: Cell::new(true),
                id,
            });
            task.run(fiber_core::current().id(), false);
            // Over, or waiting without a fiber: this one ends, and its record need not stay
            // with the connection.
            if let Some(entry) = shared.connections.borrow_mut().get_mut(&id) {
                entry.fiber = None;
            }
        });
        match spawned {
            Ok(fiber) => {
                let entry = Entry {
                    conn,
                    state,
                    fiber: Some(fiber),
                };
                self.connections.borrow_mut().insert(id, entry);
            }
            Err(_) => conn.close(),
        }
    }
}

/// How many ticks of `tick_len` cover `limit` (rounded up).
fn ticks(limit: Duration, tick_len: Duration) -> u64 {
    let ticks = limit.as_nanos().div_ceil(tick_len.as_nanos().max(1));
    u64::try_from(ticks).unwrap_or(u64::MAX / 2)
}

impl Shared {
    /// The sweeper tick by which the idle wait for a connection's first head (`head_timeout`)
    /// or its next one (`keep_alive_timeout`) is over: at least that long from now, whatever
    /// the phase of the clock (the waits in ticks are computed once).
    pub(crate) fn idle_deadline_tick(&self, first: bool) -> u64 {
        let (head, keep_alive) = self.idle_ticks;
        self.tick.get() + if first { head } else { keep_alive } + 1
    }

    /// Starts the fiber that closes idle connections, unless it runs.
    fn start_sweeper(self: &Rc<Shared>) {
        if self.sweeper.borrow().is_some() {
            return;
        }
        let weak = Rc::downgrade(self);
        let tick_len = self.tick_len;
        let spawned = Builder::new().name("http sweeper").spawn(move || {
            while fiber_core::sleep(tick_len).is_ok() {
                let Some(shared) = weak.upgrade() else { return };
                let now = shared.tick.get() + 1;
                shared.tick.set(now);
                shared.runners.retry(&shared);
                for entry in shared.connections.borrow().values() {
                    let until = entry.state.idle_until.get();
                    if until != 0 && now >= until {
                        entry.conn.close();
                    }
                }
            }
        });
        if let Ok(sweeper) = spawned {
            *self.sweeper.borrow_mut() = Some(sweeper);
        }
    }
}

/// Closes a connection and forgets it when its fiber ends before it has a task (see
/// `runner::Task`, which does the same when dropped).
struct Finished {
    /// `None` once disarmed.
    shared: Option<Rc<Shared>>,
    id: u64,
}

impl Finished {
    fn disarm(mut self) {
        self.shared = None;
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.forget(self.id);
        }
    }
}

impl Shared {
    /// Closes the connection `id` and forgets it: it is over.
    pub(crate) fn forget(&self, id: u64) {
        let entry = self.connections.borrow_mut().remove(&id);
        if let Some(entry) = entry {
            entry.conn.close();
        }
        for waiter in self.drained.take() {
            waiter.unpark();
        }
    }
}

impl Listener {
    fn accept(&self) -> io::Result<Rc<dyn Connection>> {
        match self {
            Listener::Tcp(listener) => {
                // Without the peer's address: a handler asks the connection when it wants it.
                let conn = listener.incoming().next().expect("an endless iterator")?;
                // Request-response traffic would stall on delayed acknowledgements otherwise.
                let _ = conn.set_nodelay(true);
                Ok(Rc::new(conn))
            }
            Listener::Unix(listener, _) => Ok(Rc::new(listener.accept()?.0)),
        }
    }

    fn address(&self) -> io::Result<Address> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(Address::from),
            Listener::Unix(_, path) => Ok(Address::Unix(path.clone())),
        }
    }

    fn close(&self) {
        match self {
            Listener::Tcp(listener) => listener.close(),
            Listener::Unix(listener, _) => listener.close(),
        }
    }
}

/// Accepts connections until the listener closes or the fiber is cancelled.
fn accept_loop(shared: &Rc<Shared>, listener: &Listener) {
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        match listener.accept() {
            Ok(conn) => {
                backoff = ACCEPT_BACKOFF.0;
                shared.start(conn);
            }
            Err(err) if fiber_core::Error::from_io(&err).is_some() => return,
            Err(err) if err.kind() == io::ErrorKind::NotConnected && shared.closing.get() => return,
            Err(err) if is_peer_gone(&err) => {}
            // Out of descriptors or memory: give the connections time to release some.
            Err(_) => {
                if shared.closing.get() || fiber_core::sleep(backoff).is_err() {
                    return;
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }
}

fn is_peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}
