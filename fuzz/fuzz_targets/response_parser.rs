//! Feeds arbitrary bytes to the response parser (a client's: what it reads comes from the
//! server), whole and split at a point the input chooses, answering GET or HEAD as the input
//! chooses, and checks that both ways give the same events (and that nothing panics).
#![no_main]

mod common;

use gruvi_http::http::Method;
use gruvi_http::{Limits, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&control, wire)) = input.split_first() else {
        return;
    };
    // The low 7 bits: where to split; the high bit: the request was HEAD.
    let at = usize::from(control & 0x7f).min(wire.len());
    let method = if control & 0x80 != 0 {
        Method::HEAD
    } else {
        Method::GET
    };
    let make = |limits: Limits| {
        let mut parser = Parser::responses(limits);
        parser.set_request_method(method.clone());
        parser
    };
    let whole = common::run(make, &[wire]);
    let split = common::run(make, &[&wire[..at], &wire[at..]]);
    assert_eq!(whole, split);
});
