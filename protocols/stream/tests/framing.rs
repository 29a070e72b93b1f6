//! Writing new protocols: a `Framer` run by a `Dispatcher` over real connections: order,
//! one-byte feeds, flow control by queue depth, errors, routing replies past a blocked handler.

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use fiber_core::{SwitchBack, spawn, yield_now};
use gruvi_stream::{Dispatcher, Framer, QueueLimits, Stream, TcpListener, TcpStream};
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
