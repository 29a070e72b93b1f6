//! Helpers shared by gruvi-http's integration tests: a clean Hub, a server on a free port,
//! raw connections and a response reader built on the crate's own parser.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::time::Duration;

use fiber_core::Hub;
use gruvi_http::http::{HeaderMap, Method, Request, Response};
use gruvi_http::{Body, Event, Incoming, Limits, Parser, Server, ServerConfig};
use gruvi_stream::TcpStream;

/// Runs `f` with a fresh Hub on this thread, then closes the Hub and asserts that no libuv
/// handle was left open.
pub fn run_clean<T>(f: impl FnOnce() -> T) -> T {
    let hub = Hub::current();
    let value = f();
    assert_eq!(hub.close(), 0, "libuv handles left open");
    value
}

/// A server with `config` on 127.0.0.1 and a free port, and its address.
pub fn serve(
    config: ServerConfig,
    handler: impl Fn(Request<Incoming>) -> Response<Body> + 'static,
) -> (Server, String) {
    let server = Server::with_config(handler, config);
    server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.addresses()[0].to_string();
    (server, addr)
}

/// The two shapes of handler a server runs: one that returns its response
/// ([`Server::with_config`]) and one that fills in a response the server reuses
/// ([`Server::in_place_with_config`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Owned,
    InPlace,
}

/// A server of `shape` with `config` on 127.0.0.1 and a free port, and its address. The
/// handler is written in place; as an owned handler it fills in a fresh response that it then
/// returns, so that both shapes run the same code.
pub fn serve_as(
    shape: Shape,
    config: ServerConfig,
    handler: impl Fn(&mut Request<Incoming>, &mut Response<Body>) + 'static,
) -> (Server, String) {
    let server = match shape {
        Shape::Owned => Server::with_config(
            move |mut request| {
                let mut response = Response::new(Body::empty());
                handler(&mut request, &mut response);
                response
            },
            config,
        ),
        Shape::InPlace => Server::in_place_with_config(handler, config),
    };
    server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.addresses()[0].to_string();
    (server, addr)
}

/// Defines each named test, a `fn(Shape)` in the enclosing module, twice: as
/// `owned::NAME` and as `in_place::NAME`.
#[macro_export]
macro_rules! for_both_shapes {
    ($($name:ident),* $(,)?) => {
        mod owned {
            $(#[test]
            fn $name() {
                super::$name(super::support::Shape::Owned)
            })*
        }
        mod in_place {
            $(#[test]
            fn $name() {
                super::$name(super::support::Shape::InPlace)
            })*
        }
    };
}

/// A raw connection with a generous read timeout (a hang fails the test instead).
pub fn connect(addr: &str) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn
}

/// Everything the server sends until it closes (a reset counts as a close).
pub fn read_all(conn: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0; 16 * 1024];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return out,
            Err(err) => panic!("reading the answer failed: {err}"),
        }
    }
}

/// Sends `wire` on a fresh connection and returns everything until the server closes.
pub fn roundtrip(addr: &str, wire: &[u8]) -> String {
    let mut conn = connect(addr);
    conn.write_all(wire).unwrap();
    String::from_utf8_lossy(&read_all(&mut conn)).into_owned()
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    pub keep_alive: bool,
}

/// Reads responses off a raw connection with the crate's own response parser.
pub struct Reader {
    parser: Parser,
    buf: Vec<u8>,
    eof: bool,
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            parser: Parser::responses(Limits::default()),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Reads the next final response to a request with `method` (interim ones are skipped);
    /// `None` at end of stream before any byte of it.
    pub fn next(&mut self, conn: &mut TcpStream, method: Method) -> io::Result<Option<Answer>> {
        self.parser.set_request_method(method);
        let mut answer: Option<Answer> = None;
        loop {
            let (used, event) = match self.parser.parse(&self.buf, usize::MAX) {
                Ok((used, event)) => (used, event),
                Err(err) => return Err(err.into()),
            };
            let mut ended = false;
            let need_more = matches!(event, Event::NeedMore);
            match event {
                Event::Response(head) => {
                    let head = *head;
                    answer = Some(Answer {
                        status: head.response.status().as_u16(),
                        headers: head.response.headers().clone(),
                        body: Vec::new(),
                        trailers: None,
                        keep_alive: head.keep_alive,
                    });
                }
                Event::Data(data) => answer.as_mut().unwrap().body.extend_from_slice(data),
                Event::End => ended = true,
                Event::Request(_) => unreachable!(),
                Event::NeedMore => {}
            }
            self.buf.drain(..used);
            if ended {
                let mut done = answer.take().unwrap();
                if done.status < 200 {
                    continue;
                }
                done.trailers = self.parser.take_trailers();
                return Ok(Some(done));
            }
            if need_more {
                if self.eof {
                    return match self.parser.finish()? {
                        Event::End => {
                            let mut done = answer.take().unwrap();
                            done.trailers = self.parser.take_trailers();
                            Ok(Some(done))
                        }
                        _ if answer.is_none() => Ok(None),
                        _ => Err(io::ErrorKind::UnexpectedEof.into()),
                    };
                }
                let mut chunk = [0; 64 * 1024];
                let n = conn.read(&mut chunk)?;
                if n == 0 {
                    self.eof = true;
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

impl Default for Reader {
    fn default() -> Reader {
        Reader::new()
    }
}

/// Whether the server has closed `conn` (it reads end of stream or a reset).
pub fn is_closed(conn: &mut TcpStream) -> bool {
    let mut buf = [0; 1];
    !matches!(conn.read(&mut buf), Ok(n) if n > 0)
}
