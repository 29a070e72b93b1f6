//! Name resolution on libuv's thread pool (`uv_getaddrinfo`, `uv_getnameinfo`).
//!
//! Both run the blocking libc call on a pool thread and report on the loop thread. They return
//! a [`Pending`] token: cancelling a lookup that has not started makes its callback get
//! [`Error::EAI_CANCELED`].

use std::ffi::{CStr, CString, c_char, c_int};
use std::net::SocketAddr;

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::r#loop::AsLoop;
use crate::request::{Pending, Req};
use crate::sockaddr::{RawAddr, from_raw};

/// What [`getaddrinfo`] should look for (`struct addrinfo` hints). The default, all zero,
/// asks for every address family, socket type and protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrInfoHints {
    /// Address family: `libc::AF_INET`, `libc::AF_INET6`, or 0 (`AF_UNSPEC`) for both.
    pub family: i32,
    /// Socket type, e.g. `libc::SOCK_STREAM`; 0 for any.
    pub socktype: i32,
    /// Protocol, e.g. `libc::IPPROTO_TCP`; 0 for any.
    pub protocol: i32,
    /// `libc::AI_*` flags, e.g. `AI_NUMERICHOST`, `AI_PASSIVE`, `AI_CANONNAME`.
    pub flags: i32,
}

/// One result of [`getaddrinfo`] (`struct addrinfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// Address family (`libc::AF_INET` or `libc::AF_INET6`).
    pub family: i32,
    /// Socket type (`libc::SOCK_STREAM`, ...).
    pub socktype: i32,
    /// Protocol (`libc::IPPROTO_TCP`, ...).
    pub protocol: i32,
    /// The address, with the service's port.
    pub addr: SocketAddr,
    /// The canonical name of the host, on the first result when `AI_CANONNAME` was asked for.
    pub canonname: Option<String>,
}

/// Resolves a host and/or service name into socket addresses (`uv_getaddrinfo`).
///
/// `cb` gets the addresses in the resolver's order, or an `EAI_*` error such as
/// [`Error::EAI_NONAME`]; [`Error::EAI_CANCELED`] if cancelled through the returned token.
///
/// # Errors
///
/// `EINVAL` if both `node` and `service` are `None` or one contains a NUL byte; the callback is
/// then never called.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{AddrInfoHints, Loop, RunMode, getaddrinfo};
/// use std::{cell::RefCell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let found = Rc::new(RefCell::new(Vec::new()));
/// let f = found.clone();
/// let hints = AddrInfoHints { socktype: libc::SOCK_STREAM, ..Default::default() };
/// getaddrinfo(&lp, Some("127.0.0.1"), Some("80"), hints, move |res| {
///     f.borrow_mut().extend(res.unwrap().into_iter().map(|ai| ai.addr));
/// })?;
/// lp.run(RunMode::Default);
/// assert_eq!(found.borrow()[0], "127.0.0.1:80".parse().unwrap());
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub fn getaddrinfo<F>(
    lp: &impl AsLoop,
    node: Option<&str>,
    service: Option<&str>,
    hints: AddrInfoHints,
    cb: F,
) -> Result<Pending>
where
    F: FnOnce(Result<Vec<AddrInfo>>) + 'static,
{
    let shared = lp.loop_shared();
    let uv_loop = shared.raw()?;
    let c_str = |s: Option<&str>| s.map(CString::new).transpose().map_err(|_| Error::EINVAL);
    let (node, service) = (c_str(node)?, c_str(service)?);
    let as_ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: addrinfo is plain old data; all-zero bytes are a valid value (null pointers).
    let mut raw_hints: sys::addrinfo = unsafe { std::mem::zeroed() };
    raw_hints.ai_family = hints.family;
    raw_hints.ai_socktype = hints.socktype;
    raw_hints.ai_protocol = hints.protocol;
    raw_hints.ai_flags = hints.flags;
    let pending = Req::<sys::uv_getaddrinfo_t, (), F>::submit(shared, (), cb, true, |req, _| {
        // SAFETY: the loop is open; libuv copies `node`, `service` and the hints before
        // returning; the request block is allocated until `on_getaddrinfo` reclaims it.
        unsafe {
            sys::uv_getaddrinfo(
                uv_loop,
                req,
                Some(on_getaddrinfo::<F>),
                as_ptr(&node),
                as_ptr(&service),
                &raw_hints,
            )
        }
    })?;
    Ok(pending.expect("a cancellable request gives a token"))
}

