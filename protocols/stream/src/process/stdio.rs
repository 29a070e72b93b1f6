//! [`Stdio`]: what one of a child's descriptors is connected to.

use std::fmt;
use std::fs::File;
use std::os::fd::{OwnedFd, RawFd};

use super::pipes::{ChildPipe, ChildStderr, ChildStdin, ChildStdout, PipeEnd};

/// What one of a child's descriptors is connected to (like `std::process::Stdio`), for
/// [`Command::stdin`](super::Command::stdin), [`stdout`](super::Command::stdout),
/// [`stderr`](super::Command::stderr) and [`fd`](super::Command::fd).
///
/// # Examples
///
/// ```
/// use gruvi_stream::{Command, Stdio};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let output = Command::new("sh")
///         .args(["-c", "echo out; echo err >&2"])
///         .stderr(Stdio::null())
///         .output()?;
///     assert_eq!(output.stdout, b"out\n");
///     assert!(output.stderr.is_empty());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Stdio(pub(crate) Source);

pub(crate) enum Source {
    /// The child gets our descriptor of the same number.
    Inherit,
    /// A new pipe between us and the child.
    Piped,
    /// `/dev/null`.
    Null,
    /// A duplicate of a descriptor the caller keeps.
    Fd(RawFd),
    /// A duplicate of a descriptor we own (closed with the [`Command`](super::Command)).
    Owned(OwnedFd),
    /// A duplicate of our end of another child's pipe.
    Pipe(PipeEnd),
}

impl Stdio {
    /// The child shares our descriptor of the same number (the default of
    /// [`Command::spawn`](super::Command::spawn) and
    /// [`status`](super::Command::status)).
    pub fn inherit() -> Stdio {
        Stdio(Source::Inherit)
    }

    /// A new pipe between us and the child: our end is the [`Child`](super::Child)'s
    /// `stdin`, `stdout` or `stderr` field, or for descriptors 3 and up a two-way
    /// [`ChildPipe`] from [`Child::take_pipe`](super::Child::take_pipe).
    pub fn piped() -> Stdio {
        Stdio(Source::Piped)
    }

    /// `/dev/null`: reads see end of file, writes are discarded.
    pub fn null() -> Stdio {
        Stdio(Source::Null)
    }

    /// The child gets a duplicate of our descriptor `fd`, which stays ours: it must stay
    /// open until [`spawn`](super::Command::spawn) returns (spawning fails with `EBADF`
    /// otherwise). To hand over a descriptor instead, use `Stdio::from(OwnedFd)`.
    pub fn fd(fd: RawFd) -> Stdio {
        Stdio(Source::Fd(fd))
    }
}

impl From<OwnedFd> for Stdio {
    /// The child gets a duplicate of `fd`; ours is closed when the
    /// [`Command`](super::Command) is dropped.
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(Source::Owned(fd))
    }
}

impl From<File> for Stdio {
    /// The child gets a duplicate of the file's descriptor.
    fn from(file: File) -> Stdio {
        Stdio(Source::Owned(file.into()))
    }
}

/// Implements connecting one child's pipe to another child.
macro_rules! from_pipe {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Stdio {
            /// The child gets a duplicate of our end of another child's pipe, as in a shell
            /// pipeline. We stop reading from it (bytes we had buffered are dropped), so
            /// that the child gets everything; our end is closed when the
            /// [`Command`](super::Command) is dropped.
            fn from(pipe: $ty) -> Stdio {
                Stdio(Source::Pipe(pipe.into_end().handed_over()))
            }
        }
    )*};
}

from_pipe!(ChildStdin, ChildStdout, ChildStderr, ChildPipe);

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Inherit => f.write_str("Inherit"),
            Source::Piped => f.write_str("Piped"),
            Source::Null => f.write_str("Null"),
            Source::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            Source::Owned(fd) => f.debug_tuple("Owned").field(fd).finish(),
            Source::Pipe(_) => f.write_str("Pipe"),
        }
    }
}
