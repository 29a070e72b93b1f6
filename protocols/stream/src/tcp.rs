//! TCP: [`TcpStream`] and [`TcpListener`], with std's names and shapes, blocking the fiber.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use fiber_core::{Hub, SwitchBack};
use uv_sys_wrap::{Error as UvError, Handle, Stream as _, Tcp};

use crate::address::{ToSocketAddrs, waited};
use crate::transport::{Transport, Waiters, block_on};

/// A TCP connection (like `std::net::TcpStream`), whose blocking calls block only the
/// calling fiber.
///
/// `Read` and `Write` are implemented on `&TcpStream` too, so one fiber can read while another
/// writes. Writes are queued: [`Write::flush`](std::io::Write::flush) waits until the kernel has everything; dropping
/// the stream still delivers what was queued.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use gruvi_stream::{TcpListener, TcpStream};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = fiber_core::spawn(move || -> std::io::Result<()> {
///         let (mut conn, _peer) = listener.accept()?;
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf)?;
///         conn.write_all(&buf)
///     });
///     let mut client = TcpStream::connect(addr)?;
///     client.write_all(b"hello")?;
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo)?;
///     assert_eq!(&echo, b"hello");
///     server.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    transport: Transport<Tcp>,
}

impl TcpStream {
    /// Connects to the first address of `addr` that accepts, trying each in turn; names are
    /// resolved through libuv.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber for the lookup and the connection.
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`...), or the lookup's.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        connect_any(&addr.to_socket_addrs()?, None)
    }

    /// Connects to `addr`, giving up with `ErrorKind::TimedOut` after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber for at most `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        connect_any(&[*addr], Some(fiber_core::deadline_after(timeout)))
    }

    pub(crate) fn from_handle(tcp: Tcp) -> TcpStream {
        TcpStream {
            transport: Transport::new(tcp),
        }
    }

    /// The buffered transport, for the zero-copy [`Connection`](crate::Connection) methods.
    pub(crate) fn transport(&self) -> &Transport<Tcp> {
        &self.transport
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.transport.handle()?.peername()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.transport.handle()?.sockname()?)
    }

    /// Shuts down the read side, the write side or both (`Shutdown::Write` flushes first and
    /// then sends FIN: the peer reads end of stream; this side can still read).
    ///
    /// # Switchpoint
    ///
    /// Shutting down the write side waits for queued writes.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.transport.shutdown(how)
    }

    /// Disables (`true`) or enables Nagle's algorithm.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        Ok(self.transport.handle()?.set_nodelay(nodelay)?)
    }

    /// The libuv handle, e.g. to pass it over an IPC pipe.
    pub fn as_uv(&self) -> io::Result<Rc<Tcp>> {
        self.transport.handle()
    }

    /// Closes the connection now; queued writes are dropped. Dropping the stream instead
    /// delivers them first.
    pub fn close(&self) {
        self.transport.close()
    }
}

/// Rejects a zero timeout, as std does.
pub(crate) fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a zero timeout is invalid",
        ));
    }
    Ok(())
}

/// Tries each address in turn until one connects.
fn connect_any(addrs: &[SocketAddr], deadline: Option<Instant>) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    for addr in addrs {
        match connect_one(addr, deadline) {
            Ok(stream) => return Ok(stream),
            Err(err) if err.kind() == io::ErrorKind::TimedOut => return Err(err),
            Err(err) => last = err,
        }
    }
    Err(last)
}

fn connect_one(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let hub = Hub::current();
    let tcp = Tcp::new(&hub.loop_handle())?;
    let sb = SwitchBack::new();
    let done = sb.callback();
    tcp.connect(*addr, move |res| {
        done.call(res);
    })?;
    let result = match deadline {
        None => sb.wait(),
        Some(at) => sb.wait_timeout(at.saturating_duration_since(Instant::now())),
    };
    // On timeout or cancellation, dropping `tcp` closes it and cancels the connect.
    waited(result, "connect timed out")??;
    Ok(TcpStream::from_handle(tcp))
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

/// What the listener's connection callback and `accept` share.
struct Incoming {
    /// Connections libuv has announced and `accept` not yet taken.
    ready: Cell<usize>,
    error: Cell<Option<UvError>>,
    acceptors: Waiters,
}

/// A listening TCP socket (like `std::net::TcpListener`).
///
/// # Examples
///
/// ```
/// use gruvi_stream::TcpListener;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     assert_ne!(listener.local_addr()?.port(), 0);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    handle: RefCell<Option<Tcp>>,
    incoming: Rc<Incoming>,
}

