//! [`Connection`]: the byte connection a [`Stream`](crate::Stream), a
//! [`Server`](crate::Server) and a [`Client`](crate::Client) work with, whatever carries it
//! (TCP, a Unix socket, later TLS).

use std::any::Any;
use std::cell::Ref;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::address::Address;
use crate::tcp::TcpStream;
use crate::unix::UnixStream;

/// A connected byte stream with its own receive buffer and send queue (Gruvi's transport).
///
/// The receive side is zero-copy: [`fill`](Self::fill) waits until bytes are buffered,
/// [`with_buffered`](Self::with_buffered) shows them and [`consume`](Self::consume) drops the
/// ones used. Implemented by [`TcpStream`] and [`UnixStream`]; a TLS stream
/// implements it over one of those, which is how TLS plugs into [`Server`](crate::Server) and
/// [`Client`](crate::Client). The trait is object safe: servers hand out
/// `Stream<dyn Connection>`.
///
/// Its methods take `&self`, so one fiber can read while another writes. The names differ from
/// `std::io`'s on purpose: a type implementing both never has two methods of the same name.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use gruvi_stream::{Connection, Stream, TcpListener, TcpStream};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let client = fiber_core::spawn(move || -> std::io::Result<()> {
///         let conn = TcpStream::connect(addr)?;
///         conn.send(b"ping")?;
///         conn.shutdown_write()
///     });
///     let (conn, _) = listener.accept()?;
///     // Any connection type fits behind `dyn Connection`.
///     let stream: Rc<Stream> = Rc::new(Stream::new(conn));
///     assert_eq!(stream.read_bytes(10)?, b"ping");
///     client.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Connection: 'static {
    /// Waits until received bytes are buffered: `Ok(true)` when some are, `Ok(false)` at end of
    /// stream. Buffered bytes come first, then end of stream, then a connection error: an error
    /// is reported only once every byte received before it was consumed, and an end of stream
    /// seen first wins over a later error.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until bytes, end of stream or an error arrive, or the read timeout
    /// passes.
    ///
    /// # Errors
    ///
    /// The connection's error (`ConnectionReset`...), `TimedOut` after the read timeout (the
    /// connection stays usable), a cancelled fiber's error.
    fn fill(&self) -> io::Result<bool>;

    /// Arranges for `notify` to be told, once, as soon as [`fill`](Self::fill) would return
    /// without blocking (bytes arrived, end of stream, an error, or the connection was
    /// closed): a wait for bytes that holds no fiber. The connection holds `notify` until
    /// then: a `notify` that holds the connection makes a cycle that only the notification
    /// (or a close) ends, and a connection dropped without a close drops `notify` untold. A server can leave an idle keep-alive
    /// connection this way and serve it from whatever fiber is free when bytes come, rather
    /// than keep a fiber (and its stack) per connection. The read timeout does not apply.
    /// Never switches.
    ///
    /// Gives `notify` back when it was not registered: `fill` would return at once, a
    /// notification is registered already, the connection is closed, or the connection does
    /// not support this (the default; TCP and Unix sockets do, and so do `gruvi_tls`'s TLS
    /// streams over them). The caller then waits with [`fill`](Self::fill).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use gruvi_stream::{Connection, FillNotify, TcpListener, TcpStream};
    ///
    /// struct Flag(Cell<bool>);
    /// impl FillNotify for Flag {
    ///     fn filled(self: Rc<Self>) {
    ///         self.0.set(true);
    ///     }
    /// }
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (conn, _) = listener.accept()?;
    ///     let flag = Rc::new(Flag(Cell::new(false)));
    ///     assert!(conn.notify_when_filled(flag.clone()).is_ok());
    ///     client.send(b"ping")?;
    ///     while !flag.0.get() {
    ///         fiber_core::sleep(std::time::Duration::from_millis(1)).unwrap();
    ///     }
    ///     // Told: `fill` returns at once now.
    ///     assert!(conn.fill()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn notify_when_filled(&self, notify: Rc<dyn FillNotify>) -> Result<(), Rc<dyn FillNotify>> {
        Err(notify)
    }

    /// Calls `f` on the buffered, unconsumed bytes (possibly none). Never switches; `f` must not
    /// switch either.
    fn with_buffered(&self, f: &mut dyn FnMut(&[u8]));

    /// The buffered, unconsumed bytes (possibly none), borrowed: a cheaper
    /// [`with_buffered`](Self::with_buffered) for connections that keep them in a `RefCell`.
    /// `None` (the default) when the connection offers only `with_buffered`. Never switches;
    /// the borrow must be dropped before the next call of another method of the connection
    /// (which may panic while it is held) and before a switch.
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_stream::{Connection, TcpListener, TcpStream};
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (server, _) = listener.accept()?;
    ///     client.send(b"hello")?;
    ///     assert!(server.fill()?);
    ///     let n = {
    ///         let data = server.buffered().expect("a TCP stream lends its buffer");
    ///         assert_eq!(&data[..], b"hello");
    ///         data.len()
    ///     };
    ///     server.consume(n);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn buffered(&self) -> Option<Ref<'_, [u8]>> {
        None
    }

    /// Marks the first `n` buffered bytes as consumed. Reading from the peer resumes once the
    /// buffer drains below its low-water mark.
    ///
    /// # Panics
    ///
    /// May panic if `n` exceeds what is buffered.
    fn consume(&self, n: usize);

    /// Queues all of `data` for sending.
    ///
    /// # Switchpoint
    ///
    /// Blocks while the send queue is above its high-water mark (write flow control).
    ///
    /// # Errors
    ///
    /// `BrokenPipe` or `ConnectionReset` once the peer is gone, `TimedOut` after the write
    /// timeout, `NotConnected` once closed.
    fn send(&self, data: &[u8]) -> io::Result<()>;

    /// Waits until everything queued has been handed to the kernel.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the send queue is empty.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    fn flush_queue(&self) -> io::Result<()>;

    /// Sends what is queued, then shuts down the sending side: the peer reads end of stream.
    /// Receiving goes on.
    ///
    /// # Switchpoint
    ///
    /// Waits for the send queue to drain and for the shutdown to complete.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    fn shutdown_write(&self) -> io::Result<()>;

    /// Closes the connection now; queued bytes are dropped, and fibers blocked on it wake up
    /// (readers see end of stream). Never switches.
    fn close(&self);

    /// Closes the connection once everything sent has been handed on: the peer reads all of
    /// it, then the end of stream; nothing more is read. The default shuts the sending side
    /// down first ([`shutdown_write`](Self::shutdown_write)), then closes; a TCP or Unix
    /// socket only waits for its send queue to drain, since closing it sends the end of
    /// stream after what the kernel holds (one system call and one wait less).
    ///
    /// # Switchpoint
    ///
    /// Waits for the send queue to drain (and, by default, for the shutdown).
    ///
    /// # Errors
    ///
    /// As [`flush_queue`](Self::flush_queue) and [`shutdown_write`](Self::shutdown_write); the
    /// connection is closed either way.
    fn close_when_sent(&self) -> io::Result<()> {
        let sent = self.shutdown_write();
        self.close();
        sent
    }

    /// Sets how long [`fill`](Self::fill) may block (`None`: forever).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// The read timeout.
    fn read_timeout(&self) -> io::Result<Option<Duration>>;

    /// Sets how long [`send`](Self::send) may block on a full queue (`None`: forever).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// The write timeout.
    fn write_timeout(&self) -> io::Result<Option<Duration>>;

    /// The peer's address.
    fn peer_address(&self) -> io::Result<Address>;

    /// The local address.
    fn local_address(&self) -> io::Result<Address>;

    /// The concrete connection, for what the trait does not cover (e.g.
    /// [`TcpStream::set_nodelay`]).
    fn as_any(&self) -> &dyn Any;
}

