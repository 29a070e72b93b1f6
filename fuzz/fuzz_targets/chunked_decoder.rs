//! Decodes arbitrary bytes as a chunked body, whole and one byte at a time: same data, same
//! outcome, and no panic.
#![no_main]

use gruvi_http::{BodyDecoder, Framing, Limits};
use libfuzzer_sys::fuzz_target;

fn decode(wire: &[u8], step: usize) -> (Vec<u8>, Result<bool, gruvi_http::Error>) {
    let limits = Limits {
        max_chunk_extension: 64,
        max_trailer_size: 256,
        max_body_size: 1 << 16,
        ..Limits::default()
    };
    let mut decoder = BodyDecoder::new(Framing::Chunked, &limits);
    let mut body = Vec::new();
    for piece in wire.chunks(step.max(1)) {
        let mut input = piece;
        while !input.is_empty() && !decoder.is_done() {
            match decoder.decode(input, 5) {
                Ok(step) => {
                    if let Some((start, end)) = step.data {
                        body.extend_from_slice(&input[start..end]);
                    }
                    input = &input[step.consumed..];
                }
                Err(err) => return (body, Err(err)),
            }
        }
    }
    (body, Ok(decoder.is_done()))
}

fuzz_target!(|wire: &[u8]| {
    let whole = decode(wire, wire.len());
    let bytewise = decode(wire, 1);
    assert_eq!(whole, bytewise);
});
