//! TLS configurations: [`ClientConfig`] and [`ServerConfig`] with their builders, the
//! [`CertifiedKey`] a side presents, and what both sides share (versions, ALPN wire format).

mod client;
mod identity;
mod server;

use std::time::Duration;

use openssl::ssl::{SslContextBuilder, SslOptions, SslVersion};
use openssl::x509::X509;

use crate::error::TlsError;

pub use client::{ClientConfig, ClientConfigBuilder};
pub use identity::CertifiedKey;
pub(crate) use identity::read;
pub use server::{ServerConfig, ServerConfigBuilder};

/// How long a handshake may take by default, on either side.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server waits by default, once its handler returned, for its `close_notify` to be
/// sent.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How much output for the peer (KeyUpdate responses, alerts) a reading fiber lets pile up by
/// default while a writer holds the connection, before it waits to send it.
pub const DEFAULT_READER_OUTPUT_LIMIT: usize = 64 * 1024;

/// How many bytes a peer may send by default after its `close_notify`, kept until this side
/// unwraps (STARTTLS) or closes.
pub const DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT: usize = 64 * 1024;

/// Settings and limits both sides share, with the builders' setters for them
/// ([`common_setters`]).
#[derive(Clone, Debug)]
pub(crate) struct Common {
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) min_version: Option<TlsVersion>,
    pub(crate) max_version: Option<TlsVersion>,
    pub(crate) limits: Limits,
    /// The first error a setter met, reported by `build`.
    pub(crate) error: Option<TlsError>,
}

/// The limits of a session, kept in its configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) reader_output: usize,
    pub(crate) after_close_notify: usize,
}

impl Limits {
    /// Whether a reader holding `pending` bytes of output for the peer must send them (waiting
    /// for a writer to let go of the connection) before it reads on: past the limit.
    pub(crate) fn reader_must_send(&self, pending: usize) -> bool {
        pending > self.reader_output
    }
}

impl Common {
    pub(crate) fn new() -> Common {
        Common {
            alpn: Vec::new(),
            min_version: Some(TlsVersion::Tls1_2),
            max_version: None,
            limits: Limits {
                handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
                reader_output: DEFAULT_READER_OUTPUT_LIMIT,
                after_close_notify: DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT,
            },
            error: None,
        }
    }

    pub(crate) fn fail(&mut self, err: TlsError) {
        self.error.get_or_insert(err);
    }

    /// Adds the certificates in `pem` to `certs` (`what` names them in an error).
    pub(crate) fn add_certs(&mut self, certs: &mut Vec<X509>, pem: &[u8], what: &str) {
        match X509::stack_from_pem(pem) {
            Ok(found) if !found.is_empty() => certs.extend(found),
            Ok(_) => self.fail(TlsError::Config(format!("{what}: no certificate in it"))),
            Err(e) => self.fail(TlsError::config(what, e)),
        }
    }

    /// The start of both builders' `build`: the first setter's error, or the versions and
    /// options applied to `ctx`, and the ALPN names checked.
    pub(crate) fn apply(&mut self, ctx: &mut SslContextBuilder) -> Result<(), TlsError> {
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        common_settings(ctx, self.min_version, self.max_version)?;
        if !self.alpn.is_empty() {
            alpn_wire(&self.alpn.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
        }
        Ok(())
    }
}

/// The setters both builders have, on their `common: Common` field.
macro_rules! common_setters {
    () => {
        /// The ALPN protocols, most preferred first (e.g. `b"h2"`, `b"http/1.1"`): a client
        /// offers them; a server chooses the first of them the client offers, and a client
        /// offering none of them gets no ALPN protocol.
        pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
            self.common.alpn = protocols.iter().map(|p| p.to_vec()).collect();
            self
        }

        /// The lowest version accepted (default TLS 1.2; `None`: OpenSSL's lowest).
        pub fn min_version(mut self, version: Option<TlsVersion>) -> Self {
            self.common.min_version = version;
            self
        }

        /// The highest version accepted (default `None`: the highest OpenSSL knows).
        pub fn max_version(mut self, version: Option<TlsVersion>) -> Self {
            self.common.max_version = version;
            self
        }

        /// How long a handshake may take (default [`DEFAULT_HANDSHAKE_TIMEOUT`]; `None`: no
        /// limit). A peer that connects and says nothing is dropped after it.
        pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
            self.common.limits.handshake_timeout = timeout;
            self
        }

        /// How many bytes of output for the peer (KeyUpdate responses...) a reading fiber
        /// lets pile up while a writer holds the connection before it waits to send them
        /// itself (default [`DEFAULT_READER_OUTPUT_LIMIT`]): a peer that floods KeyUpdate
        /// requests without reading cannot make them grow without bound.
        pub fn reader_output_limit(mut self, bytes: usize) -> Self {
            self.common.limits.reader_output = bytes;
            self
        }

        /// How many bytes the peer may send after its `close_notify`, kept until this side
        /// unwraps (default [`DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT`]); more is a protocol error.
        pub fn after_close_notify_limit(mut self, bytes: usize) -> Self {
            self.common.limits.after_close_notify = bytes;
            self
        }
    };
}
pub(crate) use common_setters;

/// The getters both configs have, on their `limits: Limits` field.
macro_rules! limit_getters {
    () => {
        /// How long a handshake may take (`None`: no limit).
        pub fn handshake_timeout(&self) -> Option<Duration> {
            self.limits.handshake_timeout
        }

        /// See the builder's `reader_output_limit`.
        pub fn reader_output_limit(&self) -> usize {
            self.limits.reader_output
        }

        /// See the builder's `after_close_notify_limit`.
        pub fn after_close_notify_limit(&self) -> usize {
            self.limits.after_close_notify
        }
    };
}
pub(crate) use limit_getters;

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
    pub(crate) fn to_openssl(self) -> SslVersion {
        match self {
            TlsVersion::Tls1_0 => SslVersion::TLS1,
            TlsVersion::Tls1_1 => SslVersion::TLS1_1,
            TlsVersion::Tls1_2 => SslVersion::TLS1_2,
            TlsVersion::Tls1_3 => SslVersion::TLS1_3,
        }
    }
}

/// Versions and options both sides share: no renegotiation (a TLS 1.2 renegotiation would
/// make writes wait for reads).
pub(crate) fn common_settings(
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

/// ALPN protocol names in the wire format (each prefixed by its length).
pub(crate) fn alpn_wire(protocols: &[&[u8]]) -> Result<Vec<u8>, TlsError> {
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
pub(crate) fn select_alpn<'a>(server: &[Vec<u8>], client_wire: &'a [u8]) -> Option<&'a [u8]> {
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
    fn a_reader_sends_its_output_itself_only_past_the_limit() {
        let mut common = Common::new();
        let limits = common.limits;
        assert!(!limits.reader_must_send(DEFAULT_READER_OUTPUT_LIMIT));
        assert!(limits.reader_must_send(DEFAULT_READER_OUTPUT_LIMIT + 1));
        common.limits.reader_output = 0;
        assert!(!common.limits.reader_must_send(0));
        assert!(common.limits.reader_must_send(1));
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
