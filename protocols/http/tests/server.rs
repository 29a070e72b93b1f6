//! The server over real loopback connections: keep-alive, HTTP/1.0, HEAD, bodies in every
//! framing, 100-continue, errors, panics, timeouts, limits and shutdown.

mod support;

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gruvi_http::http::header::HeaderValue;
use gruvi_http::http::{Method, Request, Response, StatusCode};
use gruvi_http::{Body, Incoming, ServerConfig};
use support::{Reader, Shape, connect, is_closed, roundtrip, run_clean, serve, serve_as};

/// The test handler, written in place (see `support::serve_as`): `/` hello, `/echo` the body
/// (and X-Echo), `/stream` a reader body, `/write` a writer body, `/status/N`, `/panic`,
/// `/sleep`, `/ignore` (answers without reading the body).
fn app_in_place(request: &mut Request<Incoming>, response: &mut Response<Body>) {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/" => {
            let plain = HeaderValue::from_static("text/plain");
            response.headers_mut().insert("content-type", plain);
            *response.body_mut() = Body::from("Hello, World!");
        }
        "/echo" => {
            let Ok(body) = request.body_mut().read_to_vec(1 << 20) else {
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return;
            };
            if let Some(echo) = request.headers().get("x-echo") {
                response.headers_mut().insert("x-echo", echo.clone());
            }
            if let Some(trailers) = request.body().trailers() {
                let count = HeaderValue::from(trailers.len());
                response.headers_mut().insert("x-trailers", count);
            }
            *response.body_mut() = Body::from(body);
        }
        "/stream" => {
            let big = std::io::Cursor::new(vec![b'x'; 100_000]);
            *response.body_mut() = Body::from_reader(big);
        }
        "/write" => {
            *response.body_mut() = Body::from_writer(|w| {
                for i in 0..5 {
                    writeln!(w, "line {i}")?;
                }
                Ok(())
            });
        }
        "/panic" => panic!("handler panicked on purpose"),
        "/panic-body" => {
            *response.body_mut() = Body::from_writer(|_| panic!("body panicked on purpose"));
        }
        "/sleep" => {
            fiber_core::sleep(Duration::from_millis(200)).unwrap();
            *response.body_mut() = Body::from("slept");
        }
        "/ignore" => *response.body_mut() = Body::from("ignored"),
        p if p.starts_with("/status/") => {
            let code: u16 = p["/status/".len()..].parse().unwrap();
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
            *response.body_mut() = Body::from("some body");
        }
        _ => *response.status_mut() = StatusCode::NOT_FOUND,
    }
}

/// [`app_in_place`] as a handler returning its response.
fn app(mut request: Request<Incoming>) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    app_in_place(&mut request, &mut response);
    response
}

fn quick() -> ServerConfig {
    ServerConfig::default()
}

fn keep_alive_serves_many_requests_on_one_connection(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        for _ in 0..3 {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(answer.status, 200);
            assert_eq!(answer.body, b"Hello, World!");
            assert_eq!(answer.headers["content-length"], "13");
            assert_eq!(answer.headers["content-type"], "text/plain");
            assert_eq!(answer.headers["server"], "gruvi");
            assert!(answer.headers.contains_key("date"));
            assert!(answer.keep_alive);
        }
        assert_eq!(server.connection_count(), 1);
        server.close().unwrap();
    });
}

/// The seconds since the epoch of a response's `Date`.
fn date_of(answer: &support::Answer) -> u64 {
    let value = answer.headers["date"].to_str().unwrap();
    httpdate::parse_http_date(value)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_date_follows_the_clock_across_a_second_boundary() {
    run_clean(|| {
        let (server, addr) = serve(quick(), app);
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        let mut ask = |conn: &mut gruvi_stream::TcpStream| {
            let before = now_seconds();
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let answer = reader.next(conn, Method::GET).unwrap().unwrap();
            let date = date_of(&answer);
            // The server's clock is the coarse one: it may be a tick behind.
            assert!(
                date + 1 >= before && date <= now_seconds(),
                "{date} {before}"
            );
            date
        };
        let first = ask(&mut conn);
        // Past the next second's start (by more than a clock tick), same connection.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let wait = Duration::from_secs(now.as_secs() + 1) - now + Duration::from_millis(50);
        fiber_core::sleep(wait).unwrap();
        let second = ask(&mut conn);
        assert!(second > first, "{second} {first}");
        server.close().unwrap();
    });
}

/// A thousand requests with bodies in one write.
fn pipelined_requests_are_answered_in_order(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        let mut wire = Vec::new();
        for i in 0..1000 {
            wire.extend_from_slice(
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\nreq{i}",
                    3 + i.to_string().len()
                )
                .as_bytes(),
            );
        }
        conn.write_all(&wire).unwrap();
        let mut reader = Reader::new();
        for i in 0..1000 {
            let answer = reader.next(&mut conn, Method::POST).unwrap().unwrap();
            assert_eq!(String::from_utf8(answer.body).unwrap(), format!("req{i}"));
        }
        server.close().unwrap();
    });
}

fn http_1_0_closes_unless_asked_to_keep_alive(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let answer = roundtrip(&addr, b"GET / HTTP/1.0\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.ends_with("Hello, World!"));

        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        for _ in 0..2 {
            conn.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap();
            let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(answer.headers["connection"], "keep-alive");
            assert_eq!(answer.body, b"Hello, World!");
        }
        // A reader body to a 1.0 client is delimited by the close.
        conn.write_all(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
        assert_eq!(answer.body.len(), 100_000);
        assert!(!answer.headers.contains_key("transfer-encoding"));
        assert_eq!(answer.headers["connection"], "close");
        assert!(is_closed(&mut conn));
        server.close().unwrap();
    });
}

fn connection_close_is_honoured(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let answer = roundtrip(&addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(answer.matches("HTTP/1.1 200").count(), 1, "{answer}");
        assert!(answer.contains("connection: close\r\n"));
        server.close().unwrap();
    });
}

/// A client that asked to close, and sent nothing more, is let go right after its answer,
/// even while it keeps its own side open: the server does not linger (up to 2 s) reading
/// from a client that has said it is done. One that sent more than it asked for is still
/// lingered on.
fn a_client_that_asked_to_close_is_let_go_at_once(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let gone_within = |conn: &mut gruvi_stream::TcpStream, wire: &[u8], limit: Duration| {
            conn.write_all(wire).unwrap();
            let answer = String::from_utf8(support::read_all(conn)).unwrap();
            assert!(answer.starts_with("HTTP/1."), "{answer}");
            // The client's side stays open: only the server's close ends the connection.
            let start = Instant::now();
            while server.connection_count() > 0 && start.elapsed() < limit {
                fiber_core::sleep(Duration::from_millis(5)).unwrap();
            }
            server.connection_count() == 0
        };
        for wire in [
            &b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        ] {
            let mut conn = connect(&addr);
            let gone = gone_within(&mut conn, wire, Duration::from_millis(1000));
            assert!(gone, "{}", String::from_utf8_lossy(wire));
        }
        // Bytes after the request that asked to close: lingered on (the close waits).
        let mut conn = connect(&addr);
        let wire = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nmore";
        assert!(!gone_within(&mut conn, wire, Duration::from_millis(300)));
        drop(conn);
        server.close().unwrap();
    });
}

