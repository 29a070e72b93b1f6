//! Unix-domain sockets on libuv pipes: [`UnixStream`], [`UnixListener`] (in `listener`) and
//! [`IpcPipe`] (in `ipc`), which passes connections to another process or thread.
//!
//! Paths follow Gruvi's convention: a path whose first byte is NUL (`"\0name"`) names a Linux
//! abstract socket, which has no file and disappears with its last socket. The std
//! [`SocketAddr`] forms are accepted too ([`UnixStream::connect_addr`],
//! [`UnixListener::bind_addr`]).

mod ipc;
mod listener;

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use fiber_core::{Hub, SwitchBack};
use uv_sys_wrap::Pipe;

use crate::address::waited;
use crate::transport::Transport;

pub use ipc::{IpcPipe, IpcSend, Received};
pub use listener::{DEFAULT_LISTEN_BACKLOG, UnixListener};

/// A connected Unix-domain stream socket (like `std::os::unix::net::UnixStream`) on a libuv
/// pipe, whose blocking calls block only the calling fiber.
///
/// `Read` and `Write` are implemented on `&UnixStream` too, so one fiber can read while another
/// writes. Writes are queued: [`Write::flush`](std::io::Write::flush) waits until the kernel has everything; dropping
/// the stream still delivers what was queued.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use gruvi_stream::UnixStream;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let (mut a, mut b) = UnixStream::pair()?;
///     a.write_all(b"ping")?;
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf)?;
///     assert_eq!(&buf, b"ping");
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    transport: Transport<Pipe>,
}

impl UnixStream {
    /// Connects to the socket at `path`; a leading NUL byte names a Linux abstract socket.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the connection is made.
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing path, `ConnectionRefused` when nothing listens there,
    /// `InvalidInput` for a path too long for `sockaddr_un`.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        connect_pipe(Pipe::new(&Hub::current().loop_handle())?, path.as_ref())
            .map(UnixStream::from_pipe)
    }

    /// Connects to a std socket address (a path or an abstract name).
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the connection is made.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); `InvalidInput` for an unnamed address.
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect(path_of(addr)?)
    }

    /// A connected pair of streams (`socketpair(2)`), both on this thread's Hub.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Adopts a connected std socket, e.g. one end of a `socketpair` made on another thread.
    /// The socket is put in non-blocking mode.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        UnixStream::from_fd(OwnedFd::from(stream))
    }

    /// Adopts a descriptor of a connected socket or a pipe (`uv_pipe_open`); the stream closes
    /// it. The descriptor is put in non-blocking mode.
    pub fn from_fd(fd: OwnedFd) -> io::Result<UnixStream> {
        open_pipe(Pipe::new(&Hub::current().loop_handle())?, fd).map(UnixStream::from_pipe)
    }

    pub(crate) fn from_pipe(pipe: Pipe) -> UnixStream {
        UnixStream {
            transport: Transport::new(pipe),
        }
    }

    /// The buffered transport, for the zero-copy [`Connection`](crate::Connection) methods.
    pub(crate) fn transport(&self) -> &Transport<Pipe> {
        &self.transport
    }

    /// The peer's address (usually unnamed: clients rarely bind).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.transport.handle()?.peername()?)
    }

    /// The local address (unnamed for a client or a socket pair).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.transport.handle()?.sockname()?)
    }

    /// The process id, user id and group id of the peer (`SO_PEERCRED`), as the kernel recorded
    /// them when the connection was made: what a server checks before trusting a client (D-Bus'
    /// `EXTERNAL` authentication does).
    ///
    /// # Errors
    ///
    /// An error after [`close`](Self::close); the OS error otherwise.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn peer_cred(&self) -> io::Result<uv_sys_wrap::PeerCredentials> {
        Ok(self.transport.handle()?.peer_credentials()?)
    }

    /// Shuts down the read side, the write side or both (`Shutdown::Write` flushes first; the
    /// peer then reads end of stream while this side can still read).
    ///
    /// # Switchpoint
    ///
    /// Shutting down the write side waits for queued writes.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.transport.shutdown(how)
    }

    /// The libuv handle, e.g. to pass it over an IPC pipe.
    pub fn as_uv(&self) -> io::Result<Rc<Pipe>> {
        self.transport.handle()
    }

    /// Closes the connection now; queued writes are dropped. Dropping the stream instead
    /// delivers them first.
    pub fn close(&self) {
        self.transport.close()
    }
}

