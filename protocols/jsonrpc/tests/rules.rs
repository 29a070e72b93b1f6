//! The validation rules of JSON-RPC 1.0 and 2.0 as tables (Gruvi's V1 and V2 rule tests,
//! completed from the specifications): every required, illegal and extra member, id rules,
//! telling requests from responses, and batches.

use gruvi_jsonrpc::{
    INVALID_REQUEST, Id, Incoming, Message, PARSE_ERROR, Params, Request, Response, RpcError,
    Version, parse,
};
use serde_json::{Value, json};

/// What a message is, in a word: "request", "notification", "response", "error response",
/// or "invalid" / "invalid response".
fn kind(message: &Value) -> &'static str {
    let bytes = serde_json::to_vec(message).unwrap();
    match parse(&bytes).unwrap() {
        Incoming::Single(Ok(Message::Request(r))) if r.is_notification() => "notification",
        Incoming::Single(Ok(Message::Request(_))) => "request",
        Incoming::Single(Ok(Message::Response(r))) if r.result.is_err() => "error response",
        Incoming::Single(Ok(Message::Response(_))) => "response",
        Incoming::Single(Err(i)) => {
            assert_eq!(i.error.code, INVALID_REQUEST);
            if i.is_response {
                "invalid response"
            } else {
                "invalid"
            }
        }
        Incoming::Batch(_) => "batch",
    }
}

fn check(table: &[(Value, &str)]) {
    for (message, expected) in table {
        assert_eq!(kind(message), *expected, "{message}");
    }
}

#[test]
fn version_1_0_rules() {
    check(&[
        // Requests: method (a string), params (an array) and id, all required, nothing else.
        (json!({"method": "m", "params": [], "id": 1}), "request"),
        (
            json!({"method": "m", "params": [1, "a"], "id": "x"}),
            "request",
        ),
        (
            json!({"method": "m", "params": [], "id": null}),
            "notification",
        ),
        (
            json!({"method": "m", "params": [], "id": [1, 2]}),
            "request",
        ),
        (json!({"method": "m", "params": []}), "invalid"),
        (json!({"method": "m", "id": 1}), "invalid"),
        (json!({"params": [], "id": 1}), "invalid"),
        (json!({"method": 1, "params": [], "id": 1}), "invalid"),
        (json!({"method": null, "params": [], "id": 1}), "invalid"),
        (json!({"method": "m", "params": {}, "id": 1}), "invalid"),
        (json!({"method": "m", "params": "x", "id": 1}), "invalid"),
        (json!({"method": "m", "params": null, "id": 1}), "invalid"),
        (
            json!({"method": "m", "params": [], "id": 1, "x": 1}),
            "invalid",
        ),
        // Responses: result, error and id, all required; at most one of them non-null.
        (json!({"result": 1, "error": null, "id": 1}), "response"),
        (json!({"result": null, "error": null, "id": 1}), "response"),
        (
            json!({"result": null, "error": {"code": 1, "message": "m"}, "id": 1}),
            "error response",
        ),
        (
            json!({"result": null, "error": "any value", "id": 1}),
            "error response",
        ),
        (
            json!({"result": 1, "error": {"code": 1, "message": "m"}, "id": 1}),
            "invalid response",
        ),
        (json!({"result": 1, "id": 1}), "invalid response"),
        (json!({"error": null, "id": 1}), "invalid response"),
        (json!({"result": 1, "error": null}), "invalid response"),
        (
            json!({"result": 1, "error": null, "id": 1, "x": 2}),
            "invalid response",
        ),
        // Neither.
        (json!({"id": 1}), "invalid"),
        (json!({}), "invalid"),
    ]);
}

