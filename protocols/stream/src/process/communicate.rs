//! [`Child::communicate`]: feeding a child's stdin while reading its stdout and stderr, each
//! in its own fiber, so that no full pipe can stall the exchange.

use std::io::{self, Read, Write};
use std::process::Output;
use std::time::Duration;

use fiber_core::{Builder, Callback, Error as FiberError, JoinHandle, SwitchBack};

use super::child::Child;
use super::pipes::ChildStdin;
use crate::address::waited;

impl Child {
    /// Writes `input` to the child's stdin and closes it, reads its stdout and stderr to
    /// their ends concurrently, waits for it to exit and returns everything (Gruvi's
    /// `communicate`). Pipes that were not [piped](super::Stdio::piped) give empty output;
    /// the pipes are taken from the `stdin`, `stdout` and `stderr` fields.
    ///
    /// A child that exits without reading all of `input` is not an error.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the child closes its output and exits; helper fibers write and
    /// read meanwhile.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `input` is not empty and stdin is not piped; a read or write error;
    /// the error of a helper fiber that cannot be started (no stack left); a cancelled or
    /// timed-out fiber's error (the helper fibers are cancelled, what was read is lost and
    /// the child is left running).
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_stream::{Command, Stdio};
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let mut child = Command::new("sh")
    ///         .args(["-c", "tr a-z A-Z; echo done >&2"])
    ///         .stdin(Stdio::piped())
    ///         .stdout(Stdio::piped())
    ///         .stderr(Stdio::piped())
    ///         .spawn()?;
    ///     let output = child.communicate(b"shout\n")?;
    ///     assert_eq!(output.stdout, b"SHOUT\n");
    ///     assert_eq!(output.stderr, b"done\n");
    ///     assert!(output.status.success());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn communicate(&mut self, input: &[u8]) -> io::Result<Output> {
        let stdin = self.stdin.take();
        if stdin.is_none() && !input.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "communicate: the child's stdin is not piped",
            ));
        }
        let writer = match stdin {
            Some(stdin) if !input.is_empty() => {
                let input = input.to_vec();
                Some(Helper::spawn("communicate: stdin", move || {
                    write_input(stdin, &input)
                })?)
            }
            // Nothing to write: closing stdin at once is all there is to do.
            other => {
                drop(other);
                None
            }
        };
        let stderr = match self.stderr.take() {
            Some(pipe) => Some(Helper::spawn("communicate: stderr", move || {
                read_all(pipe)
            })?),
            None => None,
        };
        let stdout = match self.stdout.take() {
            Some(pipe) => read_all(pipe)?,
            None => Vec::new(),
        };
        let stderr = match stderr {
            Some(reader) => reader.join()??,
            None => Vec::new(),
        };
        if let Some(writer) = writer {
            writer.join()??;
        }
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Like [`communicate`](Self::communicate), giving up after `timeout` with
    /// `ErrorKind::TimedOut`. The pipes are closed by then and the child is left running:
    /// [`kill`](Self::kill) and [`wait`](Self::wait) for it.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber for at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`, and those of [`communicate`](Self::communicate).
    pub fn communicate_timeout(&mut self, input: &[u8], timeout: Duration) -> io::Result<Output> {
        let result = fiber_core::timeout(timeout, || self.communicate(input));
        waited(result, "timed out communicating with the child")?
    }
}

/// Writes all of `input` and closes the pipe; a child that stopped reading is not an error.
fn write_input(stdin: ChildStdin, input: &[u8]) -> io::Result<()> {
    match (&stdin).write_all(input).and_then(|()| (&stdin).flush()) {
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(())
        }
        result => result,
    }
}

fn read_all(mut pipe: impl Read) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    pipe.read_to_end(&mut data)?;
    Ok(data)
}

/// A helper fiber that is cancelled if its result is not collected, e.g. when the fiber
/// waiting for it is cancelled or times out. (`JoinHandle::join` consumes the handle, so a
/// join that fails could no longer cancel it.)
struct Helper<T> {
    handle: Option<JoinHandle<T>>,
    /// Completed when the helper's closure is done, returned or unwound.
    finished: Option<SwitchBack<()>>,
}

/// Completes the helper's `finished` wait when dropped at the end of its closure.
struct Notify(Callback<()>);

impl Drop for Notify {
    fn drop(&mut self) {
        self.0.call(());
    }
}

impl<T: 'static> Helper<T> {
    /// Starts `f` in a fiber named `name`.
    fn spawn(name: &str, f: impl FnOnce() -> T + 'static) -> io::Result<Helper<T>> {
        let finished = SwitchBack::new();
        let notify = Notify(finished.callback());
        let handle = Builder::new().name(name).spawn(move || {
            let _notify = notify;
            f()
        })?;
        Ok(Helper {
            handle: Some(handle),
            finished: Some(finished),
        })
    }

    /// Waits for the helper's result; a panic in it is resumed here.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the helper is done.
    fn join(mut self) -> io::Result<T> {
        let finished = self.finished.take().expect("a helper is joined once");
        waited(finished.wait(), "timed out communicating with the child")?;
        // The helper finished without switching after its `Notify` fired, so this returns at
        // once.
        let handle = self.handle.take().expect("a helper is joined once");
        match handle.join() {
            Ok(value) => Ok(value),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(err.wait_error().unwrap_or(FiberError::Cancelled).into()),
        }
    }
}

impl<T> Drop for Helper<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.cancel();
        }
    }
}
