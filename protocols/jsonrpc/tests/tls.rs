//! JSON-RPC over TLS: `Server::with_tls` and `connect_tls` on loopback TCP and a Unix socket,
//! with certificates made at test time (gruvi-tls's test helpers, never committed).

mod support;

#[path = "../../tls/tests/support/certs.rs"]
mod certs;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gruvi_jsonrpc::{
    Config, Error, Methods, Peer, RpcError, Server, connect_tls, connect_tls_with_name,
};
use gruvi_stream::{Address, Stream};
use gruvi_tls::{CertifiedKey, ClientConfig, ServerConfig, TlsError, TlsStream, VerifyFailure};
use support::run_clean;

fn server_config(pem: &certs::Pem) -> ServerConfig {
    ServerConfig::builder(CertifiedKey::from_pem(&pem.cert, &pem.key).unwrap())
        .build()
        .unwrap()
}

/// A client config trusting only the test CA.
fn client_config(certs: &certs::Certs) -> ClientConfig {
    ClientConfig::builder()
        .use_system_roots(false)
        .add_ca_pem(&certs.ca.cert)
        .build()
        .unwrap()
}

fn methods() -> Methods {
    let mut m = Methods::new();
    m.add("add", |_, (a, b): (i64, i64)| Ok(a + b));
    m.add("sleep_then", |_, (ms, x): (u64, i64)| {
        fiber_core::sleep(Duration::from_millis(ms)).map_err(RpcError::internal_error)?;
        Ok(x)
    });
    m.add("call_me", |peer, (method, arg): (String, i64)| {
        peer.call::<i64>(&method, (arg,))
            .map_err(|e| RpcError::new(-32000, e.to_string()))
    });
    m.add("is_tls", |peer, ()| {
        let conn = peer.stream().connection();
        Ok(conn.as_any().downcast_ref::<TlsStream>().is_some())
    });
    m
}

fn tls_server(certs: &certs::Certs) -> Server {
    Server::with_tls(methods(), Config::default(), server_config(&certs.good))
}

/// Listens on a free loopback port: its address.
fn listen_tcp(server: &Server) -> Address {
    server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
    server.addresses()[0].clone()
}

/// A client peer over TLS trusting the test CA, answering with `methods`.
fn client(addr: &Address, certs: &certs::Certs, methods: Methods) -> std::io::Result<Peer> {
    connect_tls(addr, &client_config(certs), methods, Config::default())
}

#[test]
fn our_client_calls_our_server_over_tls_on_tcp_and_a_unix_socket() {
    let certs = certs::make();
    run_clean(|| {
        let path = certs.dir.join("jsonrpc.sock");
        let server = tls_server(&certs);
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        server
            .listen(&Address::Unix(path.to_str().unwrap().into()))
            .unwrap();
        let addresses = server.addresses();
        let tls = client_config(&certs);
        let tcp = connect_tls(&addresses[0], &tls, Methods::new(), Config::default()).unwrap();
        let unix = connect_tls_with_name(
            &addresses[1],
            "localhost",
            &tls,
            Methods::new(),
            Config::default(),
        )
        .unwrap();
        assert_eq!(tcp.call::<i64>("add", (1, 2)).unwrap(), 3);
        assert_eq!(unix.call::<i64>("add", (40, 2)).unwrap(), 42);
        // Both ends really are TLS streams.
        assert!(tcp.call::<bool>("is_tls", ()).unwrap());
        assert!(unix.call::<bool>("is_tls", ()).unwrap());
        let conn = tcp.stream().connection();
        assert!(conn.as_any().downcast_ref::<TlsStream>().is_some());
        assert_eq!(server.peers().len(), 2);
        assert_eq!(server.connection_count(), 2);
        // A Unix socket names no host: connect_tls refuses it rather than guess.
        let err = connect_tls(&addresses[1], &tls, Methods::new(), Config::default()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("connect_tls_with_name"), "{err}");
        tcp.close();
        unix.close();
        server.close().unwrap();
        assert_eq!(server.peers().len(), 0);
    });
}

