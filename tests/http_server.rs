//! `examples/http_server` driven by real clients: curl, Python's http.client, and raw sockets
//! (pipelining, concurrency, request smuggling). Every child process is killed and reaped
//! with a timeout, so nothing can hang.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use gruvi::http::http::{HeaderMap, Method};
use gruvi::http::{Event, Limits, Parser};
use support::{run_captured, start_server};

/// A response read off a raw socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Reads responses with the crate's own parser (itself table-tested).
struct Responses<'a> {
    conn: &'a mut TcpStream,
    parser: Parser,
    buf: Vec<u8>,
}

impl<'a> Responses<'a> {
    fn new(conn: &'a mut TcpStream) -> Responses<'a> {
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Responses {
            conn,
            parser: Parser::responses(Limits::default()),
            buf: Vec::new(),
        }
    }

    /// The next response to a request with `method`; `None` if the server closed first.
    fn next(&mut self, method: Method) -> Option<Answer> {
        self.parser.set_request_method(method);
        let mut answer: Option<Answer> = None;
        loop {
            let (used, event) = self
                .parser
                .parse(&self.buf, usize::MAX)
                .expect("a valid response");
            let need_more = matches!(event, Event::NeedMore);
            let mut ended = false;
            match event {
                Event::Response(head) => {
                    answer = Some(Answer {
                        status: head.response.status().as_u16(),
                        headers: head.response.headers().clone(),
                        body: Vec::new(),
                    })
                }
                Event::Data(data) => answer.as_mut().unwrap().body.extend_from_slice(data),
                Event::End => ended = true,
                _ => {}
            }
            self.buf.drain(..used);
            if ended {
                return answer;
            }
            if need_more {
                let mut chunk = [0; 65536];
                let n = self.conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    assert!(answer.is_none(), "the connection ended inside a response");
                    return None;
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

fn server() -> support::Server {
    start_server("http_server", &["--listen", "127.0.0.1:0"], 1)
}

fn curl(args: &[&str]) -> String {
    let (status, out) = run_captured(
        Command::new("curl")
            .args(["-sS", "--max-time", "30"])
            .args(args),
    );
    assert!(status.success(), "curl {args:?} failed: {out}");
    out
}

#[test]
fn curl_reuses_the_connection_for_keep_alive() {
    let server = server();
    let url = format!("http://{}/", server.addresses[0]);
    let (status, out) = run_captured(
        Command::new("sh")
            .arg("-c")
            .arg(r#"curl -sS -v --max-time 30 "$1" "$1" 2>&1"#)
            .arg("sh")
            .arg(&url),
    );
    assert!(status.success(), "{out}");
    assert_eq!(out.matches("Hello, World!").count(), 2, "{out}");
    assert!(
        out.contains("Re-using existing connection") || out.contains("Reusing existing"),
        "{out}"
    );
}

#[test]
fn curl_uploads_chunked_and_speaks_http_1_0_and_head() {
    let server = server();
    let base = format!("http://{}", server.addresses[0]);
    let dir = std::env::temp_dir().join(format!("gruvi-http-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("upload.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let echoed = dir.join("echoed.bin");
    curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "X-Echo: chunky",
        "--data-binary",
        &format!("@{}", file.display()),
        "-D",
        &dir.join("headers.txt").display().to_string(),
        "-o",
        &echoed.display().to_string(),
        &format!("{base}/echo"),
    ]);
    assert_eq!(std::fs::read(&echoed).unwrap(), data);
    let headers = std::fs::read_to_string(dir.join("headers.txt")).unwrap();
    assert!(
        headers.to_ascii_lowercase().contains("x-echo: chunky"),
        "{headers}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let out = curl(&["--http1.0", "-i", &format!("{base}/stream?n=3")]);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(!out.contains("transfer-encoding"), "{out}");
    assert!(out.ends_with("line 0\nline 1\nline 2\n"), "{out}");

    let out = curl(&["-I", &format!("{base}/")]);
    assert!(out.contains("content-length: 13\r\n"), "{out}");
    assert!(out.contains("content-type: text/plain\r\n"), "{out}");
    assert!(!out.contains("Hello"), "{out}");

    let out = curl(&["-i", &format!("{base}/status/418")]);
    assert!(out.starts_with("HTTP/1.1 418 "), "{out}");
    let out = curl(&["-i", &format!("{base}/nothing/here")]);
    assert!(out.starts_with("HTTP/1.1 404 "), "{out}");
}

/// Five POSTs of 0 to 4000 bytes and then a chunked GET, all on one connection.
const PY_HTTP_CLIENT: &str = r#"
import http.client, signal, sys
signal.alarm(60)
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
conn.connect()
sock = conn.sock
local = sock.getsockname()
for size in (0, 1000, 2000, 3000, 4000):
    body = bytes(i % 256 for i in range(size))
    conn.request("POST", "/echo", body=body, headers={"X-Echo": str(size)})
    r = conn.getresponse()
    got = r.read()
    assert r.status == 200, r.status
    assert got == body, (size, len(got))
    assert r.getheader("X-Echo") == str(size)
    assert conn.sock is sock and sock.getsockname() == local, "reconnected"
conn.request("GET", "/stream?n=100")
r = conn.getresponse()
assert r.getheader("Transfer-Encoding") == "chunked"
lines = r.read().decode().splitlines()
assert lines == ["line %d" % i for i in range(100)], lines[:3]
assert conn.sock is sock and sock.getsockname() == local, "reconnected"
print("OK")
"#;

#[test]
fn python_http_client_posts_and_gets_chunked_on_one_connection() {
    let server = server();
    let (host, port) = server.addresses[0].rsplit_once(':').unwrap();
    let (status, out) =
        run_captured(Command::new("python3").args(["-c", PY_HTTP_CLIENT, host, port]));
    assert!(status.success(), "{out}");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn a_thousand_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = server();
    let mut conn = TcpStream::connect(&server.addresses[0]).unwrap();
    let mut wire = Vec::new();
    for i in 0..1000 {
        let body = format!("request {i}");
        wire.extend_from_slice(
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    conn.write_all(&wire).unwrap();
    let mut responses = Responses::new(&mut conn);
    for i in 0..1000 {
        let answer = responses.next(Method::POST).expect("a response");
        assert_eq!(answer.status, 200);
        assert_eq!(
            String::from_utf8(answer.body).unwrap(),
            format!("request {i}")
        );
    }
}

#[test]
fn fifty_concurrent_keep_alive_clients_get_only_their_own_responses() {
    let server = server();
    let addr = server.addresses[0].clone();
    let clients: Vec<_> = (0..50)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut conn = TcpStream::connect(&addr).unwrap();
                let mut write = conn.try_clone().unwrap();
                let mut responses = Responses::new(&mut conn);
                for r in 0..10 {
                    let body = format!("client {c} request {r}");
                    write
                        .write_all(
                            format!("POST /echo HTTP/1.1\r\nHost: x\r\nX-Echo: {c}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                                .as_bytes(),
                        )
                        .unwrap();
                    let answer = responses.next(Method::POST).expect("a response");
                    assert_eq!(String::from_utf8(answer.body).unwrap(), body);
                    assert_eq!(answer.headers["x-echo"], c.to_string());
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
}

#[test]
fn head_then_get_on_one_connection() {
    let server = server();
    let mut conn = TcpStream::connect(&server.addresses[0]).unwrap();
    conn.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut responses = Responses::new(&mut conn);
    let head = responses.next(Method::HEAD).unwrap();
    assert_eq!(head.headers["content-length"], "13");
    assert!(head.body.is_empty());
    let get = responses.next(Method::GET).unwrap();
    assert_eq!(get.body, b"Hello, World!");
}

/// Sends `wire`, returns everything until the server closes (a reset counts as a close).
fn raw(addr: &str, wire: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(wire).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(err) => panic!("the server did not close the connection: {err}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn request_smuggling_attempts_get_their_status_and_a_close() {
    let server = server();
    let addr = &server.addresses[0];
    // If any of these were served as two requests, the second would answer 299.
    let smuggled = "GET /status/299 HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases: Vec<(String, u16)> = vec![
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 39\r\n\r\n{smuggled}"),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length : 39\r\n\r\n{smuggled}"),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\rContent-Length: 39\r\n\r\n{smuggled}"),
            400,
        ),
        (format!("GET / HTTP/1.1\r\n\r\n{smuggled}"), 400),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n{smuggled}"),
            400,
        ),
        (
            format!("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
            400,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            501,
        ),
        (format!("GET / HTTP/2.0\r\nHost: x\r\n\r\n{smuggled}"), 505),
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n{smuggled}",
                "u".repeat(9000)
            ),
            414,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nBig: {}\r\n\r\n{smuggled}",
                "h".repeat(70_000)
            ),
            431,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n{smuggled}"
            ),
            413,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n{smuggled}"
            ),
            417,
        ),
    ];
    for (wire, status) in cases {
        let answer = raw(addr, wire.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{wire:?} -> {answer:?}"
        );
        assert!(answer.contains("connection: close\r\n"), "{answer:?}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{wire:?} -> {answer:?}"
        );
    }
}

#[test]
fn sigint_stops_the_server_with_status_0() {
    let server = server();
    server.process.signal("INT");
    let status = server
        .process
        .wait_timeout(Duration::from_secs(20))
        .expect("it exited");
    assert!(status.success(), "{status:?}");
}

#[test]
fn workers_share_one_port_and_stop_on_sigint() {
    let server = start_server(
        "http_server",
        &["--listen", "127.0.0.1:0", "--workers", "2"],
        1,
    );
    let addr = server.addresses[0].clone();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                raw(
                    &addr,
                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
            })
        })
        .collect();
    for client in clients {
        assert!(client.join().unwrap().ends_with("Hello, World!"));
    }
    server.process.signal("INT");
    let status = server
        .process
        .wait_timeout(Duration::from_secs(20))
        .expect("it exited");
    assert!(status.success(), "{status:?}");
}
