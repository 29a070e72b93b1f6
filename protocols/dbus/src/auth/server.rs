//! The server side of D-Bus authentication: `EXTERNAL` checked against the peer's
//! credentials (`SO_PEERCRED`), `DBUS_COOKIE_SHA1` against this user's keyring when
//! enabled, and `ANONYMOUS` when allowed. Unix fd passing is declined.

use super::cookie::{self, DEFAULT_CONTEXT, Keyring};
use super::{Mechanism, effective_uid, hex_text, random_hex, split_command};
use crate::error::Error;

/// What the server does next.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this line (CR LF included) and read the next.
    Send(String),
    /// The client sent `BEGIN`: messages follow (possibly already buffered).
    Begin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    WaitingForAuth,
    /// `AUTH EXTERNAL` came without an initial response; we sent an empty `DATA`.
    WaitingForData,
    /// We sent a `DBUS_COOKIE_SHA1` challenge.
    WaitingForCookie,
    /// We sent `OK`.
    WaitingForBegin,
    Done,
}

/// The server's SASL state machine, sans-IO: feed it each client line (without CR LF) after
/// the NUL credentials byte. Out-of-order commands get `ERROR`, failed attempts `REJECTED`;
/// after `max_rejects` of those together the client is dropped (an error).
///
/// # Examples
///
/// ```
/// use gruvi_dbus::auth::{ServerAuth, ServerStep};
///
/// let guid = "0123456789abcdef0123456789abcdef";
/// // A client of uid 1000 on a Unix socket.
/// let mut auth = ServerAuth::new(guid, Some(1000));
/// let ok = auth.receive(&format!("AUTH EXTERNAL {}", hex::encode("1000")))?;
/// assert_eq!(ok, ServerStep::Send(format!("OK {guid}\r\n")));
/// assert_eq!(auth.receive("BEGIN")?, ServerStep::Begin);
/// assert_eq!(auth.authenticated_uid(), Some(1000));
/// # Ok::<(), gruvi_dbus::Error>(())
/// ```
#[derive(Debug)]
pub struct ServerAuth {
    guid: String,
    peer_uid: Option<u32>,
    allow_anonymous: bool,
    keyring: Option<Keyring>,
    /// The challenge sent and the cookie it names, while waiting for the answer.
    challenge: Option<(String, String)>,
    max_rejects: usize,
    rejects: usize,
    state: State,
    uid: Option<u32>,
}

impl ServerAuth {
    /// A server with `guid` (32 hex digits) for a peer whose uid the kernel reported
    /// (`None` on TCP: `EXTERNAL` is then rejected). Only `EXTERNAL` is offered until
    /// [`allow_anonymous`](Self::allow_anonymous).
    pub fn new(guid: &str, peer_uid: Option<u32>) -> ServerAuth {
        ServerAuth {
            guid: guid.to_owned(),
            peer_uid,
            allow_anonymous: false,
            keyring: None,
            challenge: None,
            max_rejects: super::DEFAULT_MAX_REJECTS,
            rejects: 0,
            state: State::WaitingForAuth,
            uid: None,
        }
    }

    /// Offers `ANONYMOUS` too.
    pub fn allow_anonymous(mut self, allow: bool) -> ServerAuth {
        self.allow_anonymous = allow;
        self
    }

    /// Offers `DBUS_COOKIE_SHA1` with cookies of `keyring` (`None`: not offered, the
    /// default). A client proves it can read this user's keyring, so it authenticates as
    /// this process's user; it must claim that user (by uid or name). The server adds and
    /// prunes cookies in the keyring as the specification says (see
    /// [`Keyring::server_cookie`]).
    pub fn cookie_sha1(mut self, keyring: Option<Keyring>) -> ServerAuth {
        self.keyring = keyring;
        self
    }

    /// Sets how many rejections and errors the client may get before it is dropped.
    pub fn max_rejects(mut self, max: usize) -> ServerAuth {
        self.max_rejects = max;
        self
    }

    /// The uid the client authenticated as (`None` for `ANONYMOUS` or before `OK`).
    pub fn authenticated_uid(&self) -> Option<u32> {
        self.uid
    }

    fn mechanisms(&self) -> String {
        let mut names = vec![Mechanism::External.name()];
        if self.keyring.is_some() {
            names.push(Mechanism::CookieSha1.name());
        }
        if self.allow_anonymous {
            names.push(Mechanism::Anonymous.name());
        }
        names.join(" ")
    }

