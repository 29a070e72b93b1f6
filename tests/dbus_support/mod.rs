//! Helpers for the D-Bus end-to-end tests: a clean Hub per test, a private `dbus-daemon` on a
//! socket in a temporary directory (killed by pid when dropped), and running the real tools
//! (dbus-send, busctl, gdbus, python3) from a fiber with a time limit.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use gruvi::fiber::Hub;

/// Runs `f` with a fresh Hub on this thread, then closes the Hub and asserts that no libuv
/// handle was left open.
pub fn run_clean<T>(f: impl FnOnce() -> T) -> T {
    let hub = Hub::current();
    let value = f();
    assert_eq!(hub.close(), 0, "libuv handles left open");
    value
}

/// A private message bus: `dbus-daemon` with its own configuration, listening on a socket in
/// a temporary directory. Killed and reaped when dropped (also when a test panics).
pub struct PrivateBus {
    child: Child,
    /// The bus address, as the daemon printed it.
    pub address: String,
    /// The directory holding the configuration and the socket.
    pub dir: tempfile::TempDir,
}

impl PrivateBus {
    /// Starts a daemon accepting `EXTERNAL` on a Unix socket.
    pub fn start() -> PrivateBus {
        PrivateBus::start_with("", |dir| format!("unix:path={}/bus", dir.display()))
    }

    /// Starts a daemon listening on `listen(dir)`, with `extra` configuration lines.
    pub fn start_with(extra: &str, listen: impl FnOnce(&Path) -> String) -> PrivateBus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("bus.conf");
        let listen = listen(dir.path());
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{listen}</listen>
  {extra}
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#
            ),
        )
        .expect("write bus.conf");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address=1", "--nofork", "--nopidfile", "--nosyslog"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) must be installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the bus address");
        assert!(!line.trim().is_empty(), "dbus-daemon printed no address");
        PrivateBus {
            child,
            address: line.trim().to_owned(),
            dir,
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The socket path of a `unix:path=` bus.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bus")
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a tool printed, and whether it succeeded.
#[derive(Debug)]
pub struct ToolOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` with `args` on a pool thread (the Hub keeps serving meanwhile), killed by
/// coreutils' `timeout` after 30 s so that a hanging tool fails the test instead of hanging
/// it.
pub fn run_tool(program: &str, args: &[String]) -> ToolOutput {
    let (program, args) = (program.to_owned(), args.to_vec());
    let output = gruvi::fiber::blocking(move || {
        Command::new("timeout")
            .args(["-k", "5", "30"])
            .arg(&program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"))
    })
    .expect("the blocking pool");
    ToolOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`run_tool`] with string-slice arguments.
pub fn tool(program: &str, args: &[&str]) -> ToolOutput {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run_tool(program, &args)
}
