//! [`TlsError`]: why a TLS session failed, with the cause named.

use std::fmt;
use std::io;
use std::time::Duration;

use openssl::ssl::{ErrorCode, SslRef};
use openssl::x509::X509VerifyResult;

/// Why a TLS operation failed.
///
/// Converts to [`io::Error`] (every blocking call of this crate returns `io::Result`) with a
/// fitting [`io::ErrorKind`] and this error inside; [`TlsError::from_io`] gets it back.
///
/// | variant | `io::ErrorKind` |
/// |---|---|
/// | [`Verification`](Self::Verification), [`Protocol`](Self::Protocol) | `InvalidData` |
/// | [`HandshakeTimeout`](Self::HandshakeTimeout) | `TimedOut` |
/// | [`Truncated`](Self::Truncated) | `UnexpectedEof` |
/// | [`State`](Self::State) | `InvalidInput` |
/// | [`Config`](Self::Config) | `InvalidInput` |
///
/// # Examples
///
/// ```
/// use gruvi_tls::{TlsError, VerifyFailure};
///
/// let err: std::io::Error = TlsError::Truncated.into();
/// assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
/// assert!(matches!(TlsError::from_io(&err), Some(TlsError::Truncated)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate did not verify.
    Verification {
        /// The cause, from OpenSSL's verify result.
        failure: VerifyFailure,
        /// OpenSSL's own description of it.
        detail: String,
    },
    /// The handshake did not complete within the configured time.
    HandshakeTimeout(Duration),
    /// The peer broke the protocol or the two sides could not agree (no common version or
    /// cipher, a bad record, a fatal alert from the peer); OpenSSL's description.
    Protocol(String),
    /// The peer closed the connection without a TLS `close_notify`: what was received may have
    /// been cut short by an attacker, so it is not reported as a clean end of stream.
    Truncated,
    /// The call does not fit the session's state (a handshake on a wrapped pipe, writing after
    /// `close_notify`...).
    State(&'static str),
    /// A certificate, key or setting of a configuration is invalid.
    Config(String),
}

/// Why the peer's certificate did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyFailure {
    /// The certificate (or one in its chain) has expired.
    Expired,
    /// The certificate (or one in its chain) is not valid yet.
    NotYetValid,
    /// The certificate is not for the name (or IP address) that was connected to.
    HostnameMismatch,
    /// The certificate was not issued by a trusted authority (unknown CA, self-signed).
    UnknownIssuer,
    /// Another verification error: OpenSSL's `X509_V_ERR_*` code.
    Other(i32),
}

// OpenSSL's X509_V_ERR_* codes (x509_vfy.h); the openssl crate names only X509_V_OK.
const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const CERT_NOT_YET_VALID: i32 = 9;
const CERT_HAS_EXPIRED: i32 = 10;
const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const HOSTNAME_MISMATCH: i32 = 62;
const IP_ADDRESS_MISMATCH: i32 = 64;

impl VerifyFailure {
    /// The failure an OpenSSL `X509_V_ERR_*` code stands for.
    pub fn from_code(code: i32) -> VerifyFailure {
        match code {
            CERT_HAS_EXPIRED => VerifyFailure::Expired,
            CERT_NOT_YET_VALID => VerifyFailure::NotYetValid,
            HOSTNAME_MISMATCH | IP_ADDRESS_MISMATCH => VerifyFailure::HostnameMismatch,
            UNABLE_TO_GET_ISSUER_CERT
            | DEPTH_ZERO_SELF_SIGNED_CERT
            | SELF_SIGNED_CERT_IN_CHAIN
            | UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | UNABLE_TO_VERIFY_LEAF_SIGNATURE => VerifyFailure::UnknownIssuer,
            other => VerifyFailure::Other(other),
        }
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFailure::Expired => f.write_str("the certificate has expired"),
            VerifyFailure::NotYetValid => f.write_str("the certificate is not valid yet"),
            VerifyFailure::HostnameMismatch => {
                f.write_str("the certificate does not match the host name")
            }
            VerifyFailure::UnknownIssuer => {
                f.write_str("the certificate was not issued by a trusted authority")
            }
            VerifyFailure::Other(code) => write!(f, "verification error {code}"),
        }
    }
}

