//! [`Workers`]: one server per thread, each with its own Hub, on one `SO_REUSEPORT` address.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use fiber_core::Event;
use http::{Request, Response};

use super::{Server, ServerConfig};
use crate::body::Body;
use crate::incoming::Incoming;

/// A multi-core HTTP server: `n` threads, each running its own Hub and [`Server`] with a
/// listener bound to the same address with `SO_REUSEPORT`, so that the kernel spreads the
/// connections over them. Each thread builds its handler with `make_handler` (handlers
/// need not be `Send`): one that returns its response ([`start`](Self::start), see
/// [`Server::new`]) or one that fills in a reused response ([`start_in_place`](Self::start_in_place),
/// see [`Server::in_place`]).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use gruvi_http::{Body, ServerConfig, Workers};
/// use gruvi_http::http::Response;
///
/// let workers = Workers::start(2, "127.0.0.1:0".parse()?, ServerConfig::default(), || {
///     |_request| Response::new(Body::from("hi"))
/// })?;
/// let mut conn = std::net::TcpStream::connect(workers.local_addr())?;
/// conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
/// let mut answer = String::new();
/// conn.read_to_string(&mut answer)?;
/// assert!(answer.ends_with("\r\n\r\nhi"));
/// workers.stop(Duration::from_secs(1))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Workers {
    addr: SocketAddr,
    stop: Arc<Event>,
    /// The grace period of the shutdown, in milliseconds, set before `stop`.
    grace: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<io::Result<()>>>,
}

impl Workers {
    /// Starts `n` worker threads (at least one) serving `addr` (port 0: one port the system
    /// picks, shared by all).
    ///
    /// Not a switchpoint: it blocks the calling thread (and any other fibers of its Hub) until
    /// every worker listens or one failed, so call it from a thread's own code rather than
    /// from a fiber that shares its Hub with other work.
    ///
    /// # Errors
    ///
    /// The first worker's error binding the address or starting.
    pub fn start<F, H>(
        n: usize,
        addr: SocketAddr,
        config: ServerConfig,
        make_handler: F,
    ) -> io::Result<Workers>
    where
        F: Fn() -> H + Send + Sync + 'static,
        H: Fn(Request<Incoming>) -> Response<Body> + 'static,
    {
        let make_server = move |config| Server::with_config(make_handler(), config);
        Workers::start_with(n, addr, config, Arc::new(make_server))
    }

    /// Starts `n` worker threads (at least one) serving `addr` (port 0: one port the system
    /// picks, shared by all) with in-place handlers (see [`Server::in_place`]).
    ///
    /// Not a switchpoint: it blocks the calling thread (and any other fibers of its Hub) until
    /// every worker listens or one failed, so call it from a thread's own code rather than
    /// from a fiber that shares its Hub with other work.
    ///
    /// # Errors
    ///
    /// The first worker's error binding the address or starting.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::time::Duration;
    /// use gruvi_http::{Body, ServerConfig, Workers};
    ///
    /// let config = ServerConfig::default();
    /// let workers = Workers::start_in_place(2, "127.0.0.1:0".parse()?, config, || {
    ///     |_request: &mut _, response: &mut gruvi_http::http::Response<Body>| {
    ///         *response.body_mut() = Body::from("hi");
    ///     }
    /// })?;
    /// let mut conn = std::net::TcpStream::connect(workers.local_addr())?;
    /// conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    /// let mut answer = String::new();
    /// conn.read_to_string(&mut answer)?;
    /// assert!(answer.ends_with("\r\n\r\nhi"));
    /// workers.stop(Duration::from_secs(1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_in_place<F, H>(
        n: usize,
        addr: SocketAddr,
        config: ServerConfig,
        make_handler: F,
    ) -> io::Result<Workers>
    where
        F: Fn() -> H + Send + Sync + 'static,
        H: Fn(&mut Request<Incoming>, &mut Response<Body>) + 'static,
    {
        let make_server = move |config| Server::in_place_with_config(make_handler(), config);
        Workers::start_with(n, addr, config, Arc::new(make_server))
    }

    /// Starts the threads, each with the server `make_server` makes on it.
    fn start_with(
        n: usize,
        addr: SocketAddr,
        config: ServerConfig,
        make_server: Arc<MakeServer>,
    ) -> io::Result<Workers> {
        let stop = Arc::new(Event::new());
        let grace = Arc::new(AtomicU64::new(0));
        let mut workers = Workers {
            addr,
            stop: stop.clone(),
            grace: grace.clone(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let (ready, started) = mpsc::channel();
            let (make, stop, grace, config, bind) = (
                make_server.clone(),
                stop.clone(),
                grace.clone(),
                config.clone(),
                workers.addr,
            );
            let thread = thread::Builder::new()
                .name(format!("http worker {i}"))
                .spawn(move || worker(bind, config, &*make, (&stop, &grace), &ready))?;
            workers.threads.push(thread);
            match started.recv() {
                Ok(Ok(bound)) => workers.addr = bound,
                Ok(Err(err)) => {
                    workers.stop.set();
                    return Err(err);
                }
                Err(_) => {
                    workers.stop.set();
                    return Err(io::Error::other("an HTTP worker thread failed to start"));
                }
            }
        }
        Ok(workers)
    }

    /// The address served (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts every worker's server down gracefully (see [`Server::shutdown`]) and waits for
    /// the threads.
    ///
    /// Not a switchpoint: it blocks the calling thread (and any other fibers of its Hub) for
    /// up to `grace` and the threads' ends.
    ///
    /// # Errors
    ///
    /// The first error a worker ended with.
    pub fn stop(mut self, grace: Duration) -> io::Result<()> {
        self.stop_inner(grace)
    }

    fn stop_inner(&mut self, grace: Duration) -> io::Result<()> {
        let millis = grace.as_millis().try_into().unwrap_or(u64::MAX);
        self.grace.store(millis, Ordering::SeqCst);
        self.stop.set();
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            let ended = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("an HTTP worker panicked")));
            if result.is_ok() {
                result = ended;
            }
        }
        result
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.stop_inner(Duration::from_secs(1));
    }
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("addr", &self.addr)
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// Makes a worker's server, on the worker's thread, with the given settings.
type MakeServer = dyn Fn(ServerConfig) -> Server + Send + Sync;

fn worker(
    addr: SocketAddr,
    config: ServerConfig,
    make_server: &MakeServer,
    (stop, grace): (&Event, &AtomicU64),
    ready: &mpsc::Sender<io::Result<SocketAddr>>,
) -> io::Result<()> {
    fiber_core::run(|| {
        let server = make_server(config);
        let bound =
            server
                .listen_reuse_port(addr)
                .and_then(|()| match server.addresses().first() {
                    Some(gruvi_stream::Address::Tcp(host, port)) => {
                        let ip = host.parse().map_err(io::Error::other)?;
                        Ok(SocketAddr::new(ip, *port))
                    }
                    _ => Err(io::Error::other("the worker's listener has no TCP address")),
                });
        let failed = bound.is_err();
        let _ = ready.send(bound);
        if failed {
            return Ok(());
        }
        stop.wait().map_err(io::Error::from)?;
        server.shutdown(Duration::from_millis(grace.load(Ordering::SeqCst)))
    })
}
