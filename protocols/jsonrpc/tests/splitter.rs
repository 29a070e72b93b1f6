//! The splitter against serde_json on generated input: random JSON documents (strings with
//! escapes and brackets, nesting, numbers) written back to back with random whitespace, fed
//! in random chunks, must come out as exactly the values serde_json reads from the whole.

use gruvi_jsonrpc::Splitter;
use serde_json::{Map, Value, json};

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn string(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a", "{", "}", "[", "]", "\"", "\\", "\\\"", "é", "\n", " ", ",", ":",
    ];
    (0..rng.below(8))
        .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
        .collect()
}

fn value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 5 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.below(1000) as i64 - 500),
        2 => Value::String(string(rng)),
        3 => json!(rng.below(2) == 0),
        4 | 5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                map.insert(string(rng), value(rng, depth + 1));
            }
            Value::Object(map)
        }
    }
}

/// A top-level message: an object or an array.
fn document(rng: &mut Rng) -> Value {
    match value(rng, 0) {
        v @ (Value::Object(_) | Value::Array(_)) => v,
        other => json!({"v": other}),
    }
}

fn whitespace(rng: &mut Rng) -> &'static str {
    [" ", "", "\n", "\r\n\t ", ""][rng.below(5) as usize]
}

#[test]
fn random_documents_in_random_chunks_split_as_serde_json_reads_them() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _round in 0..200 {
        let docs: Vec<Value> = (0..rng.below(10) + 1).map(|_| document(&mut rng)).collect();
        let mut input = Vec::new();
        for doc in &docs {
            input.extend_from_slice(whitespace(&mut rng).as_bytes());
            let text = if rng.below(2) == 0 {
                serde_json::to_vec(doc).unwrap()
            } else {
                serde_json::to_vec_pretty(doc).unwrap()
            };
            input.extend_from_slice(&text);
        }
        input.extend_from_slice(whitespace(&mut rng).as_bytes());
        // serde_json's own reading of the whole input.
        let expected: Vec<Value> = serde_json::Deserializer::from_slice(&input)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(expected, docs);
        // The splitter, fed in random chunks as a reader would.
        let mut splitter = Splitter::new(1 << 20, 64);
        let (mut pending, mut got) = (Vec::new(), Vec::new());
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = (rng.below(40) as usize + 1).min(rest.len());
            pending.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some((range, end)) = splitter.split(&pending).unwrap() {
                got.push(serde_json::from_slice::<Value>(&pending[range]).unwrap());
                pending.drain(..end);
            }
        }
        assert!(pending.iter().all(u8::is_ascii_whitespace));
        assert_eq!(got, docs);
    }
}
