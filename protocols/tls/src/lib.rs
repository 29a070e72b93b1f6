//! TLS on Gruvi fibers (Gruvi's `ssl` module), on OpenSSL: an in-memory engine
//! ([`SslPipe`]: ciphertext in, plaintext out, no I/O) and a TLS stream over any byte
//! connection ([`TlsStream`], itself a [`gruvi_stream::Connection`], so streams, servers,
//! clients and the protocols above work over it unchanged), with endpoints that take a TLS
//! configuration ([`connect`], [`server`]).
//!
//! Clients verify the server's certificate and name by default (the system trust store plus
//! any CA added); both sides accept TLS 1.2 or later, refuse renegotiation and limit the
//! handshake's duration. Errors name their cause ([`TlsError`]).
//!
//! # Examples
//!
//! A server and a client on one thread (the certificate is made on the spot):
//!
//! ```
//! # fn pems() -> (Vec<u8>, Vec<u8>) {
//! #     use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509::*};
//! #     use openssl::x509::extension::SubjectAlternativeName;
//! #     let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
//! #     let mut name = X509NameBuilder::new().unwrap();
//! #     name.append_entry_by_text("CN", "localhost").unwrap();
//! #     let name = name.build();
//! #     let mut b = X509Builder::new().unwrap();
//! #     b.set_version(2).unwrap();
//! #     b.set_subject_name(&name).unwrap();
//! #     b.set_issuer_name(&name).unwrap();
//! #     b.set_pubkey(&key).unwrap();
//! #     b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
//! #     b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
//! #     let san = SubjectAlternativeName::new().ip("127.0.0.1").build(&b.x509v3_context(None, None)).unwrap();
//! #     b.append_extension(san).unwrap();
//! #     b.sign(&key, MessageDigest::sha256()).unwrap();
//! #     (b.build().to_pem().unwrap(), key.private_key_to_pem_pkcs8().unwrap())
//! # }
//! use std::rc::Rc;
//! use gruvi_stream::Stream;
//! use gruvi_tls::{CertifiedKey, ClientConfig, ServerConfig};
//!
//! let (cert, key) = pems(); // a self-signed certificate for 127.0.0.1
//! fiber_core::run(|| -> std::io::Result<()> {
//!     let config = ServerConfig::builder(CertifiedKey::from_pem(&cert, &key)?).build()?;
//!     let server = gruvi_tls::server(config, |stream: Rc<Stream>| {
//!         // A line, or its first KiB: a client cannot make the server buffer more.
//!         let line = stream.readline(Some(1024))?;
//!         stream.write_all(&line.to_ascii_uppercase())
//!     });
//!     server.listen(&"127.0.0.1:0".parse()?)?;
//!     let config = ClientConfig::builder().add_ca_pem(&cert).build()?;
//!     let stream = gruvi_tls::connect(&server.addresses()[0], &config)?;
//!     stream.write_all(b"hello over tls\n")?;
//!     assert_eq!(stream.readline(None)?, b"HELLO OVER TLS\n");
//!     assert_eq!(stream.read_bytes(1)?, b""); // the server's close_notify
//!     server.close()
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]

mod client;
mod config;
mod endpoints;
mod error;
mod pipe;
mod stream;

pub use client::Client;
pub use config::{
    CertifiedKey, ClientConfig, ClientConfigBuilder, DEFAULT_AFTER_CLOSE_NOTIFY_LIMIT,
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READER_OUTPUT_LIMIT, ServerConfig,
    ServerConfigBuilder, TlsVersion,
};
pub use endpoints::{connect, connect_with_name, server};
pub use error::{TlsError, VerifyFailure};
pub use pipe::{Fed, PipeState, SslPipe};
pub use stream::TlsStream;

/// The `openssl` crate this one is built on, for certificates and session details.
pub use openssl;
