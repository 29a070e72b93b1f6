//! An HTTP/1.1 server: a fiber per connection while it has a request in progress (idle
//! keep-alive connections hold none), on one thread unless told otherwise.
//!
//! ```text
//! http_server [--listen ADDR]... [--workers N] [--tls-cert FILE --tls-key FILE]
//! ```
//!
//! `ADDR` is `host:port` (default `127.0.0.1:8080`; port 0 picks a free one) or a Unix socket
//! path (anything with a `/`). `--workers N` runs N threads, each with its own Hub, accepting
//! on the same TCP address with `SO_REUSEPORT`. Routes:
//!
//! - `GET /`: `Hello, World!` (13 bytes, `text/plain`);
//! - `/echo`: the request body back, with the request's `X-Echo` header;
//! - `/stream?n=N`: N lines, sent chunked;
//! - `/sleep?ms=M`: answers after M milliseconds;
//! - `/status/NNN`: answers with that status;
//! - anything else: 404.
//!
//! Prints `listening on ADDR` per address once it accepts connections, and exits with status
//! 0 on SIGINT or SIGTERM. The peer benchmark harness runs it as
//! `http_server --listen 127.0.0.1:PORT`. The handler is an in-place one
//! ([`Server::in_place`](gruvi::http::Server::in_place)): it fills in a response the server
//! reuses from one request to the next. With `--tls-cert FILE --tls-key FILE` (PEM: the
//! certificate chain, leaf first, and its private key) it serves HTTPS, offering ALPN
//! `http/1.1`; each connection's handshake runs in its own fiber.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use gruvi::fiber;
use gruvi::http::http::header::{CONTENT_TYPE, HeaderValue};
use gruvi::http::http::{Request, Response, StatusCode};
use gruvi::http::{Body, Incoming, Server, ServerConfig, Workers, tls_server_builder};
use gruvi::stream::Address;

const USAGE: &str =
    "usage: http_server [--listen ADDR]... [--workers N] [--tls-cert FILE --tls-key FILE]";

/// The largest body `/echo` takes.
const MAX_ECHO: usize = 16 * 1024 * 1024;

struct Options {
    listen: Vec<Address>,
    workers: Option<usize>,
    /// The certificate and key files, for HTTPS.
    tls: Option<(String, String)>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        listen: Vec::new(),
        workers: None,
        tls: None,
    };
    let (mut cert, mut key) = (None, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let addr = value("--listen")?;
                let addr = addr.parse().map_err(|e| format!("--listen {addr}: {e}"))?;
                options.listen.push(addr);
            }
            "--workers" => {
                let n = value("--workers")?;
                let n: usize = n.parse().map_err(|e| format!("--workers {n}: {e}"))?;
                if n == 0 {
                    return Err("--workers must be at least 1".into());
                }
                options.workers = Some(n);
            }
            "--tls-cert" => cert = Some(value("--tls-cert")?),
            "--tls-key" => key = Some(value("--tls-key")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    options.tls = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(format!("--tls-cert and --tls-key go together\n{USAGE}")),
    };
    if options.listen.is_empty() {
        options.listen.push(Address::Tcp("127.0.0.1".into(), 8080));
    }
    Ok(options)
}

