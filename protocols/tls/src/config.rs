//! TLS configurations: [`ClientConfig`] and [`ServerConfig`] with their builders, the
//! [`CertifiedKey`] a side presents, and what both sides share (versions, ALPN wire format).

mod client;
mod identity;
mod server;

use std::time::Duration;

use openssl::ssl::{SslContextBuilder, SslOptions, SslVersion};

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
