//! Feeds arbitrary bytes to the request parser, whole (three times: the per-thread caches are
//! warm by the third) and split at a point the input chooses, and checks that every way gives
//! the same events (and that nothing panics). Each head's box goes back to the parser changed,
//! as a server's handler may change its request, and the next heads reuse it.
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
    // Twice more: the per-thread caches then hold its head whole (a head repeated whole is
    // compared, not parsed), and must say the same.
    for _ in 0..2 {
        assert_eq!(common::run(Parser::requests, &[wire]), whole);
    }
    let split = common::run(Parser::requests, &[&wire[..at], &wire[at..]]);
    assert_eq!(whole, split);
});
