//! A D-Bus service, on a bus or peer to peer.
//!
//! ```text
//! dbus_service [--address ADDR | --listen ADDR]
//! ```
//!
//! On a bus (`--address`, default `session`; `system` or any D-Bus address string) it requests
//! the name `com.example.Gruvi` and exports `/com/example/Gruvi` with interface
//! `com.example.Gruvi`:
//!
//! - `Echo(s) -> s`, `Add(ii) -> i`;
//! - `Fail()`, which answers with the error `com.example.Gruvi.Error.Failed`;
//! - `Sleep(u)`, which sleeps that many milliseconds (other calls go on meanwhile);
//! - `EmitTick(u)`, which emits the signal `Tick(u)` with that number.
//!
//! With `--listen ADDR` (e.g. `unix:path=/tmp/gruvi.sock`, `unix:dir=/tmp`,
//! `tcp:host=127.0.0.1,port=0`) it serves the same object peer to peer: `dbus-send`, `busctl`
//! and `gdbus` connect to the address directly (with `Hello`, or without it as
//! `dbus-send --peer` does). It prints `ready ADDR` (the name owned, or the
//! address to connect to) once it answers calls, and exits with status 0 on SIGINT or SIGTERM.
//!
//! ```text
//! $ dbus_service --listen unix:path=/tmp/gruvi.sock &
//! ready unix:path=/tmp/gruvi.sock,guid=...
//! $ busctl --address=unix:path=/tmp/gruvi.sock call com.example.Gruvi /com/example/Gruvi \
//!       com.example.Gruvi Add ii 2 3
//! i 5
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use gruvi::dbus::{Connection, Interface, MethodError, RequestNameReply, Server, ServerBuilder};
use gruvi::fiber;

const USAGE: &str = "usage: dbus_service [--address ADDR | --listen ADDR]";
const NAME: &str = "com.example.Gruvi";
const PATH: &str = "/com/example/Gruvi";
const IFACE: &str = "com.example.Gruvi";

enum Mode {
    Bus(String),
    Listen(String),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut mode = Mode::Bus("session".into());
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--address" => mode = Mode::Bus(value("--address")?),
            "--listen" => mode = Mode::Listen(value("--listen")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(mode)
}

/// The exported interface.
fn interface() -> Interface {
    Interface::new(IFACE)
        .method("Echo", ("text",), ("text",), |_, (text,): (String,)| {
            Ok((text,))
        })
        .method("Add", ("a", "b"), ("sum",), |_, (a, b): (i32, i32)| {
            a.checked_add(b)
                .map(|sum| (sum,))
                .ok_or_else(|| MethodError::invalid_args("the sum overflows an int32"))
        })
        .method("Fail", (), (), |_, ()| -> Result<(), MethodError> {
            Err(MethodError::new(
                "com.example.Gruvi.Error.Failed",
                "it failed",
            ))
        })
        .method("Sleep", ("ms",), (), |_, (ms,): (u32,)| {
            fiber::sleep(Duration::from_millis(ms.into()))
                .map_err(|err| MethodError::failed(err.to_string()))
        })
        .method("EmitTick", ("n",), (), |call, (n,): (u32,)| {
            call.connection
                .emit_signal(PATH, IFACE, "Tick", (n,))
                .map_err(|err| MethodError::failed(err.to_string()))
        })
        .signal::<(u32,)>("Tick", ("n",))
}

fn ready(what: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {what}")?;
    out.flush()
}

fn run(mode: Mode) -> Result<(), Box<dyn std::error::Error>> {
    // Watch for the signals before telling anyone we are ready.
    let signal = fiber::spawn(|| fiber::wait_for_signal(&[libc::SIGINT, libc::SIGTERM]));
    fiber::yield_now()?;
    match mode {
        Mode::Bus(address) => {
            let connection = Connection::connect(&address)?;
            connection.export(PATH, interface())?;
            match connection.request_name(NAME, 0)? {
                RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => {}
                other => return Err(format!("could not own {NAME}: {other:?}").into()),
            }
            ready(NAME)?;
            signal.join().map_err(|e| e.to_string())??;
            connection.close();
        }
        Mode::Listen(address) => {
            // TCP clients have no credentials to check: let them in anonymously. Peers that
            // skip Hello (`dbus-send --peer`, `dbus_call --peer`) are served too.
            let server: Server = ServerBuilder::default()
                .allow_anonymous(address.starts_with("tcp:"))
                .require_hello(false)
                .build();
            server.export(PATH, interface())?;
            let listening = server.listen(&address)?;
            ready(&listening)?;
            signal.join().map_err(|e| e.to_string())??;
            server.close()?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match fiber::run(|| run(mode)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dbus_service: {err}");
            ExitCode::FAILURE
        }
    }
}
