//! [`ServerConfig`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{AlpnError, SniError, SslAcceptor, SslContext, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use super::{
    CertifiedKey, Common, DEFAULT_CLOSE_TIMEOUT, Limits, TlsVersion, common_setters, limit_getters,
    select_alpn,
};
#[allow(unused_imports)] // used in the setters' docs
use super::{
    DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READER_OUTPUT_LIMIT,
};
use crate::error::TlsError;

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
    pub(crate) limits: Limits,
    close_timeout: Option<Duration>,
}

impl ServerConfig {
    /// A builder presenting `identity`, with the defaults: TLS 1.2 or later, no ALPN, no SNI
    /// callback, no client certificate asked for, [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn builder(identity: CertifiedKey) -> ServerConfigBuilder {
        ServerConfigBuilder {
            common: Common::new(),
            identity,
            sni: None,
            client_cas: Vec::new(),
            require_client_certificate: false,
            close_timeout: Some(DEFAULT_CLOSE_TIMEOUT),
        }
    }

    /// The default configuration presenting the PEM certificate chain and key in the files at
    /// `chain` and `key` (see [`CertifiedKey::from_pem_files`]): the usual start of a server.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] for an unreadable file, bad contents or a key that does not match.
    pub fn from_pem_files(
        chain: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<ServerConfig, TlsError> {
        ServerConfig::builder(CertifiedKey::from_pem_files(chain, key)?).build()
    }

    limit_getters!();

    /// How long [`server`](crate::server) waits for its `close_notify` to go out after the
    /// handler returned.
    pub fn close_timeout(&self) -> Option<Duration> {
        self.close_timeout
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("limits", &self.limits)
            .field("close_timeout", &self.close_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ServerConfig`]; errors in PEM data surface from [`build`](Self::build).
pub struct ServerConfigBuilder {
    common: Common,
    identity: CertifiedKey,
    sni: Option<Arc<SniCallback>>,
    client_cas: Vec<X509>,
    require_client_certificate: bool,
    close_timeout: Option<Duration>,
}

impl ServerConfigBuilder {
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
        (self.common).add_certs(&mut self.client_cas, pem, "client CA certificate");
        self
    }

    /// Whether a client must present a certificate (default `false`); needs
    /// [`client_ca_pem`](Self::client_ca_pem).
    pub fn require_client_certificate(mut self, yes: bool) -> Self {
        self.require_client_certificate = yes;
        self
    }

    common_setters!();

    /// How long [`server`](crate::server) waits, after a handler returned, for the
    /// `close_notify` to go out (default [`DEFAULT_CLOSE_TIMEOUT`]; `None`: no limit).
    pub fn close_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] for bad PEM data, a client certificate required without a client
    /// CA, or settings OpenSSL refuses.
    pub fn build(mut self) -> Result<ServerConfig, TlsError> {
        let bad = |e| TlsError::config("server context", e);
        let mut builder =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(bad)?;
        self.common.apply(&mut builder)?;
        self.identity.install_on_context(&mut builder)?;
        builder.check_private_key().map_err(bad)?;
        if !self.common.alpn.is_empty() {
            let ours = std::mem::take(&mut self.common.alpn);
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
            limits: self.common.limits,
            close_timeout: self.close_timeout,
        })
    }
}