/// Connects `pipe` to `path`, waiting for the outcome.
fn connect_pipe(pipe: Pipe, path: &Path) -> io::Result<Pipe> {
    let sb = SwitchBack::new();
    let done = sb.callback();
    pipe.connect(path, move |res| {
        done.call(res);
    })
    .map_err(path_error)?;
    // On cancellation, dropping `pipe` closes it and cancels the connect.
    waited(sb.wait(), "connect timed out")?.map_err(path_error)?;
    Ok(pipe)
}

/// Hands `fd` to `pipe` (`uv_pipe_open`); on failure `fd` is closed.
pub(crate) fn open_pipe(pipe: Pipe, fd: OwnedFd) -> io::Result<Pipe> {
    pipe.open(fd.as_raw_fd())?;
    // The handle owns the descriptor now and closes it with itself.
    let _ = fd.into_raw_fd();
    Ok(pipe)
}

/// Maps libuv's `EINVAL` for an over-long or empty path to a clearer `InvalidInput`.
fn path_error(err: uv_sys_wrap::Error) -> io::Error {
    if err == uv_sys_wrap::Error::EINVAL {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid Unix socket path: empty, or too long for sockaddr_un",
        )
    } else {
        err.into()
    }
}

/// The path form (leading NUL for an abstract name) of a std socket address.
fn path_of(addr: &SocketAddr) -> io::Result<PathBuf> {
    if let Some(path) = addr.as_pathname() {
        return Ok(path.to_owned());
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        if let Some(name) = addr.as_abstract_name() {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(name);
            return Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "an unnamed Unix socket address cannot be bound or connected to",
    ))
}

