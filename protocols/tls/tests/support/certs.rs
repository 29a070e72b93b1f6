//! Certificates made at test time with the openssl crate, never committed: a CA, a good leaf
//! for `localhost`, `127.0.0.1` and `::1`, an expired leaf, a leaf for another host, a second
//! CA nobody trusts, and a client certificate. Written to a temporary directory too, for the
//! command-line tools.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

/// A certificate and its key, as PEM, and where they were written.
pub struct Pem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// Everything the TLS tests need; the directory goes away on drop.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: Pem,
    pub good: Pem,
    pub expired: Pem,
    pub wrong_host: Pem,
    /// Signed by a CA that no client trusts.
    pub unknown_ca: Pem,
    /// A client certificate for `client.test`, issued by `ca`.
    pub client: Pem,
    /// A good leaf for `other.test` (an SNI test's second name), issued by `ca`.
    pub other: Pem,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const DAY: i64 = 86_400;

struct Spec<'a> {
    cn: &'a str,
    dns: &'a [&'a str],
    ips: &'a [&'a str],
    not_before: i64,
    not_after: i64,
    ca: bool,
    client: bool,
}

fn issue(spec: &Spec, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    static SERIAL: AtomicU32 = AtomicU32::new(1);
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", spec.cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial =
        BigNum::from_u32(SERIAL.fetch_add(1, Ordering::Relaxed) + std::process::id()).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(spec.not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(spec.not_after).unwrap())
        .unwrap();
    if spec.ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        b.append_extension(BasicConstraints::new().build().unwrap())
            .unwrap();
        let mut eku = ExtendedKeyUsage::new();
        if spec.client {
            eku.client_auth();
        } else {
            eku.server_auth();
        }
        b.append_extension(eku.build().unwrap()).unwrap();
        let mut san = SubjectAlternativeName::new();
        for d in spec.dns {
            san.dns(d);
        }
        for ip in spec.ips {
            san.ip(ip);
        }
        let ctx = b.x509v3_context(issuer.map(|(c, _)| &**c), None);
        let san = san.build(&ctx).unwrap();
        b.append_extension(san).unwrap();
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn write(dir: &Path, name: &str, cert: &X509, key: &PKey<Private>) -> Pem {
    let pem = Pem {
        cert: cert.to_pem().unwrap(),
        key: key.private_key_to_pem_pkcs8().unwrap(),
        cert_path: dir.join(format!("{name}.pem")),
        key_path: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pem.cert_path, &pem.cert).unwrap();
    std::fs::write(&pem.key_path, &pem.key).unwrap();
    pem
}

/// Makes the whole set in a fresh temporary directory.
pub fn make() -> Certs {
    static DIRS: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gruvi-tls-{}-{}",
        std::process::id(),
        DIRS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let t = now();
    let leaf = |cn, dns, ips, not_before, not_after| Spec {
        cn,
        dns,
        ips,
        not_before,
        not_after,
        ca: false,
        client: false,
    };
    let ca_spec = Spec {
        ca: true,
        ..leaf("Gruvi Test CA", &[], &[], t - DAY, t + 30 * DAY)
    };
    let ca_key = key();
    let ca = issue(&ca_spec, &ca_key, None);
    let signed = |spec: &Spec| {
        let k = key();
        (issue(spec, &k, Some((&ca, &ca_key))), k)
    };
    let good = signed(&leaf(
        "localhost",
        &["localhost"],
        &["127.0.0.1", "::1"],
        t - DAY,
        t + 30 * DAY,
    ));
    let expired = signed(&leaf(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
        t - 30 * DAY,
        t - DAY,
    ));
    let wrong_host = signed(&leaf(
        "elsewhere.test",
        &["elsewhere.test"],
        &[],
        t - DAY,
        t + 30 * DAY,
    ));
    let other = signed(&leaf(
        "other.test",
        &["other.test"],
        &[],
        t - DAY,
        t + 30 * DAY,
    ));
    let client = signed(&Spec {
        client: true,
        ..leaf("client.test", &["client.test"], &[], t - DAY, t + 30 * DAY)
    });
    let rogue_key = key();
    let rogue = issue(
        &Spec {
            cn: "Rogue CA",
            ..ca_spec
        },
        &rogue_key,
        None,
    );
    let unknown_key = key();
    let unknown = issue(
        &leaf(
            "localhost",
            &["localhost"],
            &["127.0.0.1"],
            t - DAY,
            t + 30 * DAY,
        ),
        &unknown_key,
        Some((&rogue, &rogue_key)),
    );
    Certs {
        ca: write(&dir, "ca", &ca, &ca_key),
        good: write(&dir, "good", &good.0, &good.1),
        expired: write(&dir, "expired", &expired.0, &expired.1),
        wrong_host: write(&dir, "wrong-host", &wrong_host.0, &wrong_host.1),
        unknown_ca: write(&dir, "unknown-ca", &unknown, &unknown_key),
        client: write(&dir, "client", &client.0, &client.1),
        other: write(&dir, "other", &other.0, &other.1),
        dir,
    }
}
