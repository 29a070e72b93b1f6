//! RLock: recursion, ownership across fibers and threads, timeouts.

mod support;
mod sync_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fiber_core::{Error, RLock, no_switch, sleep, spawn, yield_now};
use support::run_clean;
use sync_support::{Rng, hub_thread};

#[test]
fn the_owner_acquires_five_times_and_it_is_free_after_five_releases() {
    run_clean(|| {
        let lock = RLock::new();
        for depth in 1..=5 {
            lock.acquire().unwrap();
            assert_eq!(lock.count(), depth);
            assert!(lock.is_owned());
        }
        for depth in (0..5).rev() {
            lock.release();
            assert_eq!(lock.count(), depth);
        }
        assert!(!lock.is_locked());
        assert!(!lock.is_owned());
    });
}

#[test]
fn releasing_an_unheld_rlock_or_someone_elses_panics() {
    run_clean(|| {
        let lock = Arc::new(RLock::new());
        let err = std::panic::catch_unwind(|| lock.release()).unwrap_err();
        assert!(
            err.downcast_ref::<&str>()
                .unwrap()
                .contains("lock not currently held")
        );
        lock.acquire().unwrap();
        let l = lock.clone();
        let other = spawn(move || std::panic::catch_unwind(|| l.release()).is_err());
        assert!(other.join().unwrap(), "another fiber released it");
        // The same fiber id on another thread is another owner too.
        let l = lock.clone();
        let thread = hub_thread(move || std::panic::catch_unwind(|| l.release()).is_err());
        assert!(thread.join());
        assert_eq!(lock.count(), 1);
        lock.release();
    });
}

#[test]
fn another_fiber_times_out_or_fails_to_try_while_the_owner_holds_it() {
    run_clean(|| {
        let lock = Arc::new(RLock::new());
        let _outer = lock.lock().unwrap();
        let _inner = lock.lock().unwrap();
        let l = lock.clone();
        let other = spawn(move || {
            let tried = no_switch(|| l.try_acquire());
            let start = Instant::now();
            let timed = l.acquire_timeout(Duration::from_millis(10));
            (tried, timed, start.elapsed())
        });
        let (tried, timed, waited) = other.join().unwrap();
        assert!(!tried);
        assert_eq!(timed, Err(Error::TimedOut));
        assert!(waited >= Duration::from_millis(10));
        // The owner's own try succeeds without switching.
        assert!(no_switch(|| lock.try_acquire()));
        lock.release();
        assert_eq!(lock.count(), 2);
    });
}

#[test]
fn fibers_on_several_threads_take_it_recursively_one_at_a_time() {
    run_clean(|| {
        let lock = Arc::new(RLock::new());
        let inside = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let (lock, inside) = (lock.clone(), inside.clone());
                hub_thread(move || {
                    let fibers: Vec<_> = (0..20u64)
                        .map(|f| {
                            let (lock, inside) = (lock.clone(), inside.clone());
                            spawn(move || {
                                let mut rng = Rng::new(t * 100 + f);
                                for _ in 0..5 {
                                    let outer = lock.lock().unwrap();
                                    assert!(!inside.swap(true, Ordering::SeqCst));
                                    if rng.chance(20) {
                                        sleep(Duration::from_micros(200)).unwrap();
                                    }
                                    let inner = lock.lock().unwrap();
                                    assert_eq!(lock.count(), 2);
                                    yield_now().unwrap();
                                    drop(inner);
                                    assert_eq!(lock.count(), 1);
                                    inside.store(false, Ordering::SeqCst);
                                    drop(outer);
                                    yield_now().unwrap();
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
        for thread in threads {
            thread.join();
        }
        assert!(!lock.is_locked());
    });
}
