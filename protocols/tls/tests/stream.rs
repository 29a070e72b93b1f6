//! Our TLS client against our TLS server over real loopback sockets, on fibers.

mod support;

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi_stream::{Address, Connection, Server, Stream, TcpListener, TcpStream};
use gruvi_tls::{
    CertifiedKey, ClientConfig, ServerConfig, TlsError, TlsStream, TlsVersion, VerifyFailure,
};
use support::{certs, client_config, random_bytes, run_clean, server_config};

/// Echoes until the peer's close_notify, then sends its own.
fn echo(stream: Rc<Stream>) -> io::Result<()> {
    let mut chunk = Vec::new();
    while stream.fill()? {
        stream.with_buffered(|data| {
            chunk.clear();
            chunk.extend_from_slice(data);
        });
        stream.consume(chunk.len());
        stream.write_all(&chunk)?;
    }
    stream.write_eof()
}

fn listen(server: &Server, addr: &str) -> Address {
    server.listen(&addr.parse().unwrap()).unwrap();
    server.addresses()[0].clone()
}

/// Sends `data` from one fiber (then close_notify) while this one reads the echo to the end.
fn echo_through(stream: Rc<Stream<TlsStream>>, data: &[u8]) -> Vec<u8> {
    let writer = {
        let (stream, data) = (stream.clone(), data.to_vec());
        fiber_core::spawn(move || -> io::Result<()> {
            for chunk in data.chunks(100_000) {
                stream.write_all(chunk)?;
            }
            stream.write_eof()
        })
    };
    let echoed = stream.read_bytes(usize::MAX).unwrap();
    writer.join().unwrap().unwrap();
    echoed
}

#[test]
fn ten_mib_echo_over_tcp_comes_back_byte_exact() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        let data = random_bytes(10 << 20, 1);
        let echoed = echo_through(stream, &data);
        assert_eq!(echoed.len(), data.len());
        assert!(echoed == data, "the echo differs");
        server.close().unwrap();
    });
}

#[test]
fn ten_mib_echo_over_a_unix_socket_comes_back_byte_exact() {
    let certs = certs::make();
    let path = certs.dir.join("echo.sock");
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        server.listen(&Address::Unix(path.clone())).unwrap();
        let addr = Address::Unix(path.clone());
        let config = client_config(&certs);
        let err = gruvi_tls::connect(&addr, &config).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let stream = gruvi_tls::connect_with_name(&addr, "localhost", &config).unwrap();
        let data = random_bytes(10 << 20, 2);
        let echoed = echo_through(stream, &data);
        assert!(echoed == data, "the echo differs");
        server.close().unwrap();
    });
}

#[test]
fn many_one_byte_writes_arrive_in_order() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        let data = random_bytes(5_000, 3);
        for b in &data {
            stream.write_all(&[*b]).unwrap();
        }
        stream.write_eof().unwrap();
        assert!(stream.read_bytes(usize::MAX).unwrap() == data);
        server.close().unwrap();
    });
}

#[test]
fn reader_and_writer_fibers_run_at_once_on_both_sides() {
    let certs = certs::make();
    run_clean(|| {
        const N: usize = 3 << 20;
        // The server streams N bytes to the client from one fiber while another reads N bytes
        // from it: neither direction waits for the other.
        let server = gruvi_tls::server(server_config(&certs.good), |stream: Rc<Stream>| {
            let writer = {
                let stream = stream.clone();
                fiber_core::spawn(move || stream.write_all(&random_bytes(N, 5)))
            };
            let got = stream.read_bytes(N)?;
            assert!(got == random_bytes(N, 4), "server received wrong data");
            writer.join().unwrap()?;
            stream.write_eof()
        });
        let addr = listen(&server, "127.0.0.1:0");
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        let writer = {
            let stream = stream.clone();
            fiber_core::spawn(move || stream.write_all(&random_bytes(N, 4)))
        };
        let got = stream.read_bytes(usize::MAX).unwrap();
        assert!(got == random_bytes(N, 5), "client received wrong data");
        writer.join().unwrap().unwrap();
        server.close().unwrap();
    });
}

