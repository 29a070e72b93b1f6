//! A peer fed raw bytes over a real socket: framing (whitespace, byte at a time), protocol
//! violations (junk, endless `{`, endless spaces, random bytes, too large, too deep) answered
//! with an error and a close, invalid requests answered and survived, batches, flow control.

mod support;

use std::rc::Rc;
use std::time::Duration;

use gruvi_jsonrpc::{Config, MESSAGE_TOO_LARGE, Methods, PARSE_ERROR, Params, Peer, Splitter};
use gruvi_stream::{Stream, UnixStream};
use serde_json::{Value, json};
use support::{Values, random_bytes, run_clean};

/// A peer with a few methods on one end of a socket pair; the raw other end.
fn peer(config: Config) -> (Peer, Rc<Stream>) {
    let mut m = Methods::new();
    m.add_raw("echo", |_, p: Params| Ok(p.into_value()));
    m.add("add", |_, (a, b): (i64, i64)| Ok(a + b));
    m.add("sleep", |_, (ms,): (u64,)| {
        fiber_core::sleep(Duration::from_millis(ms)).unwrap();
        Ok(ms)
    });
    m.add("notify_me", |peer, (method, params): (String, Value)| {
        peer.notify(&method, params).unwrap();
        Ok("done")
    });
    let (a, b) = UnixStream::pair().unwrap();
    let p = Peer::new(Rc::new(Stream::new(a)), m, config).unwrap();
    (p, Rc::new(Stream::new(b)))
}

/// The next value from `stream`.
fn read_value(stream: &Stream, values: &mut Values) -> Option<Value> {
    values.next(stream)
}

