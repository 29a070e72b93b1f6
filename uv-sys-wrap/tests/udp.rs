//! UDP over loopback, IPv4 and IPv6, callback style.

mod support;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Datagram, Error, Handle, Loop, Membership, Udp, UdpBindFlags};

type Inbox = Rc<RefCell<Vec<Datagram>>>;

/// A socket bound to `addr` that collects the datagrams it receives into buffers of `size`.
fn receiver(lp: &Loop, addr: &str, size: usize) -> (Udp, Inbox) {
    let udp = Udp::new(lp).unwrap();
    udp.bind(addr.parse().unwrap()).unwrap();
    let inbox = Rc::new(RefCell::new(Vec::new()));
    let i = inbox.clone();
    udp.recv_start(
        move |_| Vec::with_capacity(size),
        move |_, datagram| i.borrow_mut().push(datagram.expect("recv")),
    )
    .unwrap();
    (udp, inbox)
}

/// A flag set by a send callback once the send succeeded.
fn sent_flag() -> (Rc<Cell<bool>>, impl FnOnce(uv_sys_wrap::Result<()>)) {
    let flag = Rc::new(Cell::new(false));
    let f = flag.clone();
    (flag, move |res: uv_sys_wrap::Result<()>| {
        res.expect("send");
        f.set(true)
    })
}

fn send_and_recv(addr: &str) {
    let lp = Loop::new().unwrap();
    let (server, inbox) = receiver(&lp, addr, 64 * 1024);
    let server_addr = server.sockname().unwrap();
    let client = Udp::new(&lp).unwrap();
    client.bind(addr.parse().unwrap()).unwrap();
    let (sent, cb) = sent_flag();
    client.send(b"hello", Some(server_addr), cb).unwrap();
    run_until(&lp, LIMIT, || sent.get() && !inbox.borrow().is_empty());
    let got = inbox.borrow_mut().remove(0);
    assert_eq!(got.data, b"hello");
    assert_eq!(got.addr, Some(client.sockname().unwrap()));
    assert!(!got.partial);
    assert_eq!(client.send_queue_count(), 0);
    assert_eq!(client.send_queue_size(), 0);
    drop((server, client));
    close_clean(lp);
}

#[test]
fn send_and_recv_over_ipv4_loopback_reports_the_sender() {
    send_and_recv("127.0.0.1:0");
}

#[test]
fn send_and_recv_over_ipv6_loopback_reports_the_sender() {
    send_and_recv("[::1]:0");
}

#[test]
fn first_send_binds_an_unbound_socket() {
    let lp = Loop::new().unwrap();
    let (server, inbox) = receiver(&lp, "127.0.0.1:0", 1024);
    let client = Udp::new(&lp).unwrap();
    assert!(
        client.sockname().is_err(),
        "no socket before the first send"
    );
    let (sent, cb) = sent_flag();
    client
        .send(&b"auto"[..], Some(server.sockname().unwrap()), cb)
        .unwrap();
    run_until(&lp, LIMIT, || sent.get() && !inbox.borrow().is_empty());
    let from = inbox.borrow()[0].addr.unwrap();
    assert_eq!(from.port(), client.sockname().unwrap().port());
    drop((server, client));
    close_clean(lp);
}

#[test]
fn connected_socket_sends_without_an_address() {
    let lp = Loop::new().unwrap();
    let (server, inbox) = receiver(&lp, "127.0.0.1:0", 1024);
    let server_addr = server.sockname().unwrap();
    let client = Udp::new(&lp).unwrap();
    assert_eq!(client.peername(), Err(Error::EBADF), "no socket yet");
    client.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(client.peername(), Err(Error::ENOTCONN));
    client.connect(server_addr).unwrap();
    assert_eq!(client.peername().unwrap(), server_addr);
    let eisconn = client.connect(server_addr).unwrap_err();
    assert_eq!(eisconn.raw_os_error(), Some(libc::EISCONN));
    let eisconn = client.send(b"x", Some(server_addr), |_| {});
    assert_eq!(eisconn.unwrap_err().raw_os_error(), Some(libc::EISCONN));

    let (sent, cb) = sent_flag();
    client.send(b"connected", None, cb).unwrap();
    run_until(&lp, LIMIT, || sent.get() && !inbox.borrow().is_empty());
    assert_eq!(inbox.borrow()[0].data, b"connected");
    assert_eq!(inbox.borrow()[0].addr, Some(client.sockname().unwrap()));

    client.disconnect().unwrap();
    assert_eq!(client.peername(), Err(Error::ENOTCONN));
    assert_eq!(client.disconnect(), Err(Error::ENOTCONN));
    let no_dest = client.send(b"x", None, |_| {}).unwrap_err();
    assert_eq!(no_dest.raw_os_error(), Some(libc::EDESTADDRREQ));
    assert_eq!(lp.live_requests(), 0, "a refused send leaves no request");
    drop((server, client));
    close_clean(lp);
}

