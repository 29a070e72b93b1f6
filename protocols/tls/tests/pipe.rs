//! The sans-IO engine alone: two `SslPipe`s wired to each other in memory (Gruvi's
//! `test_ssl.py` cases), plus verification and truncation.

mod support;

use gruvi_tls::{PipeState, SslPipe, TlsError, VerifyFailure};
use support::{certs, client_config, server_config};

/// Moves output between the pipes until neither has any; returns what each received as
/// application data (client's, server's).
fn pump(client: &mut SslPipe, server: &mut SslPipe) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    while client.has_ssldata() || server.has_ssldata() {
        let data = client.take_ssldata();
        server.feed_ssldata(&data, &mut to_server)?;
        let data = server.take_ssldata();
        client.feed_ssldata(&data, &mut to_client)?;
    }
    Ok((to_client, to_server))
}

fn pipes(certs: &certs::Certs) -> (SslPipe, SslPipe) {
    let client = SslPipe::client(&client_config(certs), "localhost");
    let server = SslPipe::server(&server_config(&certs.good));
    (client, server)
}

fn wrapped(certs: &certs::Certs) -> (SslPipe, SslPipe) {
    let (mut client, mut server) = pipes(certs);
    client.do_handshake().unwrap();
    server.do_handshake().unwrap();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(client.state(), PipeState::Wrapped);
    assert_eq!(server.state(), PipeState::Wrapped);
    (client, server)
}

#[test]
fn the_client_sends_one_flight_first_and_the_server_nothing_until_it_arrives() {
    let certs = certs::make();
    let (mut client, mut server) = pipes(&certs);
    server.do_handshake().unwrap();
    assert!(!server.has_ssldata(), "a server speaks only when spoken to");
    assert_eq!(server.state(), PipeState::Handshake);
    client.do_handshake().unwrap();
    let hello = client.take_ssldata();
    assert_eq!(hello[0], 22, "a handshake record (ClientHello)");
    assert!(!client.has_ssldata());
    let mut app = Vec::new();
    let fed = server.feed_ssldata(&hello, &mut app).unwrap();
    assert!(server.has_ssldata(), "the server answers the hello");
    assert!(!fed.handshake_done);
    let fed = client
        .feed_ssldata(&server.take_ssldata(), &mut app)
        .unwrap();
    assert!(
        fed.handshake_done,
        "TLS 1.3: the client is done after one round trip"
    );
    assert_eq!(client.state(), PipeState::Wrapped);
    let fed = server
        .feed_ssldata(&client.take_ssldata(), &mut app)
        .unwrap();
    assert!(fed.handshake_done);
    assert!(app.is_empty());
    assert_eq!(
        client.ssl().unwrap().version_str(),
        "TLSv1.3",
        "the best version both know"
    );
}

#[test]
fn data_goes_both_ways_encrypted() {
    let certs = certs::make();
    let (mut client, mut server) = wrapped(&certs);
    client.feed_appdata(b"secret from the client").unwrap();
    let wire = client.take_ssldata();
    assert!(!wire.windows(6).any(|w| w == b"secret"), "ciphertext only");
    let mut app = Vec::new();
    server.feed_ssldata(&wire, &mut app).unwrap();
    assert_eq!(app, b"secret from the client");
    server.feed_appdata(b"and back").unwrap();
    let (to_client, _) = pump(&mut client, &mut server).unwrap();
    assert_eq!(to_client, b"and back");
}

#[test]
fn records_fed_one_byte_at_a_time_decrypt_the_same() {
    let certs = certs::make();
    let (mut client, mut server) = pipes(&certs);
    client.do_handshake().unwrap();
    server.do_handshake().unwrap();
    let mut app = Vec::new();
    // The whole handshake, byte by byte in both directions.
    while client.state() != PipeState::Wrapped || server.state() != PipeState::Wrapped {
        for b in client.take_ssldata() {
            server.feed_ssldata(&[b], &mut app).unwrap();
        }
        for b in server.take_ssldata() {
            client.feed_ssldata(&[b], &mut app).unwrap();
        }
    }
    let data = support::random_bytes(20_000, 3);
    client.feed_appdata(&data).unwrap();
    for b in client.take_ssldata() {
        server.feed_ssldata(&[b], &mut app).unwrap();
    }
    assert!(app == data, "byte-at-a-time feeding changed the data");
}