/// Reads every value until end of stream.
fn read_all(stream: &Stream) -> Vec<Value> {
    let mut all = Vec::new();
    let mut pending = Vec::new();
    let mut splitter = Splitter::new(1 << 20, 64);
    while stream.fill().unwrap() {
        let n = stream.with_buffered(|data| {
            pending.extend_from_slice(data);
            data.len()
        });
        stream.consume(n);
        while let Some((value, end)) = splitter.split(&pending).unwrap() {
            all.push(serde_json::from_slice(&pending[value]).unwrap());
            pending.drain(..end);
        }
    }
    all
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

#[test]
fn one_message_several_in_one_write_and_whitespace_between() {
    run_clean(|| {
        let (_p, raw) = peer(Config::default());
        let mut s = Values::default();
        raw.write_all(br#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#)
            .unwrap();
        assert_eq!(
            read_value(&raw, &mut s).unwrap(),
            json!({"jsonrpc": "2.0", "result": 3, "id": 1})
        );
        raw.write_all(b" \n\t{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":[2,2],\"id\":2}\r\n{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":[3,3],\"id\":3}  ")
            .unwrap();
        let all = [
            read_value(&raw, &mut s).unwrap(),
            read_value(&raw, &mut s).unwrap(),
        ];
        let mut results: Vec<_> = all.iter().map(|v| v["result"].as_i64().unwrap()).collect();
        results.sort();
        assert_eq!(results, [4, 6]);
    });
}

#[test]
fn a_message_fed_one_byte_at_a_time_is_answered() {
    run_clean(|| {
        let (_p, raw) = peer(Config::default());
        let msg =
            br#"{"jsonrpc": "2.0", "method": "echo", "params": ["}{\"", {"a": []}], "id": "x"}"#;
        for b in msg.iter() {
            raw.write_all(&[*b]).unwrap();
            fiber_core::yield_now().unwrap();
        }
        let mut s = Values::default();
        assert_eq!(
            read_value(&raw, &mut s).unwrap(),
            json!({"jsonrpc": "2.0", "result": ["}{\"", {"a": []}], "id": "x"})
        );
    });
}

/// Sends `bytes` and expects one error response with id null, then end of stream.
fn violation(config: Config, bytes: &[u8]) -> Value {
    let (p, raw) = peer(config);
    let writer = {
        let (raw, bytes) = (raw.clone(), bytes.to_vec());
        // The peer may close before reading it all: a failed write is fine.
        fiber_core::spawn(move || drop(raw.write_all(&bytes)))
    };
    let answers = read_all(&raw);
    writer.join().unwrap();
    // The peer reads and drops what follows the violation until this end closes too.
    raw.close();
    p.join().unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["id"], Value::Null);
    answers[0].clone()
}

#[test]
fn junk_between_messages_gets_a_parse_error_and_a_close() {
    run_clean(|| {
        let answer = violation(Config::default(), b"hello");
        assert_eq!(error_code(&answer), PARSE_ERROR);
    });
}

#[test]
fn endless_open_braces_get_an_error_and_a_close() {
    run_clean(|| {
        let answer = violation(Config::default(), &[b'{'; 200_000]);
        assert_eq!(error_code(&answer), PARSE_ERROR);
    });
}

#[test]
fn endless_spaces_get_message_too_large_and_a_close() {
    run_clean(|| {
        let answer = violation(Config::default(), &[b' '; 200_000]);
        assert_eq!(error_code(&answer), MESSAGE_TOO_LARGE);
    });
}

#[test]
fn random_bytes_get_an_error_and_a_close() {
    run_clean(|| {
        for seed in 1..20 {
            let answer = violation(Config::default(), &random_bytes(100_000, seed));
            let code = error_code(&answer);
            assert!(code == PARSE_ERROR || code == MESSAGE_TOO_LARGE, "{answer}");
        }
    });
}

#[test]
fn a_message_of_max_size_is_answered_and_one_byte_more_is_too_large() {
    run_clean(|| {
        let mut config = Config::default();
        config.max_message_size = 100;
        let head = br#"{"jsonrpc":"2.0","method":"echo","params":[""#;
        let tail = br#""],"id":1}"#;
        let msg = |len: usize| {
            let mut m = head.to_vec();
            m.resize(len - tail.len(), b'x');
            m.extend_from_slice(tail);
            m
        };
        let (_p, raw) = peer(config.clone());
        raw.write_all(&msg(100)).unwrap();
        let answer = read_value(&raw, &mut Values::default()).unwrap();
        let filler = 100 - head.len() - tail.len();
        assert_eq!(answer["result"][0].as_str().unwrap().len(), filler);
        let answer = violation(config, &msg(101));
        assert_eq!(error_code(&answer), MESSAGE_TOO_LARGE);
    });
}

#[test]
fn nesting_to_max_depth_is_answered_and_one_level_more_is_an_error() {
    run_clean(|| {
        let mut config = Config::default();
        config.max_depth = 5;
        let (_p, raw) = peer(config.clone());
        // The message itself and params are two levels.
        raw.write_all(br#"{"jsonrpc":"2.0","method":"echo","params":[[[[]]]],"id":1}"#)
            .unwrap();
        let answer = read_value(&raw, &mut Values::default()).unwrap();
        assert_eq!(answer["result"], json!([[[[]]]]));
        let answer = violation(
            config,
            br#"{"jsonrpc":"2.0","method":"echo","params":[[[[[]]]]],"id":1}"#,
        );
        assert_eq!(error_code(&answer), PARSE_ERROR);
    });
}

#[test]
fn framed_but_invalid_json_and_invalid_requests_are_answered_and_the_connection_goes_on() {
    run_clean(|| {
        let (_p, raw) = peer(Config::default());
        let mut s = Values::default();
        raw.write_all(b"{\"jsonrpc\": \"2.0\", \"method\" 1}")
            .unwrap();
        let answer = read_value(&raw, &mut s).unwrap();
        assert_eq!(
            (error_code(&answer), &answer["id"]),
            (PARSE_ERROR, &Value::Null)
        );
        raw.write_all(br#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#)
            .unwrap();
        let answer = read_value(&raw, &mut s).unwrap();
        assert_eq!(error_code(&answer), -32600);
        raw.write_all(br#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#)
            .unwrap();
        assert_eq!(read_value(&raw, &mut s).unwrap()["result"], 3);
    });
}

#[test]
fn responses_with_unknown_ids_and_invalid_responses_are_ignored() {
    run_clean(|| {
        let (_p, raw) = peer(Config::default());
        raw.write_all(br#"{"jsonrpc":"2.0","result":1,"id":999}{"jsonrpc":"2.0","result":1}{"result":1,"error":null,"id":"x"}"#)
            .unwrap();
        raw.write_all(br#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#)
            .unwrap();
        let mut s = Values::default();
        assert_eq!(
            read_value(&raw, &mut s).unwrap(),
            json!({"jsonrpc": "2.0", "result": 3, "id": 1})
        );
    });
}

#[test]
fn version_1_0_requests_get_1_0_answers() {
    run_clean(|| {
        let (_p, raw) = peer(Config::default());
        let mut s = Values::default();
        raw.write_all(br#"{"method":"add","params":[1,2],"id":"a"}"#)
            .unwrap();
        assert_eq!(
            read_value(&raw, &mut s).unwrap(),
            json!({"result": 3, "error": null, "id": "a"})
        );
        raw.write_all(br#"{"method":"nope","params":[],"id":[1]}"#)
            .unwrap();
        let answer = read_value(&raw, &mut s).unwrap();
        assert_eq!(
            (answer["result"].clone(), answer["id"].clone()),
            (Value::Null, json!([1]))
        );
        assert_eq!(error_code(&answer), -32601);
    });
}

#[test]
fn a_notification_sent_by_a_handler_arrives_before_its_answer() {
    run_clean(|| {
        let (_p, raw) = peer(Config::default());
        let mut s = Values::default();
        raw.write_all(br#"{"jsonrpc":"2.0","method":"notify_me","params":["hi",[1]],"id":5}"#)
            .unwrap();
        assert_eq!(
            read_value(&raw, &mut s).unwrap(),
            json!({"jsonrpc": "2.0", "method": "hi", "params": [1]})
        );
        assert_eq!(
            read_value(&raw, &mut s).unwrap(),
            json!({"jsonrpc": "2.0", "result": "done", "id": 5})
        );
    });
}

#[test]
fn a_batch_is_answered_with_one_array_once_every_call_finished() {
    run_clean(|| {
        let (_p, raw) = peer(Config::default());
        let mut s = Values::default();
        raw.write_all(
            br#"[{"jsonrpc":"2.0","method":"sleep","params":[30],"id":1},
                {"jsonrpc":"2.0","method":"add","params":[1,2],"id":2},
                {"jsonrpc":"2.0","method":"add","params":[1,2]},
                {"foo":"boo"},
                {"jsonrpc":"2.0","method":"nope","id":3}]"#,
        )
        .unwrap();
        let answer = read_value(&raw, &mut s).unwrap();
        let mut entries = answer.as_array().unwrap().clone();
        entries.sort_by_key(|e| e["id"].as_i64().unwrap_or(0));
        assert_eq!(
            Value::Array(entries.iter().map(strip_data).collect()),
            json!([
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
                {"jsonrpc": "2.0", "result": 30, "id": 1},
                {"jsonrpc": "2.0", "result": 3, "id": 2},
                {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 3},
            ])
        );
        // All notifications: nothing comes back; the next answer is the next call's.
        raw.write_all(br#"[{"jsonrpc":"2.0","method":"add","params":[1,2]}]"#)
            .unwrap();
        raw.write_all(br#"[]"#).unwrap();
        let answer = strip_data(&read_value(&raw, &mut s).unwrap());
        assert_eq!(
            answer,
            json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null})
        );
    });
}

/// The error without its `data` (our details, which the specification leaves open).
fn strip_data(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(error) = v.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("data");
    }
    v
}

#[test]
fn a_thousand_requests_against_a_tiny_queue_and_one_handler_are_all_answered_in_order() {
    run_clean(|| {
        let mut config = Config::default();
        config.max_concurrency = 1;
        config.max_queued = 2;
        let (_p, raw) = peer(config);
        let mut all = Vec::new();
        for i in 0..1000 {
            let msg = json!({"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": i});
            all.extend_from_slice(&serde_json::to_vec(&msg).unwrap());
        }
        let writer = {
            let raw = raw.clone();
            fiber_core::spawn(move || {
                raw.write_all(&all).unwrap();
                raw.write_eof().unwrap();
            })
        };
        let answers = read_all(&raw);
        writer.join().unwrap();
        assert_eq!(answers.len(), 1000);
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a, &json!({"jsonrpc": "2.0", "result": i + 1, "id": i}));
        }
    });
}

/// After a violation the peer keeps reading for `linger_time` or `linger_bytes`, whichever
/// comes first, then closes even if the other end never does.
#[test]
fn after_a_violation_the_peer_closes_after_linger_time_or_linger_bytes() {
    run_clean(|| {
        // A silent other end that never closes: closed after linger_time.
        let mut config = Config::default();
        config.linger_time = Duration::from_millis(100);
        let (p, raw) = peer(config);
        raw.write_all(b"junk").unwrap();
        let start = std::time::Instant::now();
        p.join().unwrap();
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(read_all(&raw).len(), 1);
        // An other end that never stops sending: closed after linger_bytes, even with a
        // linger_time too long to add to the clock (no time limit, and no overflow panic).
        let mut config = Config::default();
        config.linger_time = Duration::MAX;
        config.linger_bytes = 10_000;
        let (p, raw) = peer(config);
        let r = raw.clone();
        let sender = fiber_core::spawn(move || {
            r.write_all(b"junk")?;
            loop {
                r.write_all(&[b' '; 1000])?;
                fiber_core::yield_now().map_err(std::io::Error::from)?;
            }
        });
        let start = std::time::Instant::now();
        p.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(30));
        let err: std::io::Result<()> = sender.join().unwrap();
        assert!(err.is_err(), "the sender sees the connection closed");
    });
}

/// With one handler busy, reading stops once `max_queued` requests wait: a response behind
/// them stays unread until a handler frees up. One more slot and it is read at once.
#[test]
fn reading_pauses_at_max_queued_waiting_requests() {
    for (max_queued, answered_while_blocked) in [(2, false), (3, true)] {
        run_clean(|| {
            let release = Rc::new(fiber_core::Event::new());
            let mut m = Methods::new();
            let r = release.clone();
            m.add("block", move |_, ()| {
                r.wait().unwrap();
                Ok(())
            });
            let mut config = Config::default();
            config.max_concurrency = 1;
            config.max_queued = max_queued;
            let (a, b) = UnixStream::pair().unwrap();
            let p = Peer::new(Rc::new(Stream::new(a)), m, config).unwrap();
            let raw: Rc<Stream> = Rc::new(Stream::new(b));
            let p2 = p.clone();
            let call = fiber_core::spawn(move || p2.call::<String>("x", ()));
            let mut values = Values::default();
            let request = read_value(&raw, &mut values).unwrap();
            assert_eq!(request["method"], "x");
            let mut bytes = Vec::new();
            for id in 0..3 {
                let msg = json!({"jsonrpc": "2.0", "method": "block", "id": id});
                bytes.extend_from_slice(msg.to_string().as_bytes());
            }
            let answer = json!({"jsonrpc": "2.0", "result": "ok", "id": request["id"]});
            bytes.extend_from_slice(answer.to_string().as_bytes());
            raw.write_all(&bytes).unwrap();
            if answered_while_blocked {
                // It happens: wait generously.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while !call.is_finished() && std::time::Instant::now() < deadline {
                    fiber_core::sleep(Duration::from_millis(5)).unwrap();
                }
                assert!(
                    call.is_finished(),
                    "max_queued {max_queued}: the answer was not read"
                );
            } else {
                fiber_core::sleep(Duration::from_millis(200)).unwrap();
                assert!(
                    !call.is_finished(),
                    "max_queued {max_queued}: read past the limit"
                );
            }
            release.set();
            assert_eq!(call.join().unwrap().unwrap(), "ok");
            for _ in 0..3 {
                assert_eq!(
                    read_value(&raw, &mut values).unwrap()["result"],
                    Value::Null
                );
            }
        });
    }
}

/// Notifications to a peer that never reads block once the socket, the transport's queue
/// and `write_buffer_limit` bytes are full; memory stays bounded.
#[test]
fn senders_block_when_write_buffer_limit_bytes_wait() {
    run_clean(|| {
        let mut config = Config::default();
        config.write_buffer_limit = 1000;
        let (p, _raw) = peer(config);
        let mut sent = 0usize;
        let blocked = fiber_core::timeout(Duration::from_millis(200), || {
            while sent < 1_000_000 {
                p.notify("n", ["x".repeat(100)])?;
                sent += 1;
            }
            Ok(())
        });
        // The timeout interrupts the blocked notify; it never finishes the loop.
        assert!(
            matches!(
                blocked,
                Err(fiber_core::Error::TimedOut)
                    | Ok(Err(gruvi_jsonrpc::Error::Fiber(
                        fiber_core::Error::TimedOut
                    )))
            ),
            "never blocked after {sent} notifications: {blocked:?}"
        );
        assert!(sent * 140 < 16 << 20, "{sent} notifications queued");
    });
}

/// A peer flooded with invalid requests by another end that never reads: the error responses
/// stop being produced once `write_buffer_limit` bytes wait, so reading stops too and memory
/// stays bounded (the sender blocks); what was answered is there to read.
#[test]
fn a_flood_of_invalid_requests_from_a_peer_that_does_not_read_is_bounded() {
    run_clean(|| {
        let mut config = Config::default();
        config.write_buffer_limit = 4096;
        let (p, raw) = peer(config);
        // 2 MB of requests would make 110 MB of answers.
        let chunk = b"{}".repeat(2048);
        let r = raw.clone();
        // In 4 KiB writes: a write blocks only while the stream's own queue is over 64 KiB.
        let sender = fiber_core::spawn(move || -> std::io::Result<()> {
            for _ in 0..500 {
                r.write_all(&chunk)?;
            }
            Ok(())
        });
        fiber_core::sleep(Duration::from_millis(300)).unwrap();
        assert!(!sender.is_finished(), "2 MB of requests were all taken in");
        // At most one message's answer past the limit.
        assert!(
            p.unsent_bytes() <= 4096 + 200,
            "{} bytes unsent",
            p.unsent_bytes()
        );
        let mut values = Values::default();
        for _ in 0..1000 {
            assert_eq!(error_code(&values.next(&raw).unwrap()), -32600);
        }
        raw.close();
        p.join().unwrap();
        assert!(sender.join().unwrap().is_err());
    });
}

/// A peer that cannot read a batch of ours answers with one error with id null (it cannot
/// say which request it means): every waiting call fails with that error at once instead of
/// waiting forever. With no call waiting, such an error is ignored and the connection goes on.
#[test]
fn an_error_with_id_null_fails_the_waiting_calls_at_once() {
    run_clean(|| {
        let (p, raw) = peer(Config::default());
        let single = {
            let p = p.clone();
            fiber_core::spawn(move || p.call::<i64>("add", (1, 2)))
        };
        let batch = {
            let p = p.clone();
            fiber_core::spawn(move || {
                let mut batch = p.batch();
                batch.call("add", (1, 2)).unwrap();
                batch.call("add", (3, 4)).unwrap();
                batch.send()
            })
        };
        let mut s = Values::default();
        let first = read_value(&raw, &mut s).unwrap();
        let second = read_value(&raw, &mut s).unwrap();
        assert!(
            first.is_array() != second.is_array(),
            "one call and one batch: {first} {second}"
        );
        let started = std::time::Instant::now();
        raw.write_all(
            br#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#,
        )
        .unwrap();
        let rpc_code = |err: &gruvi_jsonrpc::Error| match err {
            gruvi_jsonrpc::Error::Rpc(e) => e.code,
            other => panic!("not an error response: {other:?}"),
        };
        assert_eq!(rpc_code(&single.join().unwrap().unwrap_err()), -32600);
        let answers = batch.join().unwrap().unwrap();
        assert_eq!(answers.len(), 2);
        for answer in &answers {
            assert_eq!(rpc_code(answer.as_ref().unwrap_err()), -32600);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // Nobody waits now: the next id-null error is only logged, and calls go on.
        raw.write_all(
            br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#,
        )
        .unwrap();
        // The peer reads in order: once this call of ours is answered, it has seen the error.
        raw.write_all(br#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":7}"#)
            .unwrap();
        assert_eq!(
            read_value(&raw, &mut s).unwrap(),
            json!({"jsonrpc": "2.0", "result": 3, "id": 7})
        );
        let caller = {
            let p = p.clone();
            fiber_core::spawn(move || p.call::<i64>("add", (5, 6)))
        };
        let request = read_value(&raw, &mut s).unwrap();
        let id = request["id"].clone();
        raw.write_all(
            json!({"jsonrpc": "2.0", "result": 11, "id": id})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(caller.join().unwrap().unwrap(), 11);
        assert!(p.is_open());
    });
}
