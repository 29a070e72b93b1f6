//! TCP edge cases: write order, half-open connections, shutdown, close while connecting, bind
//! errors.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Error, Handle, Loop, Stream, Tcp, TcpBindFlags};

type Shared<T> = Rc<RefCell<T>>;

fn shared<T>(v: T) -> Shared<T> {
    Rc::new(RefCell::new(v))
}

/// A listening server that keeps accepted connections (reading into `received`).
fn server(lp: &Loop) -> (Tcp, SocketAddr, Shared<Vec<Tcp>>, Shared<Vec<u8>>) {
    let server = Tcp::new(lp).unwrap();
    server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.sockname().unwrap();
    let (conns, received) = (shared(Vec::new()), shared(Vec::new()));
    let (c, r) = (conns.clone(), received.clone());
    server
        .listen(16, move |server, status| {
            status.unwrap();
            let conn = Tcp::new(&server.loop_handle()).unwrap();
            server.accept(&conn).unwrap();
            let r = r.clone();
            conn.read_start(Vec::with_capacity, move |_, data| {
                if let Ok(bytes) = data {
                    r.borrow_mut().extend_from_slice(&bytes)
                }
            })
            .unwrap();
            c.borrow_mut().push(conn);
        })
        .unwrap();
    (server, addr, conns, received)
}

fn connected_client(lp: &Loop, addr: SocketAddr, conns: &Shared<Vec<Tcp>>) -> Tcp {
    let client = Tcp::new(lp).unwrap();
    let done = shared(false);
    let d = done.clone();
    client
        .connect(addr, move |r| {
            r.unwrap();
            *d.borrow_mut() = true
        })
        .unwrap();
    let before = conns.borrow().len();
    run_until(lp, LIMIT, || {
        *done.borrow() && conns.borrow().len() > before
    });
    client
}

#[test]
fn writes_complete_in_queue_order_and_arrive_in_order() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, received) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    let order = shared(Vec::new());
    let mut expected = Vec::new();
    for i in 0..100u32 {
        // Large enough buffers (25 MiB in all) that some writes queue behind others.
        let chunk = vec![(i % 251) as u8; 256 * 1024];
        expected.extend_from_slice(&chunk);
        let o = order.clone();
        client
            .write(chunk, move |r| {
                r.unwrap();
                o.borrow_mut().push(i)
            })
            .unwrap();
    }
    assert!(client.write_queue_size() > 0, "some writes were queued");
    run_until(&lp, LIMIT, || received.borrow().len() == expected.len());
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
    assert!(*received.borrow() == expected, "bytes arrived out of order");
    assert_eq!(client.write_queue_size(), 0);
    drop((server, client, conns));
    close_clean(lp);
}

#[test]
fn writing_to_a_closed_peer_fails_with_a_reset_or_broken_pipe() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, _) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    // The peer goes away with a reset.
    conns.borrow_mut().pop().unwrap().close_reset().unwrap();
    let failure: Shared<Option<Error>> = shared(None);
    // Keep writing until the kernel reports the dead connection (a bounded number of tries:
    // run_until gives up after LIMIT).
    run_until(&lp, LIMIT, || {
        if failure.borrow().is_none() {
            let f = failure.clone();
            let submitted = client.write(vec![0u8; 4096], move |r| {
                if let Err(e) = r {
                    f.borrow_mut().get_or_insert(e);
                }
            });
            if let Err(e) = submitted {
                failure.borrow_mut().get_or_insert(e);
            }
        }
        failure.borrow().is_some()
    });
    let err = failure.borrow().unwrap();
    assert!(
        [Error::EPIPE, Error::from_code(-libc::ECONNRESET)].contains(&err),
        "unexpected error {err}"
    );
    drop((server, client, conns));
    close_clean(lp);
}

#[test]
fn shutdown_delivers_eof_to_the_peer_and_a_second_shutdown_fails() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, _) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    let peer = conns.borrow_mut().pop().unwrap();
    assert_eq!(
        peer.read_start(Vec::with_capacity, |_, _| {}),
        Err(Error::from_code(-libc::EALREADY))
    );
    peer.read_stop().unwrap();
    let eof = shared(false);
    let e = eof.clone();
    peer.read_start(Vec::with_capacity, move |_, data| {
        if data == Err(Error::EOF) {
            *e.borrow_mut() = true
        }
    })
    .unwrap();
    let shut = shared(None);
    let s = shut.clone();
    client.shutdown(move |r| *s.borrow_mut() = Some(r)).unwrap();
    assert_eq!(
        client.shutdown(|_| panic!("second shutdown ran")),
        Err(Error::ENOTCONN)
    );
    run_until(&lp, LIMIT, || *eof.borrow() && shut.borrow().is_some());
    assert_eq!(*shut.borrow(), Some(Ok(())));
    assert!(!client.is_writable());
    drop((server, client, conns, peer));
    close_clean(lp);
}

