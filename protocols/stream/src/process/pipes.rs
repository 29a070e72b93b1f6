//! Our ends of a child's pipes: [`ChildStdin`], [`ChildStdout`], [`ChildStderr`] and
//! [`ChildPipe`] (an extra descriptor), each a [`Transport`] over a libuv pipe.

use std::fmt;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use uv_sys_wrap::{Pipe, Stream as _};

use crate::tcp::check_timeout;
use crate::transport::{Limits, Transport};

/// Our end of one pipe to a child, shared by the four public types.
pub(crate) struct PipeEnd {
    transport: Transport<Pipe>,
}

impl PipeEnd {
    pub(crate) fn new(pipe: Pipe) -> PipeEnd {
        PipeEnd {
            transport: Transport::new(pipe),
        }
    }

    /// The libuv pipe, to hand it to another child ([`Stdio`](super::Stdio)).
    pub(crate) fn handle(&self) -> io::Result<Rc<Pipe>> {
        self.transport.handle()
    }

    /// Stops our reading, for a pipe handed to another child.
    pub(crate) fn handed_over(self) -> PipeEnd {
        self.transport.shutdown_read();
        self
    }

    fn fd(&self) -> Option<i32> {
        self.handle().ok().and_then(|pipe| pipe.fileno().ok())
    }
}

/// Implements `Read` on the type and on a shared reference to it, and the read timeout.
macro_rules! impl_read {
    ($ty:ident) => {
        impl $ty {
            /// Sets how long a read may block before failing with `ErrorKind::TimedOut`
            /// (`None`: forever). The pipe stays usable after a timeout.
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a zero duration, as std's sockets do.
            pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                check_timeout(timeout)?;
                self.end.transport.set_read_timeout(timeout);
                Ok(())
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> Option<Duration> {
                self.end.transport.read_timeout()
            }
        }

        impl Read for $ty {
            /// # Switchpoint
            ///
            /// Blocks the fiber until the child wrote something or closed its end.
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.end.transport.read(buf)
            }
        }

        impl Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.end.transport.read(buf)
            }
        }
    };
}

/// Implements `Write` on the type and on a shared reference to it, and the write timeout.
macro_rules! impl_write {
    ($ty:ident) => {
        impl $ty {
            /// Sets how long a write may block on a full queue before failing with
            /// `ErrorKind::TimedOut` (`None`: forever).
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a zero duration.
            pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                check_timeout(timeout)?;
                self.end.transport.set_write_timeout(timeout);
                Ok(())
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> Option<Duration> {
                self.end.transport.write_timeout()
            }
        }

        impl Write for $ty {
            /// # Switchpoint
            ///
            /// Blocks the fiber while the write queue is over its limit.
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.end.transport.write(buf)
            }

            fn flush(&mut self) -> io::Result<()> {
                self.end.transport.flush()
            }
        }

        impl Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.end.transport.write(buf)
            }

            fn flush(&mut self) -> io::Result<()> {
                self.end.transport.flush()
            }
        }
    };
}

/// Implements the parts every pipe type shares: construction, limits, `Debug`, and turning it
/// back into its [`PipeEnd`].
macro_rules! impl_common {
    ($ty:ident) => {
        impl $ty {
            pub(crate) fn new(pipe: Pipe) -> $ty {
                $ty {
                    end: PipeEnd::new(pipe),
                }
            }

            pub(crate) fn into_end(self) -> PipeEnd {
                self.end
            }

            /// The buffer and queue limits (flow control).
            pub fn limits(&self) -> Limits {
                self.end.transport.limits()
            }

            /// Sets the buffer and queue limits.
            ///
            /// # Panics
            ///
            /// If `read_low_water > read_high_water` or `read_high_water` is 0.
            pub fn set_limits(&self, limits: Limits) {
                self.end.transport.set_limits(limits)
            }

            /// The libuv pipe, e.g. to pass it over an IPC pipe.
            ///
            /// # Errors
            ///
            /// `NotConnected` once the pipe is closed.
            pub fn as_uv(&self) -> io::Result<Rc<Pipe>> {
                self.end.handle()
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.end.fd())
                    .finish()
            }
        }
    };
}

/// Our end of a child's stdin (like `std::process::ChildStdin`), from
/// [`Stdio::piped`](super::Stdio::piped).
///
/// Dropping it closes the pipe once the queued writes are delivered, and the child reads end
/// of file. `Write` is implemented on `&ChildStdin` too.
pub struct ChildStdin {
    end: PipeEnd,
}

/// Our end of a child's stdout (like `std::process::ChildStdout`), from
/// [`Stdio::piped`](super::Stdio::piped). `Read` is implemented on `&ChildStdout` too.
pub struct ChildStdout {
    end: PipeEnd,
}

/// Our end of a child's stderr (like `std::process::ChildStderr`), from
/// [`Stdio::piped`](super::Stdio::piped). `Read` is implemented on `&ChildStderr` too.
pub struct ChildStderr {
    end: PipeEnd,
}

/// Our end of a pipe on one of a child's extra descriptors (3 and up), from
/// [`Command::fd`](super::Command::fd) with [`Stdio::piped`](super::Stdio::piped). It works
/// both ways: the child may read and write its descriptor.
///
/// [`shutdown_write`](Self::shutdown_write) sends end of file while reading goes on.
pub struct ChildPipe {
    end: PipeEnd,
}

impl_common!(ChildStdin);
impl_write!(ChildStdin);
impl_common!(ChildStdout);
impl_read!(ChildStdout);
impl_common!(ChildStderr);
impl_read!(ChildStderr);
impl_common!(ChildPipe);
impl_read!(ChildPipe);
impl_write!(ChildPipe);

impl ChildPipe {
    /// Delivers the queued writes, then shuts down our write side: the child reads end of
    /// file, and can still write to us.
    ///
    /// # Switchpoint
    ///
    /// Waits for the queued writes and the shutdown.
    ///
    /// # Errors
    ///
    /// A write error (`BrokenPipe` when the child closed its end), a cancelled fiber's error.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.end.transport.shutdown_write()
    }
}
