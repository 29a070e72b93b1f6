//! Lock: fairness, timeouts, cancellation during hand-over, threads and plain threads.

mod support;
mod sync_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber_core::{Error, Lock, no_switch, sleep, spawn, yield_now};
use support::run_clean;
use sync_support::{Rng, hub_thread};

#[test]
fn acquire_and_release_toggle_is_locked_and_the_guard_releases() {
    run_clean(|| {
        let lock = Lock::new();
        assert!(!lock.is_locked());
        lock.acquire().unwrap();
        assert!(lock.is_locked());
        lock.release();
        assert!(!lock.is_locked());
        {
            let _guard = lock.lock().unwrap();
            assert!(lock.is_locked());
        }
        assert!(!lock.is_locked());
    });
}

#[test]
fn releasing_a_lock_that_is_not_held_panics() {
    let lock = Lock::new();
    let err = std::panic::catch_unwind(|| lock.release()).unwrap_err();
    let message = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("lock not currently held"), "{message}");
    assert!(!lock.is_locked());
}

#[test]
fn try_acquire_never_switches() {
    run_clean(|| {
        let lock = Lock::new();
        no_switch(|| {
            assert!(lock.try_acquire());
            assert!(!lock.try_acquire());
            assert!(lock.try_lock().is_none());
            lock.release();
            assert!(lock.try_lock().is_some());
        });
        assert!(!lock.is_locked());
    });
}

#[test]
fn waiters_get_the_lock_in_fifo_order() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        let order = Rc::new(RefCell::new(Vec::new()));
        lock.acquire().unwrap();
        let fibers: Vec<_> = (0..10)
            .map(|i| {
                let (lock, order) = (lock.clone(), order.clone());
                spawn(move || {
                    lock.acquire().unwrap();
                    order.borrow_mut().push(i);
                    // Yield while holding it: the others must stay queued behind.
                    yield_now().unwrap();
                    lock.release();
                })
            })
            .collect();
        yield_now().unwrap(); // all ten queue up, in spawn order
        assert_eq!(lock.waiter_count(), 10);
        lock.release();
        for fiber in fibers {
            fiber.join().unwrap();
        }
        assert_eq!(*order.borrow(), (0..10).collect::<Vec<_>>());
        assert!(!lock.is_locked());
        assert_eq!(lock.waiter_count(), 0);
    });
}

#[test]
fn cancelling_queued_waiters_and_one_being_handed_the_lock_keeps_the_order() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        let order = Rc::new(RefCell::new(Vec::new()));
        lock.acquire().unwrap();
        let fibers: Vec<_> = (0..4)
            .map(|i| {
                let (lock, order) = (lock.clone(), order.clone());
                spawn(move || {
                    let got = lock.acquire();
                    if got.is_ok() {
                        order.borrow_mut().push(i);
                        lock.release();
                    }
                    got
                })
            })
            .collect();
        yield_now().unwrap();
        // The first waiter is cancelled while queued: it leaves the queue.
        fibers[0].cancel();
        yield_now().unwrap();
        assert_eq!(lock.waiter_count(), 3);
        // The lock is handed to the second, which is cancelled in the same turn, before it
        // runs: the hand-over wins, it owns the lock, uses it and passes it on.
        lock.release();
        fibers[1].cancel();
        let results: Vec<_> = fibers.into_iter().map(|f| f.join().unwrap()).collect();
        assert_eq!(results[0], Err(Error::Cancelled));
        assert_eq!(&results[1..], [Ok(()), Ok(()), Ok(())]);
        assert_eq!(*order.borrow(), [1, 2, 3]);
        assert!(!lock.is_locked());
        assert_eq!(lock.waiter_count(), 0);
    });
}

#[test]
fn acquire_timeout_gives_up_after_at_least_the_timeout_and_leaves_nothing_behind() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        lock.acquire().unwrap();
        let l = lock.clone();
        let waiter = spawn(move || {
            let start = Instant::now();
            let got = l.acquire_timeout(Duration::from_millis(10));
            (got, start.elapsed())
        });
        let (got, waited) = waiter.join().unwrap();
        assert_eq!(got, Err(Error::TimedOut));
        assert!(waited >= Duration::from_millis(10), "{waited:?}");
        assert_eq!(lock.waiter_count(), 0);
        // Still the root's, and still releasable once.
        assert!(lock.is_locked());
        lock.release();
        assert!(lock.try_acquire());
        lock.release();
    });
}

#[test]
fn a_lock_taken_on_one_thread_is_released_on_another() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        let l = lock.clone();
        hub_thread(move || l.acquire().unwrap()).join();
        assert!(lock.is_locked());
        let l = lock.clone();
        hub_thread(move || l.release()).join();
        assert!(!lock.is_locked());
    });
}

