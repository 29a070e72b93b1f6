//! Writing new protocols: a `Framer` run by a `Dispatcher` over real connections: order,
//! one-byte feeds, flow control by queue depth, errors, routing replies past a blocked handler.

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{SwitchBack, spawn, yield_now};
use gruvi_stream::{
    DEFAULT_MAX_MESSAGE_SIZE, Dispatcher, Framer, QueueLimits, Stream, TcpListener, TcpStream,
};
use support::run_clean;

/// Newline-terminated lines, without the newline; a line starting with `!` is bad input.
struct Lines;

impl Framer for Lines {
    type Message = Vec<u8>;
    type Error = io::Error;

    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
        if buf[0] == b'!' {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad line"));
        }
        Ok(buf
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| (buf[..i].to_vec(), i + 1)))
    }
}

fn tcp_pair() -> (Rc<Stream<TcpStream>>, Rc<Stream<TcpStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (Rc::new(Stream::new(client)), Rc::new(Stream::new(server)))
}

/// Writes `data` from a new fiber, `chunk` bytes at a time, then sends end of stream.
fn send(stream: Rc<Stream<TcpStream>>, data: Vec<u8>, chunk: usize) {
    spawn(move || -> io::Result<()> {
        stream.connection().set_nodelay(true)?;
        for piece in data.chunks(chunk) {
            stream.write_all(piece)?;
            stream.flush()?;
            if chunk == 1 {
                yield_now().unwrap();
            }
        }
        stream.write_eof()
    });
}

fn numbered(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("message {i}\n").into_bytes())
        .collect()
}

#[test]
fn messages_are_handled_in_order_until_end_of_stream() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        send(client, numbered(1000), 4096);
        let mut seen = Vec::new();
        Dispatcher::new(Lines)
            .run(server, |line| {
                seen.push(String::from_utf8(line).unwrap());
                Ok(())
            })
            .unwrap();
        let expected: Vec<String> = (0..1000).map(|i| format!("message {i}")).collect();
        assert_eq!(seen, expected);
    });
}

#[test]
fn messages_fed_one_byte_at_a_time_arrive_whole() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        send(client, b"one\ntwo\n\nthree\n".to_vec(), 1);
        let mut seen = Vec::new();
        Dispatcher::new(Lines)
            .run(server, |line| {
                seen.push(line);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [&b"one"[..], b"two", b"", b"three"]);
    });
}

#[test]
fn the_reader_stops_while_the_queue_is_at_its_high_water_mark() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        send(client, numbered(2000), 64 * 1024);
        let limits = QueueLimits {
            high_water: 8,
            low_water: 2,
        };
        let decoded = Rc::new(Cell::new(0usize));
        let d = decoded.clone();
        let mut handled = 0usize;
        Dispatcher::new(Lines)
            .queue_limits(limits)
            .route(move |line| {
                d.set(d.get() + 1);
                Some(line)
            })
            .run(server, |_| {
                handled += 1;
                // Decoded but not yet handled (this one included): never past the limit,
                // although all 2000 messages were sent at once.
                let waiting = decoded.get() - handled + 1;
                assert!(waiting <= 8, "{waiting} messages queued");
                // Let the reader run as far as it is allowed to.
                yield_now().unwrap();
                Ok(())
            })
            .unwrap();
        assert_eq!(handled, 2000);
    });
}

/// Waits until `stream` has buffered `len` bytes (and nothing more needs to be read for them).
fn wait_buffered(stream: &Stream<TcpStream>, len: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    // The first fill starts reading; it goes on while the loop runs.
    stream.fill().unwrap();
    while stream.with_buffered(<[u8]>::len) < len {
        assert!(Instant::now() < deadline, "the peer's bytes did not arrive");
        fiber_core::sleep(Duration::from_millis(2)).unwrap();
    }
}

#[test]
fn the_reader_resumes_exactly_at_the_low_water_mark() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let data = numbered(200);
        client.write_all(&data).unwrap();
        client.write_eof().unwrap();
        // Everything is buffered before dispatching: the reader never waits for the socket,
        // so only the queue limits decide when it reads.
        wait_buffered(&server, data.len());
        let limits = QueueLimits {
            high_water: 8,
            low_water: 2,
        };
        // How many messages were queued when each was decoded.
        let depths = Rc::new(RefCell::new(Vec::new()));
        let handled = Rc::new(Cell::new(0usize));
        let (d, h) = (depths.clone(), handled.clone());
        Dispatcher::new(Lines)
            .queue_limits(limits)
            .route(move |line| {
                let decoded = d.borrow().len();
                d.borrow_mut().push(decoded - h.get());
                Some(line)
            })
            .run(server, |_| {
                handled.set(handled.get() + 1);
                // Let the reader run whenever it is allowed to.
                yield_now().unwrap();
                Ok(())
            })
            .unwrap();
        assert_eq!(handled.get(), 200);
        // The reader fills the queue to the high-water mark, then waits until the handler
        // has brought it down to the low one (not lower, not higher), and fills it again.
        let mut expected: Vec<usize> = (0..8).collect();
        while expected.len() < 200 {
            expected.extend(2..8);
        }
        expected.truncate(200);
        assert_eq!(*depths.borrow(), expected);
    });
}

#[test]
fn bad_input_ends_the_dispatch_with_the_framers_error_after_the_good_messages() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        send(client, b"good\n!bad\nnever\n".to_vec(), 1024);
        let mut seen = Vec::new();
        let err = Dispatcher::new(Lines)
            .run(server, |line| {
                seen.push(line);
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(seen, [b"good".to_vec()]);
    });
}

#[test]
fn end_of_stream_inside_a_message_is_an_unexpected_eof() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        send(client, b"whole\ntruncat".to_vec(), 1024);
        let mut seen = Vec::new();
        let err = Dispatcher::new(Lines)
            .run(server, |line| {
                seen.push(line);
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(seen, [b"whole".to_vec()]);
    });
}

