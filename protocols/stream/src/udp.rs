//! UDP: [`UdpSocket`], with std's names and shapes, blocking the fiber.

mod recv;

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{Hub, SwitchBack};
use uv_sys_wrap::{Error as UvError, Membership, Udp};

use crate::address::{ToSocketAddrs, waited};
use crate::tcp::check_timeout;
use recv::RecvQueue;

/// How many received datagrams a socket holds by default before it pauses receiving.
pub const DEFAULT_RECV_QUEUE: usize = 64;

/// A UDP socket (like `std::net::UdpSocket`), whose blocking calls block only the calling
/// fiber.
///
/// Datagrams are received by libuv into a bounded queue from the first receive on: when it
/// holds [`recv_queue_limit`](Self::recv_queue_limit) datagrams, receiving pauses and further
/// datagrams wait in the kernel's socket buffer (which drops them when full, as UDP does);
/// it resumes as the queue drains. A datagram longer than the caller's buffer is cut to fit,
/// the rest discarded, as with std.
///
/// # Examples
///
/// ```
/// use gruvi_stream::UdpSocket;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let server = UdpSocket::bind("127.0.0.1:0")?;
///     let client = UdpSocket::bind("127.0.0.1:0")?;
///     client.send_to(b"ping", server.local_addr()?)?;
///     let mut buf = [0; 16];
///     let (n, from) = server.recv_from(&mut buf)?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], client.local_addr()?));
///     server.send_to(b"pong", from)?;
///     assert_eq!(client.recv(&mut buf)?, 4);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    /// `None` once closed.
    handle: RefCell<Option<Rc<Udp>>>,
    queue: Rc<RecvQueue>,
}

