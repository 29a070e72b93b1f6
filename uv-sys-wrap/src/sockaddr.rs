//! Conversions between `std::net::SocketAddr` and the C socket address structs.

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use libuv_sys2 as sys;

/// A socket address in C layout, big enough for IPv4 and IPv6.
pub(crate) struct RawAddr {
    storage: libc::sockaddr_storage,
}

impl RawAddr {
    /// Converts a std address to its C form.
    pub(crate) fn new(addr: &SocketAddr) -> RawAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero bytes are a valid (AF_UNSPEC)
        // value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
            }
        }
        RawAddr { storage }
    }

    /// An empty address for libuv to fill in (`uv_tcp_getsockname` and friends).
    pub(crate) fn empty() -> RawAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero bytes are a valid value.
        let storage = unsafe { mem::zeroed() };
        RawAddr { storage }
    }

    /// The size of the storage, as libuv's `namelen` in/out parameters want it.
    pub(crate) fn capacity() -> libc::c_int {
        mem::size_of::<libc::sockaddr_storage>() as libc::c_int
    }

    pub(crate) fn as_ptr(&self) -> *const sys::sockaddr {
        (&raw const self.storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut sys::sockaddr {
        (&raw mut self.storage).cast()
    }

    /// The std form, if this is an IPv4 or IPv6 address.
    pub(crate) fn to_socket_addr(&self) -> Option<SocketAddr> {
        // SAFETY: the storage is a valid sockaddr_storage for its whole size.
        unsafe { from_raw(self.as_ptr()) }
    }
}

/// The IP address libuv writes for `raw` with `f` (`uv_tcp_getsockname`,
/// `uv_udp_getpeername`, ...).
///
/// # Safety
///
/// `raw` must be an open handle of the type `f` expects.
pub(crate) unsafe fn handle_name<R>(
    raw: *const R,
    f: unsafe extern "C" fn(*const R, *mut sys::sockaddr, *mut libc::c_int) -> libc::c_int,
) -> crate::Result<SocketAddr> {
    let mut sa = RawAddr::empty();
    let mut len = RawAddr::capacity();
    // SAFETY: `raw` is open (caller contract); `sa` and `len` are valid out parameters.
    crate::Error::check(unsafe { f(raw, sa.as_mut_ptr(), &mut len) })?;
    sa.to_socket_addr().ok_or(crate::Error::EINVAL)
}

/// Reads a C socket address; `None` for null or a family other than IPv4/IPv6.
///
/// # Safety
///
/// `sa` must be null or point to a socket address valid for the size its family implies.
pub(crate) unsafe fn from_raw(sa: *const sys::sockaddr) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: `sa` points to a sockaddr (caller contract); every sockaddr starts with the family.
    let family = libc::c_int::from(unsafe { (*sa.cast::<libc::sockaddr>()).sa_family });
    match family {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in (caller contract); it may be unaligned.
            let sin = unsafe { sa.cast::<libc::sockaddr_in>().read_unaligned() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6 (caller contract); it may be
            // unaligned.
            let sin6 = unsafe { sa.cast::<libc::sockaddr_in6>().read_unaligned() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6() {
        let addrs: [SocketAddr; 3] = [
            "127.0.0.1:8080".parse().unwrap(),
            "[::1]:443".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 9, 7, 3)),
        ];
        for addr in addrs {
            assert_eq!(RawAddr::new(&addr).to_socket_addr(), Some(addr));
        }
    }

    #[test]
    fn unspecified_family_is_none() {
        assert_eq!(RawAddr::empty().to_socket_addr(), None);
        // SAFETY: a null pointer is allowed.
        assert_eq!(unsafe { from_raw(std::ptr::null()) }, None);
    }
}
