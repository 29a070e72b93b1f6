//! Feeds arbitrary bytes to the JSON-RPC splitter (our own framing of back-to-back JSON
//! values), whole and split at a point the input chooses: both ways must find the same values
//! and the same error, without a panic. Where `serde_json` reads the input as a stream of
//! arrays and objects, the splitter must find exactly the values it finds.
#![no_main]

use gruvi_jsonrpc::Splitter;
use libfuzzer_sys::fuzz_target;

/// JSON's whitespace (RFC 8259: not the form feed Rust's `is_ascii_whitespace` also takes).
fn is_json_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The values found (as bytes) and how the input ended, feeding `pieces` one after another
/// into a buffer the way a reader does (a found value and what precedes it are dropped).
fn run(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, String) {
    let mut splitter = Splitter::new(512, 8);
    let (mut pending, mut values) = (Vec::new(), Vec::new());
    for piece in pieces {
        pending.extend_from_slice(piece);
        loop {
            match splitter.split(&pending) {
                Ok(Some((value, end))) => {
                    values.push(pending[value].to_vec());
                    pending.drain(..end);
                }
                Ok(None) => break,
                Err(err) => return (values, format!("error {err:?}")),
            }
        }
    }
    let rest = if pending.iter().all(is_json_space) {
        "end".to_owned()
    } else {
        format!("incomplete {}", pending.len())
    };
    (values, rest)
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, wire)) = input.split_first() else {
        return;
    };
    let at = usize::from(control).min(wire.len());
    let whole = run(&[wire]);
    let split = run(&[&wire[..at], &wire[at..]]);
    assert_eq!(whole, split);
    // Against serde_json where it reads the whole input as values within the limits.
    let mut stream = serde_json::Deserializer::from_slice(wire).into_iter::<serde_json::Value>();
    let mut theirs = Vec::new();
    let mut start = 0;
    while let Some(Ok(value)) = stream.next() {
        let end = stream.byte_offset();
        if !(value.is_array() || value.is_object()) || end - start > 512 {
            return;
        }
        let value = &wire[start..end];
        let skip = value.iter().take_while(|b| is_json_space(b)).count();
        theirs.push(value[skip..].to_vec());
        start = end;
    }
    if !wire[start..].iter().all(is_json_space) {
        return;
    }
    // Values nested deeper than the splitter's limit are its error, not serde_json's, and so
    // is a run of whitespace longer than its size limit (whitespace counts towards it).
    if !whole.1.starts_with("error TooDeep") && !whole.1.starts_with("error TooLarge") {
        assert_eq!(whole, (theirs, "end".to_owned()));
    }
});
