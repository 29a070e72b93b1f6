//! Stream operations shared by TCP, pipes and TTYs (`uv_stream_t`).

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;

use libuv_sys2 as sys;

use crate::buf;
use crate::callback::{Callbacks, Slot};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::request::Req;

type AllocCb = dyn FnMut(usize) -> Vec<u8>;
type ReadCb<S> = dyn FnMut(&S, Result<Vec<u8>>);
type ConnectionCb<S> = dyn FnMut(&S, Result<()>);

/// The callbacks of a stream handle.
// Laid out in declaration order: what every read event touches (the two read callbacks and
// the buffer between them) is kept together, the listener's callback after it.
#[doc(hidden)]
#[repr(C)]
pub struct StreamCbs<S> {
    alloc: Slot<AllocCb>,
    /// The buffer handed to libuv by the allocation callback, until the read callback.
    pending: Cell<Option<Vec<u8>>>,
    read: Slot<ReadCb<S>>,
    connection: Slot<ConnectionCb<S>>,
}

impl<S> StreamCbs<S> {
    pub(crate) fn new() -> Self {
        StreamCbs {
            alloc: Slot::new(),
            read: Slot::new(),
            connection: Slot::new(),
            pending: Cell::new(None),
        }
    }
}

impl<S> Callbacks for StreamCbs<S> {
    fn clear_all(&self) {
        self.alloc.clear();
        self.read.clear();
        self.connection.clear();
        drop(self.pending.take());
    }
}

pub(crate) mod sealed {
    use super::*;

    /// Access to a stream owner for the provided methods of [`Stream`].
    pub trait StreamImpl: Sized {
        /// The stream, or `EBADF` once closing.
        fn stream(&self) -> Result<*mut sys::uv_stream_t>;
        /// The stream even when closing, only for reading fields.
        fn stream_unchecked(&self) -> *mut sys::uv_stream_t;
        fn stream_cbs(&self) -> &StreamCbs<Self>;
        fn stream_catch(&self, f: impl FnOnce());
        fn stream_shared(&self) -> &std::rc::Rc<crate::r#loop::LoopShared>;
        /// A borrowed view of the stream libuv passed to a callback.
        ///
        /// # Safety
        ///
        /// `raw` must be a stream of this type made by this crate, inside one of its callbacks.
        unsafe fn stream_view(raw: *mut sys::uv_stream_t) -> ManuallyDrop<Self>;
    }
}

/// Implements [`Stream`] for a type whose field `$field` is an `Owned<$raw, StreamCbs<$t>>`.
macro_rules! impl_stream {
    ($t:ty, $field:ident, $raw:ty) => {
        impl $crate::stream::sealed::StreamImpl for $t {
            fn stream(&self) -> $crate::Result<*mut ::libuv_sys2::uv_stream_t> {
                self.$field.raw().map(|p| p.cast())
            }
            fn stream_unchecked(&self) -> *mut ::libuv_sys2::uv_stream_t {
                self.$field.raw_unchecked().cast()
            }
            fn stream_cbs(&self) -> &$crate::stream::StreamCbs<Self> {
                self.$field.cbs()
            }
            fn stream_catch(&self, f: impl FnOnce()) {
                self.$field.catch(f)
            }
            fn stream_shared(&self) -> &::std::rc::Rc<$crate::r#loop::LoopShared> {
                self.$field.shared()
            }
            unsafe fn stream_view(
                raw: *mut ::libuv_sys2::uv_stream_t,
            ) -> ::std::mem::ManuallyDrop<Self> {
                // SAFETY: `raw` is one of our streams of this type (caller contract).
                let $field = unsafe { $crate::handle::Owned::borrowed(raw.cast::<$raw>()) };
                ::std::mem::ManuallyDrop::new(Self { $field })
            }
        }
        impl $crate::stream::Stream for $t {}
    };
}
pub(crate) use impl_stream;

