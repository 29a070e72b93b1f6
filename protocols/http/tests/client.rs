//! The client against the crate's server and against raw sockets that misbehave.

mod support;

use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use gruvi_http::http::{Request, Response};
use gruvi_http::{Body, Client, ClientConfig, Error, Incoming, Limits, Server, ServerConfig, get};
use gruvi_stream::{Address, TcpListener};
use support::{run_clean, serve};

fn echo(mut request: Request<Incoming>) -> Response<Body> {
    let mut body = request.body_mut().read_to_vec(1 << 20).unwrap();
    if body.is_empty() {
        body = format!("{} {}", request.method(), request.uri()).into_bytes();
    }
    let mut response = Response::new(Body::from(body));
    if request.uri().path() == "/close" {
        response
            .headers_mut()
            .insert("connection", "close".parse().unwrap());
    }
    response
}

fn text(response: Response<Incoming>) -> String {
    let mut text = String::new();
    response.into_body().read_to_string(&mut text).unwrap();
    text
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[test]
fn requests_reuse_one_connection_and_pipeline_in_order() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), echo);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        for i in 0..3 {
            assert_eq!(
                text(client.request(get_request(&format!("/{i}"))).unwrap()),
                format!("GET /{i}")
            );
        }
        for i in 0..20 {
            client.send_request(get_request(&format!("/p{i}"))).unwrap();
        }
        for i in 0..20 {
            assert_eq!(text(client.read_response().unwrap()), format!("GET /p{i}"));
        }
        assert_eq!(server.connection_count(), 1);
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn bodies_of_bytes_readers_and_writers_arrive_whole() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), echo);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        let post = |body: Body| Request::post("/echo").body(body).unwrap();
        assert_eq!(
            text(client.request(post(Body::from("bytes"))).unwrap()),
            "bytes"
        );
        let data: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let response = client
            .request(post(Body::from_reader(std::io::Cursor::new(data.clone()))))
            .unwrap();
        assert_eq!(response.into_body().read_to_vec(1 << 20).unwrap(), data);
        let written = post(Body::from_writer(|w| w.write_all(b"written")));
        assert_eq!(text(client.request(written).unwrap()), "written");
        // An unread body is skipped before the next response.
        let _unread = client.request(post(Body::from("skipped"))).unwrap();
        assert_eq!(
            text(client.request(get_request("/after")).unwrap()),
            "GET /after"
        );
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn head_responses_have_no_body_and_the_connection_goes_on() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), echo);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        let head = client
            .request(Request::head("/x").body(Body::empty()).unwrap())
            .unwrap();
        assert_eq!(head.headers()["content-length"], "7"); // "HEAD /x"
        assert!(head.body().is_end());
        assert_eq!(text(client.request(get_request("/y")).unwrap()), "GET /y");
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn a_closed_connection_is_opened_again_for_the_next_request() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), echo);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        assert_eq!(
            text(client.request(get_request("/close")).unwrap()),
            "GET /close"
        );
        assert_eq!(
            text(client.request(get_request("/again")).unwrap()),
            "GET /again"
        );
        client.close();
        server.close().unwrap();
    });
}

/// A one-connection server that answers the first request with `reply` and then closes.
fn raw_server(reply: &'static [u8], hold: bool) -> (String, fiber_core::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fiber = fiber_core::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0; 4096];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(reply);
        if hold {
            let _ = conn.read(&mut buf);
        }
    });
    (addr, fiber)
}

