//! Helpers shared by gruvi-dbus' integration tests: a clean Hub per test and a private
//! `dbus-daemon` on a socket in a temporary directory, killed by pid when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fiber_core::Hub;

/// Runs `f` with a fresh Hub on this thread, then closes the Hub and asserts that no libuv
/// handle was left open.
pub fn run_clean<T>(f: impl FnOnce() -> T) -> T {
    let hub = Hub::current();
    let value = f();
    assert_eq!(hub.close(), 0, "libuv handles left open");
    value
}

/// This user's home directory from the password database, where libdbus and dbus-daemon
/// keep `DBUS_COOKIE_SHA1` keyrings (they do not look at `$HOME`).
pub fn passwd_home() -> PathBuf {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m).to_string())
        .expect("/proc/self");
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.get(2) == Some(&uid.as_str())).then(|| fields.get(5).map(PathBuf::from))?
        })
        .expect("this user's home directory")
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