/// Operations of stream handles: [`Tcp`](crate::Tcp), [`Pipe`](crate::Pipe) and
/// [`Tty`](crate::Tty) (`uv_stream_t`).
///
/// Writes own their buffers (any `AsRef<[u8]> + 'static`: `Vec<u8>`, `Box<[u8]>`,
/// `&'static [u8]`...) until their callback has run, so dropping or closing the stream while a
/// write is queued is safe: the write's callback then gets `ECANCELED`.
pub trait Stream: Handle + sealed::StreamImpl {
    /// Starts reading (`uv_read_start`).
    ///
    /// `alloc(suggested_size)` returns the buffer to read into: libuv fills its spare capacity
    /// and `read` receives it with its length extended by what was read (so an allocation
    /// callback may hand out a partly filled buffer to append to). A buffer without spare
    /// capacity makes `read` see `ENOBUFS`. `read` gets `Err(Error::EOF)` at end of stream and
    /// other errors as they come; empty reads (libuv's `nread == 0`) are not reported.
    ///
    /// A buffer whose read fails or reads nothing is dropped, not returned: never hand out a
    /// buffer that still holds bytes you need (append them after the read instead).
    fn read_start(
        &self,
        alloc: impl FnMut(usize) -> Vec<u8> + 'static,
        read: impl FnMut(&Self, Result<Vec<u8>>) + 'static,
    ) -> Result<()> {
        let raw = self.stream()?;
        let cbs = self.stream_cbs();
        cbs.alloc.set(Box::new(alloc));
        cbs.read.set(Box::new(read));
        // SAFETY: the stream is initialised and open; the callbacks live in its block.
        Error::check(unsafe {
            sys::uv_read_start(raw, Some(on_alloc::<Self>), Some(on_read::<Self>))
        })
        .map(drop)
    }

    /// Stops reading (`uv_read_stop`). Idempotent.
    fn read_stop(&self) -> Result<()> {
        let raw = self.stream()?;
        // SAFETY: the stream is initialised and open.
        Error::check(unsafe { sys::uv_read_stop(raw) }).map(drop)
    }

    /// Queues `buf` for writing (`uv_write`); `cb` runs once it is written or failed.
    fn write<B, F>(&self, buf: B, cb: F) -> Result<()>
    where
        B: AsRef<[u8]> + 'static,
        F: FnOnce(Result<()>) + 'static,
    {
        let raw = self.stream()?;
        Req::<sys::uv_write_t, B, F>::submit(self.stream_shared(), buf, cb, false, |req, data| {
            // SAFETY: `data` lives in the request block until the callback; libuv copies the
            // uv_buf_t itself.
            let b = buf::for_read(unsafe { (*data).as_ref() });
            // SAFETY: stream open, request block allocated until `on_write` reclaims it.
            unsafe { sys::uv_write(req, raw, &b, 1, Some(on_write::<B, F>)) }
        })
        .map(drop)
    }

    /// Queues several buffers as one write (`uv_write` with `nbufs > 1`).
    fn write_vectored<B, F>(&self, bufs: Vec<B>, cb: F) -> Result<()>
    where
        B: AsRef<[u8]> + 'static,
        F: FnOnce(Result<()>) + 'static,
    {
        let raw = self.stream()?;
        Req::<sys::uv_write_t, Vec<B>, F>::submit(
            self.stream_shared(),
            bufs,
            cb,
            false,
            |req, data| {
                // SAFETY: `data` lives in the request block until the callback.
                let bs = buf::for_all(unsafe { &*data });
                // SAFETY: stream open; libuv copies the uv_buf_t array, the bytes stay in the block.
                unsafe {
                    sys::uv_write(
                        req,
                        raw,
                        bs.as_ptr(),
                        bs.len() as u32,
                        Some(on_write::<Vec<B>, F>),
                    )
                }
            },
        )
        .map(drop)
    }

    /// Writes what can be written right now without queueing (`uv_try_write`).
    ///
    /// # Errors
    ///
    /// `EAGAIN` when nothing could be written (also while earlier writes are queued).
    ///
    /// With nothing queued, a writable stream and an open descriptor (the usual case), this
    /// is what `uv_try_write` does after its checks: one `write(2)` on the descriptor, retried
    /// on `EINTR`, `EAGAIN`/`EWOULDBLOCK`/`ENOBUFS` mapped to `EAGAIN` and other failures to
    /// their libuv codes. Any other case goes through `uv_try_write` itself, for its errors.
    fn try_write(&self, buf: &[u8]) -> Result<usize> {
        let raw = self.stream()?;
        #[cfg(target_os = "linux")]
        if let Some((fd, socket)) = direct_write_fd(raw, buf.len()) {
            return write_fd(fd, socket, buf);
        }
        try_write_uv(raw, buf)
    }

