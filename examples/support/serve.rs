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

/// The options every example server takes: `--listen ADDR`..., `--max-connections N`,
/// `--tls-cert FILE --tls-key FILE`.
#[allow(dead_code)] // not every example server takes them all
pub struct ServerOptions {
    /// Where to listen.
    pub listen: Vec<Address>,
    /// Connections beyond this are closed at once.
    pub max_connections: Option<usize>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

#[allow(dead_code)]
impl ServerOptions {
    /// No addresses yet, `max_connections` as given, no TLS.
    pub fn new(max_connections: Option<usize>) -> ServerOptions {
        ServerOptions {
            listen: Vec::new(),
            max_connections,
            tls_cert: None,
            tls_key: None,
        }
    }

    /// Takes `arg` (and its value, from `value`) if it is one of these options: `Ok(true)`.
    pub fn parse(
        &mut self,
        arg: &str,
        mut value: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<bool, String> {
        match arg {
            "--listen" => {
                let addr = value("--listen")?;
                let addr = addr.parse().map_err(|e| format!("--listen {addr}: {e}"))?;
                self.listen.push(addr);
            }
            "--max-connections" => {
                let n = value("--max-connections")?;
                let n = n
                    .parse()
                    .map_err(|e| format!("--max-connections {n}: {e}"))?;
                self.max_connections = Some(n);
            }
            "--tls-cert" => self.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => self.tls_key = Some(value("--tls-key")?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the options once all are parsed, listening on `default` if no address was
    /// given.
    pub fn finish(&mut self, default: Address, usage: &str) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(format!("--tls-cert and --tls-key go together\n{usage}"));
        }
        if self.listen.is_empty() {
            self.listen.push(default);
        }
        Ok(())
    }

    /// The TLS configuration from `--tls-cert` and `--tls-key`, if given.
    pub fn tls_config(&self) -> io::Result<Option<gruvi::tls::ServerConfig>> {
        match self.tls_cert.as_ref().zip(self.tls_key.as_ref()) {
            Some((cert, key)) => Ok(Some(gruvi::tls::ServerConfig::from_pem_files(cert, key)?)),
            None => Ok(None),
        }
    }
}
