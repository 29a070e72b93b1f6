//! Helpers for the sync, promise, pool and wait tests: a seeded random generator and threads
//! that each run their own Hub.
#![allow(dead_code)]

use std::panic;
use std::thread;

use fiber_core::Promise;

use crate::support::run_clean;

/// A small deterministic generator (xorshift64*): the same seed gives the same test run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `percent`% of the time.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A thread running `f` on its own Hub (closed with the leak check at the end).
pub struct HubThread<T> {
    finished: Promise<()>,
    handle: thread::JoinHandle<T>,
}

pub fn hub_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> HubThread<T> {
    struct Finished(Promise<()>);
    impl Drop for Finished {
        fn drop(&mut self) {
            self.0.set_result(());
        }
    }
    let finished = Promise::new();
    let signal = Finished(finished.clone());
    let handle = thread::spawn(move || {
        let _signal = signal;
        run_clean(f)
    });
    HubThread { finished, handle }
}

impl<T> HubThread<T> {
    /// Waits for the thread (a switchpoint: other fibers of the caller's Hub keep running) and
    /// returns its value, or resumes its panic.
    pub fn join(self) -> T {
        self.finished.wait().expect("waiting for a test thread");
        match self.handle.join() {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}
