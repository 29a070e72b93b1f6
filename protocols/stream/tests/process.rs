//! Child processes on fibers: exit codes and signals, pipes with concurrent readers and
//! writers, communicate, extra descriptors, environment and working directory, failed spawns.

mod support;

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{no_switch, spawn};
use gruvi_stream::{Command, Stdio};
use support::{random_bytes, run_clean};

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

#[test]
fn ten_mebibytes_pass_through_cat_with_a_concurrent_writer_and_reader() {
    run_clean(|| {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let data = Rc::new(random_bytes(10 << 20, 11));
        let stdin = child.stdin.take().unwrap();
        let input = data.clone();
        let writer = spawn(move || -> io::Result<()> {
            for chunk in input.chunks(64 * 1024 + 17) {
                (&stdin).write_all(chunk)?;
            }
            (&stdin).flush()
            // Dropping stdin closes it: cat reads end of file and exits.
        });
        let mut back = Vec::with_capacity(data.len());
        child.stdout.take().unwrap().read_to_end(&mut back).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == *data, "bytes through cat differ");
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}");
    });
}

#[test]
fn sh_exit_5_exits_with_code_5() {
    run_clean(|| {
        let child = sh("exit 5").spawn().unwrap();
        assert!(child.id() > 0);
        let status = child.wait().unwrap();
        assert_eq!((status.code(), status.signal()), (Some(5), None));
        assert!(!status.success());
        // The status stays available.
        assert_eq!(child.wait().unwrap().code(), Some(5));
        assert_eq!(sh("exit 5").status().unwrap().code(), Some(5));
    });
}

#[test]
fn sleep_times_out_then_terminate_reports_sigterm_and_a_second_terminate_is_harmless() {
    run_clean(|| {
        let child = Command::new("sleep").arg("10").spawn().unwrap();
        let start = Instant::now();
        let err = child.wait_timeout(Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(50));
        child.terminate().unwrap();
        let status = child.wait_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (status.code(), status.signal()),
            (None, Some(libc::SIGTERM))
        );
        child.terminate().unwrap();
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    });
}

#[test]
fn try_wait_never_switches_and_sees_the_exit_once_the_loop_has() {
    run_clean(|| {
        let child = Command::new("sleep").arg("10").spawn().unwrap();
        no_switch(|| assert!(child.try_wait().unwrap().is_none()));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        no_switch(|| assert_eq!(child.try_wait().unwrap(), Some(status)));
    });
}

#[test]
fn exit_by_a_signal_is_reported_as_the_signal() {
    run_clean(|| {
        let status = sh("kill -s INT $$").status().unwrap();
        assert_eq!((status.code(), status.signal()), (None, Some(libc::SIGINT)));
        let child = Command::new("sleep").arg("10").spawn().unwrap();
        child.send_signal(libc::SIGUSR1).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGUSR1));
        // Signalling an exited child is a no-op, even with an invalid signal number.
        child.send_signal(-1).unwrap();
    });
}

