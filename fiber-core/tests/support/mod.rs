//! Helpers shared by fiber-core's integration tests.
#![allow(dead_code)]

use fiber_core::Hub;

/// Runs `f` with a fresh Hub on this thread, then closes the Hub and asserts that no libuv
/// handle was left open.
pub fn run_clean<T>(f: impl FnOnce() -> T) -> T {
    let hub = Hub::current();
    let value = f();
    assert_eq!(hub.close(), 0, "libuv handles left open");
    value
}
