//! The tour's HTTP step: a server whose handler runs in the fiber serving its connection, a
//! client pipelining requests on one connection, a request-smuggling attempt turned away, idle
//! keep-alive connections that hold no fiber, and one request over HTTPS.

use std::io::{Read, Write};
use std::time::Duration;

use gruvi::fiber::{self, Hub};
use gruvi::http::http::{Request, Response, StatusCode};
use gruvi::http::{
    Body, Client, ClientConfig, Incoming, Server, ServerConfig, Target, tls_client_builder,
    tls_server_builder,
};
use gruvi::stream::TcpStream;
use gruvi::tls::CertifiedKey;
use gruvi::tls::openssl::asn1::Asn1Time;
use gruvi::tls::openssl::ec::{EcGroup, EcKey};
use gruvi::tls::openssl::hash::MessageDigest;
use gruvi::tls::openssl::nid::Nid;
use gruvi::tls::openssl::pkey::PKey;
use gruvi::tls::openssl::x509::extension::SubjectAlternativeName;
use gruvi::tls::openssl::x509::{X509Builder, X509NameBuilder};

type Error = Box<dyn std::error::Error>;

/// A self-signed certificate for `localhost`, made on the spot: (cert, key) PEM.
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
    cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    cert.set_not_after(&*Asn1Time::days_from_now(1)?)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .build(&cert.x509v3_context(None, None))?;
    cert.append_extension(san)?;
    cert.sign(&key, MessageDigest::sha256())?;
    Ok((cert.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
}

fn handler(mut request: Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/slow" => {
            // Blocks only the fiber serving this connection.
            fiber::sleep(Duration::from_millis(50)).ok();
            Response::new(Body::from("slow answer"))
        }
        "/shout" => {
            let body = request.body_mut().read_to_vec(1 << 20).unwrap_or_default();
            Response::new(Body::from(body.to_ascii_uppercase()))
        }
        "/count" => Response::new(Body::from_writer(|w| {
            (1..=3).try_for_each(|i| write!(w, "{i} "))
        })),
        _ => {
            let mut response = Response::new(Body::from("not here"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// Serves, pipelines, streams, refuses a smuggled request, and serves HTTPS.
pub fn tour() -> Result<(), Error> {
    println!(
        "[http] HTTP/1.1: blocking-style handlers, a fiber per connection while it has a request"
    );
    let hub = Hub::current();
    let server = Server::new(handler);
    server.listen(&"127.0.0.1:0".parse()?)?;
    let addr = server.addresses()[0].clone();
    println!("  server listening on {addr}");

    let client = Client::new();
    client.connect(&addr)?;
    for path in ["/slow", "/count", "/missing"] {
        client.send_request(Request::get(path).body(Body::empty())?)?;
    }
    println!("  client pipelined 3 requests on one connection; answers come in order:");
    for _ in 0..3 {
        let response = client.read_response()?;
        let status = response.status();
        let chunked = response.headers().contains_key("transfer-encoding");
        let mut text = String::new();
        response.into_body().read_to_string(&mut text)?;
        println!(
            "    {status} {text:?}{}",
            if chunked { " (chunked)" } else { "" }
        );
    }
    let post = Request::post("/shout").body(Body::from("streaming bodies"))?;
    let mut shouted = String::new();
    client
        .request(post)?
        .into_body()
        .read_to_string(&mut shouted)?;
    println!("  POST /shout -> {shouted:?}");
    client.close();

    let mut raw = TcpStream::connect(addr.to_string().as_str())?;
    raw.write_all(
        b"POST /shout HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
    )?;
    let mut answer = String::new();
    raw.read_to_string(&mut answer)?;
    let status_line = answer.lines().next().unwrap_or_default();
    println!(
        "  Content-Length with Transfer-Encoding (a smuggling attempt): {status_line:?}, then the connection closed"
    );

    drop(raw);
    idle_connections(&addr.to_string())?;
    server.shutdown(Duration::from_secs(1))?;
    drop(server);
    https()?;
    let left = hub.close();
    println!("  server shut down; hub closed, {left} handles left open");
    Ok(())
}

/// Opens 50 keep-alive connections that make one request each and then wait: they hold no
/// fiber while they wait.
fn idle_connections(addr: &str) -> Result<(), Error> {
    let before = fiber::dump().len();
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut conn = TcpStream::connect(addr)?;
        conn.write_all(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let (mut got, mut chunk) = (Vec::new(), [0; 512]);
        while !got.ends_with(b"not here") {
            match conn.read(&mut chunk)? {
                0 => return Err("the server closed a kept-alive connection".into()),
                n => got.extend_from_slice(&chunk[..n]),
            }
        }
        idle.push(conn);
    }
    fiber::sleep(Duration::from_millis(10))?;
    println!(
        "  {} idle keep-alive connections, {} fibers on this thread before them and {} now: an idle connection holds no fiber",
        idle.len(),
        before,
        fiber::dump().len()
    );
    Ok(())
}

/// The same handler over HTTPS: the server's config has TLS, the client trusts its
/// certificate and verifies it as the URL's host.
fn https() -> Result<(), Error> {
    let (cert, key) = certificate()?;
    let tls = tls_server_builder(CertifiedKey::from_pem(&cert, &key)?).build()?;
    let config = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let server = Server::with_config(handler, config);
    server.listen(&"127.0.0.1:0".parse()?)?;
    let port = server.addresses()[0].to_string();
    let port = port.rsplit_once(':').map_or("", |(_, p)| p);
    let url = format!("https://localhost:{port}/shout");
    let client = Client::with_config(ClientConfig {
        tls: Some(tls_client_builder().add_ca_pem(&cert).build()?),
        ..ClientConfig::default()
    });
    client.connect_target(&Target::parse(&url)?)?;
    let mut shouted = String::new();
    client
        .request(Request::post("/shout").body(Body::from("over tls"))?)?
        .into_body()
        .read_to_string(&mut shouted)?;
    println!("  POST {url} (TLS handshake in the connection's fiber) -> {shouted:?}");
    client.close();
    server.shutdown(Duration::from_secs(1))?;
    Ok(())
}
