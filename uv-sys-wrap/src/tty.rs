//! Terminals (`uv_tty_t`).

use std::os::fd::RawFd;

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;
use crate::stream::{Stream, StreamCbs, impl_stream};

/// A terminal mode for [`Tty::set_mode`] (`uv_tty_mode_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtyMode {
    /// The mode the terminal had before the first [`Tty::set_mode`]: line editing, echo
    /// (`UV_TTY_MODE_NORMAL`).
    Normal,
    /// Character at a time, no echo, no signals from keys; output processing kept
    /// (`UV_TTY_MODE_RAW`).
    Raw,
    /// Fully raw as by `cfmakeraw`, for binary-safe I/O (`UV_TTY_MODE_IO`).
    Io,
}

/// A terminal (`uv_tty_t`). Reading and writing are the [`Stream`] methods.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, Tty, TtyMode};
///
/// let (mut master, mut slave) = (0, 0);
/// // SAFETY: valid out pointers; null name, termios and window size are allowed.
/// let ret = unsafe {
///     libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(),
///                   std::ptr::null())
/// };
/// assert_eq!(ret, 0);
/// let lp = Loop::new()?;
/// let tty = Tty::new(&lp, slave, true)?;
/// tty.set_mode(TtyMode::Raw)?;
/// let (_width, _height) = tty.winsize()?;
/// tty.set_mode(TtyMode::Normal)?;
/// drop(tty); // The handle owned `slave`.
/// assert_eq!(lp.close()?, 0);
/// // SAFETY: `master` is ours and open.
/// unsafe { libc::close(master) };
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Tty {
    h: Owned<sys::uv_tty_t, StreamCbs<Tty>>,
}

impl_handle!(Tty, h);
impl_stream!(Tty, h, sys::uv_tty_t);

impl Tty {
    /// Opens the terminal (or pipe) on `fd` (`uv_tty_init`).
    ///
    /// The handle takes ownership of `fd` unless it is 0, 1 or 2: it is closed at the latest
    /// when the handle is. libuv reopens a terminal device (such as a pseudo-terminal slave)
    /// as a new open file description, so that making it non-blocking does not affect other
    /// processes sharing the old one, and works on that descriptor ([`Stream::fileno`]);
    /// `fd` is then closed at once (a descriptor 0 to 2 is kept, pointing to the reopened
    /// terminal). On error `fd` stays the caller's.
    ///
    /// `readable` is ignored on Unix, where libuv takes readability from the descriptor's
    /// access mode; it is kept for parity with Windows and Gruvi's `TTY(fd, readable)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `fd` is a regular file or of an unknown kind.
    pub fn new(lp: &impl AsLoop, fd: RawFd, readable: bool) -> Result<Tty> {
        // SAFETY: `lp` and `t` are valid; uv_tty_init initialises `t` and checks `fd`.
        let h = Owned::new(lp, StreamCbs::new(), |lp, t| unsafe {
            sys::uv_tty_init(lp, t, fd, readable.into())
        })?;
        let tty = Tty { h };
        // After reopening, libuv made `fd` a duplicate of the descriptor it uses and will close
        // only the latter; close `fd` so that the handle owns it in both cases.
        if fd > libc::STDERR_FILENO && tty.fileno().is_ok_and(|used| used != fd) {
            // SAFETY: the caller gave us `fd`, and neither libuv nor the handle uses it.
            unsafe { libc::close(fd) };
        }
        Ok(tty)
    }

    /// Sets the terminal mode (`uv_tty_set_mode`). Leaving [`TtyMode::Normal`] the first time
    /// saves the terminal's settings for [`TtyMode::Normal`] and [`tty_reset_mode`].
    pub fn set_mode(&self, mode: TtyMode) -> Result<()> {
        let raw = self.h.raw()?;
        let mode = match mode {
            TtyMode::Normal => sys::uv_tty_mode_t_UV_TTY_MODE_NORMAL,
            TtyMode::Raw => sys::uv_tty_mode_t_UV_TTY_MODE_RAW,
            TtyMode::Io => sys::uv_tty_mode_t_UV_TTY_MODE_IO,
        };
        // SAFETY: the handle is open.
        Error::check(unsafe { sys::uv_tty_set_mode(raw, mode) }).map(drop)
    }

    /// The window size as `(width, height)` in characters (`uv_tty_get_winsize`).
    ///
    /// # Errors
    ///
    /// `ENOTTY` if the handle is not on a terminal.
    pub fn winsize(&self) -> Result<(i32, i32)> {
        let raw = self.h.raw()?;
        let (mut width, mut height) = (0, 0);
        // SAFETY: the handle is open; `width` and `height` are valid out parameters.
        Error::check(unsafe { sys::uv_tty_get_winsize(raw, &mut width, &mut height) })?;
        Ok((width, height))
    }
}

/// Restores the settings the first terminal switched out of [`TtyMode::Normal`] had, if it is
/// still open (`uv_tty_reset_mode`). Meant for exit paths; async-signal-safe.
///
/// # Errors
///
/// `EBUSY` if called while another thread is inside [`Tty::set_mode`] or closing a terminal.
pub fn tty_reset_mode() -> Result<()> {
    // SAFETY: uv_tty_reset_mode takes no arguments and guards its global state with a lock.
    Error::check(unsafe { sys::uv_tty_reset_mode() }).map(drop)
}
