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
    /// future are dropped. Only a change (a cookie dropped or added) writes the file, the way
    /// the specification says servers change it: under `<context>.lock`, created
    /// exclusively (tried a few times over ~10 ms; a lock older than 10 s is taken to be
    /// left by a crashed server and removed), the file read again, then written to a
    /// temporary file renamed over it, readable by its user only. The directory is made
    /// (mode 0700) if missing, and must be private to this user: owned by it, with no
    /// permission for anyone else (else anyone who can write it could plant a cookie).
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for an unsafe context name, a directory that is not private, a lock
    /// held by another server, or a keyring that cannot be read or written.
    pub fn server_cookie(&self, context: &str) -> Result<(u32, String), Error> {
        let path = self.file(context)?;
        let fail = |what: &str, err: std::io::Error| {
            Error::Auth(format!("cannot {what} keyring {}: {err}", path.display()))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|err| fail("create the directory of", err))?;
        self.check_private()?;
        let read = || match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(err) => Err(fail("read", err)),
        };
        // Without the lock first (the usual case: a fresh cookie, nothing to drop); only a
        // change needs it, and then the file is read again under it.
        let text = read()?;
        let (chosen, out) = plan(&text, now_secs());
        if out == text {
            return Ok(chosen);
        }
        let _lock = Lock::take(&self.dir.join(format!("{context}.lock")))
            .map_err(|err| fail("lock", err))?;
        let text = read()?;
        let (chosen, out) = plan(&text, now_secs());
        if out == text {
            return Ok(chosen);
        }
        let temp = self
            .dir
            .join(format!("{context}.{}.tmp", super::random_hex()));
        let written = create_private(&temp)
            .and_then(|mut file| file.write_all(out.as_bytes()))
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(fail("write", err));
        }
        Ok(chosen)
    }

    /// Fails unless the directory is owned by this user and no one else may use it.
    fn check_private(&self) -> Result<(), Error> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.dir).map_err(|err| {
            Error::Auth(format!("cannot read keyring {}: {err}", self.dir.display()))
        })?;
        if !meta.is_dir() || meta.uid() != super::effective_uid() || meta.mode() & 0o077 != 0 {
            return Err(Error::Auth(format!(
                "keyring directory {} is not private to this user (owner {}, mode {:o})",
                self.dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
        Ok(())
    }

    /// The cookie with `id` in `context`.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for an unsafe context name, an unreadable keyring or a missing cookie.
    pub fn cookie(&self, context: &str, id: &str) -> Result<String, Error> {
        let path = self.file(context)?;
        self.check_private()?;
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Error::Auth(format!("cannot read keyring {}: {err}", path.display())))?;
        text.lines()
            .filter_map(fields)
            .find(|(cookie_id, _, _)| *cookie_id == id)
            .map(|(_, _, cookie)| cookie.to_owned())
            .ok_or_else(|| Error::Auth(format!("no cookie {id} in keyring {}", path.display())))
    }
}

/// The seconds since the Unix epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// What a server does with a keyring file's `text` at `now`: the cookie it serves (the newest
/// under 5 minutes old, or a new one, added), and the file's new text. Kept: lines of an id
/// (at most `i32::MAX`, libdbus's ids are `int`s; the first of a repeated id), a time and a
/// hex cookie, not over 7 minutes old nor from the future; at most [`MAX_COOKIES`], newest
/// first.
fn plan(text: &str, now: u64) -> ((u32, String), String) {
    let mut cookies: Vec<(u32, u64, String)> = Vec::new();
    for (id, time, cookie) in text.lines().filter_map(fields) {
        let (Ok(id), Ok(time)) = (id.parse::<u32>(), time.parse::<u64>()) else {
            continue;
        };
        let fresh = time.saturating_add(COOKIE_LIFETIME) > now
            && time <= now.saturating_add(MAX_TIME_TRAVEL);
        let valid = id <= i32::MAX as u32
            && !cookie.is_empty()
            && cookie.bytes().all(|b| b.is_ascii_hexdigit())
            && !cookies.iter().any(|(seen, _, _)| *seen == id);
        if fresh && valid {
            cookies.push((id, time, cookie.to_owned()));
        }
    }
    let newest = cookies
        .iter()
        .filter(|(_, time, _)| time.saturating_add(NEW_COOKIE_AFTER) > now)
        .max_by_key(|(_, time, _)| *time)
        .map(|(id, _, cookie)| (*id, cookie.clone()));
    let chosen = newest.unwrap_or_else(|| {
        let max = cookies.iter().map(|(id, _, _)| *id).max().unwrap_or(0);
        let id = if max < i32::MAX as u32 {
            max + 1
        } else {
            (1..)
                .find(|id| !cookies.iter().any(|(seen, _, _)| seen == id))
                .unwrap_or(1)
        };
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        let cookie = hex::encode(bytes);
        cookies.push((id, now, cookie.clone()));
        (id, cookie)
    });
    if cookies.len() > MAX_COOKIES {
        cookies.sort_by_key(|(_, time, _)| std::cmp::Reverse(*time));
        cookies.truncate(MAX_COOKIES);
    }
    let mut out = String::new();
    for (id, time, cookie) in &cookies {
        out.push_str(&format!("{id} {time} {cookie}\n"));
    }
    (chosen, out)
}

/// A keyring line's three fields: id, creation time and cookie.
fn fields(line: &str) -> Option<(&str, &str, &str)> {
    let mut fields = line.split(' ');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(id), Some(time), Some(cookie), None) => Some((id, time, cookie)),
        _ => None,
    }
}

