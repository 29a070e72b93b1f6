//! UDP sockets on fibers: datagrams with peer addresses (Gruvi's test_transports), connected
//! sockets, timeouts, the bounded receive queue, closing.

mod support;

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{spawn, yield_now};
use gruvi_stream::{DEFAULT_RECV_QUEUE, UdpSocket};
use support::run_clean;

#[test]
fn five_datagrams_go_each_way_with_their_peer_addresses() {
    run_clean(|| {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = spawn(move || -> io::Result<()> {
            let mut buf = [0; 64];
            for _ in 0..5 {
                let (n, from) = server.recv_from(&mut buf)?;
                server.send_to(&buf[..n], from)?;
            }
            Ok(())
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client_addr = client.local_addr().unwrap();
        assert_ne!(client_addr, server_addr);
        let mut buf = [0; 64];
        for i in 0..5 {
            let message = format!("datagram {i}");
            assert_eq!(
                client.send_to(message.as_bytes(), server_addr).unwrap(),
                message.len()
            );
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, server_addr);
            assert_eq!(&buf[..n], message.as_bytes());
        }
        echo.join().unwrap().unwrap();
    });
}

#[test]
fn a_connected_socket_sends_and_receives_only_with_its_peer() {
    run_clean(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            a.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        a.connect(b.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        // Datagrams from others than the peer are not received.
        stranger.send_to(b"noise", a.local_addr().unwrap()).unwrap();
        b.send_to(b"from b", a.local_addr().unwrap()).unwrap();
        let mut buf = [0; 16];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from b");
        a.send(b"to b").unwrap();
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"to b"[..], a.local_addr().unwrap()));
        // Connecting again replaces the peer.
        a.connect(stranger.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), stranger.local_addr().unwrap());
    });
}

#[test]
fn a_connected_socket_learns_that_the_peer_port_is_closed() {
    run_clean(|| {
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = gone.local_addr().unwrap();
        drop(gone);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(addr).unwrap();
        socket.send(b"anyone?").unwrap();
        let err = socket.recv(&mut [0; 16]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn a_receive_times_out_and_the_socket_stays_usable() {
    run_clean(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        assert_eq!(
            socket.read_timeout().unwrap(),
            Some(Duration::from_millis(20))
        );
        let start = Instant::now();
        let err = socket.recv_from(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        socket
            .send_to(b"self", socket.local_addr().unwrap())
            .unwrap();
        let mut buf = [0; 8];
        assert_eq!(socket.recv(&mut buf).unwrap(), 4);
        assert!(socket.set_read_timeout(Some(Duration::ZERO)).is_err());
    });
}

#[test]
fn a_full_receive_queue_pauses_without_losing_datagrams() {
    run_clean(|| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_recv_queue_limit(2);
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        // Receiving starts with the first receive, which never switches; the loop fills the
        // queue meanwhile.
        let err = fiber_core::no_switch(|| receiver.try_recv_from(&mut [0; 4])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        for i in 0..10u8 {
            sender.send_to(&[i; 3], to).unwrap();
        }
        for _ in 0..3 {
            yield_now().unwrap();
        }
        let mut buf = [0; 2];
        let (n, _) = fiber_core::no_switch(|| receiver.try_recv_from(&mut buf)).unwrap();
        assert_eq!((n, buf), (2, [0; 2]));
        // Peeking leaves the datagram queued; a short buffer cuts it.
        assert_eq!(receiver.peek(&mut buf).unwrap(), 2);
        for i in 1..10u8 {
            let (n, from) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!((n, from), (2, sender.local_addr().unwrap()));
            assert_eq!(buf, [i; 2]);
        }
    });
}

/// Takes every datagram queued now, without switching (so none can arrive meanwhile), and
/// returns their first bytes.
fn take_queued(socket: &UdpSocket) -> Vec<u8> {
    fiber_core::no_switch(|| {
        let mut taken = Vec::new();
        let mut buf = [0; 8];
        loop {
            match socket.try_recv_from(&mut buf) {
                Ok(_) => taken.push(buf[0]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return taken,
                Err(err) => panic!("{err}"),
            }
        }
    })
}

/// Sends datagrams `0..count` (their first byte) to `socket`, then lets the loop receive
/// for a while, as long as it is willing to.
fn flood(socket: &UdpSocket, count: u8) -> UdpSocket {
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = socket.local_addr().unwrap();
    for i in 0..count {
        sender.send_to(&[i; 3], to).unwrap();
    }
    // The kernel has them all (loopback delivers at once).
    let_the_loop_receive();
    sender
}

/// Lets the loop poll the socket several times: libuv receives at most 32 datagrams per poll,
/// and every sleep polls at least once, however loaded the machine.
fn let_the_loop_receive() {
    for _ in 0..10 {
        fiber_core::sleep(Duration::from_millis(2)).unwrap();
    }
}

#[test]
fn a_full_receive_queue_holds_exactly_its_limit_and_resumes_as_it_drains() {
    run_clean(|| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_recv_queue_limit(3);
        assert_eq!(receiver.recv_queue_limit(), 3);
        // The first receive starts receiving.
        assert!(take_queued(&receiver).is_empty());
        let _sender = flood(&receiver, 10);
        // Paused at 3: the other 7 wait in the kernel.
        assert_eq!(take_queued(&receiver), [0, 1, 2]);
        // Taking them made room: receiving resumed and paused again at 3.
        let_the_loop_receive();
        assert_eq!(take_queued(&receiver), [3, 4, 5]);
        let_the_loop_receive();
        assert_eq!(take_queued(&receiver), [6, 7, 8]);
        let_the_loop_receive();
        assert_eq!(take_queued(&receiver), [9]);
    });
}

#[test]
fn the_receive_queue_holds_the_default_number_of_datagrams() {
    run_clean(|| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(receiver.recv_queue_limit(), DEFAULT_RECV_QUEUE);
        assert!(take_queued(&receiver).is_empty());
        let count = u8::try_from(DEFAULT_RECV_QUEUE + 10).unwrap();
        let _sender = flood(&receiver, count);
        let first: Vec<u8> = (0..count).take(DEFAULT_RECV_QUEUE).collect();
        assert_eq!(take_queued(&receiver), first);
        let_the_loop_receive();
        let rest: Vec<u8> = (0..count).skip(DEFAULT_RECV_QUEUE).collect();
        assert_eq!(take_queued(&receiver), rest);
    });
}

#[test]
fn closing_wakes_a_blocked_receive() {
    run_clean(|| {
        let socket = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let s = socket.clone();
        let receiver = spawn(move || s.recv(&mut [0; 8]));
        yield_now().unwrap();
        socket.close();
        let err = receiver.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert_eq!(
            socket.send(b"x").unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    });
}

#[test]
fn socket_options_apply() {
    run_clean(|| {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.set_broadcast(true).unwrap();
        socket.set_ttl(32).unwrap();
        socket.set_multicast_ttl_v4(4).unwrap();
        socket.set_multicast_loop_v4(true).unwrap();
        assert!(socket.set_ttl(1000).is_err());
        socket
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        assert_eq!(
            socket.write_timeout().unwrap(),
            Some(Duration::from_secs(1))
        );
    });
}
