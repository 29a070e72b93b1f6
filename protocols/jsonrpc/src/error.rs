//! Errors: [`RpcError`] is the error object of the protocol (what a peer answers), [`Error`]
//! is what a call or a notification of this crate fails with.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Invalid JSON was received (JSON-RPC 2.0 §5.1).
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error (here: the handler panicked).
pub const INTERNAL_ERROR: i64 = -32603;
/// Generic server error, the first code of the implementation-defined range.
pub const SERVER_ERROR: i64 = -32000;
/// A message was larger than the receiver's limit (Gruvi's code, from the server-error range).
pub const MESSAGE_TOO_LARGE: i64 = -32001;
/// A message did not arrive whole within the receiver's message timeout (from the
/// server-error range).
pub const MESSAGE_TIMEOUT: i64 = -32002;

/// The standard message of a code, as the 2.0 specification words it; `None` for other codes.
pub fn strerror(code: i64) -> Option<&'static str> {
    Some(match code {
        PARSE_ERROR => "Parse error",
        INVALID_REQUEST => "Invalid Request",
        METHOD_NOT_FOUND => "Method not found",
        INVALID_PARAMS => "Invalid params",
        INTERNAL_ERROR => "Internal error",
        SERVER_ERROR => "Server error",
        MESSAGE_TOO_LARGE => "Message too large",
        MESSAGE_TIMEOUT => "Message timeout",
        _ => return None,
    })
}

/// A JSON-RPC error object: `{"code": ..., "message": ..., "data": ...}`.
///
/// Handlers return it to answer with an error; a call whose peer answered with one fails with
/// [`Error::Rpc`].
///
/// # Examples
///
/// ```
/// use gruvi_jsonrpc::{RpcError, METHOD_NOT_FOUND};
///
/// let err = RpcError::method_not_found("frobnicate");
/// assert_eq!(err.code, METHOD_NOT_FOUND);
/// assert_eq!(err.message, "Method not found");
/// let custom = RpcError::new(-32000, "disk full").with_data(serde_json::json!({"free": 0}));
/// assert_eq!(custom.to_string(), "disk full (code -32000)");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcError {
    /// The error code; -32768 to -32000 are reserved by the specification.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// More about the error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message` and no data.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// An error with a standard code, its standard message and `detail` as data.
    fn standard(code: i64, detail: String) -> RpcError {
        let message = strerror(code).unwrap_or("Server error");
        RpcError::new(code, message).with_data(Value::String(detail))
    }

    /// Sets the data.
    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    /// -32700 `Parse error`, with what was wrong as data.
    pub fn parse_error(detail: impl fmt::Display) -> RpcError {
        RpcError::standard(PARSE_ERROR, detail.to_string())
    }

    /// -32600 `Invalid Request`, with what was wrong as data.
    pub fn invalid_request(detail: impl fmt::Display) -> RpcError {
        RpcError::standard(INVALID_REQUEST, detail.to_string())
    }

    /// -32601 `Method not found`, with the method's name as data.
    pub fn method_not_found(method: &str) -> RpcError {
        RpcError::standard(METHOD_NOT_FOUND, format!("no method {method:?}"))
    }

    /// -32602 `Invalid params`, with what was wrong as data.
    pub fn invalid_params(detail: impl fmt::Display) -> RpcError {
        RpcError::standard(INVALID_PARAMS, detail.to_string())
    }

    /// -32603 `Internal error`, with what went wrong as data.
    pub fn internal_error(detail: impl fmt::Display) -> RpcError {
        RpcError::standard(INTERNAL_ERROR, detail.to_string())
    }

    /// -32001 `Message too large`, with the limit in the data.
    pub fn message_too_large(max: usize) -> RpcError {
        RpcError::standard(
            MESSAGE_TOO_LARGE,
            format!("message larger than {max} bytes"),
        )
    }

    /// -32002 `Message timeout`, with the limit in the data.
    pub fn message_timeout(limit: std::time::Duration) -> RpcError {
        RpcError::standard(
            MESSAGE_TIMEOUT,
            format!("a message did not arrive whole within {limit:?} of its first byte"),
        )
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// What a call, a notification or a response of a [`Peer`](crate::Peer) fails with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered with an error object.
    Rpc(RpcError),
    /// No answer came within the call's timeout; a late answer is discarded.
    TimedOut,
    /// The connection ended or failed before the answer came (every pending call fails with
    /// this at once), or was closed already. Holds the reason.
    ConnectionLost(String),
    /// The parameters cannot be sent: they did not serialize to an array or object (JSON-RPC
    /// 1.0 allows arrays only).
    InvalidParams(String),
    /// The answer came but is invalid (neither one result nor one error), or its result does
    /// not deserialize into the type asked for.
    InvalidResponse(String),
    /// Serializing the parameters failed.
    Json(serde_json::Error),
    /// The fiber was cancelled, or an enclosing [`fiber_core::timeout`] scope expired.
    Fiber(fiber_core::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rpc(err) => write!(f, "error response: {err}"),
            Error::TimedOut => f.write_str("call timed out"),
            Error::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            Error::InvalidParams(why) => write!(f, "invalid params: {why}"),
            Error::InvalidResponse(why) => write!(f, "invalid response: {why}"),
            Error::Json(err) => write!(f, "cannot serialize: {err}"),
            Error::Fiber(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Rpc(err) => Some(err),
            Error::Json(err) => Some(err),
            Error::Fiber(err) => Some(err),
            _ => None,
        }
    }
}

impl From<RpcError> for Error {
    fn from(err: RpcError) -> Error {
        Error::Rpc(err)
    }
}

impl From<fiber_core::Error> for Error {
    fn from(err: fiber_core::Error) -> Error {
        Error::Fiber(err)
    }
}

impl From<Error> for io::Error {
    /// `TimedOut`, `ConnectionAborted`, `InvalidInput` or `InvalidData` by the variant;
    /// fiber errors convert as [`fiber_core::Error`] does.
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::ConnectionLost(_) => io::ErrorKind::ConnectionAborted,
            Error::InvalidParams(_) | Error::Json(_) => io::ErrorKind::InvalidInput,
            Error::Fiber(e) => return io::Error::from(*e),
            Error::Rpc(_) | Error::InvalidResponse(_) => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}