/// The routes, filling in the response the server reuses from one request to the next
/// (it comes as a fresh `200 OK` with no fields and an empty body). A response without a
/// `Content-Type` gets the server's default one, `text/plain` (see [`server_config`]).
fn handle(request: &mut Request<Incoming>, response: &mut Response<Body>) {
    let path = request.uri().path();
    if path == "/" {
        *response.body_mut() = Body::from("Hello, World!");
        return;
    }
    if path == "/echo" {
        let echo = request.headers().get("x-echo").cloned();
        match request.body_mut().read_to_vec(MAX_ECHO) {
            Ok(body) => {
                if let Some(echo) = echo {
                    response.headers_mut().insert("x-echo", echo);
                }
                let bytes = HeaderValue::from_static("application/octet-stream");
                response.headers_mut().insert(CONTENT_TYPE, bytes);
                *response.body_mut() = Body::from(body);
            }
            Err(err) => status(response, StatusCode::BAD_REQUEST, format!("{err}\n")),
        }
        return;
    }
    if path == "/stream" {
        let Some(n) = query_number(request, "n") else {
            return status(
                response,
                StatusCode::BAD_REQUEST,
                "usage: /stream?n=LINES\n".into(),
            );
        };
        *response.body_mut() = Body::from_writer(move |w| {
            // Lines gathered into chunks of 8 KiB rather than a chunk per line.
            let mut w = io::BufWriter::with_capacity(8192, w);
            for i in 0..n {
                writeln!(w, "line {i}")?;
            }
            w.flush()
        });
        return;
    }
    if path == "/sleep" {
        let Some(ms) = query_number(request, "ms") else {
            return status(
                response,
                StatusCode::BAD_REQUEST,
                "usage: /sleep?ms=MILLISECONDS\n".into(),
            );
        };
        if fiber::sleep(Duration::from_millis(ms)).is_err() {
            return status(
                response,
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down\n".into(),
            );
        }
        return status(response, StatusCode::OK, format!("slept {ms} ms\n"));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return match code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok()) {
            Some(code) if code.as_u16() >= 200 => status(response, code, format!("{code}\n")),
            _ => status(
                response,
                StatusCode::BAD_REQUEST,
                "usage: /status/NNN (200-999)\n".into(),
            ),
        };
    }
    status(response, StatusCode::NOT_FOUND, "not found\n".into());
}

/// A `key=N` number from the query string.
fn query_number(request: &Request<Incoming>, key: &str) -> Option<u64> {
    let query = request.uri().query()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
}

/// Answers with `code` and a plain-text `text`.
fn status(response: &mut Response<Body>, code: StatusCode, text: String) {
    *response.status_mut() = code;
    let plain = HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(CONTENT_TYPE, plain);
    *response.body_mut() = Body::from(text);
}

fn announce(addresses: impl IntoIterator<Item = String>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for addr in addresses {
        writeln!(out, "listening on {addr}")?;
    }
    out.flush()
}

/// Waits for SIGINT or SIGTERM. The watcher is in place before anyone is told the server is
/// ready, so a signal sent as soon as the address is printed finds it.
fn until_signal(ready: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let signal = fiber::spawn(|| fiber::wait_for_signal(&[libc::SIGINT, libc::SIGTERM]));
    fiber::yield_now()?;
    ready()?;
    signal
        .join()
        .map_err(|e| io::Error::other(e.to_string()))??;
    Ok(())
}

/// The server's settings: the defaults, with `Content-Type: text/plain` for responses that
/// set none (written from bytes encoded once, cheaper than an `insert` per response), and
/// TLS when asked for.
fn server_config(options: &Options) -> io::Result<ServerConfig> {
    let mut config = ServerConfig::default();
    let plain = HeaderValue::from_static("text/plain");
    config.default_headers.insert(CONTENT_TYPE, plain);
    if let Some((cert, key)) = &options.tls {
        let identity = gruvi::tls::CertifiedKey::from_pem_files(cert, key)?;
        config.tls = Some(tls_server_builder(identity).build()?);
    }
    Ok(config)
}

fn serve_one_thread(options: &Options) -> io::Result<()> {
    let server = Server::in_place_with_config(handle, server_config(options)?);
    for addr in &options.listen {
        server
            .listen(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    }
    until_signal(|| announce(server.addresses().iter().map(ToString::to_string)))?;
    server.shutdown(Duration::from_secs(1))
}

fn serve_workers(options: &Options, n: usize) -> io::Result<()> {
    let config = server_config(options)?;
    let mut groups = Vec::new();
    for addr in &options.listen {
        let Address::Tcp(host, port) = addr else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--workers needs TCP addresses, not {addr}"),
            ));
        };
        let ip = gruvi::stream::lookup_host(host, *port)?;
        let Some(&bind) = ip.first() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no address"),
            ));
        };
        let bind: SocketAddr = bind;
        let workers = Workers::start_in_place(n, bind, config.clone(), || handle)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        groups.push(workers);
    }
    until_signal(|| announce(groups.iter().map(|w| w.local_addr().to_string())))?;
    for workers in groups {
        workers.stop(Duration::from_secs(1))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let result = fiber::run(|| match options.workers {
        None => serve_one_thread(&options),
        Some(n) => serve_workers(&options, n),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("http_server: {err}");
            ExitCode::FAILURE
        }
    }
}
