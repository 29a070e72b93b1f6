//! [`IpcPipe`]: passing connections to another process or thread over a Unix socket
//! (`uv_write2` with `SCM_RIGHTS`).

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;

use fiber_core::{Callback, Hub, SwitchBack};
use uv_sys_wrap::{Error as UvError, Handle, HandleType, Pipe, Stream, Tcp};

use super::{UnixStream, connect_pipe, open_pipe};
use crate::address::waited;
use crate::tcp::TcpStream;
use crate::transport::Transport;

/// The byte sent along with each handle: the descriptor rides on it, so each one received
/// stands for exactly one pending handle.
const MARKER: u8 = b'H';

/// A connection received by [`IpcPipe::recv_stream`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Received {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix-domain stream (or a pipe).
    Unix(UnixStream),
}

mod sealed {
    use std::rc::Rc;

    /// The libuv handle of a stream that can be passed.
    pub enum Outgoing {
        Tcp(Rc<uv_sys_wrap::Tcp>),
        Pipe(Rc<uv_sys_wrap::Pipe>),
    }

    pub trait Sealed {
        fn outgoing(&self) -> std::io::Result<Outgoing>;
    }
}

use sealed::Outgoing;

/// Streams an [`IpcPipe`] can pass: [`TcpStream`] and [`UnixStream`].
pub trait IpcSend: sealed::Sealed {}

impl sealed::Sealed for TcpStream {
    fn outgoing(&self) -> io::Result<Outgoing> {
        self.as_uv().map(Outgoing::Tcp)
    }
}

impl IpcSend for TcpStream {}

impl sealed::Sealed for UnixStream {
    fn outgoing(&self) -> io::Result<Outgoing> {
        self.as_uv().map(Outgoing::Pipe)
    }
}

impl IpcSend for UnixStream {}

/// A Unix socket that carries connections (libuv's IPC pipe): one side
/// [sends](Self::send_stream) an accepted [`TcpStream`] or a [`UnixStream`], the other
/// [receives](Self::recv_stream) its own copy of that connection. The two sides may be two
/// processes or two threads, each running its own Hub: make a std socket pair, hand one end to
/// each side and adopt it there with [`from_std`](Self::from_std) (or
/// [`from_fd`](Self::from_fd), e.g. for a descriptor a child inherited as its stdin).
///
/// The pipe carries connections only: each one travels with a one-byte message, so it has no
/// `Read` or `Write` of its own.
///
/// # Examples
///
/// Handing a connection to another thread with its own Hub:
///
/// ```
/// use std::io::{Read, Write};
/// use gruvi_stream::{IpcPipe, Received, UnixStream};
///
/// let (here, there) = std::os::unix::net::UnixStream::pair()?;
/// let worker = std::thread::spawn(move || {
///     fiber_core::run(|| -> std::io::Result<()> {
///         let ipc = IpcPipe::from_std(there)?;
///         let Received::Unix(mut conn) = ipc.recv_stream()? else { panic!("not a Unix stream") };
///         conn.write_all(b"hello from the worker")
///     })
/// });
/// fiber_core::run(|| -> std::io::Result<()> {
///     let ipc = IpcPipe::from_std(here)?;
///     let (mine, theirs) = UnixStream::pair()?;
///     ipc.send_stream(&theirs)?;
///     drop(theirs); // the worker has its own copy
///     let mut greeting = String::new();
///     (&mine).read_to_string(&mut greeting)?;
///     assert_eq!(greeting, "hello from the worker");
///     Ok(())
/// })?;
/// worker.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct IpcPipe {
    transport: Transport<Pipe>,
}

