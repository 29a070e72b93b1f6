//! gruvi-stream's test helpers (`run_clean`, `random_bytes`), included rather than copied.

#[path = "../../../stream/tests/support/mod.rs"]
mod stream_support;

pub use stream_support::*;
