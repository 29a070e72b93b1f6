//! `examples/dbus_service` and `examples/dbus_call` driven as programs: peer to peer and on a
//! private `dbus-daemon`, called by each other and by `busctl` and `dbus-send`, stopped with
//! SIGINT/SIGTERM (exit status 0).

mod support;

#[path = "dbus_support/mod.rs"]
mod dbus_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use dbus_support::PrivateBus;
use support::{CHILD_TIMEOUT, Guarded, example, run_captured};

/// Starts `dbus_service` with `args` and returns it with what it printed after `ready `.
fn start_service(args: &[&str]) -> (Guarded, String) {
    start_service_env(args, None)
}

/// [`start_service`] with `DBUS_SESSION_BUS_ADDRESS` set to `session`, if given.
fn start_service_env(args: &[&str], session: Option<&str>) -> (Guarded, String) {
    let mut command = Command::new(example("dbus_service"));
    match session {
        Some(address) => command.env("DBUS_SESSION_BUS_ADDRESS", address),
        None => command.env_remove("DBUS_SESSION_BUS_ADDRESS"),
    };
    let mut child = Guarded::spawn(
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let mut line = String::new();
    BufReader::new(child.stdout())
        .read_line(&mut line)
        .expect("read the ready line");
    let ready = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("dbus_service printed {line:?}"))
        .to_owned();
    (child, ready)
}

/// Runs `dbus_call` with `args`: its exit status success, stdout and stderr.
fn dbus_call(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(example("dbus_call"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dbus_call");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const OBJECT: [&str; 2] = ["com.example.Gruvi", "/com/example/Gruvi"];

#[test]
fn the_service_serves_peer_to_peer_and_exits_0_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("unix:path={}/service.sock", dir.path().display());
    let (service, address) = start_service(&["--listen", &listen]);
    assert!(address.starts_with(&listen), "{address}");
    let call = |method: &str, args: &[&str]| {
        let member = format!("com.example.Gruvi.{method}");
        let mut all = vec!["--address", address.as_str(), OBJECT[0], OBJECT[1], &member];
        all.extend_from_slice(args);
        dbus_call(&all)
    };
    assert_eq!(
        call("Add", &["int32:2", "int32:3"]),
        (true, "i 5\n".into(), String::new())
    );
    assert_eq!(call("Echo", &["hello"]).1, "s \"hello\"\n");
    let (ok, _, err) = call("Fail", &[]);
    assert!(!ok);
    assert_eq!(err, "Error com.example.Gruvi.Error.Failed: it failed\n");
    let (ok, _, err) = call("Add", &["int32:2147483647", "int32:1"]);
    assert!(
        !ok && err.contains("org.freedesktop.DBus.Error.InvalidArgs"),
        "{err}"
    );
    let (status, out) = run_captured(Command::new("busctl").args([
        &format!("--address={address}"),
        "call",
        OBJECT[0],
        OBJECT[1],
        "com.example.Gruvi",
        "Sleep",
        "u",
        "10",
    ]));
    assert!(status.success(), "{out}");
    // Without Hello, as a peer.
    let (ok, out, err) = dbus_call(&[
        "--peer",
        &address,
        "-",
        OBJECT[1],
        "com.example.Gruvi.Echo",
        "string:peer",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "s \"peer\"\n");
    let (status, out) = run_captured(Command::new("dbus-send").args([
        &format!("--peer={address}"),
        "--print-reply",
        OBJECT[1],
        "com.example.Gruvi.Add",
        "int32:20",
        "int32:22",
    ]));
    assert!(status.success() && out.contains("int32 42"), "{out}");
    service.signal("INT");
    let status = service
        .wait_timeout(CHILD_TIMEOUT)
        .expect("dbus_service exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_service_owns_its_name_on_a_bus_and_exits_0_on_sigterm() {
    let bus = PrivateBus::start();
    // No --address: the session bus, which is the private one here.
    let (service, name) = start_service_env(&[], Some(&bus.address));
    assert_eq!(name, "com.example.Gruvi");
    let (ok, out, err) = dbus_call(&[
        "--address",
        &bus.address,
        OBJECT[0],
        OBJECT[1],
        "com.example.Gruvi.Echo",
        "string:through the bus",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "s \"through the bus\"\n");
    // `system` is $DBUS_SYSTEM_BUS_ADDRESS when set.
    let output = Command::new(example("dbus_call"))
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .args([
            "--address",
            "system",
            OBJECT[0],
            OBJECT[1],
            "com.example.Gruvi.Add",
        ])
        .args(["int32:1", "int32:2"])
        .output()
        .expect("run dbus_call");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "i 3\n");
    // Without a session bus, `session` is a clear error.
    let output = Command::new(example("dbus_call"))
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args([OBJECT[0], OBJECT[1], "com.example.Gruvi.Echo"])
        .output()
        .expect("run dbus_call");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("DBUS_SESSION_BUS_ADDRESS is not set"),
        "{output:?}"
    );
    let (status, out) = run_captured(Command::new("dbus-send").args([
        &format!("--bus={}", bus.address),
        "--print-reply",
        "--dest=com.example.Gruvi",
        OBJECT[1],
        "com.example.Gruvi.EmitTick",
        "uint32:3",
    ]));
    assert!(status.success(), "{out}");
    // A badly typed argument is refused with its type named.
    let (ok, _, err) = dbus_call(&[
        "--address",
        &bus.address,
        OBJECT[0],
        OBJECT[1],
        "com.example.Gruvi.Add",
        "int32:z",
    ]);
    assert!(!ok && err.contains("bad int32"), "{err}");
    service.signal("TERM");
    let status = service
        .wait_timeout(CHILD_TIMEOUT)
        .expect("dbus_service exits");
    assert_eq!(status.code(), Some(0));
}