#[test]
fn interim_responses_are_skipped_and_eof_bodies_end_at_the_close() {
    run_clean(|| {
        let (addr, fiber) = raw_server(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil the end", false);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        let response = client.request(get_request("/")).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(text(response), "until the end");
        fiber.join().unwrap();
    });
}

#[test]
fn a_body_cut_short_is_an_unexpected_eof() {
    run_clean(|| {
        let (addr, fiber) =
            raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", false);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        let mut body = client.request(get_request("/")).unwrap().into_body();
        let err = body.read_to_vec(100).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(Error::from_io(&err), Some(&Error::IncompleteMessage));
        fiber.join().unwrap();
    });
}

#[test]
fn response_heads_over_the_limit_are_refused() {
    run_clean(|| {
        let (addr, fiber) = raw_server(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", true);
        let config = ClientConfig {
            limits: Limits {
                max_headers: 2,
                ..Limits::default()
            },
            ..ClientConfig::default()
        };
        let client = Client::with_config(config);
        client.connect(&addr.parse().unwrap()).unwrap();
        let err = client.request(get_request("/")).unwrap_err();
        assert_eq!(Error::from_io(&err), Some(&Error::HeadTooLarge));
        assert!(!client.is_connected());
        fiber.join().unwrap();
    });
}

#[test]
fn a_silent_server_times_out() {
    run_clean(|| {
        let (addr, fiber) = raw_server(b"", true);
        let config = ClientConfig {
            timeout: Duration::from_millis(100),
            ..ClientConfig::default()
        };
        let client = Client::with_config(config);
        client.connect(&addr.parse().unwrap()).unwrap();
        let err = client.request(get_request("/")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        fiber.join().unwrap();
    });
}

#[test]
fn a_server_closing_without_answering_is_an_error() {
    run_clean(|| {
        let (addr, fiber) = raw_server(b"", false);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        let err = client.request(get_request("/")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        fiber.join().unwrap();
    });
}

#[test]
fn get_fetches_urls_over_tcp_ipv6_and_unix_sockets() {
    run_clean(|| {
        let server = Rc::new(Server::new(echo));
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("gruvi-http-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("http.sock");
        server.listen(&Address::Unix(socket.clone())).unwrap();
        let ipv6 = server.listen(&"[::1]:0".parse().unwrap()).is_ok();
        let addresses = server.addresses();
        let response = get(&format!("http://{}/a%20b?x=1", addresses[0])).unwrap();
        assert_eq!(response.body(), b"GET /a%20b?x=1");
        let encoded = socket.to_str().unwrap().replace('/', "%2F");
        let response = get(&format!("http+unix://{encoded}/over/unix")).unwrap();
        assert_eq!(response.body(), b"GET /over/unix");
        if ipv6 {
            let Address::Tcp(_, port) = addresses[2] else {
                panic!("{addresses:?}")
            };
            let response = get(&format!("http://user:secret@[::1]:{port}/six")).unwrap();
            assert_eq!(response.body(), b"GET /six");
        }
        // https to a plain HTTP server: the handshake fails (the server answers its
        // ClientHello with a 400 in plaintext), reported as a TLS protocol error.
        let err = get(&format!("https://{}/", addresses[0])).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert!(
            matches!(
                gruvi_tls::TlsError::from_io(&err),
                Some(gruvi_tls::TlsError::Protocol(_))
            ),
            "{err}"
        );
        server.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn trailers_written_during_the_body_reach_the_server() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), |mut request| {
            let body = request.body_mut().read_to_vec(1 << 20).unwrap();
            let trailers = request.body().trailers().cloned().unwrap_or_default();
            let sum = trailers
                .get("x-sum")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            Response::new(Body::from(format!("{} bytes, x-sum {sum}", body.len())))
        });
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        let body = Body::from_writer(|w| {
            assert!(w.is_chunked());
            let mut sum = 0u32;
            for chunk in [b"abc".as_slice(), b"defg"] {
                w.write_all(chunk)?;
                sum += chunk.iter().map(|&b| u32::from(b)).sum::<u32>();
            }
            w.add_trailer("x-sum".parse().unwrap(), sum.to_string().parse().unwrap());
            Ok(())
        });
        let response = client
            .request(Request::post("/").body(body).unwrap())
            .unwrap();
        assert_eq!(text(response), "7 bytes, x-sum 700");
        client.close();
        server.close().unwrap();
    });
}

#[test]
fn pipelined_head_and_get_responses_are_told_apart() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), echo);
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        client
            .send_request(Request::head("/h").body(Body::empty()).unwrap())
            .unwrap();
        client.send_request(get_request("/g")).unwrap();
        client
            .send_request(Request::head("/h2").body(Body::empty()).unwrap())
            .unwrap();
        let head = client.read_response().unwrap();
        assert_eq!(head.headers()["content-length"], "7");
        assert_eq!(text(head), "");
        assert_eq!(text(client.read_response().unwrap()), "GET /g");
        assert_eq!(text(client.read_response().unwrap()), "");
        client.close();
        server.close().unwrap();
    });
}

