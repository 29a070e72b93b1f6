//! `Server` and `Client` (Gruvi's test_endpoints): a fiber per connection, closing, limits,
//! refused connections, timeouts, handler panics, graceful shutdown, TCP and Unix listeners.

mod support;

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{spawn, yield_now};
use gruvi_stream::{Address, Client, DEFAULT_MAX_CONNECTIONS, Server, Stream, connect};
use support::run_clean;

/// A line echo handler: answers each line with itself until end of stream.
fn echo_lines(stream: Rc<Stream>) -> io::Result<()> {
    for line in &*stream {
        stream.write_all(&line?)?;
    }
    Ok(())
}

fn local() -> Address {
    "127.0.0.1:0".parse().unwrap()
}

/// A Unix socket path unique to this process and `name`.
fn socket_path(name: &str) -> Address {
    let path = std::env::temp_dir().join(format!("gruvi-ep-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Address::Unix(path)
}

#[test]
fn each_connection_is_served_by_its_own_fiber() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.listen(&local()).unwrap();
        let addr = &server.addresses()[0];
        let clients: Vec<Rc<Stream>> = (0..5).map(|_| connect(addr, None).unwrap()).collect();
        for (i, client) in clients.iter().enumerate() {
            client
                .write_all(format!("client {i}\n").as_bytes())
                .unwrap();
        }
        // All five are open at once, each answered by its own handler.
        for (i, client) in clients.iter().enumerate().rev() {
            assert_eq!(
                client.readline(None).unwrap(),
                format!("client {i}\n").as_bytes()
            );
        }
        assert_eq!(server.connections().len(), 5);
        server.close().unwrap();
    });
}

#[test]
fn closing_the_server_closes_its_clients() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.listen(&local()).unwrap();
        let client = Client::new();
        let stream = client.connect(&server.addresses()[0]).unwrap();
        stream.write_all(b"ping\n").unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"ping\n");
        server.close().unwrap();
        assert!(server.connections().is_empty());
        // The client reads end of stream (or a reset), never hangs.
        match stream.readline(None) {
            Ok(line) => assert_eq!(line, b""),
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset),
        }
        client.close();
    });
}

#[test]
fn connecting_where_nobody_listens_is_refused() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.listen(&local()).unwrap();
        let addr = server.addresses()[0].clone();
        server.close().unwrap();
        let err = Client::new().connect(&addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = connect(&socket_path("nobody"), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn beyond_max_connections_extra_clients_are_closed_at_once() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.set_max_connections(Some(10));
        server.listen(&local()).unwrap();
        let addr = server.addresses()[0].clone();
        let clients: Vec<Rc<Stream>> = (0..15).map(|_| connect(&addr, None).unwrap()).collect();
        let mut served = 0;
        for client in &clients {
            client
                .connection()
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let answer = client
                .write_all(b"hi\n")
                .and_then(|()| client.readline(None));
            match answer {
                Ok(line) if line == b"hi\n" => served += 1,
                // Closed by the server: end of stream, or a reset on the write.
                Ok(line) => assert_eq!(line, b""),
                Err(err) => assert_ne!(err.kind(), io::ErrorKind::TimedOut, "{err}"),
            }
        }
        assert_eq!(served, 10);
        assert_eq!(server.connections().len(), 10);
        server.close().unwrap();
    });
}

#[test]
fn a_server_limits_its_connections_by_default_and_none_lifts_the_limit() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        assert_eq!(server.max_connections(), Some(DEFAULT_MAX_CONNECTIONS));
        server.set_max_connections(None);
        assert_eq!(server.max_connections(), None);
        server.listen(&local()).unwrap();
        let addr = server.addresses()[0].clone();
        // Without a limit, every client is served.
        let clients: Vec<Rc<Stream>> = (0..20).map(|_| connect(&addr, None).unwrap()).collect();
        for client in &clients {
            client.write_all(b"hi\n").unwrap();
            assert_eq!(client.readline(None).unwrap(), b"hi\n");
        }
        assert_eq!(server.connections().len(), 20);
        server.close().unwrap();
    });
}

#[test]
fn a_read_timeout_fails_the_read_and_the_connection_still_works() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.listen(&local()).unwrap();
        let stream = connect(&server.addresses()[0], None).unwrap();
        stream
            .connection()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let start = Instant::now();
        let err = stream.readline(None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        stream.write_all(b"still here\n").unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"still here\n");
        server.close().unwrap();
    });
}

