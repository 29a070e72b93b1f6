//! The tour's HTTP step: a server whose handler runs in each connection's fiber, a client
//! pipelining requests on one connection, and a request-smuggling attempt turned away.

use std::io::{Read, Write};
use std::time::Duration;

use gruvi::fiber::{self, Hub};
use gruvi::http::http::{Request, Response, StatusCode};
use gruvi::http::{Body, Client, Incoming, Server};
use gruvi::stream::TcpStream;

fn handler(mut request: Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/slow" => {
            // Blocks only this connection's fiber.
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

/// Serves, pipelines, streams, and refuses a smuggled request.
pub fn tour() -> Result<(), Box<dyn std::error::Error>> {
    println!("[http] HTTP/1.1: one fiber per connection, blocking-style handlers");
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
    server.shutdown(Duration::from_secs(1))?;
    drop(server);
    let left = hub.close();
    println!("  server shut down; hub closed, {left} handles left open");
    Ok(())
}
