//! TCP echo over loopback, IPv4 and IPv6, callback style.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Error, Handle, Loop, Stream, Tcp};

/// Starts an echo server on `addr`; returns it and the accepted connections.
fn echo_server(lp: &Loop, addr: SocketAddr) -> (Tcp, Rc<RefCell<Vec<Tcp>>>) {
    let server = Tcp::new(lp).unwrap();
    server.bind(addr).unwrap();
    let conns = Rc::new(RefCell::new(Vec::new()));
    let c = conns.clone();
    server
        .listen(16, move |server, status| {
            status.unwrap();
            let conn = Tcp::new(&server.loop_handle()).unwrap();
            server.accept(&conn).unwrap();
            conn.read_start(Vec::with_capacity, |conn, data| match data {
                Ok(bytes) => conn.write(bytes, |r| r.unwrap()).unwrap(),
                Err(e) if e.is_eof() => conn.shutdown(|_| {}).unwrap(),
                Err(e) => panic!("server read: {e}"),
            })
            .unwrap();
            c.borrow_mut().push(conn);
        })
        .unwrap();
    (server, conns)
}

fn echo_round_trip(addr: SocketAddr) {
    let lp = Loop::new().unwrap();
    let (server, conns) = echo_server(&lp, addr);
    let addr = server.sockname().unwrap();
    let client = Tcp::new(&lp).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let eof = Rc::new(RefCell::new(false));
    let (g, e) = (got.clone(), eof.clone());
    let connected = Rc::new(RefCell::new(false));
    let c = connected.clone();
    client
        .connect(addr, move |r| {
            r.expect("connect");
            *c.borrow_mut() = true;
        })
        .unwrap();
    run_until(&lp, LIMIT, || {
        *connected.borrow() && !conns.borrow().is_empty()
    });
    assert_eq!(client.peername().unwrap(), addr);
    assert_eq!(
        conns.borrow()[0].peername().unwrap(),
        client.sockname().unwrap()
    );
    client
        .read_start(Vec::with_capacity, move |_, data| match data {
            Ok(bytes) => g.borrow_mut().extend_from_slice(&bytes),
            Err(err) => {
                assert!(err.is_eof(), "{err}");
                *e.borrow_mut() = true;
            }
        })
        .unwrap();
    client.write(&b"hello "[..], |r| r.unwrap()).unwrap();
    client
        .write_vectored(vec![&b"wor"[..], &b"ld"[..]], |r| r.unwrap())
        .unwrap();
    client.shutdown(|r| r.unwrap()).unwrap();
    run_until(&lp, LIMIT, || *eof.borrow());
    assert_eq!(&*got.borrow(), b"hello world");
    drop((server, client, conns));
    close_clean(lp);
}

#[test]
fn echo_over_ipv4_loopback() {
    echo_round_trip("127.0.0.1:0".parse().unwrap());
}

#[test]
fn echo_over_ipv6_loopback() {
    echo_round_trip("[::1]:0".parse().unwrap());
}

#[test]
fn connection_refused_is_reported_to_the_connect_callback() {
    let lp = Loop::new().unwrap();
    // Bind without listening to get a port nobody accepts on.
    let holder = Tcp::new(&lp).unwrap();
    holder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = holder.sockname().unwrap();
    drop(holder);
    let client = Tcp::new(&lp).unwrap();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    client
        .connect(addr, move |res| *r.borrow_mut() = Some(res))
        .unwrap();
    run_until(&lp, LIMIT, || result.borrow().is_some());
    assert_eq!(
        result.borrow_mut().take().unwrap(),
        Err(Error::ECONNREFUSED)
    );
    drop(client);
    close_clean(lp);
}
