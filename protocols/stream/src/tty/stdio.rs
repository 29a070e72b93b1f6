//! The process's standard input and output as fiber streams: a terminal ([`Tty`]), a pipe or
//! socket (a libuv pipe), or a file (read and written on libuv's thread pool).

use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

use fiber_core::{Hub, SwitchBack};
use uv_sys_wrap::{Pipe, queue_work};

use super::Tty;
use crate::address::waited;
use crate::transport::Transport;
use crate::unix::open_pipe;

/// The largest read of a file-backed standard stream.
const FILE_CHUNK: usize = 64 * 1024;

/// What a standard stream is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StdioKind {
    /// A terminal (libuv TTY handle).
    Tty,
    /// A pipe or a socket (libuv pipe handle).
    Pipe,
    /// A regular file or a device that is not a terminal, such as `/dev/null`: read and
    /// written on libuv's thread pool.
    File,
}

/// The stream behind a standard descriptor, on its own duplicate of that descriptor.
enum Inner {
    Tty(Tty),
    Pipe(Transport<Pipe>),
    File(Arc<File>),
}

impl Inner {
    /// Adopts a duplicate of `fd` as the stream that fits its kind.
    fn open(fd: BorrowedFd<'_>) -> io::Result<Inner> {
        let dup = fd.try_clone_to_owned()?;
        if dup.is_terminal() {
            return Tty::from_fd(dup).map(Inner::Tty);
        }
        let file = File::from(dup);
        let kind = file.metadata()?.file_type();
        if kind.is_fifo() || kind.is_socket() {
            let pipe = Pipe::new(&Hub::current().loop_handle())?;
            let pipe = open_pipe(pipe, OwnedFd::from(file))?;
            return Ok(Inner::Pipe(Transport::new(pipe)));
        }
        Ok(Inner::File(Arc::new(file)))
    }

    fn kind(&self) -> StdioKind {
        match self {
            Inner::Tty(_) => StdioKind::Tty,
            Inner::Pipe(_) => StdioKind::Pipe,
            Inner::File(_) => StdioKind::File,
        }
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Inner::Tty(tty) => tty.transport().read(buf),
            Inner::Pipe(pipe) => pipe.read(buf),
            Inner::File(file) => {
                let (file, len) = (file.clone(), buf.len().min(FILE_CHUNK));
                let data = on_pool(move || {
                    let mut data = vec![0; len];
                    let n = (&*file).read(&mut data)?;
                    data.truncate(n);
                    Ok(data)
                })?;
                buf[..data.len()].copy_from_slice(&data);
                Ok(data.len())
            }
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Inner::Tty(tty) => tty.transport().write(buf),
            Inner::Pipe(pipe) => pipe.write(buf),
            Inner::File(file) => {
                let (file, data) = (file.clone(), buf.to_vec());
                on_pool(move || (&*file).write(&data))
            }
        }
    }

    fn flush(&self) -> io::Result<()> {
        match self {
            Inner::Tty(tty) => tty.transport().flush(),
            Inner::Pipe(pipe) => pipe.flush(),
            // Each write has completed when it returns.
            Inner::File(_) => Ok(()),
        }
    }
}

/// Runs blocking file I/O on libuv's thread pool, blocking only the calling fiber. A
/// cancelled fiber leaves the operation to complete unseen.
fn on_pool<T: Send + 'static>(
    op: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let hub = Hub::current();
    let sb = SwitchBack::new();
    let done = sb.callback();
    queue_work(&hub.loop_handle(), op, move |res| {
        done.call(res);
    })?;
    waited(sb.wait(), "file I/O timed out")??
}

/// The process's standard input as a fiber stream: see [`stdin()`].
pub struct Stdin {
    inner: Inner,
}

/// The process's standard output as a fiber stream: see [`stdout()`].
pub struct Stdout {
    inner: Inner,
}

/// Opens standard input (descriptor 0) as a stream that blocks only the calling fiber.
///
/// The stream works on a duplicate of descriptor 0: a terminal through libuv's TTY handle
/// (on a reopened file description, so the terminal's other users are not affected), a pipe
/// or socket through a libuv pipe (which makes the shared file description non-blocking, as
/// every libuv program does), anything else (a regular file, `/dev/null`) with reads on
/// libuv's thread pool. Make one per process: two streams on one pipe would each get part of
/// the input. Do not mix it with `std::io::stdin()`, whose buffer would keep some input.
///
/// # Errors
///
/// `EBADF` if descriptor 0 is closed; an error opening the terminal or pipe.
///
/// # Examples
///
/// ```no_run
/// use std::io::{self, Read, Write};
///
/// fiber_core::run(|| -> io::Result<()> {
///     let (mut input, mut output) = (gruvi_stream::stdin()?, gruvi_stream::stdout()?);
///     // cat: other fibers keep running while this one waits for input.
///     io::copy(&mut input, &mut output)?;
///     output.flush()
/// })?;
/// # Ok::<(), io::Error>(())
/// ```
pub fn stdin() -> io::Result<Stdin> {
    Ok(Stdin {
        inner: Inner::open(io::stdin().as_fd())?,
    })
}

/// Opens standard output (descriptor 1) as a stream that blocks only the calling fiber.
///
/// As [`stdin()`]: a terminal, a pipe or socket, or a file (written on libuv's thread pool).
/// Writes to a terminal or pipe are queued: call [`Write::flush`] before the process exits.
/// Output written here and through `std::io::stdout()` may interleave arbitrarily.
///
/// # Errors
///
/// `EBADF` if descriptor 1 is closed; an error opening the terminal or pipe.
pub fn stdout() -> io::Result<Stdout> {
    Ok(Stdout {
        inner: Inner::open(io::stdout().as_fd())?,
    })
}

impl Stdin {
    /// What standard input is connected to.
    pub fn kind(&self) -> StdioKind {
        self.inner.kind()
    }

    /// The terminal, if standard input is one (to set its mode).
    pub fn as_tty(&self) -> Option<&Tty> {
        match &self.inner {
            Inner::Tty(tty) => Some(tty),
            _ => None,
        }
    }
}

impl Stdout {
    /// What standard output is connected to.
    pub fn kind(&self) -> StdioKind {
        self.inner.kind()
    }

    /// The terminal, if standard output is one (for its window size).
    pub fn as_tty(&self) -> Option<&Tty> {
        match &self.inner {
            Inner::Tty(tty) => Some(tty),
            _ => None,
        }
    }
}

/// # Switchpoint
///
/// Reads block the fiber until input arrives.
impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Read for &Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// # Switchpoint
///
/// Writes block the fiber while the write queue is full; `flush` until it is empty.
impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Write for &Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdin").field("kind", &self.kind()).finish()
    }
}

impl fmt::Debug for Stdout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdout")
            .field("kind", &self.kind())
            .finish()
    }
}
