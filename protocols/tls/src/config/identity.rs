//! [`CertifiedKey`]: a certificate chain and its private key.

use std::fmt;
use std::path::Path;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslContextBuilder, SslRef};
use openssl::x509::X509;

use crate::error::TlsError;

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

    pub(crate) fn install_on_context(&self, ctx: &mut SslContextBuilder) -> Result<(), TlsError> {
        let bad = |e| TlsError::config("certificate", e);
        ctx.set_certificate(&self.chain[0]).map_err(bad)?;
        ctx.set_private_key(&self.key).map_err(bad)?;
        for cert in &self.chain[1..] {
            ctx.add_extra_chain_cert(cert.clone()).map_err(bad)?;
        }
        Ok(())
    }

    pub(crate) fn install_on_ssl(
        &self,
        ssl: &mut SslRef,
    ) -> Result<(), openssl::error::ErrorStack> {
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

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))
}
