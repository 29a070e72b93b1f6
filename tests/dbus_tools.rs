//! gruvi::dbus against the real D-Bus tools: `dbus-send`, `busctl` and `gdbus` call a service
//! exported through a private `dbus-daemon`, and the same service served peer-to-peer with no
//! daemon at all; a Python service (python3-dbus) is called by our client, with signals both
//! ways.

#[path = "dbus_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use gruvi::dbus::{Connection, Interface, MethodError, RequestNameReply, Server};
use support::{PrivateBus, ToolOutput, run_clean, tool};

const NAME: &str = "com.example.Gruvi";
const PATH: &str = "/com/example/Gruvi";
const IFACE: &str = "com.example.Gruvi";

fn interface() -> Interface {
    let level = std::rc::Rc::new(std::cell::Cell::new(1i32));
    let set = level.clone();
    Interface::new(IFACE)
        .method("Echo", ("text",), ("text",), |_, (text,): (String,)| {
            Ok((text,))
        })
        .method(
            "EchoPair",
            ("text", "n"),
            ("text", "n"),
            |_, (text, n): (String, i32)| Ok((text, n)),
        )
        .method("Add", ("a", "b"), ("sum",), |_, (a, b): (i32, i32)| {
            Ok((a.wrapping_add(b),))
        })
        .method("Fail", (), (), |_, ()| -> Result<(), MethodError> {
            Err(MethodError::new(
                "com.example.Gruvi.Error.Failed",
                "it failed",
            ))
        })
        .property("Version", || 3u32)
        .property_rw(
            "Level",
            move || level.get(),
            move |v: i32| {
                set.set(v);
                Ok(())
            },
        )
}

fn assert_ok(out: &ToolOutput, wanted: &str) {
    assert!(out.success, "tool failed: {out:?}");
    assert!(out.stdout.contains(wanted), "{wanted:?} not in {out:?}");
}

fn assert_err(out: &ToolOutput, wanted: &str) {
    assert!(!out.success, "tool succeeded: {out:?}");
    assert!(out.stderr.contains(wanted), "{wanted:?} not in {out:?}");
}

/// Calls the service at `address` with each tool; `dest` is the bus name (or any name, peer to
/// peer).
fn call_with_every_tool(address: &str, dest: &str) {
    let bus = format!("--bus={address}");
    let dest_arg = format!("--dest={dest}");
    let send = |method: &str, args: &[&str]| {
        let mut all = vec![bus.as_str(), "--print-reply", dest_arg.as_str(), PATH];
        let member = format!("{IFACE}.{method}");
        all.push(&member);
        all.extend_from_slice(args);
        tool("dbus-send", &all)
    };
    assert_ok(&send("Echo", &["string:hello"]), "string \"hello\"");
    let pair = send("EchoPair", &["string:hello", "int32:7"]);
    assert_ok(&pair, "string \"hello\"");
    assert_ok(&pair, "int32 7");
    assert_ok(&send("Add", &["int32:2", "int32:3"]), "int32 5");
    assert_err(
        &send("Fail", &[]),
        "com.example.Gruvi.Error.Failed: it failed",
    );
    assert_err(
        &send("Nope", &[]),
        "org.freedesktop.DBus.Error.UnknownMethod",
    );

    let addr = format!("--address={address}");
    let busctl = |args: &[&str]| {
        let mut all = vec![addr.as_str(), "call", dest, PATH, IFACE];
        all.extend_from_slice(args);
        tool("busctl", &all)
    };
    assert_ok(&busctl(&["Echo", "s", "hello"]), "s \"hello\"");
    assert_ok(&busctl(&["EchoPair", "si", "hello", "7"]), "si \"hello\" 7");
    assert_ok(&busctl(&["Add", "ii", "2", "3"]), "i 5");
    assert_err(&busctl(&["Fail"]), "it failed");
    let introspect = tool("busctl", &[&addr, "introspect", dest, PATH]);
    assert_ok(&introspect, ".EchoPair");
    assert_ok(&introspect, ".Level");
    let get = |name: &str| tool("busctl", &[&addr, "get-property", dest, PATH, IFACE, name]);
    assert_ok(&get("Version"), "u 3");
    let set = tool(
        "busctl",
        &[&addr, "set-property", dest, PATH, IFACE, "Level", "i", "7"],
    );
    assert!(set.success, "{set:?}");
    assert_ok(&get("Level"), "i 7");
    let read_only = tool(
        "busctl",
        &[
            &addr,
            "set-property",
            dest,
            PATH,
            IFACE,
            "Version",
            "u",
            "4",
        ],
    );
    assert!(!read_only.success, "{read_only:?}");

    let gdbus = |method: &str, args: &[&str]| {
        let member = format!("{IFACE}.{method}");
        let mut all = vec![
            "call",
            "--address",
            address,
            "--dest",
            dest,
            "--object-path",
            PATH,
            "--method",
            member.as_str(),
        ];
        all.extend_from_slice(args);
        tool("gdbus", &all)
    };
    assert_ok(&gdbus("Echo", &["hello"]), "('hello',)");
    assert_ok(&gdbus("EchoPair", &["hello", "7"]), "('hello', 7)");
    assert_err(
        &gdbus("Fail", &[]),
        "com.example.Gruvi.Error.Failed: it failed",
    );
    let get = tool(
        "gdbus",
        &[
            "call",
            "--address",
            address,
            "--dest",
            dest,
            "--object-path",
            PATH,
            "--method",
            "org.freedesktop.DBus.Properties.Get",
            IFACE,
            "Version",
        ],
    );
    assert_ok(&get, "(<uint32 3>,)");
}

