//! Drives the SASL state machines of [`auth`](crate::auth) over a stream, with a line limit
//! and a timeout on the whole exchange.

use std::time::Duration;

use gruvi_stream::Stream;

use crate::auth::{ClientAuth, ClientStep, ServerAuth, ServerStep, check_line};
use crate::error::Error;

/// What a successful client authentication learnt. (Whether the server agreed to pass Unix
/// fds does not matter: this crate never sends any.)
#[derive(Debug)]
pub(crate) struct ClientOutcome {
    pub(crate) guid: String,
}

/// Authenticates as a client; on success `BEGIN` has been queued and messages may follow.
pub(crate) fn client(
    stream: &Stream,
    mut auth: ClientAuth,
    max_line: usize,
    timeout: Duration,
) -> Result<ClientOutcome, Error> {
    within(timeout, || {
        stream.write_all(&auth.start()?)?;
        loop {
            let line = read_line(stream, max_line)?;
            match auth.receive(check_line(&line, max_line)?)? {
                ClientStep::Send(line) => stream.write_all(line.as_bytes())?,
                ClientStep::Begin { guid, .. } => {
                    stream.write_all(b"BEGIN\r\n")?;
                    return Ok(ClientOutcome { guid });
                }
            }
        }
    })
}

/// Authenticates a client as the server; returns the uid it authenticated as (`None` for
/// `ANONYMOUS`). Bytes after `BEGIN` stay buffered in `stream` for the message reader.
pub(crate) fn server(
    stream: &Stream,
    mut auth: ServerAuth,
    max_line: usize,
    timeout: Duration,
) -> Result<Option<u32>, Error> {
    within(timeout, || {
        let first = stream.read_bytes(1)?;
        match first.first() {
            Some(0) => {}
            Some(_) => {
                return Err(Error::Auth(
                    "the first byte must be NUL (the credentials byte)".into(),
                ));
            }
            None => {
                return Err(Error::Auth(
                    "connection closed before authentication".into(),
                ));
            }
        }
        loop {
            let line = read_line(stream, max_line)?;
            match auth.receive(check_line(&line, max_line)?)? {
                ServerStep::Send(line) => stream.write_all(line.as_bytes())?,
                ServerStep::Begin => return Ok(auth.authenticated_uid()),
            }
        }
    })
}

/// Reads one line, at most one byte over the limit (so that an over-long one is seen).
fn read_line(stream: &Stream, max_line: usize) -> Result<Vec<u8>, Error> {
    Ok(stream.readline_delim(b'\n', Some(max_line + 1))?)
}

/// Runs `f` under a timeout; a timeout is an authentication failure.
fn within<T>(timeout: Duration, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match fiber_core::timeout(timeout, f) {
        Ok(result) => result,
        Err(fiber_core::Error::TimedOut) => Err(Error::Auth(format!(
            "authentication did not finish within {timeout:?}"
        ))),
        Err(other) => Err(other.into()),
    }
}
