//! [`UnixListener`]: a listening Unix-domain socket on a libuv pipe.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::{Rc, Weak};

use fiber_core::{Callback, Hub, SwitchBack};
use uv_sys_wrap::{Error as UvError, Handle, Pipe, Stream as _};

use super::{UnixStream, path_error, path_of, socket_addr};

/// How many connections the kernel queues for a listener before they are accepted, unless
/// [`UnixListener::bind_with_backlog`] or [`TcpListener::bind_with_backlog`] says otherwise
/// (the kernel caps it at `net.core.somaxconn`).
///
/// [`TcpListener::bind_with_backlog`]: crate::TcpListener::bind_with_backlog
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

/// What the listener's connection callback and `accept` share.
struct Incoming {
    /// Connections libuv has announced and `accept` not yet taken.
    ready: Cell<usize>,
    error: Cell<Option<UvError>>,
    acceptors: RefCell<Vec<Callback<()>>>,
}

/// A listening Unix-domain socket (like `std::os::unix::net::UnixListener`).
///
/// The socket file made by [`bind`](Self::bind) is removed when the listener closes (std
/// leaves it behind). A path whose first byte is NUL names a Linux abstract socket.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use gruvi_stream::{UnixListener, UnixStream};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let path = std::env::temp_dir().join(format!("gruvi-doc-{}.sock", std::process::id()));
///     let listener = UnixListener::bind(&path)?;
///     let server = fiber_core::spawn(move || -> std::io::Result<()> {
///         let (mut conn, _) = listener.accept()?;
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf)?;
///         conn.write_all(&buf)
///     });
///     let mut client = UnixStream::connect(&path)?;
///     client.write_all(b"hello")?;
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo)?;
///     assert_eq!(&echo, b"hello");
///     server.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    handle: RefCell<Option<Pipe>>,
    incoming: Rc<Incoming>,
}

impl UnixListener {
    /// Binds to `path` and listens; a leading NUL byte names a Linux abstract socket.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the path exists (also a stale socket file: remove it first),
    /// `InvalidInput` for a path too long for `sockaddr_un`, `NotFound` or
    /// `PermissionDenied` for its directory.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::bind_with_backlog(path, DEFAULT_LISTEN_BACKLOG)
    }

    /// [`bind`](Self::bind) with a listen backlog of `backlog` instead of
    /// [`DEFAULT_LISTEN_BACKLOG`]: how many connections the kernel queues until they are
    /// accepted (Linux takes one more; further ones fail to connect with `WouldBlock`). The
    /// kernel caps it at `net.core.somaxconn`.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_stream::UnixListener;
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let path = std::env::temp_dir().join(format!("gruvi-bl-{}.sock", std::process::id()));
    ///     let listener = UnixListener::bind_with_backlog(&path, 16)?;
    ///     assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_with_backlog(path: impl AsRef<Path>, backlog: u32) -> io::Result<UnixListener> {
        let hub = Hub::current();
        let pipe = Pipe::new(&hub.loop_handle())?;
        pipe.bind(path.as_ref()).map_err(path_error)?;
        let incoming = Rc::new(Incoming {
            ready: Cell::new(0),
            error: Cell::new(None),
            acceptors: RefCell::new(Vec::new()),
        });
        let weak: Weak<Incoming> = Rc::downgrade(&incoming);
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        pipe.listen(backlog, move |_, status| {
            if let Some(incoming) = weak.upgrade() {
                match status {
                    Ok(()) => incoming.ready.set(incoming.ready.get() + 1),
                    Err(err) => incoming.error.set(Some(err)),
                }
                for waiter in incoming.acceptors.take() {
                    waiter.call(());
                }
            }
        })?;
        Ok(UnixListener {
            handle: RefCell::new(Some(pipe)),
            incoming,
        })
    }

    /// Binds to a std socket address (a path or an abstract name) and listens.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind); `InvalidInput` for an unnamed address.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::bind(path_of(addr)?)
    }

    /// Waits for a connection and returns it with the peer's address (usually unnamed).
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a connection arrives.
    ///
    /// # Errors
    ///
    /// An accept error (e.g. out of file descriptors), `NotConnected` once the listener is
    /// closed, a cancelled fiber's error.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        loop {
            if let Some(err) = self.incoming.error.take() {
                return Err(err.into());
            }
            if let Some(stream) = self.try_take()? {
                let peer = stream.peer_addr()?;
                return Ok((stream, peer));
            }
            let sb = SwitchBack::new();
            let mut acceptors = self.incoming.acceptors.borrow_mut();
            // Drop the callbacks of accepts that timed out, so the list stays bounded.
            acceptors.retain(Callback::is_active);
            acceptors.push(sb.callback());
            drop(acceptors);
            sb.wait()?;
        }
    }

    /// Takes an announced connection, if any. Never switches.
    fn try_take(&self) -> io::Result<Option<UnixStream>> {
        let handle = self.handle.borrow();
        let Some(server) = handle.as_ref() else {
            return Err(closed());
        };
        if self.incoming.ready.get() == 0 {
            return Ok(None);
        }
        self.incoming.ready.set(self.incoming.ready.get() - 1);
        let conn = Pipe::new(&server.loop_handle())?;
        server.accept(&conn)?;
        Ok(Some(UnixStream::from_pipe(conn)))
    }

    /// An endless iterator of accepted connections (std's `incoming`).
    ///
    /// # Switchpoint
    ///
    /// Each `next` blocks the fiber until a connection arrives, as [`accept`](Self::accept).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(stream, _)| stream))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &*self.handle.borrow() {
            Some(pipe) => socket_addr(pipe.sockname()?),
            None => Err(closed()),
        }
    }

    /// Stops listening and removes the socket file: fibers blocked in
    /// [`accept`](Self::accept) (and later calls) fail with `ErrorKind::NotConnected`. Never
    /// switches.
    pub fn close(&self) {
        drop(self.handle.take());
        for waiter in self.incoming.acceptors.take() {
            waiter.call(());
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the listener is closed")
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}
