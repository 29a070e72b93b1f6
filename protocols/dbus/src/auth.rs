//! SASL authentication as D-Bus uses it, sans-IO: lines in, lines out. The client
//! ([`ClientAuth`]) and the server ([`ServerAuth`]) state machines, the line rules shared by
//! both, and the `DBUS_COOKIE_SHA1` keyring. [`Connection`](crate::Connection) and
//! [`Server`](crate::Server) drive them over a stream, with a line limit and a timeout.

mod client;
mod cookie;
mod server;

use std::time::Duration;

pub use client::{ClientAuth, ClientStep};
pub use cookie::Keyring;
pub use server::{ServerAuth, ServerStep};

use crate::error::Error;

/// The default limit on one authentication line, CR LF included.
pub const DEFAULT_MAX_LINE: usize = 2048;

/// The default number of rejected attempts (and errors) a server accepts before it drops the
/// client.
pub const DEFAULT_MAX_REJECTS: usize = 5;

/// The default time the whole authentication may take.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// A SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// The peer's credentials as the kernel passes them on a Unix socket.
    External,
    /// A secret cookie in the user's `~/.dbus-keyrings` (for TCP between processes of one
    /// user).
    CookieSha1,
    /// No authentication at all.
    Anonymous,
}

impl Mechanism {
    /// The mechanism's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::External => "EXTERNAL",
            Mechanism::CookieSha1 => "DBUS_COOKIE_SHA1",
            Mechanism::Anonymous => "ANONYMOUS",
        }
    }

    fn from_name(name: &str) -> Option<Mechanism> {
        [
            Mechanism::External,
            Mechanism::CookieSha1,
            Mechanism::Anonymous,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

/// Checks a received line (`\n` included) and returns it without its CR LF.
///
/// # Errors
///
/// [`Error::Auth`] for a line over `max` bytes, without CR LF, or with bytes outside
/// printable ASCII.
pub(crate) fn check_line(line: &[u8], max: usize) -> Result<&str, Error> {
    if line.len() > max {
        return Err(Error::Auth(format!("auth line longer than {max} bytes")));
    }
    let Some(text) = line.strip_suffix(b"\r\n") else {
        return Err(Error::Auth(if line.ends_with(b"\n") {
            "auth line does not end with CR LF".into()
        } else {
            "connection closed during authentication".into()
        }));
    };
    if !text.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(Error::Auth("auth line contains non-ASCII bytes".into()));
    }
    Ok(std::str::from_utf8(text).expect("ASCII"))
}

/// Splits a command line into its command and the rest (possibly empty).
pub(crate) fn split_command(line: &str) -> (&str, &str) {
    match line.split_once(' ') {
        Some((command, rest)) => (command, rest.trim_start()),
        None => (line, ""),
    }
}

/// Decodes a hex argument into ASCII text.
pub(crate) fn hex_text(data: &str) -> Result<String, Error> {
    let bytes = hex::decode(data).map_err(|_| Error::Auth(format!("bad hex data {data:?}")))?;
    String::from_utf8(bytes).map_err(|_| Error::Auth("hex data is not text".into()))
}

/// 16 random bytes as 32 hex digits: a server GUID or a challenge.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // Without an entropy source no GUID or challenge can be made; the OS always has one.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    hex::encode(bytes)
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_must_be_short_crlf_terminated_printable_ascii() {
        assert_eq!(check_line(b"OK 1234\r\n", 100).unwrap(), "OK 1234");
        let long = format!("DATA {}\r\n", "a".repeat(100));
        assert!(
            check_line(long.as_bytes(), 100)
                .unwrap_err()
                .to_string()
                .contains("longer than 100")
        );
        assert!(
            check_line(b"OK\n", 100)
                .unwrap_err()
                .to_string()
                .contains("CR LF")
        );
        assert!(
            check_line("AUTH \u{e9}\r\n".as_bytes(), 100)
                .unwrap_err()
                .to_string()
                .contains("non-ASCII")
        );
        assert!(check_line(b"AUTH \x01\r\n", 100).is_err());
        assert!(
            check_line(b"AUTH", 100)
                .unwrap_err()
                .to_string()
                .contains("closed")
        );
    }

    #[test]
    fn guids_are_32_hex_digits_and_differ() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