#[test]
fn dbus_send_busctl_and_gdbus_call_our_service_through_the_daemon() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let service = Connection::connect(&bus.address).unwrap();
        service.export(PATH, interface()).unwrap();
        assert_eq!(
            service.request_name(NAME, 0).unwrap(),
            RequestNameReply::PrimaryOwner
        );
        call_with_every_tool(&bus.address, NAME);
        service.close();
    });
}

#[test]
fn dbus_send_busctl_and_gdbus_talk_to_our_peer_to_peer_server() {
    run_clean(|| {
        let server = Server::new();
        server.export(PATH, interface()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let address = server
            .listen(&format!("unix:path={}/p2p.sock", dir.path().display()))
            .unwrap();
        call_with_every_tool(&address, NAME);
        // Every tool said Hello first and got a unique name of its own.
        server.close().unwrap();
    });
}

/// Over TCP (no credentials to check), our peer-to-peer server with `DBUS_COOKIE_SHA1`
/// authenticates libdbus' and GLib's clients of this user: they read the cookie it writes to
/// this user's keyring. Without it (and without `ANONYMOUS`) they are refused.
#[test]
fn dbus_send_and_gdbus_authenticate_with_cookie_sha1_over_tcp() {
    run_clean(|| {
        let keyring =
            gruvi::dbus::auth::Keyring::new(support::passwd_home().join(".dbus-keyrings"));
        let server = Server::builder().cookie_sha1(Some(keyring)).build();
        server.export(PATH, interface()).unwrap();
        let authenticated = std::rc::Rc::new(std::cell::Cell::new(0));
        let count = authenticated.clone();
        server.on_connect(move |_| count.set(count.get() + 1));
        let address = server.listen("tcp:host=127.0.0.1,port=0").unwrap();
        let add = |address: &str| {
            tool(
                "dbus-send",
                &[
                    &format!("--bus={address}"),
                    "--print-reply",
                    &format!("--dest={NAME}"),
                    PATH,
                    &format!("{IFACE}.Add"),
                    "int32:40",
                    "int32:2",
                ],
            )
        };
        assert_ok(&add(&address), "int32 42");
        let gdbus = tool(
            "gdbus",
            &[
                "call",
                "--address",
                &address,
                "--dest",
                NAME,
                "--object-path",
                PATH,
                "--method",
                &format!("{IFACE}.Echo"),
                "cookie",
            ],
        );
        assert_ok(&gdbus, "('cookie',)");
        assert_eq!(authenticated.get(), 2);
        server.close().unwrap();
        let plain = Server::new();
        let count = authenticated.clone();
        plain.on_connect(move |_| count.set(count.get() + 1));
        let address = plain.listen("tcp:host=127.0.0.1,port=0").unwrap();
        let refused = add(&address);
        assert!(!refused.success, "{refused:?}");
        assert_eq!(authenticated.get(), 2, "the plain server let a client in");
        plain.close().unwrap();
    });
}

#[test]
fn dbus_send_peer_mode_needs_no_hello_when_the_server_allows_it() {
    run_clean(|| {
        let server = Server::builder().require_hello(false).build();
        server.export(PATH, interface()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let address = server
            .listen(&format!("unix:dir={}", dir.path().display()))
            .unwrap();
        let out = tool(
            "dbus-send",
            &[
                &format!("--peer={address}"),
                "--print-reply",
                PATH,
                &format!("{IFACE}.Add"),
                "int32:40",
                "int32:2",
            ],
        );
        assert_ok(&out, "int32 42");
        server.close().unwrap();
    });
}

/// A python3-dbus service on the GLib main loop: `Ping(s) -> s`, `Boom()` raising
/// `com.example.Py.Error.Boom`, and for every `com.example.Gruvi.Tick(u)` signal it hears, a
/// `com.example.Py.Tock(u)` signal with the same number.
const PY_SERVICE: &str = r#"
import sys, signal
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
signal.alarm(60)
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])

