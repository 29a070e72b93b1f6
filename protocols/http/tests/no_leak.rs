//! The server keeps no heap memory per request: live allocations after thousands of kept-alive
//! and pipelined requests are what they were after a warm-up. A canary for the server's
//! shortcut that lets a written response go without running its drop glue (it relies on the
//! `http` crate's header maps owning no allocation while they have no index slots): should a
//! later `http` release break that, every request would leak, and this test fails.
//!
//! The same for in-place handlers, whose requests and responses the server keeps for later
//! exchanges (with their header maps): they must not grow in number either.
//!
//! One test in this file on purpose: the allocator's counts are process-wide.

mod support;

use std::io::Write;

use gruvi_http::http::header::{CONTENT_TYPE, HeaderValue};
use gruvi_http::http::{Method, Request, Response, StatusCode};
use gruvi_http::{Body, Incoming, ServerConfig};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use support::{Reader, Shape, connect, run_clean, serve, serve_as};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Heap blocks allocated and not yet freed, process-wide.
fn live_blocks() -> isize {
    let stats = ALLOCATOR.stats();
    stats.allocations as isize - stats.deallocations as isize
}

fn app(request: Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/" => Response::builder()
            .header("content-type", "text/plain")
            .body(Body::from("Hello, World!"))
            .unwrap(),
        "/empty" => Response::new(Body::empty()),
        _ => Response::builder().status(404).body(Body::empty()).unwrap(),
    }
}

/// [`app`] in place.
fn app_in_place(request: &mut Request<Incoming>, response: &mut Response<Body>) {
    match request.uri().path() {
        "/" => {
            let plain = HeaderValue::from_static("text/plain");
            response.headers_mut().insert(CONTENT_TYPE, plain);
            *response.body_mut() = Body::from("Hello, World!");
        }
        "/empty" => {}
        _ => *response.status_mut() = StatusCode::NOT_FOUND,
    }
}

/// Sends `rounds` batches of `batch` pipelined requests on `conn` and reads every answer.
fn exchange(conn: &mut gruvi_stream::TcpStream, reader: &mut Reader, rounds: usize, batch: usize) {
    let paths = ["/", "/empty", "/missing"];
    for round in 0..rounds {
        let mut out = Vec::new();
        for i in 0..batch {
            let path = paths[(round + i) % paths.len()];
            write!(out, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        }
        conn.write_all(&out).unwrap();
        for _ in 0..batch {
            let answer = reader.next(conn, Method::GET).unwrap().unwrap();
            assert!([200, 404].contains(&answer.status), "{}", answer.status);
        }
    }
}

#[test]
fn thousands_of_requests_leave_no_heap_block_behind() {
    for shape in [Shape::Owned, Shape::InPlace] {
        requests_leave_no_heap_block_behind(shape);
    }
}

fn requests_leave_no_heap_block_behind(shape: Shape) {
    run_clean(|| {
        let (server, addr) = match shape {
            Shape::Owned => serve(ServerConfig::default(), app),
            Shape::InPlace => serve_as(shape, ServerConfig::default(), app_in_place),
        };
        let mut conn = connect(&addr);
        let mut reader = Reader::new();
        // Warm-up: per-thread caches, recycled boxes and buffers reach their steady state.
        exchange(&mut conn, &mut reader, 50, 1);
        exchange(&mut conn, &mut reader, 20, 16);
        let before = live_blocks();
        exchange(&mut conn, &mut reader, 2_000, 1);
        exchange(&mut conn, &mut reader, 200, 16);
        let grown = live_blocks() - before;
        // 5,200 requests: a leak of one block per request (or per response) shows as thousands.
        assert!(
            grown < 100,
            "{shape:?}: {grown} more live heap blocks after 5,200 requests"
        );
        drop(conn);
        server.shutdown(std::time::Duration::from_secs(1)).unwrap();
    });
}
