//! TLS configurations: [`ClientConfig`] and [`ServerConfig`] with their builders, and the
//! [`CertifiedKey`] a server presents.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    AlpnError, SniError, SslAcceptor, SslConnector, SslContext, SslContextBuilder, SslMethod,
    SslOptions, SslRef, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use crate::error::TlsError;

/// How long a handshake may take by default, on either side.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server waits by default, once its handler returned, for its `close_notify` to be
/// sent.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS protocol version, for the lowest and highest versions a side accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.0 (insecure; only for talking to old peers).
    Tls1_0,
    /// TLS 1.1 (insecure; only for talking to old peers).
    Tls1_1,
    /// TLS 1.2, the default minimum.
    Tls1_2,
    /// TLS 1.3.
    Tls1_3,
}

impl TlsVersion {
    fn to_openssl(self) -> SslVersion {
        match self {
            TlsVersion::Tls1_0 => SslVersion::TLS1,
            TlsVersion::Tls1_1 => SslVersion::TLS1_1,
            TlsVersion::Tls1_2 => SslVersion::TLS1_2,
            TlsVersion::Tls1_3 => SslVersion::TLS1_3,
        }
    }
}

/// A certificate chain (leaf first) and its private key.
#[derive(Clone)]
pub struct CertifiedKey {
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl CertifiedKey {
    /// Parses a PEM certificate chain (the leaf first, then its intermediates) and a PEM
    /// private key, and checks that they belong together.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] naming what is wrong.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
        let chain = X509::stack_from_pem(chain_pem)
            .map_err(|e| TlsError::config("certificate chain", e))?;
        if chain.is_empty() {
            return Err(TlsError::Config(
                "certificate chain: no certificate in the PEM data".into(),
            ));
        }
        let key =
            PKey::private_key_from_pem(key_pem).map_err(|e| TlsError::config("private key", e))?;
        let public = chain[0]
            .public_key()
            .map_err(|e| TlsError::config("certificate", e))?;
        if !public.public_eq(&key) {
            return Err(TlsError::Config(
                "the private key does not match the certificate".into(),
            ));
        }
        Ok(CertifiedKey { chain, key })
    }

    /// Reads [`from_pem`](Self::from_pem)'s inputs from files.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] for an unreadable file or bad contents.
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<CertifiedKey, TlsError> {
        CertifiedKey::from_pem(&read(chain.as_ref())?, &read(key.as_ref())?)
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &X509 {
        &self.chain[0]
    }

    fn install_on_context(&self, ctx: &mut SslContextBuilder) -> Result<(), TlsError> {
        let bad = |e| TlsError::config("certificate", e);
        ctx.set_certificate(&self.chain[0]).map_err(bad)?;
        ctx.set_private_key(&self.key).map_err(bad)?;
        for cert in &self.chain[1..] {
            ctx.add_extra_chain_cert(cert.clone()).map_err(bad)?;
        }
        Ok(())
    }

    fn install_on_ssl(&self, ssl: &mut SslRef) -> Result<(), openssl::error::ErrorStack> {
        ssl.set_certificate(&self.chain[0])?;
        ssl.set_private_key(&self.key)?;
        for cert in &self.chain[1..] {
            ssl.add_chain_cert(cert.clone())?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("leaf", &self.chain[0].subject_name())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))
}

/// ALPN protocol names in the wire format (each prefixed by its length).
fn alpn_wire(protocols: &[&[u8]]) -> Result<Vec<u8>, TlsError> {
    let mut wire = Vec::new();
    for p in protocols {
        let len = u8::try_from(p.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| TlsError::Config("an ALPN protocol name must be 1-255 bytes".into()))?;
        wire.push(len);
        wire.extend_from_slice(p);
    }
    Ok(wire)
}

/// The first of the server's protocols (in its order of preference) that the client offers,
/// as a slice of the client's list.
fn select_alpn<'a>(server: &[Vec<u8>], client_wire: &'a [u8]) -> Option<&'a [u8]> {
    let mut offered = Vec::new();
    let mut rest = client_wire;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len > tail.len() {
            break;
        }
        offered.push(&tail[..len]);
        rest = &tail[len..];
    }
    server
        .iter()
        .find_map(|want| offered.iter().find(|p| **p == want.as_slice()).copied())
}