    /// Vectored [`Stream::try_write`] (`uv_try_write` with `nbufs > 1`).
    fn try_write_vectored(&self, bufs: &[&[u8]]) -> Result<usize> {
        let raw = self.stream()?;
        let bs = buf::for_all(bufs);
        // SAFETY: stream open; uv_try_write only reads the buffers during the call.
        Error::check(unsafe { sys::uv_try_write(raw, bs.as_ptr(), bs.len() as u32) })
            .map(|n| n as usize)
    }

    /// Shuts down the write side once queued writes are done (`uv_shutdown`).
    fn shutdown(&self, cb: impl FnOnce(Result<()>) + 'static) -> Result<()> {
        shutdown_impl(self, cb)
    }

    /// Listens for connections (`uv_listen`); `cb` runs for each incoming one, which
    /// [`Stream::accept`] then takes.
    fn listen(&self, backlog: i32, cb: impl FnMut(&Self, Result<()>) + 'static) -> Result<()> {
        let raw = self.stream()?;
        self.stream_cbs().connection.set(Box::new(cb));
        // SAFETY: the stream is initialised and open; the callback lives in its block.
        Error::check(unsafe { sys::uv_listen(raw, backlog, Some(on_connection::<Self>)) }).map(drop)
    }

    /// Accepts a pending connection into `client`, a freshly created stream (`uv_accept`).
    ///
    /// # Errors
    ///
    /// `EAGAIN` if no connection is pending.
    fn accept<C: Stream>(&self, client: &C) -> Result<()> {
        let (server, client) = (self.stream()?, client.stream()?);
        // SAFETY: both streams are initialised and open.
        Error::check(unsafe { sys::uv_accept(server, client) }).map(drop)
    }

    /// Bytes queued for writing (`uv_stream_get_write_queue_size`).
    fn write_queue_size(&self) -> usize {
        // SAFETY: the block is allocated while the owner lives; this reads a field.
        unsafe { sys::uv_stream_get_write_queue_size(self.stream_unchecked()) }
    }

    /// True if the stream is readable (`uv_is_readable`).
    fn is_readable(&self) -> bool {
        // SAFETY: the block is allocated while the owner lives; this reads flags.
        self.stream()
            .is_ok_and(|s| unsafe { sys::uv_is_readable(s) } != 0)
    }

    /// True if the stream is writable (`uv_is_writable`).
    fn is_writable(&self) -> bool {
        // SAFETY: the block is allocated while the owner lives; this reads flags.
        self.stream()
            .is_ok_and(|s| unsafe { sys::uv_is_writable(s) } != 0)
    }

    /// Makes writes block until done (`uv_stream_set_blocking`); meant for pipes and TTYs
    /// shared with other processes.
    fn set_blocking(&self, blocking: bool) -> Result<()> {
        let raw = self.stream()?;
        // SAFETY: the stream is initialised and open.
        Error::check(unsafe { sys::uv_stream_set_blocking(raw, blocking.into()) }).map(drop)
    }

    /// The OS file descriptor (`uv_fileno`).
    fn fileno(&self) -> Result<RawFd> {
        let raw = self.stream()?;
        let mut fd: sys::uv_os_fd_t = -1;
        // SAFETY: the stream is open; `fd` is a valid out pointer.
        Error::check(unsafe { sys::uv_fileno(raw.cast(), &mut fd) })?;
        Ok(fd)
    }
}

/// The most bytes libuv writes in one call (`UV__IO_MAX_BYTES`): longer writes fail with
/// `EINVAL` there, so they take libuv's path.
#[cfg(target_os = "linux")]
const IO_MAX_BYTES: usize = 0x7fff_f000;