fn head_has_the_headers_of_get_and_no_body(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        for path in ["/", "/stream", "/write"] {
            conn.write_all(
                format!(
                    "HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\nGET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            let head = reader.next(&mut conn, Method::HEAD).unwrap().unwrap();
            let get = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert!(head.body.is_empty());
            assert!(!get.body.is_empty());
            for name in ["content-length", "transfer-encoding", "content-type"] {
                assert_eq!(
                    head.headers.get(name),
                    get.headers.get(name),
                    "{path} {name}"
                );
            }
        }
        server.close().unwrap();
    });
}

fn statuses_without_a_body_send_none(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        conn.write_all(b"GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/304 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut all = String::new();
        conn.read_to_string(&mut all).unwrap();
        let parts: Vec<&str> = all.split("HTTP/1.1 ").collect();
        assert_eq!(parts.len(), 4, "{all}");
        assert!(
            parts[1].starts_with("204 No Content\r\n") && parts[1].ends_with("\r\n\r\n"),
            "{all}"
        );
        assert!(!parts[1].contains("content-length"), "{all}");
        assert!(
            parts[2].starts_with("304 Not Modified\r\n") && parts[2].ends_with("\r\n\r\n"),
            "{all}"
        );
        assert!(parts[3].ends_with("Hello, World!"));
        server.close().unwrap();
    });
}

fn bodies_in_every_framing(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        conn.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Echo: yes\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n7\r\n, world\r\n0\r\nX-Check: 1\r\n\r\n").unwrap();
        let echo = reader.next(&mut conn, Method::POST).unwrap().unwrap();
        assert_eq!(echo.body, b"hello, world");
        assert_eq!(echo.headers["x-echo"], "yes");
        assert_eq!(echo.headers["x-trailers"], "1");

        conn.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let stream = reader.next(&mut conn, Method::GET).unwrap().unwrap();
        assert_eq!(stream.headers["transfer-encoding"], "chunked");
        assert_eq!(stream.body, vec![b'x'; 100_000]);

        conn.write_all(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let written = reader.next(&mut conn, Method::GET).unwrap().unwrap();
        assert_eq!(written.body, b"line 0\nline 1\nline 2\nline 3\nline 4\n");

        let big = vec![b'b'; 300_000];
        conn.write_all(
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                big.len()
            )
            .as_bytes(),
        )
        .unwrap();
        conn.write_all(&big).unwrap();
        let echo = reader.next(&mut conn, Method::POST).unwrap().unwrap();
        assert_eq!(echo.body, big);
        server.close().unwrap();
    });
}

fn expect_100_continue_is_answered_when_the_body_is_read(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        conn.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        )
        .unwrap();
        let mut interim = [0; 25];
        conn.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        conn.write_all(b"ping").unwrap();
        let answer = Reader::new()
            .next(&mut conn, Method::POST)
            .unwrap()
            .unwrap();
        assert_eq!(answer.body, b"ping");
        assert!(answer.keep_alive);

        // A handler that does not read gets no 100 sent, and the connection closes after.
        let answer = roundtrip(&addr, b"POST /ignore HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(!answer.contains("100 Continue"));
        assert!(answer.contains("connection: close\r\n"));

        let answer = roundtrip(
            &addr,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-pray\r\nContent-Length: 4\r\n\r\nbody",
        );
        assert!(
            answer.starts_with("HTTP/1.1 417 Expectation Failed\r\n"),
            "{answer}"
        );
        server.close().unwrap();
    });
}

fn an_unread_body_is_skipped_or_the_connection_closed(shape: Shape) {
    run_clean(|| {
        let config = ServerConfig {
            max_discard: 1000,
            ..quick()
        };
        let (server, addr) = serve_as(shape, config, app_in_place);
        // Sends a POST whose body `/ignore` leaves unread, then a GET on the same connection:
        // both are answered.
        let skipped_then_served = |head: &[u8], body: &[u8]| {
            let mut conn = connect(&addr);
            conn.write_all(head).unwrap();
            conn.write_all(body).unwrap();
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut reader = Reader::new();
            assert_eq!(
                reader.next(&mut conn, Method::POST).unwrap().unwrap().body,
                b"ignored"
            );
            assert_eq!(
                reader.next(&mut conn, Method::GET).unwrap().unwrap().body,
                b"Hello, World!"
            );
        };
        skipped_then_served(
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
            &[b'z'; 1000],
        );

        // One byte past the limit, and far past it: the connection is closed.
        for len in [1001, 5000] {
            let mut conn = connect(&addr);
            let head = format!("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(&vec![b'z'; len]).unwrap();
            let answer = Reader::new()
                .next(&mut conn, Method::POST)
                .unwrap()
                .unwrap();
            assert!(!answer.keep_alive, "{len}");
            assert!(is_closed(&mut conn), "{len}");
        }

        // A chunked body of exactly the limit (two chunks of 500) is skipped too.
        let mut chunked = b"1f4\r\n".to_vec();
        chunked.extend_from_slice(&[b'z'; 500]);
        chunked.extend_from_slice(b"\r\n1f4\r\n");
        chunked.extend_from_slice(&[b'z'; 500]);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        skipped_then_served(
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked,
        );
        server.close().unwrap();
    });
}

fn a_panicking_handler_gets_500_and_the_server_lives_on(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let answer = roundtrip(&addr, b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{answer}"
        );
        let answer = roundtrip(&addr, b"GET /panic-body HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{answer}"
        );
        let answer = roundtrip(
            &addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.ends_with("Hello, World!"));
        server.close().unwrap();
    });
}

/// Each malformed request gets its status and a closed connection, and never a second
/// response (a smuggled request is never served).
fn bad_requests_get_their_status_and_a_close(shape: Shape) {
    run_clean(|| {
        let config = ServerConfig {
            limits: gruvi_http::Limits {
                max_request_line: 100,
                max_head_size: 1000,
                max_body_size: 100,
                ..Default::default()
            },
            ..quick()
        };
        let (server, addr) = serve_as(shape, config, app_in_place);
        let smuggled = "GET /status/299 HTTP/1.1\r\nHost: x\r\n\r\n";
        let cases: Vec<(String, u16)> = vec![
            (
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
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
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n{smuggled}"
                ),
                400,
            ),
            (
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggled}"
                ),
                501,
            ),
            (
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"
                ),
                400,
            ),
            (
                format!("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n{smuggled}"),
                400,
            ),
            (
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1g\r\nx\r\n0\r\n\r\n{smuggled}"
                ),
                400,
            ),
            (
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n0\r\n\r\n{smuggled}"
                ),
                400,
            ),
            (
                format!("GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n{smuggled}"),
                400,
            ),
            (format!("GET / HTTP/1.1\r\n\r\n{smuggled}"), 400),
            (
                format!("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n{smuggled}"),
                400,
            ),
            (
                format!(
                    "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n{smuggled}",
                    "u".repeat(200)
                ),
                414,
            ),
            (
                format!(
                    "GET / HTTP/1.1\r\nHost: x\r\nBig: {}\r\n\r\n{smuggled}",
                    "h".repeat(2000)
                ),
                431,
            ),
            (
                format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n{smuggled}"),
                413,
            ),
            (
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n{}\r\n0\r\n\r\n{smuggled}",
                    "c".repeat(101)
                ),
                413,
            ),
            (format!("GET / HTTP/3.0\r\nHost: x\r\n\r\n{smuggled}"), 505),
            (
                format!("GET / HTTP/1.1\r\nHost: x\r\nExpect: nothing\r\n\r\n{smuggled}"),
                417,
            ),
        ];
        for (wire, status) in cases {
            let answer = roundtrip(&addr, wire.as_bytes());
            let expected = format!("HTTP/1.1 {status} ");
            assert!(answer.starts_with(&expected), "{wire:?} -> {answer:?}");
            assert_eq!(
                answer.matches("HTTP/1.1").count(),
                1,
                "{wire:?} -> {answer:?}"
            );
            assert!(answer.contains("connection: close\r\n"));
            assert!(
                !answer.contains("299"),
                "the smuggled request was served: {answer:?}"
            );
        }
        server.close().unwrap();
    });
}

