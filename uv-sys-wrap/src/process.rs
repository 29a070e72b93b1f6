//! Child processes (`uv_process_t`).
//!
//! `uv_spawn` is unlike the other handle constructors: there is no `uv_process_init`, and
//! `uv_spawn` may fail after it has registered the handle with its loop. libuv 1.53 fails in
//! one of two ways:
//!
//! - before starting the child (a bad stdio container, no descriptors left): it takes the handle
//!   off the loop again, so the handle must *not* be closed (`uv_close` would unlink it from
//!   the loop's handle list a second time);
//! - when the child cannot run the program (`ENOENT`, `EACCES`, a failed `setuid`...): the
//!   handle stays registered and must be closed.
//!
//! [`Process::spawn`] tells the two apart by looking for the handle with `uv_walk` and either
//! frees the block at once or closes the handle, whose close callback frees it. It also
//! refuses, before calling `uv_spawn`, the one input that makes libuv 1.53 fail *after*
//! starting the child (a [`StdioContainer::CreatePipe`] pipe that is already open), which would
//! leave a running child's handle half-registered.

use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_void};
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libuv_sys2 as sys;

use crate::callback::Slot;
use crate::error::{Error, Result};
use crate::handle::{Owned, impl_handle};
use crate::r#loop::AsLoop;
use crate::pipe::Pipe;
use crate::stream::{Stream, sealed::StreamImpl};

type ExitCb = dyn FnMut(&Process, i64, i32);

/// A stream to pass to a child, for [`StdioContainer::InheritStream`]: any [`Stream`]
/// ([`Tcp`](crate::Tcp), [`Pipe`]...), made with `StreamRef::from(&stream)`.
#[derive(Clone, Copy)]
pub struct StreamRef<'a> {
    stream: &'a dyn RawStream,
}

/// Object-safe access to a stream's libuv handle.
trait RawStream {
    fn raw_stream(&self) -> Result<*mut sys::uv_stream_t>;
}

impl<S: StreamImpl> RawStream for S {
    fn raw_stream(&self) -> Result<*mut sys::uv_stream_t> {
        self.stream()
    }
}

impl<'a, S: Stream> From<&'a S> for StreamRef<'a> {
    fn from(stream: &'a S) -> StreamRef<'a> {
        StreamRef { stream }
    }
}

impl std::fmt::Debug for StreamRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRef").finish_non_exhaustive()
    }
}

/// What one file descriptor of a child is connected to (`uv_stdio_container_t`).
///
/// # Examples
///
/// Capturing a child's stdout:
///
/// ```
/// use uv_sys_wrap::{Loop, Pipe, Process, ProcessOptions, RunMode, StdioContainer, Stream};
/// use std::{cell::RefCell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let stdout = Pipe::new(&lp)?;
/// let child_stdout = StdioContainer::CreatePipe {
///     pipe: &stdout,
///     readable: false,
///     writable: true, // the child writes
///     nonblock: false,
/// };
/// let opts = ProcessOptions::new("echo").arg("hi").stdout(child_stdout);
/// let child = Process::spawn(&lp, &opts, |_, _, _| {})?;
/// let out = Rc::new(RefCell::new(Vec::new()));
/// let o = out.clone();
/// stdout.read_start(Vec::with_capacity, move |_, data| {
///     if let Ok(bytes) = data {
///         o.borrow_mut().extend_from_slice(&bytes);
///     }
/// })?;
/// lp.run(RunMode::Default); // runs until the child exited and stdout reached EOF
/// assert_eq!(&*out.borrow(), b"hi\n");
/// drop((child, stdout));
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub enum StdioContainer<'a> {
    /// Nothing (`UV_IGNORE`): descriptors 0-2 are opened on `/dev/null`, others stay closed.
    #[default]
    Ignore,
    /// The child gets a duplicate of this descriptor of ours (`UV_INHERIT_FD`).
    InheritFd(RawFd),
    /// The child gets a duplicate of this stream's descriptor (`UV_INHERIT_STREAM`).
    InheritStream(StreamRef<'a>),
    /// A new socket pair between `pipe`, a freshly created and not yet opened [`Pipe`], and the
    /// child (`UV_CREATE_PIPE`). The direction is the child's: `readable` for its stdin,
    /// `writable` for its stdout and stderr.
    CreatePipe {
        /// Our end; opened by the spawn.
        pipe: &'a Pipe,
        /// The child reads from its end (`UV_READABLE_PIPE`); we write to `pipe`.
        readable: bool,
        /// The child writes to its end (`UV_WRITABLE_PIPE`); we read from `pipe`.
        writable: bool,
        /// The child's end is non-blocking (`UV_NONBLOCK_PIPE`).
        nonblock: bool,
    },
}