#[test]
fn a_half_open_connection_still_carries_data_the_other_way() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, received) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    let peer = conns.borrow_mut().pop().unwrap();
    // The server side sends FIN: the client sees EOF but may keep writing.
    peer.shutdown(|r| r.unwrap()).unwrap();
    let eof = shared(false);
    let e = eof.clone();
    client
        .read_start(Vec::with_capacity, move |_, data| {
            assert_eq!(data, Err(Error::EOF));
            *e.borrow_mut() = true;
        })
        .unwrap();
    run_until(&lp, LIMIT, || *eof.borrow());
    let written = shared(None);
    let w = written.clone();
    client
        .write(&b"after your FIN"[..], move |r| *w.borrow_mut() = Some(r))
        .unwrap();
    run_until(&lp, LIMIT, || received.borrow().len() == 14);
    assert_eq!(&*received.borrow(), b"after your FIN");
    assert_eq!(*written.borrow(), Some(Ok(())));
    drop((server, client, conns, peer));
    close_clean(lp);
}

#[test]
fn closing_while_connecting_cancels_the_connect() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, _) = server(&lp);
    let client = Tcp::new(&lp).unwrap();
    let result = shared(None);
    let r = result.clone();
    client
        .connect(addr, move |res| *r.borrow_mut() = Some(res))
        .unwrap();
    drop(client);
    run_until(&lp, LIMIT, || result.borrow().is_some());
    assert_eq!(*result.borrow(), Some(Err(Error::ECANCELED)));
    // The server may or may not have seen the connection; either way nothing leaks.
    drop((server, conns));
    close_clean(lp);
}

#[test]
fn pending_writes_of_a_closed_handle_are_cancelled() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, _) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    let results = shared(Vec::new());
    for _ in 0..64 {
        let r = results.clone();
        client
            .write(vec![1u8; 64 * 1024], move |res| r.borrow_mut().push(res))
            .unwrap();
    }
    drop(client);
    run_until(&lp, LIMIT, || results.borrow().len() == 64);
    assert!(results.borrow().contains(&Err(Error::ECANCELED)));
    drop((server, conns));
    close_clean(lp);
}

#[test]
fn bind_errors_are_reported() {
    let lp = Loop::new().unwrap();
    let first = Tcp::new(&lp).unwrap();
    first.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    first.listen(1, |_, _| {}).unwrap();
    let addr = first.sockname().unwrap();
    // Address in use: Linux reports it at bind or at listen.
    let second = Tcp::new(&lp).unwrap();
    let in_use = second.bind(addr).and_then(|()| second.listen(1, |_, _| {}));
    assert_eq!(in_use, Err(Error::EADDRINUSE));
    // An address of no local interface (TEST-NET-1).
    let third = Tcp::new(&lp).unwrap();
    let err = third
        .bind("192.0.2.1:0".parse().unwrap())
        .and_then(|()| third.listen(1, |_, _| {}));
    assert_eq!(err.unwrap_err().name(), "EADDRNOTAVAIL");
    // Binding twice.
    assert_eq!(
        first.bind("127.0.0.1:0".parse().unwrap()),
        Err(Error::EINVAL)
    );
    drop((first, second, third));
    close_clean(lp);
}

#[test]
fn reuse_port_lets_two_listeners_share_an_address() {
    let lp = Loop::new().unwrap();
    let flags = TcpBindFlags {
        reuse_port: true,
        ..TcpBindFlags::default()
    };
    let a = Tcp::new(&lp).unwrap();
    a.bind_with("127.0.0.1:0".parse().unwrap(), flags).unwrap();
    a.listen(1, |_, _| {}).unwrap();
    let b = Tcp::new(&lp).unwrap();
    b.bind_with(a.sockname().unwrap(), flags).unwrap();
    b.listen(1, |_, _| {}).unwrap();
    assert_eq!(a.sockname().unwrap(), b.sockname().unwrap());
    drop((a, b));
    close_clean(lp);
}

#[test]
fn socket_options_and_names() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, _) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    client.set_nodelay(true).unwrap();
    client.set_keepalive(Some(30)).unwrap();
    client.set_keepalive(None).unwrap();
    assert!(client.fileno().unwrap() >= 0);
    assert!(client.is_readable() && client.is_writable());
    let lonely = Tcp::new(&lp).unwrap();
    lonely.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(lonely.peername(), Err(Error::ENOTCONN));
    drop((server, client, conns, lonely));
    close_clean(lp);
}

