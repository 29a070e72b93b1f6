//! An echo server: one fiber per connection, all on one thread.
//!
//! ```text
//! echo_server [--listen ADDR]... [--max-connections N] [--tls-cert FILE --tls-key FILE]
//! ```
//!
//! `ADDR` is `host:port` (default `127.0.0.1:7000`; port 0 picks a free one) or a Unix socket
//! path (anything with a `/`, or `@name` for an abstract socket). Each connection gets back what
//! it sends until it half-closes; the rest of its echo still goes out, then end of stream.
//! Connections beyond `--max-connections` are closed at once. With `--tls-cert` (a PEM
//! certificate chain, leaf first) and `--tls-key` (its PEM private key) every connection speaks
//! TLS: the echo ends at the client's `close_notify` and the server answers with its own.
//! Prints `listening on ADDR` per address once it accepts connections, and exits with status 0
//! on SIGINT or SIGTERM.
//!
//! The peer benchmark harness runs it as `echo_server --listen 127.0.0.1:PORT`.

use std::io;
use std::process::ExitCode;
use std::rc::Rc;

use gruvi::fiber;
use gruvi::stream::{Address, Server, Stream};

#[path = "support/serve.rs"]
mod serve;

use serve::ServerOptions;

const USAGE: &str = "usage: echo_server [--listen ADDR]... [--max-connections N] \
                     [--tls-cert FILE --tls-key FILE]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<ServerOptions, String> {
    let mut options = ServerOptions::new(None);
    while let Some(arg) = args.next() {
        let value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            other if options.parse(other, value)? => {}
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    options.finish(Address::Tcp("127.0.0.1".into(), 7000), USAGE)?;
    Ok(options)
}

/// Echoes until the peer half-closes, then sends end of stream after the last byte.
fn echo(stream: Rc<Stream>) -> io::Result<()> {
    let mut chunk = Vec::new();
    while stream.fill()? {
        // Copy the received bytes out first: a write may block, and the receive buffer must not
        // stay borrowed across a switch.
        stream.with_buffered(|data| {
            chunk.clear();
            chunk.extend_from_slice(data);
        });
        stream.consume(chunk.len());
        stream.write_all(&chunk)?;
    }
    stream.write_eof()
}

fn serve(options: &ServerOptions) -> io::Result<()> {
    let server = match options.tls_config()? {
        Some(config) => gruvi::tls::server(config, echo),
        None => Server::new(echo),
    };
    server.set_max_connections(options.max_connections);
    serve::serve_until_signal(&server, &options.listen)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match fiber::run(|| serve(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo_server: {err}");
            ExitCode::FAILURE
        }
    }
}
