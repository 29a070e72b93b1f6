//! UDP sockets (`uv_udp_t`).

use std::cell::Cell;
use std::ffi::{CString, c_int, c_uint};
use std::mem::ManuallyDrop;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::ptr;

use libuv_sys2 as sys;

use crate::buf;
use crate::callback::{Callbacks, Slot};
use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;
use crate::request::Req;
use crate::sockaddr::{self, RawAddr};

type AllocCb = dyn FnMut(usize) -> Vec<u8>;
type RecvCb = dyn FnMut(&Udp, Result<Datagram>);

/// The callbacks of a UDP handle.
struct UdpCbs {
    alloc: Slot<AllocCb>,
    recv: Slot<RecvCb>,
    /// The buffer handed to libuv by the allocation callback, until the receive callback.
    pending: Cell<Option<Vec<u8>>>,
}

impl Callbacks for UdpCbs {
    fn clear_all(&self) {
        self.alloc.clear();
        self.recv.clear();
        drop(self.pending.take());
    }
}

/// Options of [`Udp::bind_with`] (`uv_udp_flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpBindFlags {
    /// Accept IPv6 only on an IPv6 address, no IPv4-mapped addresses (`UV_UDP_IPV6ONLY`).
    pub ipv6_only: bool,
    /// Let several sockets bind the same address (`UV_UDP_REUSEADDR`, `SO_REUSEADDR`); all of
    /// them receive multicast datagrams sent to it.
    pub reuse_addr: bool,
    /// Let several sockets bind the same address, the kernel spreading unicast datagrams over
    /// them (`UV_UDP_REUSEPORT`, `SO_REUSEPORT`).
    pub reuse_port: bool,
}

/// Joining or leaving a multicast group, for [`Udp::set_membership`] (`uv_membership`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Membership {
    /// `UV_JOIN_GROUP`
    Join,
    /// `UV_LEAVE_GROUP`
    Leave,
}

/// A datagram received by [`Udp::recv_start`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The buffer the allocation callback returned, its length extended by the datagram's
    /// bytes. Empty datagrams are reported too.
    pub data: Vec<u8>,
    /// The sender; `None` for a socket of another family than IPv4 or IPv6 (see
    /// [`Udp::open`]).
    pub addr: Option<SocketAddr>,
    /// The datagram was larger than the buffer's spare capacity and was cut to fit it
    /// (`UV_UDP_PARTIAL`).
    pub partial: bool,
}

/// A UDP socket (`uv_udp_t`).
///
/// Sends own their buffer (any `AsRef<[u8]> + 'static`) until their callback has run, so
/// dropping or closing the handle while a send is queued is safe: the send's callback still
/// runs, with `ECANCELED` if the datagram was not sent.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, RunMode, Udp};
/// use std::{cell::RefCell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let server = Udp::new(&lp)?;
/// server.bind("127.0.0.1:0".parse().unwrap())?;
/// let got = Rc::new(RefCell::new(None));
/// let g = got.clone();
/// server.recv_start(
///     |size| Vec::with_capacity(size),
///     move |server, datagram| {
///         *g.borrow_mut() = Some(datagram.unwrap());
///         server.recv_stop().unwrap();
///     },
/// )?;
/// let client = Udp::new(&lp)?;
/// client.bind("127.0.0.1:0".parse().unwrap())?;
/// client.send(b"ping", Some(server.sockname()?), |res| res.unwrap())?;
/// lp.run(RunMode::Default);
/// let datagram = got.borrow_mut().take().unwrap();
/// assert_eq!(datagram.data, b"ping");
/// assert_eq!(datagram.addr, Some(client.sockname()?));
/// drop((server, client));
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Udp {
    h: Owned<sys::uv_udp_t, UdpCbs>,
}

impl_handle!(Udp, h);

impl Udp {
    /// Creates a UDP handle; the socket itself is created on bind, connect or the first send
    /// (`uv_udp_init`).
    pub fn new(lp: &impl AsLoop) -> Result<Udp> {
        Udp::init(lp, libc::AF_UNSPEC)
    }