/// What [`Connection::notify_when_filled`] tells.
pub trait FillNotify {
    /// The connection's [`fill`](Connection::fill) would return without blocking now. Called
    /// once per registration, from the event loop or from the fiber that closed the
    /// connection: it must not switch (queue work, wake a fiber).
    fn filled(self: Rc<Self>);
}

/// Implements [`Connection`] for a stream type with a `transport()` and std's timeout methods;
/// `$peer` and `$local` map the stream to its addresses.
macro_rules! impl_connection {
    ($t:ty, $peer:expr, $local:expr) => {
        impl Connection for $t {
            fn fill(&self) -> io::Result<bool> {
                self.transport().fill()
            }

            fn notify_when_filled(
                &self,
                notify: Rc<dyn FillNotify>,
            ) -> Result<(), Rc<dyn FillNotify>> {
                self.transport().notify_when_filled(notify)
            }

            fn with_buffered(&self, f: &mut dyn FnMut(&[u8])) {
                self.transport().with_buffered(f)
            }

            fn buffered(&self) -> Option<Ref<'_, [u8]>> {
                Some(self.transport().buffered())
            }

            fn consume(&self, n: usize) {
                self.transport().consume(n)
            }

            fn send(&self, data: &[u8]) -> io::Result<()> {
                let written = self.transport().write(data)?;
                debug_assert_eq!(written, data.len(), "the transport queues whole writes");
                Ok(())
            }

            fn flush_queue(&self) -> io::Result<()> {
                self.transport().flush()
            }

            fn shutdown_write(&self) -> io::Result<()> {
                self.transport().shutdown_write()
            }

            fn close(&self) {
                <$t>::close(self)
            }

            fn close_when_sent(&self) -> io::Result<()> {
                let sent = self.transport().flush();
                <$t>::close(self);
                sent
            }

            fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$t>::set_read_timeout(self, timeout)
            }

            fn read_timeout(&self) -> io::Result<Option<Duration>> {
                <$t>::read_timeout(self)
            }

            fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$t>::set_write_timeout(self, timeout)
            }

            fn write_timeout(&self) -> io::Result<Option<Duration>> {
                <$t>::write_timeout(self)
            }

            fn peer_address(&self) -> io::Result<Address> {
                $peer(self)
            }

            fn local_address(&self) -> io::Result<Address> {
                $local(self)
            }

            fn as_any(&self) -> &dyn Any {
                self
            }
        }
    };
}

