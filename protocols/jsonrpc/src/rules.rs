//! The rules of each version: from one framed JSON value to valid [`Message`]s, or to the
//! reason each one is invalid. Requests and responses are told apart by their members.

use serde_json::{Map, Value};

use crate::error::{RpcError, SERVER_ERROR};
use crate::message::{Id, Message, Params, Request, Response, Version};

/// An invalid message: what to answer (a request's error response) or to report.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The version to answer in.
    pub version: Version,
    /// The message's id if it had a valid one, else null.
    pub id: Id,
    /// `-32600 Invalid Request` with the reason as data.
    pub error: RpcError,
    /// It looked like a response (`result` or `error`, no `method`): it gets no answer, since
    /// answering a response could make two peers answer each other forever.
    pub is_response: bool,
}

impl Invalid {
    /// The error response to send, or `None` for an invalid response.
    pub fn response(&self) -> Option<Response> {
        (!self.is_response).then(|| Response {
            version: self.version,
            id: self.id.clone(),
            result: Err(self.error.clone()),
        })
    }
}

/// What one framed JSON value holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// One message (a JSON object), or why it is invalid.
    Single(Result<Message, Invalid>),
    /// A JSON-RPC 2.0 batch (a non-empty array): each entry or why it is invalid. The
    /// responses to its calls go back in one array. (An empty array is a single invalid
    /// request, as the specification says.)
    Batch(Vec<Result<Message, Invalid>>),
}

/// Parses and validates one framed JSON value (an object, or an array for a batch).
///
/// # Errors
///
/// A `-32700 Parse error` if the bytes are not JSON (including invalid UTF-8).
///
/// # Examples
///
/// ```
/// use gruvi_jsonrpc::{parse, Incoming, Message, Version};
///
/// let incoming = parse(br#"{"jsonrpc": "2.0", "method": "sum", "params": [1, 2], "id": 7}"#)?;
/// let Incoming::Single(Ok(Message::Request(request))) = incoming else { panic!() };
/// assert_eq!((request.version, request.method.as_str()), (Version::V2, "sum"));
///
/// // JSON-RPC 1.0: no "jsonrpc" member, a notification has id null.
/// let incoming = parse(br#"{"method": "hello", "params": [], "id": null}"#)?;
/// let Incoming::Single(Ok(Message::Request(request))) = incoming else { panic!() };
/// assert!(request.is_notification() && request.version == Version::V1);
/// # Ok::<(), gruvi_jsonrpc::RpcError>(())
/// ```
pub fn parse(bytes: &[u8]) -> Result<Incoming, RpcError> {
    let value: Value = serde_json::from_slice(bytes).map_err(RpcError::parse_error)?;
    Ok(match value {
        Value::Array(entries) if entries.is_empty() => {
            Incoming::Single(Err(invalid(Version::V2, Id::Null, "an empty batch")))
        }
        Value::Array(entries) => {
            Incoming::Batch(entries.into_iter().map(classify_batch_entry).collect())
        }
        value => Incoming::Single(classify(value)),
    })
}

/// Validates one message: JSON-RPC 2.0 if it has a `jsonrpc` member, else 1.0.
///
/// # Errors
///
/// Why it is invalid in its version.
pub fn classify(value: Value) -> Result<Message, Invalid> {
    let Value::Object(object) = value else {
        return Err(invalid(Version::V2, Id::Null, "not a JSON object"));
    };
    if object.contains_key("jsonrpc") {
        classify_v2(object)
    } else {
        classify_v1(object)
    }
}

/// An entry of a batch must be a 2.0 message.
fn classify_batch_entry(value: Value) -> Result<Message, Invalid> {
    match &value {
        Value::Object(o) if o.contains_key("jsonrpc") => classify(value),
        Value::Object(_) => Err(invalid(
            Version::V2,
            Id::Null,
            "a batch entry without \"jsonrpc\": \"2.0\"",
        )),
        _ => Err(invalid(
            Version::V2,
            Id::Null,
            "a batch entry is not an object",
        )),
    }
}

fn invalid(version: Version, id: Id, why: &str) -> Invalid {
    Invalid {
        version,
        id,
        error: RpcError::invalid_request(why),
        is_response: false,
    }
}

/// What an object is meant to be, by its members.
fn is_response(object: &Map<String, Value>) -> bool {
    !object.contains_key("method")
        && (object.contains_key("result") || object.contains_key("error"))
}

/// Builds the [`Invalid`] for `object`, keeping its id if it is a valid one.
fn reject(version: Version, object: &Map<String, Value>, why: String) -> Invalid {
    let id = object
        .get("id")
        .cloned()
        .and_then(|id| valid_id(id, version))
        .unwrap_or(Id::Null);
    Invalid {
        is_response: is_response(object),
        ..invalid(version, id, &why)
    }
}

fn valid_id(value: Value, version: Version) -> Option<Id> {
    Id::from_value(value, version)
}