/// `read_to_vec` takes a body of exactly its limit and refuses one byte more, on both sides
/// of its 8 KiB read step.
#[test]
fn read_to_vec_limit_boundary() {
    run_clean(|| {
        for (len, limit) in [(0, 0), (1, 0), (8192, 8192), (8193, 8192), (20_000, 20_000)] {
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n{}",
                "b".repeat(len)
            );
            let (addr, fiber) = raw_server(Box::leak(reply.into_bytes().into_boxed_slice()), true);
            let client = Client::new();
            client.connect(&addr.parse().unwrap()).unwrap();
            let mut body = client.request(get_request("/")).unwrap().into_body();
            let got = body.read_to_vec(limit);
            if len <= limit {
                assert_eq!(got.unwrap().len(), len);
            } else {
                let err = got.unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
                assert_eq!(err.to_string(), format!("body longer than {limit} bytes"));
            }
            client.close();
            fiber.join().unwrap();
        }
    });
}

fn post_expecting_continue(body: &'static str) -> Request<Body> {
    Request::post("/upload")
        .header("expect", "100-continue")
        .body(Body::from(body))
        .unwrap()
}

/// `Expect: 100-continue` against the crate's server: the server's `100 Continue` comes when
/// the handler reads the body, and the body goes out then (well before the client's wait
/// would give up); a handler that answers without reading gets no body, and the client does
/// not reuse the connection.
#[test]
fn expect_continue_waits_for_100_and_sends_no_body_after_a_final_answer() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), |mut request: Request<Incoming>| {
            if request.uri().path() == "/refuse" {
                let mut response = Response::new(Body::from("too large"));
                *response.status_mut() = gruvi_http::http::StatusCode::PAYLOAD_TOO_LARGE;
                return response;
            }
            Response::new(Body::from(request.body_mut().read_to_vec(1 << 20).unwrap()))
        });
        let config = ClientConfig {
            continue_timeout: Duration::from_secs(20),
            ..ClientConfig::default()
        };
        let client = Client::with_config(config);
        client.connect(&addr.parse().unwrap()).unwrap();
        let started = std::time::Instant::now();
        let response = client.request(post_expecting_continue("hello")).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(text(response), "hello");
        assert!(started.elapsed() < Duration::from_secs(10));
        let mut refused = post_expecting_continue("never sent");
        *refused.uri_mut() = "/refuse".parse().unwrap();
        let response = client.request(refused).unwrap();
        assert_eq!(response.status(), 413);
        assert_eq!(text(response), "too large");
        // A fresh connection for the next request.
        assert_eq!(
            text(client.request(post_expecting_continue("again")).unwrap()),
            "again"
        );
        client.close();
        server.close().unwrap();
    });
}

/// Against raw servers: a final answer before the body means the body is never sent; a
/// server that never sends `100 Continue` gets the body after the continue timeout.
#[test]
fn expect_continue_against_raw_servers() {
    run_clean(|| {
        let head_of = |conn: &mut gruvi_stream::TcpStream| {
            let mut head = Vec::new();
            let mut byte = [0; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(conn.read(&mut byte).unwrap(), 1, "head cut short");
                head.push(byte[0]);
            }
            String::from_utf8(head).unwrap()
        };
        // 417 before the body: nothing but the head arrives, then the client's close.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = fiber_core::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let head = head_of(&mut conn);
            assert!(
                head.to_ascii_lowercase().contains("expect: 100-continue"),
                "{head}"
            );
            conn.write_all(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).unwrap();
            rest
        });
        let client = Client::new();
        client.connect(&addr.parse().unwrap()).unwrap();
        let response = client.request(post_expecting_continue("secret")).unwrap();
        assert_eq!(response.status(), 417);
        drop(response);
        client.close();
        assert_eq!(server.join().unwrap(), b"", "the body was sent after a 417");
        // No answer at all: the body follows after the continue timeout.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = fiber_core::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            head_of(&mut conn);
            let waiting = std::time::Instant::now();
            let mut body = [0; 5];
            conn.read_exact(&mut body).unwrap();
            let waited = waiting.elapsed();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            (body, waited)
        });
        let config = ClientConfig {
            continue_timeout: Duration::from_millis(200),
            ..ClientConfig::default()
        };
        let client = Client::with_config(config);
        client.connect(&addr.parse().unwrap()).unwrap();
        let response = client.request(post_expecting_continue("hello")).unwrap();
        assert_eq!(text(response), "ok");
        let (body, waited) = server.join().unwrap();
        assert_eq!(&body, b"hello");
        assert!(
            waited >= Duration::from_millis(150),
            "body after {waited:?}"
        );
        client.close();
    });
}

