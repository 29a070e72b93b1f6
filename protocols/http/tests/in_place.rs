//! In-place handlers ([`Server::in_place`]): the request and response the server reuses carry
//! nothing from one exchange to the next (fields, extensions, status, version, body), on one
//! kept-alive connection, pipelined, across connections, after a panic and with exchanges
//! running at the same time; a handler that takes or replaces parts still works.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use gruvi_http::http::header::{HeaderName, HeaderValue};
use gruvi_http::http::{Method, Request, Response, StatusCode, Version};
use gruvi_http::{Body, Incoming, Server, ServerConfig, Workers};
use support::{Reader, connect, roundtrip, run_clean};

/// An extension the handler leaves on the request and the response.
#[derive(Clone, Debug)]
struct Marker(u32);

/// Whatever of an earlier exchange the handler finds in its request and response, apart from
/// the request's own fields (`sent`: the names the client sent, in order, but `Connection`).
fn leftovers(request: &Request<Incoming>, response: &Response<Body>, sent: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    if response.status() != StatusCode::OK {
        found.push(format!("status {}", response.status()));
    }
    if response.version() != Version::HTTP_11 {
        found.push(format!("version {:?}", response.version()));
    }
    if !response.headers().is_empty() {
        found.push(format!("response fields {:?}", response.headers()));
    }
    if !response.extensions().is_empty() {
        found.push(format!(
            "{} response extensions",
            response.extensions().len()
        ));
    }
    if !response.body().is_empty() {
        found.push(format!(
            "a response body ({:?} bytes)",
            response.body().len()
        ));
    }
    if !request.extensions().is_empty() {
        found.push(format!("{} request extensions", request.extensions().len()));
    }
    // (A `Connection` field, which some requests add, is the request's own.)
    let names: Vec<&str> = request
        .headers()
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| *name != "connection")
        .collect();
    if names != sent {
        found.push(format!("request fields {names:?}, not {sent:?}"));
    }
    if request.body().bytes_read() != 0 {
        found.push(format!("{} body bytes read", request.body().bytes_read()));
    }
    found
}

/// Leaves as much as it can on the request and response of `/mark` (a 418, odd fields, a
/// version, extensions, a reader body; a field and an extension on the request), and answers
/// `/check` with what it found of earlier exchanges ("clean" if nothing).
fn marking(request: &mut Request<Incoming>, response: &mut Response<Body>) {
    match request.uri().path() {
        "/mark" => {
            let found = leftovers(request, response, &["host", "x-one"]);
            assert!(found.is_empty(), "a /mark request found {found:?}");
            *response.status_mut() = StatusCode::IM_A_TEAPOT;
            *response.version_mut() = Version::HTTP_2;
            let fields = response.headers_mut();
            fields.insert("x-marked", HeaderValue::from_static("yes"));
            fields.append("set-cookie", HeaderValue::from_static("a=1"));
            fields.append("set-cookie", HeaderValue::from_static("b=2"));
            fields.insert("cache-control", HeaderValue::from_static("no-store"));
            response.extensions_mut().insert(Marker(1));
            let body = std::io::Cursor::new(b"marked body".to_vec());
            *response.body_mut() = Body::from_reader(body);
            request.extensions_mut().insert(Marker(2));
            let fields = request.headers_mut();
            fields.insert("x-added-by-handler", HeaderValue::from_static("1"));
        }
        "/check" => {
            let found = leftovers(request, response, &["host"]);
            let text = if found.is_empty() {
                "clean".to_owned()
            } else {
                found.join("\n")
            };
            *response.body_mut() = Body::from(text);
        }
        other => panic!("unexpected path {other}"),
    }
}

const MARK: &[u8] = b"GET /mark HTTP/1.1\r\nHost: x\r\nX-One: 1\r\n\r\n";
const CHECK: &[u8] = b"GET /check HTTP/1.1\r\nHost: x\r\n\r\n";

/// Reads the answers to `/mark` and `/check` and checks that the second has nothing of the
/// first.
fn mark_then_check(conn: &mut gruvi_stream::TcpStream, reader: &mut Reader) {
    let marked = reader.next(conn, Method::GET).unwrap().unwrap();
    assert_eq!(marked.status, 418);
    assert_eq!(marked.headers["x-marked"], "yes");
    assert_eq!(marked.headers.get_all("set-cookie").iter().count(), 2);
    assert_eq!(marked.headers["transfer-encoding"], "chunked");
    assert_eq!(marked.body, b"marked body");
    let checked = reader.next(conn, Method::GET).unwrap().unwrap();
    assert_eq!(checked.status, 200);
    assert_eq!(String::from_utf8_lossy(&checked.body), "clean");
    for name in [
        "x-marked",
        "set-cookie",
        "cache-control",
        "transfer-encoding",
    ] {
        assert!(!checked.headers.contains_key(name), "{name} on the wire");
    }
    assert_eq!(checked.headers["content-length"], "5");
}

