//! [`ServerConfig`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{AlpnError, SniError, SslAcceptor, SslContext, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use super::{
    CertifiedKey, DEFAULT_CLOSE_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, TlsVersion, alpn_wire,
    common_settings, select_alpn,
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