#[test]
fn a_message_longer_than_the_limit_is_rejected() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        send(client, vec![b'x'; 100_000], 4096);
        let err = Dispatcher::new(Lines)
            .max_message_size(10_000)
            .run(server, |_| Ok(()))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    });
}

/// A line of `len` bytes, newline included.
fn line_of(len: usize, byte: u8) -> Vec<u8> {
    let mut line = vec![byte; len - 1];
    line.push(b'\n');
    line
}

#[test]
fn a_message_of_exactly_the_limit_passes_and_one_byte_more_is_rejected() {
    // Sent whole, in pieces, and one byte at a time up to the last.
    for chunk in [1 << 20, 4096, 1000] {
        run_clean(|| {
            let (client, server) = tcp_pair();
            let mut data = line_of(10_000, b'a');
            data.extend(line_of(10_001, b'b'));
            data.extend(line_of(5, b'c'));
            send(client, data, chunk);
            let mut seen = Vec::new();
            let err = Dispatcher::new(Lines)
                .max_message_size(10_000)
                .run(server, |line| {
                    seen.push(line.len());
                    Ok(())
                })
                .unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidData,
                "chunk {chunk}: {err}"
            );
            assert_eq!(
                err.to_string(),
                "a message is longer than the limit of 10000 bytes"
            );
            // The message at the limit was handled (the framer drops the newline).
            assert_eq!(seen, [9_999], "chunk {chunk}");
        });
    }
}

#[test]
fn the_default_message_limit_passes_a_message_of_exactly_its_size() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        let mut data = line_of(DEFAULT_MAX_MESSAGE_SIZE, b'a');
        data.extend(line_of(DEFAULT_MAX_MESSAGE_SIZE + 1, b'b'));
        send(client, data, 64 * 1024);
        let mut seen = Vec::new();
        let err = Dispatcher::new(Lines)
            .run(server, |line| {
                seen.push(line.len());
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(seen, [DEFAULT_MAX_MESSAGE_SIZE - 1]);
    });
}

#[test]
fn an_incomplete_message_at_the_limit_waits_and_its_last_byte_decides() {
    for (len, ok) in [(10_000, true), (10_001, false)] {
        run_clean(|| {
            // All but the newline, a pause, then the newline.
            let (client, server) = tcp_pair();
            let pause = Duration::from_millis(20);
            let writer = spawn(move || -> io::Result<()> {
                client.write_all(&vec![b'x'; len - 1])?;
                client.flush()?;
                fiber_core::sleep(pause).unwrap();
                client.write_all(b"\n")?;
                client.write_eof()
            });
            let start = Instant::now();
            let mut seen = Vec::new();
            let result = Dispatcher::new(Lines)
                .max_message_size(10_000)
                .run(server, |line| {
                    seen.push(line.len());
                    Ok(())
                });
            // Not refused before the last byte came.
            assert!(start.elapsed() >= pause, "{len}: {result:?}");
            if ok {
                result.unwrap();
                assert_eq!(seen, [9_999]);
            } else {
                assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidData);
                assert!(seen.is_empty());
            }
            writer.join().unwrap().unwrap();
        });
    }
}

#[test]
fn a_handler_error_stops_the_reader_and_leaves_the_connection_open() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        client.write_all(b"stop\nafter\n").unwrap();
        let err = Dispatcher::new(Lines)
            .run(server.clone(), |line| {
                assert_eq!(line, b"stop");
                Err(io::Error::other("handler gave up"))
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "handler gave up");
        // The connection is still usable by its owner.
        server.write_all(b"bye\n").unwrap();
        assert_eq!(client.readline(None).unwrap(), b"bye\n");
    });
}

#[test]
fn a_routed_reply_reaches_a_handler_blocked_on_it() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        // The peer sends a request, then the reply to the server's own question.
        client.write_all(b"request\n").unwrap();
        let waiting: Rc<RefCell<Option<fiber_core::Callback<Vec<u8>>>>> =
            Rc::new(RefCell::new(None));
        let w = waiting.clone();
        let s = server.clone();
        let c = client.clone();
        let mut answers = Vec::new();
        let result = Dispatcher::new(Lines)
            .route(move |line| {
                if line.starts_with(b"reply") {
                    if let Some(waiter) = w.borrow_mut().take() {
                        waiter.call(line);
                    }
                    return None;
                }
                Some(line)
            })
            .run(server, |line| {
                assert_eq!(line, b"request");
                // Ask the peer something and block until the reader routes its reply here.
                let sb = SwitchBack::new();
                *waiting.borrow_mut() = Some(sb.callback());
                s.write_all(b"question\n")?;
                assert_eq!(c.readline(None)?, b"question\n");
                c.write_all(b"reply 42\n")?;
                answers.push(sb.wait().map_err(io::Error::from)?);
                c.write_eof()
            });
        result.unwrap();
        assert_eq!(answers, [b"reply 42".to_vec()]);
    });
}

/// A framer with a bug: it panics on a `?`.
struct Buggy;

impl Framer for Buggy {
    type Message = Vec<u8>;
    type Error = io::Error;

    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
        assert_ne!(buf[0], b'?', "Buggy met a question mark");
        Lines.decode(buf)
    }
}

#[test]
fn a_panic_in_the_framer_reaches_the_caller_of_run() {
    run_clean(|| {
        let (client, server) = tcp_pair();
        send(client, b"fine\n?\n".to_vec(), 1024);
        let caller = spawn(move || Dispatcher::new(Buggy).run(server, |_| Ok(())));
        let err = caller.join().unwrap_err();
        assert!(err.is_panic(), "{err}");
    });
}
