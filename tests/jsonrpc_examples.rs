//! `examples/jsonrpc_server` and `examples/jsonrpc_client` driven by real programs: Python
//! socket clients and a Python JSON-RPC 1.0 server (python3, standard library only), and
//! kill(1). Every child process is killed and reaped with a timeout, so nothing can hang.

mod support;

#[path = "../protocols/tls/tests/support/certs.rs"]
mod certs;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use support::{CHILD_TIMEOUT, Guarded, example, run_captured, start_server};

/// Helpers shared by the Python clients: raw JSON values off a socket (no newline framing),
/// compared with errors' `data` removed (the specification leaves it open) and batches sorted.
const PY_COMMON: &str = r#"
import json, os, signal, socket, ssl, sys
signal.alarm(60)
DEC = json.JSONDecoder()
# With GRUVI_TEST_CAFILE set, every connection speaks TLS, verifying the server as localhost.
CAFILE = os.environ.get("GRUVI_TEST_CAFILE")
TLS = ssl.create_default_context(cafile=CAFILE) if CAFILE else None

class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, int(port)), timeout=20)
        if TLS:
            self.s = TLS.wrap_socket(self.s, server_hostname="localhost")
        self.buf = ""
    def send(self, text):
        self.s.sendall(text.encode() if isinstance(text, str) else text)
    def recv(self):
        """The next JSON value, or None at end of stream."""
        while True:
            stripped = self.buf.lstrip()
            if stripped:
                try:
                    value, end = DEC.raw_decode(stripped)
                    self.buf = stripped[end:]
                    return value
                except ValueError:
                    pass
            try:
                chunk = self.s.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk.decode()
    def close(self):
        self.s.close()