impl_connection!(
    TcpStream,
    |s: &TcpStream| s.peer_addr().map(Address::from),
    |s: &TcpStream| s.local_addr().map(Address::from)
);

// libuv reports a Unix socket's name as `Address::Unix` wants it: empty when unnamed, with a
// leading NUL for an abstract name.
impl_connection!(
    UnixStream,
    |s: &UnixStream| Ok(Address::Unix(s.as_uv()?.peername()?)),
    |s: &UnixStream| Ok(Address::Unix(s.as_uv()?.sockname()?))
);

/// A shared connection is a connection: what takes `impl Connection` (a TLS stream wrapping
/// an accepted connection, say) also takes an `Rc<dyn Connection>` or an `Rc<TcpStream>`.
/// Every method goes to the connection inside, [`as_any`](Connection::as_any) too, so a
/// downcast finds the concrete type, not the `Rc`.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use gruvi_stream::{Connection, TcpListener, TcpStream};
///
/// fn peer_of(conn: impl Connection) -> std::io::Result<gruvi_stream::Address> {
///     conn.peer_address()
/// }
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?)?;
///     let (conn, _) = listener.accept()?;
///     let shared: Rc<dyn Connection> = Rc::new(conn);
///     assert_eq!(peer_of(shared.clone())?, client.local_addr()?.into());
///     assert!(shared.as_any().downcast_ref::<TcpStream>().is_some());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl<C: Connection + ?Sized> Connection for Rc<C> {
    fn fill(&self) -> io::Result<bool> {
        (**self).fill()
    }

    fn notify_when_filled(&self, notify: Rc<dyn FillNotify>) -> Result<(), Rc<dyn FillNotify>> {
        (**self).notify_when_filled(notify)
    }

    fn with_buffered(&self, f: &mut dyn FnMut(&[u8])) {
        (**self).with_buffered(f)
    }

    fn buffered(&self) -> Option<Ref<'_, [u8]>> {
        (**self).buffered()
    }

    fn consume(&self, n: usize) {
        (**self).consume(n)
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        (**self).send(data)
    }

    fn flush_queue(&self) -> io::Result<()> {
        (**self).flush_queue()
    }

    fn shutdown_write(&self) -> io::Result<()> {
        (**self).shutdown_write()
    }

    fn close(&self) {
        (**self).close()
    }

    fn close_when_sent(&self) -> io::Result<()> {
        (**self).close_when_sent()
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }

    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        (**self).read_timeout()
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        (**self).write_timeout()
    }

    fn peer_address(&self) -> io::Result<Address> {
        (**self).peer_address()
    }

    fn local_address(&self) -> io::Result<Address> {
        (**self).local_address()
    }

    fn as_any(&self) -> &dyn Any {
        (**self).as_any()
    }
}
