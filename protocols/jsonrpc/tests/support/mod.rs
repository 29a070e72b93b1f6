//! Helpers shared by gruvi-stream's integration tests.
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

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}