/// A response body left unread is skipped before the next request when it is at most
/// `max_discard` bytes (the connection is reused); a longer one sends the next request on a
/// new connection instead of failing it.
#[test]
fn an_unread_body_up_to_max_discard_is_skipped_and_a_longer_one_means_a_new_connection() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), |request| {
            let len: usize = request.uri().query().unwrap_or("0").parse().unwrap();
            let port = match request.body().peer_address().unwrap() {
                Address::Tcp(_, port) => port,
                other => panic!("{other:?}"),
            };
            let mut response = Response::new(Body::from(vec![b'x'; len]));
            response
                .headers_mut()
                .insert("x-port", port.to_string().parse().unwrap());
            response
        });
        let config = ClientConfig {
            max_discard: 1000,
            ..ClientConfig::default()
        };
        let client = Client::with_config(config);
        client.connect(&addr.parse().unwrap()).unwrap();
        let port = |response: &Response<Incoming>| response.headers()["x-port"].clone();
        let first = client.request(get_request("/?1000")).unwrap();
        let first_port = port(&first);
        drop(first);
        let second = client.request(get_request("/?1001")).unwrap();
        assert_eq!(port(&second), first_port, "1000 unread bytes were skipped");
        drop(second);
        let mut third = client.request(get_request("/?5")).unwrap();
        assert_ne!(
            port(&third),
            first_port,
            "1001 unread bytes: a new connection"
        );
        assert_eq!(third.body_mut().read_to_vec(100).unwrap(), b"xxxxx");
        client.close();
        server.close().unwrap();
    });
}

/// The connect timeout bounds the whole connect, the name lookup included.
#[test]
fn the_connect_timeout_bounds_the_connect() {
    run_clean(|| {
        let (server, addr) = serve(ServerConfig::default(), echo);
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        let config = ClientConfig {
            connect_timeout: Duration::from_nanos(1),
            ..ClientConfig::default()
        };
        let client = Client::with_config(config);
        let target = Address::Tcp("localhost".into(), port);
        let err = client.connect(&target).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        // With the default the same address connects.
        let client = Client::new();
        client.connect(&target).unwrap();
        assert_eq!(text(client.request(get_request("/t")).unwrap()), "GET /t");
        client.close();
        server.close().unwrap();
    });
}

/// An unread body whose known rest is longer than `max_discard` is not waited for: the next
/// request goes on a new connection at once, although the server holds the old one silently
/// (it waited for the rest for up to the read timeout before).
#[test]
fn a_long_unread_body_of_known_length_is_not_waited_for() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = fiber_core::spawn(move || {
            let mut buf = [0; 4096];
            // The first connection: 10 bytes of a 5,000-byte body, then silence.
            let (mut first, _) = listener.accept().unwrap();
            let _ = first.read(&mut buf);
            first
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n0123456789")
                .unwrap();
            // The second: a whole answer.
            let (mut second, _) = listener.accept().unwrap();
            let _ = second.read(&mut buf);
            second
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            let _ = second.read(&mut buf);
            drop(first);
        });
        let config = ClientConfig {
            max_discard: 1000,
            timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let client = Client::with_config(config);
        client.connect(&addr.parse().unwrap()).unwrap();
        let first = client.request(get_request("/long")).unwrap();
        assert_eq!(first.headers()["content-length"], "5000");
        drop(first);
        let start = std::time::Instant::now();
        let second = client.request(get_request("/next")).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(text(second), "ok");
        client.close();
        server.join().unwrap();
    });
}
