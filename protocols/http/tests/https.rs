//! HTTPS: our client against our server over TLS (keep-alive on one TLS connection, chunked
//! uploads, pipelining, ALPN), certificate failures reported with their cause, and a silent
//! TLS client dropped at the handshake timeout while another client is served. Certificates
//! are made at test time.

mod support;

#[path = "../../tls/tests/support/certs.rs"]
mod certs;

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi_http::http::{Request, Response};
use gruvi_http::{
    Body, Client, ClientConfig, Incoming, Server, ServerConfig, Target, get, tls_client_builder,
    tls_server_builder,
};
use gruvi_stream::{Connection, TcpStream};
use gruvi_tls::{CertifiedKey, TlsError, TlsStream, VerifyFailure};

use support::run_clean;

/// Echoes the method, the peer's port and the body: `METHOD PORT BODY`.
fn echo(mut request: Request<Incoming>) -> Response<Body> {
    let port = match request.body().peer_address() {
        Ok(gruvi_stream::Address::Tcp(_, port)) => port,
        _ => 0,
    };
    let body = request.body_mut().read_to_vec(1 << 20).unwrap_or_default();
    let mut out = format!("{} {port} ", request.method()).into_bytes();
    out.extend_from_slice(&body);
    Response::new(Body::from(out))
}

fn tls_server(pem: &certs::Pem, handshake_timeout: Option<Duration>) -> (Server, u16) {
    let identity = CertifiedKey::from_pem(&pem.cert, &pem.key).unwrap();
    let tls = tls_server_builder(identity)
        .handshake_timeout(handshake_timeout)
        .build()
        .unwrap();
    let config = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let server = Server::with_config(echo, config);
    server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
    let gruvi_stream::Address::Tcp(_, port) = server.addresses()[0].clone() else {
        panic!("a TCP address")
    };
    (server, port)
}

fn trusting(certs: &certs::Certs) -> Client {
    let tls = tls_client_builder()
        .add_ca_pem(&certs.ca.cert)
        .build()
        .unwrap();
    Client::with_config(ClientConfig {
        tls: Some(tls),
        ..ClientConfig::default()
    })
}

fn text(response: Response<Incoming>) -> String {
    let mut out = String::new();
    response.into_body().read_to_string(&mut out).unwrap();
    out
}

#[test]
fn keep_alive_requests_reuse_one_tls_connection() {
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.good, None);
        let client = trusting(&certs);
        client
            .connect_target(&Target::parse(&format!("https://localhost:{port}/")).unwrap())
            .unwrap();
        let mut ports = Vec::new();
        for i in 0..3 {
            let request = Request::post("/")
                .body(Body::from(format!("n{i}")))
                .unwrap();
            let answer = text(client.request(request).unwrap());
            let mut words = answer.split(' ');
            assert_eq!(words.next(), Some("POST"));
            ports.push(words.next().unwrap().to_owned());
            assert_eq!(words.next(), Some(format!("n{i}").as_str()));
        }
        // The peer's address comes through the TLS stream: one client port throughout.
        assert_ne!(ports[0], "0");
        assert!(ports.windows(2).all(|w| w[0] == w[1]), "{ports:?}");
        assert_eq!(server.connection_count(), 1);
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn a_chunked_upload_of_unknown_length_arrives_whole_over_tls() {
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.good, None);
        let client = trusting(&certs);
        client
            .connect_tls(&format!("127.0.0.1:{port}").parse().unwrap(), "127.0.0.1")
            .unwrap();
        // 300 KB from a reader: sent chunked, in many TLS records.
        let data: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let request = Request::put("/up")
            .body(Body::from_reader(io::Cursor::new(data.clone())))
            .unwrap();
        let response = client.request(request).unwrap();
        assert_eq!(response.status(), 200);
        let answer = text(response);
        let body = answer.splitn(3, ' ').nth(2).unwrap();
        assert_eq!(body.len(), data.len());
        assert_eq!(body.as_bytes(), &data[..]);
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn pipelined_requests_over_tls_are_answered_in_order() {
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.good, None);
        let client = trusting(&certs);
        client
            .connect_tls(&format!("localhost:{port}").parse().unwrap(), "localhost")
            .unwrap();
        for i in 0..20 {
            let request = Request::post("/")
                .body(Body::from(format!("#{i}")))
                .unwrap();
            client.send_request(request).unwrap();
        }
        for i in 0..20 {
            let answer = text(client.read_response().unwrap());
            assert!(answer.ends_with(&format!(" #{i}")), "{i}: {answer}");
        }
        assert_eq!(server.connection_count(), 1);
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn the_server_offers_alpn_http_1_1_and_sends_close_notify_on_connection_close() {
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.good, None);
        let tcp = TcpStream::connect(format!("127.0.0.1:{port}").as_str()).unwrap();
        let config = tls_client_builder()
            .add_ca_pem(&certs.ca.cert)
            .build()
            .unwrap();
        let tls = TlsStream::connect(tcp, &config, "localhost").unwrap();
        assert_eq!(tls.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
        tls.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        tls.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = Vec::new();
        // A clean end: the server's close_notify, not a truncation error.
        (&tls).read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(answer.contains("\r\n\r\nGET "), "{answer}");
        tls.close();
        server.close().unwrap();
    });
}

