//! Child processes with std's shapes (Gruvi's `gruvi.process`), started through libuv
//! (`uv_spawn`): a [`Command`] builder, a [`Child`] to wait for and signal, and its pipes
//! ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`], [`ChildPipe`]) as blocking streams with
//! flow control. Waiting and pipe I/O block only the calling fiber; exit statuses are std's
//! [`ExitStatus`](std::process::ExitStatus) and results std's
//! [`Output`](std::process::Output).
//!
//! Gruvi's `Process` maps as follows: `spawn(args, stdin=PIPE, ...)` is
//! `Command::new(..).stdin(Stdio::piped()).spawn()`; `extra_handles` are
//! [`Command::fd`]; `returncode` is `code()`, or `-signal()` when a signal killed the child;
//! `wait(timeout)` is [`Child::wait_timeout`]; `communicate(input, timeout)` is
//! [`Child::communicate_timeout`]; `close()` is dropping the [`Child`].

mod child;
mod command;
mod communicate;
mod pipes;
mod stdio;

pub use child::Child;
pub use command::Command;
pub use pipes::{ChildPipe, ChildStderr, ChildStdin, ChildStdout};
pub use stdio::Stdio;
