//! The crate's limits: what a dead connection keeps, the bytes kept after a peer's
//! close_notify, the configured limits, and the log of failed server handshakes.

mod support;

use std::io;
use std::net::TcpListener as StdListener;
use std::sync::{Mutex, mpsc};

use gruvi_stream::{Connection, DEFAULT_MAX_CONNECTIONS, TcpStream};
use gruvi_tls::openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
use gruvi_tls::{
    ClientConfig, DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT, DEFAULT_READER_OUTPUT_LIMIT, PipeState,
    ServerConfig, SslPipe, TlsError, TlsStream,
};
use support::{certs, client_config, echo, listen, run_clean, server_config};

/// A TLS server on a plain thread (OpenSSL's blocking API) that completes the handshake, reads
/// nothing, and when told closes its socket with the client's data unread: the kernel answers
/// with a reset.
fn resetting_peer(pem: &certs::Pem) -> (u16, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_certificate_chain_file(&pem.cert_path).unwrap();
    acceptor
        .set_private_key_file(&pem.key_path, SslFiletype::PEM)
        .unwrap();
    let acceptor = acceptor.build();
    let (close, closed) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let tls = acceptor.accept(tcp).unwrap();
        let _ = closed.recv();
        drop(tls);
    });
    (port, close, thread)
}

#[test]
fn after_a_reset_every_write_fails_at_once_and_nothing_is_kept() {
    let certs = certs::make();
    let (port, close, thread) = resetting_peer(&certs.good);
    run_clean(|| {
        let tcp = TcpStream::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        let tls = TlsStream::connect(tcp, &client_config(&certs), "localhost").unwrap();
        tls.send(&[7; 1000]).unwrap();
        tls.flush_queue().unwrap();
        close.send(()).unwrap();
        // Writes succeed until the reset is known; after a few at most, one fails.
        let piece = vec![1u8; 64 * 1024];
        let mut first = None;
        for _ in 0..1000 {
            if let Err(err) = tls.send(&piece) {
                first = Some(err);
                break;
            }
            fiber_core::sleep(std::time::Duration::from_millis(5)).unwrap();
        }
        let first = first.expect("a write fails once the peer reset the connection");
        assert!(
            matches!(
                first.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{first}"
        );
        for _ in 0..20 {
            let err = tls.send(&piece).unwrap_err();
            assert_eq!(err.kind(), first.kind(), "{err}");
            assert_eq!(tls.unsent_len(), 0, "nothing is kept for a dead connection");
        }
        assert_eq!(tls.flush_queue().unwrap_err().kind(), first.kind());
        tls.close();
    });
    thread.join().unwrap();
}

/// Two wrapped pipes, the server's limit for bytes after the client's close_notify set.
fn wrapped_with_limit(certs: &certs::Certs, limit: usize) -> (SslPipe, SslPipe) {
    let mut client = SslPipe::client(&client_config(certs), "localhost");
    let config = ServerConfig::builder(
        gruvi_tls::CertifiedKey::from_pem(&certs.good.cert, &certs.good.key).unwrap(),
    )
    .after_close_notify_limit(limit)
    .build()
    .unwrap();
    assert_eq!(config.after_close_notify_limit(), limit);
    let mut server = SslPipe::server(&config);
    client.do_handshake().unwrap();
    server.do_handshake().unwrap();
    let mut app = Vec::new();
    while client.state() == PipeState::Handshake || server.state() == PipeState::Handshake {
        server
            .feed_ssldata(&client.take_ssldata(), &mut app)
            .unwrap();
        client
            .feed_ssldata(&server.take_ssldata(), &mut app)
            .unwrap();
    }
    // The server's session tickets reach the client.
    client
        .feed_ssldata(&server.take_ssldata(), &mut app)
        .unwrap();
    (client, server)
}

#[test]
fn bytes_after_the_peers_close_notify_are_kept_up_to_the_limit() {
    let certs = certs::make();
    const LIMIT: usize = 1000;
    for (extra, ok) in [(LIMIT, true), (LIMIT + 1, false)] {
        let (mut client, mut server) = wrapped_with_limit(&certs, LIMIT);
        client.shutdown().unwrap();
        let mut app = Vec::new();
        let fed = server
            .feed_ssldata(&client.take_ssldata(), &mut app)
            .unwrap();
        assert!(fed.close_notify);
        // The rest arrives in pieces; the last one decides.
        server
            .feed_ssldata(&vec![b'p'; extra - 1], &mut app)
            .unwrap();
        let result = server.feed_ssldata(b"p", &mut app);
        if ok {
            result.unwrap();
            // An unwrap passes them on as plaintext.
            server.shutdown().unwrap();
            server.feed_ssldata(&[], &mut app).unwrap();
            assert_eq!(app, vec![b'p'; LIMIT]);
        } else {
            let err = result.unwrap_err();
            assert!(matches!(err, TlsError::Protocol(_)), "{err}");
            assert!(
                err.to_string().contains("after the peer's close_notify"),
                "{err}"
            );
        }
    }
}

#[test]
fn limits_have_defaults_and_are_configurable_on_both_sides() {
    let certs = certs::make();
    let client = ClientConfig::builder().build().unwrap();
    let server = server_config(&certs.good);
    assert_eq!(client.reader_output_limit(), DEFAULT_READER_OUTPUT_LIMIT);
    assert_eq!(server.reader_output_limit(), DEFAULT_READER_OUTPUT_LIMIT);
    assert_eq!(
        client.after_close_notify_limit(),
        DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT
    );
    assert_eq!(
        server.after_close_notify_limit(),
        DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT
    );
    let client = ClientConfig::builder()
        .reader_output_limit(10)
        .after_close_notify_limit(20)
        .build()
        .unwrap();
    assert_eq!(
        (
            client.reader_output_limit(),
            client.after_close_notify_limit()
        ),
        (10, 20)
    );
}

#[test]
fn a_tls_server_limits_its_connections_by_default() {
    let certs = certs::make();
    let server = gruvi_tls::server(server_config(&certs.good), |_| Ok(()));
    assert_eq!(server.max_connections(), Some(DEFAULT_MAX_CONNECTIONS));
    server.set_max_connections(None);
    assert_eq!(server.max_connections(), None);
}

#[test]
fn a_tls_server_at_its_connection_limit_closes_the_next_client() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        server.set_max_connections(Some(2));
        let addr = listen(&server, "127.0.0.1:0");
        let config = client_config(&certs);
        let connect = || gruvi_tls::connect_with_name(&addr, "localhost", &config);
        let first = connect().unwrap();
        let second = connect().unwrap();
        // The third is closed as soon as it is accepted: its handshake fails, quickly.
        let third = connect();
        let err = third.as_ref().map(|_| ()).unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        for (stream, word) in [(&first, &b"one\n"[..]), (&second, b"two\n")] {
            stream.write_all(word).unwrap();
            assert_eq!(stream.readline(None).unwrap(), word);
        }
        assert_eq!(server.connections().len(), 2);
        drop((first, second, third));
        server.close().unwrap();
    });
}

