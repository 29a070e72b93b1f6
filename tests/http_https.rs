//! HTTPS end to end: `examples/http_server --tls-cert --tls-key` against real clients (curl
//! with `--cacert`, Python's `http.client.HTTPSConnection` with an `ssl` context trusting the
//! test CA) and `examples/curl` against it and against `openssl s_server -www`. Certificates
//! are made at test time; every child process is killed and reaped with a timeout.

mod support;

#[path = "../protocols/tls/tests/support/certs.rs"]
mod certs;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use support::{CHILD_TIMEOUT, Guarded, example, run_captured, start_server};

fn https_server(certs: &certs::Certs, extra: &[&str]) -> (support::Server, String) {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        certs.good.cert_path.to_str().unwrap(),
        "--tls-key",
        certs.good.key_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = start_server("http_server", &args, 1);
    let port = server.addresses[0].rsplit_once(':').unwrap().1.to_owned();
    (server, port)
}

/// Runs the system's curl trusting the test CA; its standard output (and error, with `-v`).
fn curl(certs: &certs::Certs, args: &[&str]) -> String {
    let (status, out) = run_captured(
        Command::new("sh")
            .arg("-c")
            .arg(r#"ca="$1"; shift; exec curl -sS --max-time 60 --cacert "$ca" "$@" 2>&1"#)
            .arg("sh")
            .arg(&certs.ca.cert_path)
            .args(args),
    );
    assert!(status.success(), "curl {args:?} failed: {out}");
    out
}

#[test]
fn curl_gets_posts_and_heads_over_https_with_keep_alive() {
    let certs = certs::make();
    let (_server, port) = https_server(&certs, &[]);
    let base = format!("https://localhost:{port}");

    // Two GETs on one TLS connection.
    let root = format!("{base}/");
    let out = curl(&certs, &["-v", "--http1.1", &root, &root]);
    assert_eq!(out.matches("Hello, World!").count(), 2, "{out}");
    assert!(
        out.contains("Re-using existing connection") || out.contains("Reusing existing"),
        "{out}"
    );
    assert!(out.contains("ALPN: server accepted http/1.1"), "{out}");

    // /echo with a body and the X-Echo header.
    let out = curl(
        &certs,
        &[
            "-i",
            "-H",
            "X-Echo: over tls",
            "--data-binary",
            "a body over tls",
            &format!("{base}/echo"),
        ],
    );
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("x-echo: over tls\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\na body over tls"), "{out}");

    // A chunked upload.
    let out = curl(
        &certs,
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "chunked over tls",
            &format!("{base}/echo"),
        ],
    );
    assert_eq!(out, "chunked over tls");

    // HEAD: the headers of GET, no body.
    let out = curl(&certs, &["-I", &root]);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("content-length: 13\r\n"), "{out}");
    assert!(!out.contains("Hello"), "{out}");
}

#[test]
fn curl_without_the_ca_refuses_the_https_server() {
    let certs = certs::make();
    let (_server, port) = https_server(&certs, &[]);
    let (status, out) = run_captured(
        Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .arg(format!("https://localhost:{port}/")),
    );
    // 60: the peer's certificate cannot be verified (77 where the system has no CA bundle).
    assert!(matches!(status.code(), Some(60 | 77)), "{status}: {out}");
}

#[test]
fn https_workers_serve_curl() {
    let certs = certs::make();
    let (_server, port) = https_server(&certs, &["--workers", "2"]);
    for _ in 0..4 {
        let out = curl(&certs, &[&format!("https://127.0.0.1:{port}/")]);
        assert_eq!(out, "Hello, World!");
    }
}

