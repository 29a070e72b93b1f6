//! The buffered `Stream` (Gruvi's test_stream): reads of n bytes, of what is there, of lines;
//! data, then end of stream, then errors; writes; flow control.

mod support;

use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use fiber_core::{Hub, SwitchBack, spawn, yield_now};
use gruvi_stream::{
    Connection, DEFAULT_MAX_LINE, Limits, Stream, TcpListener, TcpStream, UnixStream,
};
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

/// The next line of `stream`'s iteration (a new iterator each time, as a handler would make).
fn next_line<C: Connection + ?Sized>(stream: &Stream<C>) -> Option<io::Result<Vec<u8>>> {
    stream.iter_lines().next()
}

#[test]
fn iteration_returns_a_line_of_exactly_max_line_bytes_and_rejects_one_byte_more() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        client.set_max_line(10);
        assert_eq!(client.max_line(), 10);
        // 10 bytes with the newline, then 11.
        server.write_all(b"123456789\n1234567890\nnext\n").unwrap();
        assert_eq!(next_line(&client).unwrap().unwrap(), b"123456789\n");
        let err = next_line(&client).unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "a line is longer than the limit of 10 bytes"
        );
        // Nothing is lost: the long line is still there, and so is what follows.
        assert_eq!(client.readline(None).unwrap(), b"1234567890\n");
        assert_eq!(next_line(&client).unwrap().unwrap(), b"next\n");

        // 10 bytes without a newline: the reader waits to see whether the line goes on.
        server.write_all(b"0123456789").unwrap();
        server.flush().unwrap();
        let s = Rc::new(server);
        let late = {
            let s = s.clone();
            spawn(move || -> io::Result<()> {
                fiber_core::sleep(Duration::from_millis(20)).unwrap();
                s.write_all(b"\n")
            })
        };
        let err = next_line(&client).unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        late.join().unwrap().unwrap();
        assert_eq!(client.readline(None).unwrap(), b"0123456789\n");

        // A last line without its newline: exactly 10 bytes is a line, at end of stream.
        s.write_all(b"abcdefghij").unwrap();
        s.write_eof().unwrap();
        let rest: Vec<Vec<u8>> = client.iter_lines().map(Result::unwrap).collect();
        assert_eq!(rest, [b"abcdefghij"]);

        // 11 bytes and end of stream: too long.
        let (client, server) = tcp_pair();
        client.set_max_line(10);
        server.write_all(b"abcdefghijk").unwrap();
        server.write_eof().unwrap();
        let err = client.readlines().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(client.read_bytes(100).unwrap(), b"abcdefghijk");
    });
}

#[test]
fn the_default_line_limit_is_max_line_bytes_newline_included() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        assert_eq!(client.max_line(), DEFAULT_MAX_LINE);
        let mut at_limit = vec![b'a'; DEFAULT_MAX_LINE - 1];
        at_limit.push(b'\n');
        let mut over = vec![b'b'; DEFAULT_MAX_LINE];
        over.push(b'\n');
        let s = Rc::new(server);
        let writer = {
            let (s, at_limit, over) = (s.clone(), at_limit.clone(), over.clone());
            spawn(move || -> io::Result<()> {
                s.write_all(&at_limit)?;
                s.write_all(&over)?;
                s.write_eof()
            })
        };
        let mut lines = (&client).into_iter();
        assert!(lines.next().unwrap().unwrap() == at_limit);
        let err = lines.next().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(lines.next().is_none(), "iteration ends after an error");
        writer.join().unwrap().unwrap();
        assert!(client.readline(None).unwrap() == over);
    });
}

#[test]
fn ten_megabytes_without_a_newline_leave_the_buffer_near_max_line() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let server = Rc::new(server);
        let writer = {
            let server = server.clone();
            spawn(move || -> io::Result<()> {
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..160 {
                    server.write_all(&chunk)?;
                }
                server.write_eof()
            })
        };
        let err = (&client).into_iter().next().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // The stream holds the first max_line bytes; the connection at most one read past its
        // high-water mark. The rest waits in the kernel and the peer's queue.
        assert_eq!(client.with_buffered(<[u8]>::len), DEFAULT_MAX_LINE);
        let mut in_connection = 0;
        client
            .connection()
            .with_buffered(&mut |data| in_connection = data.len());
        let limit = client.connection().limits().read_high_water + 64 * 1024;
        assert!(in_connection <= limit, "{in_connection} bytes buffered");
        // Give the peer time to push more: the buffers stay where they are.
        fiber_core::sleep(Duration::from_millis(50)).unwrap();
        assert_eq!(client.with_buffered(<[u8]>::len), DEFAULT_MAX_LINE);
        client
            .connection()
            .with_buffered(&mut |data| in_connection = data.len());
        assert!(in_connection <= limit, "{in_connection} bytes buffered");
        client.close();
        server.close();
        // The writer fails (or had finished): either way it ends.
        let _ = writer.join().unwrap();
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