#[test]
fn a_fiber_waits_for_a_plain_thread_without_a_hub_and_the_other_way_round() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        let holding = Arc::new(AtomicBool::new(false));
        let (l, h) = (lock.clone(), holding.clone());
        // A plain thread (no Hub): blocks the plain way.
        let thread = std::thread::spawn(move || {
            l.acquire().unwrap();
            h.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            l.release();
            // Now it waits for the fiber side to hold the lock.
            while !l.is_locked() {
                std::thread::yield_now();
            }
            l.acquire().unwrap();
            let acquired_at = Instant::now();
            l.release();
            acquired_at
        });
        while !holding.load(Ordering::SeqCst) {
            sleep(Duration::from_millis(1)).unwrap();
        }
        lock.acquire().unwrap(); // a fiber waits for the thread
        sleep(Duration::from_millis(5)).unwrap();
        // The thread may see the lock taken late (a loaded machine), so its own clock proves
        // nothing: what counts is that it got the lock only after this release.
        let released_at = Instant::now();
        lock.release(); // hands it to the blocked thread
        let acquired_at = fiber_core::blocking(move || thread.join().unwrap()).unwrap();
        assert!(
            acquired_at >= released_at,
            "the thread got the lock before the fiber released it"
        );
        assert!(!lock.is_locked());
    });
}

/// Takes and releases `lock` `rounds` times with random pauses and random short timeouts,
/// checking that nobody else is inside; returns (acquired, timed out).
fn contend(lock: &Lock, inside: &AtomicBool, rng: &mut Rng, rounds: usize) -> (usize, usize) {
    let (mut acquired, mut timed_out) = (0, 0);
    for _ in 0..rounds {
        if rng.chance(10) {
            sleep(Duration::from_millis(1)).unwrap();
        } else {
            yield_now().unwrap();
        }
        let got = if rng.chance(30) {
            lock.acquire_timeout(Duration::from_micros(rng.below(1500)))
        } else {
            lock.acquire()
        };
        match got {
            Ok(()) => {
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                if rng.chance(50) {
                    yield_now().unwrap();
                }
                inside.store(false, Ordering::SeqCst);
                lock.release();
                acquired += 1;
            }
            Err(Error::TimedOut) => timed_out += 1,
            Err(err) => panic!("unexpected {err}"),
        }
    }
    (acquired, timed_out)
}

#[test]
fn fibers_contending_with_random_timeouts_lose_nothing() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        let inside = Arc::new(AtomicBool::new(false));
        let fibers: Vec<_> = (0..20)
            .map(|i| {
                let (lock, inside) = (lock.clone(), inside.clone());
                spawn(move || contend(&lock, &inside, &mut Rng::new(i), 20))
            })
            .collect();
        let total = fibers
            .into_iter()
            .map(|f| f.join().unwrap())
            .fold(0, |sum, (a, t)| sum + a + t);
        assert_eq!(total, 20 * 20);
        assert!(!lock.is_locked());
        assert_eq!(lock.waiter_count(), 0);
    });
}

#[test]
fn five_threads_of_a_hundred_fibers_contend_and_nothing_is_lost() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        let inside = Arc::new(AtomicBool::new(false));
        let acquired = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..5u64)
            .map(|t| {
                let (lock, inside, acquired) = (lock.clone(), inside.clone(), acquired.clone());
                hub_thread(move || {
                    let fibers: Vec<_> = (0..100u64)
                        .map(|f| {
                            let (lock, inside) = (lock.clone(), inside.clone());
                            spawn(move || contend(&lock, &inside, &mut Rng::new(t * 1000 + f), 4))
                        })
                        .collect();
                    let mut attempts = 0;
                    for fiber in fibers {
                        let (a, t) = fiber.join().unwrap();
                        acquired.fetch_add(a, Ordering::SeqCst);
                        attempts += a + t;
                    }
                    attempts
                })
            })
            .collect();
        let attempts: usize = threads.into_iter().map(|t| t.join()).sum();
        assert_eq!(attempts, 5 * 100 * 4);
        assert!(acquired.load(Ordering::SeqCst) > 0);
        assert!(!lock.is_locked());
        assert_eq!(lock.waiter_count(), 0);
    });
}

#[test]
fn a_fiber_unwound_by_its_hub_closing_leaves_the_queue() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        lock.acquire().unwrap();
        let l = lock.clone();
        // The thread's Hub closes while its fiber waits for the lock: the fiber is cancelled
        // and withdraws.
        hub_thread(move || {
            let waiter = spawn(move || l.acquire());
            yield_now().unwrap();
            drop(waiter);
        })
        .join();
        assert_eq!(lock.waiter_count(), 0);
        lock.release();
        assert!(!lock.is_locked());
    });
}