/// A connected pair of TLS streams over TCP, both sides started as `start` says.
fn pair(
    certs: &certs::Certs,
    client_config: &ClientConfig,
    wrapped: bool,
) -> (Rc<Stream<TlsStream>>, Rc<Stream<TlsStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config(&certs.good);
    let server = fiber_core::spawn(move || -> io::Result<TlsStream> {
        let (tcp, _) = listener.accept()?;
        let tls = TlsStream::server_unwrapped(tcp, &config);
        if wrapped {
            tls.start_tls()?;
        }
        Ok(tls)
    });
    let tls = TlsStream::client_unwrapped(
        TcpStream::connect(addr).unwrap(),
        client_config,
        "localhost",
    );
    if wrapped {
        tls.start_tls().unwrap();
    }
    let server = server.join().unwrap().unwrap();
    (Rc::new(Stream::new(tls)), Rc::new(Stream::new(server)))
}

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

fn verify_failure(certs: &certs::Certs, pem: &certs::Pem) -> VerifyFailure {
    run_clean(|| {
        let server = gruvi_tls::server(server_config(pem), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let err =
            gruvi_tls::connect_with_name(&addr, "localhost", &client_config(certs)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        server.close().unwrap();
        match TlsError::from_io(&err) {
            Some(TlsError::Verification { failure, .. }) => *failure,
            other => panic!("not a verification error: {other:?} ({err})"),
        }
    })
}

#[test]
fn connect_names_expired_wrong_host_and_unknown_ca_certificates() {
    let certs = certs::make();
    assert_eq!(
        verify_failure(&certs, &certs.expired),
        VerifyFailure::Expired
    );
    assert_eq!(
        verify_failure(&certs, &certs.wrong_host),
        VerifyFailure::HostnameMismatch
    );
    assert_eq!(
        verify_failure(&certs, &certs.unknown_ca),
        VerifyFailure::UnknownIssuer
    );
}

#[test]
fn connect_returns_with_the_handshake_done_and_the_session_details_known() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        let tls = stream.connection();
        assert!(tls.is_wrapped());
        assert_eq!(tls.protocol_version(), Some("TLSv1.3"));
        assert!(tls.cipher().is_some());
        let cert = tls.peer_certificate().expect("the server's certificate");
        assert_eq!(cert.to_pem().unwrap(), certs.good.cert);
        // The tls-unique channel binding (the first Finished message) is there at once.
        let mut finished = [0; 64];
        let n = tls.with_ssl(|ssl| ssl.unwrap().finished(&mut finished));
        assert!(n > 0);
        stream.write_eof().unwrap();
        assert_eq!(stream.read_bytes(1).unwrap(), b"");
        server.close().unwrap();
    });
}

#[test]
fn alpn_and_an_sni_callback_choose_the_protocol_and_the_certificate() {
    let certs = certs::make();
    run_clean(|| {
        let other = CertifiedKey::from_pem(&certs.other.cert, &certs.other.key).unwrap();
        let config = ServerConfig::builder(
            CertifiedKey::from_pem(&certs.good.cert, &certs.good.key).unwrap(),
        )
        .alpn_protocols(&[b"h2", b"http/1.1"])
        .sni(move |name| (name == "other.test").then(|| other.clone()))
        .build()
        .unwrap();
        let server = gruvi_tls::server(config, |stream: Rc<Stream>| {
            let tls = stream
                .connection()
                .as_any()
                .downcast_ref::<TlsStream>()
                .expect("a TLS connection");
            let alpn = tls.alpn_protocol().unwrap_or_default();
            let name = tls.server_name().unwrap_or_default();
            stream.write_all(format!("{} {name}\n", String::from_utf8_lossy(&alpn)).as_bytes())
        });
        let addr = listen(&server, "127.0.0.1:0");
        let client = |alpn: &[&[u8]]| {
            ClientConfig::builder()
                .use_system_roots(false)
                .add_ca_pem(&certs.ca.cert)
                .alpn_protocols(alpn)
                .build()
                .unwrap()
        };
        // The other name gets the other certificate (it verifies as other.test).
        let stream =
            gruvi_tls::connect_with_name(&addr, "other.test", &client(&[b"http/1.1"])).unwrap();
        assert_eq!(
            stream.connection().alpn_protocol().as_deref(),
            Some(&b"http/1.1"[..])
        );
        assert_eq!(stream.readline(None).unwrap(), b"http/1.1 other.test\n");
        // The server's preference wins among the client's offers.
        let stream = gruvi_tls::connect(&addr, &client(&[b"http/1.1", b"h2"])).unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"h2 \n");
        // No common protocol: no ALPN, still connected.
        let stream =
            gruvi_tls::connect_with_name(&addr, "localhost", &client(&[b"spdy/3"])).unwrap();
        assert_eq!(stream.connection().alpn_protocol(), None);
        assert_eq!(stream.readline(None).unwrap(), b" localhost\n");
        server.close().unwrap();
    });
}