fn serve_in_place(
    handler: impl Fn(&mut Request<Incoming>, &mut Response<Body>) + 'static,
) -> (Server, String) {
    support::serve_as(support::Shape::InPlace, ServerConfig::default(), handler)
}

#[test]
fn nothing_of_an_exchange_is_seen_by_the_next_on_a_kept_alive_connection() {
    run_clean(|| {
        let (server, addr) = serve_in_place(marking);
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        for _ in 0..3 {
            conn.write_all(MARK).unwrap();
            let marked = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(marked.status, 418);
            conn.write_all(CHECK).unwrap();
            let checked = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(String::from_utf8_lossy(&checked.body), "clean");
            assert!(!checked.headers.contains_key("x-marked"));
        }
        // The same, pipelined: both requests in one write, three times over in another.
        conn.write_all(&[MARK, CHECK].concat()).unwrap();
        mark_then_check(&mut conn, &mut reader);
        conn.write_all(&[MARK, CHECK].concat().repeat(3)).unwrap();
        for _ in 0..3 {
            mark_then_check(&mut conn, &mut reader);
        }
        server.close().unwrap();
    });
}

/// A handler that sets a field only when the request has one: a request without it gets a
/// response without it, and sees none of the last request's fields.
#[test]
fn a_field_set_only_on_some_requests_stays_with_them() {
    fn conditional(request: &mut Request<Incoming>, response: &mut Response<Body>) {
        if let Some(value) = request.headers().get("x-set") {
            let value = value.clone();
            response.headers_mut().insert("x-got", value);
        }
        let names: Vec<&str> = request.headers().keys().map(HeaderName::as_str).collect();
        *response.body_mut() = Body::from(names.join(","));
    }
    run_clean(|| {
        let (server, addr) = serve_in_place(conditional);
        let with = |v: &str| format!("GET / HTTP/1.1\r\nHost: x\r\nX-Set: {v}\r\n\r\n");
        let without = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned();
        let requests = [
            with("a"),
            without.clone(),
            with("b"),
            without.clone(),
            without,
        ];
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        let check = |answer: support::Answer, i: usize| {
            let body = String::from_utf8(answer.body).unwrap();
            match i {
                0 | 2 => {
                    assert_eq!(answer.headers["x-got"], ["a", "", "b"][i], "request {i}");
                    assert_eq!(body, "host,x-set", "request {i}");
                }
                _ => {
                    assert!(!answer.headers.contains_key("x-got"), "request {i}");
                    assert_eq!(body, "host", "request {i}");
                }
            }
        };
        // One at a time, then pipelined.
        for (i, request) in requests.iter().enumerate() {
            conn.write_all(request.as_bytes()).unwrap();
            check(reader.next(&mut conn, Method::GET).unwrap().unwrap(), i);
        }
        conn.write_all(requests.concat().as_bytes()).unwrap();
        for i in 0..requests.len() {
            check(reader.next(&mut conn, Method::GET).unwrap().unwrap(), i);
        }
        server.close().unwrap();
    });
}