    /// Takes one line from the client (without CR LF) and says what to do.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] once the client had `max_rejects` rejections or errors, or for a
    /// command after `BEGIN`.
    pub fn receive(&mut self, line: &str) -> Result<ServerStep, Error> {
        let (command, arg) = split_command(line);
        match (self.state, command) {
            (State::Done, _) => Err(Error::Auth("command after BEGIN".into())),
            (State::WaitingForAuth, "AUTH") => self.auth(arg),
            (State::WaitingForData, "DATA") => {
                // An empty answer means "the credentials you have"; else a uid in hex.
                let claimed = if arg.is_empty() { None } else { Some(arg) };
                self.external(claimed)
            }
            (State::WaitingForCookie, "DATA") => self.cookie_answer(arg),
            (State::WaitingForBegin, "BEGIN") => {
                self.state = State::Done;
                Ok(ServerStep::Begin)
            }
            (State::WaitingForBegin, "NEGOTIATE_UNIX_FD") => {
                self.error("Unix fd passing is not supported")
            }
            (
                State::WaitingForData | State::WaitingForCookie | State::WaitingForBegin,
                "CANCEL" | "ERROR",
            ) => {
                self.uid = None;
                self.reject()
            }
            (_, "AUTH" | "CANCEL" | "BEGIN" | "DATA" | "ERROR" | "NEGOTIATE_UNIX_FD") => {
                self.error(&format!("{command} not expected now"))
            }
            _ => self.error("unknown command"),
        }
    }

    /// `AUTH [mechanism [initial-response]]`.
    fn auth(&mut self, arg: &str) -> Result<ServerStep, Error> {
        let (mechanism, initial) = split_command(arg);
        match Mechanism::from_name(mechanism) {
            Some(Mechanism::External) if initial.is_empty() => {
                self.state = State::WaitingForData;
                Ok(ServerStep::Send("DATA\r\n".into()))
            }
            Some(Mechanism::External) => self.external(Some(initial)),
            Some(Mechanism::CookieSha1) if self.keyring.is_some() => self.cookie_challenge(initial),
            Some(Mechanism::Anonymous) if self.allow_anonymous => {
                // The initial response is an optional trace string: nothing to check.
                self.ok(None)
            }
            // No mechanism (a client asking what we offer), or one we do not offer.
            _ => self.reject(),
        }
    }

    /// `EXTERNAL`: the claimed uid (hex-encoded decimal ASCII), if any, must be the peer's.
    fn external(&mut self, claimed: Option<&str>) -> Result<ServerStep, Error> {
        let Some(peer_uid) = self.peer_uid else {
            return self.reject();
        };
        if let Some(claimed) = claimed {
            let matches = hex_text(claimed)
                .ok()
                .and_then(|text| text.parse::<u32>().ok())
                .is_some_and(|uid| uid == peer_uid);
            if !matches {
                return self.reject();
            }
        }
        self.ok(Some(peer_uid))
    }

    /// `AUTH DBUS_COOKIE_SHA1 <user>`: the user must be this process's (a decimal uid, as
    /// libdbus and our client send, or a name from the password database); the challenge
    /// names a cookie of the keyring.
    fn cookie_challenge(&mut self, user: &str) -> Result<ServerStep, Error> {
        let ours = effective_uid();
        let claimed = hex_text(user).ok().and_then(|user| uid_of(&user));
        if claimed != Some(ours) {
            return self.reject();
        }
        let keyring = self.keyring.as_ref().expect("offered only with a keyring");
        // A keyring we cannot use (locked by another server, unwritable) rejects the
        // mechanism: the client may try the next one.
        let Ok((id, cookie)) = keyring.server_cookie(DEFAULT_CONTEXT) else {
            return self.reject();
        };
        let challenge = random_hex();
        let data = format!("{DEFAULT_CONTEXT} {id} {challenge}");
        self.challenge = Some((challenge, cookie));
        self.state = State::WaitingForCookie;
        Ok(ServerStep::Send(format!("DATA {}\r\n", hex::encode(data))))
    }

    /// The client's `DATA` answer to our cookie challenge.
    fn cookie_answer(&mut self, data: &str) -> Result<ServerStep, Error> {
        let Some((challenge, cookie)) = self.challenge.take() else {
            return self.reject();
        };
        let proved = hex_text(data)
            .map(|answer| cookie::verify(&challenge, &cookie, &answer))
            .unwrap_or(false);
        if proved {
            self.ok(Some(effective_uid()))
        } else {
            self.reject()
        }
    }

    fn ok(&mut self, uid: Option<u32>) -> Result<ServerStep, Error> {
        self.uid = uid;
        self.state = State::WaitingForBegin;
        Ok(ServerStep::Send(format!("OK {}\r\n", self.guid)))
    }

    fn reject(&mut self) -> Result<ServerStep, Error> {
        // Back to the start even when this rejection is one too many (the error ends it).
        self.state = State::WaitingForAuth;
        self.challenge = None;
        self.count("rejected")?;
        Ok(ServerStep::Send(format!(
            "REJECTED {}\r\n",
            self.mechanisms()
        )))
    }

