//! [`Target`]: where a URL points, for the client (the `url` crate parses).

use std::io;
use std::path::PathBuf;

use gruvi_stream::Address;

/// What the client needs from a URL: where to connect, what to send as `Host` and as the
/// request target, and whether it is HTTPS.
///
/// IPv6 literals, default ports, user information (sent as basic authorization) and
/// percent-encoding (kept as given) follow the `url` crate. `http+unix://` URLs name a Unix
/// socket with a percent-encoded path as their host: `http+unix://%2Frun%2Fapp.sock/status`.
///
/// # Examples
///
/// ```
/// use gruvi_http::Target;
/// use gruvi_stream::Address;
///
/// let target = Target::parse("http://user:pw@[::1]:8080/a%20b?q=1#frag")?;
/// assert_eq!(target.address, Address::Tcp("::1".into(), 8080));
/// assert_eq!(target.host, "[::1]:8080");
/// assert_eq!(target.path, "/a%20b?q=1");
/// assert_eq!(target.authorization.as_deref(), Some("Basic dXNlcjpwdw=="));
/// assert!(!target.tls);
/// assert_eq!(Target::parse("https://example.com")?.address, Address::Tcp("example.com".into(), 443));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Where to connect.
    pub address: Address,
    /// The `Host` header: the host, with the port when it is not the scheme's default.
    pub host: String,
    /// The request target: path and query, percent-encoded.
    pub path: String,
    /// `https`.
    pub tls: bool,
    /// An `Authorization: Basic` value from the URL's user information.
    pub authorization: Option<String>,
}

impl Target {
    /// Parses `url` (`http`, `https` or `http+unix`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a URL that does not parse, has no host, or has another scheme.
    pub fn parse(url: &str) -> io::Result<Target> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let parsed =
            url::Url::parse(url).map_err(|e| invalid(format!("invalid URL {url:?}: {e}")))?;
        let mut path = parsed.path().to_owned();
        if path.is_empty() {
            path.push('/');
        }
        if let Some(query) = parsed.query() {
            path.push('?');
            path.push_str(query);
        }
        let authorization =
            (!parsed.username().is_empty() || parsed.password().is_some()).then(|| {
                let decode = |s: &str| percent_decode(s);
                let mut credentials = decode(parsed.username());
                credentials.push(b':');
                credentials.extend(decode(parsed.password().unwrap_or("")));
                format!("Basic {}", base64(&credentials))
            });
        let tls = match parsed.scheme() {
            "http" => false,
            "https" => true,
            "http+unix" => {
                let host = parsed.host_str().unwrap_or("");
                let socket =
                    PathBuf::from(String::from_utf8_lossy(&percent_decode(host)).into_owned());
                return Ok(Target {
                    address: Address::Unix(socket),
                    host: "localhost".to_owned(),
                    path,
                    tls: false,
                    authorization,
                });
            }
            other => return Err(invalid(format!("unsupported URL scheme {other:?}"))),
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(invalid(format!("URL {url:?} has no host"))),
        };
        let port = parsed
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let mut host_header = parsed.host_str().unwrap_or_default().to_owned();
        if let Some(port) = parsed.port() {
            host_header.push_str(&format!(":{port}"));
        }
        Ok(Target {
            address: Address::Tcp(host, port),
            host: host_header,
            path,
            tls,
            authorization,
        })
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("%2Fa%20b%zz%4"), b"/a b%zz%4");
    }

    #[test]
    fn urls_become_targets() {
        let t = Target::parse("http://example.com").unwrap();
        assert_eq!(
            (t.address, t.host.as_str(), t.path.as_str()),
            (Address::Tcp("example.com".into(), 80), "example.com", "/")
        );
        let t = Target::parse("http://127.0.0.1:80/x?").unwrap();
        assert_eq!((t.host.as_str(), t.path.as_str()), ("127.0.0.1", "/x?"));
        let t = Target::parse("http+unix://%2Ftmp%2Fs.sock/v1/ping").unwrap();
        assert_eq!(t.address, Address::Unix("/tmp/s.sock".into()));
        assert_eq!(t.path, "/v1/ping");
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
