//! Child processes: exit status and signals, stdio through created pipes, inherited
//! descriptors and streams, environment and working directory, and failed spawns that leak
//! nothing.

mod support;

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{
    Error, Handle, Loop, Pipe, Process, ProcessOptions, StdioContainer, Stream, kill,
};

type Exit = Rc<Cell<Option<(i64, i32)>>>;

/// `/bin/sh -c script`.
fn sh(script: &str) -> ProcessOptions<'static> {
    ProcessOptions::new("/bin/sh").args(["-c", script])
}

/// Spawns `options`, recording the exit status and terminating signal.
fn spawn(lp: &Loop, options: &ProcessOptions<'_>) -> (Process, Exit) {
    let exit: Exit = Rc::new(Cell::new(None));
    let e = exit.clone();
    let child = Process::spawn(lp, options, move |_, status, signal| {
        assert!(
            e.replace(Some((status, signal))).is_none(),
            "exit reported twice"
        );
    })
    .expect("spawn");
    (child, exit)
}

/// A pipe for the child to write to (its stdout, stderr or another descriptor).
fn child_writes(pipe: &Pipe) -> StdioContainer<'_> {
    StdioContainer::CreatePipe {
        pipe,
        readable: false,
        writable: true,
        nonblock: false,
    }
}

/// Everything read from `pipe`, and whether it reached end of file.
type Output = Rc<RefCell<(Vec<u8>, bool)>>;

fn read_all(pipe: &Pipe) -> Output {
    let out: Output = Rc::new(RefCell::new((Vec::new(), false)));
    let o = out.clone();
    pipe.read_start(Vec::with_capacity, move |_, data| match data {
        Ok(bytes) => o.borrow_mut().0.extend_from_slice(&bytes),
        Err(err) => {
            assert!(err.is_eof(), "{err}");
            o.borrow_mut().1 = true;
        }
    })
    .unwrap();
    out
}

#[test]
fn exit_status_is_reported() {
    let lp = Loop::new().unwrap();
    let (child, exit) = spawn(&lp, &sh("exit 3"));
    assert!(child.pid() > 0);
    assert!(child.is_active());
    run_until(&lp, LIMIT, || exit.get().is_some());
    assert_eq!(exit.get(), Some((3, 0)));
    assert!(!child.is_active());
    drop(child);
    close_clean(lp);
}

#[test]
fn sigterm_reports_the_terminating_signal() {
    let lp = Loop::new().unwrap();
    let (child, exit) = spawn(&lp, &ProcessOptions::new("sleep").arg("10"));
    child.kill(libc::SIGTERM).unwrap();
    run_until(&lp, LIMIT, || exit.get().is_some());
    assert_eq!(exit.get(), Some((0, libc::SIGTERM)));
    drop(child);
    close_clean(lp);
}

#[test]
fn kill_by_pid_signals_the_child() {
    let lp = Loop::new().unwrap();
    let (child, exit) = spawn(&lp, &ProcessOptions::new("sleep").arg("10"));
    kill(child.pid(), 0).expect("signal 0 finds the child");
    kill(child.pid(), libc::SIGKILL).unwrap();
    run_until(&lp, LIMIT, || exit.get().is_some());
    assert_eq!(exit.get(), Some((0, libc::SIGKILL)));
    drop(child);
    close_clean(lp);
}

#[test]
fn kill_after_exit_is_esrch() {
    let lp = Loop::new().unwrap();
    let (child, exit) = spawn(&lp, &sh("exit 0"));
    run_until(&lp, LIMIT, || exit.get().is_some());
    assert_eq!(child.kill(libc::SIGTERM), Err(Error::ESRCH));
    drop(child);
    close_clean(lp);
}

#[test]
fn stdout_is_captured_through_a_created_pipe() {
    let lp = Loop::new().unwrap();
    let stdout = Pipe::new(&lp).unwrap();
    let (child, exit) = spawn(&lp, &sh("echo hello").stdout(child_writes(&stdout)));
    let out = read_all(&stdout);
    run_until(&lp, LIMIT, || exit.get().is_some() && out.borrow().1);
    assert_eq!(out.borrow().0, b"hello\n");
    assert_eq!(exit.get(), Some((0, 0)));
    drop((child, stdout));
    close_clean(lp);
}

#[test]
fn stdin_written_through_a_pipe_is_echoed_by_cat() {
    let lp = Loop::new().unwrap();
    let (stdin, stdout) = (Pipe::new(&lp).unwrap(), Pipe::new(&lp).unwrap());
    let options = ProcessOptions::new("cat")
        .stdin(StdioContainer::CreatePipe {
            pipe: &stdin,
            readable: true,
            writable: false,
            nonblock: false,
        })
        .stdout(child_writes(&stdout));
    let (child, exit) = spawn(&lp, &options);
    assert!(stdin.is_writable());
    assert!(stdout.is_readable());
    let out = read_all(&stdout);
    stdin.write(&b"ping\n"[..], |r| r.unwrap()).unwrap();
    // cat exits once it reads end of file.
    stdin.shutdown(|r| r.unwrap()).unwrap();
    run_until(&lp, LIMIT, || exit.get().is_some() && out.borrow().1);
    assert_eq!(out.borrow().0, b"ping\n");
    assert_eq!(exit.get(), Some((0, 0)));
    drop((child, stdin, stdout));
    close_clean(lp);
}

