//! Terminal streams on a pseudo-terminal, and the process's standard streams as terminals,
//! pipes and files (in a re-executed child of this test binary).

mod support;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use gruvi_stream::{StdioKind, Tty, TtyMode, poll};
use support::{random_bytes, run_clean};

/// A pseudo-terminal of 80x24 as `(master, slave)`.
fn openpty() -> (File, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out pointers and window size; a null name and termios are allowed.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(ret, 0, "openpty: {}", io::Error::last_os_error());
    // SAFETY: openpty returned two new descriptors that nothing else owns.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(master)),
            OwnedFd::from_raw_fd(slave),
        )
    }
}

/// Reads exactly `len` bytes from the pty master, waiting for readiness through the Hub (the
/// poll handle makes the master non-blocking).
fn read_master(master: &File, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        poll::wait_readable_timeout(master, Duration::from_secs(5)).unwrap();
        let mut buf = [0; 256];
        match (&*master).read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("reading the master: {err}"),
        }
    }
    got
}

#[test]
fn a_pty_reads_and_writes_through_the_stream_api() {
    run_clean(|| {
        let (master, slave) = openpty();
        let mut tty = Tty::from_fd(slave).unwrap();
        assert_eq!(tty.winsize().unwrap(), (80, 24));
        tty.set_mode(TtyMode::Io).unwrap();
        tty.write_all(b"to the terminal\n").unwrap();
        tty.flush().unwrap();
        assert_eq!(read_master(&master, 16), b"to the terminal\n");
        (&master).write_all(b"typed").unwrap();
        let mut buf = [0; 5];
        tty.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"typed");
        tty.set_mode(TtyMode::Normal).unwrap();
    });
}

#[test]
fn a_terminal_in_normal_mode_delivers_lines_and_maps_newlines() {
    run_clean(|| {
        let (master, slave) = openpty();
        let tty = Tty::from_fd(slave).unwrap();
        (&master).write_all(b"a line\n").unwrap();
        let mut buf = [0; 16];
        let n = (&tty).read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a line\n");
        // Output processing turns "\n" into "\r\n"; the master first sees the echo.
        (&tty).write_all(b"ok\n").unwrap();
        assert_eq!(read_master(&master, 12), b"a line\r\nok\r\n");
        tty.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let err = (&tty).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    });
}

#[test]
fn a_regular_file_is_not_a_terminal() {
    run_clean(|| {
        let file = File::open(std::env::current_exe().unwrap()).unwrap();
        let err = Tty::from_fd(file.into()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    });
}

/// Set in the re-executed child to the [`StdioKind`] its stdin and stdout must have.
const CHILD_ENV: &str = "GRUVI_TEST_STDIO_CHILD";
const CHILD_TEST: &str = "stdio_child";

/// The child: copies stdin to stdout upper-cased between `<<` and `>>` (libtest's own output
/// surrounds it).
#[test]
fn stdio_child() {
    let Ok(kinds) = std::env::var(CHILD_ENV) else {
        return; // Not the child: nothing to do.
    };
    run_clean(|| {
        let input = gruvi_stream::stdin().unwrap();
        let mut output = gruvi_stream::stdout().unwrap();
        assert_eq!(format!("{:?}/{:?}", input.kind(), output.kind()), kinds);
        let mut data = Vec::new();
        (&input).read_to_end(&mut data).unwrap();
        output.write_all(b"<<").unwrap();
        output.write_all(&data.to_ascii_uppercase()).unwrap();
        output.write_all(b">>").unwrap();
        output.flush().unwrap();
    });
}

/// Runs the child with `stdin` and `stdout`, expecting it to see them as `kinds`.
fn child(stdin: Stdio, stdout: Stdio, kinds: (StdioKind, StdioKind)) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{:?}/{:?}", kinds.0, kinds.1))
        .stdin(stdin)
        .stdout(stdout)
        .spawn()
        .unwrap()
}

/// What the child wrote between its markers.
fn between_markers(output: &[u8]) -> &[u8] {
    let start = output.windows(2).position(|w| w == b"<<").expect("no <<") + 2;
    let end = output.windows(2).rposition(|w| w == b">>").expect("no >>");
    &output[start..end]
}

#[test]
fn stdin_and_stdout_work_as_pipes() {
    run_clean(|| {
        let data = random_bytes(300_000, 9);
        let mut child = child(
            Stdio::piped(),
            Stdio::piped(),
            (StdioKind::Pipe, StdioKind::Pipe),
        );
        // The child reads everything before it writes: no deadlock with blocking I/O here.
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let mut output = Vec::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut output)
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert!(between_markers(&output) == data.to_ascii_uppercase());
    });
}

#[test]
fn stdin_and_stdout_work_as_files() {
    let dir = std::env::temp_dir();
    let (input_path, output_path) = (
        dir.join(format!("gruvi-stdio-in-{}", std::process::id())),
        dir.join(format!("gruvi-stdio-out-{}", std::process::id())),
    );
    let data = random_bytes(200_000, 4);
    std::fs::write(&input_path, &data).unwrap();
    run_clean(|| {
        let stdin = File::open(&input_path).unwrap();
        let stdout = File::create(&output_path).unwrap();
        let mut child = child(
            stdin.into(),
            stdout.into(),
            (StdioKind::File, StdioKind::File),
        );
        assert!(child.wait().unwrap().success());
    });
    let output = std::fs::read(&output_path).unwrap();
    let _ = (
        std::fs::remove_file(input_path),
        std::fs::remove_file(output_path),
    );
    assert!(between_markers(&output) == data.to_ascii_uppercase());
}

#[test]
fn stdin_works_as_a_terminal() {
    run_clean(|| {
        let (master, slave) = openpty();
        let mut child = child(
            slave.into(),
            Stdio::piped(),
            (StdioKind::Tty, StdioKind::Pipe),
        );
        // A line, then end of file (^D at the start of a line).
        (&master).write_all(b"from the terminal\n\x04").unwrap();
        let mut output = Vec::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut output)
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(between_markers(&output), b"FROM THE TERMINAL\n");
    });
}
