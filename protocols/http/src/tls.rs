//! HTTPS: the server's TLS wrapper and the TLS configurations HTTP/1.1 wants (ALPN
//! `http/1.1`).

use std::cell::OnceCell;
use std::io;
use std::rc::Rc;

use gruvi_stream::Connection;
use gruvi_tls::{CertifiedKey, ClientConfigBuilder, ServerConfigBuilder, TlsStream};

use crate::server::Wrapper;

/// The ALPN protocol of HTTP/1.1.
const ALPN: &[u8] = b"http/1.1";

/// A TLS client configuration builder for HTTPS: [`gruvi_tls::ClientConfig::builder`]'s
/// defaults (the system trust store, TLS 1.2 or later, verification of the server's
/// certificate and name) offering ALPN `http/1.1`. Add CAs with
/// [`add_ca_file`](ClientConfigBuilder::add_ca_file), then set the result as
/// [`ClientConfig::tls`](crate::ClientConfig::tls).
///
/// # Examples
///
/// ```
/// use gruvi_http::{Client, ClientConfig, tls_client_builder};
///
/// let tls = tls_client_builder().build()?;
/// let client = Client::with_config(ClientConfig { tls: Some(tls), ..ClientConfig::default() });
/// # Ok::<(), gruvi_tls::TlsError>(())
/// ```
pub fn tls_client_builder() -> ClientConfigBuilder {
    gruvi_tls::ClientConfig::builder().alpn_protocols(&[ALPN])
}

/// A TLS server configuration builder for HTTPS presenting `identity`, accepting ALPN
/// `http/1.1`; set the result as [`ServerConfig::tls`](crate::ServerConfig::tls) (it works for
/// [`Workers`](crate::Workers) too).
///
/// # Examples
///
/// ```no_run
/// use gruvi_http::{Body, Server, ServerConfig, tls_server_builder};
/// use gruvi_http::http::Response;
/// use gruvi_tls::CertifiedKey;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let identity = CertifiedKey::from_pem_files("cert.pem", "key.pem")?;
///     let config = ServerConfig {
///         tls: Some(tls_server_builder(identity).build()?),
///         ..ServerConfig::default()
///     };
///     let server = Server::with_config(|_| Response::new(Body::from("secure")), config);
///     server.listen(&"127.0.0.1:8443".parse()?)?;
///     fiber_core::sleep(std::time::Duration::from_secs(60))?;
///     server.close()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn tls_server_builder(identity: CertifiedKey) -> ServerConfigBuilder {
    gruvi_tls::ServerConfig::builder(identity).alpn_protocols(&[ALPN])
}

/// The server's connection wrapper for `config`: the handshake, in the connection's fiber,
/// within the config's handshake timeout.
pub(crate) fn wrapper(config: gruvi_tls::ServerConfig) -> Rc<Wrapper> {
    Rc::new(
        move |conn: Rc<dyn Connection>| -> io::Result<Rc<dyn Connection>> {
            Ok(Rc::new(TlsStream::accept(conn, &config)?))
        },
    )
}

thread_local! {
    /// [`tls_client_builder`]'s configuration, built once per thread (it reads the system
    /// trust store).
    static DEFAULT_CLIENT: OnceCell<gruvi_tls::ClientConfig> = const { OnceCell::new() };
}

/// The client's TLS configuration: its own, or the default one.
pub(crate) fn client_config(
    own: Option<&gruvi_tls::ClientConfig>,
) -> io::Result<gruvi_tls::ClientConfig> {
    if let Some(config) = own {
        return Ok(config.clone());
    }
    DEFAULT_CLIENT.with(|cell| {
        if let Some(config) = cell.get() {
            return Ok(config.clone());
        }
        let config = tls_client_builder().build()?;
        Ok(cell.get_or_init(|| config).clone())
    })
}