/// A client's TLS settings: whom to trust, ALPN, an optional client certificate, versions and
/// the handshake timeout. Cheap to clone.
///
/// Verification is on: the server's certificate must chain to the system's trust store or a
/// CA added with [`ClientConfigBuilder::add_ca_pem`], and match the name (or IP address)
/// connected to. TLS 1.2 is the lowest version accepted; renegotiation is refused.
///
/// # Examples
///
/// ```
/// use gruvi_tls::ClientConfig;
///
/// let config = ClientConfig::builder()
///     .alpn_protocols(&[b"http/1.1"])
///     .build()?;
/// assert_eq!(config.handshake_timeout(), Some(gruvi_tls::DEFAULT_HANDSHAKE_TIMEOUT));
/// # Ok::<(), gruvi_tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) connector: SslConnector,
    handshake_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
}

impl ClientConfig {
    /// A builder with the defaults: the system trust store, TLS 1.2 or later, no ALPN, no
    /// client certificate, [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder {
            system_roots: true,
            cas: Vec::new(),
            alpn: Vec::new(),
            identity: None,
            min_version: Some(TlsVersion::Tls1_2),
            max_version: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            connect_timeout: Some(gruvi_stream::DEFAULT_CONNECT_TIMEOUT),
            error: None,
        }
    }

    /// How long a handshake may take (`None`: no limit).
    pub fn handshake_timeout(&self) -> Option<Duration> {
        self.handshake_timeout
    }

    /// How long [`connect`](crate::connect) waits for the connection itself (`None`: no
    /// limit).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ClientConfig`]; errors in PEM data surface from [`build`](Self::build).
pub struct ClientConfigBuilder {
    system_roots: bool,
    cas: Vec<X509>,
    alpn: Vec<Vec<u8>>,
    identity: Option<CertifiedKey>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    handshake_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    error: Option<TlsError>,
}

impl ClientConfigBuilder {
    /// Trusts the CA certificates in `pem` as well.
    pub fn add_ca_pem(mut self, pem: &[u8]) -> Self {
        match X509::stack_from_pem(pem) {
            Ok(certs) if !certs.is_empty() => self.cas.extend(certs),
            Ok(_) => self.fail(TlsError::Config("CA file: no certificate in it".into())),
            Err(e) => self.fail(TlsError::config("CA certificate", e)),
        }
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` as well.
    pub fn add_ca_file(self, path: impl AsRef<Path>) -> Self {
        match read(path.as_ref()) {
            Ok(pem) => self.add_ca_pem(&pem),
            Err(e) => {
                let mut this = self;
                this.fail(e);
                this
            }
        }
    }

    /// Whether the system's trust store is used (default `true`).
    pub fn use_system_roots(mut self, yes: bool) -> Self {
        self.system_roots = yes;
        self
    }

    /// The ALPN protocols to offer, most preferred first (e.g. `b"h2"`, `b"http/1.1"`).
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// A client certificate, for servers that ask for one.
    pub fn client_certificate(mut self, identity: CertifiedKey) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The lowest version accepted (default TLS 1.2; `None`: OpenSSL's lowest).
    pub fn min_version(mut self, version: Option<TlsVersion>) -> Self {
        self.min_version = version;
        self
    }

    /// The highest version accepted (default `None`: the highest OpenSSL knows).
    pub fn max_version(mut self, version: Option<TlsVersion>) -> Self {
        self.max_version = version;
        self
    }

    /// How long a handshake may take (default [`DEFAULT_HANDSHAKE_TIMEOUT`]; `None`: no limit).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long [`connect`](crate::connect) waits for the connection itself (default
    /// [`gruvi_stream::DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn fail(&mut self, err: TlsError) {
        self.error.get_or_insert(err);
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] for bad PEM data, an unreadable file or settings OpenSSL refuses.
    pub fn build(self) -> Result<ClientConfig, TlsError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let bad = |e| TlsError::config("client context", e);
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(bad)?;
        let mut store = X509StoreBuilder::new().map_err(bad)?;
        if self.system_roots {
            store.set_default_paths().map_err(bad)?;
        }
        for ca in self.cas {
            store.add_cert(ca).map_err(bad)?;
        }
        builder.set_cert_store(store.build());
        common_settings(&mut builder, self.min_version, self.max_version)?;
        if !self.alpn.is_empty() {
            let refs: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
            builder.set_alpn_protos(&alpn_wire(&refs)?).map_err(bad)?;
        }
        if let Some(identity) = &self.identity {
            identity.install_on_context(&mut builder)?;
        }
        Ok(ClientConfig {
            connector: builder.build(),
            handshake_timeout: self.handshake_timeout,
            connect_timeout: self.connect_timeout,
        })
    }
}

