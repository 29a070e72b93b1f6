//! The crate's one error type, and [`MethodError`], an error reply of a method call.

use std::ffi::CString;
use std::fmt;
use std::io;

use dbus::Message;

/// Everything that can go wrong on a D-Bus connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection failed (connect, read, write), or the calling fiber was cancelled.
    Io(io::Error),
    /// An address string could not be parsed, or no entry of it could be connected to.
    Address(String),
    /// Authentication failed; the connection was closed.
    Auth(String),
    /// The peer broke the protocol (a bad header, a message over the size limit, a message
    /// libdbus cannot demarshal, a missing `Hello`); the connection was closed.
    Protocol(String),
    /// The peer answered a method call with an error reply.
    MethodCall(MethodError),
    /// A method call got no reply within its timeout, or connecting took too long.
    TimedOut,
    /// The connection is closed; the reason is why it was closed.
    Disconnected(String),
    /// The caller passed something unusable: a bad object path, interface, member or bus
    /// name.
    InvalidInput(String),
    /// A reply's arguments did not have the types the caller asked for.
    Args(String),
}

impl Error {
    /// The error reply, when a method call failed with one.
    pub fn method_error(&self) -> Option<&MethodError> {
        match self {
            Error::MethodCall(err) => Some(err),
            _ => None,
        }
    }

    /// The D-Bus error name of an error reply (e.g.
    /// `org.freedesktop.DBus.Error.UnknownMethod`).
    pub fn name(&self) -> Option<&str> {
        self.method_error().map(MethodError::name)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(err) => write!(f, "D-Bus connection error: {err}"),
            Error::Address(msg) => write!(f, "D-Bus address: {msg}"),
            Error::Auth(msg) => write!(f, "D-Bus authentication failed: {msg}"),
            Error::Protocol(msg) => write!(f, "D-Bus protocol error: {msg}"),
            Error::MethodCall(err) => write!(f, "{err}"),
            Error::TimedOut => f.write_str("D-Bus call or connection timed out"),
            Error::Disconnected(why) => write!(f, "D-Bus connection closed: {why}"),
            Error::InvalidInput(msg) => write!(f, "invalid D-Bus input: {msg}"),
            Error::Args(msg) => write!(f, "unexpected D-Bus reply arguments: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            Error::MethodCall(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        if err.kind() == io::ErrorKind::TimedOut {
            return Error::TimedOut;
        }
        Error::Io(err)
    }
}

impl From<fiber_core::Error> for Error {
    fn from(err: fiber_core::Error) -> Error {
        match err {
            fiber_core::Error::TimedOut => Error::TimedOut,
            other => Error::Io(other.into()),
        }
    }
}

impl From<MethodError> for Error {
    fn from(err: MethodError) -> Error {
        Error::MethodCall(err)
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        match err {
            Error::Io(err) => err,
            Error::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "D-Bus call timed out"),
            Error::Disconnected(_) => io::Error::new(io::ErrorKind::NotConnected, err.to_string()),
            Error::InvalidInput(_) | Error::Address(_) => {
                io::Error::new(io::ErrorKind::InvalidInput, err.to_string())
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Well-known error names of the D-Bus specification.
pub mod names {
    /// The object path names no exported object.
    pub const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
    /// The object has no such interface.
    pub const UNKNOWN_INTERFACE: &str = "org.freedesktop.DBus.Error.UnknownInterface";
    /// The interface has no such method.
    pub const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
    /// The object has no such property.
    pub const UNKNOWN_PROPERTY: &str = "org.freedesktop.DBus.Error.UnknownProperty";
    /// The property cannot be written.
    pub const PROPERTY_READ_ONLY: &str = "org.freedesktop.DBus.Error.PropertyReadOnly";
    /// The arguments do not match the method's signature.
    pub const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
    /// A generic failure.
    pub const FAILED: &str = "org.freedesktop.DBus.Error.Failed";
    /// Too many calls at once, or out of some other resource.
    pub const LIMITS_EXCEEDED: &str = "org.freedesktop.DBus.Error.LimitsExceeded";
    /// The peer is not allowed to do this (e.g. a second `Hello`).
    pub const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";
}

/// An error reply: a D-Bus error name, a message, and the reply itself for any further
/// arguments. Method handlers of exported objects return it to answer with an error;
/// [`Connection::call_method`](crate::Connection::call_method) returns it (inside
/// [`Error::MethodCall`]) when the peer answered with one.
///
/// # Examples
///
/// ```
/// use gruvi_dbus::MethodError;
///
/// let err = MethodError::new("com.example.Error.Failed", "it failed");
/// assert_eq!(err.name(), "com.example.Error.Failed");
/// assert_eq!(err.message(), "it failed");
/// assert_eq!(err.to_string(), "com.example.Error.Failed: it failed");
/// ```
pub struct MethodError {
    name: String,
    message: String,
    reply: Option<Message>,
}

impl MethodError {
    /// An error reply with `name` (a D-Bus error name such as `com.example.Error.Failed`) and
    /// a human-readable message.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> MethodError {
        MethodError {
            name: name.into(),
            message: message.into(),
            reply: None,
        }
    }

    /// `org.freedesktop.DBus.Error.Failed` with `message`.
    pub fn failed(message: impl Into<String>) -> MethodError {
        MethodError::new(names::FAILED, message)
    }

    /// `org.freedesktop.DBus.Error.InvalidArgs` with `message`.
    pub fn invalid_args(message: impl Into<String>) -> MethodError {
        MethodError::new(names::INVALID_ARGS, message)
    }

    /// The error of a received error reply: its name and its first argument if that is a
    /// string.
    pub(crate) fn from_reply(mut reply: Message) -> MethodError {
        let (name, message) = match reply.as_result() {
            Err(err) => (
                err.name().unwrap_or(names::FAILED).to_owned(),
                err.message().unwrap_or_default().to_owned(),
            ),
            Ok(_) => (names::FAILED.to_owned(), String::new()),
        };
        MethodError {
            name,
            message,
            reply: Some(reply),
        }
    }

    /// The error name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The message (the reply's first argument; empty if it had none).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The received error reply, to read further arguments (`None` for one made here).
    pub fn reply(&self) -> Option<&Message> {
        self.reply.as_ref()
    }

    /// The error reply to `call`: this error's name (`Failed` if it is not a valid error
    /// name), with its message as the only argument.
    pub(crate) fn to_reply(&self, call: &Message) -> Message {
        let name = dbus::strings::ErrorName::new(self.name.as_str()).unwrap_or_else(|_| {
            dbus::strings::ErrorName::from_slice(names::FAILED).expect("valid")
        });
        // A message cannot carry NUL bytes through libdbus' C strings.
        let text = CString::new(self.message.replace('\0', " ")).unwrap_or_default();
        call.error(&name, &text)
    }
}

impl fmt::Debug for MethodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodError")
            .field("name", &self.name)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for MethodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}: {}", self.name, self.message)
        }
    }
}

impl std::error::Error for MethodError {}
