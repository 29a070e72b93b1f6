//! Peers talking to each other over real sockets (Unix socket pairs and loopback TCP): calls in
//! both directions, concurrency, timeouts, connection loss, handler failures.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi_jsonrpc::{
    Config, Error, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Methods, Params, Peer,
    RpcError, Value, Version,
};
use gruvi_stream::{Stream, UnixStream};
use serde_json::json;
use support::run_clean;

/// Two peers on the ends of a Unix socket pair.
fn pair(server: Methods, client: Methods, config: Config) -> (Peer, Peer) {
    let (a, b) = UnixStream::pair().unwrap();
    let s = Peer::new(Rc::new(Stream::new(a)), server, config.clone()).unwrap();
    let c = Peer::new(Rc::new(Stream::new(b)), client, config).unwrap();
    (s, c)
}

fn methods() -> Methods {
    let mut m = Methods::new();
    m.add("add", |_, (a, b): (i64, i64)| Ok(a + b));
    m.add_raw("echo", |_, params: Params| Ok(params.into_value()));
    m.add("sleep", |_, (ms,): (u64,)| {
        fiber_core::sleep(Duration::from_millis(ms)).map_err(RpcError::internal_error)?;
        Ok(ms)
    });
    m.add("panic", |_, ()| -> Result<(), RpcError> {
        panic!("handler bug")
    });
    m.add("call_me", |peer, (method, params): (String, Value)| {
        peer.call::<Value>(&method, params)
            .map_err(|e| RpcError::new(-32000, e.to_string()))
    });
    m
}

#[test]
fn a_call_returns_the_typed_result() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        assert_eq!(c.call::<i64>("add", (1, 2)).unwrap(), 3);
        assert_eq!(
            c.call::<Value>("echo", json!({"a": [1]})).unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(c.call::<Value>("echo", ()).unwrap(), Value::Null);
    });
}

#[test]
fn version_1_0_peers_call_each_other() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::with_version(Version::V1));
        assert_eq!(c.version(), Version::V1);
        assert_eq!(c.call::<i64>("add", (40, 2)).unwrap(), 42);
        let err = c.call::<i64>("nope", ()).unwrap_err();
        assert!(matches!(err, Error::Rpc(e) if e.code == METHOD_NOT_FOUND));
    });
}

#[test]
fn a_peer_without_methods_answers_method_not_found_instead_of_hanging() {
    // Gruvi's NO_SUCH_METHOD bug: its caller waited for the timeout.
    run_clean(|| {
        let (s, c) = pair(Methods::new(), Methods::new(), Config::default());
        let start = Instant::now();
        let err = s
            .call_timeout::<Value>("anything", [1], Some(Duration::from_secs(20)))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Rpc(e) if e.code == METHOD_NOT_FOUND),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        drop(c);
    });
}

#[test]
fn params_that_do_not_fit_are_invalid_params() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let err = c.call::<i64>("add", ("x", 2)).unwrap_err();
        assert!(matches!(err, Error::Rpc(e) if e.code == INVALID_PARAMS));
        let err = c.call::<i64>("add", 5).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParams(_)),
            "scalar params refused locally"
        );
    });
}

#[test]
fn a_result_of_the_wrong_type_is_an_invalid_response() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let err = c.call::<String>("add", (1, 2)).unwrap_err();
        assert!(matches!(err, Error::InvalidResponse(_)), "{err}");
    });
}

#[test]
fn a_panicking_handler_gets_internal_error_and_the_connection_lives_on() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let err = c.call::<()>("panic", ()).unwrap_err();
        match err {
            Error::Rpc(e) => {
                assert_eq!(e.code, INTERNAL_ERROR);
                assert_eq!(e.data, Some(json!("handler bug")));
            }
            other => panic!("{other}"),
        }
        assert_eq!(c.call::<i64>("add", (2, 2)).unwrap(), 4);
    });
}

#[test]
fn a_hundred_fibers_calling_at_once_over_one_connection_get_their_own_answers() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let callers: Vec<_> = (0..100i64)
            .map(|i| {
                let c = c.clone();
                fiber_core::spawn(move || {
                    (0..20)
                        .map(|j| c.call::<i64>("add", (i, j)).unwrap() - j)
                        .all(|v| v == i)
                })
            })
            .collect();
        for caller in callers {
            assert!(caller.join().unwrap());
        }
    });
}

