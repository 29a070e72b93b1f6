//! `examples/echo_server --tls-cert --tls-key` driven by real TLS clients: `openssl s_client`
//! and `curl --cacert`, with certificates made at test time.

mod support;

#[path = "../protocols/tls/tests/support/certs.rs"]
mod certs;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use support::{CHILD_TIMEOUT, Guarded, run_captured, start_server};

fn tls_echo_server(certs: &certs::Certs) -> (support::Server, String) {
    let server = start_server(
        "echo_server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            certs.good.cert_path.to_str().unwrap(),
            "--tls-key",
            certs.good.key_path.to_str().unwrap(),
        ],
        1,
    );
    let port = server.addresses[0].rsplit_once(':').unwrap().1.to_owned();
    (server, port)
}

#[test]
fn s_client_verifies_the_tls_echo_server_and_gets_its_lines_back() {
    let certs = certs::make();
    let (_server, port) = tls_echo_server(&certs);
    let mut client = Guarded::spawn(
        Command::new("stdbuf")
            .args(["-oL", "openssl", "s_client", "-verify_return_error"])
            .args(["-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "localhost", "-CAfile"])
            .arg(&certs.ca.cert_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let mut stdin = client.take_stdin();
    let stdout = client.stdout();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| loop {
        let line = lines
            .recv_timeout(CHILD_TIMEOUT)
            .unwrap_or_else(|_| panic!("no {needle:?} from s_client: {seen:#?}"));
        seen.push(line.clone());
        if line.contains(needle) {
            break;
        }
    };
    wait_for("Verify return code: 0 (ok)");
    stdin.write_all(b"echo me over tls\n").unwrap();
    wait_for("echo me over tls");
    // End of input: s_client sends close_notify and exits.
    drop(stdin);
    let status = client.wait_timeout(CHILD_TIMEOUT).expect("s_client exits");
    assert!(status.success(), "{status}");
}

#[test]
fn curl_with_the_ca_gets_its_own_request_echoed_as_a_response() {
    let certs = certs::make();
    let (_server, port) = tls_echo_server(&certs);
    // The request line "HTTP/1.1 200 / HTTP/1.1" echoed back is a valid status line, so curl
    // reads the echo of its own request (headers and body) as the response.
    let (status, out) = run_captured(
        Command::new("curl")
            .args(["-sS", "-i", "--http1.1", "--max-time", "60"])
            .arg("--cacert")
            .arg(&certs.ca.cert_path)
            .args(["-X", "HTTP/1.1 200", "-H", "Content-Length: 11"])
            .args(["--data-binary", "hello curl!"])
            .arg(format!("https://localhost:{port}/")),
    );
    assert!(status.success(), "{status}: {out}");
    assert!(out.starts_with("HTTP/1.1 200 / HTTP/1.1\r\n"), "{out}");
    assert!(
        out.contains(&format!("Host: localhost:{port}\r\n")),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nhello curl!"), "{out}");
}

#[test]
fn curl_without_the_ca_refuses_the_tls_echo_server() {
    let certs = certs::make();
    let (_server, port) = tls_echo_server(&certs);
    let (status, out) = run_captured(
        Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .arg(format!("https://localhost:{port}/")),
    );
    // 60: the peer's certificate cannot be verified (77 where the system has no CA bundle).
    assert!(matches!(status.code(), Some(60 | 77)), "{status}: {out}");
}

#[test]
fn echo_server_with_only_one_of_cert_and_key_is_a_usage_error() {
    let certs = certs::make();
    let (status, _) = run_captured(
        Command::new(support::example("echo_server"))
            .arg("--tls-cert")
            .arg(&certs.good.cert_path),
    );
    assert_eq!(status.code(), Some(2));
    // A key that is not the certificate's is refused at start.
    let (status, _) = run_captured(
        Command::new(support::example("echo_server"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&certs.good.cert_path)
            .arg("--tls-key")
            .arg(&certs.expired.key_path),
    );
    assert_eq!(status.code(), Some(1));
}