/// Turns a host address and port into names (`uv_getnameinfo`): `cb` gets `(host, service)`,
/// e.g. `("localhost", "http")`. `flags` are `libc::NI_*` flags such as `NI_NUMERICHOST`.
///
/// A cancelled request's callback gets [`Error::EAI_CANCELED`].
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, RunMode, getnameinfo};
/// use std::{cell::RefCell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let names = Rc::new(RefCell::new(None));
/// let n = names.clone();
/// let flags = libc::NI_NUMERICHOST | libc::NI_NUMERICSERV;
/// getnameinfo(&lp, "127.0.0.1:80".parse().unwrap(), flags, move |res| {
///     *n.borrow_mut() = Some(res.unwrap());
/// })?;
/// lp.run(RunMode::Default);
/// assert_eq!(names.borrow().as_ref().unwrap(), &("127.0.0.1".to_owned(), "80".to_owned()));
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub fn getnameinfo<F>(lp: &impl AsLoop, addr: SocketAddr, flags: i32, cb: F) -> Result<Pending>
where
    F: FnOnce(Result<(String, String)>) + 'static,
{
    let shared = lp.loop_shared();
    let uv_loop = shared.raw()?;
    let sa = RawAddr::new(&addr);
    let pending = Req::<sys::uv_getnameinfo_t, (), F>::submit(shared, (), cb, true, |req, _| {
        // SAFETY: the loop is open; libuv copies the address into the request; the request
        // block is allocated until `on_getnameinfo` reclaims it.
        unsafe { sys::uv_getnameinfo(uv_loop, req, Some(on_getnameinfo::<F>), sa.as_ptr(), flags) }
    })?;
    Ok(pending.expect("a cancellable request gives a token"))
}

/// Copies a getaddrinfo result list.
///
/// # Safety
///
/// `res` must be null or a list returned by getaddrinfo and not yet freed.
unsafe fn collect(mut res: *const sys::addrinfo) -> Vec<AddrInfo> {
    let mut out = Vec::new();
    while !res.is_null() {
        // SAFETY: `res` is a live list entry (caller contract).
        let ai = unsafe { &*res };
        // SAFETY: `ai_addr` is null or an address of `ai_addrlen` bytes matching its family.
        if let Some(addr) = unsafe { from_raw(ai.ai_addr) } {
            out.push(AddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                addr,
                // SAFETY: `ai_canonname` is null or a NUL-terminated string of the list.
                canonname: unsafe { opt_string(ai.ai_canonname) },
            });
        }
        res = ai.ai_next;
    }
    out
}

/// Copies a C string that may be null.
///
/// # Safety
///
/// `s` must be null or a valid NUL-terminated string.
unsafe fn opt_string(s: *const c_char) -> Option<String> {
    // SAFETY: non-null `s` is NUL-terminated (caller contract).
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

unsafe extern "C" fn on_getaddrinfo<F>(
    req: *mut sys::uv_getaddrinfo_t,
    status: c_int,
    res: *mut sys::addrinfo,
) where
    F: FnOnce(Result<Vec<AddrInfo>>),
{
    // SAFETY: on success `res` is the list libuv got from getaddrinfo, ours to free; on error it
    // is null.
    let result = Error::check(status).map(|_| unsafe { collect(res) });
    // SAFETY: `res` is null or an unfreed list; nothing refers to it after the copy above.
    unsafe { sys::uv_freeaddrinfo(res) };
    // SAFETY: libuv completes a request submitted by `getaddrinfo::<F>` exactly once.
    let done = unsafe { Req::<sys::uv_getaddrinfo_t, (), F>::complete(req) };
    done.run(|(), cb| cb(result));
}

unsafe extern "C" fn on_getnameinfo<F>(
    req: *mut sys::uv_getnameinfo_t,
    status: c_int,
    host: *const c_char,
    service: *const c_char,
) where
    F: FnOnce(Result<(String, String)>),
{
    // `host` and `service` point into the request itself: copy them before reclaiming it.
    let result = Error::check(status).map(|_| {
        // SAFETY: on success both are NUL-terminated strings in the live request.
        unsafe { (opt_string(host), opt_string(service)) }
    });
    let result = result.map(|(h, s)| (h.unwrap_or_default(), s.unwrap_or_default()));
    // SAFETY: libuv completes a request submitted by `getnameinfo::<F>` exactly once.
    let done = unsafe { Req::<sys::uv_getnameinfo_t, (), F>::complete(req) };
    done.run(|(), cb| cb(result));
}