#[test]
fn one_hundred_concurrent_calls_over_one_tls_connection() {
    let certs = certs::make();
    run_clean(|| {
        let server = tls_server(&certs);
        let client = client(&listen_tcp(&server), &certs, Methods::new()).unwrap();
        // Later callers sleep less, so the answers come back out of order.
        let fibers: Vec<_> = (0..100i64)
            .map(|i| {
                let client = client.clone();
                fiber_core::spawn(move || {
                    client
                        .call::<i64>("sleep_then", ((100 - i) as u64 / 4, i))
                        .unwrap()
                })
            })
            .collect();
        for (i, f) in fibers.into_iter().enumerate() {
            assert_eq!(f.join().unwrap(), i as i64);
        }
        assert_eq!(server.connection_count(), 1);
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn the_server_calls_back_into_the_client_over_tls() {
    let certs = certs::make();
    run_clean(|| {
        let server = tls_server(&certs);
        let mut m = Methods::new();
        m.add("double", |_, (x,): (i64,)| Ok(2 * x));
        let client = client(&listen_tcp(&server), &certs, m).unwrap();
        // The client's call is pending while the server's handler calls the client.
        assert_eq!(client.call::<i64>("call_me", ("double", 21)).unwrap(), 42);
        // And the server reaches the client on its own, through peers().
        let peers = server.peers();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].call::<i64>("double", (5,)).unwrap(), 10);
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn a_server_certificate_from_an_unknown_ca_fails_with_the_tls_error() {
    let certs = certs::make();
    run_clean(|| {
        let server = Server::with_tls(
            methods(),
            Config::default(),
            server_config(&certs.unknown_ca),
        );
        let err = client(&listen_tcp(&server), &certs, Methods::new()).unwrap_err();
        match TlsError::from_io(&err) {
            Some(TlsError::Verification { failure, .. }) => {
                assert_eq!(*failure, VerifyFailure::UnknownIssuer, "{err}");
            }
            other => panic!("not a verification error: {other:?} ({err})"),
        }
        // The failed handshake ended the server's connection too.
        server.close().unwrap();
        assert_eq!(server.peers().len(), 0);
    });
}

#[test]
fn a_plain_client_gets_no_answer_from_a_tls_server() {
    let certs = certs::make();
    run_clean(|| {
        let server = tls_server(&certs);
        let client =
            gruvi_jsonrpc::connect(&listen_tcp(&server), Methods::new(), Config::default())
                .unwrap();
        // JSON is no TLS record: the server's handshake fails and it closes the connection.
        let outcome = client.call::<i64>("add", (1, 2));
        assert!(
            matches!(outcome, Err(Error::ConnectionLost(_))),
            "{outcome:?}"
        );
        assert_eq!(server.peers().len(), 0);
        server.close().unwrap();
    });
}

#[test]
fn with_max_connections_2_the_third_tls_client_is_closed() {
    let certs = certs::make();
    run_clean(|| {
        let server = tls_server(&certs);
        server.set_max_connections(Some(2));
        let addr = &listen_tcp(&server);
        let first = client(addr, &certs, Methods::new()).unwrap();
        let second = client(addr, &certs, Methods::new()).unwrap();
        // The third is closed as soon as it is accepted, before any handshake.
        let third = client(addr, &certs, Methods::new());
        let third_failed = match &third {
            Err(_) => true,
            Ok(peer) => matches!(
                peer.call::<i64>("add", (1, 1)),
                Err(Error::ConnectionLost(_))
            ),
        };
        assert!(third_failed, "{third:?}");
        assert_eq!(first.call::<i64>("add", (1, 1)).unwrap(), 2);
        assert_eq!(second.call::<i64>("add", (2, 2)).unwrap(), 4);
        assert_eq!(server.peers().len(), 2);
        // Once one leaves, a new client is served.
        first.close();
        drop(first);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.connection_count() > 1 && std::time::Instant::now() < deadline {
            fiber_core::sleep(Duration::from_millis(5)).unwrap();
        }
        let fourth = client(addr, &certs, Methods::new()).unwrap();
        assert_eq!(fourth.call::<i64>("add", (3, 3)).unwrap(), 6);
        server.close().unwrap();
    });
}

/// What a connection of [`reading_server`] received, or how its end failed.
type Seen = Rc<RefCell<Vec<std::io::Result<Vec<u8>>>>>;

/// A TLS server that reads each connection to its end: what it got, or how the read failed.
fn reading_server(certs: &certs::Certs) -> (gruvi_stream::Server, Seen) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let server = {
        let seen = seen.clone();
        gruvi_tls::server(server_config(&certs.good), move |stream: Rc<Stream>| {
            // Bytes received before an error come first: the next read reports the end.
            let got = stream
                .read_bytes(usize::MAX)
                .and_then(|data| stream.read_bytes(1).map(|end| (data, end)));
            seen.borrow_mut().push(got.map(|(data, end)| {
                assert_eq!(end, b"", "end of stream again");
                data
            }));
            Ok(())
        })
    };
    (server, seen)
}

#[test]
fn shutdown_ends_a_tls_connection_with_close_notify_and_close_does_not() {
    let certs = certs::make();
    run_clean(|| {
        let (server, seen) = reading_server(&certs);
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.addresses()[0].clone();
        let peer = client(&addr, &certs, Methods::new()).unwrap();
        peer.notify("bye", ()).unwrap();
        peer.shutdown().unwrap();
        assert!(!peer.is_open());
        assert!(matches!(
            peer.notify("late", ()),
            Err(Error::ConnectionLost(_))
        ));
        // The server's handler read everything, then a clean end of stream.
        let got = seen
            .borrow_mut()
            .remove(0)
            .expect("a clean end, not truncation");
        assert_eq!(got, br#"{"jsonrpc":"2.0","method":"bye"}"#.to_vec());
        // close() sends no close_notify: the server sees a truncated stream.
        let peer = client(&addr, &certs, Methods::new()).unwrap();
        peer.notify("bye", ()).unwrap();
        peer.flush().unwrap();
        peer.close();
        while seen.borrow().is_empty() {
            fiber_core::sleep(Duration::from_millis(5)).unwrap();
        }
        let err = seen.borrow_mut().remove(0).unwrap_err();
        assert!(
            matches!(TlsError::from_io(&err), Some(TlsError::Truncated)),
            "{err}"
        );
        server.close().unwrap();
    });
}

/// A socket whose writes are kept instead of sent while `capture` is set: how a test gets the
/// bytes of a TLS record to send them one at a time.
#[derive(Debug)]
struct Tap {
    socket: std::net::TcpStream,
    capture: Option<Vec<u8>>,
}

impl std::io::Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.socket.read(buf)
    }
}

impl std::io::Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.capture {
            Some(kept) => {
                kept.extend_from_slice(buf);
                Ok(buf.len())
            }
            None => self.socket.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.socket.flush()
    }
}

/// A client (OpenSSL, in a thread) starts a message in one TLS record, then sends the next
/// record one byte every 50 ms: the TLS layer waits for the whole record, each byte would
/// restart a read timeout, yet the message timeout (a deadline) cuts it off. Returns how
/// long after the first record the answer came, and the answer.
fn trickle_a_tls_record(port: u16) -> (Duration, String) {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use std::io::{Read, Write};

    let socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    // TLS 1.2: no session tickets arrive after the handshake, so the first bytes from the
    // server are its answer.
    builder
        .set_max_proto_version(Some(openssl::ssl::SslVersion::TLS1_2))
        .unwrap();
    let tap = Tap {
        socket: socket.try_clone().unwrap(),
        capture: None,
    };
    let mut tls = builder.build().connect("localhost", tap).unwrap();
    tls.write_all(br#"{"jsonrpc": "2.0", "method": "add", "#)
        .unwrap();
    let started = std::time::Instant::now();
    tls.get_mut().capture = Some(Vec::new());
    tls.write_all(br#""params": [1, 2], "id": 1}"#).unwrap();
    let record = tls.get_mut().capture.take().unwrap();
    assert!(record.len() > 40, "a record of {} bytes", record.len());
    socket.set_nonblocking(true).unwrap();
    let mut answered = None;
    for byte in &record {
        std::thread::sleep(Duration::from_millis(50));
        let mut peek = [0u8; 1];
        // The answer (and the server's close) came: stop.
        match socket.peek(&mut peek) {
            Ok(_) => {
                answered = Some(started.elapsed());
                break;
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("{err}"),
        }
        if (&socket).write_all(&[*byte]).is_err() {
            break;
        }
    }
    let took = answered.unwrap_or_else(|| started.elapsed());
    socket.set_nonblocking(false).unwrap();
    let mut answer = String::new();
    // The answer, then close_notify (end of stream); the server may reset the connection
    // after that, which is fine.
    let _ = tls.read_to_string(&mut answer);
    (took, answer)
}

#[test]
fn a_tls_record_trickled_byte_by_byte_is_cut_off_by_the_message_timeout() {
    let certs = certs::make();
    run_clean(|| {
        let mut config = Config::default();
        config.message_timeout = Some(Duration::from_millis(300));
        let server = Server::with_tls(methods(), config, server_config(&certs.good));
        let Address::Tcp(_, port) = listen_tcp(&server) else {
            panic!("not TCP");
        };
        let client = std::thread::spawn(move || trickle_a_tls_record(port));
        while !client.is_finished() {
            fiber_core::sleep(Duration::from_millis(10)).unwrap();
        }
        let (took, answer) = client.join().unwrap();
        assert!(answer.contains("-32002"), "{answer:?}");
        assert!(
            took >= Duration::from_millis(300),
            "answered after {took:?}"
        );
        assert!(took < Duration::from_secs(2), "answered after {took:?}");
        server.close().unwrap();
    });
}
