//! The slow-message defence and the batch limit, over real loopback TCP: a peer that trickles
//! a message (slowloris) is cut off `message_timeout` after the message's first byte, on a
//! server and on a client, while others are served; a message sent in pieces within the
//! timeout, and an idle connection with no message in progress, are not affected; whitespace
//! between messages does not keep a connection open past its idle timeout; a batch of
//! `max_batch` entries runs and one more entry is refused with one error.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::JoinHandle;
use gruvi_jsonrpc::{Config, Error, INVALID_REQUEST, MESSAGE_TIMEOUT, Methods, Server, connect};
use gruvi_stream::{Address, Stream, TcpListener, TcpStream};
use serde_json::{Value, json};
use support::{Values, run_clean};

const TIMEOUT: Duration = Duration::from_millis(300);

fn config() -> Config {
    let mut config = Config::default();
    config.message_timeout = Some(TIMEOUT);
    config.call_timeout = Some(Duration::from_secs(5));
    config
}

fn server(config: Config) -> Server {
    let mut m = Methods::new();
    m.add("add", |_, (a, b): (i64, i64)| Ok(a + b));
    let server = Server::new(m, config);
    server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
    server
}

/// A raw TCP connection to the server's first address.
fn raw(server: &Server) -> Rc<Stream<TcpStream>> {
    let Address::Tcp(host, port) = &server.addresses()[0] else {
        panic!("not TCP");
    };
    let stream = Stream::new(TcpStream::connect((host.as_str(), *port)).unwrap());
    // A safety net only: a test that waits this long fails.
    stream
        .connection()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    Rc::new(stream)
}

/// Writes `head`, then one space (inside the message) every 50 ms until `stop` is set or
/// writing fails; returns when the first byte went out, and the trickling fiber.
fn trickle(
    stream: &Rc<Stream<TcpStream>>,
    head: &[u8],
    stop: &Rc<Cell<bool>>,
) -> (Instant, JoinHandle<()>) {
    stream.write_all(head).unwrap();
    let started = Instant::now();
    let (s, stop) = (stream.clone(), stop.clone());
    let fiber = fiber_core::spawn(move || {
        while !stop.get() {
            fiber_core::sleep(Duration::from_millis(50)).unwrap();
            if stop.get() || s.write_all(b" ").is_err() {
                break;
            }
        }
    });
    (started, fiber)
}

fn add(a: i64, b: i64, id: i64) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "method": "add", "params": [a, b], "id": id})
        .to_string()
        .into_bytes()
}