#[test]
fn version_2_0_rules() {
    check(&[
        (
            json!({"jsonrpc": "2.0", "method": "m", "params": [1], "id": 1}),
            "request",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "params": {"a": 1}, "id": "s"}),
            "request",
        ),
        (json!({"jsonrpc": "2.0", "method": "m", "id": 1}), "request"),
        (
            json!({"jsonrpc": "2.0", "method": "m", "id": null}),
            "request",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "id": -1.5}),
            "request",
        ),
        (json!({"jsonrpc": "2.0", "method": "m"}), "notification"),
        (
            json!({"jsonrpc": "2.0", "method": "m", "params": []}),
            "notification",
        ),
        (json!({"jsonrpc": "2.1", "method": "m", "id": 1}), "invalid"),
        (json!({"jsonrpc": 2.0, "method": "m", "id": 1}), "invalid"),
        (
            json!({"jsonrpc": "2.0", "method": 1, "params": "bar"}),
            "invalid",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "params": "bar"}),
            "invalid",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "params": null}),
            "invalid",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "params": 1}),
            "invalid",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "id": [1]}),
            "invalid",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "id": {}}),
            "invalid",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "id": true}),
            "invalid",
        ),
        (
            json!({"jsonrpc": "2.0", "method": "m", "id": 1, "x": 1}),
            "invalid",
        ),
        (json!({"jsonrpc": "2.0", "result": 7, "id": 1}), "response"),
        (
            json!({"jsonrpc": "2.0", "result": null, "id": null}),
            "response",
        ),
        (
            json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "m"}, "id": null}),
            "error response",
        ),
        (
            json!({"jsonrpc": "2.0", "error": {"code": 1, "message": "m", "data": [1]}, "id": 1}),
            "error response",
        ),
        (
            json!({"jsonrpc": "2.0", "result": 1, "error": {"code": 1, "message": "m"}, "id": 1}),
            "invalid response",
        ),
        (json!({"jsonrpc": "2.0", "result": 1}), "invalid response"),
        (
            json!({"jsonrpc": "2.0", "result": 1, "id": [1]}),
            "invalid response",
        ),
        (
            json!({"jsonrpc": "2.0", "result": 1, "id": 1, "x": 1}),
            "invalid response",
        ),
        (
            json!({"jsonrpc": "2.0", "error": "text", "id": 1}),
            "invalid response",
        ),
        (
            json!({"jsonrpc": "2.0", "error": {"code": "1", "message": "m"}, "id": 1}),
            "invalid response",
        ),
        (
            json!({"jsonrpc": "2.0", "error": {"code": 1}, "id": 1}),
            "invalid response",
        ),
        (
            json!({"jsonrpc": "2.0", "error": {"code": 1, "message": "m", "x": 1}, "id": 1}),
            "invalid response",
        ),
        (json!({"jsonrpc": "2.0", "id": 1}), "invalid"),
    ]);
}

#[test]
fn an_invalid_request_keeps_a_valid_id_and_gets_null_otherwise() {
    let Incoming::Single(Err(invalid)) =
        parse(br#"{"jsonrpc": "2.0", "method": 1, "id": "a"}"#).unwrap()
    else {
        panic!("invalid")
    };
    assert_eq!(invalid.id, Id::from("a"));
    let Incoming::Single(Err(invalid)) =
        parse(br#"{"jsonrpc": "2.0", "method": 1, "id": {}}"#).unwrap()
    else {
        panic!("invalid")
    };
    assert_eq!(invalid.id, Id::Null);
    let response = invalid.response().unwrap();
    assert_eq!(response.version, Version::V2);
    assert_eq!(response.result.unwrap_err().code, INVALID_REQUEST);
}

#[test]
fn the_parsed_request_holds_its_members() {
    let Incoming::Single(Ok(Message::Request(request))) =
        parse(br#"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42}, "id": 3}"#)
            .unwrap()
    else {
        panic!("a request")
    };
    let mut params = serde_json::Map::new();
    params.insert("minuend".into(), json!(42));
    assert_eq!(
        request,
        Request {
            version: Version::V2,
            method: "subtract".into(),
            params: Params::Object(params),
            id: Some(3.into()),
        }
    );
}

#[test]
fn a_v1_error_of_any_shape_keeps_the_original_as_data() {
    let Incoming::Single(Ok(Message::Response(response))) =
        parse(br#"{"result": null, "error": "boom", "id": 1}"#).unwrap()
    else {
        panic!("a response")
    };
    let err: RpcError = response.result.unwrap_err();
    assert_eq!(
        (err.message.as_str(), err.data),
        ("boom", Some(json!("boom")))
    );
}

#[test]
fn invalid_json_is_a_parse_error() {
    for bytes in [
        &b"{\"a\" 1}"[..],
        b"{\"a\": tru}",
        b"{\"a\": \"\xff\"}",
        b"{1: 2}",
    ] {
        assert_eq!(parse(bytes).unwrap_err().code, PARSE_ERROR, "{bytes:?}");
    }
}

#[test]
fn batches_classify_each_entry_and_need_2_0() {
    let Incoming::Batch(entries) = parse(
        br#"[{"jsonrpc": "2.0", "method": "sum", "params": [1], "id": "1"},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
            {"foo": "boo"},
            {"method": "m", "params": [], "id": 1},
            1,
            {"jsonrpc": "2.0", "result": 3, "id": 9}]"#,
    )
    .unwrap() else {
        panic!("a batch")
    };
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| match e {
            Ok(Message::Request(r)) if r.is_notification() => "notification",
            Ok(Message::Request(_)) => "request",
            Ok(Message::Response(_)) => "response",
            Err(_) => "invalid",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "request",
            "notification",
            "invalid",
            "invalid",
            "invalid",
            "response"
        ]
    );
}

#[test]
fn an_empty_batch_is_one_invalid_request() {
    let Incoming::Single(Err(invalid)) = parse(b"[]").unwrap() else {
        panic!("a single invalid request")
    };
    assert_eq!(
        invalid.response(),
        Some(Response {
            version: Version::V2,
            id: Id::Null,
            result: Err(invalid.error.clone()),
        })
    );
}