/// Creates `path`, which must not exist, readable and writable by this user only.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// A keyring's lock file, removed when dropped.
struct Lock(PathBuf);

impl Lock {
    /// Creates `path` exclusively, trying a few times over ~10 ms while another server holds
    /// it (each wait blocks the thread: servers hold the lock only to rewrite a small file);
    /// a lock older than [`STALE_LOCK`] is removed first.
    fn take(path: &Path) -> std::io::Result<Lock> {
        for _ in 0..5 {
            match create_private(path) {
                Ok(_) => return Ok(Lock(path.to_owned())),
                Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => return Err(err),
                Err(_) => {}
            }
            // A lock dated in the future is not stale; one that went away meanwhile is
            // simply tried again.
            let stale = std::fs::metadata(path)
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age >= STALE_LOCK));
            if stale {
                let _ = std::fs::remove_file(path);
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        create_private(path).map(|_| Lock(path.to_owned()))
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

/// A temporary directory private to this user, as a keyring's must be (tests).
#[cfg(test)]
pub(crate) fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_hashes_both_challenges_and_the_cookie() {
        let dir = private_tempdir();
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
        let dir = private_tempdir();
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
        let dir = private_tempdir();
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

    /// A directory others may use is refused on both sides: whoever could write it could
    /// plant a cookie, and whoever could read it could learn one.
    #[test]
    fn a_keyring_directory_that_is_not_private_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = private_tempdir();
        let keyring = Keyring::new(dir.path());
        keyring.server_cookie("ctx").unwrap();
        for mode in [0o755, 0o770, 0o701] {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let err = keyring.server_cookie("ctx").unwrap_err().to_string();
            assert!(err.contains("not private"), "{mode:o}: {err}");
            let err = keyring.cookie("ctx", "1").unwrap_err().to_string();
            assert!(err.contains("not private"), "{mode:o}: {err}");
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(keyring.cookie("ctx", "1").is_ok());
    }

    /// Lines a server must not trust: an overflowing time, an id libdbus cannot read (over
    /// `i32::MAX`), a repeated id (the first counts, as in libdbus), extra fields.
    #[test]
    fn odd_keyring_lines_are_dropped_without_a_panic() {
        let now = now_secs();
        let text = format!(
            "1 18446744073709551615 aa\n4294967295 {now} bb\n7 {now} cc\n7 {now} dd\n8 {now} ee ff\n"
        );
        let ((id, cookie), out) = plan(&text, now);
        assert_eq!((id, cookie.as_str()), (7, "cc"));
        assert_eq!(out, format!("7 {now} cc\n"));
        // The highest id libdbus reads: the next new cookie takes a free id instead.
        let ((id, _), out) = plan(&format!("2147483647 {} aa\n", now - 6 * 60), now);
        assert_eq!(id, 1);
        assert!(out.starts_with("2147483647 "), "{out}");
    }

    /// At most [`MAX_COOKIES`] are kept, the newest: a file at the limit stays as it is, one
    /// over it loses its oldest.
    #[test]
    fn a_keyring_file_keeps_at_most_its_limit_of_cookies_the_newest() {
        let now = now_secs();
        let file = |n: u64| -> String {
            (1..=n)
                .map(|i| format!("{i} {} aa\n", now - 300 + i))
                .collect()
        };
        let at_limit = file(MAX_COOKIES as u64);
        assert_eq!(plan(&at_limit, now).1, at_limit);
        let (_, out) = plan(&file(MAX_COOKIES as u64 + 1), now);
        assert_eq!(out.lines().count(), MAX_COOKIES);
        assert!(
            !out.lines().any(|line| line.starts_with("1 ")),
            "the oldest stayed"
        );
        assert!(
            out.starts_with(&format!("{} ", MAX_COOKIES + 1)),
            "{}",
            &out[..40]
        );
    }

    #[test]
    fn a_held_lock_fails_and_a_stale_one_is_removed() {
        let dir = private_tempdir();
        let keyring = Keyring::new(dir.path());
        let lock = dir.path().join("ctx.lock");
        std::fs::write(&lock, b"").unwrap();
        // A new cookie is needed, so the lock is: held, and after a few tries, given up.
        let err = keyring.server_cookie("ctx").unwrap_err().to_string();
        assert!(err.contains("cannot lock"), "{err}");
        assert!(lock.exists(), "another server's lock was removed");
        // Dated in the future: still held.
        let file = std::fs::File::options().write(true).open(&lock).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(60))
            .unwrap();
        drop(file);
        assert!(keyring.server_cookie("ctx").is_err());
        let file = std::fs::File::options().write(true).open(&lock).unwrap();
        file.set_modified(SystemTime::now() - STALE_LOCK - Duration::from_secs(1))
            .unwrap();
        drop(file);
        let (_, cookie) = keyring.server_cookie("ctx").unwrap();
        assert!(!lock.exists());
        // A fresh cookie needs no lock: served while another server holds it.
        std::fs::write(&lock, b"").unwrap();
        assert_eq!(keyring.server_cookie("ctx").unwrap().1, cookie);
        assert!(keyring.server_cookie("../ctx").is_err());
    }

    #[test]
    fn a_server_verifies_the_clients_answer() {
        let dir = private_tempdir();
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