impl<'a> StdioContainer<'a> {
    /// [`StdioContainer::InheritStream`] for any stream.
    pub fn inherit_stream<S: Stream>(stream: &'a S) -> StdioContainer<'a> {
        StdioContainer::InheritStream(StreamRef::from(stream))
    }

    /// The C form; `created` collects the streams of `CreatePipe` containers seen so far.
    fn to_raw(self, created: &mut Vec<*mut sys::uv_stream_t>) -> Result<sys::uv_stdio_container_t> {
        type Data = sys::uv_stdio_container_s__bindgen_ty_1;
        let (flags, data) = match self {
            StdioContainer::Ignore => (sys::uv_stdio_flags_UV_IGNORE, Data { fd: -1 }),
            StdioContainer::InheritFd(fd) => (sys::uv_stdio_flags_UV_INHERIT_FD, Data { fd }),
            StdioContainer::InheritStream(s) => {
                let stream = s.stream.raw_stream()?;
                (sys::uv_stdio_flags_UV_INHERIT_STREAM, Data { stream })
            }
            StdioContainer::CreatePipe {
                pipe,
                readable,
                writable,
                nonblock,
            } => {
                let stream = pipe.stream()?;
                // libuv opens the pipe only after starting the child, and fails if it is open
                // already; refuse that here, while failing is still clean (see the module doc).
                if pipe.fileno().is_ok() || created.contains(&stream) {
                    return Err(Error::EBUSY);
                }
                created.push(stream);
                let mut flags = sys::uv_stdio_flags_UV_CREATE_PIPE;
                for (set, flag) in [
                    (readable, sys::uv_stdio_flags_UV_READABLE_PIPE),
                    (writable, sys::uv_stdio_flags_UV_WRITABLE_PIPE),
                    (nonblock, sys::uv_stdio_flags_UV_NONBLOCK_PIPE),
                ] {
                    if set {
                        flags |= flag;
                    }
                }
                (flags, Data { stream })
            }
        };
        Ok(sys::uv_stdio_container_t { flags, data })
    }
}

/// What to run and how, for [`Process::spawn`] (`uv_process_options_t`).
///
/// A builder: `ProcessOptions::new(program).arg(..).stdout(..)`. The program is looked up in
/// `PATH` unless it contains a `/`; its `argv[0]` is the program as given.
#[derive(Clone, Debug)]
#[must_use]
pub struct ProcessOptions<'a> {
    file: OsString,
    args: Vec<OsString>,
    env: Option<Vec<OsString>>,
    cwd: Option<PathBuf>,
    flags: sys::uv_process_flags,
    uid: u32,
    gid: u32,
    stdio: Vec<StdioContainer<'a>>,
}