impl TcpListener {
    /// Binds to the first address of `addr` that works and listens.
    ///
    /// # Switchpoint
    ///
    /// Names are looked up through libuv.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `AddrNotAvailable`, a lookup error.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, crate::DEFAULT_LISTEN_BACKLOG)
    }

    /// [`bind`](Self::bind) with a listen backlog of `backlog` instead of
    /// [`DEFAULT_LISTEN_BACKLOG`](crate::DEFAULT_LISTEN_BACKLOG): how many connections the
    /// kernel completes and queues until they are accepted (the kernel caps it at
    /// `net.core.somaxconn`; with the queue full, Linux drops new connection attempts and the
    /// clients retry).
    ///
    /// # Switchpoint
    ///
    /// Names are looked up through libuv.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_stream::TcpListener;
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind_with_backlog("127.0.0.1:0", 16)?;
    ///     assert!(listener.local_addr()?.port() != 0);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_with_backlog(addr: impl ToSocketAddrs, backlog: u32) -> io::Result<TcpListener> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to");
        for addr in addr.to_socket_addrs()? {
            match TcpListener::bind_one(addr, false, backlog) {
                Ok(listener) => return Ok(listener),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// Binds with `SO_REUSEPORT`, so that several listeners (one per thread and Hub) share the
    /// address and the kernel spreads connections over them.
    pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_one(addr, true, crate::DEFAULT_LISTEN_BACKLOG)
    }

    fn bind_one(addr: SocketAddr, reuse_port: bool, backlog: u32) -> io::Result<TcpListener> {
        let hub = Hub::current();
        let tcp = Tcp::new(&hub.loop_handle())?;
        let flags = uv_sys_wrap::TcpBindFlags {
            reuse_port,
            ..Default::default()
        };
        tcp.bind_with(addr, flags)?;
        let incoming = Rc::new(Incoming {
            ready: Cell::new(0),
            error: Cell::new(None),
            acceptors: Waiters::default(),
        });
        let weak: Weak<Incoming> = Rc::downgrade(&incoming);
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        tcp.listen(backlog, move |_, status| {
            if let Some(incoming) = weak.upgrade() {
                match status {
                    Ok(()) => incoming.ready.set(incoming.ready.get() + 1),
                    Err(err) => incoming.error.set(Some(err)),
                }
                incoming.acceptors.wake_all();
            }
        })?;
        Ok(TcpListener {
            handle: RefCell::new(Some(tcp)),
            incoming,
        })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a connection arrives.
    ///
    /// # Errors
    ///
    /// An accept error (e.g. out of file descriptors), `NotConnected` once the listener is
    /// closed, a cancelled fiber's error.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let stream = self.accept_stream()?;
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }

    /// [`accept`](Self::accept) without the peer's address (libuv gives none with the
    /// connection: it costs a `getpeername` call).
    fn accept_stream(&self) -> io::Result<TcpStream> {
        loop {
            if let Some(err) = self.incoming.error.take() {
                return Err(err.into());
            }
            {
                let handle = self.handle.borrow();
                let Some(server) = handle.as_ref() else {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the listener is closed",
                    ));
                };
                if self.incoming.ready.get() > 0 {
                    self.incoming.ready.set(self.incoming.ready.get() - 1);
                    let conn = Tcp::new(&server.loop_handle())?;
                    server.accept(&conn)?;
                    return Ok(TcpStream::from_handle(conn));
                }
            }
            block_on(&self.incoming.acceptors, None, "accept timed out")?;
        }
    }

    /// An endless iterator of accepted connections (std's `incoming`), without their peers'
    /// addresses (which cost a system call each; [`TcpStream::peer_addr`] has them).
    ///
    /// # Switchpoint
    ///
    /// Each `next` blocks the fiber until a connection arrives, as [`accept`](Self::accept).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept_stream())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &*self.handle.borrow() {
            Some(tcp) => Ok(tcp.sockname()?),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the listener is closed",
            )),
        }
    }

    /// Stops listening: fibers blocked in [`accept`](Self::accept) (and later calls) fail with
    /// `ErrorKind::NotConnected`. Never switches.
    pub fn close(&self) {
        drop(self.handle.take());
        self.incoming.acceptors.wake_all();
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

crate::stream_impls::transport_io!(TcpStream);
crate::stream_impls::transport_settings!(TcpStream);