#[test]
fn an_unknown_ca_fails_with_the_tls_cause() {
    let certs = certs::make();
    run_clean(|| {
        // The server's certificate comes from a CA the client does not trust.
        let (server, port) = tls_server(&certs.unknown_ca, None);
        let client = trusting(&certs);
        let err = client
            .connect_tls(&format!("127.0.0.1:{port}").parse().unwrap(), "localhost")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        match TlsError::from_io(&err) {
            Some(TlsError::Verification { failure, .. }) => {
                assert_eq!(*failure, VerifyFailure::UnknownIssuer)
            }
            other => panic!("not a verification error: {other:?} ({err})"),
        }
        assert!(err.to_string().contains("trusted authority"), "{err}");
        assert!(!client.is_connected());

        // get() uses the system trust store, which knows nothing of the test CA either.
        let err = get(&format!("https://localhost:{port}/")).unwrap_err();
        assert!(
            matches!(
                TlsError::from_io(&err),
                Some(TlsError::Verification {
                    failure: VerifyFailure::UnknownIssuer,
                    ..
                })
            ),
            "{err}"
        );
        server.close().unwrap();
    });
}

#[test]
fn a_name_mismatch_fails_with_the_tls_cause() {
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.wrong_host, None);
        let client = trusting(&certs);
        let target = Target::parse(&format!("https://localhost:{port}/")).unwrap();
        let err = client.connect_target(&target).unwrap_err();
        assert!(
            matches!(
                TlsError::from_io(&err),
                Some(TlsError::Verification {
                    failure: VerifyFailure::HostnameMismatch,
                    ..
                })
            ),
            "{err}"
        );
        server.close().unwrap();
    });
}

#[test]
fn a_silent_tls_client_is_dropped_at_the_handshake_timeout_while_others_are_served() {
    const HANDSHAKE: Duration = Duration::from_millis(2500);
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.good, Some(HANDSHAKE));
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let silent = TcpStream::connect(addr.as_str()).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let closed_at = Rc::new(Cell::new(None));
        let watcher = {
            let closed_at = closed_at.clone();
            fiber_core::spawn(move || {
                // Nothing comes but the end: the server never answers a client that says
                // nothing (a reset counts as the end too).
                let got = silent.fill();
                closed_at.set(Some(Instant::now()));
                assert!(!matches!(got, Ok(true)), "the server sent something");
            })
        };
        // Another client is served, start to end, while the silent one waits.
        let client = trusting(&certs);
        client
            .connect_tls(&addr.parse().unwrap(), "127.0.0.1")
            .unwrap();
        let answer = text(
            client
                .request(Request::get("/").body(Body::empty()).unwrap())
                .unwrap(),
        );
        assert!(answer.starts_with("GET "), "{answer}");
        assert!(
            closed_at.get().is_none(),
            "the silent client was dropped before the other one was served"
        );
        client.close();
        watcher.join().unwrap();
        let waited = closed_at.get().unwrap() - started;
        assert!(waited >= HANDSHAKE, "dropped after {waited:?}");
        server.close().unwrap();
    });
}

