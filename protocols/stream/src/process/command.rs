//! [`Command`]: a builder for child processes, spawned through libuv (`uv_spawn`).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::rc::Rc;

use fiber_core::Hub;
use uv_sys_wrap::{Pipe, Process, ProcessOptions, StdioContainer};

use super::child::{Child, ChildPipes, ExitState};
use super::stdio::{Source, Stdio};

/// A builder for a child process (like `std::process::Command`), whose waits block only the
/// calling fiber.
///
/// The program is looked up in `PATH` (the child's, if [`env`](Self::env) changed it) unless
/// it contains a `/`. By default the child inherits our environment, working directory and
/// descriptors 0 to 2; every other descriptor of ours is closed in the child, unless passed
/// with [`fd`](Self::fd).
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use gruvi_stream::{Command, Stdio};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let mut child = Command::new("echo").arg("hello").stdout(Stdio::piped()).spawn()?;
///     let mut out = String::new();
///     child.stdout.take().unwrap().read_to_string(&mut out)?;
///     assert_eq!(out, "hello\n");
///     assert!(child.wait()?.success());
///
///     let status = Command::new("sh").args(["-c", "exit 5"]).status()?;
///     assert_eq!(status.code(), Some(5));
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    /// Start from an empty environment instead of ours.
    env_clear: bool,
    /// Changes to the environment: `None` removes the variable.
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    /// The child's descriptors that were set, by number.
    stdio: BTreeMap<RawFd, Stdio>,
}

/// The default of descriptors 0 to 2 when they were not set.
#[derive(Clone, Copy)]
enum Default3 {
    Inherit,
    Piped,
    Null,
}

impl Command {
    /// A command running `program` with no arguments.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdio: BTreeMap::new(),
        }
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        let value = Some(value.as_ref().to_owned());
        self.env.insert(key.as_ref().to_owned(), value);
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Gives the child none of our environment: only the variables set with
    /// [`env`](Self::env) after this call.
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Runs the child in `dir`.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Connects the child's stdin (descriptor 0).
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.fd(0, stdio)
    }

    /// Connects the child's stdout (descriptor 1).
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.fd(1, stdio)
    }

    /// Connects the child's stderr (descriptor 2).
    pub fn stderr(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.fd(2, stdio)
    }

    /// Connects the child's descriptor `child_fd`: 0 to 2 are the same as
    /// [`stdin`](Self::stdin), [`stdout`](Self::stdout) and [`stderr`](Self::stderr); from 3
    /// on they are extra descriptors (Gruvi's `extra_handles`), such as `Stdio::fd(ours)` or a
    /// two-way [`Stdio::piped`] pipe taken with [`Child::take_pipe`]. Extra descriptors left
    /// unset in between are closed in the child.
    ///
    /// # Panics
    ///
    /// If `child_fd` is negative.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use gruvi_stream::{Command, Stdio};
    ///
    /// fiber_core::run(|| -> std::io::Result<()> {
    ///     let mut child = Command::new("sh")
    ///         .args(["-c", "echo hi >&3"])
    ///         .fd(3, Stdio::piped())
    ///         .spawn()?;
    ///     let mut got = String::new();
    ///     child.take_pipe(3).unwrap().read_to_string(&mut got)?;
    ///     assert_eq!(got, "hi\n");
    ///     child.wait()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fd(&mut self, child_fd: RawFd, stdio: impl Into<Stdio>) -> &mut Command {
        assert!(child_fd >= 0, "Command::fd: negative descriptor {child_fd}");
        self.stdio.insert(child_fd, stdio.into());
        self
    }

    /// The program.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program.
    pub fn get_args(&self) -> impl ExactSizeIterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// The working directory, if set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// Starts the child. Descriptors 0 to 2 that were not set are inherited.
    ///
    /// Never switches: libuv starts the child synchronously.
    ///
    /// # Errors
    ///
    /// `NotFound` if the program does not exist, `PermissionDenied` if it cannot be run,
    /// `InvalidInput` for a NUL byte in a string, the OS error of a bad descriptor. A failed
    /// spawn leaves no libuv handle behind.
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with(Default3::Inherit, Default3::Inherit)
    }

    /// Runs the child to completion and returns its exit status. Descriptors 0 to 2 that
    /// were not set are inherited; a piped stdin is closed at once.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the child exits.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn), and a cancelled or timed-out fiber's error.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        drop(child.stdin.take());
        child.wait()
    }

    /// Runs the child to completion, capturing its stdout and stderr. Unless set otherwise,
    /// stdin is `/dev/null` and stdout and stderr are piped.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until the child exits and closes its output.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) and [`Child::wait_with_output`].
    pub fn output(&mut self) -> io::Result<Output> {
        self.spawn_with(Default3::Null, Default3::Piped)?
            .wait_with_output()
    }

    fn spawn_with(&mut self, stdin: Default3, output: Default3) -> io::Result<Child> {
        let hub = Hub::current();
        let lp = hub.loop_handle();
        let mut prepared = Vec::with_capacity(self.stdio.len().max(3));
        for fd in 0..3 {
            if !self.stdio.contains_key(&fd) {
                let default = if fd == 0 { stdin } else { output };
                let source = match default {
                    Default3::Inherit => Source::Inherit,
                    Default3::Piped => Source::Piped,
                    Default3::Null => Source::Null,
                };
                prepared.push((fd, Prepared::new(&lp, fd, &source)?));
            }
        }
        for (&fd, stdio) in &self.stdio {
            prepared.push((fd, Prepared::new(&lp, fd, &stdio.0)?));
        }
        prepared.sort_by_key(|(fd, _)| *fd);

        let mut options = ProcessOptions::new(&self.program).args(&self.args);
        if let Some(env) = self.environment() {
            options = options.environment(env);
        }
        if let Some(dir) = &self.cwd {
            options = options.cwd(dir);
        }
        for (fd, p) in &prepared {
            options = options.stdio(*fd as usize, p.container());
        }
        let exit = Rc::new(ExitState::default());
        let on_exit = exit.clone();
        let process = Process::spawn(&lp, &options, move |_, code, signal| {
            on_exit.exited(code, signal);
        })?;
        drop(options);

        let mut pipes = ChildPipes::default();
        for (fd, p) in prepared {
            if let Prepared::Create { pipe, .. } = p {
                pipes.insert(fd, pipe);
            }
        }
        Ok(Child::new(process, exit, pipes))
    }

    /// The child's whole environment, or `None` to inherit ours unchanged.
    fn environment(&self) -> Option<Vec<(OsString, OsString)>> {
        if !self.env_clear && self.env.is_empty() {
            return None;
        }
        let mut vars: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, value) in &self.env {
            match value {
                Some(value) => vars.insert(key.clone(), value.clone()),
                None => vars.remove(key),
            };
        }
        Some(vars.into_iter().collect())
    }
}

