//! TCP streams on fibers: echo, half-close, timeouts, flow control, errors.

mod support;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{spawn, yield_now};
use gruvi_stream::{Limits, TcpListener, TcpStream};
use support::{random_bytes, run_clean};
use uv_sys_wrap::Stream as _;

/// An echo server fiber for one connection: echoes until EOF, then half-closes.
fn echo_once(listener: TcpListener) -> fiber_core::JoinHandle<io::Result<u64>> {
    spawn(move || {
        let (conn, _) = listener.accept()?;
        let copied = io::copy(&mut &conn, &mut &conn)?;
        conn.shutdown(Shutdown::Write)?;
        Ok(copied)
    })
}

#[test]
fn a_megabyte_echoes_with_a_concurrent_writer_and_reader() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(listener);
        let client = Rc::new(TcpStream::connect(addr).unwrap());
        let data = random_bytes(1 << 20, 7);
        let (c, d) = (client.clone(), data.clone());
        let writer = spawn(move || -> io::Result<()> {
            for chunk in d.chunks(10_000) {
                (&*c).write_all(chunk)?;
            }
            c.shutdown(Shutdown::Write)
        });
        let mut back = Vec::new();
        (&*client).read_to_end(&mut back).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(server.join().unwrap().unwrap(), data.len() as u64);
        assert!(back == data, "echoed bytes differ");
    });
}

#[test]
fn connect_resolves_localhost_and_reports_refusal() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = echo_once(listener);
        let mut client = TcpStream::connect(("localhost", port)).unwrap();
        client.write_all(b"x").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"x");
        server.join().unwrap().unwrap();
        // Nobody listens there any more.
        let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

/// `connect` tries the addresses in turn: one that refuses is passed over for the next, and
/// with every one refusing the last refusal is the error.
#[test]
fn connect_falls_back_to_the_next_address_when_one_refuses() {
    run_clean(|| {
        // A port nobody listens on any more.
        let gone = TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = gone.local_addr().unwrap();
        gone.close();
        drop(gone);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let live = listener.local_addr().unwrap();
        let server = echo_once(listener);
        let mut client = TcpStream::connect(&[refused, live][..]).unwrap();
        assert_eq!(client.peer_addr().unwrap(), live);
        client.write_all(b"y").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"y");
        server.join().unwrap().unwrap();
        let err = TcpStream::connect(&[refused, refused][..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

/// `Duration::MAX` as a timeout means "no limit": connect, read and write waits do not
/// overflow the clock (which panicked).
#[test]
fn the_longest_timeouts_mean_no_limit() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(listener);
        let client = Rc::new(TcpStream::connect_timeout(&addr, Duration::MAX).unwrap());
        client.set_read_timeout(Some(Duration::MAX)).unwrap();
        client.set_write_timeout(Some(Duration::MAX)).unwrap();
        // In writes that wait for room, and reads that wait for bytes.
        let data = random_bytes(4 << 20, 11);
        let (c, d) = (client.clone(), data.clone());
        let writer = spawn(move || -> io::Result<()> {
            for chunk in d.chunks(256 * 1024) {
                (&*c).write_all(chunk)?;
            }
            c.shutdown(Shutdown::Write)
        });
        let mut back = Vec::new();
        (&*client).read_to_end(&mut back).unwrap();
        writer.join().unwrap().unwrap();
        assert!(back == data, "the echo differs");
        server.join().unwrap().unwrap();
    });
}

#[test]
fn a_read_timeout_fails_with_timed_out_and_the_stream_stays_usable() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(listener);
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let start = Instant::now();
        let mut buf = [0; 8];
        let err = client.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        client.write_all(b"still ok").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still ok");
        assert!(client.set_read_timeout(Some(Duration::ZERO)).is_err());
        client.shutdown(Shutdown::Both).unwrap();
        server.join().unwrap().unwrap();
    });
}