#[test]
fn an_invalid_signal_number_is_invalid_input() {
    run_clean(|| {
        let child = Command::new("sleep").arg("10").spawn().unwrap();
        let err = child.send_signal(-1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        child.kill().unwrap();
        child.wait().unwrap();
    });
}

#[test]
fn a_piped_extra_fd_3_is_usable_by_the_child_both_ways() {
    run_clean(|| {
        let mut child = sh("echo hi >&3").fd(3, Stdio::piped()).spawn().unwrap();
        let mut got = String::new();
        let pipe = child.take_pipe(3).unwrap();
        assert!(child.take_pipe(3).is_none());
        (&pipe).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi\n");
        assert!(child.wait().unwrap().success());

        let mut child = sh(r#"read line <&3; echo "got $line" >&3"#)
            .fd(3, Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.take_pipe(3).unwrap();
        (&pipe).write_all(b"ping\n").unwrap();
        pipe.shutdown_write().unwrap();
        got.clear();
        (&pipe).read_to_string(&mut got).unwrap();
        assert_eq!(got, "got ping\n");
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn descriptors_of_ours_reach_the_child_as_fd_3_and_stdout() {
    run_clean(|| {
        let (mut extra_reader, extra_writer) = UnixStream::pair().unwrap();
        let (mut out_reader, out_writer) = UnixStream::pair().unwrap();
        let status = sh("echo extra >&3; echo out")
            .fd(3, Stdio::from(OwnedFd::from(extra_writer)))
            .stdout(Stdio::fd(out_writer.as_raw_fd()))
            .status()
            .unwrap();
        assert!(status.success());
        // The child is gone and the command (holding the owned descriptor) was dropped: once
        // our last copy of each write end is closed, the readers see end of file.
        drop(out_writer);
        let mut got = String::new();
        extra_reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "extra\n");
        got.clear();
        out_reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "out\n");
    });
}

#[test]
fn communicate_captures_stdout_and_stderr_separately() {
    run_clean(|| {
        let mut child = sh("echo out; echo err >&2; exit 3")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = child.communicate(b"").unwrap();
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        assert_eq!(output.status.code(), Some(3));
        assert!(child.stdout.is_none() && child.stderr.is_none());
    });
}

#[test]
fn communicate_feeds_a_megabyte_through_cat_while_reading() {
    run_clean(|| {
        let mut child = sh("cat; echo done >&2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Far more than a pipe holds: writing and reading must overlap.
        let input = random_bytes(1 << 20, 5);
        let output = child.communicate(&input).unwrap();
        assert!(output.stdout == input, "bytes through cat differ");
        assert_eq!(output.stderr, b"done\n");
        assert!(output.status.success());
    });
}

#[test]
fn communicate_ignores_a_child_that_stops_reading() {
    run_clean(|| {
        let mut child = sh("exec 0<&-; echo closed")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let output = child.communicate(&random_bytes(1 << 20, 3)).unwrap();
        assert_eq!(output.stdout, b"closed\n");
        assert!(output.status.success());
    });
}

#[test]
fn communicate_needs_a_piped_stdin_for_input() {
    run_clean(|| {
        let mut child = sh("exit 0").spawn().unwrap();
        let err = child.communicate(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        child.wait().unwrap();
    });
}

#[test]
fn communicate_timeout_gives_up_and_leaves_the_child_to_kill() {
    run_clean(|| {
        let mut child = Command::new("sleep")
            .arg("10")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let err = child
            .communicate_timeout(b"", Duration::from_millis(50))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(50));
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn stdin_goes_through_cat_to_stdout() {
    run_clean(|| {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\nworld\n").unwrap();
        drop(stdin);
        let mut got = String::new();
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "hello\nworld\n");
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn a_pipe_of_one_child_feeds_another() {
    run_clean(|| {
        let mut first = Command::new("echo")
            .arg("pipeline")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(first.stdout.take().unwrap())
            .output()
            .unwrap();
        assert_eq!(output.stdout, b"PIPELINE\n");
        assert!(first.wait().unwrap().success());
    });
}

#[test]
fn arguments_reach_the_child_verbatim() {
    run_clean(|| {
        let output = sh(r#"printf '%s|' "$@""#)
            .arg("argv0")
            .args(["a b", "", "\u{20ac}", "$HOME"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            "a b||\u{20ac}|$HOME|"
        );
        let err = Command::new("echo").arg("nul\0byte").spawn().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn environment_and_working_directory_are_honoured() {
    run_clean(|| {
        let dir = std::fs::canonicalize(std::env::temp_dir()).unwrap();
        let script = r#"echo "$GRUVI_A:${GRUVI_B-unset}:${PATH:+path}"; pwd"#;
        let output = sh(script)
            .env("GRUVI_A", "a b")
            .envs([("GRUVI_B", "b")])
            .env_remove("GRUVI_B")
            .current_dir(&dir)
            .output()
            .unwrap();
        let expected = format!("a b:unset:path\n{}\n", dir.display());
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);

        // A cleared environment holds only what was set after clearing.
        let output = sh(r#"echo "$GRUVI_A:${GRUVI_B-unset}:${HOME-unset}""#)
            .env("GRUVI_B", "dropped")
            .env_clear()
            .env("GRUVI_A", "only")
            .output()
            .unwrap();
        assert_eq!(output.stdout, b"only:unset:unset\n");
    });
}

#[test]
fn a_missing_program_is_not_found_and_leaks_nothing() {
    run_clean(|| {
        let err = Command::new("/nonexistent/gruvi-no-such-program")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .fd(3, Stdio::piped())
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = Command::new("gruvi-no-such-program-in-path")
            .status()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // run_clean asserts that no handle was left open.
    });
}

#[test]
fn null_stdio_reads_end_of_file_and_discards_output() {
    run_clean(|| {
        let output = sh("cat; echo out; echo err >&2; echo extra >&3 && echo fd3-open")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .fd(3, Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.stdout, b"out\nfd3-open\n");
        assert!(output.stderr.is_empty());
        assert!(output.status.success());
    });
}

#[test]
fn a_read_timeout_on_stdout_fails_and_the_pipe_stays_usable() {
    run_clean(|| {
        let mut child = sh("read x; echo late")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        stdout
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = [0; 16];
        let err = (&stdout).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        stdout.set_read_timeout(None).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut got = String::new();
        (&stdout).read_to_string(&mut got).unwrap();
        assert_eq!(got, "late\n");
        child.wait().unwrap();
    });
}

#[test]
fn one_fiber_waits_while_another_terminates() {
    run_clean(|| {
        let child = Rc::new(Command::new("sleep").arg("10").spawn().unwrap());
        let waiter = {
            let child = child.clone();
            spawn(move || child.wait().map(|s| s.signal()))
        };
        fiber_core::yield_now().unwrap();
        child.terminate().unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), Some(libc::SIGTERM));
    });
}

#[test]
fn children_are_waitable_with_wait_and_as_completed() {
    run_clean(|| {
        let quick = sh("exit 0").spawn().unwrap();
        let slow = sh("exec sleep 10").spawn().unwrap();
        let (done, pending) = fiber_core::wait([&quick, &slow], Some(1)).unwrap();
        assert_eq!(done.len(), 1);
        assert!(std::ptr::eq(done[0], &quick));
        assert!(std::ptr::eq(pending[0], &slow));
        // A done child calls a late callback at once; the slow one times out, then is killed.
        let (done, pending) =
            fiber_core::wait_timeout([&quick, &slow], None, Duration::from_millis(20)).unwrap();
        assert_eq!((done.len(), pending.len()), (1, 1));
        slow.kill().unwrap();
        let order: Vec<_> = fiber_core::as_completed([&slow, &quick], None)
            .map(|c| c.unwrap().id())
            .collect();
        assert_eq!(order.len(), 2);
        assert!(slow.wait().unwrap().signal().is_some());
        assert!(quick.wait().unwrap().success());
    });
}
