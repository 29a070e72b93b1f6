//! [`Child`]: a running or exited child process, its pipes, waiting and signals.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use fiber_core::{Callback, CallbackId, DoneCallback, DoneCallbacks, SwitchBack, Waitable};
use uv_sys_wrap::{Error as UvError, Pipe, Process};

use super::pipes::{ChildPipe, ChildStderr, ChildStdin, ChildStdout};
use crate::address::waited;

/// What the exit callback and the waiters share.
#[derive(Default)]
pub(crate) struct ExitState {
    status: Cell<Option<ExitStatus>>,
    /// Fibers blocked in `wait`; a timed-out waiter's callback is inactive and pruned later.
    waiters: RefCell<Vec<Callback<()>>>,
    /// What [`wait`](fiber_core::wait) and [`as_completed`](fiber_core::as_completed) registered.
    done: RefCell<DoneCallbacks>,
}

impl ExitState {
    /// Records the exit libuv reported and wakes every waiter. Runs in the loop's callback.
    pub(crate) fn exited(&self, code: i64, signal: i32) {
        self.status.set(Some(exit_status(code, signal)));
        for waiter in self.waiters.take() {
            waiter.call(());
        }
        self.done.take().run();
    }
}

/// std's `ExitStatus` from libuv's exit status and terminating signal, through the raw wait
/// status `waitpid` reported (the core-dump bit is not kept).
fn exit_status(code: i64, signal: i32) -> ExitStatus {
    if signal != 0 {
        ExitStatus::from_raw(signal & 0x7f)
    } else {
        ExitStatus::from_raw(((code & 0xff) as i32) << 8)
    }
}

/// The pipes created by a spawn, by the child's descriptor number.
#[derive(Default)]
pub(crate) struct ChildPipes {
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    extra: Vec<(RawFd, ChildPipe)>,
}

impl ChildPipes {
    pub(crate) fn insert(&mut self, fd: RawFd, pipe: Pipe) {
        match fd {
            0 => self.stdin = Some(ChildStdin::new(pipe)),
            1 => self.stdout = Some(ChildStdout::new(pipe)),
            2 => self.stderr = Some(ChildStderr::new(pipe)),
            _ => self.extra.push((fd, ChildPipe::new(pipe))),
        }
    }
}

/// A child process started by [`Command::spawn`](super::Command::spawn) (like
/// `std::process::Child`), whose waits block only the calling fiber.
///
/// Unlike std's, the methods take `&self`, so one fiber can wait while another signals the
/// same child (share it with an `Rc`); as a consequence [`wait`](Self::wait) does not close
/// a piped stdin: take and drop `child.stdin` first if the child reads until end of file.
///
/// Dropping a `Child` closes its libuv handle and our ends of its pipes but neither kills nor
/// waits for the child, as std does: one that is still running is never reaped.
///
/// Signalling a child that has exited ([`kill`](Self::kill), [`terminate`](Self::terminate),
/// [`send_signal`](Self::send_signal)) is a no-op that returns `Ok(())`, as std's `kill`
/// does: its pid may already belong to another process, so no signal is sent.
///
/// # Examples
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use std::time::Duration;
/// use gruvi_stream::Command;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let child = Command::new("sleep").arg("10").spawn()?;
///     let err = child.wait_timeout(Duration::from_millis(10)).unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
///     child.terminate()?;
///     assert_eq!(child.wait()?.signal(), Some(libc::SIGTERM));
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Child {
    /// Our end of the child's stdin, if it was [piped](super::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// Our end of the child's stdout, if it was [piped](super::Stdio::piped).
    pub stdout: Option<ChildStdout>,
    /// Our end of the child's stderr, if it was [piped](super::Stdio::piped).
    pub stderr: Option<ChildStderr>,
    /// Our ends of piped extra descriptors, by the child's number.
    extra: Vec<(RawFd, ChildPipe)>,
    process: Process,
    pid: u32,
    exit: std::rc::Rc<ExitState>,
}