impl TlsError {
    /// The `TlsError` inside an `io::Error` made from one.
    pub fn from_io(err: &io::Error) -> Option<&TlsError> {
        err.get_ref()?.downcast_ref::<TlsError>()
    }

    /// The `io::ErrorKind` this error converts to.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            TlsError::Verification { .. } | TlsError::Protocol(_) => io::ErrorKind::InvalidData,
            TlsError::HandshakeTimeout(_) => io::ErrorKind::TimedOut,
            TlsError::Truncated => io::ErrorKind::UnexpectedEof,
            TlsError::State(_) | TlsError::Config(_) => io::ErrorKind::InvalidInput,
        }
    }

    /// The error of a failed OpenSSL call on `ssl`: a verification failure when the
    /// certificate check failed, else a protocol error with OpenSSL's reasons.
    pub(crate) fn from_ssl(err: &openssl::ssl::Error, ssl: &SslRef) -> TlsError {
        let verify = ssl.verify_result();
        if verify != X509VerifyResult::OK {
            return TlsError::Verification {
                failure: VerifyFailure::from_code(verify.as_raw()),
                detail: verify.error_string().to_owned(),
            };
        }
        if err.code() == ErrorCode::SYSCALL && err.ssl_error().is_none() {
            return TlsError::Protocol("unexpected end of the TLS stream".into());
        }
        match err.ssl_error() {
            Some(stack) if !stack.errors().is_empty() => {
                let reasons: Vec<String> = stack
                    .errors()
                    .iter()
                    .map(|e| e.reason().unwrap_or("unknown reason").to_owned())
                    .collect();
                TlsError::Protocol(reasons.join("; "))
            }
            _ => TlsError::Protocol(err.to_string()),
        }
    }

    /// A configuration error from OpenSSL's error stack.
    pub(crate) fn config(what: &str, err: impl fmt::Display) -> TlsError {
        TlsError::Config(format!("{what}: {err}"))
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Verification { failure, detail } => {
                write!(f, "certificate verification failed: {failure} ({detail})")
            }
            TlsError::HandshakeTimeout(d) => {
                write!(f, "the TLS handshake did not complete within {d:?}")
            }
            TlsError::Protocol(reason) => write!(f, "TLS protocol error: {reason}"),
            TlsError::Truncated => f.write_str(
                "the peer closed the connection without a TLS close_notify (truncated stream)",
            ),
            TlsError::State(what) => write!(f, "TLS state error: {what}"),
            TlsError::Config(what) => write!(f, "invalid TLS configuration: {what}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(err: TlsError) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_codes_map_to_their_causes() {
        assert_eq!(VerifyFailure::from_code(10), VerifyFailure::Expired);
        assert_eq!(VerifyFailure::from_code(9), VerifyFailure::NotYetValid);
        assert_eq!(
            VerifyFailure::from_code(62),
            VerifyFailure::HostnameMismatch
        );
        assert_eq!(
            VerifyFailure::from_code(64),
            VerifyFailure::HostnameMismatch
        );
        for code in [2, 18, 19, 20, 21] {
            assert_eq!(VerifyFailure::from_code(code), VerifyFailure::UnknownIssuer);
        }
        assert_eq!(VerifyFailure::from_code(7), VerifyFailure::Other(7));
    }

    #[test]
    fn io_errors_keep_the_tls_error_and_its_kind() {
        let err: io::Error = TlsError::HandshakeTimeout(Duration::from_secs(2)).into();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            err.to_string().contains("did not complete within 2s"),
            "{err}"
        );
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::HandshakeTimeout(Duration::from_secs(2)))
        );
        let plain = io::Error::new(io::ErrorKind::TimedOut, "read timed out");
        assert_eq!(TlsError::from_io(&plain), None);
    }
}