#[test]
fn out_of_order_answers_reach_their_callers() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let callers: Vec<_> = [150u64, 1, 50]
            .into_iter()
            .map(|ms| {
                let (c, order) = (c.clone(), order.clone());
                fiber_core::spawn(move || {
                    let got = c.call::<u64>("sleep", (ms,)).unwrap();
                    order.borrow_mut().push(got);
                    got == ms
                })
            })
            .collect();
        for caller in callers {
            assert!(caller.join().unwrap());
        }
        assert_eq!(*order.borrow(), [1, 50, 150]);
    });
}

#[test]
fn a_server_handler_calls_back_into_the_client_while_its_call_is_pending() {
    run_clean(|| {
        let mut client = Methods::new();
        client.add("ping", |_, ()| Ok("pong"));
        let (_s, c) = pair(methods(), client, Config::default());
        let got: Value = c.call("call_me", ("ping", ())).unwrap();
        assert_eq!(got, json!("pong"));
        // Ping-pong several levels deep: the client's handler calls the server again.
        let mut client = Methods::new();
        client.add("relay", |peer, (a, b): (i64, i64)| {
            peer.call::<i64>("add", (a, b))
                .map_err(|e| RpcError::new(-32000, e.to_string()))
        });
        let (_s, c) = pair(methods(), client, Config::default());
        let got: i64 = c.call("call_me", ("relay", [20, 22])).unwrap();
        assert_eq!(got, 42);
    });
}

#[test]
fn a_slow_handler_does_not_stall_other_calls() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let c2 = c.clone();
        let slow = fiber_core::spawn(move || c2.call::<u64>("sleep", (2000,)));
        fiber_core::yield_now().unwrap();
        let start = Instant::now();
        for i in 0..10 {
            assert_eq!(c.call::<i64>("add", (i, 1)).unwrap(), i + 1);
        }
        assert!(start.elapsed() < Duration::from_millis(1500));
        assert_eq!(slow.join().unwrap().unwrap(), 2000);
    });
}

#[test]
fn concurrency_is_bounded_by_max_concurrency() {
    run_clean(|| {
        let running = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let mut m = Methods::new();
        let (r, mo) = (running.clone(), most.clone());
        m.add("work", move |_, ()| {
            r.set(r.get() + 1);
            mo.set(mo.get().max(r.get()));
            fiber_core::sleep(Duration::from_millis(5)).unwrap();
            r.set(r.get() - 1);
            Ok(())
        });
        let mut config = Config::default();
        config.max_concurrency = 3;
        let (_s, c) = pair(m, Methods::new(), config);
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let c = c.clone();
                fiber_core::spawn(move || c.call::<()>("work", ()).is_ok())
            })
            .collect();
        assert!(callers.into_iter().all(|f| f.join().unwrap()));
        assert_eq!(most.get(), 3);
    });
}

#[test]
fn a_call_times_out_and_its_late_answer_is_discarded() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let start = Instant::now();
        let err = c
            .call_timeout::<u64>("sleep", (300,), Some(Duration::from_millis(50)))
            .unwrap_err();
        assert!(matches!(err, Error::TimedOut), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(50));
        // The late answer arrives meanwhile and is dropped; the next call gets its own.
        fiber_core::sleep(Duration::from_millis(400)).unwrap();
        assert_eq!(c.call::<i64>("add", (1, 1)).unwrap(), 2);
    });
}

/// A timeout too long to add to the clock (`Duration::MAX`) means no timeout, for calls and
/// batches alike, instead of an overflow panic.
#[test]
fn a_call_timeout_of_duration_max_waits_without_limit() {
    run_clean(|| {
        let mut config = Config::default();
        config.call_timeout = Some(Duration::MAX);
        let (_s, c) = pair(methods(), Methods::new(), config);
        assert_eq!(c.call::<i64>("add", (1, 2)).unwrap(), 3);
        assert_eq!(
            c.call_timeout::<u64>("sleep", (20,), Some(Duration::MAX))
                .unwrap(),
            20
        );
        let mut batch = c.batch();
        batch.call("add", (2, 2)).unwrap();
        let answers = batch.send().unwrap();
        assert_eq!(answers[0].as_ref().unwrap(), &json!(4));
    });
}