#[test]
fn try_send_delivers_a_datagram_at_once() {
    let lp = Loop::new().unwrap();
    let (server, inbox) = receiver(&lp, "127.0.0.1:0", 1024);
    let client = Udp::new(&lp).unwrap();
    let n = client
        .try_send(b"right now", Some(server.sockname().unwrap()))
        .unwrap();
    assert_eq!(n, 9);
    assert_eq!(lp.live_requests(), 0);
    run_until(&lp, LIMIT, || !inbox.borrow().is_empty());
    assert_eq!(inbox.borrow()[0].data, b"right now");
    drop((server, client));
    close_clean(lp);
}

#[test]
fn empty_datagram_is_reported_with_its_sender() {
    let lp = Loop::new().unwrap();
    let (server, inbox) = receiver(&lp, "127.0.0.1:0", 1024);
    let client = Udp::new(&lp).unwrap();
    client.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (sent, cb) = sent_flag();
    client
        .send(Vec::new(), Some(server.sockname().unwrap()), cb)
        .unwrap();
    run_until(&lp, LIMIT, || sent.get() && !inbox.borrow().is_empty());
    let got = inbox.borrow_mut().remove(0);
    assert!(got.data.is_empty());
    assert_eq!(got.addr, Some(client.sockname().unwrap()));
    assert!(!got.partial);
    drop((server, client));
    close_clean(lp);
}

#[test]
fn datagram_larger_than_the_buffer_is_cut_and_flagged_partial() {
    let lp = Loop::new().unwrap();
    let (server, inbox) = receiver(&lp, "127.0.0.1:0", 8);
    let client = Udp::new(&lp).unwrap();
    let payload: Vec<u8> = (0..100).collect();
    client
        .try_send(&payload, Some(server.sockname().unwrap()))
        .unwrap();
    run_until(&lp, LIMIT, || !inbox.borrow().is_empty());
    let got = inbox.borrow_mut().remove(0);
    assert!(got.partial);
    assert!(!got.data.is_empty() && got.data.len() < payload.len());
    assert_eq!(got.data, payload[..got.data.len()]);
    drop((server, client));
    close_clean(lp);
}

#[test]
fn recv_appends_to_a_partly_filled_buffer_and_empty_buffer_is_enobufs() {
    let lp = Loop::new().unwrap();
    let server = Udp::new(&lp).unwrap();
    server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let results = Rc::new(RefCell::new(Vec::new()));
    let r = results.clone();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    server
        .recv_start(
            move |_| {
                c.set(c.get() + 1);
                if c.get() == 1 {
                    let mut buf = Vec::with_capacity(64);
                    buf.extend_from_slice(b">>");
                    buf
                } else {
                    Vec::new()
                }
            },
            move |udp, res| {
                r.borrow_mut().push(res.map(|d| d.data));
                if r.borrow().len() == 2 {
                    udp.recv_stop().unwrap();
                }
            },
        )
        .unwrap();
    let client = Udp::new(&lp).unwrap();
    let to = Some(server.sockname().unwrap());
    client.try_send(b"one", to).unwrap();
    run_until(&lp, LIMIT, || results.borrow().len() == 2);
    assert_eq!(results.borrow()[0], Ok(b">>one".to_vec()));
    assert_eq!(results.borrow()[1], Err(Error::ENOBUFS));
    drop((server, client));
    close_clean(lp);
}

#[test]
fn recv_start_twice_is_ealready() {
    let lp = Loop::new().unwrap();
    let (server, _inbox) = receiver(&lp, "127.0.0.1:0", 16);
    let again = server.recv_start(Vec::with_capacity, |_, _| panic!("replaced"));
    assert_eq!(again.unwrap_err().raw_os_error(), Some(libc::EALREADY));
    server.recv_stop().unwrap();
    server.recv_stop().unwrap();
    assert!(!server.is_active());
    drop(server);
    close_clean(lp);
}

#[test]
fn socket_option_setters_succeed_on_a_bound_socket() {
    let lp = Loop::new().unwrap();
    let udp = Udp::new(&lp).unwrap();
    assert_eq!(udp.set_broadcast(true), Err(Error::EBADF), "no socket yet");
    udp.bind_with(
        "0.0.0.0:0".parse().unwrap(),
        UdpBindFlags {
            reuse_addr: true,
            reuse_port: true,
            ..UdpBindFlags::default()
        },
    )
    .unwrap();
    udp.set_broadcast(true).unwrap();
    udp.set_broadcast(false).unwrap();
    udp.set_ttl(64).unwrap();
    assert_eq!(udp.set_ttl(0), Err(Error::EINVAL));
    assert_eq!(udp.set_ttl(256), Err(Error::EINVAL));
    udp.set_multicast_ttl(1).unwrap();
    assert_eq!(udp.set_multicast_ttl(256), Err(Error::EINVAL));
    udp.set_multicast_loop(true).unwrap();
    udp.set_multicast_interface(Some("127.0.0.1")).unwrap();
    udp.set_multicast_interface(None).unwrap();
    assert_eq!(
        udp.set_multicast_interface(Some("not an address")),
        Err(Error::EINVAL)
    );
    drop(udp);
    close_clean(lp);
}