fn a_slow_head_times_out_from_its_first_byte_while_others_are_served(shape: Shape) {
    run_clean(|| {
        let config = ServerConfig {
            head_timeout: Duration::from_millis(400),
            ..quick()
        };
        let (server, addr) = serve_as(shape, config, app_in_place);
        let slow_addr = addr.clone();
        let slow = fiber_core::spawn(move || {
            let conn = Rc::new(connect(&slow_addr));
            let start = Instant::now();
            // One byte every 50 ms, from another fiber: each byte would reset a per-read
            // timeout.
            let writer = conn.clone();
            let trickle = fiber_core::spawn(move || {
                for byte in
                    b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                {
                    if (&*writer).write_all(&[*byte]).is_err()
                        || fiber_core::sleep(Duration::from_millis(50)).is_err()
                    {
                        return;
                    }
                }
            });
            let mut answer = String::new();
            let _ = (&*conn).read_to_string(&mut answer);
            let elapsed = start.elapsed();
            trickle.cancel();
            let _ = trickle.join();
            (elapsed, answer)
        });
        for _ in 0..5 {
            let answer = roundtrip(
                &addr,
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(answer.ends_with("Hello, World!"));
        }
        let (elapsed, rest) = slow.join().unwrap();
        assert!(
            rest.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{rest:?}"
        );
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
        assert!(
            elapsed < Duration::from_secs(3),
            "the slow client was not cut off: {elapsed:?}"
        );
        server.close().unwrap();
    });
}

fn idle_keep_alive_connections_are_closed(shape: Shape) {
    run_clean(|| {
        let config = ServerConfig {
            keep_alive_timeout: Duration::from_millis(200),
            ..quick()
        };
        let (server, addr) = serve_as(shape, config, app_in_place);
        let mut conn = connect(&addr);
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut reader = Reader::new();
        assert_eq!(
            reader.next(&mut conn, Method::GET).unwrap().unwrap().status,
            200
        );
        let start = Instant::now();
        assert!(reader.next(&mut conn, Method::GET).unwrap().is_none());
        assert!(start.elapsed() >= Duration::from_millis(200));
        server.close().unwrap();
    });
}

#[test]
fn connections_beyond_the_limit_are_closed() {
    run_clean(|| {
        let config = ServerConfig {
            max_connections: 2,
            ..quick()
        };
        let (server, addr) = serve(config, app);
        let mut held: Vec<_> = (0..2).map(|_| connect(&addr)).collect();
        let mut reader = Reader::new();
        for conn in &mut held {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(reader.next(conn, Method::GET).unwrap().unwrap().status, 200);
        }
        let mut third = connect(&addr);
        let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(is_closed(&mut third));
        drop(held);
        // Once the others left, a new connection is served.
        let served = (0..100).any(|_| {
            fiber_core::sleep(Duration::from_millis(10)).unwrap();
            roundtrip(
                &addr,
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .ends_with("Hello, World!")
        });
        assert!(served);
        server.close().unwrap();
    });
}

fn shutdown_finishes_requests_in_progress_and_closes_idle_connections(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut idle = connect(&addr);
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut reader = Reader::new();
        assert_eq!(
            reader.next(&mut idle, Method::GET).unwrap().unwrap().status,
            200
        );
        let busy_addr = addr.clone();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let busy = fiber_core::spawn(move || {
            let mut conn = connect(&busy_addr);
            conn.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let answer = Reader::new().next(&mut conn, Method::GET).unwrap().unwrap();
            d.set(true);
            (answer, is_closed(&mut conn))
        });
        fiber_core::sleep(Duration::from_millis(50)).unwrap();
        server.shutdown(Duration::from_secs(5)).unwrap();
        assert!(is_closed(&mut idle));
        let (answer, closed) = busy.join().unwrap();
        assert_eq!(answer.body, b"slept");
        assert!(
            !answer.keep_alive,
            "a response during shutdown says Connection: close"
        );
        assert!(closed);
        assert!(done.get());
        assert!(gruvi_stream::TcpStream::connect(addr.as_str()).is_err());
    });
}

/// A client that pipelines requests for large answers without reading them: the server stops
/// reading once its answers back up, so the client soon cannot write more (the server holds
/// a bounded amount), and the server goes on serving others.
#[test]
fn a_client_that_never_reads_cannot_make_the_server_buffer_without_bound() {
    run_clean(|| {
        let (server, addr) = serve(quick(), app);
        let conn = Rc::new(connect(&addr));
        let written = Rc::new(Cell::new(0usize));
        let (c, w) = (conn.clone(), written.clone());
        let writer = fiber_core::spawn(move || {
            let request = b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
            let chunk: Vec<u8> = request
                .iter()
                .copied()
                .cycle()
                .take(request.len() * 30_000)
                .collect();
            while w.get() < 200 << 20 {
                if (&*c).write_all(&chunk).is_err() {
                    return;
                }
                w.set(w.get() + chunk.len());
            }
        });
        // Wait until the writer has made no progress for a while.
        let mut last = usize::MAX;
        while written.get() != last {
            last = written.get();
            fiber_core::sleep(Duration::from_millis(300)).unwrap();
        }
        assert!(!writer.is_finished(), "the client wrote 200 MiB unhindered");
        assert!(written.get() < 100 << 20, "{} bytes went in", written.get());
        let answer = roundtrip(
            &addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.ends_with("Hello, World!"));
        conn.close();
        writer.cancel();
        let _ = writer.join();
        server.close().unwrap();
    });
}

fn a_stalled_body_times_out_and_the_connection_closes(shape: Shape) {
    run_clean(|| {
        let config = ServerConfig {
            body_timeout: Duration::from_millis(150),
            ..quick()
        };
        let (server, addr) = serve_as(shape, config, app_in_place);
        let mut conn = connect(&addr);
        conn.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            .unwrap();
        let start = Instant::now();
        let answer = Reader::new()
            .next(&mut conn, Method::POST)
            .unwrap()
            .unwrap();
        assert_eq!(answer.status, 500, "the handler saw its read time out");
        assert!(!answer.keep_alive);
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(is_closed(&mut conn));
        server.close().unwrap();
    });
}

