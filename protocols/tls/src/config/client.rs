//! [`ClientConfig`] and its builder.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use super::{
    CertifiedKey, DEFAULT_HANDSHAKE_TIMEOUT, TlsVersion, alpn_wire, common_settings, read,
};
use crate::error::TlsError;

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
