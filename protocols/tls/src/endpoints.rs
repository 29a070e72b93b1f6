//! Endpoints with TLS: [`connect`] returns once the handshake is done, and [`server`] makes a
//! [`Server`] whose handlers get TLS streams.

use std::any::Any;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use gruvi_stream::{Address, Connection, Server, Stream, TcpStream, UnixStream};

use crate::config::{ClientConfig, ServerConfig};
use crate::error::TlsError;
use crate::stream::TlsStream;

/// Connects to `addr` (TCP host and port, or a Unix socket path) and starts TLS as the client,
/// verifying the server as the address's host (name or IP address). Returns once the handshake
/// is done. TCP connections have Nagle's algorithm off.
///
/// # Switchpoint
///
/// Blocks for the connection (at most the config's connect timeout) and the handshake (at most
/// its handshake timeout).
///
/// # Errors
///
/// The connection's errors (`ConnectionRefused`, `TimedOut`...), the handshake's
/// ([`TlsError::Verification`], [`TlsError::Protocol`], [`TlsError::HandshakeTimeout`]);
/// `InvalidInput` for a Unix socket address (it names no host: use [`connect_with_name`]).
///
/// # Examples
///
/// ```no_run
/// use gruvi_tls::ClientConfig;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let config = ClientConfig::builder().add_ca_file("ca.pem").build()?;
///     let stream = gruvi_tls::connect(&"localhost:8443".parse()?, &config)?;
///     stream.write_all(b"hello\n")?;
///     println!("{:?}", stream.readline(None)?);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect(addr: &Address, config: &ClientConfig) -> io::Result<Rc<Stream<TlsStream>>> {
    match addr {
        Address::Tcp(host, _) => connect_with_name(addr, host, config),
        Address::Unix(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a Unix socket address names no host to verify: use connect_with_name",
        )),
    }
}

/// [`connect`], verifying the server as `server_name` (also sent as SNI unless it is an IP
/// address) whatever the address.
///
/// # Switchpoint
///
/// As [`connect`].
///
/// # Errors
///
/// As [`connect`].
pub fn connect_with_name(
    addr: &Address,
    server_name: &str,
    config: &ClientConfig,
) -> io::Result<Rc<Stream<TlsStream>>> {
    let open = || -> io::Result<TlsStream> {
        match addr {
            Address::Tcp(host, port) => {
                let tcp = TcpStream::connect((host.as_str(), *port))?;
                // Only fails on a closed handle, which the handshake reports anyway.
                let _ = tcp.set_nodelay(true);
                Ok(TlsStream::client_unwrapped(tcp, config, server_name))
            }
            Address::Unix(path) => Ok(TlsStream::client_unwrapped(
                UnixStream::connect(path)?,
                config,
                server_name,
            )),
        }
    };
    let tls = match config.connect_timeout() {
        None => open()?,
        Some(limit) => match fiber_core::timeout(limit, open) {
            Ok(result) => result?,
            Err(fiber_core::Error::TimedOut) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
            Err(err) => return Err(err.into()),
        },
    };
    tls.start_tls()?;
    Ok(Rc::new(Stream::new(tls)))
}

/// A [`Server`] that runs `handler` for each connection over TLS.
///
/// The handshake runs in the connection's own fiber, before the handler, limited by the
/// config's handshake timeout: a client that connects and says nothing never holds up the
/// accepting fiber or other clients, and is dropped after the timeout. A failed handshake
/// closes the connection (the client gets the alert). When the handler returns `Ok`, the
/// server sends `close_notify` (if the handler did not) and waits up to the config's close
/// timeout for it to go out. Listen, limits, `close` and `shutdown` are the [`Server`]'s: it
/// serves at most [`DEFAULT_MAX_CONNECTIONS`](gruvi_stream::DEFAULT_MAX_CONNECTIONS)
/// connections at once unless [`set_max_connections`](Server::set_max_connections) says
/// otherwise, counting those still in their handshake.
///
/// Iterating over the handler's stream (`for line in &*stream`, as below) caps each line at
/// the stream's [`max_line`](Stream::max_line), so a peer that never sends a newline cannot
/// make the server buffer without end.
///
/// The handler gets a [`Stream`] over a [`TlsStream`]; for TLS details (ALPN, the client's
/// certificate, SNI) downcast its connection:
/// `stream.connection().as_any().downcast_ref::<TlsStream>()`.
///
/// # Examples
///
/// ```no_run
/// use std::rc::Rc;
/// use gruvi_stream::Stream;
/// use gruvi_tls::{CertifiedKey, ServerConfig};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let identity = CertifiedKey::from_pem_files("cert.pem", "key.pem")?;
///     let config = ServerConfig::builder(identity).build()?;
///     let server = gruvi_tls::server(config, |stream: Rc<Stream>| {
///         for line in &*stream {
///             stream.write_all(&line?)?;
///         }
///         Ok(())
///     });
///     server.listen(&"127.0.0.1:8443".parse()?)?;
///     fiber_core::sleep(std::time::Duration::from_secs(60))?;
///     server.close()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn server(
    config: ServerConfig,
    handler: impl Fn(Rc<Stream>) -> io::Result<()> + 'static,
) -> Server {
    Server::new(move |raw: Rc<Stream>| {
        let tls = TlsStream::accept(Shared(raw), &config)?;
        let stream: Rc<Stream> = Rc::new(Stream::new(tls));
        handler(stream.clone())?;
        close_gracefully(&stream, config.close_timeout())
    })
}

/// Sends `close_notify` unless it was sent, and waits for it to reach the kernel.
fn close_gracefully(stream: &Stream, limit: Option<Duration>) -> io::Result<()> {
    let send = || stream.write_eof();
    let result = match limit {
        None => send(),
        Some(limit) => fiber_core::timeout(limit, send).unwrap_or_else(|e| Err(e.into())),
    };
    match result {
        // The handler shut down already, or the peer left: nothing more to send.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) if TlsError::from_io(&err).is_some() => Ok(()),
        other => other,
    }
}

/// A server's connection (a shared [`Stream`]) as a [`Connection`] for [`TlsStream`].
struct Shared(Rc<Stream>);

impl Connection for Shared {
    fn fill(&self) -> io::Result<bool> {
        self.0.fill()
    }

    fn with_buffered(&self, f: &mut dyn FnMut(&[u8])) {
        self.0.with_buffered(f)
    }

    fn consume(&self, n: usize) {
        self.0.consume(n)
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn flush_queue(&self) -> io::Result<()> {
        self.0.flush()
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.0.write_eof()
    }

    fn close(&self) {
        self.0.close()
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.connection().set_read_timeout(timeout)
    }

    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.connection().read_timeout()
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.connection().set_write_timeout(timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.connection().write_timeout()
    }

    fn peer_address(&self) -> io::Result<Address> {
        self.0.connection().peer_address()
    }

    fn local_address(&self) -> io::Result<Address> {
        self.0.connection().local_address()
    }

    fn as_any(&self) -> &dyn Any {
        self.0.connection().as_any()
    }
}
