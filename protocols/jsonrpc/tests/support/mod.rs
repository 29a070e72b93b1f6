//! gruvi-stream's test helpers (`run_clean`, `random_bytes`), included rather than copied, and
//! a reader of JSON values off a raw stream.
#![allow(dead_code)]

#[path = "../../../stream/tests/support/mod.rs"]
mod stream_support;

pub use stream_support::*;

use gruvi_jsonrpc::Splitter;
use gruvi_stream::{Connection, Stream};
use serde_json::Value;

/// Reads JSON values from a raw stream, keeping what follows a value for the next one.
#[derive(Default)]
pub struct Values {
    pending: Vec<u8>,
    splitter: Splitter,
}

impl Values {
    /// The next value, or `None` at end of stream (which must not cut a value short).
    pub fn next<C: Connection + ?Sized>(&mut self, stream: &Stream<C>) -> Option<Value> {
        loop {
            if let Some((value, end)) = self.splitter.split(&self.pending).unwrap() {
                let parsed = serde_json::from_slice(&self.pending[value]).unwrap();
                self.pending.drain(..end);
                return Some(parsed);
            }
            if !stream.fill().unwrap() {
                assert!(
                    self.pending.iter().all(u8::is_ascii_whitespace),
                    "truncated"
                );
                return None;
            }
            let n = stream.with_buffered(|data| {
                self.pending.extend_from_slice(data);
                data.len()
            });
            stream.consume(n);
        }
    }
}
