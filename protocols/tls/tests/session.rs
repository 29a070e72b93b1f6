//! The life of a TLS session on a connection: STARTTLS and unwrap, handshake timeouts,
//! truncation, the server's closing close_notify.

mod support;

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi_stream::{Address, Connection, Stream, TcpListener, TcpStream};
use gruvi_tls::{CertifiedKey, ClientConfig, ServerConfig, TlsError};
use support::{certs, client_config, echo, listen, pair, run_clean, server_config};

#[test]
fn plaintext_then_tls_then_plaintext_then_tls_on_one_connection() {
    let certs = certs::make();
    run_clean(|| {
        let (client, server) = pair(&certs, &client_config(&certs), false);
        let server_side = fiber_core::spawn(move || -> io::Result<()> {
            for _ in 0..2 {
                assert_eq!(server.readline(None)?, b"STARTTLS\n");
                // The client's hello may already be buffered behind the line.
                server.connection().start_tls()?;
                assert!(server.connection().is_wrapped());
                let line = server.readline(None)?;
                server.write_all(&line.to_ascii_uppercase())?;
                // The client unwraps: its close_notify ends the TLS data.
                assert_eq!(server.read_bytes(1)?, b"");
                server.connection().unwrap()?;
                server.write_all(b"plain again\n")?;
            }
            Ok(())
        });
        for round in 0..2 {
            assert!(!client.connection().is_wrapped());
            client.write_all(b"STARTTLS\n").unwrap();
            client.connection().start_tls().unwrap();
            assert_eq!(client.connection().protocol_version(), Some("TLSv1.3"));
            client.write_all(b"over tls\n").unwrap();
            assert_eq!(
                client.readline(None).unwrap(),
                b"OVER TLS\n",
                "round {round}"
            );
            client.connection().unwrap().unwrap();
            assert!(!client.connection().is_wrapped());
            assert_eq!(client.readline(None).unwrap(), b"plain again\n");
        }
        server_side.join().unwrap().unwrap();
    });
}

#[test]
fn simultaneous_unwrap_from_both_sides_leaves_a_working_plaintext_connection() {
    let certs = certs::make();
    run_clean(|| {
        let (client, server) = pair(&certs, &client_config(&certs), true);
        let s = server.clone();
        let server_side = fiber_core::spawn(move || s.connection().unwrap());
        client.connection().unwrap().unwrap();
        server_side.join().unwrap().unwrap();
        client.write_all(b"ping\n").unwrap();
        assert_eq!(server.readline(None).unwrap(), b"ping\n");
        server.write_all(b"pong\n").unwrap();
        assert_eq!(client.readline(None).unwrap(), b"pong\n");
        // Unwrapping twice is a state error.
        let err = client.connection().unwrap().unwrap_err();
        assert!(
            matches!(TlsError::from_io(&err), Some(TlsError::State(_))),
            "{err}"
        );
    });
}

#[test]
fn a_silent_client_times_out_its_handshake_while_others_are_served() {
    let certs = certs::make();
    run_clean(|| {
        let timeout = Duration::from_millis(500);
        let config = ServerConfig::builder(
            CertifiedKey::from_pem(&certs.good.cert, &certs.good.key).unwrap(),
        )
        .handshake_timeout(Some(timeout))
        .build()
        .unwrap();
        let server = gruvi_tls::server(config, echo);
        let addr = listen(&server, "127.0.0.1:0");
        let Address::Tcp(_, port) = addr.clone() else {
            unreachable!()
        };
        let started = Instant::now();
        let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Served while the silent one waits.
        for i in 0..3 {
            let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
            stream
                .write_all(format!("client {i}\n").as_bytes())
                .unwrap();
            assert_eq!(
                stream.readline(None).unwrap(),
                format!("client {i}\n").as_bytes()
            );
        }
        // The server drops the silent client once its handshake time is up, not before.
        let mut buf = [0; 16];
        let n = io::Read::read(&mut &silent, &mut buf).unwrap_or(0);
        assert_eq!(n, 0, "the server sent something to a silent client");
        assert!(
            started.elapsed() >= timeout,
            "dropped after {:?}",
            started.elapsed()
        );
        server.close().unwrap();
    });
}

#[test]
fn a_client_handshake_with_a_silent_server_times_out() {
    let certs = certs::make();
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: Address = listener.local_addr().unwrap().into();
        let config = ClientConfig::builder()
            .use_system_roots(false)
            .add_ca_pem(&certs.ca.cert)
            .handshake_timeout(Some(Duration::from_millis(200)))
            .build()
            .unwrap();
        let err = gruvi_tls::connect(&addr, &config).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::HandshakeTimeout(Duration::from_millis(200)))
        );
        drop(listener);
    });
}

