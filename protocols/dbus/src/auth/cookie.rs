//! The `DBUS_COOKIE_SHA1` keyring: `~/.dbus-keyrings/<context>` files of `id time cookie`
//! lines, readable only by their user; servers add and prune cookies, clients read them.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

use crate::error::Error;

/// The keyring context servers use (libdbus's and dbus-daemon's).
pub(crate) const DEFAULT_CONTEXT: &str = "org_freedesktop_general";

/// A server makes a new cookie when its newest is older than this (libdbus: 5 minutes).
const NEW_COOKIE_AFTER: u64 = 5 * 60;
/// Cookies older than this are dropped when a server rewrites the file (libdbus: 7 minutes).
const COOKIE_LIFETIME: u64 = 7 * 60;
/// Cookies dated further than this in the future are dropped too (a clock set back).
const MAX_TIME_TRAVEL: u64 = 5 * 60;
/// A lock file older than this is taken to be left by a crashed server and removed.
const STALE_LOCK: Duration = Duration::from_secs(10);
/// At most this many cookies are kept in one file.
const MAX_COOKIES: usize = 256;

/// Where `DBUS_COOKIE_SHA1` cookies are kept: read by clients, written by servers (the
/// specification's `~/.dbus-keyrings` by default).
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

    /// The file of `context`, if the name is safe (no path, not hidden).
    fn file(&self, context: &str) -> Result<PathBuf, Error> {
        let safe = !context.is_empty()
            && !context.starts_with('.')
            && context
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\');
        if !safe {
            return Err(Error::Auth(format!("unsafe keyring context {context:?}")));
        }
        Ok(self.dir.join(context))
    }

    /// A server's cookie for a `DBUS_COOKIE_SHA1` challenge in `context`: its id and its
    /// text. The newest cookie of the file serves if it is less than 5 minutes old; else a
    /// new one (24 random bytes) is added. Cookies older than 7 minutes or dated in the
    /// future are dropped; when that or an added cookie changes the file, it is rewritten the
    /// way the specification says servers change it: under `<context>.lock` (created exclusively; one older than 10 s is taken
    /// to be stale and removed), through a temporary file renamed over it, readable by its
    /// user only, in a directory (made if missing) of mode 0700.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for an unsafe context name, a lock held by another server, or a
    /// keyring that cannot be read or written.
    pub fn server_cookie(&self, context: &str) -> Result<(u64, String), Error> {
        let path = self.file(context)?;
        let fail = |what: &str, err: std::io::Error| {
            Error::Auth(format!("cannot {what} keyring {}: {err}", path.display()))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|err| fail("create the directory of", err))?;
        let lock = self.dir.join(format!("{context}.lock"));
        let _lock = Lock::take(&lock).map_err(|err| fail("lock", err))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(fail("read", err)),
        };
        let mut cookies: Vec<(u64, u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let id = fields.next()?.parse().ok()?;
                let time: u64 = fields.next()?.parse().ok()?;
                let cookie = fields.next()?;
                let fresh = time + COOKIE_LIFETIME > now && time <= now + MAX_TIME_TRAVEL;
                let valid = !cookie.is_empty() && cookie.bytes().all(|b| b.is_ascii_hexdigit());
                (fresh && valid).then(|| (id, time, cookie.to_owned()))
            })
            .collect();
        let newest = cookies
            .iter()
            .filter(|(_, time, _)| time + NEW_COOKIE_AFTER > now)
            .max_by_key(|(_, time, _)| *time)
            .map(|(id, _, cookie)| (*id, cookie.clone()));
        let chosen = match newest {
            Some(chosen) => chosen,
            None => {
                let id = cookies.iter().map(|(id, _, _)| id + 1).max().unwrap_or(1);
                let mut bytes = [0u8; 24];
                getrandom::fill(&mut bytes).expect("the OS random number generator failed");
                let cookie = hex::encode(bytes);
                cookies.push((id, now, cookie.clone()));
                (id, cookie)
            }
        };
        if cookies.len() > MAX_COOKIES {
            cookies.sort_by_key(|(_, time, _)| *time);
            cookies.drain(..cookies.len() - MAX_COOKIES);
        }
        let mut out = String::new();
        for (id, time, cookie) in &cookies {
            out.push_str(&format!("{id} {time} {cookie}\n"));
        }
        // Nothing pruned or added: the file stays as it is.
        if out == text {
            return Ok(chosen);
        }
        let temp = self
            .dir
            .join(format!("{context}.{}.tmp", super::random_hex()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| file.write_all(out.as_bytes()))
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(fail("write", err));
        }
        Ok(chosen)
    }

    /// The cookie with `id` in `context`.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for an unsafe context name, an unreadable keyring or a missing cookie.
    pub fn cookie(&self, context: &str, id: &str) -> Result<String, Error> {
        let path = self.file(context)?;
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

/// A keyring's lock file, removed when dropped.
struct Lock(PathBuf);

impl Lock {
    /// Creates `path` exclusively; a lock older than [`STALE_LOCK`] is removed first.
    fn take(path: &Path) -> std::io::Result<Lock> {
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        };
        match create() {
            Ok(_) => return Ok(Lock(path.to_owned())),
            Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => return Err(err),
            Err(err) => {
                let age = std::fs::metadata(path)
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok());
                if age.is_some_and(|age| age < STALE_LOCK) {
                    return Err(err);
                }
            }
        }
        let _ = std::fs::remove_file(path);
        create().map(|_| Lock(path.to_owned()))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether `answer` (the client's `"client_challenge digest"`) proves knowledge of `cookie`
/// for `server_challenge`. The digests are compared in constant time.
pub(crate) fn verify(server_challenge: &str, cookie: &str, answer: &str) -> bool {
    let Some((client_challenge, digest)) = answer.split_once(' ') else {
        return false;
    };
    if client_challenge.is_empty() || client_challenge.contains(' ') {
        return false;
    }
    let want = hex::encode(Sha1::digest(format!(
        "{server_challenge}:{client_challenge}:{cookie}"
    )));
    let got = digest.to_ascii_lowercase();
    want.len() == got.len()
        && want
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
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

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_server_makes_its_keyring_private_and_keeps_a_fresh_cookie() {
        let home = tempfile::tempdir().unwrap();
        let keyring = Keyring::new(home.path().join(".dbus-keyrings"));
        let (id, cookie) = keyring.server_cookie("ctx").unwrap();
        assert_eq!(id, 1);
        assert_eq!(cookie.len(), 48);
        assert_eq!(mode(keyring.dir()), 0o700);
        assert_eq!(mode(&keyring.dir().join("ctx")), 0o600);
        // The lock is gone, no temporary file is left, and a client finds the cookie.
        let names: Vec<_> = std::fs::read_dir(keyring.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["ctx"]);
        assert_eq!(keyring.cookie("ctx", "1").unwrap(), cookie);
        // Still fresh: the same cookie again, and the file is not rewritten.
        let written = std::fs::metadata(keyring.dir().join("ctx")).unwrap();
        assert_eq!(keyring.server_cookie("ctx").unwrap(), (1, cookie));
        let again = std::fs::metadata(keyring.dir().join("ctx")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(written.ino(), again.ino(), "the file was replaced");
    }

    #[test]
    fn a_server_drops_expired_and_future_cookies_and_adds_one_when_none_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // 8 minutes old (expired), 6 minutes old (kept, too old to serve), 10 minutes in
        // the future (dropped), and a line that is not a cookie (dropped).
        std::fs::write(
            dir.path().join("ctx"),
            format!(
                "3 {} aa\n4 {} bb\n9 {} cc\nnot a cookie\n",
                now - 8 * 60,
                now - 6 * 60,
                now + 10 * 60
            ),
        )
        .unwrap();
        let keyring = Keyring::new(dir.path());
        let (id, cookie) = keyring.server_cookie("ctx").unwrap();
        assert_eq!(id, 5, "one more than the highest id kept");
        let text = std::fs::read_to_string(dir.path().join("ctx")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], format!("4 {} bb", now - 6 * 60));
        assert!(
            lines[1].starts_with("5 ") && lines[1].ends_with(&cookie),
            "{text}"
        );
    }

    #[test]
    fn a_held_lock_fails_and_a_stale_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::new(dir.path());
        let lock = dir.path().join("ctx.lock");
        std::fs::write(&lock, b"").unwrap();
        let err = keyring.server_cookie("ctx").unwrap_err().to_string();
        assert!(err.contains("cannot lock"), "{err}");
        assert!(lock.exists(), "another server's lock was removed");
        let file = std::fs::File::options().write(true).open(&lock).unwrap();
        file.set_modified(SystemTime::now() - STALE_LOCK - Duration::from_secs(1))
            .unwrap();
        drop(file);
        assert!(keyring.server_cookie("ctx").is_ok());
        assert!(!lock.exists());
        assert!(keyring.server_cookie("../ctx").is_err());
    }

    #[test]
    fn a_server_verifies_the_clients_answer() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::new(dir.path());
        let (id, cookie) = keyring.server_cookie("ctx").unwrap();
        let reply = answer(&keyring, &format!("ctx {id} srv"), "cli").unwrap();
        assert!(verify("srv", &cookie, &reply));
        assert!(verify(
            "srv",
            &cookie,
            &reply.to_ascii_uppercase().replace("CLI", "cli")
        ));
        assert!(!verify("other", &cookie, &reply));
        assert!(!verify("srv", "0000", &reply));
        let (challenge, digest) = reply.split_once(' ').unwrap();
        assert!(!verify(
            "srv",
            &cookie,
            &format!("{challenge} {}", &digest[1..])
        ));
        assert!(!verify("srv", &cookie, digest));
        assert!(!verify("srv", &cookie, &format!(" {digest}")));
    }
}