/// Collects log messages (this test binary's logger).
struct Collect(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

static LOGGED: Collect = Collect(Mutex::new(Vec::new()));

#[test]
fn a_failed_server_handshake_is_logged_with_the_peer_and_the_cause() {
    log::set_logger(&LOGGED).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let certs = certs::make();
    run_clean(|| {
        let listener = gruvi_stream::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = server_config(&certs.good);
        let server = fiber_core::spawn(move || -> io::Result<String> {
            let (tcp, peer) = listener.accept()?;
            let err = TlsStream::accept(tcp, &config).unwrap_err();
            assert!(TlsError::from_io(&err).is_some(), "{err}");
            Ok(peer.to_string())
        });
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.send(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let peer = server.join().unwrap().unwrap();
        tcp.close();
        let logged = LOGGED.0.lock().unwrap();
        let (level, message) = logged
            .iter()
            .find(|(_, m)| m.contains("TLS handshake"))
            .unwrap_or_else(|| panic!("nothing logged: {logged:?}"));
        assert_eq!(*level, log::Level::Warn);
        assert!(message.contains(&peer), "{message} names {peer}");
        assert!(message.contains("failed"), "{message}");
    });
}

#[test]
fn a_self_signed_identity_verifies_for_its_names_only() {
    let identity = gruvi_tls::CertifiedKey::self_signed(&["localhost", "127.0.0.1"], 1).unwrap();
    let cert = identity.leaf().to_pem().unwrap();
    let server = ServerConfig::builder(identity).build().unwrap();
    let client = ClientConfig::builder()
        .use_system_roots(false)
        .add_ca_pem(&cert)
        .build()
        .unwrap();
    for (name, ok) in [
        ("localhost", true),
        ("127.0.0.1", true),
        ("example.com", false),
    ] {
        let mut c = SslPipe::client(&client, name);
        let mut s = SslPipe::server(&server);
        c.do_handshake().unwrap();
        s.do_handshake().unwrap();
        let mut app = Vec::new();
        let result = (|| -> Result<(), TlsError> {
            while c.state() == PipeState::Handshake {
                s.feed_ssldata(&c.take_ssldata(), &mut app)?;
                c.feed_ssldata(&s.take_ssldata(), &mut app)?;
            }
            Ok(())
        })();
        assert_eq!(result.is_ok(), ok, "{name}: {result:?}");
    }
    assert!(gruvi_tls::CertifiedKey::self_signed(&[], 1).is_err());
}

#[test]
fn a_server_config_from_pem_files_presents_them() {
    let certs = certs::make();
    let config = ServerConfig::from_pem_files(&certs.good.cert_path, &certs.good.key_path).unwrap();
    let mut c = SslPipe::client(&client_config(&certs), "localhost");
    let mut s = SslPipe::server(&config);
    c.do_handshake().unwrap();
    s.do_handshake().unwrap();
    let mut app = Vec::new();
    while c.state() == PipeState::Handshake {
        s.feed_ssldata(&c.take_ssldata(), &mut app).unwrap();
        c.feed_ssldata(&s.take_ssldata(), &mut app).unwrap();
    }
    assert_eq!(c.state(), PipeState::Wrapped);
    let err =
        ServerConfig::from_pem_files(&certs.good.cert_path, &certs.other.key_path).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}