/// A client that stops reading while its response is sent: once the socket buffers are full,
/// the server's send waits `write_timeout` for room, then gives the connection up (it closes,
/// and the server lives on).
#[test]
fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    run_clean(|| {
        let config = ServerConfig {
            write_timeout: Duration::from_millis(200),
            ..quick()
        };
        let (server, addr) = serve(config, |_request| {
            // An endless body: the sends stop only when the client's buffers are full.
            Response::new(Body::from_reader(std::io::repeat(b'x')))
        });
        let mut conn = connect(&addr);
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let start = Instant::now();
        while server.connection_count() > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the connection stays"
            );
            fiber_core::sleep(Duration::from_millis(5)).unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        // What was sent can still be read, then the connection is over.
        let sent = support::read_all(&mut conn);
        assert!(sent.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(sent.len() > 64 * 1024, "{} bytes", sent.len());
        // The server serves others.
        let mut other = connect(&addr);
        other
            .write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let answer = Reader::new()
            .next(&mut other, Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(answer.status, 200);
        server.close().unwrap();
    });
}

/// A connection type of the test's own, wrapping the accepted one: the server runs over any
/// `Connection` (this is how TLS plugs in).
struct Counting {
    inner: Rc<dyn gruvi_stream::Connection>,
    sent: Rc<Cell<usize>>,
}

impl gruvi_stream::Connection for Counting {
    fn fill(&self) -> std::io::Result<bool> {
        self.inner.fill()
    }
    fn with_buffered(&self, f: &mut dyn FnMut(&[u8])) {
        self.inner.with_buffered(f)
    }
    fn consume(&self, n: usize) {
        self.inner.consume(n)
    }
    fn send(&self, data: &[u8]) -> std::io::Result<()> {
        self.sent.set(self.sent.get() + data.len());
        self.inner.send(data)
    }
    fn flush_queue(&self) -> std::io::Result<()> {
        self.inner.flush_queue()
    }
    fn shutdown_write(&self) -> std::io::Result<()> {
        self.inner.shutdown_write()
    }
    fn close(&self) {
        self.inner.close()
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.inner.set_read_timeout(t)
    }
    fn read_timeout(&self) -> std::io::Result<Option<Duration>> {
        self.inner.read_timeout()
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.inner.set_write_timeout(t)
    }
    fn write_timeout(&self) -> std::io::Result<Option<Duration>> {
        self.inner.write_timeout()
    }
    fn peer_address(&self) -> std::io::Result<gruvi_stream::Address> {
        self.inner.peer_address()
    }
    fn local_address(&self) -> std::io::Result<gruvi_stream::Address> {
        self.inner.local_address()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[test]
fn accepted_connections_go_through_the_wrapper() {
    run_clean(|| {
        let (server, addr) = serve(quick(), app);
        let sent = Rc::new(Cell::new(0));
        let s = sent.clone();
        server.set_connection_wrapper(move |inner| {
            Ok(Rc::new(Counting {
                inner,
                sent: s.clone(),
            }) as Rc<dyn gruvi_stream::Connection>)
        });
        let answer = roundtrip(
            &addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.ends_with("Hello, World!"));
        assert_eq!(sent.get(), answer.len());
        // A wrapper that fails (a TLS handshake that does not work out) closes the connection.
        server.set_connection_wrapper(|_| Err(std::io::Error::other("handshake failed")));
        assert_eq!(roundtrip(&addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "");
        server.close().unwrap();
    });
}

/// Gruvi put the URL's fragment where the query belonged (its QUERY_STRING bug): here the
/// handler sees the path and the query as sent.
#[test]
fn the_handler_sees_the_query_not_the_fragment() {
    run_clean(|| {
        let (server, addr) = serve(quick(), |request| {
            let uri = request.uri();
            Response::new(Body::from(format!("{} {:?}", uri.path(), uri.query())))
        });
        let answer = roundtrip(
            &addr,
            b"GET /foo?x=1&y=%20 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.ends_with("/foo Some(\"x=1&y=%20\")"), "{answer}");
        server.close().unwrap();
    });
}

#[test]
fn the_handler_knows_the_peer_and_local_addresses() {
    run_clean(|| {
        let (server, addr) = serve(quick(), |request| {
            let body = request.body();
            let text = format!(
                "{} -> {}",
                body.peer_address().unwrap(),
                body.local_address().unwrap()
            );
            Response::new(Body::from(text))
        });
        let mut conn = connect(&addr);
        let local = conn.local_addr().unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = String::from_utf8(support::read_all(&mut conn)).unwrap();
        assert!(answer.ends_with(&format!("{local} -> {addr}")), "{answer}");
        server.close().unwrap();
    });
}

/// The request's header fields as `name=value`, sorted.
fn sorted_fields(request: &Request<Incoming>) -> Vec<String> {
    let mut seen: Vec<String> = request
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}={}", value.to_str().unwrap()))
        .collect();
    seen.sort();
    seen
}

/// The server reuses a written response's header map for the next request head: the next
/// request must see only its own fields, whatever the response held (few or many fields).
fn each_request_sees_only_its_own_header_fields(shape: Shape) {
    fn names(request: &mut Request<Incoming>, response: &mut Response<Body>) {
        let seen = sorted_fields(request);
        let fields: usize = request.uri().query().unwrap_or("0").parse().unwrap();
        *response.body_mut() = Body::from(seen.join(","));
        for i in 0..fields {
            response.headers_mut().append(
                format!("x-resp-{i}")
                    .parse::<gruvi_http::http::HeaderName>()
                    .unwrap(),
                "r".parse().unwrap(),
            );
        }
    }
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), names);
        let mut conn = connect(&addr);
        let mut wire = Vec::new();
        // Responses of 3 and 70 fields (the latter too large to be kept), each followed by a
        // request with fewer fields.
        for (fields, extra) in [
            (3, "A: 1\r\nB: 2\r\nC: 3\r\n"),
            (0, ""),
            (70, "A: 9\r\n"),
            (0, ""),
        ] {
            wire.extend_from_slice(
                format!("GET /?{fields} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes(),
            );
        }
        conn.write_all(&wire).unwrap();
        let mut reader = Reader::new();
        let expected = ["a=1,b=2,c=3,host=x", "host=x", "a=9,host=x", "host=x"];
        for (i, want) in expected.into_iter().enumerate() {
            let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(String::from_utf8(answer.body).unwrap(), want, "request {i}");
        }
        server.close().unwrap();
    });
}

