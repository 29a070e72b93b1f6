//! The listening sockets of a [`Server`](crate::Server), whatever their kind.

use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use crate::address::{Address, lookup_host};
use crate::buffered::Stream;
use crate::tcp::{TcpListener, TcpStream};
use crate::unix::UnixListener;

/// A listening socket of one of the supported kinds.
pub(crate) struct Listener {
    kind: Kind,
    closed: Cell<bool>,
}

enum Kind {
    Tcp(TcpListener),
    /// With the path it was bound to.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    fn new(kind: Kind) -> Listener {
        Listener {
            kind,
            closed: Cell::new(false),
        }
    }

    /// Binds every address `addr` stands for: a host name may resolve to several, and those
    /// that cannot be bound (`::1` without IPv6, say) are skipped as long as one can.
    ///
    /// # Switchpoint
    ///
    /// Host names are looked up through libuv.
    pub(crate) fn bind(addr: &Address) -> io::Result<Vec<Listener>> {
        match addr {
            Address::Tcp(host, port) => {
                let mut listeners = Vec::new();
                let mut first_error = None;
                for addr in lookup_host(host, *port)? {
                    match TcpListener::bind(addr) {
                        Ok(listener) => listeners.push(Listener::new(Kind::Tcp(listener))),
                        Err(err) => {
                            first_error.get_or_insert(err);
                        }
                    }
                }
                if listeners.is_empty() {
                    return Err(first_error.unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
                    }));
                }
                Ok(listeners)
            }
            Address::Unix(path) => {
                let listener = UnixListener::bind(path)?;
                Ok(vec![Listener::new(Kind::Unix(listener, path.clone()))])
            }
        }
    }

    /// Waits for a connection and wraps it in a stream.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a connection arrives.
    pub(crate) fn accept(&self) -> io::Result<Rc<Stream>> {
        match &self.kind {
            Kind::Tcp(listener) => {
                let (conn, _) = listener.accept()?;
                Ok(tcp_stream(conn))
            }
            Kind::Unix(listener, _) => {
                let (conn, _) = listener.accept()?;
                Ok(Rc::new(Stream::new(conn)))
            }
        }
    }

    pub(crate) fn address(&self) -> io::Result<Address> {
        match &self.kind {
            Kind::Tcp(listener) => listener.local_addr().map(Address::from),
            Kind::Unix(_, path) => Ok(Address::Unix(path.clone())),
        }
    }

    /// Stops listening; a blocked `accept` fails with `NotConnected`. Never switches.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        match &self.kind {
            Kind::Tcp(listener) => listener.close(),
            Kind::Unix(listener, _) => listener.close(),
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

/// A TCP connection as a stream, with Nagle's algorithm off: request-response protocols
/// would otherwise stall on the peer's delayed acknowledgements.
pub(crate) fn tcp_stream(conn: TcpStream) -> Rc<Stream> {
    // Only fails on a closed handle, which the first read reports anyway.
    let _ = conn.set_nodelay(true);
    Rc::new(Stream::new(conn))
}