fn check_members(object: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(extra) => Err(format!("unexpected member {extra:?}")),
        None => Ok(()),
    }
}

fn classify_v2(object: Map<String, Value>) -> Result<Message, Invalid> {
    let checked = if object.contains_key("method") {
        check_v2_request(&object)
    } else if is_response(&object) {
        check_v2_response(&object)
    } else {
        Err("neither \"method\" nor \"result\"/\"error\"".to_owned())
    };
    if let Err(why) = checked {
        return Err(reject(Version::V2, &object, why));
    }
    Ok(build(Version::V2, object))
}

fn check_v2_request(object: &Map<String, Value>) -> Result<(), String> {
    if object["jsonrpc"] != "2.0" {
        return Err("\"jsonrpc\" must be \"2.0\"".into());
    }
    check_members(object, &["jsonrpc", "method", "params", "id"])?;
    if !object["method"].is_string() {
        return Err("\"method\" must be a string".into());
    }
    match object.get("params") {
        None | Some(Value::Array(_) | Value::Object(_)) => {}
        Some(_) => return Err("\"params\" must be an array or an object".into()),
    }
    check_v2_id(object.get("id"))
}

fn check_v2_id(id: Option<&Value>) -> Result<(), String> {
    match id {
        None | Some(Value::Null | Value::String(_) | Value::Number(_)) => Ok(()),
        Some(_) => Err("\"id\" must be a string, a number or null".into()),
    }
}

fn check_v2_response(object: &Map<String, Value>) -> Result<(), String> {
    if object["jsonrpc"] != "2.0" {
        return Err("\"jsonrpc\" must be \"2.0\"".into());
    }
    if object.contains_key("result") && object.contains_key("error") {
        return Err("both \"result\" and \"error\"".into());
    }
    check_members(object, &["jsonrpc", "result", "error", "id"])?;
    if !object.contains_key("id") {
        return Err("a response without \"id\"".into());
    }
    check_v2_id(object.get("id"))?;
    if let Some(error) = object.get("error") {
        error_object(error.clone())?;
    }
    Ok(())
}

/// A 2.0 error object: an integer code, a string message, optional data, nothing else.
fn error_object(value: Value) -> Result<RpcError, String> {
    serde_json::from_value(value).map_err(|e| format!("invalid error object: {e}"))
}

fn classify_v1(object: Map<String, Value>) -> Result<Message, Invalid> {
    let checked = if object.contains_key("method") {
        check_v1_request(&object)
    } else if is_response(&object) {
        check_v1_response(&object)
    } else {
        Err("neither \"method\" nor \"result\"/\"error\"".to_owned())
    };
    if let Err(why) = checked {
        return Err(reject(Version::V1, &object, why));
    }
    Ok(build(Version::V1, object))
}

fn check_v1_request(object: &Map<String, Value>) -> Result<(), String> {
    check_members(object, &["method", "params", "id"])?;
    for member in ["params", "id"] {
        if !object.contains_key(member) {
            return Err(format!("a 1.0 request without {member:?}"));
        }
    }
    if !object["method"].is_string() {
        return Err("\"method\" must be a string".into());
    }
    if !object["params"].is_array() {
        return Err("1.0 \"params\" must be an array".into());
    }
    Ok(())
}

fn check_v1_response(object: &Map<String, Value>) -> Result<(), String> {
    check_members(object, &["result", "error", "id"])?;
    for member in ["result", "error", "id"] {
        if !object.contains_key(member) {
            return Err(format!("a 1.0 response without {member:?}"));
        }
    }
    if !object["result"].is_null() && !object["error"].is_null() {
        return Err("a 1.0 response with both a result and an error".into());
    }
    Ok(())
}

/// Builds the message from an object that passed its version's checks.
fn build(version: Version, mut object: Map<String, Value>) -> Message {
    let id = object.remove("id").and_then(|id| valid_id(id, version));
    if let Some(Value::String(method)) = object.remove("method") {
        let params = match object.remove("params") {
            Some(Value::Array(a)) => Params::Array(a),
            Some(Value::Object(o)) => Params::Object(o),
            _ => Params::None,
        };
        // A 1.0 notification is a request with id null.
        let id = match (version, id) {
            (Version::V1, Some(Id::Null)) => None,
            (_, id) => id,
        };
        return Message::Request(Request {
            version,
            method,
            params,
            id,
        });
    }
    let error = object.remove("error").filter(|e| !e.is_null());
    let result = match error {
        Some(error) => Err(error_object(error.clone()).unwrap_or_else(|_| v1_error(error))),
        None => Ok(object.remove("result").unwrap_or(Value::Null)),
    };
    Message::Response(Response {
        version,
        id: id.unwrap_or(Id::Null),
        result,
    })
}

/// JSON-RPC 1.0 leaves the error's shape open: one that is not a 2.0-style error object
/// becomes a server error carrying the original value as data.
fn v1_error(error: Value) -> RpcError {
    let message = match &error {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    RpcError::new(SERVER_ERROR, message).with_data(error)
}
