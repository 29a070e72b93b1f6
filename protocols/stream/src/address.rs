//! Addresses: resolving host names through libuv (other fibers run meanwhile), reverse
//! lookups, and the `Address` of an endpoint (TCP host and port, or a Unix socket path).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use fiber_core::{Error as FiberError, Hub, SwitchBack};
use uv_sys_wrap::{AddrInfoHints, getaddrinfo, getnameinfo};

/// The default timeout of a lookup.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves `host` to socket addresses with `port` through libuv's thread pool
/// (`uv_getaddrinfo`), in the resolver's order. Numeric addresses need no lookup.
///
/// # Switchpoint
///
/// Blocks the calling fiber for the lookup; other fibers run meanwhile.
///
/// # Errors
///
/// `NotFound` for an unknown name, `TimedOut` after [`DEFAULT_LOOKUP_TIMEOUT`], a cancelled
/// fiber's error.
pub fn lookup_host(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    lookup_host_timeout(host, port, DEFAULT_LOOKUP_TIMEOUT)
}

/// [`lookup_host`] with a timeout.
///
/// # Switchpoint
///
/// Blocks the calling fiber for at most `timeout`.
pub fn lookup_host_timeout(
    host: &str,
    port: u16,
    timeout: Duration,
) -> io::Result<Vec<SocketAddr>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let hub = Hub::current();
    let sb = SwitchBack::new();
    let done = sb.callback();
    // One entry per address: ask for stream sockets only.
    let hints = AddrInfoHints {
        socktype: libc::SOCK_STREAM,
        ..AddrInfoHints::default()
    };
    let pending = getaddrinfo(&hub.loop_handle(), Some(bare), None, hints, move |res| {
        done.call(res);
    })?;
    let result = sb.wait_timeout(timeout);
    if result.is_err() {
        let _ = pending.cancel();
    }
    let infos = waited(result, "host name lookup timed out")??;
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(infos.len());
    for info in infos {
        let addr = match info.addr {
            SocketAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(*a.ip(), port)),
            SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), port, 0, a.scope_id())),
        };
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

/// The host and service names of `addr` (`uv_getnameinfo`).
///
/// # Switchpoint
///
/// Blocks the calling fiber for at most `timeout`.
pub fn reverse_lookup(addr: SocketAddr, timeout: Duration) -> io::Result<(String, String)> {
    let hub = Hub::current();
    let sb = SwitchBack::new();
    let done = sb.callback();
    let pending = getnameinfo(&hub.loop_handle(), addr, 0, move |res| {
        done.call(res);
    })?;
    let result = sb.wait_timeout(timeout);
    if result.is_err() {
        let _ = pending.cancel();
    }
    Ok(waited(result, "reverse lookup timed out")??)
}

/// Maps the outcome of a wait: a timeout becomes `ErrorKind::TimedOut` with `what`.
pub(crate) fn waited<T>(result: fiber_core::Result<T>, what: &str) -> io::Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(FiberError::TimedOut) => Err(io::Error::new(io::ErrorKind::TimedOut, what.to_owned())),
        Err(err) => Err(err.into()),
    }
}

/// Values that name one or more socket addresses, resolved through libuv (unlike
/// `std::net::ToSocketAddrs`, which blocks the thread).
pub trait ToSocketAddrs {
    /// The addresses, in the order to try them.
    ///
    /// # Switchpoint
    ///
    /// Host names are looked up with [`lookup_host`].
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>>;
}

impl ToSocketAddrs for SocketAddr {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![*self])
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V4(*self)])
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V6(*self)])
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0, self.1)])
    }
}

impl ToSocketAddrs for (std::net::Ipv4Addr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for (std::net::Ipv6Addr, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        lookup_host(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        lookup_host(&self.0, self.1)
    }
}

impl ToSocketAddrs for str {
    /// `"host:port"`, `"1.2.3.4:port"` or `"[v6]:port"`.
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(vec![addr]);
        }
        let (host, port) = split_host_port(self)?;
        lookup_host(host, port)
    }
}

impl ToSocketAddrs for String {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().to_socket_addrs()
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).to_socket_addrs()
    }
}

/// Splits `"host:port"` / `"[v6]:port"`.
fn split_host_port(s: &str) -> io::Result<(&str, u16)> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid address {s:?}: expected host:port"),
        )
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host, port))
}

/// Where an endpoint listens or connects: a TCP host and port, or a Unix socket path (Gruvi's
/// address forms).
///
/// Parses `"host:port"`, `"[v6]:port"`, and paths: anything containing a `/`, or starting with
/// `@` for a Linux abstract socket name.
///
/// ```
/// use gruvi_stream::Address;
///
/// assert_eq!("localhost:80".parse::<Address>()?, Address::Tcp("localhost".into(), 80));
/// assert_eq!("[::1]:7000".parse::<Address>()?.to_string(), "[::1]:7000");
/// assert_eq!("/run/app.sock".parse::<Address>()?, Address::Unix("/run/app.sock".into()));
/// assert_eq!("@app".parse::<Address>()?.to_string(), "@app");
/// assert!("no port".parse::<Address>().is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A host name or IP address and a port.
    Tcp(String, u16),
    /// A Unix socket path; a leading NUL byte names a Linux abstract socket.
    Unix(PathBuf),
}

impl FromStr for Address {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<Address> {
        if let Some(name) = s.strip_prefix('@') {
            return Ok(Address::Unix(PathBuf::from(format!("\0{name}"))));
        }
        if s.contains('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        let (host, port) = split_host_port(s)?;
        Ok(Address::Tcp(host.to_owned(), port))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp(host, port) => write!(f, "{host}:{port}"),
            Address::Unix(path) => match path.to_str().and_then(|p| p.strip_prefix('\0')) {
                Some(name) => write!(f, "@{name}"),
                None => write!(f, "{}", path.display()),
            },
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Tcp(addr.ip().to_string(), addr.port())
    }
}