/// The descriptor `uv_try_write` would write `len` bytes to, if all of its checks pass: no
/// connect in progress, nothing queued, a descriptor, the stream writable and `len` within
/// libuv's limit (`uv_try_write2` and `uv__check_before_write` in libuv's `unix/stream.c`),
/// and whether it is a TCP socket. `None` when one fails: libuv's own call then gives the same
/// error it always did.
#[cfg(target_os = "linux")]
#[inline(always)]
fn direct_write_fd(raw: *mut sys::uv_stream_t, len: usize) -> Option<(RawFd, bool)> {
    // SAFETY: `raw` is an open stream of ours (the caller checked it is not closing); these
    // read plain fields libuv keeps in it (`connect_req`, `write_queue_size`, `io_watcher.fd`
    // and the handle's `type_`; only the loop's thread, this one, writes them).
    let (connecting, queued, fd, kind) = unsafe {
        (
            !(*raw).connect_req.is_null(),
            (*raw).write_queue_size,
            (*raw).io_watcher.fd,
            (*raw).type_,
        )
    };
    if connecting || queued != 0 || fd < 0 || len > IO_MAX_BYTES {
        return None;
    }
    // SAFETY: as above; `uv_is_writable` reads the stream's flags.
    let writable = unsafe { sys::uv_is_writable(raw) } != 0;
    writable.then_some((fd, kind == sys::uv_handle_type_UV_TCP))
}

/// One write of `buf` to `fd`, as libuv's `uv__try_write` makes it: `write(2)`, or for a TCP
/// socket `send(2)` without flags, which is the same call for a socket (send(2): "equivalent
/// to write(2)" with no flags) by a shorter path through the kernel (measured here: ~130 ns
/// less per call on loopback; a descriptor of another kind, a pipe or a TTY, cannot take it).
#[cfg(target_os = "linux")]
#[inline(always)]
fn write_fd(fd: RawFd, socket: bool, buf: &[u8]) -> Result<usize> {
    let n = write_once(fd, socket, buf);
    if n >= 0 {
        return Ok(n as usize);
    }
    write_fd_failed(fd, socket, buf)
}

/// One `send(2)` (a socket) or `write(2)` of `buf` to `fd`.
#[cfg(target_os = "linux")]
#[inline(always)]
fn write_once(fd: RawFd, socket: bool, buf: &[u8]) -> isize {
    // SAFETY: `buf` is valid for reads of its length during the call; `fd` is the stream's
    // open descriptor (a socket when `socket`).
    unsafe {
        if socket {
            libc::send(fd, buf.as_ptr().cast(), buf.len(), 0)
        } else {
            libc::write(fd, buf.as_ptr().cast(), buf.len())
        }
    }
}

/// [`write_fd`] after a failed write: retried on `EINTR`, and with `write(2)` on
/// `ENOTSOCK` (a TCP handle opened over a descriptor that is not a socket: `uv_tcp_open`
/// takes any, and libuv's own writes use `write(2)`), else the error as libuv reports it. Out
/// of line: the usual write takes the bytes.
#[cfg(target_os = "linux")]
#[cold]
#[inline(never)]
fn write_fd_failed(fd: RawFd, mut socket: bool, buf: &[u8]) -> Result<usize> {
    loop {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if errno == libc::EAGAIN || errno == libc::EWOULDBLOCK || errno == libc::ENOBUFS {
            return Err(Error::EAGAIN);
        }
        if errno == libc::ENOTSOCK && socket {
            socket = false;
        } else if errno != libc::EINTR {
            return Err(Error::from_code(-errno));
        }
        let n = write_once(fd, socket, buf);
        if n >= 0 {
            return Ok(n as usize);
        }
    }
}

/// `uv_try_write` of one buffer. Out of line: the usual write takes [`write_fd`]'s path.
#[cold]
#[inline(never)]
fn try_write_uv(raw: *mut sys::uv_stream_t, buf: &[u8]) -> Result<usize> {
    let bs = [buf::for_read(buf)];
    // SAFETY: `raw` is an open stream (checked by the caller); uv_try_write only reads the
    // buffer during the call.
    Error::check(unsafe { sys::uv_try_write(raw, bs.as_ptr(), 1) }).map(|n| n as usize)
}

fn shutdown_impl<S: Stream>(s: &S, cb: impl FnOnce(Result<()>) + 'static) -> Result<()> {
    let raw = s.stream()?;
    submit_status(s, cb, |req, done| {
        // SAFETY: stream open, request block allocated until the callback reclaims it.
        unsafe { sys::uv_shutdown(req, raw, Some(done)) }
    })
}