/// Taking the header maps or the body out, or replacing the whole request or response, works
/// (only the reuse of the allocations is lost), and leaves nothing for the next request.
#[test]
fn a_handler_may_take_or_replace_the_parts() {
    fn taking(request: &mut Request<Incoming>, response: &mut Response<Body>) {
        match request.uri().path() {
            // The request's fields become the response's.
            "/take-maps" => {
                let fields = std::mem::take(request.headers_mut());
                let _ = std::mem::take(response.headers_mut());
                *response.headers_mut() = fields;
                *response.body_mut() = Body::from("took the maps");
            }
            "/take-body" => {
                let mut body = std::mem::take(request.body_mut());
                let mut text = String::new();
                body.read_to_string(&mut text).unwrap();
                *response.body_mut() = Body::from(format!("read {text}"));
            }
            "/replace" => {
                *request = Request::new(Incoming::empty());
                *response = Response::builder()
                    .status(StatusCode::CREATED)
                    .header("x-replaced", "1")
                    .body(Body::from("replaced"))
                    .unwrap();
                response.extensions_mut().insert(Marker(3));
            }
            _ => marking(request, response),
        }
    }
    run_clean(|| {
        let (server, addr) = serve_in_place(taking);
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        let wire = [
            &b"GET /take-maps HTTP/1.1\r\nHost: x\r\nX-Echoed: 7\r\n\r\n"[..],
            CHECK,
            b"POST /take-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            CHECK,
            b"GET /replace HTTP/1.1\r\nHost: x\r\n\r\n",
            CHECK,
            MARK,
            CHECK,
        ]
        .concat();
        for round in 0..2 {
            conn.write_all(&wire).unwrap();
            let took = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(took.headers["x-echoed"], "7", "round {round}");
            assert_eq!(took.body, b"took the maps");
            let checked = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(String::from_utf8_lossy(&checked.body), "clean");
            assert!(!checked.headers.contains_key("x-echoed"));
            let read = reader.next(&mut conn, Method::POST).unwrap().unwrap();
            assert_eq!(read.body, b"read hello");
            let checked = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(String::from_utf8_lossy(&checked.body), "clean");
            let replaced = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(replaced.status, 201);
            assert_eq!(replaced.headers["x-replaced"], "1");
            assert_eq!(replaced.body, b"replaced");
            let checked = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            assert_eq!(String::from_utf8_lossy(&checked.body), "clean");
            assert!(!checked.headers.contains_key("x-replaced"));
            mark_then_check(&mut conn, &mut reader);
        }
        server.close().unwrap();
    });
}

/// The server keeps a request's header map for the next request that sends the same fields:
/// whatever the handler did to the map, the next request sees exactly its own fields.
#[test]
fn a_request_map_changed_by_the_handler_is_not_kept() {
    fn mutating(request: &mut Request<Incoming>, response: &mut Response<Body>) {
        let seen: Vec<String> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let sensitive = if value.is_sensitive() {
                    " (sensitive)"
                } else {
                    ""
                };
                format!("{name}={}{sensitive}", value.to_str().unwrap())
            })
            .collect();
        *response.body_mut() = Body::from(seen.join(","));
        let path = request.uri().path().to_owned();
        let fields = request.headers_mut();
        let one = HeaderValue::from_static("1");
        match path.as_str() {
            "/insert" => drop(fields.insert("x-new", one)),
            "/change" => drop(fields.insert("a", HeaderValue::from_static("9"))),
            "/sensitive" => fields.get_mut("b").unwrap().set_sensitive(true),
            "/reorder" => {
                fields.remove("a");
                fields.append("a", one);
            }
            "/extra" => {
                fields.append("a", one);
                fields.remove("b");
            }
            "/clear" => fields.clear(),
            "/copy" => {
                let mut copy = gruvi_http::http::HeaderMap::new();
                for (name, value) in fields.iter() {
                    let value = HeaderValue::from_bytes(value.as_bytes()).unwrap();
                    copy.append(name.clone(), value);
                }
                *fields = copy;
            }
            _ => {}
        }
    }
    run_clean(|| {
        let (server, addr) = serve_in_place(mutating);
        let paths = [
            "/",
            "/insert",
            "/change",
            "/sensitive",
            "/reorder",
            "/extra",
            "/clear",
            "/copy",
        ];
        // Each path three times in a row, then all in turn, so that each change meets a head
        // whose fields are cached.
        let mut order: Vec<&str> = paths.iter().flat_map(|p| [*p; 3]).collect();
        order.extend(paths.iter().cycle().take(paths.len() * 3));
        let wire: Vec<u8> = order
            .iter()
            .flat_map(|path| {
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n").into_bytes()
            })
            .collect();
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        // Pipelined, then one at a time.
        conn.write_all(&wire).unwrap();
        for path in &order {
            let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            let body = String::from_utf8(answer.body).unwrap();
            assert_eq!(body, "host=x,a=1,b=2", "before {path} (pipelined)");
        }
        for path in &order {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n");
            conn.write_all(request.as_bytes()).unwrap();
            let answer = reader.next(&mut conn, Method::GET).unwrap().unwrap();
            let body = String::from_utf8(answer.body).unwrap();
            assert_eq!(body, "host=x,a=1,b=2", "before {path}");
        }
        server.close().unwrap();
    });
}

