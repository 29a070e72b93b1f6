//! Feeds arbitrary bytes to the request parser, whole and split at a point the input chooses,
//! and checks that both ways give the same events (and that nothing panics).
#![no_main]

mod common;

use gruvi_http::Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&split, wire)) = input.split_first() else {
        return;
    };
    let at = usize::from(split).min(wire.len());
    let whole = common::run(Parser::requests, &[wire]);
    let split = common::run(Parser::requests, &[&wire[..at], &wire[at..]]);
    assert_eq!(whole, split);
});