#[test]
fn a_slow_reader_pauses_the_sender_and_memory_stays_bounded() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let total = 8 << 20;
        let sender = spawn(move || -> io::Result<()> {
            let (conn, _) = listener.accept()?;
            conn.set_limits(Limits {
                write_high_water: 16 * 1024,
                ..Limits::default()
            });
            let chunk = vec![0xab; 64 * 1024];
            for _ in 0..total / chunk.len() {
                (&conn).write_all(&chunk)?;
                // The queue never grows far past its limit: the writer blocked instead.
                assert!(conn.as_uv()?.write_queue_size() <= 16 * 1024 + chunk.len());
            }
            conn.shutdown(Shutdown::Write)
        });
        let mut client = TcpStream::connect(addr).unwrap();
        let mut buf = vec![0; 4096];
        let mut got = 0;
        loop {
            // Read slowly: yield between reads so the sender runs against a full pipe.
            yield_now().unwrap();
            let n = client.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, total);
        sender.join().unwrap().unwrap();
    });
}

#[test]
fn dropping_a_stream_still_delivers_what_was_written() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = random_bytes(4 << 20, 3);
        let d = data.clone();
        let writer = spawn(move || -> io::Result<()> {
            let (mut conn, _) = listener.accept()?;
            conn.write_all(&d)?;
            drop(conn); // no flush: queued bytes must still go out
            Ok(())
        });
        let mut client = TcpStream::connect(addr).unwrap();
        writer.join().unwrap().unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        assert!(back == data);
    });
}

#[test]
fn writing_to_a_closed_peer_fails_with_broken_pipe_or_reset() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
        let chunk = vec![0; 64 * 1024];
        let err = (0..1000)
            .find_map(|_| client.write_all(&chunk).and_then(|()| client.flush()).err())
            .expect("writes to a closed peer must fail");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
    });
}

#[test]
fn a_blocked_accept_ends_when_the_listener_closes() {
    run_clean(|| {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let l = listener.clone();
        let acceptor = spawn(move || l.accept().map(|_| ()));
        yield_now().unwrap();
        listener.close();
        let err = acceptor.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    });
}

#[test]
fn binding_an_address_in_use_fails() {
    run_clean(|| {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = TcpListener::bind(first.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
fn closing_a_stream_unblocks_a_writer_waiting_on_a_full_queue() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Rc::new(TcpStream::connect(addr).unwrap());
        // The peer never reads, so the queue fills and the writer blocks.
        let (_peer, _) = listener.accept().unwrap();
        client.set_limits(Limits {
            write_high_water: 16 * 1024,
            ..Limits::default()
        });
        let c = client.clone();
        let writer = spawn(move || -> io::Result<()> {
            let chunk = vec![0u8; 256 * 1024];
            loop {
                (&*c).write_all(&chunk)?;
            }
        });
        while client.as_uv().unwrap().write_queue_size() <= 16 * 1024 {
            yield_now().unwrap();
        }
        yield_now().unwrap();
        client.close();
        let err = writer.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    });
}

#[test]
fn reading_pauses_at_the_high_water_mark_and_resumes_below_the_low_one() {
    use gruvi_stream::Connection;
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let total = 1 << 20;
        let writer = spawn(move || -> io::Result<()> {
            let (mut conn, _) = listener.accept()?;
            conn.write_all(&vec![7u8; total])?;
            conn.shutdown(Shutdown::Write)
        });
        let client = TcpStream::connect(addr).unwrap();
        let high = 32 * 1024;
        client.set_limits(Limits {
            read_high_water: high,
            read_low_water: 8 * 1024,
            ..Limits::default()
        });
        assert!(client.fill().unwrap());
        let buffered = || {
            let mut n = 0;
            client.with_buffered(&mut |b| n = b.len());
            n
        };
        // Let the writer push as much as it can: the buffer stops growing past the mark (plus
        // at most one read of 64 KiB that started below it).
        for _ in 0..200 {
            yield_now().unwrap();
            assert!(
                buffered() <= high + 64 * 1024,
                "buffered {} bytes",
                buffered()
            );
        }
        assert!(
            buffered() >= high,
            "reading paused only once the mark was reached"
        );
        // Draining below the low-water mark resumes reading: everything arrives.
        let mut got = 0;
        loop {
            let n = buffered();
            if n == 0 && !client.fill().unwrap() {
                break;
            }
            let n = buffered();
            client.consume(n);
            got += n;
        }
        assert_eq!(got, total);
        writer.join().unwrap().unwrap();
    });
}