#[test]
fn ipv6_only_and_new_for_create_the_socket_up_front() {
    let lp = Loop::new().unwrap();
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    let udp = Udp::new_for(&lp, &addr).unwrap();
    udp.set_ttl(7).unwrap();
    let flags = UdpBindFlags {
        ipv6_only: true,
        ..UdpBindFlags::default()
    };
    udp.bind_with(addr, flags).unwrap();
    assert!(udp.sockname().unwrap().is_ipv6());
    let v4 = Udp::new(&lp).unwrap();
    assert_eq!(
        v4.bind_with("127.0.0.1:0".parse().unwrap(), flags),
        Err(Error::EINVAL)
    );
    drop((udp, v4));
    close_clean(lp);
}

#[test]
fn multicast_datagram_loops_back_to_a_group_member_on_loopback() {
    let lp = Loop::new().unwrap();
    let group = "239.255.42.99".parse().unwrap();
    let (member, inbox) = receiver(&lp, "0.0.0.0:0", 1024);
    member
        .set_membership(group, Some("127.0.0.1"), Membership::Join)
        .unwrap();
    let port = member.sockname().unwrap().port();

    let sender = Udp::new(&lp).unwrap();
    sender.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    sender.set_multicast_interface(Some("127.0.0.1")).unwrap();
    sender.set_multicast_loop(true).unwrap();
    sender.set_multicast_ttl(1).unwrap();
    let (sent, cb) = sent_flag();
    sender
        .send(b"to the group", Some(SocketAddr::new(group, port)), cb)
        .unwrap();
    run_until(&lp, LIMIT, || sent.get() && !inbox.borrow().is_empty());
    assert_eq!(inbox.borrow()[0].data, b"to the group");
    assert_eq!(inbox.borrow()[0].addr, Some(sender.sockname().unwrap()));

    member
        .set_membership(group, Some("127.0.0.1"), Membership::Leave)
        .unwrap();
    let not_member = member.set_membership(group, Some("127.0.0.1"), Membership::Leave);
    assert_eq!(
        not_member.unwrap_err().raw_os_error(),
        Some(libc::EADDRNOTAVAIL)
    );
    drop((member, sender));
    close_clean(lp);
}

#[test]
fn send_on_a_closing_handle_fails_with_ebadf() {
    let lp = Loop::new().unwrap();
    let server = Rc::new(RefCell::new(None::<Udp>));
    let udp = Udp::new(&lp).unwrap();
    udp.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = udp.sockname().unwrap();
    let outcome = Rc::new(RefCell::new(None));
    let (s, o) = (server.clone(), outcome.clone());
    udp.recv_start(Vec::with_capacity, move |view, _| {
        // Close the owner from inside its own callback, then use the borrowed view.
        drop(s.borrow_mut().take());
        assert!(view.is_closing());
        let send = view.send(b"late", Some(addr), |_| panic!("never sent"));
        *o.borrow_mut() = Some((send, view.try_send(b"late", Some(addr))));
    })
    .unwrap();
    *server.borrow_mut() = Some(udp);
    let client = Udp::new(&lp).unwrap();
    client.try_send(b"wake up", Some(addr)).unwrap();
    run_until(&lp, LIMIT, || outcome.borrow().is_some());
    let (send, try_send) = outcome.borrow_mut().take().unwrap();
    assert_eq!(send, Err(Error::EBADF));
    assert_eq!(try_send, Err(Error::EBADF));
    assert_eq!(lp.live_requests(), 0);
    drop(client);
    close_clean(lp);
}

#[test]
fn dropping_the_handle_still_completes_its_queued_send() {
    let lp = Loop::new().unwrap();
    let (server, _inbox) = receiver(&lp, "127.0.0.1:0", 1024);
    let client = Udp::new(&lp).unwrap();
    let done = Rc::new(RefCell::new(None));
    let d = done.clone();
    client
        .send(
            vec![7u8; 512],
            Some(server.sockname().unwrap()),
            move |res| *d.borrow_mut() = Some(res),
        )
        .unwrap();
    drop(client);
    run_until(&lp, LIMIT, || done.borrow().is_some());
    // Sent before the close (libuv tries at once) or cancelled by it: either way reported.
    let res = done.borrow_mut().take().unwrap();
    assert!(res.is_ok() || res == Err(Error::ECANCELED), "{res:?}");
    drop(server);
    close_clean(lp);
}
