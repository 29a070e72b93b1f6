//! Mutex<T>: a guard over data, fair, across fibers, threads and plain threads.

mod support;
mod sync_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber_core::{Error, Mutex, no_switch, spawn, yield_now};
use support::run_clean;
use sync_support::hub_thread;

#[test]
fn the_guard_gives_access_and_releases_when_dropped() {
    run_clean(|| {
        let mutex = Mutex::new(vec![1]);
        mutex.lock().unwrap().push(2);
        assert!(!mutex.is_locked());
        let guard = mutex.lock().unwrap();
        assert!(mutex.is_locked());
        assert!(no_switch(|| mutex.try_lock().is_none()));
        drop(guard);
        assert_eq!(*no_switch(|| mutex.try_lock()).unwrap(), [1, 2]);
        let mut mutex = mutex;
        mutex.get_mut().push(3);
        assert_eq!(mutex.into_inner(), [1, 2, 3]);
    });
}

#[test]
fn lock_timeout_gives_up_after_at_least_the_timeout() {
    run_clean(|| {
        let mutex = Arc::new(Mutex::new(0));
        let guard = mutex.lock().unwrap();
        let m = mutex.clone();
        let waiter = spawn(move || {
            let start = Instant::now();
            let got = m.lock_timeout(Duration::from_millis(10)).map(|_| ());
            (got, start.elapsed())
        });
        let (got, waited) = waiter.join().unwrap();
        assert_eq!(got, Err(Error::TimedOut));
        assert!(waited >= Duration::from_millis(10));
        drop(guard);
    });
}

#[test]
fn increments_from_fibers_on_several_threads_all_land() {
    run_clean(|| {
        let counter = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                hub_thread(move || {
                    let fibers: Vec<_> = (0..25)
                        .map(|_| {
                            let counter = counter.clone();
                            spawn(move || {
                                for _ in 0..10 {
                                    let mut value = counter.lock().unwrap();
                                    let read = *value;
                                    yield_now().unwrap(); // others queue while we hold it
                                    *value = read + 1;
                                }
                            })
                        })
                        .collect();
                    for fiber in fibers {
                        fiber.join().unwrap();
                    }
                })
            })
            .collect();
        // A plain thread without a Hub takes part too.
        let c = counter.clone();
        let plain = std::thread::spawn(move || {
            for _ in 0..100 {
                *c.lock().unwrap() += 1;
            }
        });
        for thread in threads {
            thread.join();
        }
        fiber_core::blocking(move || plain.join().unwrap()).unwrap();
        assert_eq!(*counter.lock().unwrap(), 4 * 25 * 10 + 100);
    });
}
