//! The messages: [`Request`] (a call or a notification) and [`Response`], with their
//! [`Id`], [`Params`] and [`Version`], and how each is written in either version.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value};

use crate::error::RpcError;

/// The protocol version of a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Version {
    /// JSON-RPC 1.0: no `jsonrpc` member; a notification has `id: null`; a response has both
    /// `result` and `error`, one of them null; params are an array.
    V1,
    /// JSON-RPC 2.0: `"jsonrpc": "2.0"`; a notification has no `id`; a response has exactly
    /// one of `result` and `error`; params are an array or an object, or absent; batches.
    #[default]
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "1.0",
            Version::V2 => "2.0",
        })
    }
}

impl std::str::FromStr for Version {
    type Err = String;

    /// `1`, `1.0`, `2` or `2.0`.
    fn from_str(s: &str) -> Result<Version, String> {
        match s {
            "1" | "1.0" => Ok(Version::V1),
            "2" | "2.0" => Ok(Version::V2),
            _ => Err(format!("unknown JSON-RPC version {s:?} (1 or 2)")),
        }
    }
}

/// A request id. JSON-RPC 2.0 allows a string, a number or null; 1.0 allows any value
/// ([`Id::Other`] holds the rest).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id {
    /// `null`: the id of an error response to a request whose id could not be read.
    Null,
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// A JSON-RPC 1.0 id that is neither (an array, an object or a boolean).
    Other(String),
}

impl Id {
    /// The id of `value` in `version`, or `None` if it cannot be one.
    pub(crate) fn from_value(value: Value, version: Version) -> Option<Id> {
        match value {
            Value::Null => Some(Id::Null),
            Value::Number(n) => Some(Id::Number(n)),
            Value::String(s) => Some(Id::String(s)),
            other if version == Version::V1 => Some(Id::Other(other.to_string())),
            _ => None,
        }
    }

    /// The id as a number this crate's own calls use.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Id::Number(n) => n.as_u64(),
            _ => None,
        }
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Id {
        Id::Number(n.into())
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Id {
        Id::String(s.to_owned())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Null => f.write_str("null"),
            Id::Number(n) => n.fmt(f),
            Id::String(s) => write!(f, "{s:?}"),
            Id::Other(json) => f.write_str(json),
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Null => serializer.serialize_unit(),
            Id::Number(n) => n.serialize(serializer),
            Id::String(s) => serializer.serialize_str(s),
            Id::Other(json) => {
                // Written by `to_string` of a Value, so it parses back.
                let value: Value = serde_json::from_str(json).map_err(serde::ser::Error::custom)?;
                value.serialize(serializer)
            }
        }
    }
}

/// The parameters of a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Params {
    /// No `params` member (2.0 only; 1.0 sends `[]`).
    #[default]
    None,
    /// Positional parameters.
    Array(Vec<Value>),
    /// Named parameters (2.0 only).
    Object(Map<String, Value>),
}

impl Params {
    /// The params as one JSON value: `null`, an array or an object.
    pub fn into_value(self) -> Value {
        match self {
            Params::None => Value::Null,
            Params::Array(a) => Value::Array(a),
            Params::Object(o) => Value::Object(o),
        }
    }

    /// Deserializes the params into `T`: a tuple or sequence from an array, a struct or map
    /// from an object, `()` or an `Option` from none.
    ///
    /// # Errors
    ///
    /// An [`RpcError::invalid_params`] saying why they do not fit.
    pub fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, RpcError> {
        serde_json::from_value(self.into_value()).map_err(RpcError::invalid_params)
    }

    /// Params from a serializable value: an array or object as it is, `null` (e.g. `()`) as
    /// none; `None` for anything else (a bare number cannot be params).
    pub fn from_value(value: Value) -> Option<Params> {
        match value {
            Value::Null => Some(Params::None),
            Value::Array(a) => Some(Params::Array(a)),
            Value::Object(o) => Some(Params::Object(o)),
            _ => None,
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Params::None)
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Params::None => serializer.serialize_unit(),
            Params::Array(a) => a.serialize(serializer),
            Params::Object(o) => o.serialize(serializer),
        }
    }
}

/// A request: a call (with an id, answered by a [`Response`]) or a notification (no id, never
/// answered).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The version it was sent in; a response goes out in the same.
    pub version: Version,
    /// The method's name.
    pub method: String,
    /// The parameters.
    pub params: Params,
    /// The id of a call, `None` for a notification (2.0: no `id` member; 1.0: `id: null`).
    pub id: Option<Id>,
}