    /// Creates a UDP handle with its socket for the address family of `addr` already made
    /// (`uv_udp_init_ex`), so socket options can be set before bind.
    pub fn new_for(lp: &impl AsLoop, addr: &SocketAddr) -> Result<Udp> {
        Udp::init(
            lp,
            if addr.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            },
        )
    }

    fn init(lp: &impl AsLoop, family: c_int) -> Result<Udp> {
        let cbs = UdpCbs {
            alloc: Slot::new(),
            recv: Slot::new(),
            pending: Cell::new(None),
        };
        // recvmmsg (UV_UDP_RECVMMSG) is never enabled: on_recv relies on one receive callback
        // per allocation, which the chunked UV_UDP_MMSG_* callbacks would break.
        // SAFETY: `lp` and `u` are valid; uv_udp_init_ex initialises `u`.
        let h = Owned::new(lp, cbs, |lp, u| unsafe {
            sys::uv_udp_init_ex(lp, u, family as c_uint)
        })?;
        Ok(Udp { h })
    }

    /// Adopts an existing datagram socket (`uv_udp_open`). The handle takes ownership of `fd`
    /// and closes it when closed.
    pub fn open(&self, fd: RawFd) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open; libuv validates the descriptor.
        Error::check(unsafe { sys::uv_udp_open(raw, fd) }).map(drop)
    }

    /// Binds to `addr` (`uv_udp_bind`). Port 0 picks a free port; see [`Udp::sockname`].
    ///
    /// # Errors
    ///
    /// `EADDRINUSE`, `EADDRNOTAVAIL` for an address of no local interface, `EINVAL` if
    /// already bound.
    pub fn bind(&self, addr: SocketAddr) -> Result<()> {
        self.bind_with(addr, UdpBindFlags::default())
    }

    /// [`Udp::bind`] with options such as `SO_REUSEADDR`.
    ///
    /// # Errors
    ///
    /// As [`Udp::bind`]; also `EINVAL` for `ipv6_only` on an IPv4 address.
    pub fn bind_with(&self, addr: SocketAddr, flags: UdpBindFlags) -> Result<()> {
        let raw = self.h.raw()?;
        let mut bits = 0;
        if flags.ipv6_only {
            bits |= sys::uv_udp_flags_UV_UDP_IPV6ONLY;
        }
        if flags.reuse_addr {
            bits |= sys::uv_udp_flags_UV_UDP_REUSEADDR;
        }
        if flags.reuse_port {
            bits |= sys::uv_udp_flags_UV_UDP_REUSEPORT;
        }
        let sa = RawAddr::new(&addr);
        // SAFETY: the handle is open; `sa` is a valid address for the call.
        Error::check(unsafe { sys::uv_udp_bind(raw, sa.as_ptr(), bits) }).map(drop)
    }

    /// Associates the socket with a peer (`uv_udp_connect`): sends then go there without an
    /// address, and only its datagrams are received.
    ///
    /// # Errors
    ///
    /// `EISCONN` if already connected (see [`Udp::disconnect`]).
    pub fn connect(&self, addr: SocketAddr) -> Result<()> {
        let raw = self.h.raw()?;
        let sa = RawAddr::new(&addr);
        // SAFETY: the handle is open; `sa` is a valid address for the call.
        Error::check(unsafe { sys::uv_udp_connect(raw, sa.as_ptr()) }).map(drop)
    }

    /// Dissolves the association made by [`Udp::connect`] (`uv_udp_connect` with a null
    /// address).
    ///
    /// # Errors
    ///
    /// `ENOTCONN` if not connected.
    pub fn disconnect(&self) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open; a null address asks libuv to disconnect.
        Error::check(unsafe { sys::uv_udp_connect(raw, ptr::null()) }).map(drop)
    }

    /// The local address (`uv_udp_getsockname`).
    ///
    /// # Errors
    ///
    /// `EBADF` before the socket exists (see [`Udp::new`]).
    pub fn sockname(&self) -> Result<SocketAddr> {
        self.name(sys::uv_udp_getsockname)
    }

    /// The peer's address (`uv_udp_getpeername`).
    ///
    /// # Errors
    ///
    /// `ENOTCONN` if not connected, `EBADF` before the socket exists (see [`Udp::new`]).
    pub fn peername(&self) -> Result<SocketAddr> {
        self.name(sys::uv_udp_getpeername)
    }

    fn name(
        &self,
        f: unsafe extern "C" fn(*const sys::uv_udp_t, *mut sys::sockaddr, *mut c_int) -> c_int,
    ) -> Result<SocketAddr> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open and of the type `f` takes.
        unsafe { sockaddr::handle_name(raw, f) }
    }

    /// Queues `buf` as one datagram to `addr`, or to the connected peer with `None`
    /// (`uv_udp_send`); `cb` runs once it is sent or failed. An unbound handle is first bound
    /// to the wildcard address of `addr`'s family.
    ///
    /// # Errors
    ///
    /// `EISCONN` for an address on a connected handle, `EDESTADDRREQ` for none on an
    /// unconnected one, `EBADF` once the handle is closing.
    pub fn send<B, F>(&self, buf: B, addr: Option<SocketAddr>, cb: F) -> Result<()>
    where
        B: AsRef<[u8]> + 'static,
        F: FnOnce(Result<()>) + 'static,
    {
        let raw = self.h.raw()?;
        let sa = addr.as_ref().map(RawAddr::new);
        let sa_ptr = sa.as_ref().map_or(ptr::null(), RawAddr::as_ptr);
        Req::<sys::uv_udp_send_t, B, F>::submit(self.h.shared(), buf, cb, false, |req, data| {
            // SAFETY: `data` lives in the request block until the callback; libuv copies the
            // uv_buf_t and the address itself.
            let b = buf::for_read(unsafe { (*data).as_ref() });
            // SAFETY: handle open, request block allocated until `on_send` reclaims it.
            unsafe { sys::uv_udp_send(req, raw, &b, 1, sa_ptr, Some(on_send::<B, F>)) }
        })
        .map(drop)
    }

    /// Sends `buf` as one datagram right now if that can be done without queueing
    /// (`uv_udp_try_send`); returns its size.
    ///
    /// # Errors
    ///
    /// `EAGAIN` while earlier sends are queued or the socket buffer is full; otherwise as
    /// [`Udp::send`].
    pub fn try_send(&self, buf: &[u8], addr: Option<SocketAddr>) -> Result<usize> {
        let raw = self.h.raw()?;
        let sa = addr.as_ref().map(RawAddr::new);
        let sa_ptr = sa.as_ref().map_or(ptr::null(), RawAddr::as_ptr);
        let b = buf::for_read(buf);
        // SAFETY: handle open; libuv only reads the buffer and address during the call.
        Error::check(unsafe { sys::uv_udp_try_send(raw, &b, 1, sa_ptr) }).map(|n| n as usize)
    }

    /// Starts receiving (`uv_udp_recv_start`). An unbound handle is first bound to
    /// `0.0.0.0:0`.
    ///
    /// `alloc(suggested_size)` returns the buffer to receive into: libuv fills its spare
    /// capacity and `recv` receives it in a [`Datagram`], with its length extended by the
    /// datagram's. A buffer without spare capacity makes `recv` see `ENOBUFS`; one too small
    /// for the datagram gets its first bytes and [`Datagram::partial`]. `recv` gets socket
    /// errors (such as `ECONNREFUSED` on a connected handle) as they come.
    ///
    /// # Errors
    ///
    /// `EALREADY` if already receiving; the callbacks are then left unchanged.
    pub fn recv_start(
        &self,
        alloc: impl FnMut(usize) -> Vec<u8> + 'static,
        recv: impl FnMut(&Udp, Result<Datagram>) + 'static,
    ) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open; libuv calls neither callback before this returns.
        Error::check(unsafe { sys::uv_udp_recv_start(raw, Some(on_alloc), Some(on_recv)) })?;
        self.h.cbs().alloc.set(Box::new(alloc));
        self.h.cbs().recv.set(Box::new(recv));
        Ok(())
    }

    /// Stops receiving (`uv_udp_recv_stop`). Idempotent.
    pub fn recv_stop(&self) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_udp_recv_stop(raw) }).map(drop)
    }

    /// Allows sending to broadcast addresses (`uv_udp_set_broadcast`, `SO_BROADCAST`).
    ///
    /// The socket must exist: bind first, or create the handle with [`Udp::new_for`]
    /// (otherwise `EBADF`). The same holds for the other socket options.
    pub fn set_broadcast(&self, on: bool) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_udp_set_broadcast(raw, on.into()) }).map(drop)
    }

    /// Sets the time to live of unicast datagrams, 1 to 255 (`uv_udp_set_ttl`).
    ///
    /// # Errors
    ///
    /// `EINVAL` outside 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> Result<()> {
        let raw = self.h.raw()?;
        let ttl = c_int::try_from(ttl).unwrap_or(c_int::MAX);
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_udp_set_ttl(raw, ttl) }).map(drop)
    }

    /// Sets the time to live of multicast datagrams, 0 to 255 (`uv_udp_set_multicast_ttl`).
    ///
    /// # Errors
    ///
    /// `EINVAL` above 255.
    pub fn set_multicast_ttl(&self, ttl: u32) -> Result<()> {
        let raw = self.h.raw()?;
        let ttl = c_int::try_from(ttl).unwrap_or(c_int::MAX);
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_udp_set_multicast_ttl(raw, ttl) }).map(drop)
    }

    /// Makes multicast datagrams sent from this socket loop back to local members of the group
    /// (`uv_udp_set_multicast_loop`).
    pub fn set_multicast_loop(&self, on: bool) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_udp_set_multicast_loop(raw, on.into()) }).map(drop)
    }

    /// Sets the interface multicast datagrams are sent from, or the default one with `None`
    /// (`uv_udp_set_multicast_interface`).
    ///
    /// `interface` is an address as libuv parses it: the interface's IPv4 address
    /// (`"127.0.0.1"`), or for IPv6 an address whose zone names the interface (`"::%eth0"`).
    ///
    /// # Errors
    ///
    /// `EINVAL` if `interface` is not an address.
    pub fn set_multicast_interface(&self, interface: Option<&str>) -> Result<()> {
        let raw = self.h.raw()?;
        let interface = interface.map(c_string).transpose()?;
        let ptr = interface.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        // SAFETY: the handle is open; `ptr` is null or a NUL-terminated string for the call.
        Error::check(unsafe { sys::uv_udp_set_multicast_interface(raw, ptr) }).map(drop)
    }

    /// Joins or leaves the multicast group `group` on `interface`, or on the interface the
    /// system picks with `None` (`uv_udp_set_membership`). An unbound handle is first bound to
    /// the wildcard address with `SO_REUSEADDR`.
    ///
    /// `interface` is parsed as in [`Udp::set_multicast_interface`].
    ///
    /// # Errors
    ///
    /// `EINVAL` if `interface` is not an address; otherwise what `setsockopt` reports, such as
    /// `EADDRNOTAVAIL` for leaving a group not joined.
    pub fn set_membership(
        &self,
        group: IpAddr,
        interface: Option<&str>,
        membership: Membership,
    ) -> Result<()> {
        let raw = self.h.raw()?;
        let group = c_string(&group.to_string())?;
        let interface = interface.map(c_string).transpose()?;
        let interface = interface.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        let membership = match membership {
            Membership::Join => sys::uv_membership_UV_JOIN_GROUP,
            Membership::Leave => sys::uv_membership_UV_LEAVE_GROUP,
        };
        // SAFETY: the handle is open; the strings are NUL-terminated (or null for the
        // interface) and live for the call.
        Error::check(unsafe {
            sys::uv_udp_set_membership(raw, group.as_ptr(), interface, membership)
        })
        .map(drop)
    }

    /// Bytes queued for sending (`uv_udp_get_send_queue_size`).
    pub fn send_queue_size(&self) -> usize {
        // SAFETY: the block is allocated while the owner lives; this reads a field.
        unsafe { sys::uv_udp_get_send_queue_size(self.h.raw_unchecked()) }
    }

    /// Sends queued and not yet completed (`uv_udp_get_send_queue_count`).
    pub fn send_queue_count(&self) -> usize {
        // SAFETY: the block is allocated while the owner lives; this reads a field.
        unsafe { sys::uv_udp_get_send_queue_count(self.h.raw_unchecked()) }
    }
}