/// Calls `try_write` with `chunk` until the kernel takes no more (`EAGAIN`), returning the
/// bytes it took (with a bound: a socket's buffers hold a few MiB at most).
fn try_write_until_full(client: &Tcp, chunk: &[u8], sent: &mut Vec<u8>) {
    for _ in 0..100_000 {
        match client.try_write(chunk) {
            Ok(n) => {
                assert!(n > 0 && n <= chunk.len(), "try_write took {n} bytes");
                sent.extend_from_slice(&chunk[..n]);
            }
            Err(err) => {
                assert_eq!(err, Error::EAGAIN, "a full socket buffer is EAGAIN");
                return;
            }
        }
    }
    panic!("the socket buffer never filled");
}

#[test]
fn try_write_fills_the_socket_buffer_then_reports_eagain_and_loses_nothing() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, received) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    let mut sent = Vec::new();
    // Distinct bytes per chunk, so that a lost or repeated part shows.
    for round in 0..2u8 {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 253) as u8 ^ round).collect();
        try_write_until_full(&client, &chunk, &mut sent);
        assert!(!sent.is_empty());
        // Nothing was queued: try_write never queues.
        assert_eq!(client.write_queue_size(), 0);
        // The peer reads it all, after which the kernel takes bytes again.
        let expected = sent.len();
        run_until(&lp, LIMIT, || received.borrow().len() == expected);
    }
    assert!(*received.borrow() == sent, "bytes lost or reordered");
    assert_eq!(client.try_write(b"more").unwrap(), 4);
    drop((server, client, conns));
    close_clean(lp);
}

#[test]
fn try_write_is_eagain_while_writes_are_queued_and_epipe_after_shutdown() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, received) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    let mut sent = Vec::new();
    try_write_until_full(&client, &[7u8; 64 * 1024], &mut sent);
    // Queued behind the full buffer: try_write must not jump the queue, also once the
    // kernel has room again (the peer read some) while libuv still holds queued bytes.
    const QUEUED: usize = 32 * 1024 * 1024;
    let written = shared(false);
    let w = written.clone();
    client
        .write(vec![9u8; QUEUED], move |r| {
            r.unwrap();
            *w.borrow_mut() = true
        })
        .unwrap();
    assert!(client.write_queue_size() > 0);
    assert_eq!(client.try_write(b"x"), Err(Error::EAGAIN));
    let before = sent.len();
    run_until(&lp, LIMIT, || received.borrow().len() > before);
    assert!(
        client.write_queue_size() > 0,
        "the queued write is still going out"
    );
    assert_eq!(client.try_write(b"x"), Err(Error::EAGAIN));
    run_until(&lp, LIMIT, || *written.borrow());
    sent.resize(sent.len() + QUEUED, 9);
    // With the queue empty again, try_write writes.
    assert_eq!(client.try_write(b"end").unwrap(), 3);
    sent.extend_from_slice(b"end");
    run_until(&lp, LIMIT, || received.borrow().len() == sent.len());
    assert!(*received.borrow() == sent);
    // No longer writable once shut down.
    let shut = shared(None);
    let s = shut.clone();
    client.shutdown(move |r| *s.borrow_mut() = Some(r)).unwrap();
    assert_eq!(client.try_write(b"late"), Err(Error::EPIPE));
    run_until(&lp, LIMIT, || shut.borrow().is_some());
    assert_eq!(client.try_write(b"late"), Err(Error::EPIPE));
    drop((server, client, conns));
    close_clean(lp);
}

#[test]
fn try_write_to_a_closed_peer_fails_with_a_reset_or_broken_pipe() {
    let lp = Loop::new().unwrap();
    let (server, addr, conns, _) = server(&lp);
    let client = connected_client(&lp, addr, &conns);
    conns.borrow_mut().pop().unwrap().close_reset().unwrap();
    let mut failure = None;
    // The first writes may still be taken; the reset comes back within a few tries.
    run_until(&lp, LIMIT, || {
        match client.try_write(&[0u8; 4096]) {
            Ok(_) => {}
            Err(err) => failure = Some(err),
        }
        failure.is_some()
    });
    let err = failure.unwrap();
    assert!(
        [Error::EPIPE, Error::from_code(-libc::ECONNRESET)].contains(&err),
        "unexpected error {err}"
    );
    drop((server, client, conns));
    close_clean(lp);
}

/// `uv_tcp_open` takes any descriptor: a TCP handle over a pipe still writes (libuv's own
/// writes use `write(2)`; `try_write`'s `send(2)` for TCP falls back to it on `ENOTSOCK`).
#[test]
fn try_write_on_a_tcp_handle_over_a_pipe_writes() {
    use std::io::Read;
    use std::os::fd::IntoRawFd;
    let (mut reader, writer) = std::io::pipe().unwrap();
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.open(writer.into_raw_fd()).unwrap();
    assert_eq!(tcp.try_write_vectored(&[b"a", b"b"]), Ok(2));
    assert_eq!(tcp.try_write(b"xy"), Ok(2));
    assert_eq!(tcp.try_write(b"z"), Ok(1));
    let mut got = [0; 5];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abxyz");
    drop(tcp);
    close_clean(lp);
}