#[test]
fn clients_trickling_or_stopping_inside_a_message_are_closed_after_message_timeout_while_others_are_answered()
 {
    run_clean(|| {
        let server = server(config());
        let slow = raw(&server);
        let stop = Rc::new(Cell::new(false));
        let (started, trickler) = trickle(&slow, br#"{"jsonrpc": "2.0", "method": "add","#, &stop);
        // And one that sends half a message and then nothing.
        let silent = raw(&server);
        silent.write_all(br#"{"jsonrpc": "2.0", "#).unwrap();
        let silent_started = Instant::now();
        // Another client is served meanwhile, more than once.
        let other = connect(&server.addresses()[0], Methods::new(), config()).unwrap();
        for i in 0..3 {
            assert_eq!(other.call::<i64>("add", (i, 1)).unwrap(), i + 1);
            fiber_core::sleep(Duration::from_millis(50)).unwrap();
        }
        let mut values = Values::default();
        let answer = values.next(&slow).expect("an error answer");
        let took = started.elapsed();
        assert_eq!(answer["error"]["code"], MESSAGE_TIMEOUT, "{answer}");
        assert_eq!(answer["id"], Value::Null);
        assert_eq!(values.next(&slow), None, "the connection was not closed");
        stop.set(true);
        trickler.join().unwrap();
        assert!(took >= TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        let mut values = Values::default();
        let answer = values.next(&silent).expect("an error answer");
        let took = silent_started.elapsed();
        assert_eq!(answer["error"]["code"], MESSAGE_TIMEOUT, "{answer}");
        assert_eq!(values.next(&silent), None, "the connection was not closed");
        assert!(took >= TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        // The other client was not affected.
        assert_eq!(other.call::<i64>("add", (2, 2)).unwrap(), 4);
        other.close();
        server.close().unwrap();
    });
}

#[test]
fn messages_sent_in_pieces_within_the_timeout_are_answered_each_with_its_own_clock() {
    run_clean(|| {
        let server = server(config());
        let stream = raw(&server);
        let mut values = Values::default();
        // Two messages, each in pieces over 200 ms (400 ms in all, more than the timeout):
        // the end of the first and the start of the second come in the same write, which
        // starts the second one's clock.
        let (first, second) = (add(1, 2, 1), add(3, 4, 2));
        let pieces: Vec<Vec<u8>> = {
            let cut = |m: &[u8]| {
                let q = m.len() / 4;
                vec![
                    m[..q].to_vec(),
                    m[q..2 * q].to_vec(),
                    m[2 * q..3 * q].to_vec(),
                    m[3 * q..].to_vec(),
                ]
            };
            let (mut a, b) = (cut(&first), cut(&second));
            let last = a.pop().unwrap();
            a.push([last, b[0].clone()].concat());
            a.extend_from_slice(&b[1..]);
            a
        };
        for piece in &pieces {
            stream.write_all(piece).unwrap();
            fiber_core::sleep(Duration::from_millis(65)).unwrap();
        }
        assert_eq!(values.next(&stream).unwrap()["result"], 3);
        assert_eq!(values.next(&stream).unwrap()["result"], 7);
        drop(stream);
        server.close().unwrap();
    });
}

#[test]
fn an_idle_client_with_no_message_in_progress_stays_connected_past_the_timeout() {
    run_clean(|| {
        let server = server(config());
        // A peer client, and a raw one whose message ends in a newline (whitespace between
        // messages is no message in progress).
        let client = connect(&server.addresses()[0], Methods::new(), config()).unwrap();
        assert_eq!(client.call::<i64>("add", (1, 1)).unwrap(), 2);
        let stream = raw(&server);
        let mut values = Values::default();
        stream
            .write_all(&[add(1, 2, 1), b"\r\n".to_vec()].concat())
            .unwrap();
        assert_eq!(values.next(&stream).unwrap()["result"], 3);
        fiber_core::sleep(TIMEOUT * 3).unwrap();
        assert!(client.is_open());
        assert_eq!(client.call::<i64>("add", (2, 2)).unwrap(), 4);
        stream.write_all(&add(5, 5, 2)).unwrap();
        assert_eq!(values.next(&stream).unwrap()["result"], 10);
        client.close();
        drop(stream);
        server.close().unwrap();
    });
}

/// Whitespace between messages is not activity: with an idle timeout, a client that sends a
/// newline every 50 ms after its last message is closed once the timeout passed since that
/// message, while a client sending messages at the same pace stays connected.
#[test]
fn whitespace_between_messages_does_not_keep_a_quiet_connection_open() {
    run_clean(|| {
        let mut config = config();
        config.idle_timeout = Some(TIMEOUT);
        let server = server(config);
        let (spaces, busy) = (raw(&server), raw(&server));
        let (mut space_values, mut busy_values) = (Values::default(), Values::default());
        spaces.write_all(&add(1, 2, 1)).unwrap();
        assert_eq!(space_values.next(&spaces).unwrap()["result"], 3);
        let last_message = Instant::now();
        let stop = Rc::new(Cell::new(false));
        let (s, b, stop2) = (spaces.clone(), busy.clone(), stop.clone());
        let writer = fiber_core::spawn(move || {
            let mut id = 0;
            while !stop2.get() {
                fiber_core::sleep(Duration::from_millis(50)).unwrap();
                let _ = s.write_all(b"\n");
                id += 1;
                b.write_all(&add(id, 1, id)).unwrap();
            }
            id
        });
        // The whitespace sender gets no answer, then the end of the stream.
        assert_eq!(
            space_values.next(&spaces),
            None,
            "the connection was not closed"
        );
        let took = last_message.elapsed();
        assert!(took >= TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        // The busy client was answered all along, and still is.
        fiber_core::sleep(TIMEOUT).unwrap();
        stop.set(true);
        let sent = writer.join().unwrap();
        assert!(
            Duration::from_millis(50) * sent as u32 >= TIMEOUT,
            "sent {sent}"
        );
        for id in 1..=sent {
            assert_eq!(busy_values.next(&busy).unwrap()["result"], id + 1);
        }
        drop((spaces, busy));
        server.close().unwrap();
    });
}

#[test]
fn a_server_trickling_an_answer_is_cut_off_by_the_clients_message_timeout() {
    run_clean(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Rc::new(Cell::new(false));
        let s = stop.clone();
        let evil = fiber_core::spawn(move || {
            let stream = Rc::new(Stream::new(listener.accept().unwrap().0));
            let mut values = Values::default();
            let request = values.next(&stream).unwrap();
            assert_eq!(request["method"], "add");
            let (started, trickler) = trickle(&stream, br#"{"jsonrpc": "2.0", "result": "#, &s);
            let answer = values.next(&stream).expect("an error answer");
            let took = started.elapsed();
            assert_eq!(values.next(&stream), None);
            s.set(true);
            trickler.join().unwrap();
            (answer, took)
        });
        let client = connect(
            &Address::Tcp("127.0.0.1".into(), port),
            Methods::new(),
            config(),
        )
        .unwrap();
        let err = client.call::<i64>("add", (1, 2)).unwrap_err();
        assert!(
            matches!(&err, Error::ConnectionLost(why) if why.contains("Message timeout")),
            "{err}"
        );
        let (answer, took) = evil.join().unwrap();
        assert_eq!(answer["error"]["code"], MESSAGE_TIMEOUT, "{answer}");
        assert!(took >= TIMEOUT, "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        client.close();
    });
}

#[test]
fn without_a_message_timeout_or_with_the_longest_a_trickled_message_is_waited_for() {
    for timeout in [None, Some(Duration::MAX)] {
        run_clean(|| {
            let mut config = Config::default();
            config.message_timeout = timeout;
            config.idle_timeout = timeout;
            let server = server(config);
            let stream = raw(&server);
            let message = add(2, 3, 1);
            for piece in message.chunks(message.len() / 8) {
                stream.write_all(piece).unwrap();
                fiber_core::sleep(Duration::from_millis(50)).unwrap();
            }
            let mut values = Values::default();
            assert_eq!(values.next(&stream).unwrap()["result"], 5, "{timeout:?}");
            drop(stream);
            server.close().unwrap();
        });
    }
}

#[test]
fn a_batch_of_max_batch_entries_runs_and_one_more_entry_is_refused_whole() {
    run_clean(|| {
        let mut config = Config::default();
        config.max_batch = 3;
        let server = server(config);
        let stream = raw(&server);
        let mut values = Values::default();
        let batch = |n: i64| {
            let entries: Vec<Value> = (0..n)
                .map(|i| json!({"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": i}))
                .collect();
            Value::Array(entries).to_string().into_bytes()
        };
        stream.write_all(&batch(3)).unwrap();
        let answers = values.next(&stream).unwrap();
        let mut results: Vec<i64> = answers
            .as_array()
            .expect("an array of answers")
            .iter()
            .map(|a| a["result"].as_i64().unwrap())
            .collect();
        results.sort();
        assert_eq!(results, [1, 2, 3]);
        stream.write_all(&batch(4)).unwrap();
        let refused = values.next(&stream).unwrap();
        assert_eq!(refused["error"]["code"], INVALID_REQUEST, "{refused}");
        assert_eq!(refused["id"], Value::Null);
        assert!(
            refused["error"]["data"]
                .as_str()
                .unwrap()
                .contains("4 entries to answer is over the limit of 3"),
            "{refused}"
        );
        // The connection goes on.
        stream.write_all(&add(20, 22, 9)).unwrap();
        assert_eq!(values.next(&stream).unwrap()["result"], 42);
        drop(stream);
        server.close().unwrap();
    });
}

/// A client that sends requests and never reads the answers is closed once a send of the
/// server's has waited `write_timeout` for room (it held its connection for ever), while
/// another client is answered.
#[test]
fn a_client_that_never_reads_its_answers_is_closed_after_the_write_timeout() {
    run_clean(|| {
        let mut deaf_config = config();
        deaf_config.write_timeout = Some(TIMEOUT);
        let mut m = Methods::new();
        m.add("big", |_, (): ()| Ok("x".repeat(256 * 1024)));
        m.add("add", |_, (a, b): (i64, i64)| Ok(a + b));
        let server = Server::new(m, deaf_config);
        server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let deaf = raw(&server);
        let mut requests = Vec::new();
        for id in 0..200 {
            requests.extend_from_slice(
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"big"}}"#).as_bytes(),
            );
        }
        // Before the server can begin to wait.
        let start = Instant::now();
        deaf.write_all(&requests).unwrap();
        // Another client is answered meanwhile.
        let client = connect(&server.addresses()[0], Methods::new(), config()).unwrap();
        let sum: i64 = client.call("add", (2, 3)).unwrap();
        assert_eq!(sum, 5);
        while server.connection_count() > 1 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the deaf client stays"
            );
            fiber_core::sleep(Duration::from_millis(10)).unwrap();
        }
        assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());
        client.close();
        server.close().unwrap();
    });
}

/// `max_batch` bounds the batches this side must answer, not the answers to its own batch: a
/// batch of more responses than `max_batch` reaches its calls (it was refused, and its calls
/// hung until their timeout).
#[test]
fn a_batch_of_more_responses_than_max_batch_reaches_its_calls() {
    run_clean(|| {
        // A server that answers batches of any size.
        let mut serving = Config::default();
        serving.max_batch = 100;
        let server = server(serving);
        let mut calling = config();
        calling.max_batch = 2;
        let client = connect(&server.addresses()[0], Methods::new(), calling).unwrap();
        let mut batch = client.batch();
        for i in 0..5 {
            batch.call("add", (i, 1)).unwrap();
        }
        let start = Instant::now();
        let results = batch.send().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let sums: Vec<i64> = results
            .into_iter()
            .map(|r| serde_json::from_value(r.unwrap()).unwrap())
            .collect();
        assert_eq!(sums, [1, 2, 3, 4, 5]);
        // The connection goes on.
        let sum: i64 = client.call("add", (2, 3)).unwrap();
        assert_eq!(sum, 5);
        client.close();
        server.close().unwrap();
    });
}
