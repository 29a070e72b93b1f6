//! TCP sockets (`uv_tcp_t`).

use std::net::SocketAddr;
use std::os::fd::RawFd;

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;
use crate::sockaddr::{RawAddr, handle_name};
use crate::stream::{StreamCbs, impl_stream, submit_status};

/// Options of [`Tcp::bind_with`] (`uv_tcp_flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpBindFlags {
    /// Accept IPv6 only on an IPv6 address, no IPv4-mapped addresses (`UV_TCP_IPV6ONLY`).
    pub ipv6_only: bool,
    /// Let several sockets bind the same address, the kernel spreading connections over them
    /// (`UV_TCP_REUSEPORT`, `SO_REUSEPORT`): one listener per thread.
    pub reuse_port: bool,
}

/// A TCP socket, listening or connected (`uv_tcp_t`). Reading and writing are the [`Stream`]
/// methods.
///
/// [`Stream`]: crate::Stream
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Handle, Loop, RunMode, Stream, Tcp};
/// use std::{cell::RefCell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let server = Tcp::new(&lp)?;
/// server.bind("127.0.0.1:0".parse().unwrap())?;
/// let accepted = Rc::new(RefCell::new(Vec::new()));
/// let acc = accepted.clone();
/// server.listen(8, move |server, status| {
///     status.unwrap();
///     let conn = Tcp::new(&server.loop_handle()).unwrap();
///     server.accept(&conn).unwrap();
///     acc.borrow_mut().push(conn);
/// })?;
/// let client = Tcp::new(&lp)?;
/// client.connect(server.sockname()?, |res| res.unwrap())?;
/// while accepted.borrow().is_empty() {
///     lp.run(RunMode::Once);
/// }
/// drop((server, client, accepted));
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Tcp {
    h: Owned<sys::uv_tcp_t, StreamCbs<Tcp>>,
}

impl_handle!(Tcp, h);
impl_stream!(Tcp, h, sys::uv_tcp_t);

impl Tcp {
    /// Creates a TCP handle; the socket itself is created on bind or connect (`uv_tcp_init`).
    pub fn new(lp: &impl AsLoop) -> Result<Tcp> {
        // SAFETY: `lp` and `t` are valid; uv_tcp_init initialises `t`.
        let h = Owned::new(lp, StreamCbs::new(), |lp, t| unsafe {
            sys::uv_tcp_init(lp, t)
        })?;
        Ok(Tcp { h })
    }

    /// Creates a TCP handle with its socket for the address family of `addr` already made
    /// (`uv_tcp_init_ex`), so socket options can be set before bind.
    pub fn new_for(lp: &impl AsLoop, addr: &SocketAddr) -> Result<Tcp> {
        let family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        } as u32;
        // SAFETY: `lp` and `t` are valid; uv_tcp_init_ex initialises `t`.
        let h = Owned::new(lp, StreamCbs::new(), |lp, t| unsafe {
            sys::uv_tcp_init_ex(lp, t, family)
        })?;
        Ok(Tcp { h })
    }

    /// Adopts an existing socket (`uv_tcp_open`). The handle takes ownership of `fd` and
    /// closes it when closed.
    pub fn open(&self, fd: RawFd) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open; libuv validates the descriptor.
        Error::check(unsafe { sys::uv_tcp_open(raw, fd) }).map(drop)
    }

    /// Binds to `addr` (`uv_tcp_bind`). Port 0 picks a free port; see [`Tcp::sockname`].
    ///
    /// # Errors
    ///
    /// `EADDRINUSE` (often only reported by [`Stream::listen`](crate::Stream::listen)),
    /// `EADDRNOTAVAIL` for an address of no local interface, `EINVAL` if already bound.
    pub fn bind(&self, addr: SocketAddr) -> Result<()> {
        self.bind_with(addr, TcpBindFlags::default())
    }

    /// [`Tcp::bind`] with options such as `SO_REUSEPORT`.
    pub fn bind_with(&self, addr: SocketAddr, flags: TcpBindFlags) -> Result<()> {
        let raw = self.h.raw()?;
        let mut bits = 0;
        if flags.ipv6_only {
            bits |= sys::uv_tcp_flags_UV_TCP_IPV6ONLY;
        }
        if flags.reuse_port {
            bits |= sys::uv_tcp_flags_UV_TCP_REUSEPORT;
        }
        let sa = RawAddr::new(&addr);
        // SAFETY: the handle is open; `sa` is a valid address for the call.
        Error::check(unsafe { sys::uv_tcp_bind(raw, sa.as_ptr(), bits) }).map(drop)
    }

    /// Connects to `addr` (`uv_tcp_connect`); `cb` gets the outcome, `ECANCELED` if the
    /// handle is closed first.
    pub fn connect(&self, addr: SocketAddr, cb: impl FnOnce(Result<()>) + 'static) -> Result<()> {
        connect_impl(self, addr, cb)
    }

    /// Disables (`true`) or enables Nagle's algorithm (`uv_tcp_nodelay`).
    pub fn set_nodelay(&self, enable: bool) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_tcp_nodelay(raw, enable.into()) }).map(drop)
    }

    /// Enables TCP keep-alive with the given initial delay in seconds, or disables it
    /// (`uv_tcp_keepalive`).
    pub fn set_keepalive(&self, delay_secs: Option<u32>) -> Result<()> {
        let raw = self.h.raw()?;
        let (on, delay) = match delay_secs {
            Some(d) => (1, d),
            None => (0, 0),
        };
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_tcp_keepalive(raw, on, delay) }).map(drop)
    }

    /// The local address (`uv_tcp_getsockname`).
    pub fn sockname(&self) -> Result<SocketAddr> {
        self.name(sys::uv_tcp_getsockname)
    }

    /// The peer's address (`uv_tcp_getpeername`).
    ///
    /// # Errors
    ///
    /// `ENOTCONN` if not connected.
    pub fn peername(&self) -> Result<SocketAddr> {
        self.name(sys::uv_tcp_getpeername)
    }

    fn name(
        &self,
        f: unsafe extern "C" fn(*const sys::uv_tcp_t, *mut sys::sockaddr, *mut i32) -> i32,
    ) -> Result<SocketAddr> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open and of the type `f` takes.
        unsafe { handle_name(raw, f) }
    }

    /// Resets the connection (RST instead of FIN) and closes the handle
    /// (`uv_tcp_close_reset`).
    pub fn close_reset(self) -> Result<()> {
        // SAFETY: the handle is open; uv_tcp_close_reset calls uv_close with our close callback
        // on success and leaves the handle alone on failure.
        self.h
            .close_by(|raw, cb| unsafe { sys::uv_tcp_close_reset(raw, cb) })
    }
}

fn connect_impl(t: &Tcp, addr: SocketAddr, cb: impl FnOnce(Result<()>) + 'static) -> Result<()> {
    let raw = t.h.raw()?;
    let sa = RawAddr::new(&addr);
    submit_status(t, cb, |req, done| {
        // SAFETY: handle open; `sa` is read during the call; the request block is allocated
        // until the callback reclaims it.
        unsafe { sys::uv_tcp_connect(req, raw, sa.as_ptr(), Some(done)) }
    })
}