#[test]
fn shutdown_sends_close_notify_and_the_acknowledgement_unwraps_both() {
    let certs = certs::make();
    let (mut client, mut server) = wrapped(&certs);
    client.shutdown().unwrap();
    assert_eq!(client.state(), PipeState::Shutdown);
    assert!(
        client.feed_appdata(b"late").is_err(),
        "no data after close_notify"
    );
    let mut app = Vec::new();
    let fed = server
        .feed_ssldata(&client.take_ssldata(), &mut app)
        .unwrap();
    assert!(fed.close_notify && !fed.unwrapped);
    assert!(server.peer_closed());
    // The server may still send after the client's close_notify (TLS 1.3 half-close).
    server.feed_appdata(b"last words").unwrap();
    server.shutdown().unwrap();
    assert_eq!(
        server.state(),
        PipeState::Unwrapped,
        "both close_notifys are through"
    );
    let fed = client
        .feed_ssldata(&server.take_ssldata(), &mut app)
        .unwrap();
    assert!(fed.close_notify && fed.unwrapped);
    assert_eq!(app, b"last words");
    assert_eq!(client.state(), PipeState::Unwrapped);
}

#[test]
fn an_unwrapped_pipe_passes_data_through_and_refuses_a_shutdown() {
    let certs = certs::make();
    let (mut client, _) = pipes(&certs);
    let mut app = Vec::new();
    let fed = client.feed_ssldata(b"plain in", &mut app).unwrap();
    assert_eq!(app, b"plain in");
    assert_eq!(fed.decrypted, 0);
    client.feed_appdata(b"plain out").unwrap();
    assert_eq!(client.take_ssldata(), b"plain out");
    assert_eq!(
        client.shutdown(),
        Err(TlsError::State("no security layer present"))
    );
}

#[test]
fn a_second_handshake_on_a_wrapped_pipe_is_refused() {
    let certs = certs::make();
    let (mut client, _) = wrapped(&certs);
    assert_eq!(
        client.do_handshake(),
        Err(TlsError::State("handshake in progress or completed"))
    );
}

#[test]
fn plaintext_then_tls_then_plaintext_then_tls_on_one_pipe_pair() {
    let certs = certs::make();
    let (mut client, mut server) = pipes(&certs);
    for round in 0..2 {
        client.feed_appdata(b"STARTTLS\n").unwrap();
        let (_, to_server) = pump(&mut client, &mut server).unwrap();
        assert_eq!(to_server, b"STARTTLS\n", "round {round}: plaintext");
        client.do_handshake().unwrap();
        server.do_handshake().unwrap();
        pump(&mut client, &mut server).unwrap();
        client.feed_appdata(b"over tls").unwrap();
        let (_, to_server) = pump(&mut client, &mut server).unwrap();
        assert_eq!(to_server, b"over tls");
        client.shutdown().unwrap();
        let (_, to_server) = pump(&mut client, &mut server).unwrap();
        assert!(to_server.is_empty());
        assert!(server.peer_closed());
        // The server acknowledges and, in the same breath, goes on in plaintext: the client
        // gets both in one feed, the plaintext after the close_notify.
        server.shutdown().unwrap();
        server.feed_appdata(b"plain again").unwrap();
        let (to_client, _) = pump(&mut client, &mut server).unwrap();
        assert_eq!(to_client, b"plain again", "round {round}");
        assert_eq!(client.state(), PipeState::Unwrapped);
        assert_eq!(server.state(), PipeState::Unwrapped);
    }
}

#[test]
fn simultaneous_shutdown_from_both_sides_unwraps_both() {
    let certs = certs::make();
    let (mut client, mut server) = wrapped(&certs);
    client.shutdown().unwrap();
    server.shutdown().unwrap();
    assert_eq!(client.state(), PipeState::Shutdown);
    assert_eq!(server.state(), PipeState::Shutdown);
    let (c, s) = (client.take_ssldata(), server.take_ssldata());
    let mut app = Vec::new();
    assert!(server.feed_ssldata(&c, &mut app).unwrap().unwrapped);
    assert!(client.feed_ssldata(&s, &mut app).unwrap().unwrapped);
    assert!(app.is_empty());
    assert!(!client.has_ssldata() && !server.has_ssldata());
}