/// The std socket address of a name libuv reported: empty for unnamed, a leading NUL for an
/// abstract name.
fn socket_addr(name: PathBuf) -> io::Result<SocketAddr> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        if let Some(abstract_name) = name.as_os_str().as_bytes().strip_prefix(b"\0") {
            return SocketAddr::from_abstract_name(abstract_name);
        }
    }
    // An empty path gives the unnamed address.
    SocketAddr::from_pathname(name)
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_cred_names_this_process_until_closed() {
        fiber_core::run(|| {
            let (a, b) = UnixStream::pair().unwrap();
            let cred = a.peer_cred().unwrap();
            assert_eq!(cred.pid, std::process::id() as i32);
            assert_eq!(b.peer_cred().unwrap(), cred);
            a.close();
            assert!(a.peer_cred().is_err());
        });
    }

    /// Reads `want` from `stream`, which has it buffered or soon will.
    fn read_exactly(stream: &UnixStream, want: &[u8]) {
        assert!(stream.transport.fill().unwrap());
        let got = stream.transport.with_buffered(|data| data.to_vec());
        assert_eq!(got, want);
        stream.transport.consume(got.len());
    }

    struct Told(std::cell::Cell<u32>);

    impl crate::FillNotify for Told {
        fn filled(self: Rc<Self>) {
            self.0.set(self.0.get() + 1);
        }
    }

    /// A connection waiting to read holds no receive buffer: it waits in the thread's pool, and
    /// the next read (into this connection or another) takes it back, bytes intact. A fiber
    /// blocked in `fill` and a `notify_when_filled` registration both give it up.
    #[test]
    fn a_connection_waiting_to_read_holds_no_receive_buffer() {
        fiber_core::run(|| {
            let (a, b) = UnixStream::pair().unwrap();
            b.transport.write(b"hello").unwrap();
            read_exactly(&a, b"hello");
            assert!(a.transport.receive_capacity() > 0);
            let before = crate::transport::pooled_buffers();
            let a = Rc::new(a);
            let reader = {
                let a = a.clone();
                fiber_core::spawn(move || read_exactly(&a, b"world"))
            };
            fiber_core::yield_now().unwrap();
            assert_eq!(
                a.transport.receive_capacity(),
                0,
                "a waiting reader kept its buffer"
            );
            assert_eq!(crate::transport::pooled_buffers(), before + 1);
            b.transport.write(b"world").unwrap();
            reader.join().unwrap();
            // The read took a buffer back from the pool (no new one each time).
            assert_eq!(crate::transport::pooled_buffers(), before);
            // The same with a registration instead of a waiting fiber.
            let told = Rc::new(Told(std::cell::Cell::new(0)));
            assert!(a.transport.notify_when_filled(told.clone()).is_ok());
            assert_eq!(a.transport.receive_capacity(), 0);
            assert_eq!(crate::transport::pooled_buffers(), before + 1);
            b.transport.write(b"again").unwrap();
            while told.0.get() == 0 {
                fiber_core::yield_now().unwrap();
            }
            assert_eq!(crate::transport::pooled_buffers(), before);
            read_exactly(&a, b"again");
        });
    }

    /// The pool keeps at most its limit of buffers: with more connections waiting, the rest
    /// keep their own (no free now and allocation at their next read); every connection still
    /// gets its own bytes afterwards.
    #[test]
    fn the_receive_buffer_pool_keeps_at_most_its_limit() {
        fiber_core::run(|| {
            let max = crate::transport::POOL;
            let pairs: Vec<_> = (0..max + 10).map(|_| UnixStream::pair().unwrap()).collect();
            let told = Rc::new(Told(std::cell::Cell::new(0)));
            for (i, (a, b)) in pairs.iter().enumerate() {
                b.transport.write(format!("first {i}").as_bytes()).unwrap();
                read_exactly(a, format!("first {i}").as_bytes());
            }
            let before = crate::transport::pooled_buffers();
            for (i, (a, _)) in pairs.iter().enumerate() {
                assert!(a.transport.notify_when_filled(told.clone()).is_ok());
                let kept = a.transport.receive_capacity();
                if before + i < max {
                    assert_eq!(kept, 0, "connection {i} kept its buffer");
                } else {
                    assert!(kept > 0, "connection {i} gave its buffer to a full pool");
                }
            }
            assert_eq!(crate::transport::pooled_buffers(), max);
            for (i, (_, b)) in pairs.iter().enumerate() {
                b.transport.write(format!("second {i}").as_bytes()).unwrap();
            }
            while (told.0.get() as usize) < pairs.len() {
                fiber_core::yield_now().unwrap();
            }
            for (i, (a, _)) in pairs.iter().enumerate() {
                read_exactly(a, format!("second {i}").as_bytes());
            }
        });
    }

    /// Many connections, chunks around the buffer thresholds, small and odd read limits (so
    /// reading pauses and resumes), readers that alternate `fill` and registrations: every
    /// byte arrives once and in order while buffers go to the pool and back.
    #[test]
    fn pooled_receive_buffers_keep_every_byte_in_order() {
        fn next(x: &mut u64) -> u64 {
            *x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *x >> 33
        }
        fn byte(conn: usize, i: usize) -> u8 {
            (i.wrapping_mul(31).wrapping_add(conn * 7) % 251) as u8
        }
        const TOTAL: usize = 300_000;
        const SIZES: [usize; 13] = [
            1, 7, 100, 2047, 2048, 2049, 4095, 4096, 4097, 16383, 16384, 20000, 70000,
        ];
        for (high, low) in [(6000, 1500), (64 * 1024, 16 * 1024), (1, 0), (4096, 4096)] {
            fiber_core::run(|| {
                let mut fibers = Vec::new();
                for c in 0..6usize {
                    let (a, b) = UnixStream::pair().unwrap();
                    a.transport.set_limits(crate::Limits {
                        read_high_water: high,
                        read_low_water: low,
                        ..Default::default()
                    });
                    let (a, b) = (Rc::new(a), Rc::new(b));
                    fibers.push(fiber_core::spawn(move || {
                        let mut seed = c as u64 + 1;
                        let mut sent = 0;
                        while sent < TOTAL {
                            let n = SIZES[next(&mut seed) as usize % SIZES.len()].min(TOTAL - sent);
                            let chunk: Vec<u8> = (sent..sent + n).map(|i| byte(c, i)).collect();
                            b.transport.write(&chunk).unwrap();
                            sent += n;
                            if next(&mut seed) % 3 == 0 {
                                fiber_core::yield_now().unwrap();
                            }
                        }
                        b.transport.flush().unwrap();
                        b.transport.shutdown_write().unwrap();
                    }));
                    fibers.push(fiber_core::spawn(move || {
                        let mut seed = c as u64 * 977 + 5;
                        let mut got = 0;
                        let told = Rc::new(Told(std::cell::Cell::new(0)));
                        loop {
                            if next(&mut seed) % 2 == 0 {
                                let before = told.0.get();
                                if a.transport.notify_when_filled(told.clone()).is_ok() {
                                    assert_eq!(a.transport.receive_capacity(), 0);
                                    while told.0.get() == before {
                                        fiber_core::yield_now().unwrap();
                                    }
                                }
                            }
                            if !a.transport.fill().unwrap() {
                                break;
                            }
                            let want = 1 + next(&mut seed) as usize % 9000;
                            let n = a.transport.with_buffered(|data| {
                                let n = data.len().min(want);
                                for (k, &v) in data[..n].iter().enumerate() {
                                    assert_eq!(v, byte(c, got + k), "conn {c} byte {}", got + k);
                                }
                                n
                            });
                            a.transport.consume(n);
                            got += n;
                            if next(&mut seed) % 4 == 0 {
                                fiber_core::yield_now().unwrap();
                            }
                        }
                        assert_eq!(got, TOTAL, "conn {c}");
                    }));
                }
                for fiber in fibers {
                    fiber.join().unwrap();
                }
                assert!(crate::transport::pooled_buffers() <= crate::transport::POOL);
            });
        }
    }

    /// A thread that ends without closing its Hub unwinds its parked fibers after the pool
    /// (first used after the Hub) was destroyed: a destructor that reads then must not reach
    /// the pool (a panic there, during the unwind, would abort the process).
    #[test]
    fn a_read_in_a_destructor_at_thread_exit_does_not_abort() {
        struct FillOnDrop(Rc<UnixStream>);
        impl Drop for FillOnDrop {
            fn drop(&mut self) {
                let _ = self.0.transport.fill();
            }
        }
        let thread = std::thread::spawn(|| {
            let _hub = fiber_core::Hub::current();
            let (a, b) = UnixStream::pair().unwrap();
            let _ = crate::transport::pooled_buffers();
            let (a, b) = (Rc::new(a), Rc::new(b));
            let (a2, b2) = (a.clone(), b.clone());
            let fiber = fiber_core::spawn(move || {
                b2.transport.write(b"hello").unwrap();
                read_exactly(&a2, b"hello");
                let _guard = FillOnDrop(a2.clone());
                // Parks on the other end until the thread exits.
                let _ = b2.transport.fill();
            });
            fiber_core::yield_now().unwrap();
            fiber_core::yield_now().unwrap();
            std::mem::forget(fiber);
            std::mem::forget((a, b));
        });
        thread.join().unwrap();
    }

    #[test]
    fn names_map_to_std_addresses_and_back() {
        let unnamed = socket_addr(PathBuf::new()).unwrap();
        assert!(unnamed.is_unnamed());
        assert!(path_of(&unnamed).is_err());
        let path = socket_addr(PathBuf::from("/tmp/x.sock")).unwrap();
        assert_eq!(path.as_pathname(), Some(Path::new("/tmp/x.sock")));
        assert_eq!(path_of(&path).unwrap(), PathBuf::from("/tmp/x.sock"));
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let abs = socket_addr(PathBuf::from("\0gruvi")).unwrap();
            assert_eq!(abs.as_abstract_name(), Some(&b"gruvi"[..]));
            assert_eq!(path_of(&abs).unwrap(), PathBuf::from("\0gruvi"));
        }
    }
}

crate::stream_impls::transport_io!(UnixStream);
crate::stream_impls::transport_settings!(UnixStream);
