//! D-Bus server addresses (`unix:path=/run/bus;tcp:host=localhost,port=4000`): parsing,
//! escaping, and the session and system bus addresses.

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;

/// Where the system bus is when `DBUS_SYSTEM_BUS_ADDRESS` is not set (the specification's
/// default).
pub const DEFAULT_SYSTEM_BUS_ADDRESS: &str = "unix:path=/var/run/dbus/system_bus_socket";

/// One entry of a D-Bus address: how to reach (or where to listen for) a server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `unix:path=P`: a Unix socket file.
    UnixPath(PathBuf),
    /// `unix:abstract=N`: a Linux abstract socket.
    UnixAbstract(String),
    /// `unix:tmpdir=D` or `unix:dir=D` (listening only): a fresh socket in that directory.
    UnixDir(PathBuf),
    /// `tcp:host=H,port=P` (port 0 when listening: any free port).
    Tcp {
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
    },
}

/// A parsed address entry: its endpoint and the server GUID it names, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressEntry {
    /// How to reach the server.
    pub endpoint: Endpoint,
    /// The `guid=` key: the GUID the server must report when authenticating.
    pub guid: Option<String>,
}

impl Endpoint {
    /// The socket path the stream layer connects to: a file path, or a leading NUL byte and
    /// the name for an abstract socket. `None` for TCP and directories.
    pub(crate) fn unix_socket_path(&self) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStringExt;
        match self {
            Endpoint::UnixPath(path) => Some(path.clone()),
            Endpoint::UnixAbstract(name) => {
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(name.as_bytes());
                Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    /// The address-string form, with values escaped as the specification says.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::UnixPath(path) => {
                write!(
                    f,
                    "unix:path={}",
                    escape(path.as_os_str().as_encoded_bytes())
                )
            }
            Endpoint::UnixAbstract(name) => write!(f, "unix:abstract={}", escape(name.as_bytes())),
            Endpoint::UnixDir(dir) => {
                write!(f, "unix:dir={}", escape(dir.as_os_str().as_encoded_bytes()))
            }
            Endpoint::Tcp { host, port } => {
                write!(f, "tcp:host={},port={port}", escape(host.as_bytes()))
            }
        }
    }
}

/// Resolves `session` (`$DBUS_SESSION_BUS_ADDRESS`) and `system` (`$DBUS_SYSTEM_BUS_ADDRESS`,
/// else [`DEFAULT_SYSTEM_BUS_ADDRESS`]); any other string is returned as it is.
///
/// # Errors
///
/// [`Error::Address`] for `session` when the variable is not set.
pub fn bus_address(name: &str) -> Result<String, Error> {
    match name {
        "session" => std::env::var("DBUS_SESSION_BUS_ADDRESS").map_err(|_| {
            Error::Address("DBUS_SESSION_BUS_ADDRESS is not set: no session bus".into())
        }),
        "system" => Ok(std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| DEFAULT_SYSTEM_BUS_ADDRESS.to_owned())),
        other => Ok(other.to_owned()),
    }
}

/// Parses a D-Bus address: entries separated by `;`, each `transport:key=value,...`, with
/// `%XX` escapes in values. Entries of transports this crate cannot use (e.g. `launchd:`,
/// `systemd:`) are skipped; an address with none left is an error.
///
/// # Errors
///
/// [`Error::Address`] naming what is wrong: a missing `:` or `=`, a bad escape, a missing or
/// conflicting key, a bad port, or no usable entry.
///
/// # Examples
///
/// ```
/// use gruvi_dbus::{Endpoint, parse_address};
///
/// let entries = parse_address("unix:abstract=gruvi;tcp:host=127.0.0.1,port=4000,guid=00ff")?;
/// assert_eq!(entries[0].endpoint, Endpoint::UnixAbstract("gruvi".into()));
/// assert_eq!(
///     entries[1].endpoint,
///     Endpoint::Tcp { host: "127.0.0.1".into(), port: 4000 }
/// );
/// assert_eq!(entries[1].guid.as_deref(), Some("00ff"));
/// # Ok::<(), gruvi_dbus::Error>(())
/// ```
pub fn parse_address(address: &str) -> Result<Vec<AddressEntry>, Error> {
    let mut entries = Vec::new();
    let mut unknown = Vec::new();
    for entry in address.split(';').filter(|e| !e.is_empty()) {
        match parse_entry(entry)? {
            Some(parsed) => entries.push(parsed),
            None => unknown.push(entry),
        }
    }
    if entries.is_empty() {
        return Err(Error::Address(if unknown.is_empty() {
            format!("no address in {address:?}")
        } else {
            format!("no supported transport in {address:?}")
        }));
    }
    Ok(entries)
}

