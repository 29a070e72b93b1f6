//! [`ClientConfig`] and its builder.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use super::{
    CertifiedKey, Common, Limits, TlsVersion, alpn_wire, common_setters, limit_getters, read,
};
#[allow(unused_imports)] // used in the setters' docs
use super::{
    DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READER_OUTPUT_LIMIT,
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
    pub(crate) limits: Limits,
    connect_timeout: Option<Duration>,
}

impl ClientConfig {
    /// A builder with the defaults: the system trust store, TLS 1.2 or later, no ALPN, no
    /// client certificate, [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder {
            common: Common::new(),
            system_roots: true,
            cas: Vec::new(),
            identity: None,
            connect_timeout: Some(gruvi_stream::DEFAULT_CONNECT_TIMEOUT),
        }
    }

    limit_getters!();

    /// How long [`connect`](crate::connect) waits for the connection itself (`None`: no
    /// limit).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("limits", &self.limits)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ClientConfig`]; errors in PEM data surface from [`build`](Self::build).
pub struct ClientConfigBuilder {
    common: Common,
    system_roots: bool,
    cas: Vec<X509>,
    identity: Option<CertifiedKey>,
    connect_timeout: Option<Duration>,
}

impl ClientConfigBuilder {
    /// Trusts the CA certificates in `pem` as well.
    pub fn add_ca_pem(mut self, pem: &[u8]) -> Self {
        self.common.add_certs(&mut self.cas, pem, "CA certificate");
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` as well.
    pub fn add_ca_file(self, path: impl AsRef<Path>) -> Self {
        match read(path.as_ref()) {
            Ok(pem) => self.add_ca_pem(&pem),
            Err(e) => {
                let mut this = self;
                this.common.fail(e);
                this
            }
        }
    }

    /// Whether the system's trust store is used (default `true`).
    pub fn use_system_roots(mut self, yes: bool) -> Self {
        self.system_roots = yes;
        self
    }

    /// A client certificate, for servers that ask for one.
    pub fn client_certificate(mut self, identity: CertifiedKey) -> Self {
        self.identity = Some(identity);
        self
    }

    common_setters!();

    /// How long [`connect`](crate::connect) waits for the connection itself (default
    /// [`gruvi_stream::DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] for bad PEM data, an unreadable file or settings OpenSSL refuses.
    pub fn build(mut self) -> Result<ClientConfig, TlsError> {
        let bad = |e| TlsError::config("client context", e);
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(bad)?;
        self.common.apply(&mut builder)?;
        let mut store = X509StoreBuilder::new().map_err(bad)?;
        if self.system_roots {
            store.set_default_paths().map_err(bad)?;
        }
        for ca in self.cas {
            store.add_cert(ca).map_err(bad)?;
        }
        builder.set_cert_store(store.build());
        if !self.common.alpn.is_empty() {
            let refs: Vec<&[u8]> = self.common.alpn.iter().map(Vec::as_slice).collect();
            builder.set_alpn_protos(&alpn_wire(&refs)?).map_err(bad)?;
        }
        if let Some(identity) = &self.identity {
            identity.install_on_context(&mut builder)?;
        }
        Ok(ClientConfig {
            connector: builder.build(),
            limits: self.common.limits,
            connect_timeout: self.connect_timeout,
        })
    }
}
