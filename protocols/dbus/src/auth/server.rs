//! The server side of D-Bus authentication: `EXTERNAL` checked against the peer's
//! credentials (`SO_PEERCRED`), and `ANONYMOUS` when allowed. Unix fd passing is declined.

use super::{Mechanism, hex_text, split_command};
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
            (State::WaitingForBegin, "BEGIN") => {
                self.state = State::Done;
                Ok(ServerStep::Begin)
            }
            (State::WaitingForBegin, "NEGOTIATE_UNIX_FD") => {
                self.error("Unix fd passing is not supported")
            }
            (State::WaitingForData | State::WaitingForBegin, "CANCEL" | "ERROR") => {
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

    fn ok(&mut self, uid: Option<u32>) -> Result<ServerStep, Error> {
        self.uid = uid;
        self.state = State::WaitingForBegin;
        Ok(ServerStep::Send(format!("OK {}\r\n", self.guid)))
    }

    fn reject(&mut self) -> Result<ServerStep, Error> {
        self.count("rejected")?;
        self.state = State::WaitingForAuth;
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