/// Messages of sizes around the receive buffer's thresholds (the 2 KiB lent buffer, the 4 KiB
/// one kept, the 16 KiB read adopted whole, several reads of 64 KiB), each sent when the reader
/// has drained everything (read into the connection's own buffer) or only half of the last one
/// (read into the thread's spare and appended): every byte arrives once and in order.
#[test]
fn reads_into_empty_and_partly_read_buffers_keep_every_byte_in_order() {
    use gruvi_stream::Connection;
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sizes = [
            1, 40, 2047, 2048, 2049, 4095, 4096, 4097, 16383, 16384, 16385, 65536, 200_000, 3,
        ];
        let data = random_bytes(sizes.iter().sum::<usize>() * 2, 11);
        let d = data.clone();
        // Sends each message after the reader's one-byte go-ahead.
        let writer = spawn(move || -> io::Result<()> {
            let (mut conn, _) = listener.accept()?;
            let mut sent = 0;
            for size in sizes.iter().chain(sizes.iter()) {
                let mut go = [0u8];
                conn.read_exact(&mut go)?;
                conn.write_all(&d[sent..sent + size])?;
                sent += size;
            }
            conn.shutdown(Shutdown::Write)
        });
        let mut client = TcpStream::connect(addr).unwrap();
        // A lost byte fails the test instead of hanging it.
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let mut expected = 0;
        for (round, size) in sizes.iter().chain(sizes.iter()).enumerate() {
            // First pass: the buffer is empty when each message comes. Second pass: half of
            // the previous message is still unread.
            let keep = if round >= sizes.len() {
                (expected - got.len()) / 2
            } else {
                0
            };
            while expected - got.len() > keep {
                assert!(client.fill().unwrap(), "end of stream too early");
                let mut taken = 0;
                client.with_buffered(&mut |b| {
                    taken = b.len().min(expected - got.len() - keep);
                    got.extend_from_slice(&b[..taken]);
                });
                client.consume(taken);
            }
            client.write_all(b"g").unwrap();
            expected += size;
        }
        client.read_to_end(&mut got).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "received bytes differ");
    });
}

/// Counts what `notify_when_filled` tells.
struct Told(std::cell::Cell<u32>);

impl gruvi_stream::FillNotify for Told {
    fn filled(self: Rc<Self>) {
        self.0.set(self.0.get() + 1);
    }
}

/// Sleeps in 1 ms steps until `told` was told `n` times (at most 5 s).
fn wait_told(told: &Told, n: u32) {
    let start = Instant::now();
    while told.0.get() < n {
        assert!(start.elapsed() < Duration::from_secs(5), "never told");
        fiber_core::sleep(Duration::from_millis(1)).unwrap();
    }
}

#[test]
fn a_wait_without_a_fiber_is_told_of_bytes_the_end_and_a_close_once_each() {
    use gruvi_stream::Connection;
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let told = Rc::new(Told(std::cell::Cell::new(0)));

        // Bytes: told once; with bytes buffered, not registered (`fill` returns at once).
        assert!(conn.notify_when_filled(told.clone()).is_ok());
        // One registration at a time.
        assert!(conn.notify_when_filled(told.clone()).is_err());
        client.send(b"ping").unwrap();
        wait_told(&told, 1);
        assert!(conn.notify_when_filled(told.clone()).is_err());
        assert!(Connection::fill(&conn).unwrap());
        conn.with_buffered(&mut |data| assert_eq!(data, b"ping"));
        conn.consume(4);

        // End of stream: told; afterwards not registered (`fill` says end at once).
        assert!(conn.notify_when_filled(told.clone()).is_ok());
        client.shutdown(Shutdown::Write).unwrap();
        wait_told(&told, 2);
        assert!(!Connection::fill(&conn).unwrap());
        assert!(conn.notify_when_filled(told.clone()).is_err());
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        assert_eq!(told.0.get(), 2, "told once per registration");

        // A close: told at once, from the closing fiber.
        let (other, _) = {
            let _second = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            listener.accept().unwrap()
        };
        let told_close = Rc::new(Told(std::cell::Cell::new(0)));
        assert!(other.notify_when_filled(told_close.clone()).is_ok());
        Connection::close(&other);
        assert_eq!(told_close.0.get(), 1);
        assert!(other.notify_when_filled(told_close.clone()).is_err());
        // The registration was let go: only the test holds the counter.
        assert_eq!(Rc::strong_count(&told_close), 1);
    });
}

#[test]
fn incoming_connections_know_their_peer_when_asked() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let conn = listener.incoming().next().unwrap().unwrap();
        assert_eq!(conn.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(conn.local_addr().unwrap(), client.peer_addr().unwrap());
    });
}