/// Versions and options both sides share: no renegotiation (a TLS 1.2 renegotiation would
/// make writes wait for reads).
fn common_settings(
    ctx: &mut SslContextBuilder,
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<(), TlsError> {
    let bad = |e| TlsError::config("protocol versions", e);
    ctx.set_min_proto_version(min.map(TlsVersion::to_openssl))
        .map_err(bad)?;
    ctx.set_max_proto_version(max.map(TlsVersion::to_openssl))
        .map_err(bad)?;
    if min.is_some_and(|v| v < TlsVersion::Tls1_2) {
        // OpenSSL's default security level refuses TLS 1.0/1.1 signatures.
        ctx.set_cipher_list("DEFAULT:@SECLEVEL=0")
            .map_err(|e| TlsError::config("ciphers", e))?;
    }
    ctx.set_options(SslOptions::NO_RENEGOTIATION);
    Ok(())
}

/// Chooses the certificate for the name a client asked for (SNI); `None` keeps the default.
type SniCallback = dyn Fn(&str) -> Option<CertifiedKey> + Send + Sync;

/// A server's TLS settings: its certificate chain and key, ALPN, an SNI callback choosing the
/// certificate, optional client-certificate checking, versions and the handshake timeout.
/// Cheap to clone.
///
/// TLS 1.2 is the lowest version accepted (Mozilla's "intermediate" settings); renegotiation
/// is refused.
///
/// # Examples
///
/// ```no_run
/// use gruvi_tls::{CertifiedKey, ServerConfig};
///
/// let identity = CertifiedKey::from_pem_files("cert.pem", "key.pem")?;
/// let config = ServerConfig::builder(identity)
///     .alpn_protocols(&[b"http/1.1"])
///     .build()?;
/// # Ok::<(), gruvi_tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) context: SslContext,
    handshake_timeout: Option<Duration>,
    close_timeout: Option<Duration>,
}

