//! Against the real thing: `openssl s_server` as the server for our client, and
//! `openssl s_client` against our server. Both run as child processes, killed on drop.

mod support;

use std::io::{self, Write};
use std::process::Command;
use std::rc::Rc;
use std::sync::{Arc, mpsc};

use fiber_core::Event;
use gruvi_stream::{Address, Connection, Stream};
use gruvi_tls::{ServerConfig, TlsError, VerifyFailure};
use support::{Guarded, certs, client_config, run_clean, server_config};

/// Starts `openssl s_server` on a free loopback port with `pem` and `extra` arguments and
/// returns it with the port.
fn s_server(pem: &certs::Pem, extra: &[&str]) -> (Guarded, u16) {
    // Line-buffered output (stdbuf): some of s_server's reports go through stdio.
    let mut server = Guarded::spawn(
        Command::new("stdbuf")
            .args([
                "-oL",
                "openssl",
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-naccept",
                "1",
            ])
            .arg("-cert")
            .arg(&pem.cert_path)
            .arg("-key")
            .arg(&pem.key_path)
            .args(extra),
    );
    let line = server.wait_for("ACCEPT 127.0.0.1:");
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    (server, port)
}

#[test]
fn our_client_gets_a_page_from_s_server_with_the_good_certificate() {
    let certs = certs::make();
    let (server, port) = s_server(&certs.good, &["-www"]);
    run_clean(|| {
        // "localhost" is connected to (each of its addresses in turn) and verified by name.
        let addr = Address::Tcp("localhost".into(), port);
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let status = stream.readline(None).unwrap();
        assert_eq!(status, b"HTTP/1.0 200 ok\r\n");
        // The page lists the session: TLS 1.3 and its cipher.
        let page = stream.read_bytes(usize::MAX).unwrap();
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains("TLSv1.3"), "{page}");
    });
    drop(server);
}

fn failure_against_s_server(certs: &certs::Certs, pem: &certs::Pem) -> VerifyFailure {
    let (mut server, port) = s_server(pem, &[]);
    let err = run_clean(|| {
        let addr = Address::Tcp("127.0.0.1".into(), port);
        gruvi_tls::connect_with_name(&addr, "localhost", &client_config(certs)).unwrap_err()
    });
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    // Our client told s_server why, with an alert.
    let alert = server.wait_for("alert");
    let failure = match TlsError::from_io(&err) {
        Some(TlsError::Verification { failure, .. }) => *failure,
        other => panic!("not a verification error: {other:?} ({err})"),
    };
    eprintln!("{err}; s_server: {alert}");
    failure
}

#[test]
fn our_client_refuses_s_server_with_an_expired_certificate() {
    let certs = certs::make();
    assert_eq!(
        failure_against_s_server(&certs, &certs.expired),
        VerifyFailure::Expired
    );
}

#[test]
fn our_client_refuses_s_server_with_a_certificate_for_another_host() {
    let certs = certs::make();
    assert_eq!(
        failure_against_s_server(&certs, &certs.wrong_host),
        VerifyFailure::HostnameMismatch
    );
}

#[test]
fn our_client_refuses_s_server_with_a_certificate_from_an_unknown_ca() {
    let certs = certs::make();
    assert_eq!(
        failure_against_s_server(&certs, &certs.unknown_ca),
        VerifyFailure::UnknownIssuer
    );
}

#[test]
fn our_client_follows_a_key_update_and_tickets_from_s_server() {
    let certs = certs::make();
    let (mut server, port) = s_server(&certs.good, &[]);
    run_clean(|| {
        let addr = Address::Tcp("127.0.0.1".into(), port);
        let stream =
            gruvi_tls::connect_with_name(&addr, "localhost", &client_config(&certs)).unwrap();
        // A hang becomes an error.
        stream
            .connection()
            .set_read_timeout(Some(support::CHILD_TIMEOUT))
            .unwrap();
        server.wait_for("CIPHER is");
        // "K": s_server sends a KeyUpdate asking for ours in return (it reports the call as
        // "SSL_do_handshake -> 1"), then, as a separate input, a line.
        server.stdin().write_all(b"K\n").unwrap();
        server.stdin().flush().unwrap();
        server.wait_for("SSL_do_handshake -> 1");
        server.stdin().write_all(b"from s_server\n").unwrap();
        server.stdin().flush().unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"from s_server\n");
        stream.write_all(b"from our client\n").unwrap();
        stream.flush().unwrap();
        server.wait_for("from our client");
        // Once more, both ways.
        server.stdin().write_all(b"again\n").unwrap();
        server.stdin().flush().unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"again\n");
        stream.write_all(b"bye\n").unwrap();
        stream.flush().unwrap();
        server.wait_for("bye");
        stream.write_eof().unwrap();
    });
}

/// Our echo server on its own thread (its own Hub), so that this thread can drive a child
/// process with blocking calls. Stops when dropped.
struct ServerThread {
    port: u16,
    stop: Arc<Event>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    fn start(config: ServerConfig) -> ServerThread {
        let stop = Arc::new(Event::new());
        let (tx, rx) = mpsc::channel();
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            run_clean(|| {
                let server = gruvi_tls::server(config, echo);
                server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
                let Address::Tcp(_, port) = server.addresses()[0].clone() else {
                    unreachable!()
                };
                tx.send(port).unwrap();
                stopped.wait().unwrap();
                server.close().unwrap();
            })
        });
        let port = rx.recv().expect("the server thread started");
        ServerThread {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.set();
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("the server thread");
            }
        }
    }
}

fn echo(stream: Rc<Stream>) -> io::Result<()> {
    while stream.fill()? {
        let chunk = stream.with_buffered(<[u8]>::to_vec);
        stream.consume(chunk.len());
        stream.write_all(&chunk)?;
    }
    stream.write_eof()
}

fn s_client(port: u16, ca: &std::path::Path, extra: &[&str]) -> Guarded {
    Guarded::spawn(
        Command::new("stdbuf")
            .args([
                "-oL",
                "openssl",
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["-servername", "localhost", "-verify_return_error"])
            .arg("-CAfile")
            .arg(ca)
            .args(extra),
    )
}

#[test]
fn s_client_verifies_our_server_and_gets_its_echo_across_a_key_update() {
    let certs = certs::make();
    let server = ServerThread::start(server_config(&certs.good));
    let mut client = s_client(server.port, &certs.ca.cert_path, &[]);
    client.wait_for("Verify return code: 0 (ok)");
    client.stdin().write_all(b"hello over tls\n").unwrap();
    client.wait_for("hello over tls");
    // "K": s_client sends a KeyUpdate asking for ours in return.
    client.stdin().write_all(b"K\n").unwrap();
    client.wait_for("KEYUPDATE");
    client.stdin().write_all(b"after the update\n").unwrap();
    client.wait_for("after the update");
    // End of input: s_client sends close_notify and leaves.
    client.close_stdin();
    let (status, output) = client.finish();
    assert!(status.success(), "{status}: {output:#?}");
    let all = output.join("\n");
    assert!(!all.contains("error"), "{all}");
    drop(server);
}

#[test]
fn s_client_limited_to_tls_1_1_is_refused_by_our_server() {
    let certs = certs::make();
    let server = ServerThread::start(server_config(&certs.good));
    // Security level 0 lets this OpenSSL offer TLS 1.1 at all.
    let client = s_client(
        server.port,
        &certs.ca.cert_path,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    let (status, output) = client.finish();
    assert!(!status.success(), "TLS 1.1 was accepted: {output:#?}");
    let all = output.join("\n");
    assert!(all.contains("alert protocol version"), "{all}");
    drop(server);
}