impl UdpSocket {
    /// Binds to the first address of `addr` that works (port 0 picks a free port).
    ///
    /// # Switchpoint
    ///
    /// Names are looked up through libuv.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `AddrNotAvailable`, a lookup error.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let hub = Hub::current();
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to");
        for addr in addr.to_socket_addrs()? {
            let udp = Udp::new(&hub.loop_handle())?;
            match udp.bind(addr) {
                Ok(()) => {
                    return Ok(UdpSocket {
                        handle: RefCell::new(Some(Rc::new(udp))),
                        queue: RecvQueue::new(DEFAULT_RECV_QUEUE),
                    });
                }
                Err(err) => last = err.into(),
            }
        }
        Err(last)
    }

    /// The handle, or `NotConnected` once closed.
    fn udp(&self) -> io::Result<Rc<Udp>> {
        self.handle
            .borrow()
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the socket is closed"))
    }

    /// Connects the socket to the first address of `addr`: [`send`](Self::send) goes there
    /// and only its datagrams are received. Connecting again replaces the peer.
    ///
    /// # Switchpoint
    ///
    /// Names are looked up through libuv.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let udp = self.udp()?;
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
        for addr in addr.to_socket_addrs()? {
            let mut result = udp.connect(addr);
            if result == Err(UvError::from_code(-libc::EISCONN)) {
                udp.disconnect()?;
                result = udp.connect(addr);
            }
            match result {
                Ok(()) => return Ok(()),
                Err(err) => last = err.into(),
            }
        }
        Err(last)
    }

    /// Sends `buf` as one datagram to the connected peer; returns its length.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber only if the kernel's send buffer is full.
    ///
    /// # Errors
    ///
    /// `EDESTADDRREQ` on an unconnected socket, `ConnectionRefused` after
    /// the peer's port was found closed, `TimedOut` after the write timeout (the datagram
    /// may still be sent).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_impl(buf, None)
    }

    /// Sends `buf` as one datagram to the first address of `addr`; returns its length.
    ///
    /// # Switchpoint
    ///
    /// Names are looked up through libuv; blocks the fiber if the send buffer is full.
    ///
    /// # Errors
    ///
    /// `EISCONN` on a connected socket, a lookup error, as [`send`](Self::send) otherwise.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr =
            addr.to_socket_addrs()?.into_iter().next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no address to send to")
            })?;
        self.send_impl(buf, Some(addr))
    }

    fn send_impl(&self, buf: &[u8], addr: Option<SocketAddr>) -> io::Result<usize> {
        let udp = self.udp()?;
        match udp.try_send(buf, addr) {
            Ok(n) => return Ok(n),
            Err(err) if err == UvError::EAGAIN => {}
            Err(err) => return Err(err.into()),
        }
        // The send buffer is full (or earlier sends are queued): queue a copy and wait.
        let deadline = self.queue.write_timeout().map(fiber_core::deadline_after);
        let sb = SwitchBack::new();
        let done = sb.callback();
        udp.send(Box::<[u8]>::from(buf), addr, move |res| {
            done.call(res);
        })?;
        drop(udp);
        let result = match deadline {
            None => sb.wait(),
            Some(at) => sb.wait_timeout(at.saturating_duration_since(Instant::now())),
        };
        waited(result, "send timed out")??;
        Ok(buf.len())
    }

    /// Receives one datagram from the connected peer into `buf`; returns its length (cut to
    /// `buf`'s).
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a datagram arrives.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout, `ConnectionRefused` on a connected socket whose
    /// peer's port is closed, `NotConnected` once closed, a cancelled fiber's error.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// Receives one datagram into `buf`; returns its length (cut to `buf`'s) and sender.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a datagram arrives.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.queue.next(&self.handle, buf, true)
    }

    /// Like [`recv_from`](Self::recv_from) but leaves the datagram queued.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a datagram arrives.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.queue.next(&self.handle, buf, false)
    }

    /// Like [`recv`](Self::recv) but leaves the datagram queued.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a datagram arrives.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.peek_from(buf).map(|(n, _)| n)
    }

    /// Receives a datagram already queued, or fails with `ErrorKind::WouldBlock`. Never
    /// switches (receiving starts with the first call; the loop fills the queue meanwhile).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.queue.try_next(&self.handle, buf)
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.udp()?.peername()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.udp()?.sockname()?)
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        Ok(self.udp()?.set_broadcast(on)?)
    }

    /// Sets the time to live of unicast datagrams (1 to 255).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Ok(self.udp()?.set_ttl(ttl)?)
    }

    /// Sets the time to live of IPv4 multicast datagrams (0 to 255).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        Ok(self.udp()?.set_multicast_ttl(ttl)?)
    }

    /// Makes IPv4 multicast datagrams sent here loop back to local members of the group.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        Ok(self.udp()?.set_multicast_loop(on)?)
    }

    /// Makes IPv6 multicast datagrams sent here loop back to local members of the group.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        Ok(self.udp()?.set_multicast_loop(on)?)
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`0.0.0.0`: the system's choice).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.membership_v4(multiaddr, interface, Membership::Join)
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.membership_v4(multiaddr, interface, Membership::Leave)
    }

    fn membership_v4(
        &self,
        group: &Ipv4Addr,
        interface: &Ipv4Addr,
        membership: Membership,
    ) -> io::Result<()> {
        let interface = (!interface.is_unspecified()).then(|| interface.to_string());
        let udp = self.udp()?;
        Ok(udp.set_membership(IpAddr::V4(*group), interface.as_deref(), membership)?)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with index `interface` (0:
    /// the system's choice).
    ///
    /// # Errors
    ///
    /// `NotFound` for an interface index no network interface has.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.membership_v6(multiaddr, interface, Membership::Join)
    }

    /// Leaves an IPv6 multicast group joined with
    /// [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.membership_v6(multiaddr, interface, Membership::Leave)
    }

    fn membership_v6(
        &self,
        group: &Ipv6Addr,
        interface: u32,
        membership: Membership,
    ) -> io::Result<()> {
        // libuv names an IPv6 interface by an address whose zone is the interface's name.
        let interface = match interface {
            0 => None,
            index => Some(format!("::%{}", interface_name(index)?)),
        };
        let udp = self.udp()?;
        Ok(udp.set_membership(IpAddr::V6(*group), interface.as_deref(), membership)?)
    }

    /// Sets how long a receive may block before failing with `ErrorKind::TimedOut` (`None`:
    /// forever).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration, as std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.queue.set_read_timeout(timeout);
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.queue.read_timeout())
    }

    /// Sets how long a send may wait for room in the send buffer before failing with
    /// `ErrorKind::TimedOut` (`None`: forever).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero duration, as std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.queue.set_write_timeout(timeout);
        Ok(())
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.queue.write_timeout())
    }

    /// How many received datagrams are held before receiving pauses (default
    /// [`DEFAULT_RECV_QUEUE`]).
    pub fn recv_queue_limit(&self) -> usize {
        self.queue.limit()
    }

    /// Sets how many received datagrams are held before receiving pauses.
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    pub fn set_recv_queue_limit(&self, limit: usize) {
        assert!(limit > 0, "the receive queue limit must not be 0");
        self.queue.set_limit(limit);
    }

    /// The libuv handle, for options this type lacks.
    pub fn as_uv(&self) -> io::Result<Rc<Udp>> {
        self.udp()
    }

    /// Closes the socket now: blocked receives (and later calls) fail with
    /// `ErrorKind::NotConnected`; a send waiting for buffer room fails. Never switches.
    pub fn close(&self) {
        drop(self.handle.take());
        self.queue.close();
    }
}

/// The name of the network interface with index `index`, from `/sys/class/net`.
fn interface_name(index: u32) -> io::Result<String> {
    for dir in std::fs::read_dir("/sys/class/net")? {
        let dir = dir?;
        let found = std::fs::read_to_string(dir.path().join("ifindex"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if found == Some(index) {
            return Ok(dir.file_name().to_string_lossy().into_owned());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no network interface has index {index}"),
    ))
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
