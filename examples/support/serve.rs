//! What the example servers share (included with `#[path]`): listen on every address, print
//! `listening on ADDR` for each, serve until SIGINT or SIGTERM, then close.

use std::io::{self, Write};

use gruvi::fiber;
use gruvi::stream::Address;

/// A server the examples run: a stream server or a JSON-RPC server.
pub trait Listen {
    /// Starts listening on `addr`.
    fn listen(&self, addr: &Address) -> io::Result<()>;
    /// The addresses listened on (ports picked by the system filled in).
    fn addresses(&self) -> Vec<Address>;
    /// Stops listening and closes the connections.
    fn close(&self) -> io::Result<()>;
}

impl Listen for gruvi::stream::Server {
    fn listen(&self, addr: &Address) -> io::Result<()> {
        gruvi::stream::Server::listen(self, addr)
    }
    fn addresses(&self) -> Vec<Address> {
        gruvi::stream::Server::addresses(self)
    }
    fn close(&self) -> io::Result<()> {
        gruvi::stream::Server::close(self)
    }
}

impl Listen for gruvi::jsonrpc::Server {
    fn listen(&self, addr: &Address) -> io::Result<()> {
        gruvi::jsonrpc::Server::listen(self, addr)
    }
    fn addresses(&self) -> Vec<Address> {
        gruvi::jsonrpc::Server::addresses(self)
    }
    fn close(&self) -> io::Result<()> {
        gruvi::jsonrpc::Server::close(self)
    }
}

/// Listens on `addrs`, prints `listening on ADDR` for each once connections are accepted,
/// serves until SIGINT or SIGTERM, then closes the server.
///
/// # Switchpoint
///
/// Blocks the fiber until the signal.
pub fn serve_until_signal(server: &impl Listen, addrs: &[Address]) -> io::Result<()> {
    for addr in addrs {
        server
            .listen(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    }
    // Watch for the signals before telling anyone we are ready: a SIGINT sent as soon as
    // the address is printed must find the watcher, not the default action.
    let signal = fiber::spawn(|| fiber::wait_for_signal(&[libc::SIGINT, libc::SIGTERM]));
    fiber::yield_now()?;
    let mut out = io::stdout().lock();
    for addr in server.addresses() {
        writeln!(out, "listening on {addr}")?;
    }
    out.flush()?;
    drop(out);
    signal
        .join()
        .map_err(|e| io::Error::other(e.to_string()))??;
    server.close()
}