/// Python's http.client over TLS: POSTs of 0-4000 bytes then a chunked GET, on one
/// connection (the same socket throughout), trusting only the test CA.
const PY_HTTPS_CLIENT: &str = r#"
import http.client, signal, ssl, sys
signal.alarm(100)
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context(cafile=ca)
context.set_alpn_protocols(["http/1.1"])
conn = http.client.HTTPSConnection(host, port, context=context, timeout=30)
sock = None
for n in range(0, 5000, 1000):
    body = bytes(i % 251 for i in range(n))
    conn.request("POST", "/echo", body=body, headers={"X-Echo": str(n)})
    r = conn.getresponse()
    assert r.status == 200, r.status
    assert r.getheader("x-echo") == str(n), r.getheaders()
    assert r.read() == body
    if sock is None:
        sock = conn.sock
        assert sock.selected_alpn_protocol() == "http/1.1", sock.selected_alpn_protocol()
    assert conn.sock is sock, "a new connection"
conn.request("GET", "/stream?n=50")
r = conn.getresponse()
assert r.getheader("transfer-encoding") == "chunked", r.getheaders()
lines = r.read().decode().splitlines()
assert lines == ["line %d" % i for i in range(50)], lines
assert conn.sock is sock
print("OK")
"#;

#[test]
fn python_https_connection_posts_and_gets_chunked_on_one_connection() {
    let certs = certs::make();
    let (_server, port) = https_server(&certs, &[]);
    let (status, out) = run_captured(
        Command::new("python3")
            .args(["-c", PY_HTTPS_CLIENT, "localhost", &port])
            .arg(&certs.ca.cert_path),
    );
    assert!(status.success(), "{out}");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn our_curl_talks_https_to_the_http_server_example() {
    let certs = certs::make();
    let (_server, port) = https_server(&certs, &[]);
    let curl = example("curl");
    let ca = certs.ca.cert_path.to_str().unwrap();

    let (status, out) = run_captured(Command::new(&curl).args([
        "--cacert",
        ca,
        "-i",
        &format!("https://localhost:{port}/"),
    ]));
    assert!(status.success(), "{out}");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nHello, World!"), "{out}");

    let (status, out) = run_captured(Command::new(&curl).args([
        "--cacert",
        ca,
        "-H",
        "X-Echo: ignored",
        "-d",
        "posted over tls",
        &format!("https://127.0.0.1:{port}/echo"),
    ]));
    assert!(status.success(), "{out}");
    assert_eq!(out, "posted over tls");

    // Without --cacert only the system trust store counts: the test CA is unknown, and the
    // error says so.
    let output = Command::new(&curl)
        .arg(format!("https://localhost:{port}/"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("trusted authority"), "{stderr}");

    // The system trust store is where the default configuration looks: OpenSSL's
    // SSL_CERT_FILE points it at the test CA.
    let (status, out) = run_captured(
        Command::new(&curl)
            .env("SSL_CERT_FILE", ca)
            .arg(format!("https://localhost:{port}/")),
    );
    assert!(status.success(), "{out}");
    assert_eq!(out, "Hello, World!");
}

#[test]
fn our_curl_reads_openssl_s_server_www() {
    let certs = certs::make();
    // A free port for s_server (it cannot report one it picked itself).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Guarded::spawn(
        Command::new("openssl")
            .args(["s_server", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&certs.good.cert_path)
            .arg("-key")
            .arg(&certs.good.key_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = server.stdout();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = lines
            .recv_timeout(CHILD_TIMEOUT)
            .expect("s_server reports ACCEPT");
        if line.contains("ACCEPT") {
            break;
        }
    }
    let (status, out) = run_captured(Command::new(example("curl")).args([
        "--cacert",
        certs.ca.cert_path.to_str().unwrap(),
        "-i",
        &format!("https://localhost:{port}/"),
    ]));
    assert!(status.success(), "{out}");
    // s_server -www answers in HTTP/1.0 with a page describing the session, ciphers and all,
    // ended by the connection's end (after its close_notify: no truncation error).
    assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
    assert!(
        out.contains("Ciphers supported in s_server binary"),
        "{out}"
    );
}

#[test]
fn http_server_with_only_one_of_cert_and_key_is_a_usage_error() {
    let certs = certs::make();
    let (status, _) = run_captured(
        Command::new(example("http_server"))
            .arg("--tls-cert")
            .arg(&certs.good.cert_path),
    );
    assert_eq!(status.code(), Some(2));
}