#[test]
fn https_over_a_unix_socket_verifies_the_name_given() {
    let certs = certs::make();
    let dir = std::env::temp_dir().join(format!("gruvi-https-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("https.sock");
    run_clean(|| {
        let identity = CertifiedKey::from_pem(&certs.good.cert, &certs.good.key).unwrap();
        let config = ServerConfig {
            tls: Some(tls_server_builder(identity).build().unwrap()),
            ..ServerConfig::default()
        };
        let server = Server::with_config(echo, config);
        let addr = gruvi_stream::Address::Unix(socket.clone());
        server.listen(&addr).unwrap();
        let client = trusting(&certs);
        client.connect_tls(&addr, "localhost").unwrap();
        let answer = text(
            client
                .request(Request::get("/").body(Body::empty()).unwrap())
                .unwrap(),
        );
        assert!(answer.starts_with("GET "), "{answer}");
        // A URL names no host for a Unix socket: https+unix is refused, not guessed.
        let encoded = socket.to_str().unwrap().replace('/', "%2F");
        assert!(Target::parse(&format!("https+unix://{encoded}/")).is_err());
        // The wrong name fails verification.
        let err = client.connect_tls(&addr, "elsewhere.test").unwrap_err();
        assert!(
            matches!(
                TlsError::from_io(&err),
                Some(TlsError::Verification {
                    failure: VerifyFailure::HostnameMismatch,
                    ..
                })
            ),
            "{err}"
        );
        server.close().unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn after_the_server_closes_the_client_reconnects_with_tls() {
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.good, None);
        let client = trusting(&certs);
        client
            .connect_target(&Target::parse(&format!("https://localhost:{port}/")).unwrap())
            .unwrap();
        let mut ports = Vec::new();
        for _ in 0..2 {
            let request = Request::get("/")
                .header("connection", "close")
                .body(Body::empty())
                .unwrap();
            let answer = text(client.request(request).unwrap());
            ports.push(answer.split(' ').nth(1).unwrap().to_owned());
        }
        // Two TLS connections, from two client ports.
        assert_ne!(ports[0], ports[1]);
        client.close();
        server.close().unwrap();
    });
}

/// An idle kept-alive TLS connection holds no fiber on the server either: with 20 clients
/// idle between requests, the server's Hub has only a few fibers more than before they came,
/// and each client's next request on its TLS connection is answered.
#[test]
fn idle_tls_connections_hold_no_fiber_and_are_served_again() {
    let certs = certs::make();
    run_clean(|| {
        let (server, port) = tls_server(&certs.good, None);
        let before = fiber_core::dump().len();
        let target = Target::parse(&format!("https://localhost:{port}/")).unwrap();
        let clients: Vec<Client> = (0..20).map(|_| trusting(&certs)).collect();
        for client in &clients {
            client.connect_target(&target).unwrap();
        }
        for round in 0..3 {
            for (i, client) in clients.iter().enumerate() {
                let sent = format!("r{round}c{i}");
                let request = Request::post("/").body(Body::from(sent.clone())).unwrap();
                let answer = text(client.request(request).unwrap());
                assert!(answer.ends_with(&format!(" {sent}")), "{answer}");
            }
            fiber_core::sleep(Duration::from_millis(10)).unwrap();
            let fibers = fiber_core::dump().len();
            // The sweeper, and at most 8 parked runners and one about to run.
            assert!(
                fibers <= before + 10,
                "round {round}: {fibers} fibers with 20 idle TLS connections ({before} before)"
            );
            assert_eq!(server.connection_count(), 20);
        }
        for client in &clients {
            client.close();
        }
        server.close().unwrap();
    });
}
