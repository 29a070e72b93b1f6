//! The tour's TLS step: a TLS server and clients on fibers, verification, STARTTLS.

use std::rc::Rc;

use gruvi::fiber::{self, Hub};
use gruvi::stream::{Address, Stream, TcpListener, TcpStream};
use gruvi::tls::openssl::asn1::Asn1Time;
use gruvi::tls::openssl::ec::{EcGroup, EcKey};
use gruvi::tls::openssl::hash::MessageDigest;
use gruvi::tls::openssl::nid::Nid;
use gruvi::tls::openssl::pkey::PKey;
use gruvi::tls::openssl::x509::extension::SubjectAlternativeName;
use gruvi::tls::openssl::x509::{X509Builder, X509NameBuilder};
use gruvi::tls::{CertifiedKey, ClientConfig, ServerConfig, TlsError, TlsStream};

type Error = Box<dyn std::error::Error>;

/// A self-signed certificate for `localhost` and 127.0.0.1, made on the spot: (cert, key) PEM.
fn certificate() -> Result<(Vec<u8>, Vec<u8>), Error> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "localhost")?;
    let name = name.build();
    let mut cert = X509Builder::new()?;
    cert.set_version(2)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(1)?);
    cert.set_not_before(&not_before)?;
    cert.set_not_after(&not_after)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&cert.x509v3_context(None, None))?;
    cert.append_extension(san)?;
    cert.sign(&key, MessageDigest::sha256())?;
    Ok((cert.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
}

/// A TLS echo-in-uppercase server, clients that verify it, one that does not trust it, and
/// STARTTLS on a plain connection.
pub fn tour() -> Result<(), Error> {
    println!("[tls] TLS on fibers: OpenSSL over in-memory buffers, any stream underneath");
    let hub = Hub::current();
    let (cert, key) = certificate()?;
    let server_config = ServerConfig::builder(CertifiedKey::from_pem(&cert, &key)?)
        .alpn_protocols(&[b"shout/1"])
        .build()?;
    let server = gruvi::tls::server(server_config.clone(), |stream: Rc<Stream>| {
        for line in &*stream {
            stream.write_all(&line?.to_ascii_uppercase())?;
        }
        Ok(())
    });
    server.listen(&"127.0.0.1:0".parse()?)?;
    let addr = server.addresses()[0].clone();
    println!("  TLS server on {addr}, handshakes in each connection's fiber");
    let trusting = ClientConfig::builder()
        .add_ca_pem(&cert)
        .alpn_protocols(&[b"shout/1"])
        .build()?;
    let clients: Vec<_> = ["alpha", "beta"]
        .into_iter()
        .map(|word| {
            let (addr, config) = (addr.clone(), trusting.clone());
            fiber::spawn(move || -> std::io::Result<String> {
                let stream = gruvi::tls::connect(&addr, &config)?;
                let tls = stream.connection();
                let alpn =
                    String::from_utf8_lossy(&tls.alpn_protocol().unwrap_or_default()).into_owned();
                stream.write_all(format!("hello from {word}\n").as_bytes())?;
                let reply = String::from_utf8_lossy(&stream.readline(None)?).into_owned();
                stream.write_eof()?;
                Ok(format!(
                    "{} via {} {}, ALPN {alpn}",
                    reply.trim_end(),
                    tls.protocol_version().unwrap_or("?"),
                    tls.cipher().unwrap_or_default(),
                ))
            })
        })
        .collect();
    for client in clients {
        println!("  client got: {}", client.join().unwrap()?);
    }
    // The system trust store does not know our self-signed certificate.
    let untrusting = ClientConfig::builder().build()?;
    let err = gruvi::tls::connect(&addr, &untrusting).unwrap_err();
    println!("  a client without our CA: {err}");
    // The certificate is for localhost and 127.0.0.1, not for another name.
    let err = gruvi::tls::connect_with_name(&addr, "example.com", &trusting).unwrap_err();
    if let Some(TlsError::Verification { failure, .. }) = TlsError::from_io(&err) {
        println!("  a client expecting example.com: {failure}");
    }
    server.close()?;
    starttls(&server_config, &trusting)?;
    let left = hub.close();
    println!("  hub closed, {left} handles left open");
    Ok(())
}

/// Plaintext, then TLS, then plaintext again on one TCP connection.
fn starttls(server_config: &ServerConfig, client_config: &ClientConfig) -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let config = server_config.clone();
    let server = fiber::spawn(move || -> std::io::Result<()> {
        let (tcp, _) = listener.accept()?;
        let stream = Stream::new(TlsStream::server_unwrapped(tcp, &config));
        stream.readline(None)?; // "STARTTLS"
        stream.connection().start_tls()?;
        let secret = stream.readline(None)?;
        stream.write_all(&secret.to_ascii_uppercase())?;
        stream.read_bytes(1)?; // the client's close_notify
        stream.connection().unwrap()?;
        stream.write_all(b"back in plaintext\n")
    });
    let tcp = TcpStream::connect(addr)?;
    let stream = Stream::new(TlsStream::client_unwrapped(tcp, client_config, "127.0.0.1"));
    stream.write_all(b"STARTTLS\n")?;
    stream.connection().start_tls()?;
    stream.write_all(b"a secret\n")?;
    let secret = String::from_utf8_lossy(&stream.readline(None)?).into_owned();
    stream.connection().unwrap()?;
    let plain = String::from_utf8_lossy(&stream.readline(None)?).into_owned();
    println!(
        "  STARTTLS on {}: {:?} over TLS, then {:?}",
        Address::from(addr),
        secret.trim_end(),
        plain.trim_end()
    );
    server.join().unwrap()?;
    Ok(())
}
