//! Writing outgoing calls and notifications straight into the send buffer: the params are
//! serialized in place, without building a JSON value first.

use serde::Serialize;

use crate::error::Error;
use crate::message::Version;

/// Appends a call (`id`) or notification (`None`) of `method` to `out`. On error `out` is left
/// as it was.
///
/// # Errors
///
/// [`Error::InvalidParams`] when the params are not an array or an object (1.0: not an array),
/// [`Error::Json`] when they fail to serialize.
pub(crate) fn request(
    out: &mut Vec<u8>,
    version: Version,
    method: &str,
    params: &impl Serialize,
    id: Option<u64>,
) -> Result<(), Error> {
    let start = out.len();
    let written = write(out, version, method, params, id);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

fn write(
    out: &mut Vec<u8>,
    version: Version,
    method: &str,
    params: &impl Serialize,
    id: Option<u64>,
) -> Result<(), Error> {
    out.extend_from_slice(match version {
        Version::V2 => b"{\"jsonrpc\":\"2.0\",\"method\":",
        Version::V1 => b"{\"method\":",
    });
    serde_json::to_writer(&mut *out, method).map_err(Error::Json)?;
    let before_params = out.len();
    out.extend_from_slice(b",\"params\":");
    let params_start = out.len();
    serde_json::to_writer(&mut *out, params).map_err(Error::Json)?;
    match (out[params_start], version) {
        (b'[', _) | (b'{', Version::V2) => {}
        // `()` or `None`: no params.
        (b'n', Version::V2) => out.truncate(before_params),
        (b'n', Version::V1) => {
            out.truncate(params_start);
            out.extend_from_slice(b"[]");
        }
        (b'{', Version::V1) => {
            return Err(Error::InvalidParams(
                "JSON-RPC 1.0 params must be an array".into(),
            ));
        }
        _ => {
            return Err(Error::InvalidParams(
                "params must serialize to an array or an object".into(),
            ));
        }
    }
    match (id, version) {
        (Some(id), _) => {
            out.extend_from_slice(b",\"id\":");
            out.extend_from_slice(id.to_string().as_bytes());
        }
        (None, Version::V1) => out.extend_from_slice(b",\"id\":null"),
        (None, Version::V2) => {}
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn encode(version: Version, params: &impl Serialize, id: Option<u64>) -> Result<Value, Error> {
        let mut out = b"x".to_vec();
        let result = request(&mut out, version, "m\"x", params, id);
        if result.is_err() {
            assert_eq!(out, b"x", "a failed encoding leaves the buffer as it was");
        }
        result.map(|()| serde_json::from_slice(&out[1..]).unwrap())
    }

    #[test]
    fn positional_named_and_no_params_in_2_0() {
        let v = encode(Version::V2, &(1, "a"), Some(7)).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "method": "m\"x", "params": [1, "a"], "id": 7})
        );
        let v = encode(Version::V2, &json!({"k": 1}), None).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "method": "m\"x", "params": {"k": 1}})
        );
        let v = encode(Version::V2, &(), Some(1)).unwrap();
        assert_eq!(v, json!({"jsonrpc": "2.0", "method": "m\"x", "id": 1}));
    }

    #[test]
    fn version_1_0_sends_arrays_and_id_null_for_notifications() {
        let v = encode(Version::V1, &(), None).unwrap();
        assert_eq!(v, json!({"method": "m\"x", "params": [], "id": null}));
        let v = encode(Version::V1, &[1], Some(2)).unwrap();
        assert_eq!(v, json!({"method": "m\"x", "params": [1], "id": 2}));
        assert!(matches!(
            encode(Version::V1, &json!({"k": 1}), Some(1)),
            Err(Error::InvalidParams(_))
        ));
    }

    #[test]
    fn scalar_params_are_refused() {
        assert!(matches!(
            encode(Version::V2, &5, Some(1)),
            Err(Error::InvalidParams(_))
        ));
        assert!(matches!(
            encode(Version::V2, &"s", None),
            Err(Error::InvalidParams(_))
        ));
    }
}
