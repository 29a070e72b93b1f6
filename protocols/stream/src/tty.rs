//! Terminals: [`Tty`], a stream over a terminal descriptor (libuv's `uv_tty_t`), and the
//! process's standard streams [`stdin()`] and [`stdout()`] (in `stdio`), which are terminals,
//! pipes or files.

mod stdio;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use fiber_core::Hub;
use uv_sys_wrap::Stream as _;

use crate::transport::Transport;

pub use stdio::{Stdin, StdioKind, Stdout, stdin, stdout};
pub use uv_sys_wrap::TtyMode;

/// A terminal stream (Gruvi's `TTY` transport), whose blocking calls block only the calling
/// fiber.
///
/// `Read` and `Write` are implemented on `&Tty` too, so one fiber can read while another
/// writes. A terminal in its normal mode delivers input a line at a time and echoes it; see
/// [`set_mode`](Self::set_mode).
///
/// # Examples
///
/// On a pseudo-terminal, writing to the slave side and reading it back on the master:
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::{FromRawFd, OwnedFd};
/// use gruvi_stream::{Tty, TtyMode, poll};
///
/// let (mut master, mut slave) = (0, 0);
/// // SAFETY: valid out pointers; null name, termios and window size are allowed.
/// let ret = unsafe {
///     libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(),
///                   std::ptr::null())
/// };
/// assert_eq!(ret, 0);
/// // SAFETY: openpty returned two new descriptors that nothing else owns.
/// let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
/// let mut master = std::fs::File::from(master);
/// fiber_core::run(|| -> std::io::Result<()> {
///     let mut tty = Tty::from_fd(slave)?;
///     tty.set_mode(TtyMode::Io)?; // binary-safe: no echo, no line editing, no CR/LF mapping
///     tty.write_all(b"hello")?;
///     poll::wait_readable(&master)?;
///     let mut buf = [0; 5];
///     master.read_exact(&mut buf)?;
///     assert_eq!(&buf, b"hello");
///     tty.set_mode(TtyMode::Normal)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Tty {
    transport: Transport<uv_sys_wrap::Tty>,
}

impl Tty {
    /// Opens the terminal on `fd` (`uv_tty_init`); the stream closes it.
    ///
    /// libuv reopens a pseudo-terminal slave as a new open file description and makes that
    /// one non-blocking, so other users of the terminal keep their blocking descriptors.
    ///
    /// # Errors
    ///
    /// `InvalidInput` (`EINVAL`) if `fd` is a regular file or of an unknown kind.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Tty> {
        let hub = Hub::current();
        let tty = uv_sys_wrap::Tty::new(&hub.loop_handle(), fd.as_raw_fd(), true)?;
        // The handle owns the descriptor now (libuv leaves 0 to 2 open).
        let _ = fd.into_raw_fd();
        Ok(Tty {
            transport: Transport::new(tty),
        })
    }

    /// Sets the terminal mode (`uv_tty_set_mode`): [`TtyMode::Raw`] for a character at a time
    /// without echo, [`TtyMode::Io`] for binary-safe I/O, [`TtyMode::Normal`] to restore the
    /// original settings.
    pub fn set_mode(&self, mode: TtyMode) -> io::Result<()> {
        Ok(self.transport.handle()?.set_mode(mode)?)
    }

    /// The window size as `(columns, rows)` (`uv_tty_get_winsize`).
    pub fn winsize(&self) -> io::Result<(u16, u16)> {
        let (width, height) = self.transport.handle()?.winsize()?;
        let clamp = |n: i32| u16::try_from(n.max(0)).unwrap_or(u16::MAX);
        Ok((clamp(width), clamp(height)))
    }

    /// Closes the terminal now; queued writes are dropped. Dropping the stream instead
    /// delivers them first.
    pub fn close(&self) {
        self.transport.close()
    }

    pub(crate) fn transport(&self) -> &Transport<uv_sys_wrap::Tty> {
        &self.transport
    }
}

impl fmt::Debug for Tty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = self.transport.handle().ok().and_then(|t| t.fileno().ok());
        f.debug_struct("Tty").field("fd", &fd).finish()
    }
}

crate::stream_impls::transport_io!(Tty);
crate::stream_impls::transport_settings!(Tty);
