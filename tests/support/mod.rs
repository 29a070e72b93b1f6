//! Helpers for the end-to-end tests that run the project's examples and real external programs
//! (python3, ...): building an example, and child processes that can never hang a test.
//!
//! Examples have no `CARGO_BIN_EXE_<name>` (that is for `[[bin]]` targets), so [`example`] asks
//! the cargo that built this test to build the example (a no-op when it is fresh) into the same
//! target directory and profile, and takes the binary's path from cargo's JSON messages. This
//! works under `cargo test` and `cargo nextest`, with or without `CARGO_TARGET_DIR`, and never
//! runs a stale binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long any child process may take before it is killed and the test fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// Builds example `name` of the root package and returns the path of its binary.
///
/// # Panics
///
/// If the build fails.
pub fn example(name: &str) -> PathBuf {
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>");
    let target_dir = profile_dir.parent().expect("<target>");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--quiet",
            "--message-format=json",
            "--example",
            name,
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cargo.arg("--release");
    }
    let output = cargo.stderr(Stdio::inherit()).output().expect("run cargo");
    assert!(
        output.status.success(),
        "cargo build --example {name} failed"
    );
    let messages = String::from_utf8_lossy(&output.stdout);
    messages
        .lines()
        .filter(|line| line.contains(r#""reason":"compiler-artifact""#))
        .filter(|line| line.contains(&format!(r#""name":"{name}""#)))
        .find_map(|line| json_string_field(line, "executable"))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("cargo reported no executable for example {name}"))
}

/// The value of a string field in one line of JSON (cargo escapes only `"` and `\` in paths).
fn json_string_field(line: &str, field: &str) -> Option<String> {
    let start = line.find(&format!(r#""{field}":""#))? + field.len() + 4;
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test never leaves
/// it behind.
pub struct Guarded {
    child: Option<Child>,
}

impl Guarded {
    pub fn spawn(command: &mut Command) -> Guarded {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        Guarded { child: Some(child) }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn take_stdin(&mut self) -> ChildStdin {
        let child = self.child.as_mut().expect("running");
        child.stdin.take().expect("stdin was piped")
    }

    pub fn stdout(&mut self) -> ChildStdout {
        let child = self.child.as_mut().expect("running");
        child.stdout.take().expect("stdout was piped")
    }

    /// Sends `signal` (a name such as `INT`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the child to exit, killing it after `timeout`; `None` if it had to be killed.
    pub fn wait_timeout(mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        let (done, finished) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = done.send(());
            status
        });
        if finished.recv_timeout(timeout).is_err() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            let _ = waiter.join();
            return None;
        }
        waiter.join().expect("waiter thread").ok()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `command` to completion with its output captured, killing it after [`CHILD_TIMEOUT`].
/// Returns its exit status and standard output.
///
/// # Panics
///
/// If it had to be killed.
pub fn run_captured(command: &mut Command) -> (ExitStatus, String) {
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = Guarded::spawn(command);
    let mut stdout = child.stdout();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let status = child
        .wait_timeout(CHILD_TIMEOUT)
        .unwrap_or_else(|| panic!("{command:?} did not finish within {CHILD_TIMEOUT:?}"));
    (status, reader.join().expect("stdout reader"))
}

/// A running example server that printed `listening on ADDR` lines.
pub struct Server {
    pub process: Guarded,
    pub addresses: Vec<String>,
}

/// Starts example `name` with `args` and waits for its `listening on` lines (one per address
/// it was given), read from its standard output; no sleeping.
pub fn start_server(name: &str, args: &[&str], addresses: usize) -> Server {
    let mut process = Guarded::spawn(
        Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let stdout = process.stdout();
    // Read on a thread so that a server that never prints cannot hang the test.
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut found = Vec::new();
    while found.len() < addresses {
        let line = received
            .recv_timeout(CHILD_TIMEOUT)
            .unwrap_or_else(|_| panic!("{name} did not report its addresses"));
        if let Some(addr) = line.strip_prefix("listening on ") {
            found.push(addr.to_owned());
        }
    }
    Server {
        process,
        addresses: found,
    }
}