/// Header fields repeated from one head to the next come from a per-thread cache: whatever
/// repeats, changes or moves, each request sees exactly the fields it sent, on any
/// connection.
fn repeated_header_fields_come_through_exactly(shape: Shape) {
    fn fields(request: &mut Request<Incoming>, response: &mut Response<Body>) {
        let seen: Vec<String> = request
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}={}", String::from_utf8_lossy(value.as_bytes())))
            .collect();
        *response.body_mut() = Body::from(seen.join("|"));
    }
    let long = "v".repeat(600);
    // (fields sent after Host, what the handler sees after host=x)
    let heads: Vec<(String, String)> = vec![
        ("A: 1\r\nB: 2\r\n".into(), "a=1|b=2".into()),
        ("A: 1\r\nB: 2\r\n".into(), "a=1|b=2".into()),
        ("A: 1\r\nB: 2\r\n".into(), "a=1|b=2".into()),
        // The same value, another name; the same name, other values and spacing.
        ("A: 1\r\nC: 2\r\n".into(), "a=1|c=2".into()),
        ("A:1\r\nC: 22\r\n".into(), "a=1|c=22".into()),
        ("a: 1\r\nC: 2 \r\n".into(), "a=1|c=2".into()),
        ("X-Custom: é\r\nC: 2\r\n".into(), "x-custom=é|c=2".into()),
        ("X-Custom: é\r\nC: 2\r\n".into(), "x-custom=é|c=2".into()),
        (
            "X-Empty:\r\nX-Empty: \r\n".into(),
            "x-empty=|x-empty=".into(),
        ),
        (
            "X-Empty:\r\nX-Empty: \r\n".into(),
            "x-empty=|x-empty=".into(),
        ),
        // Fields moved by one position, and a line too long to cache.
        ("Z: 0\r\nA: 1\r\n".into(), "z=0|a=1".into()),
        (format!("L: {long}\r\n"), format!("l={long}")),
        (format!("L: {long}\r\n"), format!("l={long}")),
        (String::new(), String::new()),
    ];
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), fields);
        let mut wire = Vec::new();
        for (extra, _) in &heads {
            wire.extend_from_slice(format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
        }
        // Twice on one connection (pipelined), then on a second connection.
        let mut first = connect(&addr);
        let mut second = connect(&addr);
        first.write_all(&wire).unwrap();
        first.write_all(&wire).unwrap();
        second.write_all(&wire).unwrap();
        for (conn, rounds) in [(&mut first, 2), (&mut second, 1)] {
            let mut reader = Reader::new();
            for round in 0..rounds {
                for (i, (_, want)) in heads.iter().enumerate() {
                    let answer = reader.next(conn, Method::GET).unwrap().unwrap();
                    let want = match want.as_str() {
                        "" => "host=x".to_owned(),
                        want => format!("host=x|{want}"),
                    };
                    let got = String::from_utf8(answer.body).unwrap();
                    assert_eq!(got, want, "round {round}, request {i}");
                }
            }
        }
        server.close().unwrap();
    });
}

/// A request that arrives while the handler of the one before runs (the connection had read
/// all it had) is answered after it, in order.
fn a_request_arriving_while_the_handler_runs_is_answered(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        conn.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        fiber_core::sleep(Duration::from_millis(50)).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut reader = Reader::new();
        let first = reader.next(&mut conn, Method::GET).unwrap().unwrap();
        assert_eq!(first.body, b"slept");
        let second = reader.next(&mut conn, Method::GET).unwrap().unwrap();
        assert_eq!(second.body, b"Hello, World!");
        assert!(second.keep_alive);
        server.close().unwrap();
    });
}

/// A kept-alive connection waiting for its next request holds no fiber (nor its stack): with
/// 50 connections idle, the Hub has only the few fibers serving whichever has bytes, and
/// every connection is served again when it sends.
fn idle_connections_hold_no_fiber(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let before = fiber_core::dump().len();
        let mut conns: Vec<_> = (0..50).map(|_| connect(&addr)).collect();
        let mut reader = Reader::new();
        for round in 0..3 {
            for conn in &mut conns {
                conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let answer = reader.next(conn, Method::GET).unwrap().unwrap();
                assert_eq!(answer.body, b"Hello, World!");
                assert!(answer.keep_alive);
            }
            fiber_core::sleep(Duration::from_millis(10)).unwrap();
            let fibers = fiber_core::dump().len();
            // The sweeper, and at most 8 parked runners and one about to run.
            assert!(
                fibers <= before + 10,
                "round {round}: {fibers} fibers with 50 idle connections ({before} before)"
            );
            assert_eq!(server.connection_count(), 50);
        }
        server.close().unwrap();
        assert_eq!(server.connection_count(), 0);
    });
}

/// Handlers that block hold up no other connection: 20 idle connections ask for `/sleep`
/// (200 ms) at once and all are answered in about 200 ms, not 20 times that, while a 21st
/// is answered at once; the fibers taken for them are let go afterwards.
fn blocking_handlers_hold_up_no_other_connection(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut reader = Reader::new();
        let mut conns: Vec<_> = (0..21).map(|_| connect(&addr)).collect();
        for conn in &mut conns {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(reader.next(conn, Method::GET).unwrap().unwrap().status, 200);
        }
        fiber_core::sleep(Duration::from_millis(10)).unwrap();
        let idle = fiber_core::dump().len();
        let start = Instant::now();
        for conn in &mut conns[..20] {
            conn.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
        }
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        conns[20]
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let quick_one = reader.next(&mut conns[20], Method::GET).unwrap().unwrap();
        assert_eq!(quick_one.body, b"Hello, World!");
        let waited = start.elapsed();
        assert!(waited < Duration::from_millis(150), "{waited:?}");
        for conn in &mut conns[..20] {
            let answer = reader.next(conn, Method::GET).unwrap().unwrap();
            assert_eq!(answer.body, b"slept");
        }
        let took = start.elapsed();
        assert!(took < Duration::from_millis(1000), "{took:?}");
        fiber_core::sleep(Duration::from_millis(10)).unwrap();
        let after = fiber_core::dump().len();
        assert!(
            after <= idle + 8,
            "{after} fibers after the burst ({idle} before)"
        );
        server.close().unwrap();
    });
}

/// `close` cuts off a request whose handler blocks on a connection that had waited idle
/// without a fiber (its runner is cancelled), and returns without waiting for the handler.
fn close_cuts_off_a_blocked_handler_of_a_resumed_connection(shape: Shape) {
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), app_in_place);
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(
            reader.next(&mut conn, Method::GET).unwrap().unwrap().status,
            200
        );
        fiber_core::sleep(Duration::from_millis(10)).unwrap();
        conn.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        let start = Instant::now();
        server.close().unwrap();
        let took = start.elapsed();
        assert!(took < Duration::from_millis(150), "{took:?}");
        assert_eq!(server.connection_count(), 0);
        assert!(is_closed(&mut conn));
    });
}

/// Trailers a handler adds while it writes its body follow the last chunk on HTTP/1.1; an
/// HTTP/1.0 response, which cannot be chunked, is delimited by the close and carries none
/// (Gruvi decided on the response's own Transfer-Encoding, not on the request's version).
#[test]
fn response_trailers_follow_a_chunked_body_and_are_dropped_on_http_1_0() {
    run_clean(|| {
        let (server, addr) = serve(quick(), |_request| {
            Response::new(Body::from_writer(|w| {
                w.write_all(b"abc")?;
                w.write_all(b"defg")?;
                w.add_trailer("x-sum".parse().unwrap(), HeaderValue::from_static("700"));
                Ok(())
            }))
        });
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
            .unwrap();
        let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
        assert_eq!(answer.headers["transfer-encoding"], "chunked");
        assert_eq!(answer.body, b"abcdefg");
        let trailers = answer.trailers.expect("trailers after the last chunk");
        assert_eq!(trailers["x-sum"], "700");
        assert!(answer.keep_alive);
        let mut old = connect(&addr);
        old.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let raw = support::read_all(&mut old);
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        assert_eq!(body, "abcdefg");
        server.close().unwrap();
    });
}

