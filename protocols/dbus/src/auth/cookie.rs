//! The `DBUS_COOKIE_SHA1` keyring: `~/.dbus-keyrings/<context>` files of `id time cookie`
//! lines, readable only by their user.

use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::error::Error;

/// Where `DBUS_COOKIE_SHA1` cookies are read from (the specification's
/// `~/.dbus-keyrings` by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    dir: PathBuf,
}

impl Keyring {
    /// The keyring in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Keyring {
        Keyring { dir: dir.into() }
    }

    /// `$HOME/.dbus-keyrings`, or `None` when `HOME` is not set.
    pub fn default_dir() -> Option<Keyring> {
        std::env::var_os("HOME").map(|home| Keyring::new(Path::new(&home).join(".dbus-keyrings")))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cookie with `id` in `context`.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for an unsafe context name, an unreadable keyring or a missing cookie.
    pub fn cookie(&self, context: &str, id: &str) -> Result<String, Error> {
        let safe = !context.is_empty()
            && !context.starts_with('.')
            && context
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\');
        if !safe {
            return Err(Error::Auth(format!("unsafe keyring context {context:?}")));
        }
        let path = self.dir.join(context);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Error::Auth(format!("cannot read keyring {}: {err}", path.display())))?;
        text.lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                Some((fields.next()?, fields.next()?, fields.next()?))
            })
            .find(|(cookie_id, _, _)| *cookie_id == id)
            .map(|(_, _, cookie)| cookie.to_owned())
            .ok_or_else(|| Error::Auth(format!("no cookie {id} in keyring {}", path.display())))
    }
}

/// The client's answer to a server challenge `"context id server_challenge"`: the client
/// challenge and `sha1("server_challenge:client_challenge:cookie")`, space-separated.
pub(crate) fn answer(
    keyring: &Keyring,
    challenge: &str,
    client_challenge: &str,
) -> Result<String, Error> {
    let mut parts = challenge.split(' ');
    let (Some(context), Some(id), Some(server_challenge), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Auth(format!(
            "bad DBUS_COOKIE_SHA1 challenge {challenge:?}"
        )));
    };
    let cookie = keyring.cookie(context, id)?;
    let digest = Sha1::digest(format!("{server_challenge}:{client_challenge}:{cookie}"));
    Ok(format!("{client_challenge} {}", hex::encode(digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_hashes_both_challenges_and_the_cookie() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("org_freedesktop_general"),
            "7 1700000000 c0ffee\n9 1700000001 beef\n",
        )
        .unwrap();
        let keyring = Keyring::new(dir.path());
        assert_eq!(
            keyring.cookie("org_freedesktop_general", "9").unwrap(),
            "beef"
        );
        let got = answer(&keyring, "org_freedesktop_general 7 abc", "def").unwrap();
        let want = hex::encode(Sha1::digest(b"abc:def:c0ffee"));
        assert_eq!(got, format!("def {want}"));
    }

    #[test]
    fn unsafe_contexts_missing_cookies_and_bad_challenges_fail() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::new(dir.path());
        for context in ["", ".hidden", "a/b", "a b"] {
            assert!(
                keyring
                    .cookie(context, "1")
                    .unwrap_err()
                    .to_string()
                    .contains("unsafe")
            );
        }
        assert!(
            keyring
                .cookie("ctx", "1")
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
        std::fs::write(dir.path().join("ctx"), "1 0 aa\n").unwrap();
        assert!(
            keyring
                .cookie("ctx", "2")
                .unwrap_err()
                .to_string()
                .contains("no cookie 2")
        );
        assert!(answer(&keyring, "ctx 1", "x").is_err());
    }
}