/// Completion callback type of data-less requests (`uv_connect_cb`, `uv_shutdown_cb`).
pub(crate) type StatusCb<R> = unsafe extern "C" fn(*mut R, std::ffi::c_int);

/// Submits a request that carries no data and completes with a status: `submit(req, done)`
/// must pass `done` to libuv as the completion callback.
pub(crate) fn submit_status<R, F>(
    s: &impl sealed::StreamImpl,
    cb: F,
    submit: impl FnOnce(*mut R, StatusCb<R>) -> std::ffi::c_int,
) -> Result<()>
where
    R: crate::request::RawReq,
    F: FnOnce(Result<()>) + 'static,
{
    Req::<R, (), F>::submit(s.stream_shared(), (), cb, false, |req, _| {
        submit(req, on_status::<R, F>)
    })
    .map(drop)
}

unsafe extern "C" fn on_status<R, F>(req: *mut R, status: std::ffi::c_int)
where
    R: crate::request::RawReq,
    F: FnOnce(Result<()>),
{
    // SAFETY: libuv completes a request submitted by `submit_status::<R, F>` exactly once.
    let done = unsafe { Req::<R, (), F>::complete(req) };
    done.run(|(), cb| cb(Error::check(status).map(drop)));
}

/// Completion callback of writes (`uv_write_cb`) whose request holds data `D`.
pub(crate) unsafe extern "C" fn on_write<D, F: FnOnce(Result<()>)>(
    req: *mut sys::uv_write_t,
    status: i32,
) {
    // SAFETY: libuv completes a write submitted with these types (`Stream::write*`,
    // `Pipe::write2`) exactly once.
    let done = unsafe { Req::<sys::uv_write_t, D, F>::complete(req) };
    done.run(|_bufs, cb| cb(Error::check(status).map(drop)));
}

unsafe extern "C" fn on_alloc<S: Stream>(
    raw: *mut sys::uv_handle_t,
    suggested: usize,
    out: *mut sys::uv_buf_t,
) {
    // SAFETY: libuv calls this for streams of type S read-started by `read_start`.
    let s = unsafe { S::stream_view(raw.cast()) };
    // A panicking allocation callback yields an empty buffer: libuv reports ENOBUFS and the loop
    // stops to resume the panic.
    let mut b = sys::uv_buf_t {
        base: std::ptr::null_mut(),
        len: 0,
    };
    s.stream_catch(|| {
        if let Some(mut vec) = s.stream_cbs().alloc.with(|alloc| alloc(suggested)) {
            b = buf::spare(&mut vec);
            // Empty: each read callback takes the buffer of the allocation before it, and
            // libuv calls the read callback after every allocation. Forgotten rather than
            // dropped: no drop code for a buffer that cannot be there.
            let empty = s.stream_cbs().pending.replace(Some(vec));
            debug_assert!(empty.is_none());
            std::mem::forget(empty);
        }
    });
    // SAFETY: `out` is libuv's out parameter for this call.
    unsafe { out.write(b) };
}

unsafe extern "C" fn on_read<S: Stream>(
    raw: *mut sys::uv_stream_t,
    nread: isize,
    _buf: *const sys::uv_buf_t,
) {
    // SAFETY: libuv calls this for streams of type S read-started by `read_start`.
    let s = unsafe { S::stream_view(raw) };
    let pending = s.stream_cbs().pending.take();
    let result = match (nread, pending) {
        (0, _) => return,
        (n, Some(mut vec)) if n > 0 => {
            // SAFETY: libuv initialised `n` bytes of the spare capacity handed out by on_alloc.
            unsafe { vec.set_len(vec.len() + n as usize) };
            Ok(vec)
        }
        (n, _) => Err(Error::from_code(n.min(-1) as i32)),
    };
    s.stream_catch(|| {
        s.stream_cbs().read.with(|read| read(&s, result));
    });
}

unsafe extern "C" fn on_connection<S: Stream>(raw: *mut sys::uv_stream_t, status: i32) {
    // SAFETY: libuv calls this for listening streams of type S.
    let s = unsafe { S::stream_view(raw) };
    s.stream_catch(|| {
        s.stream_cbs()
            .connection
            .with(|cb| cb(&s, Error::check(status).map(drop)));
    });
}