/// `shutdown(Duration::MAX)` waits for no longer than the requests in progress (it
/// overflowed the clock and panicked).
#[test]
fn a_shutdown_with_the_longest_grace_ends_when_the_requests_do() {
    run_clean(|| {
        let (server, addr) = serve(quick(), |_request| {
            fiber_core::sleep(Duration::from_millis(100)).unwrap();
            Response::new(Body::from("done"))
        });
        let mut conn = connect(&addr);
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        let reader = fiber_core::spawn(move || {
            let answer = Reader::new().next(&mut conn, Method::GET).unwrap().unwrap();
            // Let go, so that the server's lingering close ends.
            drop(conn);
            answer
        });
        let start = Instant::now();
        server.shutdown(Duration::MAX).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        let answer = reader.join().unwrap();
        assert_eq!(answer.body, b"done");
        assert!(!answer.keep_alive);
    });
}

/// A handler may close its own server: the server stops (every connection closed, the
/// runners let go) and `close` returns `Ok` rather than failing on the handler's own fiber.
#[test]
fn a_handler_can_close_its_own_server() {
    run_clean(|| {
        let slot: Rc<std::cell::RefCell<Option<Rc<gruvi_http::Server>>>> = Rc::default();
        let closed = Rc::new(Cell::new(None));
        let (s, c) = (slot.clone(), closed.clone());
        let handler = move |request: Request<Incoming>| {
            if request.uri().path() == "/close" {
                let server = s.borrow().clone().expect("the server is in its slot");
                c.set(Some(server.close().map_err(|e| e.to_string())));
            }
            Response::new(Body::from("bye"))
        };
        let server = Rc::new(gruvi_http::Server::with_config(handler, quick()));
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        *slot.borrow_mut() = Some(server.clone());
        let addr = server.addresses()[0].to_string();
        let mut reader = Reader::new();
        let (mut idle, mut closer) = (connect(&addr), connect(&addr));
        for conn in [&mut idle, &mut closer] {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(reader.next(conn, Method::GET).unwrap().unwrap().status, 200);
        }
        // Both wait idle now; the second request comes to a runner.
        fiber_core::sleep(Duration::from_millis(10)).unwrap();
        closer
            .write_all(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let start = Instant::now();
        let result = loop {
            if let Some(result) = closed.take() {
                break result;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the handler never ran"
            );
            fiber_core::sleep(Duration::from_millis(1)).unwrap();
        };
        assert_eq!(result, Ok(()));
        assert_eq!(server.connection_count(), 0);
        assert!(is_closed(&mut idle));
        assert!(is_closed(&mut closer));
        drop(slot.borrow_mut().take());
        drop(server);
        // The runner whose handler closed the server does not stay parked.
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        let runners = fiber_core::dump()
            .into_iter()
            .filter(|fiber| fiber.name == "http runner")
            .count();
        assert_eq!(runners, 0);
    });
}

/// A handler may shut down its own server gracefully: the shutdown waits for the other
/// request in progress, not for the handler's own (which could not finish meanwhile), and the
/// handler's response still goes out, saying `Connection: close`, before its connection closes.
#[test]
fn a_handler_can_shut_down_its_own_server() {
    run_clean(|| {
        let slot: Rc<std::cell::RefCell<Option<Rc<gruvi_http::Server>>>> = Rc::default();
        let shut = Rc::new(Cell::new(None));
        let (s, done) = (slot.clone(), shut.clone());
        let handler = move |request: Request<Incoming>| match request.uri().path() {
            "/shutdown" => {
                let server = s.borrow().clone().expect("the server is in its slot");
                let start = Instant::now();
                let result = server.shutdown(Duration::from_secs(5));
                done.set(Some((result.map_err(|e| e.to_string()), start.elapsed())));
                Response::new(Body::from("bye"))
            }
            "/sleep" => {
                fiber_core::sleep(Duration::from_millis(200)).unwrap();
                Response::new(Body::from("slept"))
            }
            _ => Response::new(Body::from("hello")),
        };
        let server = Rc::new(gruvi_http::Server::with_config(handler, quick()));
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        *slot.borrow_mut() = Some(server.clone());
        let addr = server.addresses()[0].to_string();
        let mut reader = Reader::new();
        let (mut idle, mut sleeper, mut closer) = (connect(&addr), connect(&addr), connect(&addr));
        for conn in [&mut idle, &mut closer] {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(reader.next(conn, Method::GET).unwrap().unwrap().status, 200);
        }
        fiber_core::sleep(Duration::from_millis(10)).unwrap();
        sleeper
            .write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        closer
            .write_all(b"GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let slept = reader.next(&mut sleeper, Method::GET).unwrap().unwrap();
        assert_eq!(slept.body, b"slept");
        assert!(!slept.keep_alive);
        // Let go at once: the server's lingering close of it ends.
        drop(sleeper);
        let answer = reader.next(&mut closer, Method::GET).unwrap().unwrap();
        assert_eq!((answer.status, answer.body.as_slice()), (200, &b"bye"[..]));
        assert!(!answer.keep_alive, "{:?}", answer.headers);
        assert_eq!(answer.headers["connection"], "close");
        assert!(is_closed(&mut closer));
        let (result, took) = shut.take().expect("the shutdown returned");
        assert_eq!(result, Ok(()));
        // It waited for the sleeping request (about 180 ms left of it), not for its grace.
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(is_closed(&mut idle));
        // The server lingers on a connection it closed until the client closes it too.
        drop((closer, idle));
        let start = Instant::now();
        while server.connection_count() > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "a connection stays"
            );
            fiber_core::sleep(Duration::from_millis(1)).unwrap();
        }
        drop(slot.borrow_mut().take());
        drop(server);
    });
}

/// What a handler leaves in a fiber-local never reaches another connection's handler, although
/// one runner fiber serves many connections.
#[test]
fn fiber_locals_do_not_carry_over_to_another_connection() {
    static LAST_PATH: fiber_core::FiberLocal<std::cell::RefCell<Option<String>>> =
        fiber_core::FiberLocal::new(|| std::cell::RefCell::new(None));
    run_clean(|| {
        let handler = |request: Request<Incoming>| {
            let path = request.uri().path().to_owned();
            let before = LAST_PATH.with(|last| last.replace(Some(path)));
            Response::new(Body::from(before.unwrap_or_else(|| "none".into())))
        };
        let (server, addr) = serve(quick(), handler);
        let mut reader = Reader::new();
        let (mut a, mut b) = (connect(&addr), connect(&addr));
        let mut ask = |conn: &mut gruvi_stream::TcpStream, path: &str| {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            conn.write_all(request.as_bytes()).unwrap();
            let answer = reader.next(conn, Method::GET).unwrap().unwrap();
            String::from_utf8(answer.body).unwrap()
        };
        for round in 0..3 {
            let a_saw = ask(&mut a, &format!("/a{round}"));
            fiber_core::sleep(Duration::from_millis(5)).unwrap();
            let b_saw = ask(&mut b, &format!("/b{round}"));
            fiber_core::sleep(Duration::from_millis(5)).unwrap();
            assert!(!a_saw.starts_with("/b"), "round {round}: a saw {a_saw}");
            assert!(!b_saw.starts_with("/a"), "round {round}: b saw {b_saw}");
        }
        server.close().unwrap();
    });
}

