//! The tour's first step: the libuv layer, callbacks on one event loop.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use gruvi::uv::{
    AddrInfoHints, Async, Error, Handle, Loop, Pipe, Process, ProcessOptions, RunMode,
    StdioContainer, Stream, Tcp, Timer, Udp, getaddrinfo,
};

/// Runs the libuv-layer demos on a loop of their own.
pub fn tour() -> Result<(), Error> {
    println!("[uv] the libuv layer: callbacks on one event loop");
    let lp = Loop::new()?;
    timer(&lp)?;
    tcp_echo(&lp)?;
    udp(&lp)?;
    child_process(&lp)?;
    lookup(&lp)?;
    wakeup_from_thread(&lp)?;
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
        conn.read_start(Vec::with_capacity, |conn, data| match data {
            Ok(bytes) => conn
                .write(bytes, |r| r.expect("echo write"))
                .expect("write"),
            Err(_) => conn.read_stop().expect("read_stop"),
        })
        .expect("read_start");
        c.borrow_mut().push(conn);
    })?;

    let client = Tcp::new(lp)?;
    let reply = Rc::new(RefCell::new(Vec::new()));
    let r = reply.clone();
    let message = b"hello from the tour";
    client.connect(addr, |res| res.expect("connect"))?;
    client.write(&message[..], |res| res.expect("client write"))?;
    client.read_start(Vec::with_capacity, move |client, data| {
        let bytes = data.expect("client read");
        r.borrow_mut().extend_from_slice(&bytes);
        if r.borrow().len() == message.len() {
            println!(
                "  tcp: client got its echo back: {:?}",
                String::from_utf8_lossy(&r.borrow())
            );
            client.read_stop().expect("read_stop");
        }
    })?;
    // Run until the echo is back, then close everything.
    while reply.borrow().len() < message.len() {
        lp.run(RunMode::Once);
    }
    drop((server, client, conns));
    lp.run(RunMode::Default);
    Ok(())
}

/// A datagram to ourselves.
fn udp(lp: &Loop) -> Result<(), Error> {
    let receiver = Udp::new(lp)?;
    receiver.bind("127.0.0.1:0".parse().unwrap())?;
    receiver.recv_start(Vec::with_capacity, |receiver, datagram| {
        let datagram = datagram.expect("recv");
        println!(
            "  udp: got {:?} from {}",
            String::from_utf8_lossy(&datagram.data),
            datagram.addr.expect("sender")
        );
        receiver.recv_stop().expect("recv_stop");
    })?;
    let sender = Udp::new(lp)?;
    sender.send(&b"a datagram"[..], Some(receiver.sockname()?), |r| {
        r.expect("send")
    })?;
    lp.run(RunMode::Default);
    Ok(())
}

/// A child process whose output comes back through a pipe.
fn child_process(lp: &Loop) -> Result<(), Error> {
    let out = Pipe::new(lp)?;
    let options = ProcessOptions::new("/bin/sh")
        .args(["-c", "echo hello from $0, pid $$"])
        .stdout(StdioContainer::CreatePipe {
            pipe: &out,
            readable: false,
            writable: true,
            nonblock: false,
        });
    let child = Process::spawn(lp, &options, |_, status, signal| {
        println!("  process: exited with status {status}, signal {signal}");
    })?;
    println!("  process: spawned /bin/sh as pid {}", child.pid());
    out.read_start(Vec::with_capacity, |_, data| {
        if let Ok(bytes) = data {
            print!("  process: said {}", String::from_utf8_lossy(&bytes));
        }
    })?;
    lp.run(RunMode::Default);
    drop((child, out));
    lp.run(RunMode::Default);
    Ok(())
}

/// A name lookup on libuv's thread pool.
fn lookup(lp: &Loop) -> Result<(), Error> {
    let stream_hints = AddrInfoHints {
        socktype: libc::SOCK_STREAM,
        ..AddrInfoHints::default()
    };
    getaddrinfo(lp, Some("localhost"), Some("80"), stream_hints, |res| {
        let addrs: Vec<String> = res
            .expect("lookup")
            .iter()
            .map(|a| a.addr.to_string())
            .collect();
        println!("  getaddrinfo: localhost:80 is {}", addrs.join(", "));
    })?;
    lp.run(RunMode::Default);
    Ok(())
}

/// Another thread wakes the loop.
fn wakeup_from_thread(lp: &Loop) -> Result<(), Error> {
    let wakeup = Async::new(lp, |a| {
        println!("  async: the loop was woken from another thread");
        a.unref();
    })?;
    let sender = wakeup.sender();
    std::thread::spawn(move || sender.send().expect("send"))
        .join()
        .expect("thread");
    lp.run(RunMode::Default);
    Ok(())
}
