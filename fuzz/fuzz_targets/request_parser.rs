//! Feeds arbitrary bytes to the request parser, whole and split at a point the input chooses,
//! and checks that both ways give the same events (and that nothing panics).
#![no_main]

use gruvi_http::{Event, Limits, Parser};
use libfuzzer_sys::fuzz_target;

/// The events of one run, body data merged, as text.
fn run(pieces: &[&[u8]]) -> Vec<String> {
    let limits = Limits {
        max_request_line: 256,
        max_headers: 16,
        max_head_size: 1024,
        max_chunk_extension: 32,
        max_trailer_size: 256,
        max_body_size: 4096,
    };
    let mut parser = Parser::requests(limits);
    let mut out = Vec::new();
    let mut data = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            match parser.parse(input, 7) {
                Err(err) => {
                    out.push(format!("data {data:?}"));
                    out.push(format!("error {err:?}"));
                    return out;
                }
                Ok((used, event)) => {
                    input = &input[used..];
                    match event {
                        Event::NeedMore => break,
                        Event::Data(d) => data.extend_from_slice(d),
                        Event::End => out.push(format!("data {:?} end", std::mem::take(&mut data))),
                        Event::Request(head) => {
                            out.push(format!("{:?} {:?}", head.request, head.framing))
                        }
                        Event::Response(_) => out.push("response".into()),
                    }
                    if input.is_empty() && !parser.in_body() {
                        break;
                    }
                }
            }
        }
    }
    match parser.finish() {
        Ok(Event::End) => out.push(format!("data {data:?} end at eof")),
        Ok(_) => out.push(format!("data {data:?}")),
        Err(err) => {
            // An error found at the end of the input is the same outcome as one found while
            // parsing: a head in pieces is re-parsed only when a line ends.
            out.push(format!("data {data:?}"));
            out.push(format!("error {err:?}"));
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, wire)) = input.split_first() else {
        return;
    };
    let at = usize::from(split).min(wire.len());
    let whole = run(&[wire]);
    let split = run(&[&wire[..at], &wire[at..]]);
    assert_eq!(whole, split);
});
