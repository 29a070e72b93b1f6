//! Unix domain sockets and pipes (`uv_pipe_t`), including IPC pipes that pass handles.

use std::ffi::{OsStr, c_char};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libuv_sys2 as sys;

use crate::buf;
use crate::error::{Error, Result};
use crate::handle::{HandleType, Owned, impl_handle};
use crate::r#loop::AsLoop;
use crate::request::Req;
use crate::stream::{Stream, StreamCbs, impl_stream, on_write, sealed::StreamImpl, submit_status};

/// Refuse names that do not fit `sockaddr_un` instead of silently truncating them.
const NO_TRUNCATE: u32 = sys::UV_PIPE_NO_TRUNCATE;

/// The process, user and group at the other end of a Unix socket
/// ([`Pipe::peer_credentials`], `struct ucred`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id.
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// A Unix domain socket or pipe (`uv_pipe_t`). Reading and writing are the [`Stream`] methods.
///
/// Paths starting with a NUL byte name Linux abstract-namespace sockets. A socket file made by
/// [`Pipe::bind`] is removed when the handle closes.
///
/// An IPC pipe ([`Pipe::new_ipc`]) can pass TCP and pipe handles to another process (or
/// thread): [`Pipe::write2`] sends one along with some bytes, and the receiver's read callback
/// finds it in [`Pipe::pending_count`] and takes it with [`Stream::accept`].
pub struct Pipe {
    h: Owned<sys::uv_pipe_t, StreamCbs<Pipe>>,
}

impl_handle!(Pipe, h);
impl_stream!(Pipe, h, sys::uv_pipe_t);

impl Pipe {
    /// Creates a pipe handle (`uv_pipe_init` with `ipc = 0`).
    pub fn new(lp: &impl AsLoop) -> Result<Pipe> {
        Pipe::init(lp, false)
    }

    /// Creates a pipe handle that can pass handles (`uv_pipe_init` with `ipc = 1`).
    pub fn new_ipc(lp: &impl AsLoop) -> Result<Pipe> {
        Pipe::init(lp, true)
    }

    fn init(lp: &impl AsLoop, ipc: bool) -> Result<Pipe> {
        // SAFETY: `lp` and `p` are valid; uv_pipe_init initialises `p`.
        let h = Owned::new(lp, StreamCbs::new(), |lp, p| unsafe {
            sys::uv_pipe_init(lp, p, ipc.into())
        })?;
        Ok(Pipe { h })
    }