/// An address string for libuv; `EINVAL` if it holds a NUL byte.
fn c_string(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::EINVAL)
}

unsafe extern "C" fn on_send<B, F: FnOnce(Result<()>)>(
    req: *mut sys::uv_udp_send_t,
    status: c_int,
) {
    // SAFETY: libuv completes a send submitted by `Udp::send::<B, F>` exactly once.
    let done = unsafe { Req::<sys::uv_udp_send_t, B, F>::complete(req) };
    done.run(|_buf, cb| cb(Error::check(status).map(drop)));
}

unsafe extern "C" fn on_alloc(
    raw: *mut sys::uv_handle_t,
    suggested: usize,
    out: *mut sys::uv_buf_t,
) {
    // SAFETY: libuv calls this for handles receiving through `Udp::recv_start`, whose block is
    // allocated during the callback. The view is never dropped.
    let h = unsafe { Owned::borrowed(raw.cast::<sys::uv_udp_t>()) };
    let udp = ManuallyDrop::new(Udp { h });
    // A panicking allocation callback yields an empty buffer: libuv reports ENOBUFS and the loop
    // stops to resume the panic.
    let mut b = sys::uv_buf_t {
        base: ptr::null_mut(),
        len: 0,
    };
    udp.h.catch(|| {
        if let Some(mut vec) = udp.h.cbs().alloc.with(|alloc| alloc(suggested)) {
            b = buf::spare(&mut vec);
            udp.h.cbs().pending.set(Some(vec));
        }
    });
    // SAFETY: `out` is libuv's out parameter for this call.
    unsafe { out.write(b) };
}