#[test]
fn a_waiter_whose_thread_exits_without_closing_its_hub_withdraws() {
    run_clean(|| {
        let lock = Arc::new(Lock::new());
        lock.acquire().unwrap();
        let l = lock.clone();
        // No `run`, no close: the thread's exit unwinds its parked fiber, which withdraws.
        std::thread::spawn(move || {
            let waiter = spawn(move || l.acquire());
            yield_now().unwrap();
            std::mem::forget(waiter);
        })
        .join()
        .unwrap();
        assert_eq!(lock.waiter_count(), 0);
        lock.release(); // nobody to hand it to
        assert_eq!(lock.waiter_count(), 0);
        assert!(lock.try_acquire());
        lock.release();
    });
}

/// Two threads (plain, or each running fibers on its Hub) take turns on many fresh locks: each
/// lock starts on the path whose release is a plain store and is switched to fenced releases by
/// its first waiter from the other thread, so the switch-over races with releases hundreds of
/// times. A lost wake-up hangs (the per-test timeout fails it); a broken exclusion loses counts.
fn fresh_locks_race(fibers_per_thread: usize) {
    /// A critical section long enough (about a microsecond) that the other side finds the lock
    /// held and queues, rather than retrying until it is free.
    fn bump(count: &mut u64) {
        let seen = *count;
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        *count = seen + 1;
    }
    const LOCKS: usize = 300;
    const ROUNDS: u64 = 20;
    // Both threads start each lock's turn together: a busy barrier (a sleeping one wakes the
    // second thread so late that the first is done before it starts).
    let start = Arc::new(AtomicUsize::new(0));
    let locks: Arc<Vec<fiber_core::Mutex<u64>>> =
        Arc::new((0..LOCKS).map(|_| fiber_core::Mutex::new(0)).collect());
    let worker = |start: Arc<AtomicUsize>, locks: Arc<Vec<fiber_core::Mutex<u64>>>| {
        move || {
            for (turn, mutex) in locks.iter().enumerate() {
                start.fetch_add(1, Ordering::SeqCst);
                while start.load(Ordering::SeqCst) < 2 * (turn + 1) {
                    std::thread::yield_now();
                }
                if fibers_per_thread == 0 {
                    for _ in 0..ROUNDS {
                        bump(&mut mutex.lock().unwrap());
                    }
                    continue;
                }
                fiber_core::run(|| {
                    let fibers: Vec<_> = (0..fibers_per_thread)
                        .map(|_| {
                            let locks = locks.clone();
                            let at = locks.iter().position(|m| std::ptr::eq(m, mutex)).unwrap();
                            spawn(move || {
                                for _ in 0..ROUNDS {
                                    bump(&mut *locks[at].lock()?);
                                }
                                fiber_core::Result::Ok(())
                            })
                        })
                        .collect();
                    for fiber in fibers {
                        fiber.join().unwrap()?;
                    }
                    fiber_core::Result::Ok(())
                })
                .unwrap();
            }
        }
    };
    let a = std::thread::spawn(worker(start.clone(), locks.clone()));
    let b = std::thread::spawn(worker(start, locks.clone()));
    a.join().unwrap();
    b.join().unwrap();
    let per_lock = 2 * ROUNDS * fibers_per_thread.max(1) as u64;
    for mutex in locks.iter() {
        assert_eq!(*mutex.try_lock().unwrap(), per_lock);
    }
}

#[test]
fn plain_threads_racing_on_fresh_locks_lose_no_wake_up_and_no_count() {
    fresh_locks_race(0);
}

#[test]
fn fibers_of_two_hubs_racing_on_fresh_locks_lose_no_wake_up_and_no_count() {
    fresh_locks_race(3);
}

/// Whether this test runs in a process of its own (nextest), so that a process-wide switch
/// reaches no other test. Under plain `cargo test` the switch is skipped.
fn own_process() -> bool {
    std::env::var_os("NEXTEST").is_some()
}

#[test]
fn with_every_release_fenced_threads_racing_on_fresh_locks_lose_nothing() {
    if own_process() {
        fiber_core::fence_every_release();
    }
    fresh_locks_race(0);
    fresh_locks_race(3);
}

#[test]
fn with_the_barrier_refused_waiters_poll_and_lose_nothing() {
    if !own_process() {
        return;
    }
    fiber_core::refuse_barrier();
    // A plain-thread holder whose release may take the plain path, and a waiter on another
    // thread that cannot run the barrier: it must still get the lock.
    let lock = Arc::new(Lock::new());
    lock.acquire().unwrap();
    lock.release();
    lock.acquire().unwrap();
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            lock.acquire().unwrap();
            lock.release();
        })
    };
    while lock.waiter_count() == 0 {
        std::thread::yield_now();
    }
    lock.release();
    waiter.join().unwrap();
    assert!(!lock.is_locked());
    assert_eq!(lock.waiter_count(), 0);
    fresh_locks_race(0);
    fresh_locks_race(3);
}
