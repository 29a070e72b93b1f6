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

    /// A new P-256 key with a self-signed certificate for `names` (host names, or IP
    /// addresses such as `"127.0.0.1"`; the first is also the subject's common name), valid
    /// from now for `days` days: for tests, examples and development, where a client trusts
    /// that certificate explicitly (`add_ca_pem(&key.leaf().to_pem()?)`).
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] if `names` is empty, a name is not a valid host name, or OpenSSL
    /// fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_tls::{CertifiedKey, ClientConfig, ServerConfig};
    ///
    /// let identity = CertifiedKey::self_signed(&["localhost", "127.0.0.1"], 1)?;
    /// let cert = identity.leaf().to_pem().expect("PEM");
    /// let server = ServerConfig::builder(identity).build()?;
    /// let client = ClientConfig::builder().use_system_roots(false).add_ca_pem(&cert).build()?;
    /// # Ok::<(), gruvi_tls::TlsError>(())
    /// ```
    pub fn self_signed(names: &[&str], days: u32) -> Result<CertifiedKey, TlsError> {
        use openssl::asn1::Asn1Time;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::x509::extension::SubjectAlternativeName;
        use openssl::x509::{X509Builder, X509NameBuilder};

        let Some(first) = names.first() else {
            return Err(TlsError::Config(
                "a self-signed certificate needs at least one name".into(),
            ));
        };
        let bad = |e| TlsError::config("self-signed certificate", e);
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(bad)?;
        let key = PKey::from_ec_key(EcKey::generate(&group).map_err(bad)?).map_err(bad)?;
        let mut name = X509NameBuilder::new().map_err(bad)?;
        name.append_entry_by_text("CN", first).map_err(bad)?;
        let name = name.build();
        let mut cert = X509Builder::new().map_err(bad)?;
        cert.set_version(2).map_err(bad)?;
        cert.set_subject_name(&name).map_err(bad)?;
        cert.set_issuer_name(&name).map_err(bad)?;
        cert.set_pubkey(&key).map_err(bad)?;
        let not_before = Asn1Time::days_from_now(0).map_err(bad)?;
        let not_after = Asn1Time::days_from_now(days).map_err(bad)?;
        cert.set_not_before(&not_before).map_err(bad)?;
        cert.set_not_after(&not_after).map_err(bad)?;
        let mut san = SubjectAlternativeName::new();
        for name in names {
            match name.parse::<std::net::IpAddr>() {
                Ok(_) => san.ip(name),
                Err(_) => san.dns(name),
            };
        }
        let san = san
            .build(&cert.x509v3_context(None, None))
            .map_err(|e| TlsError::config(&format!("names {names:?}"), e))?;
        cert.append_extension(san).map_err(bad)?;
        cert.sign(&key, MessageDigest::sha256()).map_err(bad)?;
        Ok(CertifiedKey {
            chain: vec![cert.build()],
            key,
        })
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