/// A request that arrives while the handler of the one before runs is not taken for an idle
/// connection: neither the sweeper (keep-alive timeout 100 ms, the handlers sleep 200 ms) nor
/// a graceful shutdown closes the connection under it.
fn a_request_that_came_during_the_last_one_is_not_idle(shape: Shape) {
    run_clean(|| {
        let config = ServerConfig {
            keep_alive_timeout: Duration::from_millis(100),
            ..quick()
        };
        let (server, addr) = serve_as(shape, config, app_in_place);
        let mut reader = Reader::new();
        for shutdown in [false, true] {
            let mut conn = connect(&addr);
            conn.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            fiber_core::sleep(Duration::from_millis(50)).unwrap();
            conn.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            if shutdown {
                // While the second request runs.
                fiber_core::sleep(Duration::from_millis(250)).unwrap();
                server.shutdown(Duration::from_secs(5)).unwrap();
            }
            for n in 0..2 {
                let answer = reader.next(&mut conn, Method::GET).unwrap();
                let answer = answer.unwrap_or_else(|| panic!("answer {n} (shutdown {shutdown})"));
                assert_eq!(answer.body, b"slept");
            }
        }
    });
}

/// A response's fields go out with every value of a name, in order, and without the fields
/// the server manages itself (it writes its own framing).
#[test]
fn every_value_of_a_response_field_is_written() {
    fn cookies(_: Request<Incoming>) -> Response<Body> {
        let mut response = Response::new(Body::from("ok"));
        let headers = response.headers_mut();
        headers.append("set-cookie", "a=1".parse().unwrap());
        headers.append("x-other", "x".parse().unwrap());
        headers.append("set-cookie", "b=2".parse().unwrap());
        headers.append("set-cookie", "c=3".parse().unwrap());
        headers.append("transfer-encoding", "gzip".parse().unwrap());
        headers.append("connection", "upgrade".parse().unwrap());
        headers.append("keep-alive", "timeout=1".parse().unwrap());
        response
    }
    run_clean(|| {
        let (server, addr) = serve(quick(), cookies);
        let mut conn = connect(&addr);
        // Twice: the second response's map is the first one's, recycled.
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut reader = Reader::new();
        for _ in 0..2 {
            let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            let values = |name: &str| -> Vec<String> {
                let all = answer.headers.get_all(name).iter();
                all.map(|v| v.to_str().unwrap().to_owned()).collect()
            };
            assert_eq!(values("set-cookie"), ["a=1", "b=2", "c=3"]);
            assert_eq!(values("x-other"), ["x"]);
            assert!(values("transfer-encoding").is_empty());
            assert!(values("connection").is_empty());
            assert!(values("keep-alive").is_empty());
            assert_eq!(values("content-length"), ["2"]);
            assert_eq!(answer.body, b"ok");
            assert!(answer.keep_alive);
        }
        server.close().unwrap();
    });
}

