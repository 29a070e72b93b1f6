//! The buffered `Stream` (Gruvi's test_stream): reads of n bytes, of what is there, of lines;
//! data, then end of stream, then errors; writes; flow control.

mod support;

use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use fiber_core::{Hub, SwitchBack, spawn, yield_now};
use gruvi_stream::{Limits, Stream, TcpListener, TcpStream, UnixStream};
use support::{random_bytes, run_clean};
use uv_sys_wrap::{Stream as _, Tcp};

/// A connected pair of TCP streams on this thread's Hub.
fn tcp_pair() -> (Stream<TcpStream>, Stream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (Stream::new(client), Stream::new(server))
}

/// Connects a raw libuv TCP handle to `addr`, writes `data`, optionally sends end of stream,
/// then resets the connection (RST).
fn write_then_reset(addr: std::net::SocketAddr, data: &'static [u8], eof_first: bool) {
    let tcp = Tcp::new(&Hub::current().loop_handle()).unwrap();
    let sb = SwitchBack::new();
    let done = sb.callback();
    tcp.connect(addr, move |r| {
        done.call(r);
    })
    .unwrap();
    sb.wait().unwrap().unwrap();
    assert_eq!(tcp.try_write(data).unwrap(), data.len());
    if eof_first {
        let sb = SwitchBack::new();
        let done = sb.callback();
        tcp.shutdown(move |r| {
            done.call(r);
        })
        .unwrap();
        sb.wait().unwrap().unwrap();
    }
    tcp.close_reset().unwrap();
}

#[test]
fn read_bytes_returns_exactly_n_bytes_and_waits_for_the_rest() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let writer = spawn(move || -> io::Result<()> {
            server.write_all(b"hello")?;
            yield_now().unwrap();
            server.write_all(b", world")?;
            server.write_eof()
        });
        assert_eq!(client.read_bytes(3).unwrap(), b"hel");
        // Only "lo" may be there yet: read_bytes waits for all 9.
        assert_eq!(client.read_bytes(9).unwrap(), b"lo, world");
        assert_eq!(client.read_bytes(0).unwrap(), b"");
        writer.join().unwrap().unwrap();
    });
}

#[test]
fn bytes_fed_one_at_a_time_read_the_same() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        client.connection().set_nodelay(true).unwrap();
        let text = b"first line\nsecond\n\nlast, no newline";
        let writer = spawn(move || -> io::Result<()> {
            for byte in text {
                server.write_all(&[*byte])?;
                server.flush()?;
                yield_now().unwrap();
            }
            server.write_eof()
        });
        assert_eq!(client.readline(None).unwrap(), b"first line\n");
        assert_eq!(client.read_bytes(3).unwrap(), b"sec");
        assert_eq!(client.readline(None).unwrap(), b"ond\n");
        assert_eq!(client.readline(None).unwrap(), b"\n");
        assert_eq!(client.readline(None).unwrap(), b"last, no newline");
        assert_eq!(client.readline(None).unwrap(), b"");
        writer.join().unwrap().unwrap();
    });
}

#[test]
fn reading_until_end_of_stream_gives_a_short_read_then_nothing() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let data = random_bytes(300_000, 1);
        let d = data.clone();
        let writer = spawn(move || -> io::Result<()> {
            server.write_all(&d)?;
            server.write_eof()
        });
        let all = client.read_bytes(usize::MAX).unwrap();
        assert!(all == data, "read_bytes(MAX) reads to end of stream");
        assert_eq!(client.read_bytes(10).unwrap(), b"");
        assert_eq!(client.read1(10).unwrap(), b"");
        writer.join().unwrap().unwrap();
    });
}

#[test]
fn readline_with_a_limit_returns_at_most_limit_bytes() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        server.write_all(b"0123456789\nabc\n").unwrap();
        server.write_eof().unwrap();
        assert_eq!(client.readline(Some(4)).unwrap(), b"0123");
        assert_eq!(client.readline(Some(4)).unwrap(), b"4567");
        assert_eq!(client.readline(Some(4)).unwrap(), b"89\n");
        assert_eq!(client.readline(Some(4)).unwrap(), b"abc\n");
        assert_eq!(client.readline(Some(4)).unwrap(), b"");
    });
}

#[test]
fn readline_stops_at_a_chosen_delimiter() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        server.write_all(b"a;bb;tail").unwrap();
        server.write_eof().unwrap();
        assert_eq!(client.readline_delim(b';', None).unwrap(), b"a;");
        assert_eq!(client.readline_delim(b';', None).unwrap(), b"bb;");
        // A partial line at end of stream comes back as it is.
        assert_eq!(client.readline_delim(b';', None).unwrap(), b"tail");
        assert_eq!(client.readline_delim(b';', None).unwrap(), b"");
    });
}

#[test]
fn a_read_waits_until_data_arrives() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let client = Rc::new(client);
        let c = client.clone();
        let reader = spawn(move || c.readline(None));
        yield_now().unwrap();
        assert!(!reader.is_finished(), "the reader waits for a line");
        server.write_all(b"late\n").unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), b"late\n");
    });
}

#[test]
fn data_received_before_an_error_is_read_first_then_the_error() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = spawn(move || write_then_reset(addr, b"partial line", false));
        let stream = Stream::new(listener.accept().unwrap().0);
        peer.join().unwrap();
        // The read that collected bytes returns them; the next one reports the reset.
        assert_eq!(stream.readline(None).unwrap(), b"partial line");
        let err = stream.readline(None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        assert_eq!(
            stream.read1(1).unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
    });
}

