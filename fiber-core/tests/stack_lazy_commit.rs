//! Idle fibers cost the stack pages they touched, not their stack size.
//!
//! One test in this file, so that no other test's memory shows in the RSS it measures.

use fiber_core::__private::{Coroutine, Outcome, suspend};
use fiber_core::{StackConfig, StackPool};

const FIBERS: usize = 10_000;

/// Resident set size of this process in bytes.
fn rss_bytes() -> usize {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let line = rollup
        .lines()
        .find(|line| line.starts_with("Rss:"))
        .unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Parks `FIBERS` coroutines (each started, so each touched its stack) and returns the RSS
/// they added per fiber.
fn rss_per_parked_fiber(pool: &StackPool) -> usize {
    let before = rss_bytes();
    let fibers: Vec<Coroutine> = (0..FIBERS)
        .map(|i| {
            let mut co = Coroutine::new(pool.get().unwrap(), suspend);
            assert!(matches!(co.resume(i), Outcome::Suspended(v) if v == i));
            co
        })
        .collect();
    let per_fiber = rss_bytes().saturating_sub(before) / FIBERS;
    drop(fibers);
    per_fiber
}

#[test]
fn parked_fibers_commit_only_the_pages_they_touched() {
    // A committed stack would cost 256 KiB; a parked one should cost a page or two.
    let bound = 16 * 1024;
    let guarded = rss_per_parked_fiber(&StackPool::new(StackConfig::new()));
    eprintln!("guarded: {guarded} bytes of RSS per parked fiber");
    assert!(guarded < bound, "{guarded} bytes per guarded fiber");
    let unguarded = rss_per_parked_fiber(&StackPool::new(StackConfig::unguarded()));
    eprintln!("unguarded: {unguarded} bytes of RSS per parked fiber");
    assert!(unguarded < bound, "{unguarded} bytes per unguarded fiber");
}