    /// Adopts an existing pipe or socket descriptor (`uv_pipe_open`); the handle closes it.
    pub fn open(&self, fd: RawFd) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open; libuv validates the descriptor.
        Error::check(unsafe { sys::uv_pipe_open(raw, fd) }).map(drop)
    }

    /// Binds to a socket path (`uv_pipe_bind2`).
    ///
    /// # Errors
    ///
    /// `EADDRINUSE` if the path exists, `EINVAL` for an empty path or one too long for
    /// `sockaddr_un`.
    pub fn bind(&self, path: impl AsRef<Path>) -> Result<()> {
        let raw = self.h.raw()?;
        let name = path.as_ref().as_os_str().as_bytes();
        // SAFETY: the handle is open; `name` is valid for `name.len()` bytes during the call.
        Error::check(unsafe {
            sys::uv_pipe_bind2(raw, name.as_ptr().cast(), name.len(), NO_TRUNCATE)
        })
        .map(drop)
    }

    /// Connects to a socket path (`uv_pipe_connect2`); `cb` gets the outcome (`ENOENT` for a
    /// missing path, `ECANCELED` if the handle is closed first).
    pub fn connect(
        &self,
        path: impl AsRef<Path>,
        cb: impl FnOnce(Result<()>) + 'static,
    ) -> Result<()> {
        let raw = self.h.raw()?;
        let name = path.as_ref().as_os_str().as_bytes();
        submit_status(self, cb, |req, done| {
            // SAFETY: handle open; `name` is read during the call; the request block is
            // allocated until the callback reclaims it.
            unsafe {
                sys::uv_pipe_connect2(
                    req,
                    raw,
                    name.as_ptr().cast(),
                    name.len(),
                    NO_TRUNCATE,
                    Some(done),
                )
            }
        })
    }

    /// The path the pipe is bound to (`uv_pipe_getsockname`).
    pub fn sockname(&self) -> Result<PathBuf> {
        self.name(sys::uv_pipe_getsockname)
    }

    /// The path of the peer (`uv_pipe_getpeername`).
    pub fn peername(&self) -> Result<PathBuf> {
        self.name(sys::uv_pipe_getpeername)
    }

    fn name(
        &self,
        f: unsafe extern "C" fn(*const sys::uv_pipe_t, *mut c_char, *mut usize) -> i32,
    ) -> Result<PathBuf> {
        let raw = self.h.raw()?;
        let mut buf = [0u8; 256];
        let mut len = buf.len();
        // SAFETY: the handle is open; `buf`/`len` are a valid out buffer and its size.
        Error::check(unsafe { f(raw, buf.as_mut_ptr().cast(), &mut len) })?;
        // libuv includes no terminating NUL in `len` (abstract names may start with one).
        Ok(PathBuf::from(OsStr::from_bytes(&buf[..len])))
    }

    /// The credentials of the process at the other end of a connected Unix socket: Linux's
    /// `getsockopt(SO_PEERCRED)` on the handle's descriptor (`uv_fileno`). The kernel records
    /// them when the connection is made (for a `socketpair`, when the pair is made).
    ///
    /// # Errors
    ///
    /// `EBADF` once the handle is closing, `ENOTCONN` for an unconnected socket, `ENOTSOCK`
    /// (as a libuv error code) for a plain pipe.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        let fd = self.fileno()?;
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `fd` is the open handle's own descriptor; `cred` and `len` are a valid out
        // buffer of the size `len` says, which getsockopt writes at most.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            // libuv's codes are negated errno values on Unix.
            return Err(Error::from_code(-errno));
        }
        Ok(PeerCredentials {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
        })
    }

    /// Sets the socket file's permissions for other users (`uv_pipe_chmod`).
    pub fn chmod(&self, readable: bool, writable: bool) -> Result<()> {
        let raw = self.h.raw()?;
        let mut flags = 0;
        if readable {
            flags |= sys::uv_poll_event_UV_READABLE as i32;
        }
        if writable {
            flags |= sys::uv_poll_event_UV_WRITABLE as i32;
        }
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_pipe_chmod(raw, flags) }).map(drop)
    }

    /// Number of handles received over this IPC pipe and not yet accepted
    /// (`uv_pipe_pending_count`).
    pub fn pending_count(&self) -> usize {
        match self.h.raw() {
            // SAFETY: the handle is open.
            Ok(raw) => unsafe { sys::uv_pipe_pending_count(raw) }.max(0) as usize,
            Err(_) => 0,
        }
    }

    /// The type of the next pending handle (`uv_pipe_pending_type`): create a handle of that
    /// type and [`Stream::accept`] into it.
    pub fn pending_type(&self) -> HandleType {
        match self.h.raw() {
            // SAFETY: the handle is open.
            Ok(raw) => HandleType::from_raw(unsafe { sys::uv_pipe_pending_type(raw) }),
            Err(_) => HandleType::Unknown,
        }
    }

    /// Writes `buf` together with a handle to pass to the peer of this IPC pipe (`uv_write2`).
    /// `buf` must not be empty. The handle stays open here; the receiver gets its own.
    pub fn write2<B, S, F>(&self, buf: B, send: &S, cb: F) -> Result<()>
    where
        B: AsRef<[u8]> + 'static,
        S: Stream,
        F: FnOnce(Result<()>) + 'static,
    {
        let (raw, send) = (self.stream()?, send.stream()?);
        Req::<sys::uv_write_t, B, F>::submit(self.stream_shared(), buf, cb, false, |req, data| {
            // SAFETY: `data` lives in the request block until the callback.
            let b = buf::for_read(unsafe { (*data).as_ref() });
            // SAFETY: both streams open; the block is allocated until `on_write` reclaims it.
            unsafe { sys::uv_write2(req, raw, &b, 1, send, Some(on_write::<B, F>)) }
        })
        .map(drop)
    }
}