impl<'a> ProcessOptions<'a> {
    /// Runs `program` with no arguments, the parent's environment and working directory, and
    /// every descriptor ignored.
    pub fn new(program: impl AsRef<OsStr>) -> ProcessOptions<'a> {
        let file = program.as_ref().to_owned();
        ProcessOptions {
            args: vec![file.clone()],
            file,
            env: None,
            cwd: None,
            flags: 0,
            uid: 0,
            gid: 0,
            stdio: Vec::new(),
        }
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ProcessOptions<'a> {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I>(mut self, args: I) -> ProcessOptions<'a>
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Gives the child exactly these environment variables, none of the parent's (libuv's
    /// `env`). Without it the child inherits the parent's environment.
    pub fn environment<I, K, V>(mut self, vars: I) -> ProcessOptions<'a>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let entries = vars.into_iter().map(|(k, v)| {
            let mut entry = k.as_ref().to_owned();
            entry.push("=");
            entry.push(v);
            entry
        });
        self.env = Some(entries.collect());
        self
    }

    /// Runs the child in `dir`.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> ProcessOptions<'a> {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Runs the child in a new session, so it can outlive us (`UV_PROCESS_DETACHED`).
    pub fn detached(mut self, detached: bool) -> ProcessOptions<'a> {
        self.set_flag(sys::uv_process_flags_UV_PROCESS_DETACHED, detached);
        self
    }

    /// Runs the child as user `uid` (`UV_PROCESS_SETUID`); needs privileges.
    pub fn uid(mut self, uid: u32) -> ProcessOptions<'a> {
        self.set_flag(sys::uv_process_flags_UV_PROCESS_SETUID, true);
        self.uid = uid;
        self
    }

    /// Runs the child as group `gid` (`UV_PROCESS_SETGID`); needs privileges.
    pub fn gid(mut self, gid: u32) -> ProcessOptions<'a> {
        self.set_flag(sys::uv_process_flags_UV_PROCESS_SETGID, true);
        self.gid = gid;
        self
    }

    /// Connects the child's stdin (descriptor 0).
    pub fn stdin(self, stdio: StdioContainer<'a>) -> ProcessOptions<'a> {
        self.stdio(0, stdio)
    }

    /// Connects the child's stdout (descriptor 1).
    pub fn stdout(self, stdio: StdioContainer<'a>) -> ProcessOptions<'a> {
        self.stdio(1, stdio)
    }

    /// Connects the child's stderr (descriptor 2).
    pub fn stderr(self, stdio: StdioContainer<'a>) -> ProcessOptions<'a> {
        self.stdio(2, stdio)
    }

    /// Connects the child's descriptor `fd`, which may be beyond 2; descriptors in between
    /// that were not set are ignored.
    pub fn stdio(mut self, fd: usize, stdio: StdioContainer<'a>) -> ProcessOptions<'a> {
        if self.stdio.len() <= fd {
            self.stdio.resize(fd + 1, StdioContainer::Ignore);
        }
        self.stdio[fd] = stdio;
        self
    }

    fn set_flag(&mut self, flag: sys::uv_process_flags, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// The C strings of a spawn, kept alive for the duration of `uv_spawn`.
struct CArgs {
    file: CString,
    args: Vec<CString>,
    env: Option<Vec<CString>>,
    cwd: Option<CString>,
}

impl CArgs {
    fn new(options: &ProcessOptions<'_>) -> Result<CArgs> {
        let all = |v: &[OsString]| v.iter().map(|s| c_string(s)).collect::<Result<Vec<_>>>();
        Ok(CArgs {
            file: c_string(&options.file)?,
            args: all(&options.args)?,
            env: options.env.as_deref().map(all).transpose()?,
            cwd: options
                .cwd
                .as_ref()
                .map(|d| c_string(d.as_os_str()))
                .transpose()?,
        })
    }
}

/// `EINVAL` for a string with an interior NUL byte.
fn c_string(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::EINVAL)
}

/// A NULL-terminated array of pointers into `strings`; libuv only reads through them.
fn c_array(strings: &[CString]) -> Vec<*mut c_char> {
    let ptrs = strings.iter().map(|s| s.as_ptr().cast_mut());
    ptrs.chain(std::iter::once(std::ptr::null_mut())).collect()
}

/// A child process (`uv_process_t`), started by [`Process::spawn`].
///
/// The handle stays open after the child has exited, until closed or dropped. Closing it
/// before the child exits leaves the child running, and its exit callback never runs.
///
/// # Examples
///
/// ```
/// use uv_sys_wrap::{Loop, Process, ProcessOptions, RunMode};
/// use std::{cell::Cell, rc::Rc};
///
/// let lp = Loop::new()?;
/// let status = Rc::new(Cell::new(None));
/// let s = status.clone();
/// let opts = ProcessOptions::new("/bin/sh").args(["-c", "exit 3"]);
/// let child = Process::spawn(&lp, &opts, move |_, code, signal| s.set(Some((code, signal))))?;
/// lp.run(RunMode::Default);
/// assert_eq!(status.get(), Some((3, 0)));
/// drop(child);
/// assert_eq!(lp.close()?, 0);
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub struct Process {
    h: Owned<sys::uv_process_t, Slot<ExitCb>>,
}

impl_handle!(Process, h);

impl Process {
    /// Starts a child process (`uv_spawn`). `exit_cb(process, exit_status, term_signal)` runs
    /// once the child has exited: `term_signal` is the signal that killed it, or 0.
    ///
    /// # Errors
    ///
    /// `ENOENT` or `EACCES` if the program cannot be run, `EINVAL` for a string with a NUL
    /// byte or an unusable stdio container, `EBUSY` if a [`StdioContainer::CreatePipe`] pipe
    /// is already open or used twice, `EBADF` for a closed stream. Nothing is leaked: libuv's
    /// handle is released as the module documentation describes.
    pub fn spawn(
        lp: &impl AsLoop,
        options: &ProcessOptions<'_>,
        exit_cb: impl FnOnce(&Process, i64, i32) + 'static,
    ) -> Result<Process> {
        let strings = CArgs::new(options)?;
        let args = c_array(&strings.args);
        let env = strings.env.as_deref().map(c_array);
        let mut created = Vec::new();
        let stdio = (options.stdio.iter())
            .map(|c| c.to_raw(&mut created))
            .collect::<Result<Vec<_>>>()?;
        let raw_options = sys::uv_process_options_t {
            exit_cb: Some(on_exit),
            file: strings.file.as_ptr(),
            args: args.as_ptr().cast_mut(),
            env: env
                .as_ref()
                .map_or(std::ptr::null_mut(), |e| e.as_ptr().cast_mut()),
            cwd: strings
                .cwd
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr()),
            flags: options.flags,
            stdio_count: c_int::try_from(stdio.len()).map_err(|_| Error::EINVAL)?,
            stdio: stdio.as_ptr().cast_mut(),
            uid: options.uid,
            gid: options.gid,
        };
        let cbs: Slot<ExitCb> = Slot::new();
        let mut exit_cb = Some(exit_cb);
        cbs.set(Box::new(move |p, status, signal| {
            if let Some(cb) = exit_cb.take() {
                cb(p, status, signal)
            }
        }));
        let mut failed = None;
        let h = Owned::new(lp, cbs, |lp, p| {
            // SAFETY: `lp` and `p` are valid; every pointer in `raw_options` points into
            // `strings`, `args`, `env` and `stdio`, which outlive the call, and libuv only reads
            // through them. Stream pointers come from open handles borrowed by `options`.
            let ret = unsafe { sys::uv_spawn(lp, p, &raw_options) };
            if ret < 0 && in_loop(lp, p.cast()) {
                // The handle is initialised and registered: report success to `Owned::new` so
                // it becomes an owner that can close it, and fail below.
                failed = Some(Error::from_code(ret));
                return 0;
            }
            ret
        })?;
        if let Some(err) = failed {
            h.close(None);
            return Err(err);
        }
        Ok(Process { h })
    }

    /// The child's process id (`uv_process_get_pid`).
    pub fn pid(&self) -> i32 {
        // SAFETY: the block is allocated while the owner lives; this only reads a field.
        unsafe { sys::uv_process_get_pid(self.h.raw_unchecked()) }
    }

    /// Sends signal `signum` to the child (`uv_process_kill`).
    ///
    /// # Errors
    ///
    /// `ESRCH` once the child has exited and been reaped, `EINVAL` for a bad signal number.
    pub fn kill(&self, signum: i32) -> Result<()> {
        let raw = self.h.raw()?;
        // SAFETY: the handle is open and was initialised by a successful uv_spawn.
        Error::check(unsafe { sys::uv_process_kill(raw, signum) }).map(drop)
    }
}

/// Sends signal `signum` to process `pid` (`uv_kill`).
///
/// # Errors
///
/// `ESRCH` if there is no such process, `EPERM` if we may not signal it.
///
/// # Examples
///
/// ```
/// // Signal 0 only checks that the process exists.
/// uv_sys_wrap::kill(std::process::id() as i32, 0)?;
/// # Ok::<(), uv_sys_wrap::Error>(())
/// ```
pub fn kill(pid: i32, signum: i32) -> Result<()> {
    // SAFETY: uv_kill only calls kill(2).
    Error::check(unsafe { sys::uv_kill(pid, signum) }).map(drop)
}

/// True if `target` is in `lp`'s list of handles.
fn in_loop(lp: *mut sys::uv_loop_t, target: *mut sys::uv_handle_t) -> bool {
    unsafe extern "C" fn visit(h: *mut sys::uv_handle_t, arg: *mut c_void) {
        // SAFETY: `arg` is the `(target, found)` pair below, alive for the uv_walk call.
        let (target, found) = unsafe { &mut *arg.cast::<(*mut sys::uv_handle_t, bool)>() };
        *found |= h == *target;
    }
    let mut search = (target, false);
    // SAFETY: `lp` is initialised; `search` outlives the call and `visit` only compares
    // pointers.
    unsafe { sys::uv_walk(lp, Some(visit), (&raw mut search).cast()) };
    search.1
}

unsafe extern "C" fn on_exit(raw: *mut sys::uv_process_t, exit_status: i64, term_signal: c_int) {
    // The view is never dropped.
    let process = ManuallyDrop::new(Process {
        // SAFETY: libuv calls this for processes started by `Process::spawn`, whose block is
        // allocated during the callback (libuv forgets a process once it is closed).
        h: unsafe { Owned::borrowed(raw) },
    });
    process.h.catch(|| {
        process
            .h
            .cbs()
            .with(|cb| cb(&process, exit_status, term_signal));
    });
    // The callback runs once; drop it (and what it captures) now.
    process.h.cbs().clear();
}