/// One `transport:key=value,...` entry; `None` for a transport this crate does not know.
fn parse_entry(entry: &str) -> Result<Option<AddressEntry>, Error> {
    let bad = |what: &str| Error::Address(format!("{what} in address entry {entry:?}"));
    let (transport, rest) = entry.split_once(':').ok_or_else(|| bad("no ':'"))?;
    let mut keys: Vec<(&str, String)> = Vec::new();
    for pair in rest.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| bad("a key without '='"))?;
        if keys.iter().any(|(k, _)| *k == key) {
            return Err(bad(&format!("key {key:?} twice")));
        }
        keys.push((key, unescape(value).map_err(|e| bad(&e))?));
    }
    let get = |key: &str| keys.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    let guid = get("guid");
    let endpoint = match transport {
        "unix" => {
            let options = [
                get("path").map(|p| Endpoint::UnixPath(p.into())),
                get("abstract").map(Endpoint::UnixAbstract),
                get("tmpdir").map(|d| Endpoint::UnixDir(d.into())),
                get("dir").map(|d| Endpoint::UnixDir(d.into())),
            ];
            let mut given = options.into_iter().flatten();
            let endpoint = given
                .next()
                .ok_or_else(|| bad("none of path, abstract, tmpdir, dir"))?;
            if given.next().is_some() {
                return Err(bad("more than one of path, abstract, tmpdir, dir"));
            }
            endpoint
        }
        "tcp" => {
            let host = get("host").unwrap_or_else(|| "localhost".to_owned());
            let port = get("port").ok_or_else(|| bad("no port"))?;
            let port = port
                .parse()
                .map_err(|_| bad(&format!("bad port {port:?}")))?;
            Endpoint::Tcp { host, port }
        }
        _ => return Ok(None),
    };
    Ok(Some(AddressEntry { endpoint, guid }))
}

/// Decodes `%XX` escapes.
fn unescape(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad escape in {value:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("a value that is not UTF-8: {value:?}"))
}

/// Escapes a value: bytes outside `[-0-9A-Za-z_/.\*]` become `%XX`.
pub(crate) fn escape(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-_/.\\*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_in_order_with_escapes_and_guid() {
        let entries =
            parse_address("unix:path=/tmp/a%20b;launchd:env=X;tcp:host=::1,port=0").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].endpoint, Endpoint::UnixPath("/tmp/a b".into()));
        assert_eq!(
            entries[1].endpoint,
            Endpoint::Tcp {
                host: "::1".into(),
                port: 0
            }
        );
    }

    #[test]
    fn malformed_entries_are_errors_naming_the_problem() {
        for (address, what) in [
            ("unix", "no ':'"),
            ("unix:path", "without '='"),
            ("unix:", "none of path"),
            ("unix:path=/a,abstract=b", "more than one"),
            ("unix:path=/a,path=/b", "twice"),
            ("tcp:host=x", "no port"),
            ("tcp:host=x,port=99999", "bad port"),
            ("unix:path=%zz", "bad escape"),
            ("launchd:env=X", "no supported transport"),
            ("", "no address"),
        ] {
            let err = parse_address(address).unwrap_err().to_string();
            assert!(err.contains(what), "{address:?}: {err}");
        }
    }

    #[test]
    fn endpoints_print_as_parseable_addresses() {
        for endpoint in [
            Endpoint::UnixPath("/tmp/x y,z".into()),
            Endpoint::UnixAbstract("gruvi-1".into()),
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 4000,
            },
        ] {
            let parsed = parse_address(&endpoint.to_string()).unwrap();
            assert_eq!(parsed[0].endpoint, endpoint);
        }
    }

    #[test]
    fn abstract_names_become_nul_prefixed_paths() {
        let path = Endpoint::UnixAbstract("bus".into())
            .unix_socket_path()
            .unwrap();
        assert_eq!(path.as_os_str().as_encoded_bytes(), b"\0bus");
    }
}