#[test]
fn a_peer_closing_without_close_notify_is_truncation_not_end_of_stream() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), |stream: Rc<Stream>| {
            stream.write_all(b"partial")?;
            stream.flush()?;
            // Closes the TCP connection under TLS: no close_notify.
            stream.close();
            Ok(())
        });
        let addr = listen(&server, "127.0.0.1:0");
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        assert_eq!(stream.read_bytes(7).unwrap(), b"partial");
        let err = stream.read_bytes(1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert_eq!(TlsError::from_io(&err), Some(&TlsError::Truncated));
        assert!(err.to_string().contains("close_notify"), "{err}");
        // Reported again, never turned into a clean end.
        assert_eq!(
            stream.read_bytes(1).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        server.close().unwrap();
    });
}

#[test]
fn the_servers_close_notify_waits_at_most_the_close_timeout_for_a_client_that_does_not_read() {
    let certs = certs::make();
    run_clean(|| {
        let close_timeout = Duration::from_millis(300);
        let config = ServerConfig::builder(
            CertifiedKey::from_pem(&certs.good.cert, &certs.good.key).unwrap(),
        )
        .close_timeout(Some(close_timeout))
        .build()
        .unwrap();
        let returned = Rc::new(fiber_core::Event::new());
        let at = Rc::new(std::cell::Cell::new(None));
        let (r, a) = (returned.clone(), at.clone());
        let server = gruvi_tls::server(config, move |stream: Rc<Stream>| {
            // Fill every buffer towards the client, which reads nothing.
            let conn = stream.connection();
            conn.set_write_timeout(Some(Duration::from_millis(100)))?;
            while stream.write_all(&[7; 64 * 1024]).is_ok() {}
            conn.set_write_timeout(None)?;
            a.set(Some(Instant::now()));
            r.set();
            Ok(())
        });
        let addr = listen(&server, "127.0.0.1:0");
        let _client = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        returned.wait().unwrap();
        // The connection ends once the close timeout is up, well within the grace period.
        server.shutdown(Duration::from_secs(60)).unwrap();
        let waited = at.get().unwrap().elapsed();
        assert!(waited >= close_timeout, "gave up after {waited:?}");
        assert!(waited < Duration::from_secs(30), "took {waited:?}");
    });
}

#[test]
fn a_read_that_times_out_leaves_the_session_usable() {
    let certs = certs::make();
    run_clean(|| {
        let (client, server) = pair(&certs, &client_config(&certs), true);
        client
            .connection()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let err = client.read_bytes(5).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        server.write_all(b"later").unwrap();
        assert_eq!(client.read_bytes(5).unwrap(), b"later");
    });
}

#[test]
fn a_cancelled_reader_leaves_the_session_to_the_next_one() {
    let certs = certs::make();
    run_clean(|| {
        let (client, server) = pair(&certs, &client_config(&certs), true);
        let blocked = {
            let client = client.clone();
            fiber_core::spawn(move || client.read_bytes(4))
        };
        fiber_core::yield_now().unwrap();
        blocked.cancel();
        let err = blocked.join().unwrap().unwrap_err();
        assert!(fiber_core::Error::from_io(&err).is_some(), "{err}");
        // Another fiber reads and writes on: nothing was left borrowed or half-done.
        server.write_all(b"pong").unwrap();
        assert_eq!(client.read_bytes(4).unwrap(), b"pong");
        client.write_all(b"ping").unwrap();
        assert_eq!(server.read_bytes(4).unwrap(), b"ping");
    });
}

#[test]
fn a_plaintext_peer_makes_the_handshake_fail_with_a_protocol_error_on_both_sides() {
    let certs = certs::make();
    run_clean(|| {
        // Our client against a server that answers in plaintext.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: Address = listener.local_addr().unwrap().into();
        let plain = fiber_core::spawn(move || -> io::Result<()> {
            let (tcp, _) = listener.accept()?;
            let mut request = [0; 16];
            io::Read::read(&mut &tcp, &mut request)?;
            io::Write::write_all(&mut &tcp, b"HTTP/1.1 400 Bad Request\r\n\r\n")?;
            tcp.shutdown(std::net::Shutdown::Write)
        });
        let err = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap_err();
        assert!(
            matches!(TlsError::from_io(&err), Some(TlsError::Protocol(_))),
            "{err}"
        );
        plain.join().unwrap().unwrap();
        // A plaintext client against our server: the server drops it, still serving others.
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let Address::Tcp(_, port) = addr.clone() else {
            unreachable!()
        };
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        io::Write::write_all(&mut &tcp, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        io::Read::read_to_end(&mut &tcp, &mut reply).unwrap();
        assert!(reply.len() < 100, "an alert at most: {reply:?}");
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        stream.write_all(b"still here\n").unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"still here\n");
        server.close().unwrap();
    });
}