/// One descriptor of the child, ready for `uv_spawn`: what the [`StdioContainer`] borrows
/// lives here until the spawn returns.
enum Prepared {
    Ignore,
    InheritFd(RawFd),
    /// `/dev/null` opened for a descriptor beyond 2 (libuv leaves those closed otherwise).
    DevNull(File),
    /// A new pipe; the flags are the child's point of view, as libuv's are.
    Create {
        pipe: Pipe,
        readable: bool,
        writable: bool,
    },
    Stream(Rc<Pipe>),
}

impl Prepared {
    fn new(lp: &uv_sys_wrap::LoopHandle, fd: RawFd, source: &Source) -> io::Result<Prepared> {
        Ok(match source {
            Source::Inherit => Prepared::InheritFd(fd),
            // libuv opens /dev/null itself for descriptors 0 to 2.
            Source::Null if fd <= 2 => Prepared::Ignore,
            Source::Null => Prepared::DevNull(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")?,
            ),
            Source::Fd(raw) => Prepared::InheritFd(*raw),
            Source::Owned(owned) => Prepared::InheritFd(owned.as_raw_fd()),
            Source::Pipe(end) => Prepared::Stream(end.handle()?),
            Source::Piped => Prepared::Create {
                pipe: Pipe::new(lp)?,
                // The child reads its stdin, writes its stdout and stderr, and may do both
                // on an extra descriptor.
                readable: fd != 1 && fd != 2,
                writable: fd != 0,
            },
        })
    }

    fn container(&self) -> StdioContainer<'_> {
        match self {
            Prepared::Ignore => StdioContainer::Ignore,
            Prepared::InheritFd(fd) => StdioContainer::InheritFd(*fd),
            Prepared::DevNull(file) => StdioContainer::InheritFd(file.as_raw_fd()),
            Prepared::Create {
                pipe,
                readable,
                writable,
            } => StdioContainer::CreatePipe {
                pipe,
                readable: *readable,
                writable: *writable,
                nonblock: false,
            },
            Prepared::Stream(pipe) => StdioContainer::inherit_stream(&**pipe),
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env_clear", &self.env_clear)
            .field("env", &self.env)
            .field("cwd", &self.cwd)
            .field("stdio", &self.stdio)
            .finish()
    }
}
