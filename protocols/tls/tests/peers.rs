//! Who talks to whom: certificate verification, session details, ALPN, SNI, client
//! certificates, protocol versions (our client against our server).

mod support;

use std::io;
use std::rc::Rc;

use gruvi_stream::Stream;
use gruvi_tls::{
    CertifiedKey, ClientConfig, ServerConfig, TlsError, TlsStream, TlsVersion, VerifyFailure,
};
use support::{
    certs, client_config, echo, echo_through, listen, random_bytes, run_clean, server_config,
};

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
fn ca_files_are_trusted_and_the_system_store_alone_does_not_know_our_ca() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        // The default: the system's trust store, which has never heard of the test CA.
        let system = ClientConfig::builder().build().unwrap();
        let err = gruvi_tls::connect(&addr, &system).unwrap_err();
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
        // The system store plus our CA file.
        let with_file = ClientConfig::builder()
            .add_ca_file(&certs.ca.cert_path)
            .build()
            .unwrap();
        let stream = gruvi_tls::connect(&addr, &with_file).unwrap();
        stream.write_all(b"trusted\n").unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"trusted\n");
        server.close().unwrap();
    });
    // A missing file is named in the error.
    let missing = certs.dir.join("missing.pem");
    let err = ClientConfig::builder()
        .add_ca_file(&missing)
        .build()
        .unwrap_err();
    assert!(matches!(err, TlsError::Config(_)), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // So is a certificate whose key is another's.
    let err =
        CertifiedKey::from_pem_files(&certs.good.cert_path, &certs.expired.key_path).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn a_client_keeps_one_verified_connection_at_a_time() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let client = gruvi_tls::Client::new(client_config(&certs));
        let first = client.connect(&addr).unwrap();
        first.write_all(b"one\n").unwrap();
        assert_eq!(first.readline(None).unwrap(), b"one\n");
        // A second connect closes the first.
        let second = client.connect_with_name(&addr, "localhost").unwrap();
        assert_eq!(first.read_bytes(1).unwrap(), b"", "the first was closed");
        second.write_all(b"two\n").unwrap();
        assert_eq!(second.readline(None).unwrap(), b"two\n");
        assert!(client.stream().is_some());
        client.close();
        assert!(client.stream().is_none());
        // A failed connect leaves no connection behind.
        let wrong = gruvi_tls::Client::new(ClientConfig::builder().build().unwrap());
        assert!(wrong.connect(&addr).is_err());
        assert!(wrong.stream().is_none());
        server.close().unwrap();
    });
}

/// The connect timeout bounds the lookup and the connection, apart from the handshake's own
/// timeout: a nanosecond is too short to resolve `localhost` (`TimedOut`, no `TlsError`),
/// the default connects and verifies.
#[test]
fn the_connect_timeout_bounds_the_connection_and_is_not_a_handshake_timeout() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let gruvi_stream::Address::Tcp(_, port) = listen(&server, "127.0.0.1:0") else {
            unreachable!("a TCP listener")
        };
        let addr = gruvi_stream::Address::Tcp("localhost".into(), port);
        let short = ClientConfig::builder()
            .use_system_roots(false)
            .add_ca_pem(&certs.ca.cert)
            .connect_timeout(Some(std::time::Duration::from_nanos(1)))
            .build()
            .unwrap();
        assert_eq!(
            short.connect_timeout(),
            Some(std::time::Duration::from_nanos(1))
        );
        let err = gruvi_tls::connect(&addr, &short).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(TlsError::from_io(&err).is_none(), "{err}");
        assert!(err.to_string().contains("connect timed out"), "{err}");
        let default = client_config(&certs);
        assert_eq!(
            default.connect_timeout(),
            Some(gruvi_stream::DEFAULT_CONNECT_TIMEOUT)
        );
        let stream = gruvi_tls::connect(&addr, &default).unwrap();
        stream.write_all(b"in time\n").unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"in time\n");
        server.close().unwrap();
    });
}
