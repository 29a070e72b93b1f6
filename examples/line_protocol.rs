//! Writing a new protocol: a line-based key/value server, in three parts.
//!
//! 1. A [`Framer`] turns bytes into messages, without any I/O: here each line is parsed into a
//!    [`Request`]. It is plain code over byte slices, tested at the bottom of this file by
//!    feeding it one byte at a time. Malformed requests become messages too (answered with an
//!    error), while a line longer than [`MAX_LINE`] is a framing error that ends the connection.
//! 2. A [`Dispatcher`] runs the framer on a connection: a reader fiber decodes requests and
//!    queues them, and the connection's fiber answers them in order. Reading pauses while the
//!    queue is full, so a client that sends faster than we answer is pushed back by TCP.
//! 3. A [`Server`] runs one such connection fiber per client.
//!
//! ```text
//! line_protocol [--listen ADDR]...   # serve until SIGINT (default 127.0.0.1:7001)
//! line_protocol --demo               # serve on a free port, talk to it, print, exit
//! ```
//!
//! The protocol: `SET key value`, `GET key`, `DEL key`, `KEYS`, each ending in `\n`; answers
//! `OK`, `VALUE value`, `NOT_FOUND`, `DELETED`, `KEYS k1 k2...` or `ERROR reason`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::rc::Rc;

use gruvi::fiber;
use gruvi::stream::{Address, Dispatcher, Framer, Server, Stream, connect};

#[path = "support/serve.rs"]
mod serve;

/// The longest request line, newline included.
const MAX_LINE: usize = 4096;

/// A decoded request.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Set(String, String),
    Get(String),
    Del(String),
    Keys,
    /// A line that is not a valid request; the reason is sent back.
    Invalid(String),
}

/// Request lines: `\n`-terminated (a `\r` before it is ignored), UTF-8, at most `MAX_LINE`
/// bytes.
struct RequestFramer;

impl Framer for RequestFramer {
    type Message = Request;
    type Error = io::Error;

    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Request, usize)>> {
        let Some(end) = buf.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
            if buf.len() >= MAX_LINE {
                // Bad input from the peer is an error, never a panic.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request line too long",
                ));
            }
            return Ok(None); // need more bytes
        };
        let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
        Ok(Some((parse(line), end + 1)))
    }
}

fn parse(line: &[u8]) -> Request {
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Invalid("not UTF-8".into());
    };
    let mut words = line.splitn(3, ' ');
    let command = words.next().unwrap_or_default().to_ascii_uppercase();
    let (key, rest) = (words.next(), words.next());
    match (command.as_str(), key, rest) {
        ("SET", Some(key), Some(value)) => Request::Set(key.into(), value.into()),
        ("GET", Some(key), None) => Request::Get(key.into()),
        ("DEL", Some(key), None) => Request::Del(key.into()),
        ("KEYS", None, None) => Request::Keys,
        _ => Request::Invalid(format!("cannot parse {line:?}")),
    }
}

type Store = Rc<RefCell<BTreeMap<String, String>>>;

/// Answers one request.
fn answer(store: &Store, request: Request) -> String {
    let mut store = store.borrow_mut();
    match request {
        Request::Set(key, value) => {
            store.insert(key, value);
            "OK".into()
        }
        Request::Get(key) => match store.get(&key) {
            Some(value) => format!("VALUE {value}"),
            None => "NOT_FOUND".into(),
        },
        Request::Del(key) => match store.remove(&key) {
            Some(_) => "DELETED".into(),
            None => "NOT_FOUND".into(),
        },
        Request::Keys => {
            let keys: Vec<&str> = store.keys().map(String::as_str).collect();
            format!("KEYS {}", keys.join(" ")).trim_end().into()
        }
        Request::Invalid(reason) => format!("ERROR {reason}"),
    }
}

/// The key/value server: one dispatcher per connection, one store for all.
fn kv_server() -> Server {
    let store: Store = Rc::default();
    Server::new(move |stream: Rc<Stream>| {
        let store = store.clone();
        let out = stream.clone();
        Dispatcher::new(RequestFramer).run(stream, |request| {
            let mut reply = answer(&store, request);
            reply.push('\n');
            out.write_all(reply.as_bytes())
        })
    })
}

/// Serves on a free port, sends a few requests as a client would, prints the exchange.
fn demo() -> io::Result<()> {
    let server = kv_server();
    server.listen(&"127.0.0.1:0".parse()?)?;
    let client = connect(&server.addresses()[0], None)?;
    for request in [
        "SET color blue",
        "SET size 42",
        "GET color",
        "DEL size",
        "KEYS",
        "FLY",
    ] {
        client.write_all(format!("{request}\n").as_bytes())?;
        let reply = client.readline(None)?;
        // A closed stdout (piped to `head`) is an error to report, not a panic.
        writeln!(
            io::stdout(),
            "> {request}\n< {}",
            String::from_utf8_lossy(&reply).trim_end()
        )?;
    }
    client.close();
    server.close()
}

fn serve(addrs: &[Address]) -> io::Result<()> {
    serve::serve_until_signal(&kv_server(), addrs)
}

fn main() -> ExitCode {
    let usage = || {
        eprintln!("usage: line_protocol [--listen ADDR]... | --demo");
        ExitCode::from(2)
    };
    let mut args = std::env::args().skip(1);
    let mut addrs = Vec::new();
    let mut run_demo = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--demo" => run_demo = true,
            "--listen" => match args.next().map(|a| a.parse::<Address>()) {
                Some(Ok(addr)) => addrs.push(addr),
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    if addrs.is_empty() {
        addrs.push(Address::Tcp("127.0.0.1".into(), 7001));
    }
    let result = fiber::run(|| if run_demo { demo() } else { serve(&addrs) });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("line_protocol: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` one byte at a time, the way a slow network delivers it.
    fn decode_bytewise(input: &[u8]) -> Vec<Request> {
        let (mut framer, mut pending, mut out) = (RequestFramer, Vec::new(), Vec::new());
        for &byte in input {
            pending.push(byte);
            while let Some((request, used)) = framer.decode(&pending).unwrap() {
                out.push(request);
                pending.drain(..used);
                if pending.is_empty() {
                    break;
                }
            }
        }
        assert!(pending.is_empty(), "a partial request was left");
        out
    }

    #[test]
    fn requests_decode_the_same_one_byte_at_a_time() {
        let requests = decode_bytewise(b"SET a 1 2\r\nget a\nDEL a\nKEYS\nnope\n");
        assert_eq!(
            requests,
            [
                Request::Set("a".into(), "1 2".into()),
                Request::Get("a".into()),
                Request::Del("a".into()),
                Request::Keys,
                Request::Invalid("cannot parse \"nope\"".into()),
            ]
        );
    }

    #[test]
    fn an_endless_line_is_a_framing_error() {
        let err = RequestFramer.decode(&[b'x'; MAX_LINE]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(RequestFramer.decode(b"GET partial").unwrap(), None);
    }

    #[test]
    fn the_store_answers_requests() {
        let store = Store::default();
        assert_eq!(answer(&store, parse(b"GET k")), "NOT_FOUND");
        assert_eq!(answer(&store, parse(b"SET k v")), "OK");
        assert_eq!(answer(&store, parse(b"GET k")), "VALUE v");
        assert_eq!(answer(&store, parse(b"KEYS")), "KEYS k");
        assert_eq!(answer(&store, parse(b"DEL k")), "DELETED");
        assert_eq!(answer(&store, parse(b"KEYS")), "KEYS");
    }
}