class Service(dbus.service.Object):
    @dbus.service.method("com.example.Py", in_signature="s", out_signature="s")
    def Ping(self, text):
        return "pong " + text

    @dbus.service.method("com.example.Py", in_signature="", out_signature="")
    def Boom(self):
        raise dbus.exceptions.DBusException("kaboom", name="com.example.Py.Error.Boom")

    @dbus.service.method("com.example.Py", in_signature="", out_signature="")
    def Quit(self):
        GLib.idle_add(loop.quit)

    @dbus.service.signal("com.example.Py", signature="u")
    def Tock(self, n):
        pass

service = Service(bus, "/com/example/Py")
bus.add_signal_receiver(lambda n: service.Tock(n), signal_name="Tick",
                        dbus_interface="com.example.Gruvi")
name = dbus.service.BusName("com.example.Py", bus)
loop = GLib.MainLoop()
loop.run()
"#;

#[test]
fn our_client_calls_a_python_service_and_signals_go_both_ways() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let address = bus.address.clone();
        let python =
            gruvi::fiber::spawn(move || tool("/usr/bin/python3", &["-c", PY_SERVICE, &address]));
        let conn = Connection::connect(&bus.address).unwrap();
        // Wait until the service owns its name.
        let deadline = Instant::now() + Duration::from_secs(30);
        while conn.name_owner("com.example.Py").is_err() {
            assert!(
                Instant::now() < deadline,
                "the Python service did not start"
            );
            assert!(!python.is_finished(), "the Python service exited");
            gruvi::fiber::sleep(Duration::from_millis(20)).unwrap();
        }
        let (dest, path) = ("com.example.Py", "/com/example/Py");
        let (pong,): (String,) = conn
            .call_method(dest, path, "com.example.Py", "Ping", ("gruvi",))
            .unwrap();
        assert_eq!(pong, "pong gruvi");
        let err = conn
            .call_method::<_, ()>(dest, path, "com.example.Py", "Boom", ())
            .unwrap_err();
        assert_eq!(err.name(), Some("com.example.Py.Error.Boom"));
        assert_eq!(err.method_error().unwrap().message(), "kaboom");
        // Our signal to Python, Python's answer to us.
        let tocks = conn
            .add_match("type='signal',interface='com.example.Py',member='Tock'")
            .unwrap();
        conn.emit_signal(PATH, IFACE, "Tick", (41u32,)).unwrap();
        let tock = tocks.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(tock.read1::<u32>().unwrap(), 41);
        conn.call_method::<_, ()>(dest, path, "com.example.Py", "Quit", ())
            .unwrap();
        let out = python.join().unwrap();
        assert!(out.success, "{out:?}");
        conn.close();
    });
}