impl Child {
    pub(crate) fn new(process: Process, exit: std::rc::Rc<ExitState>, pipes: ChildPipes) -> Child {
        Child {
            stdin: pipes.stdin,
            stdout: pipes.stdout,
            stderr: pipes.stderr,
            extra: pipes.extra,
            // A spawned child always has a positive pid.
            pid: process.pid().unsigned_abs(),
            process,
            exit,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Takes our end of the pipe on the child's extra descriptor `child_fd`, set up with
    /// [`Command::fd`](super::Command::fd)`(child_fd, Stdio::piped())`. `None` if there is
    /// none or it was taken already.
    pub fn take_pipe(&mut self, child_fd: RawFd) -> Option<ChildPipe> {
        let at = self.extra.iter().position(|(fd, _)| *fd == child_fd)?;
        Some(self.extra.swap_remove(at).1)
    }

    /// Waits for the child to exit and returns its status: [`ExitStatus::code`] for a normal
    /// exit, `ExitStatusExt::signal` for a child killed by a signal. Once the child has exited,
    /// returns its status at once, as often as asked.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the child exits.
    ///
    /// # Errors
    ///
    /// A cancelled fiber's error, `TimedOut` from an enclosing
    /// [`timeout`](fiber_core::timeout) scope.
    pub fn wait(&self) -> io::Result<ExitStatus> {
        self.wait_until(None)
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` with `ErrorKind::TimedOut`
    /// (Gruvi's `wait(timeout)`); the child is left running and can be waited for again.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber for at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`, a cancelled fiber's error.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<ExitStatus> {
        self.wait_until(Some(fiber_core::deadline_after(timeout)))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.exit.status.get() {
                return Ok(status);
            }
            let sb = SwitchBack::new();
            {
                let mut waiters = self.exit.waiters.borrow_mut();
                waiters.retain(Callback::is_active);
                waiters.push(sb.callback());
            }
            let result = match deadline {
                None => sb.wait(),
                Some(at) => sb.wait_timeout(at.saturating_duration_since(Instant::now())),
            };
            waited(result, "timed out waiting for the child to exit")?;
        }
    }

    /// The child's status if it has exited, else `None`. Never switches, so it sees the exit
    /// only once the Hub's loop has (the loop runs whenever a fiber blocks).
    ///
    /// # Errors
    ///
    /// None: the `Result` is std's shape.
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        Ok(self.exit.status.get())
    }

    /// Kills the child with `SIGKILL`. Never switches; [`wait`](Self::wait) for it to exit.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Asks the child to exit with `SIGTERM`; a second call while it is still running sends
    /// another, after it exited does nothing. Never switches.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends signal `signum` to the child (`uv_process_kill`), or does nothing once it has
    /// exited. Never switches.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an invalid signal number, `PermissionDenied` if we may not signal
    /// it, `EBADF` once the thread's Hub has been closed.
    pub fn send_signal(&self, signum: i32) -> io::Result<()> {
        if self.exit.status.get().is_some() {
            return Ok(());
        }
        match self.process.kill(signum) {
            // libuv reaped the child and the exit callback has not run yet.
            Err(err) if err == UvError::ESRCH => Ok(()),
            result => Ok(result?),
        }
    }

    /// Closes stdin, reads stdout and stderr to their ends concurrently, waits for the child
    /// to exit and returns everything (std's `wait_with_output`).
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the child closes its output and exits.
    ///
    /// # Errors
    ///
    /// A read error, a cancelled or timed-out fiber's error.
    pub fn wait_with_output(mut self) -> io::Result<std::process::Output> {
        self.communicate(&[])
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.exit.status.get())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

/// A child is done when it has exited: [`fiber_core::wait`] and [`fiber_core::as_completed`]
/// take children among other waitables.
impl Waitable for Child {
    fn add_done_callback(&self, callback: DoneCallback) -> Option<CallbackId> {
        if self.exit.status.get().is_some() {
            let mut now = DoneCallbacks::new();
            now.add(callback);
            now.run();
            return None;
        }
        Some(self.exit.done.borrow_mut().add(callback))
    }

    fn remove_done_callback(&self, id: CallbackId) -> bool {
        self.exit.done.borrow_mut().remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_keeps_code_and_signal() {
        let exited = exit_status(5, 0);
        assert_eq!((exited.code(), exited.signal()), (Some(5), None));
        assert!(!exited.success());
        assert!(exit_status(0, 0).success());
        let killed = exit_status(0, libc::SIGTERM);
        assert_eq!(
            (killed.code(), killed.signal()),
            (None, Some(libc::SIGTERM))
        );
        assert_eq!(exit_status(255, 0).code(), Some(255));
    }
}
