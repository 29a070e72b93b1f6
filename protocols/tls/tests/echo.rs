//! Our TLS client and server echoing over real loopback sockets, on fibers: volume, tiny
//! writes, concurrent readers and writers, write timeouts.

mod support;

use std::io;
use std::rc::Rc;
use std::time::Duration;

use gruvi_stream::{Address, Connection, Stream};
use support::{
    certs, client_config, echo, echo_through, listen, pair, random_bytes, run_clean, server_config,
};

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

#[test]
fn fifty_clients_at_once_each_get_their_own_echo() {
    let certs = certs::make();
    run_clean(|| {
        let server = gruvi_tls::server(server_config(&certs.good), echo);
        let addr = listen(&server, "127.0.0.1:0");
        let config = client_config(&certs);
        let clients: Vec<_> = (0..50u64)
            .map(|i| {
                let (addr, config) = (addr.clone(), config.clone());
                fiber_core::spawn(move || {
                    let stream = gruvi_tls::connect(&addr, &config).unwrap();
                    let data = random_bytes(64 * 1024, 100 + i);
                    echo_through(stream, &data) == data
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            assert!(client.join().unwrap(), "client {i} got another echo");
        }
        server.close().unwrap();
    });
}
