//! The client side of D-Bus authentication: tries its mechanisms in order (by default
//! `EXTERNAL`, `DBUS_COOKIE_SHA1`, `ANONYMOUS`), skipping those the server does not list.

use super::cookie::{self, Keyring};
use super::{Mechanism, hex_text, random_hex, split_command};
use crate::error::Error;

/// What the client does next.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send this line (CR LF included) and wait for the server's answer.
    Send(String),
    /// Authenticated: send `BEGIN\r\n`; messages follow.
    Begin {
        /// The server's GUID.
        guid: String,
        /// Whether the server agreed to pass Unix file descriptors.
        unix_fd: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    /// Sent `AUTH` (or `DATA`); waiting for `OK`, `REJECTED`, `DATA` or `ERROR`.
    WaitingForOk,
    /// Sent `CANCEL`; waiting for `REJECTED`.
    WaitingForReject,
    /// Sent `NEGOTIATE_UNIX_FD`; waiting for `AGREE_UNIX_FD` or `ERROR`.
    WaitingForAgree,
    Done,
}

/// The client's SASL state machine, sans-IO: [`start`](Self::start) gives the first bytes
/// (the NUL credentials byte and the first `AUTH`), [`receive`](Self::receive) takes each
/// line from the server (without CR LF) and says what to send.
///
/// # Examples
///
/// ```
/// use gruvi_dbus::auth::{ClientAuth, ClientStep, Mechanism};
///
/// let mut auth = ClientAuth::new(&[Mechanism::Anonymous]);
/// assert!(auth.start()?.starts_with(b"\0AUTH ANONYMOUS "));
/// let guid = "0123456789abcdef0123456789abcdef";
/// assert_eq!(
///     auth.receive(&format!("OK {guid}"))?,
///     ClientStep::Begin { guid: guid.into(), unix_fd: false }
/// );
/// # Ok::<(), gruvi_dbus::Error>(())
/// ```
#[derive(Debug)]
pub struct ClientAuth {
    mechanisms: Vec<Mechanism>,
    /// Index of the mechanism being tried.
    current: usize,
    state: State,
    uid: u32,
    keyring: Option<Keyring>,
    negotiate_unix_fd: bool,
    guid: String,
    /// Mechanisms the server listed in its last `REJECTED` (empty: unknown).
    server_mechanisms: Vec<String>,
}

impl ClientAuth {
    /// A client trying `mechanisms` in order, as this process's effective user, with the
    /// keyring in `$HOME/.dbus-keyrings`.
    ///
    /// # Panics
    ///
    /// If `mechanisms` is empty.
    pub fn new(mechanisms: &[Mechanism]) -> ClientAuth {
        assert!(!mechanisms.is_empty(), "no authentication mechanism to try");
        ClientAuth {
            mechanisms: mechanisms.to_vec(),
            current: 0,
            state: State::Start,
            uid: super::effective_uid(),
            keyring: Keyring::default_dir(),
            negotiate_unix_fd: false,
            guid: String::new(),
            server_mechanisms: Vec::new(),
        }
    }

    /// Uses `keyring` for `DBUS_COOKIE_SHA1`.
    pub fn keyring(mut self, keyring: Keyring) -> ClientAuth {
        self.keyring = Some(keyring);
        self
    }

    /// Asks the server to pass Unix file descriptors (`NEGOTIATE_UNIX_FD`) after `OK`.
    pub fn negotiate_unix_fd(mut self, negotiate: bool) -> ClientAuth {
        self.negotiate_unix_fd = negotiate;
        self
    }

    /// The first bytes to send: the credentials byte (NUL) and the first `AUTH` line.
    ///
    /// # Errors
    ///
    /// Never for the built-in mechanisms; kept for symmetry with [`receive`](Self::receive).
    pub fn start(&mut self) -> Result<Vec<u8>, Error> {
        assert_eq!(self.state, State::Start, "ClientAuth::start called twice");
        let mut out = vec![0u8];
        out.extend_from_slice(self.auth_line().as_bytes());
        self.state = State::WaitingForOk;
        Ok(out)
    }

    /// The `AUTH` line of the current mechanism, with its initial response.
    fn auth_line(&self) -> String {
        let mechanism = self.mechanisms[self.current];
        let initial = match mechanism {
            // The uid as decimal ASCII, hex-encoded.
            Mechanism::External => hex::encode(self.uid.to_string()),
            // libdbus accepts a decimal uid as the user name.
            Mechanism::CookieSha1 => hex::encode(self.uid.to_string()),
            Mechanism::Anonymous => hex::encode(concat!("gruvi-dbus ", env!("CARGO_PKG_VERSION"))),
        };
        format!("AUTH {} {initial}\r\n", mechanism.name())
    }