    fn error(&mut self, why: &str) -> Result<ServerStep, Error> {
        self.count("errors")?;
        Ok(ServerStep::Send(format!("ERROR \"{why}\"\r\n")))
    }

    fn count(&mut self, what: &str) -> Result<(), Error> {
        self.rejects += 1;
        if self.rejects > self.max_rejects {
            return Err(Error::Auth(format!(
                "too many {what} attempts ({} allowed)",
                self.max_rejects
            )));
        }
        Ok(())
    }
}

/// The uid a `DBUS_COOKIE_SHA1` client names: a decimal uid, or a user name looked up in
/// `/etc/passwd`.
fn uid_of(user: &str) -> Option<u32> {
    if let Ok(uid) = user.parse() {
        return Some(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == user)
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "0123456789abcdef0123456789abcdef";

    fn line(step: ServerStep) -> String {
        match step {
            ServerStep::Send(line) => line,
            ServerStep::Begin => panic!("unexpected BEGIN"),
        }
    }

    #[test]
    fn external_with_the_peer_uid_is_ok_and_another_uid_is_rejected() {
        let mut auth = ServerAuth::new(GUID, Some(1000));
        assert_eq!(
            line(
                auth.receive(&format!("AUTH EXTERNAL {}", hex::encode("0")))
                    .unwrap()
            ),
            "REJECTED EXTERNAL\r\n"
        );
        assert_eq!(
            line(
                auth.receive(&format!("AUTH EXTERNAL {}", hex::encode("1000")))
                    .unwrap()
            ),
            format!("OK {GUID}\r\n")
        );
        assert_eq!(auth.receive("BEGIN").unwrap(), ServerStep::Begin);
        assert!(auth.receive("BEGIN").is_err());
    }

    #[test]
    fn external_without_initial_response_asks_for_data() {
        let mut auth = ServerAuth::new(GUID, Some(7));
        assert_eq!(line(auth.receive("AUTH EXTERNAL").unwrap()), "DATA\r\n");
        assert_eq!(
            line(auth.receive("DATA").unwrap()),
            format!("OK {GUID}\r\n")
        );
        assert_eq!(auth.authenticated_uid(), Some(7));
    }

    #[test]
    fn without_credentials_external_is_rejected_and_anonymous_is_offered_when_allowed() {
        let mut auth = ServerAuth::new(GUID, None).allow_anonymous(true);
        assert_eq!(
            line(auth.receive("AUTH").unwrap()),
            "REJECTED EXTERNAL ANONYMOUS\r\n"
        );
        assert_eq!(
            line(
                auth.receive(&format!("AUTH EXTERNAL {}", hex::encode("0")))
                    .unwrap()
            ),
            "REJECTED EXTERNAL ANONYMOUS\r\n"
        );
        assert_eq!(
            line(auth.receive("AUTH ANONYMOUS 6869").unwrap()),
            format!("OK {GUID}\r\n")
        );
        let mut closed = ServerAuth::new(GUID, None);
        assert_eq!(
            line(closed.receive("AUTH ANONYMOUS").unwrap()),
            "REJECTED EXTERNAL\r\n"
        );
    }

    #[test]
    fn unix_fd_negotiation_is_declined_and_pipelined_begin_follows() {
        // What sd-bus sends in one go: AUTH, NEGOTIATE_UNIX_FD, BEGIN.
        let mut auth = ServerAuth::new(GUID, Some(0));
        line(
            auth.receive(&format!("AUTH EXTERNAL {}", hex::encode("0")))
                .unwrap(),
        );
        assert!(line(auth.receive("NEGOTIATE_UNIX_FD").unwrap()).starts_with("ERROR"));
        assert_eq!(auth.receive("BEGIN").unwrap(), ServerStep::Begin);
    }

    #[test]
    fn commands_out_of_order_get_errors_and_too_many_end_it() {
        let mut auth = ServerAuth::new(GUID, Some(0)).max_rejects(3);
        assert!(line(auth.receive("BEGIN").unwrap()).starts_with("ERROR"));
        assert!(line(auth.receive("DATA 00").unwrap()).starts_with("ERROR"));
        assert!(line(auth.receive("HELO").unwrap()).starts_with("ERROR"));
        let err = auth.receive("AUTH BOGUS").unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
    }

    /// Our client and server, over TCP (no credentials), through `EXTERNAL`'s rejection to
    /// `DBUS_COOKIE_SHA1` with one keyring: the server writes the cookie, the client reads it.
    #[test]
    fn cookie_sha1_takes_a_client_of_this_user_that_reads_the_keyring() {
        use crate::auth::{ClientAuth, ClientStep};
        let dir = crate::auth::cookie::private_tempdir();
        let keyring = Keyring::new(dir.path().join("keyrings"));
        let mut server = ServerAuth::new(GUID, None).cookie_sha1(Some(keyring.clone()));
        let mut client =
            ClientAuth::new(&[Mechanism::External, Mechanism::CookieSha1]).keyring(keyring.clone());
        let first = client.start().unwrap();
        let mut to_server = std::str::from_utf8(&first[1..]).unwrap().to_owned();
        let mut lines = Vec::new();
        let guid = loop {
            let reply = line(server.receive(to_server.trim_end()).unwrap());
            lines.push(reply.clone());
            match client.receive(reply.trim_end()).unwrap() {
                ClientStep::Send(next) => to_server = next,
                ClientStep::Begin { guid, .. } => break guid,
            }
        };
        assert_eq!(guid, GUID);
        assert_eq!(lines[0], "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n");
        assert!(lines[1].starts_with("DATA "), "{lines:?}");
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(server.receive("BEGIN").unwrap(), ServerStep::Begin);
        assert_eq!(server.authenticated_uid(), Some(effective_uid()));
    }

    #[test]
    fn cookie_sha1_rejects_another_user_a_wrong_answer_and_is_off_by_default() {
        let dir = crate::auth::cookie::private_tempdir();
        let keyring = Keyring::new(dir.path());
        let mut server = ServerAuth::new(GUID, None).cookie_sha1(Some(keyring));
        let other = hex::encode((effective_uid() + 1).to_string());
        assert_eq!(
            line(
                server
                    .receive(&format!("AUTH DBUS_COOKIE_SHA1 {other}"))
                    .unwrap()
            ),
            "REJECTED EXTERNAL DBUS_COOKIE_SHA1\r\n"
        );
        let ours = hex::encode(effective_uid().to_string());
        let challenge = line(
            server
                .receive(&format!("AUTH DBUS_COOKIE_SHA1 {ours}"))
                .unwrap(),
        );
        assert!(challenge.starts_with("DATA "), "{challenge}");
        let wrong = hex::encode(format!("cli {}", "0".repeat(40)));
        assert!(line(server.receive(&format!("DATA {wrong}")).unwrap()).starts_with("REJECTED"));
        assert_eq!(server.authenticated_uid(), None);
        // CANCEL instead of an answer: rejected too, and the challenge is forgotten.
        line(
            server
                .receive(&format!("AUTH DBUS_COOKIE_SHA1 {ours}"))
                .unwrap(),
        );
        assert!(line(server.receive("CANCEL").unwrap()).starts_with("REJECTED"));
        assert!(line(server.receive("DATA 00").unwrap()).starts_with("ERROR"));
        let mut plain = ServerAuth::new(GUID, None);
        assert_eq!(
            line(
                plain
                    .receive(&format!("AUTH DBUS_COOKIE_SHA1 {ours}"))
                    .unwrap()
            ),
            "REJECTED EXTERNAL\r\n"
        );
    }

    /// After the rejection that is one too many (an error: the caller drops the client), the
    /// state machine is back at the start: a further `DATA` is an error, not a panic.
    #[test]
    fn cookie_sha1_after_too_many_rejections_starts_over() {
        let dir = crate::auth::cookie::private_tempdir();
        let mut server = ServerAuth::new(GUID, None)
            .cookie_sha1(Some(Keyring::new(dir.path())))
            .max_rejects(1);
        assert!(line(server.receive("HELO").unwrap()).starts_with("ERROR"));
        let ours = hex::encode(effective_uid().to_string());
        line(
            server
                .receive(&format!("AUTH DBUS_COOKIE_SHA1 {ours}"))
                .unwrap(),
        );
        let wrong = hex::encode(format!("cli {}", "0".repeat(40)));
        assert!(server.receive(&format!("DATA {wrong}")).is_err());
        assert!(server.receive("DATA 00").is_err());
        assert_eq!(server.authenticated_uid(), None);
    }

    #[test]
    fn cookie_sha1_users_are_uids_or_names() {
        assert_eq!(uid_of("0"), Some(0));
        assert_eq!(uid_of("1000"), Some(1000));
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(uid_of("no-such-user-here"), None);
    }

    #[test]
    fn cancel_after_ok_rejects_and_starts_over() {
        let mut auth = ServerAuth::new(GUID, Some(0));
        line(
            auth.receive(&format!("AUTH EXTERNAL {}", hex::encode("0")))
                .unwrap(),
        );
        assert!(line(auth.receive("CANCEL").unwrap()).starts_with("REJECTED"));
        assert_eq!(auth.authenticated_uid(), None);
        assert!(line(auth.receive("BEGIN").unwrap()).starts_with("ERROR"));
    }
}