#[test]
fn a_panicking_handler_closes_only_its_own_connection() {
    run_clean(|| {
        let server = Server::new(|stream: Rc<Stream>| {
            let line = stream.readline(None)?;
            assert!(line != b"panic\n", "the handler was told to panic");
            stream.write_all(&line)?;
            echo_lines(stream)
        });
        server.listen(&local()).unwrap();
        let addr = &server.addresses()[0];
        let good = connect(addr, None).unwrap();
        let bad = connect(addr, None).unwrap();
        good.write_all(b"first\n").unwrap();
        assert_eq!(good.readline(None).unwrap(), b"first\n");
        bad.write_all(b"panic\n").unwrap();
        assert_eq!(bad.readline(None).unwrap(), b"");
        good.write_all(b"second\n").unwrap();
        assert_eq!(good.readline(None).unwrap(), b"second\n");
        assert_eq!(server.connections().len(), 1);
        server.close().unwrap();
    });
}

#[test]
fn shutdown_lets_handlers_finish_within_the_grace_period() {
    run_clean(|| {
        let finished = Rc::new(Cell::new(0));
        let f = finished.clone();
        let server = Server::new(move |stream: Rc<Stream>| {
            let request = stream.readline(None)?;
            stream.write_all(&request)?;
            f.set(f.get() + 1);
            Ok(())
        });
        server.listen(&local()).unwrap();
        let client = connect(&server.addresses()[0], None).unwrap();
        let c = client.clone();
        // The request comes while the server is shutting down; the handler still answers.
        let requester = spawn(move || -> io::Result<Vec<u8>> {
            c.write_all(b"last request\n")?;
            c.readline(None)
        });
        server.shutdown(Duration::from_secs(30)).unwrap();
        assert_eq!(requester.join().unwrap().unwrap(), b"last request\n");
        assert_eq!(finished.get(), 1);
        // No longer listening.
        let err = connect(&client.connection().peer_address().unwrap(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn shutdown_closes_what_is_left_after_the_grace_period() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.listen(&local()).unwrap();
        let idle = connect(&server.addresses()[0], None).unwrap();
        idle.write_all(b"x\n").unwrap();
        assert_eq!(idle.readline(None).unwrap(), b"x\n");
        let start = Instant::now();
        server.shutdown(Duration::from_millis(30)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(server.connections().is_empty());
        assert_eq!(idle.readline(None).unwrap(), b"");
    });
}

#[test]
fn connections_lists_the_open_connections_in_accept_order() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.listen(&local()).unwrap();
        let addr = &server.addresses()[0];
        let a = connect(addr, None).unwrap();
        let b = connect(addr, None).unwrap();
        for s in [&a, &b] {
            s.write_all(b"hello\n").unwrap();
            s.readline(None).unwrap();
        }
        let listed: Vec<Address> = server
            .connections()
            .iter()
            .map(|c| c.connection().peer_address().unwrap())
            .collect();
        let expected: Vec<Address> = [&a, &b]
            .iter()
            .map(|c| c.connection().local_address().unwrap())
            .collect();
        assert_eq!(listed, expected);
        a.close();
        // The handler sees end of stream and its connection leaves the list.
        while server.connections().len() > 1 {
            yield_now().unwrap();
        }
        server.close().unwrap();
    });
}

#[test]
fn one_server_listens_on_tcp_and_a_unix_socket_at_once() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        let unix = socket_path("both");
        server.listen(&local()).unwrap();
        server.listen(&unix).unwrap();
        let addrs = server.addresses();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1], unix);
        for addr in &addrs {
            let stream = connect(addr, Some(Duration::from_secs(10))).unwrap();
            stream
                .write_all(format!("via {addr}\n").as_bytes())
                .unwrap();
            assert_eq!(
                stream.readline(None).unwrap(),
                format!("via {addr}\n").as_bytes()
            );
        }
        server.close().unwrap();
        let Address::Unix(path) = unix else {
            unreachable!()
        };
        assert!(!path.exists(), "the socket file goes with the listener");
    });
}

#[test]
fn a_unix_socket_path_in_use_cannot_be_listened_on() {
    run_clean(|| {
        let first = Server::new(echo_lines);
        let path = socket_path("in-use");
        first.listen(&path).unwrap();
        let second = Server::new(echo_lines);
        let err = second.listen(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        first.close().unwrap();
        second.close().unwrap();
    });
}

#[test]
fn dropping_a_server_stops_it_without_waiting() {
    run_clean(|| {
        let server = Server::new(echo_lines);
        server.listen(&local()).unwrap();
        let stream = connect(&server.addresses()[0], None).unwrap();
        stream.write_all(b"x\n").unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"x\n");
        drop(server);
        assert_eq!(stream.readline(None).unwrap(), b"");
    });
}

#[test]
fn a_client_connect_gives_up_after_its_timeout() {
    run_clean(|| {
        // The timeout bounds the name lookup too: a host name cannot resolve in a nanosecond.
        let client = Client::with_timeout(Some(Duration::from_nanos(1)));
        let err = client
            .connect(&Address::Tcp("localhost".into(), 9))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(client.stream().is_none());
    });
}
