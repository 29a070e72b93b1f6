//! `Server` and `connect` over loopback TCP and Unix sockets: many clients, the connection
//! limit, closing the server with calls pending, and the splitter under gruvi-stream's
//! `Dispatcher`.

mod support;

use std::rc::Rc;
use std::time::Duration;

use gruvi_jsonrpc::{Config, Error, Methods, RpcError, Server, Splitter, connect};
use gruvi_stream::{Address, Dispatcher, Stream, UnixStream};
use support::run_clean;

fn server() -> Server {
    let mut m = Methods::new();
    m.add("add", |_, (a, b): (i64, i64)| Ok(a + b));
    m.add("sleep", |_, (ms,): (u64,)| {
        fiber_core::sleep(Duration::from_millis(ms)).map_err(RpcError::internal_error)?;
        Ok(ms)
    });
    m.add("call_me", |peer, (method,): (String,)| {
        peer.call::<String>(&method, ())
            .map_err(|e| RpcError::new(-32000, e.to_string()))
    });
    Server::new(m, Config::default())
}

#[test]
fn clients_over_tcp_and_a_unix_socket_call_the_same_server() {
    run_clean(|| {
        let dir = std::env::temp_dir().join(format!("gruvi-jsonrpc-ep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let server = server();
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        server
            .listen(&Address::Unix(path.to_str().unwrap().into()))
            .unwrap();
        let addresses = server.addresses();
        assert_eq!(addresses.len(), 2);
        let fibers: Vec<_> = (0..10i64)
            .map(|i| {
                let addr = addresses[i as usize % 2].clone();
                fiber_core::spawn(move || {
                    let mut m = Methods::new();
                    m.add("who", move |_, ()| Ok(format!("client {i}")));
                    let c = connect(&addr, m, Config::default()).unwrap();
                    let sum: i64 = c.call("add", (i, i)).unwrap();
                    let me: String = c.call("call_me", ("who",)).unwrap();
                    (sum, me)
                })
            })
            .collect();
        for (i, f) in fibers.into_iter().enumerate() {
            assert_eq!(f.join().unwrap(), (2 * i as i64, format!("client {i}")));
        }
        server.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn with_max_connections_2_the_third_client_is_closed() {
    run_clean(|| {
        let server = server();
        server.set_max_connections(Some(2));
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = &server.addresses()[0];
        let clients: Vec<_> = (0..3)
            .map(|_| connect(addr, Methods::new(), Config::default()).unwrap())
            .collect();
        let outcomes: Vec<_> = clients
            .iter()
            .map(|c| c.call::<i64>("add", (1, 1)))
            .collect();
        assert_eq!(outcomes[0].as_ref().unwrap(), &2);
        assert_eq!(outcomes[1].as_ref().unwrap(), &2);
        assert!(
            matches!(outcomes[2], Err(Error::ConnectionLost(_))),
            "{:?}",
            outcomes[2]
        );
        assert_eq!(server.connection_count(), 2);
        server.close().unwrap();
    });
}

#[test]
fn closing_the_server_fails_the_clients_pending_calls_at_once() {
    run_clean(|| {
        let server = Rc::new(server());
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let c = connect(&server.addresses()[0], Methods::new(), Config::default()).unwrap();
        let c2 = c.clone();
        let pending = fiber_core::spawn(move || c2.call::<u64>("sleep", (60_000,)));
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        let start = std::time::Instant::now();
        server.close().unwrap();
        let err = pending.join().unwrap().unwrap_err();
        assert!(matches!(err, Error::ConnectionLost(_)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    });
}

#[test]
fn the_splitter_frames_messages_for_gruvi_streams_dispatcher() {
    run_clean(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let writer = fiber_core::spawn(move || {
            let s = Stream::new(b);
            s.write_all(b" {\"a\": \"}\"} [1,\n2]\n{}").unwrap();
            s.write_eof().unwrap();
        });
        let mut seen = Vec::new();
        Dispatcher::new(Splitter::default())
            .run(Rc::new(Stream::new(a)), |message| {
                seen.push(String::from_utf8(message).unwrap());
                Ok(())
            })
            .unwrap();
        writer.join().unwrap();
        assert_eq!(seen, ["{\"a\": \"}\"}", "[1,\n2]", "{}"]);
    });
}

#[test]
fn the_server_notifies_every_connected_client_through_its_peers() {
    run_clean(|| {
        let server = server();
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.addresses()[0].clone();
        let got = Rc::new(std::cell::RefCell::new(Vec::new()));
        let clients: Vec<_> = (0..3)
            .map(|i| {
                let mut m = Methods::new();
                let got = got.clone();
                m.add("news", move |_, (n,): (i64,)| {
                    got.borrow_mut().push((i, n));
                    Ok(())
                });
                let c = connect(&addr, m, Config::default()).unwrap();
                // A round trip, so the server has registered the connection.
                assert_eq!(c.call::<i64>("add", (0, 0)).unwrap(), 0);
                c
            })
            .collect();
        let peers = server.peers();
        assert_eq!(peers.len(), 3);
        for peer in &peers {
            peer.notify("news", (7,)).unwrap();
        }
        for c in &clients {
            // The notification was sent before this answer.
            c.call::<u64>("sleep", (1,)).unwrap();
        }
        let mut got = got.borrow().clone();
        got.sort();
        assert_eq!(got, [(0, 7), (1, 7), (2, 7)]);
        drop(clients);
        server.close().unwrap();
        assert!(server.peers().is_empty());
    });
}

/// A config no peer can run with is refused when the server is made (before this, each
/// connection's fiber panicked on it, once per client).
#[test]
#[should_panic(expected = "max_size must not be 0")]
fn a_server_with_max_message_size_0_is_refused_when_made() {
    let mut config = Config::default();
    config.max_message_size = 0;
    let _ = Server::new(Methods::new(), config);
}

#[test]
#[should_panic(expected = "max_depth must be between 1 and 127")]
fn a_server_with_max_depth_above_the_limit_is_refused_when_made() {
    let mut config = Config::default();
    config.max_depth = gruvi_jsonrpc::MAX_DEPTH_LIMIT + 1;
    let _ = Server::new(Methods::new(), config);
}
