//! A small curl: one request, the response body on standard output.
//!
//! ```text
//! curl [-X METHOD] [-H 'Name: value']... [-d DATA] [--cacert FILE] [-i] URL
//! ```
//!
//! `-d DATA` sends DATA as the body (`-d @FILE` sends a file's contents) and makes the default
//! method POST; `-i` prints the status line and headers first. URLs are `http://`,
//! `http+unix://` (a percent-encoded socket path as the host) or `https://`: the server's
//! certificate must chain to the system's trust store or to the CA certificates in the PEM
//! file `--cacert` names, and match the URL's host. Exits with 0 after a response of any
//! status, 1 on an error (a TLS failure names its cause), 2 on bad arguments.

use std::io::{self, Write};
use std::process::ExitCode;

use gruvi::fiber;
use gruvi::http::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use gruvi::http::http::{Method, Request};
use gruvi::http::{Body, Client, ClientConfig, Target, tls_client_builder};

const USAGE: &str =
    "usage: curl [-X METHOD] [-H 'Name: value']... [-d DATA] [--cacert FILE] [-i] URL";

struct Options {
    method: Option<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
    data: Option<Vec<u8>>,
    include: bool,
    cacert: Option<String>,
    url: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut method = None;
    let mut headers = Vec::new();
    let mut data = None;
    let mut include = false;
    let mut cacert = None;
    let mut url = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-X" | "--request" => {
                let m = value("-X")?;
                method =
                    Some(Method::from_bytes(m.as_bytes()).map_err(|e| format!("-X {m}: {e}"))?);
            }
            "-H" | "--header" => {
                let h = value("-H")?;
                let (name, val) = h
                    .split_once(':')
                    .ok_or(format!("-H {h:?}: expected 'Name: value'"))?;
                let name = HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|e| format!("-H {h:?}: {e}"))?;
                let val =
                    HeaderValue::from_str(val.trim()).map_err(|e| format!("-H {h:?}: {e}"))?;
                headers.push((name, val));
            }
            "-d" | "--data" | "--data-binary" => {
                let d = value("-d")?;
                data = Some(match d.strip_prefix('@') {
                    Some(path) => std::fs::read(path).map_err(|e| format!("-d @{path}: {e}"))?,
                    None => d.into_bytes(),
                });
            }
            "--cacert" => cacert = Some(value("--cacert")?),
            "-i" | "--include" => include = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other:?}\n{USAGE}"));
            }
            other if url.is_none() => url = Some(other.to_owned()),
            other => return Err(format!("more than one URL: {other:?}\n{USAGE}")),
        }
    }
    let url = url.ok_or(USAGE)?;
    Ok(Options {
        method,
        headers,
        data,
        include,
        cacert,
        url,
    })
}

fn fetch(options: Options) -> io::Result<()> {
    let target = Target::parse(&options.url)?;
    let method = options.method.unwrap_or(if options.data.is_some() {
        Method::POST
    } else {
        Method::GET
    });
    let body = match options.data {
        Some(data) => Body::from(data),
        None => Body::empty(),
    };
    let form = body.len().is_some_and(|n| n > 0);
    let mut request = Request::builder()
        .method(method)
        .uri(target.path.as_str())
        .body(body)
        .map_err(io::Error::other)?;
    let headers = request.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(&target.host).map_err(io::Error::other)?,
    );
    if let Some(auth) = &target.authorization {
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(auth).map_err(io::Error::other)?,
        );
    }
    if form {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    for (name, value) in options.headers {
        headers.insert(name, value);
    }
    let mut config = ClientConfig::default();
    if let Some(cacert) = &options.cacert {
        let tls = tls_client_builder().add_ca_file(cacert).build()?;
        config.tls = Some(tls);
    }
    let client = Client::with_config(config);
    client.connect_target(&target)?;
    let mut response = client.request(request)?;
    let mut out = io::stdout().lock();
    if options.include {
        let status = response.status();
        write!(
            out,
            "{:?} {} {}\r\n",
            response.version(),
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )?;
        for (name, value) in response.headers() {
            out.write_all(name.as_str().as_bytes())?;
            out.write_all(b": ")?;
            out.write_all(value.as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        out.write_all(b"\r\n")?;
    }
    io::copy(response.body_mut(), &mut out)?;
    out.flush()?;
    client.close();
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match fiber::run(|| fetch(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("curl: {err}");
            ExitCode::FAILURE
        }
    }
}