impl ServerConfig {
    /// A builder presenting `identity`, with the defaults: TLS 1.2 or later, no ALPN, no SNI
    /// callback, no client certificate asked for, [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn builder(identity: CertifiedKey) -> ServerConfigBuilder {
        ServerConfigBuilder {
            identity,
            alpn: Vec::new(),
            sni: None,
            client_cas: Vec::new(),
            require_client_certificate: false,
            min_version: Some(TlsVersion::Tls1_2),
            max_version: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            close_timeout: Some(DEFAULT_CLOSE_TIMEOUT),
            error: None,
        }
    }

    /// How long a handshake may take (`None`: no limit).
    pub fn handshake_timeout(&self) -> Option<Duration> {
        self.handshake_timeout
    }

    /// How long [`server`](crate::server) waits for its `close_notify` to go out after the
    /// handler returned.
    pub fn close_timeout(&self) -> Option<Duration> {
        self.close_timeout
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("close_timeout", &self.close_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ServerConfig`]; errors in PEM data surface from [`build`](Self::build).
pub struct ServerConfigBuilder {
    identity: CertifiedKey,
    alpn: Vec<Vec<u8>>,
    sni: Option<Arc<SniCallback>>,
    client_cas: Vec<X509>,
    require_client_certificate: bool,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    handshake_timeout: Option<Duration>,
    close_timeout: Option<Duration>,
    error: Option<TlsError>,
}

impl ServerConfigBuilder {
    /// The ALPN protocols accepted, most preferred first: the first of them the client offers
    /// is chosen; a client offering none of them gets no ALPN protocol.
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Calls `choose` with the name a client asks for (SNI) to pick the certificate; `None`
    /// keeps the default one. Clients sending no name get the default.
    pub fn sni(
        mut self,
        choose: impl Fn(&str) -> Option<CertifiedKey> + Send + Sync + 'static,
    ) -> Self {
        self.sni = Some(Arc::new(choose));
        self
    }

    /// Asks clients for a certificate issued by one of the CAs in `pem`; with
    /// [`require_client_certificate`](Self::require_client_certificate) a client without one
    /// is refused. A certificate that does not verify is always refused.
    pub fn client_ca_pem(mut self, pem: &[u8]) -> Self {
        match X509::stack_from_pem(pem) {
            Ok(certs) if !certs.is_empty() => self.client_cas.extend(certs),
            Ok(_) => self.fail(TlsError::Config("client CA: no certificate in it".into())),
            Err(e) => self.fail(TlsError::config("client CA certificate", e)),
        }
        self
    }

    /// Whether a client must present a certificate (default `false`); needs
    /// [`client_ca_pem`](Self::client_ca_pem).
    pub fn require_client_certificate(mut self, yes: bool) -> Self {
        self.require_client_certificate = yes;
        self
    }

    /// The lowest version accepted (default TLS 1.2; `None`: OpenSSL's lowest).
    pub fn min_version(mut self, version: Option<TlsVersion>) -> Self {
        self.min_version = version;
        self
    }

    /// The highest version accepted (default `None`: the highest OpenSSL knows).
    pub fn max_version(mut self, version: Option<TlsVersion>) -> Self {
        self.max_version = version;
        self
    }

    /// How long a handshake may take (default [`DEFAULT_HANDSHAKE_TIMEOUT`]; `None`: no
    /// limit). A client that connects and says nothing is dropped after it.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long [`server`](crate::server) waits, after a handler returned, for the
    /// `close_notify` to go out (default [`DEFAULT_CLOSE_TIMEOUT`]; `None`: no limit).
    pub fn close_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.close_timeout = timeout;
        self
    }

    fn fail(&mut self, err: TlsError) {
        self.error.get_or_insert(err);
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] for bad PEM data, a client certificate required without a client
    /// CA, or settings OpenSSL refuses.
    pub fn build(self) -> Result<ServerConfig, TlsError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let bad = |e| TlsError::config("server context", e);
        let mut builder =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(bad)?;
        self.identity.install_on_context(&mut builder)?;
        builder.check_private_key().map_err(bad)?;
        common_settings(&mut builder, self.min_version, self.max_version)?;
        if !self.alpn.is_empty() {
            alpn_wire(&self.alpn.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
            let ours = self.alpn;
            builder.set_alpn_select_callback(move |_, client| {
                select_alpn(&ours, client).ok_or(AlpnError::NOACK)
            });
        }
        if let Some(choose) = self.sni {
            builder.set_servername_callback(move |ssl, _alert| {
                let Some(name) = ssl.servername(openssl::ssl::NameType::HOST_NAME) else {
                    return Ok(());
                };
                match choose(name) {
                    Some(identity) => identity
                        .install_on_ssl(ssl)
                        .map_err(|_| SniError::ALERT_FATAL),
                    None => Ok(()),
                }
            });
        }
        if self.require_client_certificate && self.client_cas.is_empty() {
            return Err(TlsError::Config(
                "a client certificate is required but no client CA was given".into(),
            ));
        }
        if !self.client_cas.is_empty() {
            let mut store = X509StoreBuilder::new().map_err(bad)?;
            for ca in self.client_cas {
                store.add_cert(ca).map_err(bad)?;
            }
            builder.set_verify_cert_store(store.build()).map_err(bad)?;
            let mut mode = SslVerifyMode::PEER;
            if self.require_client_certificate {
                mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
            }
            builder.set_verify(mode);
            builder.set_session_id_context(b"gruvi-tls").map_err(bad)?;
        }
        Ok(ServerConfig {
            context: builder.build().into_context(),
            handshake_timeout: self.handshake_timeout,
            close_timeout: self.close_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_picks_the_servers_first_choice_among_the_clients_offers() {
        let client = alpn_wire(&[b"http/1.1", b"h2"]).unwrap();
        let server = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        assert_eq!(select_alpn(&server, &client), Some(&b"h2"[..]));
        assert_eq!(select_alpn(&[b"spdy".to_vec()], &client), None);
        // A malformed list is read up to the damage.
        assert_eq!(select_alpn(&server, &[8, b'h', b'2']), None);
    }

    #[test]
    fn alpn_names_must_be_1_to_255_bytes() {
        assert!(alpn_wire(&[b""]).is_err());
        assert!(alpn_wire(&[&[b'x'; 256]]).is_err());
        assert_eq!(alpn_wire(&[&[b'x'; 255]]).unwrap().len(), 256);
    }

    #[test]
    fn bad_pem_is_a_config_error() {
        let err = ClientConfig::builder()
            .add_ca_pem(b"junk")
            .build()
            .unwrap_err();
        assert!(matches!(err, TlsError::Config(_)), "{err}");
        let err = CertifiedKey::from_pem(b"junk", b"junk").unwrap_err();
        assert!(err.to_string().contains("certificate chain"), "{err}");
    }
}
