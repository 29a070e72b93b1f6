//! The tour's TLS step: a TLS server and clients on fibers, verification, STARTTLS.

use std::rc::Rc;

use gruvi::fiber::{self, Hub};
use gruvi::stream::{Address, Stream, TcpListener, TcpStream};
use gruvi::tls::{CertifiedKey, ClientConfig, ServerConfig, TlsError, TlsStream};

type Error = Box<dyn std::error::Error>;

/// A TLS echo-in-uppercase server, clients that verify it, one that does not trust it, and
/// STARTTLS on a plain connection.
pub fn tour() -> Result<(), Error> {
    println!("[tls] TLS on fibers: OpenSSL over in-memory buffers, any stream underneath");
    let hub = Hub::current();
    // A self-signed certificate for localhost and 127.0.0.1, made on the spot.
    let identity = CertifiedKey::self_signed(&["localhost", "127.0.0.1"], 1)?;
    let cert = identity.leaf().to_pem()?;
    let server_config = ServerConfig::builder(identity)
        .alpn_protocols(&[b"shout/1"])
        .build()?;
    let server = gruvi::tls::server(server_config.clone(), |stream: Rc<Stream>| {
        // Each line at most stream.max_line() bytes (64 KiB): a longer one ends the handler.
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
        // Server-side reads are capped: a client cannot make the server buffer without end.
        stream.readline(Some(64))?; // "STARTTLS"
        stream.connection().start_tls()?;
        let secret = stream.readline(Some(1024))?;
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
