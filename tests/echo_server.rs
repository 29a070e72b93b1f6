//! `examples/echo_server` and `examples/netcat` driven by real programs: Python socket clients
//! (python3, standard library only), kill(1), and netcat itself. Every child process is
//! killed and reaped with a timeout, so nothing can hang.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{CHILD_TIMEOUT, Guarded, example, run_captured, start_server};

/// Sends 10 MiB of random bytes, half-closes, reads the echo until end of stream and compares
/// SHA-256 digests. Usage: python3 -c SCRIPT HOST PORT | python3 -c SCRIPT PATH.
const PY_ECHO_10_MIB: &str = r#"
import hashlib, os, signal, socket, sys, threading
signal.alarm(100)
if len(sys.argv) == 3:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
else:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(sys.argv[1])
data = os.urandom(10 * 1024 * 1024)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
digest, n = hashlib.sha256(), 0
while True:
    chunk = s.recv(1 << 16)
    if not chunk:
        break
    digest.update(chunk)
    n += len(chunk)
sender.join()
ok = n == len(data) and digest.hexdigest() == hashlib.sha256(data).hexdigest()
print("OK" if ok else "MISMATCH", n, digest.hexdigest())
sys.exit(0 if ok else 1)
"#;

/// Opens 15 connections at once, then asks each for an echo: prints how many were served,
/// closed by the server (end of stream or a reset), or left hanging. Usage: SCRIPT HOST PORT.
const PY_FIFTEEN_CLIENTS: &str = r#"
import signal, socket, sys
signal.alarm(100)
addr = (sys.argv[1], int(sys.argv[2]))
conns = [socket.create_connection(addr, timeout=20) for _ in range(15)]
served = closed = hung = 0
for s in conns:
    try:
        s.sendall(b"ping\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            reply += chunk
        if reply == b"ping\n":
            served += 1
        else:
            closed += 1
    except (ConnectionResetError, BrokenPipeError):
        closed += 1
    except socket.timeout:
        hung += 1
print("served=%d closed=%d hung=%d" % (served, closed, hung))
"#;

fn python(script: &str, args: &[&str]) -> (bool, String) {
    let (status, out) = run_captured(Command::new("python3").arg("-c").arg(script).args(args));
    (status.success(), out)
}

fn host_port(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').expect("host:port")
}

#[test]
fn ten_mib_from_a_python_client_come_back_intact_after_its_half_close() {
    let server = start_server("echo_server", &["--listen", "127.0.0.1:0"], 1);
    let (host, port) = host_port(&server.addresses[0]);
    let (ok, out) = python(PY_ECHO_10_MIB, &[host, port]);
    assert!(ok, "python client: {out}");
    assert!(out.starts_with("OK 10485760 "), "{out}");
}

#[test]
fn with_max_connections_10_of_15_clients_at_most_10_are_served_the_rest_closed_at_once() {
    let server = start_server(
        "echo_server",
        &["--listen", "127.0.0.1:0", "--max-connections", "10"],
        1,
    );
    let (host, port) = host_port(&server.addresses[0]);
    let (ok, out) = python(PY_FIFTEEN_CLIENTS, &[host, port]);
    assert!(ok, "python client: {out}");
    // Connections are accepted in order: the first ten are served, the others closed at
    // once, none left waiting for a timeout.
    assert_eq!(out.trim(), "served=10 closed=5 hung=0");
}

#[test]
fn sigint_stops_the_server_with_exit_status_0() {
    let server = start_server("echo_server", &["--listen", "127.0.0.1:0"], 1);
    server.process.signal("INT");
    let status = server
        .process
        .wait_timeout(CHILD_TIMEOUT)
        .expect("echo_server exits on SIGINT");
    assert!(status.success(), "{status}");
}

#[test]
fn a_unix_socket_path_is_served_and_a_path_in_use_is_refused() {
    let path = std::env::temp_dir().join(format!("gruvi-echo-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let path = path.to_str().expect("UTF-8 temp path").to_owned();
    let server = start_server(
        "echo_server",
        &["--listen", &path, "--listen", "127.0.0.1:0"],
        2,
    );
    assert_eq!(server.addresses[0], path);
    let (ok, out) = python(PY_ECHO_10_MIB, &[&path]);
    assert!(ok, "python client over the Unix socket: {out}");
    // A second server cannot take the path while the first holds it.
    let (status, _) = run_captured(Command::new(example("echo_server")).args(["--listen", &path]));
    assert_eq!(status.code(), Some(1), "{status}");
    server.process.signal("INT");
    let status = server.process.wait_timeout(CHILD_TIMEOUT).expect("exits");
    assert!(status.success());
    assert!(
        !std::path::Path::new(&path).exists(),
        "socket file removed on exit"
    );
}

#[test]
fn netcat_carries_standard_input_to_the_server_and_the_echo_to_standard_output() {
    let server = start_server("echo_server", &["--listen", "127.0.0.1:0"], 1);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut netcat = Guarded::spawn(
        Command::new(example("netcat"))
            .arg(&server.addresses[0])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let mut stdin = netcat.take_stdin();
    let input = data.clone();
    // Feed and drain on threads: both directions run at once.
    let feeder = std::thread::spawn(move || {
        stdin.write_all(&input).expect("write netcat's stdin");
        // Dropping stdin ends it: netcat half-closes and exits when the echo ends.
    });
    let mut stdout = netcat.stdout();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).expect("read netcat's stdout");
        out
    });
    let status = netcat
        .wait_timeout(CHILD_TIMEOUT)
        .expect("netcat exits once the echo ends");
    feeder.join().expect("feeder");
    let echoed = reader.join().expect("reader");
    assert!(status.success(), "{status}");
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "netcat's output differs from its input");
}