#[test]
fn end_of_stream_without_close_notify_is_truncation() {
    let certs = certs::make();
    let (mut client, mut server) = wrapped(&certs);
    server.feed_appdata(b"partial").unwrap();
    let wire = server.take_ssldata();
    let mut app = Vec::new();
    // Half a record, then the connection ends.
    client
        .feed_ssldata(&wire[..wire.len() / 2], &mut app)
        .unwrap();
    assert_eq!(client.feed_eof(), Err(TlsError::Truncated));
    // With the close_notify first, the end is clean.
    let (mut client, mut server) = wrapped(&certs);
    server.shutdown().unwrap();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(client.feed_eof(), Ok(()));
}

#[test]
fn end_of_stream_during_the_handshake_is_a_protocol_error() {
    let certs = certs::make();
    let (mut client, _) = pipes(&certs);
    client.do_handshake().unwrap();
    let err = client.feed_eof().unwrap_err();
    assert!(matches!(err, TlsError::Protocol(_)), "{err:?}");
}

fn handshake_error(certs: &certs::Certs, pem: &certs::Pem, name: &str) -> TlsError {
    let mut client = SslPipe::client(&client_config(certs), name);
    let mut server = SslPipe::server(&server_config(pem));
    client.do_handshake().unwrap();
    server.do_handshake().unwrap();
    let err = pump(&mut client, &mut server).unwrap_err();
    assert!(
        client.has_ssldata(),
        "the client has an alert for the server"
    );
    err
}

fn failure(err: &TlsError) -> VerifyFailure {
    match err {
        TlsError::Verification { failure, .. } => *failure,
        other => panic!("not a verification error: {other:?}"),
    }
}

#[test]
fn verification_names_expired_wrong_host_and_unknown_ca() {
    let certs = certs::make();
    let err = handshake_error(&certs, &certs.expired, "localhost");
    assert_eq!(failure(&err), VerifyFailure::Expired);
    assert!(err.to_string().contains("expired"), "{err}");
    let err = handshake_error(&certs, &certs.wrong_host, "localhost");
    assert_eq!(failure(&err), VerifyFailure::HostnameMismatch);
    let err = handshake_error(&certs, &certs.unknown_ca, "localhost");
    assert_eq!(failure(&err), VerifyFailure::UnknownIssuer);
    // An IP address is checked against the IP names.
    let err = handshake_error(&certs, &certs.wrong_host, "127.0.0.1");
    assert_eq!(failure(&err), VerifyFailure::HostnameMismatch);
}

#[test]
fn the_good_certificate_verifies_by_dns_name_and_by_ipv4_and_ipv6_address() {
    let certs = certs::make();
    for name in ["localhost", "127.0.0.1", "::1"] {
        let mut client = SslPipe::client(&client_config(&certs), name);
        let mut server = SslPipe::server(&server_config(&certs.good));
        client.do_handshake().unwrap();
        server.do_handshake().unwrap();
        pump(&mut client, &mut server).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(client.state(), PipeState::Wrapped, "{name}");
    }
}

#[test]
fn garbage_fed_to_either_side_is_an_error_never_a_panic() {
    let certs = certs::make();
    for seed in 1..8u64 {
        let junk = support::random_bytes(2_000, seed);
        let chunk = 1 + (seed as usize * 37) % 700;
        // A server waiting for a hello.
        let mut server = SslPipe::server(&server_config(&certs.good));
        server.do_handshake().unwrap();
        let mut app = Vec::new();
        let result: Result<(), TlsError> = junk
            .chunks(chunk)
            .try_for_each(|c| server.feed_ssldata(c, &mut app).map(|_| ()));
        let result = result.and_then(|()| server.feed_eof());
        assert!(
            matches!(result, Err(TlsError::Protocol(_))),
            "seed {seed}: {result:?}"
        );
        assert!(app.is_empty());
        // A wrapped client getting junk instead of records.
        let (mut client, _) = wrapped(&certs);
        let result: Result<(), TlsError> = junk
            .chunks(chunk)
            .try_for_each(|c| client.feed_ssldata(c, &mut app).map(|_| ()));
        let result = result.and_then(|()| client.feed_eof());
        assert!(
            matches!(result, Err(TlsError::Protocol(_) | TlsError::Truncated)),
            "seed {seed}: {result:?}"
        );
        assert!(app.is_empty(), "seed {seed}: junk decrypted to {app:?}");
    }
}