impl Request {
    /// Whether this is a notification.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }

    /// Appends the request as JSON to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_json(out, self)
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.version {
            Version::V2 => {
                map.serialize_entry("jsonrpc", "2.0")?;
                map.serialize_entry("method", &self.method)?;
                if !self.params.is_none() {
                    map.serialize_entry("params", &self.params)?;
                }
                if let Some(id) = &self.id {
                    map.serialize_entry("id", id)?;
                }
            }
            Version::V1 => {
                map.serialize_entry("method", &self.method)?;
                match &self.params {
                    Params::None => map.serialize_entry("params", &[(); 0])?,
                    params => map.serialize_entry("params", params)?,
                }
                map.serialize_entry("id", self.id.as_ref().unwrap_or(&Id::Null))?;
            }
        }
        map.end()
    }
}

/// A response: the result of a call or its error, under the call's id.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The version (that of the request answered).
    pub version: Version,
    /// The id of the request answered; null when it could not be read.
    pub id: Id,
    /// The result or the error.
    pub result: Result<Value, RpcError>,
}

impl Response {
    /// Appends the response as JSON to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_json(out, self)
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match (self.version, &self.result) {
            (Version::V2, result) => {
                map.serialize_entry("jsonrpc", "2.0")?;
                match result {
                    Ok(value) => map.serialize_entry("result", value)?,
                    Err(err) => map.serialize_entry("error", err)?,
                }
            }
            (Version::V1, Ok(value)) => {
                map.serialize_entry("result", value)?;
                map.serialize_entry("error", &())?;
            }
            (Version::V1, Err(err)) => {
                map.serialize_entry("result", &())?;
                map.serialize_entry("error", err)?;
            }
        }
        map.serialize_entry("id", &self.id)?;
        map.end()
    }
}

/// A request or a response.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A call or a notification.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Appends the message as JSON to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.write_to(out),
            Message::Response(r) => r.write_to(out),
        }
    }
}

/// Serializes `value` into `out`. Our message types only hold JSON values, strings and
/// numbers, whose serialization into a `Vec` cannot fail.
fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(&mut *out, value).expect("a JSON-RPC message always serializes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to_value(m: &impl Serialize) -> Value {
        serde_json::to_value(m).unwrap()
    }

    #[test]
    fn a_v2_call_and_notification_are_written_as_the_specification_shows() {
        let call = Request {
            version: Version::V2,
            method: "subtract".into(),
            params: Params::Array(vec![json!(42), json!(23)]),
            id: Some(1.into()),
        };
        assert_eq!(
            to_value(&call),
            json!({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1})
        );
        let note = Request {
            id: None,
            params: Params::None,
            ..call
        };
        assert_eq!(
            to_value(&note),
            json!({"jsonrpc": "2.0", "method": "subtract"})
        );
    }

    #[test]
    fn a_v1_notification_has_id_null_and_empty_params() {
        let note = Request {
            version: Version::V1,
            method: "hello".into(),
            params: Params::None,
            id: None,
        };
        assert_eq!(
            to_value(&note),
            json!({"method": "hello", "params": [], "id": null})
        );
    }

    #[test]
    fn v1_responses_carry_both_result_and_error() {
        let ok = Response {
            version: Version::V1,
            id: "a".into(),
            result: Ok(json!(3)),
        };
        assert_eq!(
            to_value(&ok),
            json!({"result": 3, "error": null, "id": "a"})
        );
        let err = Response {
            result: Err(RpcError::new(1, "no")),
            ..ok
        };
        assert_eq!(
            to_value(&err),
            json!({"result": null, "error": {"code": 1, "message": "no"}, "id": "a"})
        );
    }

    #[test]
    fn a_v2_error_response_has_no_result() {
        let err = Response {
            version: Version::V2,
            id: Id::Null,
            result: Err(RpcError::new(-32600, "Invalid Request")),
        };
        assert_eq!(
            to_value(&err),
            json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null})
        );
    }

    #[test]
    fn a_v1_id_of_any_type_round_trips() {
        let id = Id::from_value(json!([1, {"a": true}]), Version::V1).unwrap();
        assert_eq!(to_value(&id), json!([1, {"a": true}]));
        assert_eq!(Id::from_value(json!([1]), Version::V2), None);
    }
}