def norm(v):
    if isinstance(v, list):
        return sorted((norm(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, dict):
        v = dict(v)
        if isinstance(v.get("error"), dict):
            v["error"] = {k: x for k, x in v["error"].items() if k != "data"}
        return v
    return v

failures = []
def expect(name, got, want):
    if norm(got) != norm(want):
        failures.append("%s: got %s, want %s" % (name, json.dumps(got), json.dumps(want)))
"#;

/// Every example of the JSON-RPC 2.0 specification (section 7), sent as the raw bytes shown
/// there. Examples without a response are followed by a call whose answer must come next.
/// Invalid JSON cannot be resynchronised on a stream: those get the parse error, then a close.
const PY_SPEC_EXAMPLES: &str = r#"
host, port = sys.argv[1], sys.argv[2]
c = Conn(host, port)
SENTINEL = '{"jsonrpc": "2.0", "method": "echo", "params": ["next"], "id": "next"}'
NEXT = {"jsonrpc": "2.0", "result": ["next"], "id": "next"}
examples = [
  ("positional 1", '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
   {"jsonrpc": "2.0", "result": 19, "id": 1}),
  ("positional 2", '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
   {"jsonrpc": "2.0", "result": -19, "id": 2}),
  ("named 1", '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
   {"jsonrpc": "2.0", "result": 19, "id": 3}),
  ("named 2", '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
   {"jsonrpc": "2.0", "result": 19, "id": 4}),
  ("notification 1", '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
  ("notification 2", '{"jsonrpc": "2.0", "method": "foobar"}', None),
  ("non-existent method", '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
   {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
  ("invalid request object", '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
   {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
  ("empty array", '[]',
   {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
  ("invalid batch", '[1]',
   [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}]),
  ("invalid batch 3", '[1,2,3]',
   [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}] * 3),
  ("batch", '''[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]''',
   [{"jsonrpc": "2.0", "result": 7, "id": "1"},
    {"jsonrpc": "2.0", "result": 19, "id": "2"},
    {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
    {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
    {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}]),
  ("batch of notifications", '''[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]''', None),
]
for name, request, response in examples:
    c.send(request)
    if response is None:
        c.send(SENTINEL)
        expect(name, c.recv(), NEXT)
    else:
        expect(name, c.recv(), response)
c.close()

# Invalid JSON: the parse error with id null, then the connection ends.
for name, request in [
    ("invalid JSON", '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]'),
    ("batch, invalid JSON", '''[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method"
    ]'''),
]:
    c = Conn(host, port)
    c.send(request)
    expect(name, c.recv(),
           {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None})
    expect(name + " then end of stream", c.recv(), None)
    c.close()

print("\n".join(failures) if failures else "OK")
sys.exit(1 if failures else 0)
"#;

/// Gruvi's end-to-end scenario for the server: a push notification before the reply, a call
/// from the server answered by this client, a message over 64 KiB, endless `{`, endless
/// spaces and random bytes each answered with an error with id null and a close.
const PY_SCENARIOS: &str = r#"
host, port = sys.argv[1], sys.argv[2]
c = Conn(host, port)
c.send('{"jsonrpc": "2.0", "method": "echo", "params": [1, "a"], "id": 1}')
expect("echo", c.recv(), {"jsonrpc": "2.0", "result": [1, "a"], "id": 1})
c.send('{"jsonrpc": "2.0", "method": "notify_me", "params": ["hi", {"x": 1}], "id": 2}')
expect("pushed notification", c.recv(), {"jsonrpc": "2.0", "method": "hi", "params": {"x": 1}})
expect("after the notification", c.recv(), {"jsonrpc": "2.0", "result": None, "id": 2})
c.send('{"jsonrpc": "2.0", "method": "call_me", "params": ["ping", [3]], "id": 3}')
call = c.recv()
ok = call.get("method") == "ping" and call.get("params") == [3] and "id" in call
expect("server calls the client", ok, True)
c.send(json.dumps({"jsonrpc": "2.0", "result": "pong", "id": call.get("id")}))
expect("the call's result", c.recv(), {"jsonrpc": "2.0", "result": "pong", "id": 3})
c.close()

def violation(name, data, code):
    c = Conn(host, port)
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    got = c.recv()
    expect(name, got, {"jsonrpc": "2.0", "error": {"code": code, "message": got and got.get("error", {}).get("message")}, "id": None})
    expect(name + " then end of stream", c.recv(), None)
    c.close()

big = '{"jsonrpc": "2.0", "method": "echo", "params": ["' + "x" * 70000 + '"], "id": 1}'
violation("over 64 KiB", big, -32001)
violation("endless {", "{" * 100000, -32700)
violation("endless spaces", " " * 100000, -32001)
import random
random.seed(7)
violation("random bytes", bytes(random.randrange(256) for _ in range(50000)).replace(b" ", b"x").replace(b"{", b"x").replace(b"[", b"x"), -32700)
print("\n".join(failures) if failures else "OK")
sys.exit(1 if failures else 0)
"#;

/// Opens three connections to a server limited to two: the first two are answered, the third
/// is closed at once.
const PY_THREE_CLIENTS: &str = r#"
host, port = sys.argv[1], sys.argv[2]
conns = [Conn(host, port) for _ in range(3)]
served = closed = 0
for i, c in enumerate(conns):
    try:
        c.send('{"jsonrpc": "2.0", "method": "echo", "params": [%d], "id": %d}' % (i, i))
        got = c.recv()
    except (BrokenPipeError, ConnectionResetError):
        got = None
    if got == {"jsonrpc": "2.0", "result": [i], "id": i}:
        served += 1
    elif got is None:
        closed += 1
print("served=%d closed=%d" % (served, closed))
"#;

/// A tiny JSON-RPC 1.0 server written for the test: strict 1.0 shapes, a notification (id
/// null) pushed before one answer, `result` and `error` both present. Prints its port.
const PY_V1_SERVER: &str = r#"
import json, socket, signal, sys
signal.alarm(60)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
DEC = json.JSONDecoder()
while True:
    conn, _ = srv.accept()
    buf = ""
    while conn.fileno() != -1:
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk.decode()
        while buf.strip():
            try:
                msg, end = DEC.raw_decode(buf.lstrip())
            except ValueError:
                break
            buf = buf.lstrip()[end:]
            if set(msg) != {"method", "params", "id"} or not isinstance(msg["params"], list):
                reply = {"result": None, "error": {"code": 1, "message": "not 1.0: " + json.dumps(msg)}, "id": msg.get("id")}
            elif msg["method"] == "add":
                reply = {"result": sum(msg["params"]), "error": None, "id": msg["id"]}
            elif msg["method"] == "silent":
                continue
            elif msg["method"] == "drop":
                conn.close()
                break
            elif msg["method"] == "notify_then_add":
                note = {"method": "progress", "params": ["half"], "id": None}
                conn.sendall(json.dumps(note).encode())
                reply = {"result": sum(msg["params"]), "error": None, "id": msg["id"]}
            else:
                reply = {"result": None, "error": "no such method", "id": msg["id"]}
            conn.sendall(json.dumps(reply).encode())
    conn.close()
"#;

fn python(script: &str, args: &[&str]) -> (bool, String) {
    python_with(script, args, None)
}

/// Runs `script` after `PY_COMMON` with python3; with `cafile`, every connection of its
/// `Conn` speaks TLS (Python's `ssl` module) trusting that CA. Its success and output.
fn python_with(script: &str, args: &[&str], cafile: Option<&std::path::Path>) -> (bool, String) {
    let code = format!("{PY_COMMON}{script}");
    let mut command = Command::new("python3");
    if let Some(cafile) = cafile {
        command.env("GRUVI_TEST_CAFILE", cafile);
    }
    let (status, out) = run_captured(command.arg("-c").arg(code).args(args));
    (status.success(), out)
}

fn host_port(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').expect("host:port")
}

/// Sends SIGINT to an example server, which must exit with status 0.
fn exits_0_on_sigint(server: support::Server) {
    server.process.signal("INT");
    let status = server
        .process
        .wait_timeout(CHILD_TIMEOUT)
        .expect("exits on SIGINT");
    assert!(status.success(), "{status}");
}

/// Runs example `name` with `args`: its exit status and its standard output and error merged
/// (for the messages of failures).
fn run_merged(name: &str, args: &[&str]) -> (std::process::ExitStatus, String) {
    run_captured(
        Command::new("sh")
            .args(["-c", r#"exec "$0" "$@" 2>&1"#])
            .arg(example(name))
            .args(args),
    )
}

/// Runs `jsonrpc_client ARGS`: its exit code and standard output.
fn client(args: &[&str]) -> (Option<i32>, String) {
    let (status, out) = run_captured(Command::new(example("jsonrpc_client")).args(args));
    (status.code(), out)
}

#[test]
fn every_example_of_the_2_0_specification_is_answered_as_the_specification_shows() {
    let server = start_server("jsonrpc_server", &["--listen", "127.0.0.1:0"], 1);
    let (host, port) = host_port(&server.addresses[0]);
    let (ok, out) = python(PY_SPEC_EXAMPLES, &[host, port]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn push_notifications_callbacks_and_protocol_violations_from_a_python_client() {
    let server = start_server("jsonrpc_server", &["--listen", "127.0.0.1:0"], 1);
    let (host, port) = host_port(&server.addresses[0]);
    let (ok, out) = python(PY_SCENARIOS, &[host, port]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn with_max_connections_2_the_third_client_is_closed() {
    let args = ["--listen", "127.0.0.1:0", "--max-connections", "2"];
    let server = start_server("jsonrpc_server", &args, 1);
    let (host, port) = host_port(&server.addresses[0]);
    let (ok, out) = python(PY_THREE_CLIENTS, &[host, port]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "served=2 closed=1");
}

#[test]
fn the_client_example_calls_gets_errors_and_answers_the_servers_calls() {
    let path = std::env::temp_dir().join(format!("gruvi-jsonrpc-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let path = path.to_str().expect("UTF-8 temp path").to_owned();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--listen",
        &path,
        "--version",
        "1",
    ];
    let server = start_server("jsonrpc_server", &args, 2);
    let tcp = server.addresses[0].as_str();
    let named = r#"{"minuend": 42, "subtrahend": 23}"#;
    assert_eq!(
        client(&[tcp, "subtract", named]),
        (Some(0), "result 19\n".into())
    );
    assert_eq!(
        client(&["--version", "1", tcp, "sum", "[1, 2, 3.5]"]),
        (Some(0), "result 6.5\n".into())
    );
    // Over the Unix socket too; the server calls the client's ping (in 1.0, as told).
    assert_eq!(
        client(&[&path, "call_me", r#"["ping", []]"#]),
        (Some(0), "result \"pong\"\n".into())
    );
    assert_eq!(
        client(&[tcp, "notify_me", r#"["hello", [1, 2]]"#]),
        (Some(0), "notification hello [1,2]\nresult null\n".into())
    );
    assert_eq!(
        client(&[tcp, "fail", "[7]"]),
        (
            Some(1),
            "error {\"code\":-32000,\"message\":\"it failed\",\"data\":[7]}\n".into()
        )
    );
    let (code, out) = client(&[tcp, "nope"]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("error {\"code\":-32601,"), "{out}");
    let (code, _) = client(&["--timeout", "0.2", tcp, "sleep", "[5000]"]);
    assert_eq!(code, Some(2), "a timed-out call");
    // The longest sleep a client can ask for is a sleep too, not an overflow in the server.
    let (code, out) = client(&["--timeout", "0.2", tcp, "sleep", "[18446744073709551615]"]);
    assert_eq!((code, out.as_str()), (Some(2), ""), "a timed-out call");
    exits_0_on_sigint(server);
}

#[test]
fn the_client_example_talks_to_a_python_json_rpc_1_0_server() {
    let mut py = Guarded::spawn(
        Command::new("python3")
            .arg("-c")
            .arg(PY_V1_SERVER)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let stdout = py.stdout();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let port = rx
        .recv_timeout(CHILD_TIMEOUT)
        .expect("the Python server's port");
    let addr = format!("127.0.0.1:{}", port.trim());
    let v1 = |method: &str, params: &str| client(&["--version", "1", &addr, method, params]);
    assert_eq!(v1("add", "[1, 2, 3]"), (Some(0), "result 6\n".into()));
    assert_eq!(
        v1("notify_then_add", "[40, 2]"),
        (
            Some(0),
            "notification progress [\"half\"]\nresult 42\n".into()
        )
    );
    // A 1.0 error of any shape: the original value is kept as data.
    let (code, out) = v1("nope", "[]");
    assert_eq!(code, Some(1));
    assert!(out.contains("\"data\":\"no such method\""), "{out}");
    // A server that never answers: the call times out after the configured time.
    let start = std::time::Instant::now();
    let (code, _) = client(&["--version", "1", "--timeout", "0.3", &addr, "silent", "[]"]);
    assert_eq!(code, Some(2));
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
    // A server that drops the connection mid-call: the call fails at once, long before the
    // default 30 s timeout.
    let start = std::time::Instant::now();
    let (code, _) = v1("drop", "[]");
    assert_eq!(code, Some(2));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // Without --version 1 the client sends 2.0, which this server refuses by its shape.
    let (code, out) = client(&[&addr, "add", "[1]"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("not 1.0"), "{out}");
}

/// The example server over TLS (`--tls-cert`, `--tls-key`) on TCP and a Unix socket.
fn tls_server(certs: &certs::Certs, pem: &certs::Pem) -> (support::Server, String, String) {
    let path = certs.dir.join("jsonrpc.sock");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--listen",
        path.to_str().unwrap(),
        "--tls-cert",
        pem.cert_path.to_str().unwrap(),
        "--tls-key",
        pem.key_path.to_str().unwrap(),
    ];
    let server = start_server("jsonrpc_server", &args, 2);
    let tcp = server.addresses[0].clone();
    (server, tcp, path.to_str().unwrap().to_owned())
}

/// Runs a Python client script against the example server over TLS; it must print `OK`.
fn python_over_tls_says_ok(script: &str) {
    let certs = certs::make();
    let (_server, tcp, _) = tls_server(&certs, &certs.good);
    let (host, port) = host_port(&tcp);
    let (ok, out) = python_with(script, &[host, port], Some(&certs.ca.cert_path));
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn every_example_of_the_2_0_specification_over_tls_from_python_ssl() {
    python_over_tls_says_ok(PY_SPEC_EXAMPLES);
}

#[test]
fn push_notifications_callbacks_and_protocol_violations_over_tls_from_python_ssl() {
    python_over_tls_says_ok(PY_SCENARIOS);
}

#[test]
fn the_client_example_calls_the_server_example_over_tls() {
    let certs = certs::make();
    let (server, tcp, unix) = tls_server(&certs, &certs.good);
    let ca = certs.ca.cert_path.to_str().unwrap();
    let tls_addr = format!("tls://{tcp}");
    assert_eq!(
        client(&["--cacert", ca, &tls_addr, "subtract", "[42, 23]"]),
        (Some(0), "result 19\n".into())
    );
    // --tls and a Unix socket, verified as --tls-name; the server calls the client's ping.
    assert_eq!(
        client(&[
            "--tls",
            "--cacert",
            ca,
            "--tls-name",
            "localhost",
            &unix,
            "call_me",
            r#"["ping", []]"#
        ]),
        (Some(0), "result \"pong\"\n".into())
    );
    // A plain client gets nothing from a TLS server: the connection ends, exit status 2.
    let (code, out) = client(&["--timeout", "20", &tcp, "echo", "[1]"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    // Without --cacert only the system's CAs are trusted: the test CA is not one of them.
    let (code, out) = client(&[&tls_addr, "echo", "[1]"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    // TLS over a Unix socket without --tls-name is a usage error that says so.
    let (status, out) = run_merged("jsonrpc_client", &["--tls", "--cacert", ca, &unix, "echo"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("needs --tls-name"), "{out}");
    // --cacert without TLS is a usage error.
    let (code, _) = client(&["--cacert", ca, &tcp, "echo"]);
    assert_eq!(code, Some(2));
    exits_0_on_sigint(server);
}

#[test]
fn the_client_example_refuses_a_server_certificate_from_an_unknown_ca() {
    let certs = certs::make();
    let (_server, tcp, _) = tls_server(&certs, &certs.unknown_ca);
    let ca = certs.ca.cert_path.to_str().unwrap();
    let (status, out) = run_merged(
        "jsonrpc_client",
        &["--cacert", ca, &format!("tls://{tcp}"), "echo", "[1]"],
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains(
            "certificate verification failed: the certificate was not issued by a trusted authority"
        ),
        "{out}"
    );
}

#[test]
fn the_server_example_with_only_one_of_cert_and_key_is_a_usage_error() {
    let certs = certs::make();
    let (status, _) = run_captured(
        Command::new(example("jsonrpc_server"))
            .arg("--tls-cert")
            .arg(&certs.good.cert_path),
    );
    assert_eq!(status.code(), Some(2));
}

/// Bad numbers on the command line are usage errors (exit status 2 and a message), never a
/// panic: a negative or endless `--timeout`, a `--max-message-size` of 0.
#[test]
fn bad_numbers_on_the_command_line_are_usage_errors() {
    for timeout in ["-1", "inf", "NaN", "1e30"] {
        let (status, out) = run_merged(
            "jsonrpc_client",
            &["--timeout", timeout, "127.0.0.1:9", "echo"],
        );
        assert_eq!(status.code(), Some(2), "--timeout {timeout}: {out}");
        assert!(out.starts_with("--timeout "), "--timeout {timeout}: {out}");
        assert!(!out.contains("panicked"), "--timeout {timeout}: {out}");
    }
    let (status, out) = run_merged(
        "jsonrpc_server",
        &["--listen", "127.0.0.1:0", "--max-message-size", "0"],
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("--max-message-size must be at least 1"),
        "{out}"
    );
}
