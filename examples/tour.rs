//! The tour: a short demo of every layer built so far, printing what each step did.
//!
//! Run it with `ci/tour` (or `cargo run --release --example tour`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use gruvi::uv::{Error, Handle, Loop, RunMode, Stream, Tcp, Timer};

fn main() -> Result<(), Error> {
    println!("Gruvi for Rust: the tour");
    println!();
    println!("[uv] the libuv layer: callbacks on one event loop");
    let lp = Loop::new()?;
    timer(&lp)?;
    tcp_echo(&lp)?;
    let left = lp.close()?;
    println!("  loop closed, {left} handles left open, nothing leaked");
    Ok(())
}

/// A one-shot timer.
fn timer(lp: &Loop) -> Result<(), Error> {
    let timer = Timer::new(lp)?;
    // Timeouts count from the loop's cached time: refresh it first.
    lp.update_time();
    let started = Instant::now();
    timer.start(25, 0, move |_| {
        println!(
            "  timer: fired after {} ms (asked for 25 ms)",
            started.elapsed().as_millis()
        );
    })?;
    lp.run(RunMode::Default);
    Ok(())
}

/// An echo server and a client on loopback, all callbacks.
fn tcp_echo(lp: &Loop) -> Result<(), Error> {
    let server = Tcp::new(lp)?;
    server.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = server.sockname()?;
    println!("  tcp: echo server listening on {addr}");
    let conns = Rc::new(RefCell::new(Vec::new()));
    let c = conns.clone();
    server.listen(16, move |server, status| {
        if let Err(err) = status {
            eprintln!("  tcp: accept failed: {err}");
            return;
        }
        let conn = Tcp::new(&server.loop_handle()).expect("tcp handle");
        server.accept(&conn).expect("accept");
        println!("  tcp: server accepted {}", conn.peername().expect("peer"));
        conn.read_start(
            |suggested| Vec::with_capacity(suggested),
            |conn, data| match data {
                Ok(bytes) => conn
                    .write(bytes, |r| r.expect("echo write"))
                    .expect("write"),
                Err(_) => conn.read_stop().expect("read_stop"),
            },
        )
        .expect("read_start");
        c.borrow_mut().push(conn);
    })?;

    let client = Tcp::new(lp)?;
    let reply = Rc::new(RefCell::new(Vec::new()));
    let r = reply.clone();
    let message = b"hello from the tour";
    client.connect(addr, |res| res.expect("connect"))?;
    client.write(&message[..], |res| res.expect("client write"))?;
    client.read_start(
        |suggested| Vec::with_capacity(suggested),
        move |client, data| {
            let bytes = data.expect("client read");
            r.borrow_mut().extend_from_slice(&bytes);
            if r.borrow().len() == message.len() {
                println!(
                    "  tcp: client got its echo back: {:?}",
                    String::from_utf8_lossy(&r.borrow())
                );
                client.read_stop().expect("read_stop");
            }
        },
    )?;
    // Run until the echo is back, then close everything.
    while reply.borrow().len() < message.len() {
        lp.run(RunMode::Once);
    }
    drop((server, client, conns));
    lp.run(RunMode::Default);
    Ok(())
}
