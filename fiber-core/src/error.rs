//! The error every switchpoint can fail with.

use std::fmt;
use std::io;

/// Why a switchpoint did not complete.
///
/// Converts to [`io::Error`] for the protocol layers: [`Error::TimedOut`] becomes
/// [`io::ErrorKind::TimedOut`]; the others become [`io::ErrorKind::Other`] with this error inside
/// (recover it with [`Error::from_io`]). Cancellation is never [`io::ErrorKind::Interrupted`], so
/// std's retry loops (`read_exact`, `write_all`) cannot spin on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The fiber was cancelled ([`JoinHandle::cancel`](crate::JoinHandle::cancel)). Sticky: every
    /// later switchpoint of that fiber fails the same way, so it unwinds promptly.
    Cancelled,
    /// The call's own timeout or an enclosing [`timeout`](crate::timeout) scope expired.
    TimedOut,
    /// Nothing could ever wake the caller: every fiber waits on something that only another
    /// fiber could provide, and no timer, handle or request is active (a deadlock).
    WouldBlockForever,
    /// The thread's Hub has been closed.
    HubClosed,
}

/// `Result` with [`Error`] as the error type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Recovers an [`Error`] converted into an [`io::Error`], if it is one.
    pub fn from_io(err: &io::Error) -> Option<Error> {
        if err.kind() == io::ErrorKind::TimedOut && err.get_ref().is_none() {
            return Some(Error::TimedOut);
        }
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
            .copied()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Cancelled => "the fiber was cancelled",
            Error::TimedOut => "the operation timed out",
            Error::WouldBlockForever => {
                "would block forever: nothing left that could wake this fiber (deadlock)"
            }
            Error::HubClosed => "the hub is closed",
        })
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err {
            Error::TimedOut => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_io_and_back_and_is_never_interrupted() {
        for err in [
            Error::Cancelled,
            Error::TimedOut,
            Error::WouldBlockForever,
            Error::HubClosed,
        ] {
            let io: io::Error = err.into();
            assert_ne!(io.kind(), io::ErrorKind::Interrupted);
            assert_eq!(Error::from_io(&io), Some(err));
        }
        let timed_out: io::Error = Error::TimedOut.into();
        assert_eq!(timed_out.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Error::from_io(&io::Error::other("x")), None);
    }
}