#[test]
fn connection_loss_fails_every_pending_call_at_once() {
    run_clean(|| {
        let (s, c) = pair(methods(), Methods::new(), Config::default());
        let callers: Vec<_> = (0..5)
            .map(|_| {
                let c = c.clone();
                fiber_core::spawn(move || c.call::<u64>("sleep", (10_000,)))
            })
            .collect();
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        let start = Instant::now();
        s.close();
        for caller in callers {
            let err = caller.join().unwrap().unwrap_err();
            assert!(matches!(err, Error::ConnectionLost(_)), "{err}");
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        // Later calls fail at once too.
        assert!(matches!(
            c.call::<i64>("add", (1, 1)),
            Err(Error::ConnectionLost(_))
        ));
        c.join().unwrap();
    });
}

#[test]
fn notifications_reach_the_handler_and_get_no_answer() {
    run_clean(|| {
        let seen = Rc::new(Cell::new(0));
        let mut m = methods();
        let s2 = seen.clone();
        m.add("hello", move |_, (n,): (i64,)| {
            s2.set(s2.get() + n);
            Ok(())
        });
        let (_s, c) = pair(m, Methods::new(), Config::default());
        for _ in 0..10 {
            c.notify("hello", (2,)).unwrap();
        }
        // A notification to an unknown method is dropped silently too.
        c.notify("nope", ()).unwrap();
        // Handled in order of arrival, before this call's answer can come.
        assert_eq!(c.call::<i64>("add", (0, 0)).unwrap(), 0);
        assert_eq!(seen.get(), 20);
    });
}

#[test]
fn dropping_the_last_handle_closes_the_connection() {
    run_clean(|| {
        let (s, c) = pair(methods(), Methods::new(), Config::default());
        drop(c);
        s.join().unwrap();
        assert!(!s.is_open());
    });
}

#[test]
fn a_closed_peer_ends_after_the_answers_to_requests_it_already_got() {
    // The client half-closes right after a call: the server still answers, then closes.
    run_clean(|| {
        let (s, c) = pair(methods(), Methods::new(), Config::default());
        let c2 = c.clone();
        let caller = fiber_core::spawn(move || c2.call::<u64>("sleep", (30,)));
        fiber_core::yield_now().unwrap();
        fiber_core::yield_now().unwrap();
        let caller_result = caller.join().unwrap();
        assert_eq!(caller_result.unwrap(), 30);
        c.stream().write_eof().unwrap();
        s.join().unwrap();
    });
}

#[test]
fn a_batch_of_calls_and_notifications_gets_each_calls_answer_in_order() {
    run_clean(|| {
        let seen = Rc::new(Cell::new(0));
        let mut m = methods();
        let s2 = seen.clone();
        m.add("hello", move |_, ()| {
            s2.set(s2.get() + 1);
            Ok(())
        });
        // A 1.0 peer still sends batches as 2.0.
        let (_s, c) = pair(m, Methods::new(), Config::with_version(Version::V1));
        let mut batch = c.batch();
        batch
            .call("sleep", (20,))
            .unwrap()
            .notify("hello", ())
            .unwrap()
            .call("nope", ())
            .unwrap()
            .call("add", (2, 3))
            .unwrap();
        assert!(batch.call("add", 5).is_err(), "scalar params are refused");
        let answers = batch.send().unwrap();
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0].as_ref().unwrap(), &json!(20));
        assert!(matches!(&answers[1], Err(Error::Rpc(e)) if e.code == METHOD_NOT_FOUND));
        assert_eq!(answers[2].as_ref().unwrap(), &json!(5));
        assert_eq!(seen.get(), 1);
        assert!(
            c.batch().send().unwrap().is_empty(),
            "an empty batch sends nothing"
        );
        let mut notes = c.batch();
        notes.notify("hello", ()).unwrap();
        assert!(notes.send().unwrap().is_empty());
        assert_eq!(c.call::<i64>("add", (0, 0)).unwrap(), 0);
        assert_eq!(seen.get(), 2);
    });
}

#[test]
fn a_batch_whose_answer_comes_too_late_times_out_call_by_call() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let mut batch = c.batch();
        batch
            .call("sleep", (300,))
            .unwrap()
            .call("add", (1, 1))
            .unwrap();
        batch.timeout(Some(Duration::from_millis(50)));
        let answers = batch.send().unwrap();
        assert!(answers.iter().all(|a| matches!(a, Err(Error::TimedOut))));
    });
}