/// The config's default fields: on every response whose handler did not set the name
/// (all values of a repeated one), the handler's own winning otherwise; the fields the
/// server writes itself are not taken; the server's own error answers get none.
fn default_fields_fill_in_what_the_handler_left_out(shape: Shape) {
    run_clean(|| {
        let mut config = quick();
        let defaults = &mut config.default_headers;
        defaults.insert("content-type", HeaderValue::from_static("text/html"));
        defaults.append("x-default", HeaderValue::from_static("one"));
        defaults.append("x-default", HeaderValue::from_static("two"));
        for (name, value) in [
            ("content-length", "99"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("keep-alive", "timeout=1"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("server", "other"),
        ] {
            defaults.insert(name, HeaderValue::from_static(value));
        }
        let (server, addr) = serve_as(shape, config, |request, response| {
            match request.uri().path() {
                // Sets the content type itself.
                "/own" => {
                    let json = HeaderValue::from_static("application/json");
                    response.headers_mut().insert("content-type", json);
                    response
                        .headers_mut()
                        .insert("x-other", HeaderValue::from(1));
                    *response.body_mut() = Body::from("{}");
                }
                "/repeat" => {
                    let own = HeaderValue::from_static("mine");
                    response.headers_mut().insert("x-default", own);
                    *response.body_mut() = Body::from("r");
                }
                _ => *response.body_mut() = Body::from("hello"),
            }
        });
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        conn.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /own HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /repeat HTTP/1.1\r\nHost: x\r\n\r\n\
              GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        let methods = [
            Method::GET,
            Method::GET,
            Method::HEAD,
            Method::GET,
            Method::GET,
        ];
        let answers: Vec<_> = methods
            .into_iter()
            .map(|method| reader.next(&mut conn, method).unwrap().unwrap())
            .collect();
        let values = |answer: &support::Answer, name: &str| -> Vec<String> {
            let all = answer.headers.get_all(name).iter();
            all.map(|v| v.to_str().unwrap().to_owned()).collect()
        };
        for answer in [&answers[0], &answers[2], &answers[4]] {
            assert_eq!(values(answer, "content-type"), ["text/html"]);
            assert_eq!(values(answer, "x-default"), ["one", "two"]);
            assert_eq!(values(answer, "content-length"), ["5"]);
            assert_eq!(values(answer, "server"), ["gruvi"]);
            assert!(values(answer, "connection").is_empty());
            assert!(values(answer, "keep-alive").is_empty());
            assert!(values(answer, "transfer-encoding").is_empty());
            assert_eq!(values(answer, "date").len(), 1);
            assert_ne!(values(answer, "date"), ["Sun, 06 Nov 1994 08:49:37 GMT"]);
            assert!(answer.keep_alive);
        }
        assert_eq!(answers[0].body, b"hello");
        assert!(answers[2].body.is_empty());
        let own = &answers[1];
        assert_eq!(values(own, "content-type"), ["application/json"]);
        assert_eq!(values(own, "x-default"), ["one", "two"]);
        assert_eq!(values(own, "x-other"), ["1"]);
        assert_eq!(own.body, b"{}");
        let repeat = &answers[3];
        assert_eq!(values(repeat, "x-default"), ["mine"]);
        assert_eq!(values(repeat, "content-type"), ["text/html"]);
        // The server's own error answer keeps its own fields only.
        conn.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let error = reader.next(&mut conn, Method::GET).unwrap().unwrap();
        assert_eq!(error.status, 400);
        assert_eq!(
            values(&error, "content-type"),
            ["text/plain; charset=utf-8"]
        );
        assert!(values(&error, "x-default").is_empty());
        server.close().unwrap();
    });
}

/// The usual head (`200 OK`, no field of the handler's, a known length, kept alive on 1.1),
/// which the server keeps whole from one response to the next: each answer still says its
/// own length, `Date` and defaults, whatever came between (another length, an answer the
/// kept head does not fit, a new second).
fn the_usual_head_says_each_answers_own_length_and_date(shape: Shape) {
    run_clean(|| {
        let mut config = quick();
        let defaults = &mut config.default_headers;
        defaults.insert("content-type", HeaderValue::from_static("text/plain"));
        let (server, addr) = serve_as(shape, config, |request, response| {
            let path = request.uri().path();
            let len: usize = path.trim_start_matches('/').parse().unwrap_or(0);
            if path == "/teapot" {
                *response.status_mut() = StatusCode::IM_A_TEAPOT;
            }
            if len > 0 {
                *response.body_mut() = Body::from(vec![b'a' + (len % 26) as u8; len]);
            }
        });
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        // (target, HTTP/1.0, Connection: close) of each request, sent in one write.
        let asks: [(&str, bool, bool); 9] = [
            ("/5", false, false),
            ("/5", false, false),
            ("/17", false, false),
            ("/0", false, false),
            ("/5", true, false),
            ("/teapot", false, false),
            ("/5", false, false),
            ("/1234", false, false),
            ("/5", false, false),
        ];
        let mut wire = Vec::new();
        for (target, old, _) in asks {
            let version = if old { "1.0" } else { "1.1" };
            let keep = if old {
                "Connection: keep-alive\r\n"
            } else {
                ""
            };
            wire.extend_from_slice(
                format!("GET {target} HTTP/{version}\r\nHost: x\r\n{keep}\r\n").as_bytes(),
            );
        }
        conn.write_all(&wire).unwrap();
        let check =
            |reader: &mut Reader, conn: &mut gruvi_stream::TcpStream, target: &str, old: bool| {
                let answer = reader.next(conn, Method::GET).unwrap().unwrap();
                let len: usize = target.trim_start_matches('/').parse().unwrap_or(0);
                let status = if target == "/teapot" { 418 } else { 200 };
                assert_eq!(answer.status, status, "{target}");
                assert_eq!(answer.body.len(), len, "{target}");
                assert!(answer.body.iter().all(|&b| b == b'a' + (len % 26) as u8));
                assert_eq!(answer.headers["content-length"], len.to_string().as_str());
                assert_eq!(answer.headers["content-type"], "text/plain");
                assert_eq!(answer.headers["server"], "gruvi");
                // HTTP/1.0 kept alive says so.
                let fields = if old { 5 } else { 4 };
                assert_eq!(
                    answer.headers.len(),
                    fields,
                    "{target}: {:?}",
                    answer.headers
                );
                assert!(answer.keep_alive, "{target}");
                if old {
                    assert_eq!(answer.headers["connection"], "keep-alive");
                }
                date_of(&answer)
            };
        let mut first = 0;
        for (target, old, _) in asks {
            first = check(&mut reader, &mut conn, target, old);
        }
        // Past the next second's start (by more than a clock tick): the same request gets a
        // new `Date`.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let wait = Duration::from_secs(now.as_secs() + 1) - now + Duration::from_millis(50);
        fiber_core::sleep(wait).unwrap();
        conn.write_all(b"GET /5 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let later = check(&mut reader, &mut conn, "/5", false);
        assert!(later > first, "{later} {first}");
        server.close().unwrap();
    });
}

/// Whatever a handler does to its request stays with that request: an in-place handler's
/// request is the parsed head's own, reused for the next heads on the thread (a repeated
/// head is not even parsed again), and none of its changes may show in them.
fn a_handlers_changes_to_its_request_do_not_reach_the_next(shape: Shape) {
    #[derive(Clone)]
    struct Mark;
    fn change(request: &mut Request<Incoming>, response: &mut Response<Body>) {
        let seen = sorted_fields(request);
        let marked = request.extensions().get::<Mark>().is_some();
        let body = request.body_mut().read_to_vec(100).unwrap();
        *response.body_mut() = Body::from(format!(
            "{} {} {:?} {} marked={marked} body={}",
            request.method(),
            request.uri(),
            request.version(),
            seen.join(","),
            String::from_utf8_lossy(&body),
        ));
        *request.method_mut() = Method::PUT;
        *request.uri_mut() = "/changed?x=1".parse().unwrap();
        *request.version_mut() = gruvi_http::http::Version::HTTP_10;
        request.headers_mut().remove("host");
        let left = HeaderValue::from_static("left");
        request.headers_mut().insert("x-left", left.clone());
        request.headers_mut().append("a", left);
        request.extensions_mut().insert(Mark);
    }
    run_clean(|| {
        let (server, addr) = serve_as(shape, quick(), change);
        let mut conn = connect(&addr);
        let same = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n";
        let post = "POST /p HTTP/1.1\r\nHost: x\r\nA: 1\r\nContent-Length: 2\r\n\r\nhi";
        // Enough of the same for the thread's cache to keep the whole head (see
        // `parser.rs`'s `a_repeated_head_says_the_same_in_every_way_it_comes`), before and
        // after another.
        let mut asks = vec![same; 8];
        asks.push(post);
        asks.extend([same; 8]);
        conn.write_all(asks.concat().as_bytes()).unwrap();
        let mut reader = Reader::new();
        for (i, &ask) in asks.iter().enumerate() {
            let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            let want = if ask == same {
                "GET / HTTP/1.1 a=1,host=x marked=false body="
            } else {
                "POST /p HTTP/1.1 a=1,content-length=2,host=x marked=false body=hi"
            };
            assert_eq!(String::from_utf8(answer.body).unwrap(), want, "request {i}");
            assert!(answer.keep_alive, "request {i}");
        }
        server.close().unwrap();
    });
}

for_both_shapes!(
    keep_alive_serves_many_requests_on_one_connection,
    pipelined_requests_are_answered_in_order,
    http_1_0_closes_unless_asked_to_keep_alive,
    connection_close_is_honoured,
    head_has_the_headers_of_get_and_no_body,
    statuses_without_a_body_send_none,
    bodies_in_every_framing,
    expect_100_continue_is_answered_when_the_body_is_read,
    an_unread_body_is_skipped_or_the_connection_closed,
    a_panicking_handler_gets_500_and_the_server_lives_on,
    bad_requests_get_their_status_and_a_close,
    a_slow_head_times_out_from_its_first_byte_while_others_are_served,
    idle_keep_alive_connections_are_closed,
    shutdown_finishes_requests_in_progress_and_closes_idle_connections,
    a_stalled_body_times_out_and_the_connection_closes,
    a_request_arriving_while_the_handler_runs_is_answered,
    each_request_sees_only_its_own_header_fields,
    a_handlers_changes_to_its_request_do_not_reach_the_next,
    repeated_header_fields_come_through_exactly,
    default_fields_fill_in_what_the_handler_left_out,
    the_usual_head_says_each_answers_own_length_and_date,
    idle_connections_hold_no_fiber,
    blocking_handlers_hold_up_no_other_connection,
    close_cuts_off_a_blocked_handler_of_a_resumed_connection,
    a_client_that_asked_to_close_is_let_go_at_once,
    a_request_that_came_during_the_last_one_is_not_idle,
);