impl IpcPipe {
    /// A connected pair of IPC pipes on this thread's Hub.
    pub fn pair() -> io::Result<(IpcPipe, IpcPipe)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((IpcPipe::from_std(a)?, IpcPipe::from_std(b)?))
    }

    /// Adopts a connected std Unix socket, such as one end of a socket pair made on another
    /// thread. The socket is put in non-blocking mode.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<IpcPipe> {
        IpcPipe::from_fd(OwnedFd::from(stream))
    }

    /// Adopts the descriptor of a connected Unix stream socket (`uv_pipe_open` on an IPC pipe);
    /// the pipe closes it. The descriptor is put in non-blocking mode.
    pub fn from_fd(fd: OwnedFd) -> io::Result<IpcPipe> {
        let pipe = open_pipe(Pipe::new_ipc(&Hub::current().loop_handle())?, fd)?;
        Ok(IpcPipe::from_pipe(pipe))
    }

    /// Connects to a listening Unix socket at `path` whose peer uses it as an IPC pipe.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the connection is made.
    ///
    /// # Errors
    ///
    /// As [`UnixStream::connect`].
    pub fn connect(path: impl AsRef<Path>) -> io::Result<IpcPipe> {
        let pipe = connect_pipe(Pipe::new_ipc(&Hub::current().loop_handle())?, path.as_ref())?;
        Ok(IpcPipe::from_pipe(pipe))
    }

    fn from_pipe(pipe: Pipe) -> IpcPipe {
        IpcPipe {
            transport: Transport::new(pipe),
        }
    }

    /// Sends `stream` to the other side, which gets its own copy of the connection.
    ///
    /// `stream` stays open here: close or drop it once this returns, unless both sides are
    /// meant to use it. Pass a connection before reading from it: bytes this side has already
    /// read into its buffer stay here. Writes queued here are still delivered by this side.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the descriptor has been handed to the kernel (it must not be
    /// closed before that).
    ///
    /// # Errors
    ///
    /// `NotConnected` if the stream or the pipe is closed, `BrokenPipe` if the other side went
    /// away, a cancelled fiber's error (the send may still complete).
    pub fn send_stream<S: IpcSend>(&self, stream: &S) -> io::Result<()> {
        let pipe = self.transport.handle()?;
        let sb = SwitchBack::new();
        let done = sb.callback();
        match stream.outgoing()? {
            Outgoing::Tcp(tcp) => write2(&pipe, tcp, done),
            Outgoing::Pipe(unix) => write2(&pipe, unix, done),
        }?;
        waited(sb.wait(), "sending a stream timed out")??;
        Ok(())
    }

    /// Waits for a connection sent by the other side.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until a connection arrives.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` once the other side closed its end, `InvalidData` if it sent something
    /// else than [`send_stream`](Self::send_stream) does, `NotConnected` once this pipe is
    /// closed, a cancelled fiber's error.
    pub fn recv_stream(&self) -> io::Result<Received> {
        if !self.transport.fill()? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other side closed the IPC pipe",
            ));
        }
        let marker = self.transport.with_buffered(|bytes| bytes[0]);
        self.transport.consume(1);
        let pipe = self.transport.handle()?;
        if marker != MARKER || pipe.pending_count() == 0 {
            return Err(invalid_data("a message without a handle on the IPC pipe"));
        }
        accept(&pipe)
    }

    /// Closes the pipe now; the other side's [`recv_stream`](Self::recv_stream) then fails
    /// with `UnexpectedEof`.
    pub fn close(&self) {
        self.transport.close()
    }
}

/// Queues the marker with `send` attached; both handles stay open until the write is done.
fn write2<S: Stream + 'static>(
    pipe: &Rc<Pipe>,
    send: Rc<S>,
    done: Callback<Result<(), UvError>>,
) -> io::Result<()> {
    let keep = (pipe.clone(), send.clone());
    pipe.write2(&[MARKER][..], &*send, move |res| {
        drop(keep);
        done.call(res);
    })?;
    Ok(())
}

/// Accepts the next pending handle of `pipe` as a stream of its type.
fn accept(pipe: &Pipe) -> io::Result<Received> {
    let lp = pipe.loop_handle();
    match pipe.pending_type() {
        HandleType::Tcp => {
            let tcp = Tcp::new(&lp)?;
            pipe.accept(&tcp)?;
            Ok(Received::Tcp(TcpStream::from_handle(tcp)))
        }
        HandleType::Pipe => {
            let unix = Pipe::new(&lp)?;
            pipe.accept(&unix)?;
            Ok(Received::Unix(UnixStream::from_pipe(unix)))
        }
        other => {
            // Take it off the queue all the same (into a pipe handle, closed at once), so that
            // the next message lines up with its own handle.
            let discard = Pipe::new(&lp)?;
            let _ = pipe.accept(&discard);
            Err(invalid_data(&format!(
                "received a handle of an unsupported type ({other:?})"
            )))
        }
    }
}

fn invalid_data(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl fmt::Debug for IpcPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = self.transport.handle().ok().and_then(|p| p.fileno().ok());
        f.debug_struct("IpcPipe").field("fd", &fd).finish()
    }
}
