//! Helpers shared by the uv-sys-wrap integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use uv_sys_wrap::{Loop, RunMode};

/// Runs the loop one iteration at a time until `done()` holds; panics after `limit` (a test
/// that would otherwise hang fails instead).
pub fn run_until(lp: &Loop, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        lp.run(RunMode::NoWait);
        if !done() {
            // Block for I/O, but never past a short guard timer, so the deadline is checked.
            let guard = uv_sys_wrap::Timer::new(lp).unwrap();
            guard.start(20, 0, |_| {}).unwrap();
            lp.run(RunMode::Once);
            drop(guard);
        }
    }
}

/// Asserts the test left no handle or request behind, then closes the loop.
pub fn close_clean(lp: Loop) {
    let mut open = Vec::new();
    lp.walk(|info| {
        if !info.closing {
            open.push(info.kind)
        }
    });
    assert!(open.is_empty(), "handles left open: {open:?}");
    assert_eq!(lp.live_requests(), 0, "requests still pending");
    assert_eq!(lp.close().expect("uv_loop_close"), 0);
}

/// Ten seconds: the limit for any single wait in a test.
pub const LIMIT: Duration = Duration::from_secs(10);