#[test]
fn a_required_client_certificate_is_checked() {
    let certs = certs::make();
    run_clean(|| {
        let config = ServerConfig::builder(
            CertifiedKey::from_pem(&certs.good.cert, &certs.good.key).unwrap(),
        )
        .client_ca_pem(&certs.ca.cert)
        .require_client_certificate(true)
        .build()
        .unwrap();
        let server = gruvi_tls::server(config, |stream: Rc<Stream>| {
            let tls = stream
                .connection()
                .as_any()
                .downcast_ref::<TlsStream>()
                .unwrap();
            let cert = tls.peer_certificate().expect("a client certificate");
            let cn = cert
                .subject_name()
                .entries()
                .next()
                .unwrap()
                .data()
                .to_string()
                .unwrap();
            stream.write_all(format!("hello {cn}\n").as_bytes())
        });
        let addr = listen(&server, "127.0.0.1:0");
        let with_cert = ClientConfig::builder()
            .use_system_roots(false)
            .add_ca_pem(&certs.ca.cert)
            .client_certificate(
                CertifiedKey::from_pem(&certs.client.cert, &certs.client.key).unwrap(),
            )
            .build()
            .unwrap();
        let stream = gruvi_tls::connect(&addr, &with_cert).unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"hello client.test\n");
        // Without one: in TLS 1.3 the client finishes first and learns of the refusal from
        // the server's alert, on its first read.
        let result = gruvi_tls::connect(&addr, &client_config(&certs))
            .and_then(|stream| stream.readline(None));
        let err = result.expect_err("a client without a certificate is refused");
        assert!(
            matches!(TlsError::from_io(&err), Some(TlsError::Protocol(_))),
            "{err}"
        );
        assert!(err.to_string().contains("certificate"), "{err}");
        server.close().unwrap();
    });
}

#[test]
fn tls_1_2_is_the_minimum_and_works_when_it_is_the_maximum() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let versions = |min, max| {
            ClientConfig::builder()
                .use_system_roots(false)
                .add_ca_pem(&certs.ca.cert)
                .min_version(min)
                .max_version(max)
                .build()
                .unwrap()
        };
        let old = versions(Some(TlsVersion::Tls1_0), Some(TlsVersion::Tls1_1));
        let err = gruvi_tls::connect(&addr, &old).unwrap_err();
        assert!(
            matches!(TlsError::from_io(&err), Some(TlsError::Protocol(_))),
            "{err}"
        );
        let tls12 = versions(Some(TlsVersion::Tls1_2), Some(TlsVersion::Tls1_2));
        let stream = gruvi_tls::connect(&addr, &tls12).unwrap();
        assert_eq!(stream.connection().protocol_version(), Some("TLSv1.2"));
        let data = random_bytes(1 << 20, 9);
        assert!(echo_through(stream, &data) == data);
        server.close().unwrap();
    });
}

#[test]
fn writing_after_write_eof_is_a_broken_pipe() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let stream = gruvi_tls::connect(&addr, &client_config(&certs)).unwrap();
        stream.write_eof().unwrap();
        let err = stream.write_all(b"late").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
        // A second write_eof changes nothing.
        stream.write_eof().unwrap();
        assert_eq!(stream.read_bytes(1).unwrap(), b"");
        server.close().unwrap();
    });
}

#[test]
fn a_write_that_times_out_loses_no_record_and_the_session_goes_on() {
    let certs = certs::make();
    run_clean(|| {
        let (client, server) = pair(&certs, &client_config(&certs), true);
        client
            .connection()
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // The server reads nothing yet: the kernel's buffers fill, then the write queue.
        const PIECE: usize = 64 * 1024;
        let piece = |i: usize| vec![(i % 251) as u8; PIECE];
        let mut sent = 0;
        let err = loop {
            match client.write_all(&piece(sent)) {
                Ok(()) => sent += 1,
                Err(err) => break err,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // The piece that timed out was encrypted and kept: it goes out first, then the rest.
        let closer = {
            let client = client.clone();
            fiber_core::spawn(move || client.write_eof())
        };
        let got = server.read_bytes(usize::MAX).unwrap();
        closer.join().unwrap().unwrap();
        assert_eq!(got.len(), (sent + 1) * PIECE);
        for (i, chunk) in got.chunks(PIECE).enumerate() {
            assert!(chunk == piece(i), "piece {i} differs");
        }
    });
}
