//! The server's side of the wire, driven with raw bytes (Gruvi's protocol tests): the
//! credentials byte, auth line rules, rejections, the auth timeout, pipelined auth, the
//! missing Hello, the message size limit at its boundary, garbage, a message fed one byte at a
//! time, and the message timeout (slowloris: a message or an authentication trickled byte by
//! byte is cut off, on the server and on a client). Every violation ends in a clean
//! disconnect.

mod support;

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi_dbus::{Config, Connection, Endpoint, Interface, Message, Server, parse_address};
use gruvi_stream::{Stream, UnixStream};
use support::run_clean;

const PATH: &str = "/com/example/Gruvi";
const IFACE: &str = "com.example.Gruvi";

fn server(config: Config) -> (Server, PathBuf, tempfile::TempDir) {
    let server = Server::builder().config(config).build();
    server
        .export(
            PATH,
            Interface::new(IFACE).method("Echo", ("text",), ("text",), |_, (text,): (String,)| {
                Ok((text,))
            }),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let address = server
        .listen(&format!("unix:dir={}", dir.path().display()))
        .unwrap();
    let Endpoint::UnixPath(path) = parse_address(&address).unwrap().remove(0).endpoint else {
        panic!("not a path: {address}");
    };
    (server, path, dir)
}

fn connect(path: &PathBuf) -> Stream<UnixStream> {
    let stream = Stream::new(UnixStream::connect(path).unwrap());
    stream
        .connection()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn uid_hex() -> String {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    hex::encode(uid.to_string())
}

/// Reads until the server closes the connection; returns what came.
fn read_to_close(stream: &Stream<UnixStream>) -> Vec<u8> {
    stream.read_bytes(usize::MAX).unwrap()
}

fn line(stream: &Stream<UnixStream>) -> String {
    String::from_utf8(stream.readline(Some(4096)).unwrap()).unwrap()
}

/// Authenticates with EXTERNAL and returns the GUID line.
fn authenticate(stream: &Stream<UnixStream>) {
    stream
        .write_all(format!("\0AUTH EXTERNAL {}\r\n", uid_hex()).as_bytes())
        .unwrap();
    assert!(line(stream).starts_with("OK "));
    stream.write_all(b"BEGIN\r\n").unwrap();
}

fn marshal(mut message: Message, serial: u32) -> Vec<u8> {
    message.set_serial(serial);
    let mut out = Vec::new();
    message
        .marshal(|bytes| {
            out.extend_from_slice(bytes);
            Ok::<(), ()>(())
        })
        .unwrap();
    out
}

fn hello() -> Vec<u8> {
    marshal(
        Message::new_method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
        )
        .unwrap(),
        1,
    )
}

fn echo(text: &str, serial: u32) -> Vec<u8> {
    marshal(
        Message::new_method_call("com.example", PATH, IFACE, "Echo")
            .unwrap()
            .append1(text),
        serial,
    )
}

/// Reads one message.
fn read_message(stream: &Stream<UnixStream>) -> Message {
    let mut bytes = stream.read_bytes(16).unwrap();
    assert_eq!(bytes.len(), 16, "the server closed the connection");
    let total = Message::demarshal_bytes_needed(&bytes).unwrap();
    bytes.extend(stream.read_bytes(total - 16).unwrap());
    Message::demarshal(&bytes).unwrap()
}

#[test]
fn a_missing_credentials_byte_closes_the_connection() {
    run_clean(|| {
        let (server, path, _dir) = server(Config::default());
        let stream = connect(&path);
        stream
            .write_all(format!("AUTH EXTERNAL {}\r\n", uid_hex()).as_bytes())
            .unwrap();
        assert_eq!(read_to_close(&stream), b"");
        server.close().unwrap();
    });
}

#[test]
fn non_ascii_and_over_long_auth_lines_close_the_connection() {
    run_clean(|| {
        let mut config = Config::default();
        config.max_auth_line = 64;
        let (server, path, _dir) = server(config);
        let stream = connect(&path);
        stream
            .write_all("\0AUTH EXTERNAL \u{e9}\r\n".as_bytes())
            .unwrap();
        assert_eq!(read_to_close(&stream), b"");
        // Exactly 64 bytes with CR LF is answered (a rejection); 65 closes.
        let stream = connect(&path);
        let at_limit = format!("AUTH BOGUS {}\r\n", "a".repeat(64 - 13));
        assert_eq!(at_limit.len(), 64);
        stream.write_all(b"\0").unwrap();
        stream.write_all(at_limit.as_bytes()).unwrap();
        assert_eq!(line(&stream), "REJECTED EXTERNAL\r\n");
        let over = format!("AUTH BOGUS {}\r\n", "a".repeat(64 - 12));
        stream.write_all(over.as_bytes()).unwrap();
        assert_eq!(read_to_close(&stream), b"");
        // A line without CR LF never ends: a long one is cut off at the limit.
        let stream = connect(&path);
        stream.write_all(b"\0").unwrap();
        stream.write_all(&[b'A'; 200]).unwrap();
        assert_eq!(read_to_close(&stream), b"");
        server.close().unwrap();
    });
}

#[test]
fn too_many_rejections_close_the_connection() {
    run_clean(|| {
        let mut config = Config::default();
        config.max_auth_rejects = 3;
        let (server, path, _dir) = server(config);
        let stream = connect(&path);
        stream.write_all(b"\0").unwrap();
        for _ in 0..3 {
            stream.write_all(b"AUTH EXTERNAL 3939\r\n").unwrap();
            assert_eq!(line(&stream), "REJECTED EXTERNAL\r\n");
        }
        stream.write_all(b"AUTH EXTERNAL 3939\r\n").unwrap();
        assert_eq!(read_to_close(&stream), b"");
        server.close().unwrap();
    });
}

#[test]
fn a_client_that_does_not_finish_authenticating_is_dropped_after_the_timeout() {
    run_clean(|| {
        let mut config = Config::default();
        config.auth_timeout = Duration::from_millis(200);
        let (server, path, _dir) = server(config);
        let stream = connect(&path);
        let start = Instant::now();
        stream.write_all(b"\0AUTH").unwrap();
        assert_eq!(read_to_close(&stream), b"");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        server.close().unwrap();
    });
}

#[test]
fn pipelined_auth_with_fd_negotiation_and_hello_is_answered_in_order() {
    run_clean(|| {
        let (server, path, _dir) = server(Config::default());
        let stream = connect(&path);
        // What sd-bus (busctl) sends before reading anything.
        let mut all = format!(
            "\0AUTH EXTERNAL {}\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
            uid_hex()
        )
        .into_bytes();
        all.extend(hello());
        all.extend(echo("pipelined", 2));
        stream.write_all(&all).unwrap();
        assert_eq!(line(&stream), format!("OK {}\r\n", server.guid()));
        assert!(line(&stream).starts_with("ERROR"));
        let hello_reply = read_message(&stream);
        assert_eq!(hello_reply.get_reply_serial(), Some(1));
        assert_eq!(hello_reply.read1::<&str>().unwrap(), ":1.1");
        let echo_reply = read_message(&stream);
        assert_eq!(echo_reply.get_reply_serial(), Some(2));
        assert_eq!(echo_reply.read1::<&str>().unwrap(), "pipelined");
        server.close().unwrap();
    });
}

#[test]
fn a_first_message_other_than_hello_closes_the_connection() {
    run_clean(|| {
        let (server, path, _dir) = server(Config::default());
        let stream = connect(&path);
        authenticate(&stream);
        stream.write_all(&echo("no hello", 1)).unwrap();
        assert_eq!(read_to_close(&stream), b"");
        // A signal first is no better.
        let stream = connect(&path);
        authenticate(&stream);
        let signal = marshal(Message::new_signal(PATH, IFACE, "Early").unwrap(), 1);
        stream.write_all(&signal).unwrap();
        assert_eq!(read_to_close(&stream), b"");
        server.close().unwrap();
    });
}

#[test]
fn a_message_exactly_at_the_limit_passes_and_one_byte_over_closes() {
    run_clean(|| {
        let at_limit = echo(&"x".repeat(300), 2);
        let mut config = Config::default();
        config.max_message_size = at_limit.len();
        let (server, path, _dir) = server(config);
        let stream = connect(&path);
        authenticate(&stream);
        stream.write_all(&hello()).unwrap();
        read_message(&stream);
        stream.write_all(&at_limit).unwrap();
        assert_eq!(read_message(&stream).read1::<&str>().unwrap().len(), 300);
        let over = echo(&"x".repeat(301), 3);
        assert_eq!(over.len(), at_limit.len() + 1);
        // Only the fixed header is sent: the size is refused before the body arrives.
        stream.write_all(&over[..16]).unwrap();
        assert_eq!(read_to_close(&stream), b"");
        server.close().unwrap();
    });
}

#[test]
fn garbage_after_authentication_closes_the_connection() {
    run_clean(|| {
        let (server, path, _dir) = server(Config::default());
        for garbage in [&b"GARBAGE GARBAGE GARBAGE"[..], &[0xff; 64][..]] {
            let stream = connect(&path);
            authenticate(&stream);
            stream.write_all(&hello()).unwrap();
            read_message(&stream);
            stream.write_all(garbage).unwrap();
            assert_eq!(read_to_close(&stream), b"");
        }
        server.close().unwrap();
    });
}

#[test]
fn a_message_fed_one_byte_at_a_time_is_answered() {
    run_clean(|| {
        let (server, path, _dir) = server(Config::default());
        let stream = connect(&path);
        authenticate(&stream);
        let mut bytes = hello();
        bytes.extend(echo("slowly", 2));
        for byte in bytes {
            stream.write_all(&[byte]).unwrap();
            stream.flush().unwrap();
            fiber_core::yield_now().unwrap();
        }
        read_message(&stream);
        assert_eq!(read_message(&stream).read1::<&str>().unwrap(), "slowly");
        server.close().unwrap();
    });
}

#[test]
fn a_client_that_sends_without_reading_is_pushed_back_and_loses_nothing() {
    run_clean(|| {
        let (server, path, _dir) = server(Config::default());
        let stream = std::rc::Rc::new(connect(&path));
        authenticate(&stream);
        stream.write_all(&hello()).unwrap();
        read_message(&stream);
        // 40 MiB of calls, with nobody reading the replies: far more than the server buffers.
        const CALLS: u32 = 8_000;
        let text = "x".repeat(5 * 1024);
        let s = stream.clone();
        let writer = fiber_core::spawn(move || {
            for serial in 2..2 + CALLS {
                s.write_all(&echo(&text, serial)).unwrap();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            fiber_core::sleep(Duration::from_millis(20)).unwrap();
        }
        assert!(
            !writer.is_finished(),
            "the server read 40 MiB without being read from"
        );
        // Reading the replies lets everything through, in order.
        for serial in 2..2 + CALLS {
            let reply = read_message(&stream);
            assert_eq!(reply.get_reply_serial(), Some(serial));
        }
        writer.join().unwrap();
        server.close().unwrap();
    });
}

/// A little-endian method call with only PATH and MEMBER header fields (no interface, which
/// the `dbus` crate cannot leave out), built by hand as the specification lays it out.
fn call_without_interface(path: &str, member: &str, serial: u32) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, code: u8, sig: u8, value: &str) {
        while out.len() % 8 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&[code, 1, sig, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    let mut out = vec![b'l', 1, 0, 1];
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    field(&mut out, 1, b'o', path);
    field(&mut out, 3, b's', member);
    let fields = (out.len() - 16) as u32;
    out[12..16].copy_from_slice(&fields.to_le_bytes());
    while out.len() % 8 != 0 {
        out.push(0);
    }
    out
}

#[test]
fn calls_without_an_interface_reach_the_standard_and_exported_methods() {
    run_clean(|| {
        let (server, path, _dir) = server(Config::default());
        let stream = connect(&path);
        authenticate(&stream);
        stream.write_all(&hello()).unwrap();
        read_message(&stream);
        stream
            .write_all(&call_without_interface(PATH, "Introspect", 2))
            .unwrap();
        let xml = read_message(&stream);
        assert!(xml.read1::<&str>().unwrap().contains(IFACE));
        stream
            .write_all(&call_without_interface("/x", "Ping", 3))
            .unwrap();
        assert_eq!(
            read_message(&stream).msg_type(),
            gruvi_dbus::MessageType::MethodReturn
        );
        // Echo needs its argument: InvalidArgs, found without the interface.
        stream
            .write_all(&call_without_interface(PATH, "Echo", 4))
            .unwrap();
        let mut reply = read_message(&stream);
        let err = reply.as_result().unwrap_err();
        assert_eq!(err.name(), Some("org.freedesktop.DBus.Error.InvalidArgs"));
        server.close().unwrap();
    });
}

const MESSAGE_TIMEOUT: Duration = Duration::from_millis(300);

fn message_timeout_config() -> Config {
    let mut config = Config::default();
    config.message_timeout = MESSAGE_TIMEOUT;
    config.call_timeout = Duration::from_secs(5);
    config
}

/// Writes `head`, then one byte of `tail` every 50 ms until `stop` is set, `tail` runs out
/// or writing fails; returns when `head` went out, and the trickling fiber.
fn trickle(
    stream: &Rc<Stream<UnixStream>>,
    head: &[u8],
    tail: Vec<u8>,
    stop: &Rc<Cell<bool>>,
) -> (Instant, fiber_core::JoinHandle<()>) {
    stream.write_all(head).unwrap();
    let started = Instant::now();
    let (s, stop) = (stream.clone(), stop.clone());
    let fiber = fiber_core::spawn(move || {
        for byte in tail {
            fiber_core::sleep(Duration::from_millis(50)).unwrap();
            if stop.get() || s.write_all(&[byte]).is_err() {
                break;
            }
        }
    });
    (started, fiber)
}

/// An authenticated raw client that said Hello.
fn said_hello(path: &PathBuf) -> Rc<Stream<UnixStream>> {
    let stream = Rc::new(connect(path));
    authenticate(&stream);
    stream.write_all(&hello()).unwrap();
    assert_eq!(read_message(&stream).get_reply_serial(), Some(1));
    stream
}

#[test]
fn clients_trickling_or_stopping_inside_a_message_are_closed_after_message_timeout_while_others_are_answered()
 {
    run_clean(|| {
        let (server, path, _dir) = server(message_timeout_config());
        let slow = said_hello(&path);
        let message = echo(&"x".repeat(200), 2);
        let stop = Rc::new(Cell::new(false));
        // The fixed header and a little more, then a byte every 50 ms (12 s for the rest).
        let (started, trickler) = trickle(&slow, &message[..20], message[20..].to_vec(), &stop);
        // And one that sends half a message and then nothing.
        let silent = said_hello(&path);
        silent.write_all(&message[..message.len() / 2]).unwrap();
        let silent_started = Instant::now();
        // Another client is answered meanwhile, more than once.
        let other = said_hello(&path);
        for serial in 2..5 {
            other.write_all(&echo("meanwhile", serial)).unwrap();
            assert_eq!(read_message(&other).read1::<&str>().unwrap(), "meanwhile");
            fiber_core::sleep(Duration::from_millis(50)).unwrap();
        }
        assert_eq!(read_to_close(&slow), b"");
        let took = started.elapsed();
        stop.set(true);
        trickler.join().unwrap();
        assert!(took >= MESSAGE_TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        assert_eq!(read_to_close(&silent), b"");
        let took = silent_started.elapsed();
        assert!(took >= MESSAGE_TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        other.write_all(&echo("after", 5)).unwrap();
        assert_eq!(read_message(&other).read1::<&str>().unwrap(), "after");
        server.close().unwrap();
    });
}

#[test]
fn messages_sent_in_pieces_within_the_timeout_are_answered_each_with_its_own_clock() {
    run_clean(|| {
        let (server, path, _dir) = server(message_timeout_config());
        let stream = said_hello(&path);
        // Two messages, each in four pieces over about 200 ms (400 ms in all, more than the
        // timeout): the end of the first and the start of the second come in one write.
        let (first, second) = (echo("first", 2), echo("second", 3));
        let cut = |m: &[u8]| {
            let q = m.len() / 4;
            [&m[..q], &m[q..2 * q], &m[2 * q..3 * q], &m[3 * q..]].map(<[u8]>::to_vec)
        };
        let (a, b) = (cut(&first), cut(&second));
        let pieces = [
            a[0].clone(),
            a[1].clone(),
            a[2].clone(),
            [a[3].clone(), b[0].clone()].concat(),
            b[1].clone(),
            b[2].clone(),
            b[3].clone(),
        ];
        for piece in &pieces {
            stream.write_all(piece).unwrap();
            fiber_core::sleep(Duration::from_millis(65)).unwrap();
        }
        assert_eq!(read_message(&stream).read1::<&str>().unwrap(), "first");
        assert_eq!(read_message(&stream).read1::<&str>().unwrap(), "second");
        server.close().unwrap();
    });
}

#[test]
fn a_message_timeout_of_duration_max_is_no_limit() {
    run_clean(|| {
        let mut config = Config::default();
        config.message_timeout = Duration::MAX;
        let (server, path, _dir) = server(config);
        let stream = said_hello(&path);
        let message = echo("slow", 2);
        for piece in message.chunks(message.len() / 6) {
            stream.write_all(piece).unwrap();
            fiber_core::sleep(Duration::from_millis(30)).unwrap();
        }
        assert_eq!(read_message(&stream).read1::<&str>().unwrap(), "slow");
        server.close().unwrap();
    });
}

#[test]
fn an_idle_client_with_no_message_in_progress_stays_connected_past_the_timeout() {
    run_clean(|| {
        let (server, path, _dir) = server(message_timeout_config());
        let stream = said_hello(&path);
        stream.write_all(&echo("before", 2)).unwrap();
        assert_eq!(read_message(&stream).read1::<&str>().unwrap(), "before");
        fiber_core::sleep(MESSAGE_TIMEOUT * 3).unwrap();
        stream.write_all(&echo("after", 3)).unwrap();
        assert_eq!(read_message(&stream).read1::<&str>().unwrap(), "after");
        server.close().unwrap();
    });
}

#[test]
fn a_client_trickling_its_authentication_is_dropped_after_the_auth_timeout() {
    run_clean(|| {
        let mut config = Config::default();
        config.auth_timeout = MESSAGE_TIMEOUT;
        let (server, path, _dir) = server(config);
        let slow = Rc::new(connect(&path));
        let stop = Rc::new(Cell::new(false));
        // An auth line that never ends: a hex digit every 50 ms, well within the line limit.
        let (started, trickler) = trickle(&slow, b"\0AUTH EXTERNAL ", vec![b'3'; 200], &stop);
        let other = said_hello(&path);
        other.write_all(&echo("meanwhile", 2)).unwrap();
        assert_eq!(read_message(&other).read1::<&str>().unwrap(), "meanwhile");
        assert_eq!(read_to_close(&slow), b"");
        let took = started.elapsed();
        stop.set(true);
        trickler.join().unwrap();
        assert!(took >= MESSAGE_TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        server.close().unwrap();
    });
}

#[test]
fn a_server_trickling_a_reply_is_cut_off_by_the_clients_message_timeout() {
    run_clean(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let listener = gruvi_stream::UnixListener::bind(&path).unwrap();
        let stop = Rc::new(Cell::new(false));
        let s = stop.clone();
        // A server that authenticates the client, then trickles the reply to its Hello.
        let evil = fiber_core::spawn(move || {
            let stream = Rc::new(Stream::new(listener.accept().unwrap().0));
            assert_eq!(stream.read_bytes(1).unwrap(), b"\0");
            assert!(line(&stream).starts_with("AUTH EXTERNAL "));
            stream
                .write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
                .unwrap();
            assert_eq!(line(&stream), "BEGIN\r\n");
            let hello = read_message(&stream);
            let reply = marshal(hello.return_with_args((":1.1",)), 1);
            let (started, trickler) = trickle(&stream, &reply[..20], reply[20..].to_vec(), &s);
            assert_eq!(read_to_close(&stream), b"");
            let took = started.elapsed();
            s.set(true);
            trickler.join().unwrap();
            took
        });
        let address = format!("unix:path={}", path.display());
        let err = Connection::connect_with(&address, message_timeout_config()).unwrap_err();
        assert!(err.to_string().contains("message timeout"), "{err}");
        let took = evil.join().unwrap();
        assert!(took >= MESSAGE_TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
    });
}

/// A client that sends calls and never reads the replies is closed once a send of the
/// server's has waited `write_timeout` for room (it held its connection for ever), while
/// another client is answered.
#[test]
fn a_client_that_never_reads_its_replies_is_closed_after_the_write_timeout() {
    run_clean(|| {
        let mut config = Config::default();
        config.write_timeout = MESSAGE_TIMEOUT;
        let (server, path, _dir) = server(config);
        let deaf = said_hello(&path);
        let big = "x".repeat(200 * 1024);
        // Before the server can begin to wait.
        let start = Instant::now();
        for serial in 2..12 {
            deaf.write_all(&echo(&big, serial)).unwrap();
        }
        let other = said_hello(&path);
        other.write_all(&echo("meanwhile", 2)).unwrap();
        assert_eq!(read_message(&other).read1::<&str>().unwrap(), "meanwhile");
        while server.connections().len() > 1 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the deaf client stays"
            );
            fiber_core::sleep(Duration::from_millis(10)).unwrap();
        }
        assert!(start.elapsed() >= MESSAGE_TIMEOUT, "{:?}", start.elapsed());
        drop(other);
        server.close().unwrap();
    });
}