unsafe extern "C" fn on_recv(
    raw: *mut sys::uv_udp_t,
    nread: isize,
    _buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    flags: c_uint,
) {
    // SAFETY: libuv calls this for handles receiving through `Udp::recv_start`, whose block is
    // allocated during the callback. The view is never dropped.
    let h = unsafe { Owned::borrowed(raw) };
    let udp = ManuallyDrop::new(Udp { h });
    // Without recvmmsg every allocation is followed by exactly one call of this function, so
    // the pending buffer is always the one libuv used (or gave back unused).
    let pending = udp.h.cbs().pending.take();
    let result = if nread < 0 {
        Err(Error::from_code(nread as c_int))
    } else if nread == 0 && addr.is_null() {
        // libuv found nothing to receive (EAGAIN) and gives the buffer back: not a datagram.
        return;
    } else if let Some(mut data) = pending {
        // SAFETY: libuv wrote `nread` bytes into the spare capacity handed out by on_alloc
        // (recvmsg never writes more than the buffer's length).
        unsafe { data.set_len(data.len() + nread as usize) };
        Ok(Datagram {
            data,
            // SAFETY: `addr` is null or the sender's address, valid during the callback.
            addr: unsafe { sockaddr::from_raw(addr) },
            partial: flags & sys::uv_udp_flags_UV_UDP_PARTIAL != 0,
        })
    } else {
        // libuv never reads without a buffer from on_alloc; report it as the missing buffer.
        Err(Error::ENOBUFS)
    };
    udp.h.catch(|| {
        udp.h.cbs().recv.with(|recv| recv(&udp, result));
    });
}