/// A handler that panics after filling in its response gets a 500 and its connection
/// closed; requests on new connections see nothing of it.
#[test]
fn a_panic_leaves_nothing_for_later_requests() {
    fn panicking(request: &mut Request<Incoming>, response: &mut Response<Body>) {
        if request.uri().path() == "/panic" {
            *response.status_mut() = StatusCode::ACCEPTED;
            let marked = HeaderValue::from_static("yes");
            response.headers_mut().insert("x-marked", marked);
            response.extensions_mut().insert(Marker(4));
            request.extensions_mut().insert(Marker(5));
            *response.body_mut() = Body::from("half done");
            panic!("in-place handler panicked on purpose");
        }
        marking(request, response);
    }
    run_clean(|| {
        let (server, addr) = serve_in_place(panicking);
        for _ in 0..3 {
            // After a good exchange on the same connection, and on a fresh one.
            let wire = [CHECK, b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n", CHECK].concat();
            let answer = roundtrip(&addr, &wire);
            assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer}");
            let (first, second) = answer.split_at(answer.rfind("HTTP/1.1 ").unwrap());
            assert!(first.ends_with("\r\n\r\nclean"), "{answer}");
            assert!(
                second.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
                "{answer}"
            );
            assert!(second.contains("connection: close\r\n"), "{answer}");
            assert!(!second.contains("x-marked") && !second.contains("half done"));
            let answer = roundtrip(
                &addr,
                b"GET /check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(answer.ends_with("\r\n\r\nclean"), "{answer}");
            assert!(!answer.contains("x-marked"), "{answer}");
        }
        server.close().unwrap();
    });
}

/// Exchanges running at the same time (more than the server keeps spare) each have their
/// own request and response all along.
#[test]
fn exchanges_at_the_same_time_each_have_their_own_request_and_response() {
    const CONNECTIONS: usize = 40;
    let waiting = Rc::new(RefCell::new(0usize));
    let most = Rc::new(RefCell::new(0usize));
    let (w, m) = (waiting.clone(), most.clone());
    let own = move |request: &mut Request<Incoming>, response: &mut Response<Body>| {
        if request.uri().path() != "/own" {
            return marking(request, response);
        }
        let id = request.uri().query().unwrap().to_owned();
        let value = HeaderValue::from_str(&id).unwrap();
        response.headers_mut().insert("x-id", value);
        response
            .extensions_mut()
            .insert(Marker(id.parse().unwrap()));
        *w.borrow_mut() += 1;
        let now = *w.borrow();
        m.replace_with(|most| (*most).max(now));
        fiber_core::sleep(Duration::from_millis(50)).unwrap();
        *w.borrow_mut() -= 1;
        // Nothing of the other exchanges came in meanwhile.
        let mine = response.headers().get_all("x-id").iter().count() == 1
            && response.headers()["x-id"] == id.as_str()
            && response
                .extensions()
                .get::<Marker>()
                .map(|m| m.0.to_string())
                == Some(id.clone())
            && request.uri().query() == Some(id.as_str());
        *response.body_mut() = Body::from(format!("{id} {}", if mine { "mine" } else { "mixed" }));
    };
    run_clean(|| {
        let (server, addr) = serve_in_place(own);
        let mut conns: Vec<_> = (0..CONNECTIONS).map(|_| connect(&addr)).collect();
        for (i, conn) in conns.iter_mut().enumerate() {
            let request = format!("GET /own?{i} HTTP/1.1\r\nHost: x\r\n\r\n");
            conn.write_all(&[request.as_bytes(), CHECK].concat())
                .unwrap();
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            let mut reader = Reader::new();
            let answer = reader.next(conn, Method::GET).unwrap().unwrap();
            assert_eq!(String::from_utf8(answer.body).unwrap(), format!("{i} mine"));
            assert_eq!(answer.headers["x-id"], i.to_string().as_str());
            let checked = reader.next(conn, Method::GET).unwrap().unwrap();
            assert_eq!(String::from_utf8_lossy(&checked.body), "clean", "{i}");
            assert!(!checked.headers.contains_key("x-id"));
        }
        // The handlers did overlap (else this test would not test anything).
        assert!(*most.borrow() > 16, "at most {} at once", most.borrow());
        server.close().unwrap();
    });
}

#[test]
fn workers_run_in_place_handlers() {
    let workers = Workers::start_in_place(
        2,
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        || marking,
    )
    .unwrap();
    let mut conn = std::net::TcpStream::connect(workers.local_addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let close = b"GET /check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    conn.write_all(&[MARK, close].concat()).unwrap();
    let mut answers = String::new();
    conn.read_to_string(&mut answers).unwrap();
    let (first, second) = answers.split_at(answers.rfind("HTTP/1.1 ").unwrap());
    assert!(first.starts_with("HTTP/1.1 418 "), "{answers}");
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{answers}");
    assert!(second.ends_with("\r\n\r\nclean"), "{answers}");
    assert!(!second.contains("x-marked"), "{answers}");
    drop(conn);
    workers.stop(Duration::from_secs(1)).unwrap();
}