    /// Takes one line from the server (without CR LF) and says what to do.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] when every mechanism was rejected, for a command out of order, or a
    /// `DBUS_COOKIE_SHA1` challenge that cannot be answered.
    pub fn receive(&mut self, line: &str) -> Result<ClientStep, Error> {
        let (command, arg) = split_command(line);
        match (self.state, command) {
            (State::WaitingForOk | State::WaitingForReject, "REJECTED") => {
                self.server_mechanisms = arg.split(' ').map(str::to_owned).collect();
                self.next_mechanism()
            }
            (State::WaitingForOk, "OK") => {
                if arg.len() != 32 || !arg.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Auth(format!("bad server GUID {arg:?}")));
                }
                self.guid = arg.to_owned();
                if self.negotiate_unix_fd {
                    self.state = State::WaitingForAgree;
                    return Ok(ClientStep::Send("NEGOTIATE_UNIX_FD\r\n".into()));
                }
                Ok(self.begin(false))
            }
            (State::WaitingForOk, "DATA") => self.data(arg),
            (State::WaitingForOk, "ERROR") => {
                self.state = State::WaitingForReject;
                Ok(ClientStep::Send("CANCEL\r\n".into()))
            }
            (State::WaitingForAgree, "AGREE_UNIX_FD") => Ok(self.begin(true)),
            (State::WaitingForAgree, "ERROR") => Ok(self.begin(false)),
            (State::Start | State::Done, _) => Err(Error::Auth(format!(
                "unexpected {command:?} from the server"
            ))),
            _ => Err(Error::Auth(format!(
                "unexpected {command:?} from the server while {}",
                match self.state {
                    State::WaitingForAgree => "negotiating Unix fd passing",
                    State::WaitingForReject => "cancelling",
                    _ => "authenticating",
                }
            ))),
        }
    }

    fn begin(&mut self, unix_fd: bool) -> ClientStep {
        self.state = State::Done;
        ClientStep::Begin {
            guid: self.guid.clone(),
            unix_fd,
        }
    }

    /// After a rejection: the next of our mechanisms the server offers.
    fn next_mechanism(&mut self) -> Result<ClientStep, Error> {
        let offered = |m: &Mechanism| {
            self.server_mechanisms.iter().all(|s| s.is_empty())
                || self.server_mechanisms.iter().any(|s| s == m.name())
        };
        let next =
            (self.current + 1..self.mechanisms.len()).find(|&i| offered(&self.mechanisms[i]));
        let Some(next) = next else {
            let tried: Vec<&str> = self.mechanisms[..=self.current]
                .iter()
                .map(|m| m.name())
                .collect();
            return Err(Error::Auth(format!(
                "the server rejected {} (it offers: {})",
                tried.join(", "),
                self.server_mechanisms.join(" ")
            )));
        };
        self.current = next;
        self.state = State::WaitingForOk;
        Ok(ClientStep::Send(self.auth_line()))
    }

    /// A `DATA` challenge for the current mechanism.
    fn data(&mut self, arg: &str) -> Result<ClientStep, Error> {
        match self.mechanisms[self.current] {
            // The uid went with AUTH; an empty answer confirms it.
            Mechanism::External => Ok(ClientStep::Send("DATA\r\n".into())),
            Mechanism::CookieSha1 => {
                let challenge = hex_text(arg)?;
                let keyring = self
                    .keyring
                    .as_ref()
                    .ok_or_else(|| Error::Auth("no keyring directory (HOME is not set)".into()))?;
                match cookie::answer(keyring, &challenge, &random_hex()) {
                    Ok(answer) => Ok(ClientStep::Send(format!(
                        "DATA {}\r\n",
                        hex::encode(answer)
                    ))),
                    // Let the server reject us and try the next mechanism.
                    Err(_) => {
                        self.state = State::WaitingForReject;
                        Ok(ClientStep::Send("CANCEL\r\n".into()))
                    }
                }
            }
            Mechanism::Anonymous => {
                self.state = State::WaitingForReject;
                Ok(ClientStep::Send("CANCEL\r\n".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "0123456789abcdef0123456789abcdef";

    fn send(step: ClientStep) -> String {
        match step {
            ClientStep::Send(line) => line,
            other => panic!("expected a line, got {other:?}"),
        }
    }

    #[test]
    fn external_sends_the_uid_in_hex_and_begins_on_ok() {
        let mut auth = ClientAuth::new(&[Mechanism::External]);
        let first = auth.start().unwrap();
        let uid = hex::encode(super::super::effective_uid().to_string());
        assert_eq!(first, format!("\0AUTH EXTERNAL {uid}\r\n").into_bytes());
        // A server that asks for data anyway gets an empty answer.
        assert_eq!(send(auth.receive("DATA").unwrap()), "DATA\r\n");
        assert_eq!(
            auth.receive(&format!("OK {GUID}")).unwrap(),
            ClientStep::Begin {
                guid: GUID.into(),
                unix_fd: false
            }
        );
    }

    #[test]
    fn a_rejection_moves_to_the_next_mechanism_the_server_offers() {
        let mut auth = ClientAuth::new(&[
            Mechanism::External,
            Mechanism::CookieSha1,
            Mechanism::Anonymous,
        ]);
        auth.start().unwrap();
        let next = send(auth.receive("REJECTED ANONYMOUS").unwrap());
        assert!(next.starts_with("AUTH ANONYMOUS "), "{next}");
        let err = auth.receive("REJECTED EXTERNAL").unwrap_err();
        assert!(err.to_string().contains("rejected"), "{err}");
    }

    #[test]
    fn unix_fd_negotiation_takes_agree_or_error() {
        for (answer, unix_fd) in [("AGREE_UNIX_FD", true), ("ERROR not here", false)] {
            let mut auth = ClientAuth::new(&[Mechanism::Anonymous]).negotiate_unix_fd(true);
            auth.start().unwrap();
            assert_eq!(
                send(auth.receive(&format!("OK {GUID}")).unwrap()),
                "NEGOTIATE_UNIX_FD\r\n"
            );
            assert_eq!(
                auth.receive(answer).unwrap(),
                ClientStep::Begin {
                    guid: GUID.into(),
                    unix_fd
                }
            );
        }
    }

    #[test]
    fn commands_out_of_order_and_bad_guids_are_errors() {
        let mut auth = ClientAuth::new(&[Mechanism::Anonymous]);
        auth.start().unwrap();
        assert!(auth.receive("AGREE_UNIX_FD").is_err());
        let mut auth = ClientAuth::new(&[Mechanism::Anonymous]);
        auth.start().unwrap();
        assert!(
            auth.receive("OK nothex")
                .unwrap_err()
                .to_string()
                .contains("GUID")
        );
        let mut auth = ClientAuth::new(&[Mechanism::Anonymous]);
        auth.start().unwrap();
        assert!(auth.receive("BOGUS").is_err());
    }

    #[test]
    fn an_error_is_answered_with_cancel_then_the_next_mechanism() {
        let mut auth = ClientAuth::new(&[Mechanism::External, Mechanism::Anonymous]);
        auth.start().unwrap();
        assert_eq!(send(auth.receive("ERROR confused").unwrap()), "CANCEL\r\n");
        assert!(
            send(auth.receive("REJECTED EXTERNAL ANONYMOUS").unwrap())
                .starts_with("AUTH ANONYMOUS")
        );
    }

    #[test]
    fn cookie_sha1_answers_from_the_keyring() {
        let dir = crate::auth::cookie::private_tempdir();
        std::fs::write(dir.path().join("ctx"), "3 0 5ec7e7\n").unwrap();
        let mut auth = ClientAuth::new(&[Mechanism::CookieSha1]).keyring(Keyring::new(dir.path()));
        assert!(
            auth.start()
                .unwrap()
                .starts_with(b"\0AUTH DBUS_COOKIE_SHA1 ")
        );
        let data = send(
            auth.receive(&format!("DATA {}", hex::encode("ctx 3 srv")))
                .unwrap(),
        );
        let answer = hex_text(data.trim_end().strip_prefix("DATA ").unwrap()).unwrap();
        let (client_challenge, digest) = answer.split_once(' ').unwrap();
        use sha1::Digest;
        let want = hex::encode(sha1::Sha1::digest(format!("srv:{client_challenge}:5ec7e7")));
        assert_eq!(digest, want);
        // A cookie that is not there: cancel, and let the server reject.
        let mut auth = ClientAuth::new(&[Mechanism::CookieSha1]).keyring(Keyring::new(dir.path()));
        auth.start().unwrap();
        let line = send(
            auth.receive(&format!("DATA {}", hex::encode("ctx 4 srv")))
                .unwrap(),
        );
        assert_eq!(line, "CANCEL\r\n");
    }
}