#[test]
fn an_enclosing_timeout_scope_ends_a_call_with_its_own_error() {
    run_clean(|| {
        let (_s, c) = pair(methods(), Methods::new(), Config::default());
        let start = Instant::now();
        let outcome = fiber_core::timeout(Duration::from_millis(50), || {
            c.call::<u64>("sleep", (5000,))
        });
        let ok = matches!(
            outcome,
            Err(fiber_core::Error::TimedOut) | Ok(Err(Error::Fiber(fiber_core::Error::TimedOut)))
        );
        assert!(ok, "{outcome:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
    });
}

#[test]
fn flush_then_close_delivers_the_last_notifications() {
    run_clean(|| {
        let seen = Rc::new(Cell::new(0));
        let mut m = Methods::new();
        let s2 = seen.clone();
        m.add("hello", move |_, (n,): (i64,)| {
            s2.set(s2.get() + n);
            Ok(())
        });
        let (s, c) = pair(m, Methods::new(), Config::default());
        for _ in 0..1000 {
            c.notify("hello", (1,)).unwrap();
        }
        c.flush().unwrap();
        c.close();
        s.join().unwrap();
        assert_eq!(seen.get(), 1000);
        assert!(matches!(c.flush(), Err(Error::ConnectionLost(_))));
    });
}

/// A server peer with `idle` as its idle timeout and a client peer without one, on the two ends
/// of a socket pair; both answer with `methods()`.
fn idle_server_and_client(idle: Duration) -> (Peer, Peer) {
    let mut server_config = Config::default();
    server_config.idle_timeout = Some(idle);
    let (a, b) = UnixStream::pair().unwrap();
    let s = Peer::new(Rc::new(Stream::new(a)), methods(), server_config).unwrap();
    let c = Peer::new(Rc::new(Stream::new(b)), methods(), Config::default()).unwrap();
    (s, c)
}

/// With an idle timeout, a peer closes a connection on which nothing came for that long
/// while nothing was in progress; a call whose handler takes longer than the timeout is still
/// answered (work in progress is not idleness), and so is a call this end is waiting for.
#[test]
fn an_idle_timeout_closes_a_quiet_connection_but_not_a_busy_one() {
    run_clean(|| {
        let idle = Duration::from_millis(200);
        let (s, c) = idle_server_and_client(idle);
        // A handler three times longer than the timeout: answered.
        let started = Instant::now();
        assert_eq!(c.call::<u64>("sleep", (600,)).unwrap(), 600);
        // The server waiting for the client's slow answer is not idle either.
        assert_eq!(s.call::<u64>("sleep", (600,)).unwrap(), 600);
        assert!(s.is_open() && c.is_open());
        // Then quiet: the server closes after the timeout, and the client sees the end.
        let quiet = Instant::now();
        c.join().unwrap();
        s.join().unwrap();
        assert!(!s.is_open() && !c.is_open());
        let waited = quiet.elapsed();
        assert!(waited >= idle, "closed after {waited:?}");
        assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
        assert!(started.elapsed() >= Duration::from_millis(1200));
    });
}

/// The idle time counts from the end of the last job too: a job that ends just before a read
/// timeout (nothing read while it ran) does not make the connection look idle at that timeout.
#[test]
fn the_idle_timeout_counts_from_the_end_of_the_last_job() {
    run_clean(|| {
        let idle = Duration::from_millis(300);
        let (s, c) = idle_server_and_client(idle);
        // Ends a few milliseconds before the server's first read timeout.
        assert_eq!(c.call::<u64>("sleep", (290,)).unwrap(), 290);
        let answered = Instant::now();
        c.join().unwrap();
        s.join().unwrap();
        let waited = answered.elapsed();
        // Closed a whole timeout after the job ended (a little less: the answer travelled).
        assert!(
            waited >= Duration::from_millis(250),
            "closed after {waited:?}"
        );
        assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    });
}

/// Without an idle timeout (the default), a quiet connection stays open.
#[test]
fn without_an_idle_timeout_a_quiet_connection_stays_open() {
    run_clean(|| {
        let (s, c) = pair(methods(), Methods::new(), Config::default());
        fiber_core::sleep(Duration::from_millis(300)).unwrap();
        assert!(s.is_open() && c.is_open());
        assert_eq!(c.call::<i64>("add", (1, 2)).unwrap(), 3);
        c.close();
        s.join().unwrap();
    });
}