#[test]
fn environment_and_cwd_are_honoured() {
    let lp = Loop::new().unwrap();
    let dir = std::fs::canonicalize(std::env::temp_dir()).unwrap();
    let stdout = Pipe::new(&lp).unwrap();
    // HOME is set in the parent's environment but must not reach the child.
    let options = sh(r#"echo "$FOO:${HOME-unset}"; pwd"#)
        .environment([("FOO", "bar baz")])
        .cwd(&dir)
        .stdout(child_writes(&stdout));
    let (child, exit) = spawn(&lp, &options);
    let out = read_all(&stdout);
    run_until(&lp, LIMIT, || exit.get().is_some() && out.borrow().1);
    let expected = format!("bar baz:unset\n{}\n", dir.display());
    assert_eq!(String::from_utf8_lossy(&out.borrow().0), expected);
    drop((child, stdout));
    close_clean(lp);
}

#[test]
fn extra_fd_3_reaches_the_child() {
    let lp = Loop::new().unwrap();
    let extra = Pipe::new(&lp).unwrap();
    let options = sh("echo extra >&3").stdio(3, child_writes(&extra));
    let (child, exit) = spawn(&lp, &options);
    let out = read_all(&extra);
    run_until(&lp, LIMIT, || exit.get().is_some() && out.borrow().1);
    assert_eq!(out.borrow().0, b"extra\n");
    assert_eq!(exit.get(), Some((0, 0)));
    drop((child, extra));
    close_clean(lp);
}

#[test]
fn inherited_fd_and_stream_are_shared_with_the_child() {
    let lp = Loop::new().unwrap();
    let (mut fd_reader, fd_writer) = UnixStream::pair().unwrap();
    let (mut stream_reader, stream_end) = UnixStream::pair().unwrap();
    let stream = Pipe::new(&lp).unwrap();
    stream.open(stream_end.into_raw_fd()).unwrap();
    let options = sh("echo to-fd; echo to-stream >&2")
        .stdout(StdioContainer::InheritFd(fd_writer.as_raw_fd()))
        .stderr(StdioContainer::inherit_stream(&stream));
    let (child, exit) = spawn(&lp, &options);
    run_until(&lp, LIMIT, || exit.get().is_some());
    assert_eq!(exit.get(), Some((0, 0)));
    // The child is gone: once our copy of the write end is closed, the reader sees EOF.
    drop(fd_writer);
    let mut got = String::new();
    fd_reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "to-fd\n");
    drop(stream);
    got.clear();
    stream_reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "to-stream\n");
    drop(child);
    close_clean(lp);
}

#[test]
fn missing_program_is_enoent_and_leaks_nothing() {
    let lp = Loop::new().unwrap();
    let stdout = Pipe::new(&lp).unwrap();
    let token = Rc::new(());
    let t = token.clone();
    let options = ProcessOptions::new("/nonexistent/uv-sys-wrap-no-such-program")
        .stdout(child_writes(&stdout));
    let err = Process::spawn(&lp, &options, move |_, _, _| {
        let _keep = &t;
        panic!("exit callback of a failed spawn");
    })
    .unwrap_err();
    assert_eq!(err, Error::ENOENT);
    assert_eq!(Rc::strong_count(&token), 1, "exit callback dropped at once");
    // libuv registered the handle before failing: it is closing, freed by the loop.
    let mut open = 0;
    lp.walk(|info| open += usize::from(!info.closing));
    assert_eq!(open, 1, "only the stdout pipe is open");
    run_until(&lp, LIMIT, || lp.live_handles() == 1);
    drop(stdout);
    close_clean(lp);
}

#[test]
fn unusable_stdio_fails_before_spawning_and_leaks_nothing() {
    let lp = Loop::new().unwrap();
    let options = sh("exit 0").stdout(StdioContainer::InheritFd(-1));
    let err = Process::spawn(&lp, &options, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err, Error::EINVAL);
    // libuv unregistered the handle itself: its memory is released at once.
    assert_eq!(lp.live_handles(), 0);
    close_clean(lp);
}

#[test]
fn open_or_repeated_pipe_is_ebusy_before_spawning() {
    let lp = Loop::new().unwrap();
    let (_peer, end) = UnixStream::pair().unwrap();
    let open = Pipe::new(&lp).unwrap();
    open.open(end.into_raw_fd()).unwrap();
    let options = sh("exit 0").stdout(child_writes(&open));
    let err = Process::spawn(&lp, &options, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err, Error::EBUSY);
    let fresh = Pipe::new(&lp).unwrap();
    let options = sh("exit 0")
        .stdout(child_writes(&fresh))
        .stderr(child_writes(&fresh));
    let err = Process::spawn(&lp, &options, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err, Error::EBUSY);
    assert_eq!(lp.live_handles(), 2, "only the two pipes");
    drop((open, fresh));
    close_clean(lp);
}

#[test]
fn nul_byte_in_an_argument_is_einval() {
    let lp = Loop::new().unwrap();
    let options = sh("exit 0").arg("a\0b");
    let err = Process::spawn(&lp, &options, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err, Error::EINVAL);
    close_clean(lp);
}

#[test]
fn closed_process_never_reports_exit() {
    let lp = Loop::new().unwrap();
    let (child, exit) = spawn(&lp, &sh("exit 7"));
    let pid = child.pid();
    let closed = Rc::new(Cell::new(false));
    let c = closed.clone();
    child.close_with(move || c.set(true));
    // libuv no longer waits for the child once its handle is closed: reap it here.
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid out pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid);
    assert_eq!(libc::WEXITSTATUS(status), 7);
    run_until(&lp, LIMIT, || closed.get());
    assert_eq!(exit.get(), None);
    close_clean(lp);
}