#[test]
fn end_of_stream_takes_precedence_over_a_later_error() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = spawn(move || write_then_reset(addr, b"bye\n", true));
        let stream = Stream::new(listener.accept().unwrap().0);
        peer.join().unwrap();
        assert_eq!(stream.readline(None).unwrap(), b"bye\n");
        for _ in 0..3 {
            assert_eq!(stream.readline(None).unwrap(), b"", "end of stream, again");
        }
    });
}

#[test]
fn read1_returns_what_is_buffered_without_waiting_for_more() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        server.write_all(b"abcdef").unwrap();
        server.flush().unwrap();
        assert_eq!(client.read1(4).unwrap(), b"abcd");
        // Two bytes are left; read1 must not wait for the other two it may return.
        assert_eq!(client.read1(4).unwrap(), b"ef");
        server.write_eof().unwrap();
        assert_eq!(client.read1(4).unwrap(), b"");
    });
}

#[test]
fn readlines_and_iteration_yield_every_line() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        server
            .write_lines([&b"one\n"[..], b"two\n", b"three"])
            .unwrap();
        server.write_eof().unwrap();
        assert_eq!(client.readline(None).unwrap(), b"one\n");
        let rest: Vec<Vec<u8>> = (&client).into_iter().map(Result::unwrap).collect();
        assert_eq!(rest, [&b"two\n"[..], b"three"]);

        let (client, server) = tcp_pair();
        server.write_all(b"a\nb\n").unwrap();
        server.write_eof().unwrap();
        assert_eq!(client.readlines().unwrap(), [b"a\n", b"b\n"]);
    });
}

#[test]
fn write_and_write_lines_arrive_in_order_then_end_of_stream() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let data = random_bytes(1 << 20, 9);
        client.write_all(&data[..1000]).unwrap();
        client.write_lines(data[1000..].chunks(4096)).unwrap();
        client.write_eof().unwrap();
        let mut back = Vec::new();
        (&server).read_to_end(&mut back).unwrap();
        assert!(back == data);
        // Writing after end of stream fails.
        assert!(
            client
                .write_all(b"x")
                .and_then(|()| client.flush())
                .is_err()
        );
    });
}

#[test]
fn a_timed_out_readline_keeps_its_bytes_for_the_next_read() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        client
            .connection()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        server.write_all(b"half a ").unwrap();
        let err = client.readline(None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        server.write_all(b"line\n").unwrap();
        assert_eq!(client.readline(None).unwrap(), b"half a line\n");
    });
}

#[test]
fn std_bufread_and_the_streams_own_reads_share_one_buffer() {
    run_clean(|| {
        let (mut client, server) = tcp_pair();
        server.write_all(b"std line\nnative line\nrest").unwrap();
        server.write_eof().unwrap();
        let mut line = String::new();
        client.read_line(&mut line).unwrap();
        assert_eq!(line, "std line\n");
        // BufRead moved the rest out of the connection's buffer; the stream reads it first.
        assert_eq!(client.readline(None).unwrap(), b"native line\n");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"rest");
    });
}

#[test]
fn a_slow_reader_pauses_the_peer_and_the_buffer_stays_bounded() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let limits = Limits {
            read_high_water: 16 * 1024,
            read_low_water: 4 * 1024,
            write_high_water: 16 * 1024,
        };
        client.connection().set_limits(limits);
        server.connection().set_limits(limits);
        let total = 4 << 20;
        let writer = spawn(move || -> io::Result<()> {
            let chunk = vec![7; 32 * 1024];
            for _ in 0..total / chunk.len() {
                server.write_all(&chunk)?;
                // Write flow control: the queue stays near its limit; the writer waited.
                let queued = server.connection().as_uv()?.write_queue_size();
                assert!(queued <= 16 * 1024 + chunk.len(), "{queued} bytes queued");
            }
            server.write_eof()
        });
        let mut got = 0;
        loop {
            yield_now().unwrap();
            // Read flow control: what is buffered stays within one read of the high mark.
            let buffered = client.with_buffered(<[u8]>::len);
            assert!(
                buffered <= 16 * 1024 + 64 * 1024,
                "{buffered} bytes buffered"
            );
            let chunk = client.read1(4096).unwrap();
            if chunk.is_empty() {
                break;
            }
            got += chunk.len();
        }
        assert_eq!(got, total);
        writer.join().unwrap().unwrap();
    });
}

#[test]
fn a_stream_works_over_a_unix_socket_and_as_dyn_connection() {
    run_clean(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let a: Rc<Stream> = Rc::new(Stream::new(a));
        let b: Rc<Stream> = Rc::new(Stream::new(b));
        a.write_all(b"over unix\n").unwrap();
        a.write_eof().unwrap();
        assert_eq!(b.readline(None).unwrap(), b"over unix\n");
        assert_eq!(b.readline(None).unwrap(), b"");
        assert!(
            b.connection()
                .as_any()
                .downcast_ref::<UnixStream>()
                .is_some()
        );
        let mut out = Vec::new();
        // std's Write on &Stream.
        Write::write_all(&mut &*b, b"std write").unwrap();
        b.close();
        (&*a).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"std write");
    });
}
