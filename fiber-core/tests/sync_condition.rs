//! Condition: notify order, predicates at notify time, timeouts, cancellation, threads.

mod support;
mod sync_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber_core::{Condition, Error, Lock, sleep, spawn, yield_now};
use support::run_clean;
use sync_support::{Rng, hub_thread};

/// Spawns `n` fibers that each wait on `cond` (with `predicate(i)` if given) and log `i` when
/// woken; returns once they all wait.
fn waiters(
    cond: &Arc<Condition>,
    n: usize,
    predicate: impl Fn(usize) -> Option<Box<dyn Fn() -> bool + Send>>,
) -> (Rc<RefCell<Vec<usize>>>, Vec<fiber_core::JoinHandle<()>>) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let fibers = (0..n)
        .map(|i| {
            let (cond, log) = (cond.clone(), log.clone());
            let predicate = predicate(i);
            spawn(move || {
                cond.acquire().unwrap();
                match predicate {
                    Some(p) => cond.wait_for(p).unwrap(),
                    None => cond.wait().unwrap(),
                }
                log.borrow_mut().push(i);
                cond.release();
            })
        })
        .collect();
    yield_now().unwrap();
    assert_eq!(cond.waiter_count(), n);
    (log, fibers)
}

fn notify(cond: &Condition, n: usize) {
    cond.acquire().unwrap();
    cond.notify(n);
    cond.release();
    // Let the woken ones run and log.
    for _ in 0..3 {
        yield_now().unwrap();
    }
}

#[test]
fn notify_wakes_waiters_in_fifo_order_one_n_or_all_at_a_time() {
    run_clean(|| {
        let cond = Arc::new(Condition::new());
        let (log, fibers) = waiters(&cond, 10, |_| None);
        notify(&cond, 1);
        assert_eq!(*log.borrow(), [0]);
        notify(&cond, 3);
        assert_eq!(*log.borrow(), [0, 1, 2, 3]);
        cond.acquire().unwrap();
        cond.notify_all();
        cond.release();
        for fiber in fibers {
            fiber.join().unwrap();
        }
        assert_eq!(*log.borrow(), (0..10).collect::<Vec<_>>());
        assert_eq!(cond.waiter_count(), 0);
    });
}

#[test]
fn wait_for_predicates_are_evaluated_at_notify_time() {
    run_clean(|| {
        let cond = Arc::new(Condition::new());
        let open = Arc::new(AtomicBool::new(false));
        // Fiber 1 waits for `open`; the others for nothing.
        let o = open.clone();
        let (log, fibers) = waiters(&cond, 10, move |i| {
            let o = o.clone();
            Some(Box::new(move || i != 1 || o.load(Ordering::SeqCst)))
        });
        // Three notifications: fiber 1 is skipped and does not count.
        notify(&cond, 3);
        assert_eq!(*log.borrow(), [0, 2, 3]);
        open.store(true, Ordering::SeqCst);
        cond.acquire().unwrap();
        cond.notify_all();
        cond.release();
        for fiber in fibers {
            fiber.join().unwrap();
        }
        assert_eq!(*log.borrow(), [0, 2, 3, 1, 4, 5, 6, 7, 8, 9]);
    });
}

#[test]
fn wait_or_notify_without_the_lock_panics_and_leaves_nothing_behind() {
    run_clean(|| {
        let cond = Arc::new(Condition::new());
        for (what, result) in [
            ("wait", std::panic::catch_unwind(|| cond.wait().map(|_| ()))),
            (
                "notify",
                std::panic::catch_unwind(|| {
                    cond.notify(1);
                    Ok(())
                }),
            ),
        ] {
            let err = result.expect_err(what);
            let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(message.contains("lock is not locked"), "{what}: {message}");
        }
        // Held, but by another fiber: its RLock cannot be released by this one.
        cond.acquire().unwrap();
        let c = cond.clone();
        let other = spawn(move || std::panic::catch_unwind(|| c.wait().map(|_| ())).is_err());
        assert!(other.join().unwrap());
        assert_eq!(cond.waiter_count(), 0);
        cond.release();
    });
}

#[test]
fn wait_timeouts_give_up_after_at_least_the_timeout_holding_the_lock_again() {
    run_clean(|| {
        let cond = Condition::with_lock(Arc::new(Lock::new()));
        cond.acquire().unwrap();
        let start = Instant::now();
        assert_eq!(
            cond.wait_timeout(Duration::from_millis(10)),
            Err(Error::TimedOut)
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        let start = Instant::now();
        assert_eq!(
            cond.wait_for_timeout(|| true, Duration::from_millis(10)),
            Err(Error::TimedOut)
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(cond.waiter_count(), 0);
        assert!(!cond.try_acquire(), "still held by the root");
        cond.release();
    });
}

#[test]
fn a_cancelled_waiter_returns_holding_the_lock_once_it_is_free() {
    run_clean(|| {
        let cond = Arc::new(Condition::new());
        let c = cond.clone();
        let waiter = spawn(move || {
            c.acquire().unwrap();
            let waited = c.wait();
            // Held again, even though cancelled: releasing it is right.
            let held = c.try_acquire();
            c.release();
            if held {
                c.release();
            }
            (waited, held, yield_now())
        });
        yield_now().unwrap();
        cond.acquire().unwrap(); // the waiter must wait for this to be released
        waiter.cancel();
        yield_now().unwrap();
        cond.release();
        let (waited, held, later) = waiter.join().unwrap();
        assert_eq!(waited, Err(Error::Cancelled));
        assert!(held, "an RLock the waiter owns is reentrant");
        assert_eq!(
            later,
            Err(Error::Cancelled),
            "the cancellation still applies"
        );
        assert_eq!(cond.waiter_count(), 0);
        assert!(cond.try_acquire());
        cond.release();
    });
}

#[test]
fn two_conditions_share_a_lock_across_threads_as_a_bounded_buffer() {
    run_clean(|| {
        const CAP: usize = 3;
        const ITEMS: usize = 200;
        let lock = Arc::new(Lock::new());
        let not_full = Arc::new(Condition::with_lock(lock.clone()));
        let not_empty = Arc::new(Condition::with_lock(lock.clone()));
        let len = Arc::new(AtomicUsize::new(0));
        let (nf, ne, l) = (not_full.clone(), not_empty.clone(), len.clone());
        let producer = hub_thread(move || {
            for _ in 0..ITEMS {
                nf.acquire().unwrap();
                while l.load(Ordering::SeqCst) == CAP {
                    nf.wait().unwrap();
                }
                l.fetch_add(1, Ordering::SeqCst);
                ne.notify(1);
                nf.release();
            }
        });
        for _ in 0..ITEMS {
            not_empty.acquire().unwrap();
            while len.load(Ordering::SeqCst) == 0 {
                not_empty.wait().unwrap();
            }
            assert!(len.fetch_sub(1, Ordering::SeqCst) <= CAP);
            not_full.notify(1);
            not_empty.release();
        }
        producer.join();
        assert_eq!(len.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn five_threads_of_a_hundred_fibers_wait_and_notify_with_random_timeouts() {
    run_clean(|| {
        let cond = Arc::new(Condition::new());
        let tickets = Arc::new(AtomicUsize::new(0));
        let consumed = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..5u64)
            .map(|t| {
                let (cond, tickets, consumed) = (cond.clone(), tickets.clone(), consumed.clone());
                hub_thread(move || {
                    let fibers: Vec<_> = (0..100u64)
                        .map(|f| {
                            let (cond, tickets, consumed) =
                                (cond.clone(), tickets.clone(), consumed.clone());
                            spawn(move || {
                                let mut rng = Rng::new(t * 1000 + f);
                                cond.acquire().unwrap();
                                if f % 2 == 0 {
                                    // Producer: one ticket, one notification.
                                    tickets.fetch_add(1, Ordering::SeqCst);
                                    cond.notify(1);
                                } else {
                                    // Consumer: takes a ticket, waiting (maybe with timeouts).
                                    while tickets.load(Ordering::SeqCst) == 0 {
                                        if rng.chance(30) {
                                            let _ = cond.wait_timeout(Duration::from_micros(
                                                rng.below(2000),
                                            ));
                                        } else {
                                            cond.wait().unwrap();
                                        }
                                    }
                                    tickets.fetch_sub(1, Ordering::SeqCst);
                                    consumed.fetch_add(1, Ordering::SeqCst);
                                }
                                cond.release();
                                if rng.chance(10) {
                                    sleep(Duration::from_micros(300)).unwrap();
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
        assert_eq!(consumed.load(Ordering::SeqCst), 250);
        assert_eq!(tickets.load(Ordering::SeqCst), 0);
        assert_eq!(cond.waiter_count(), 0);
    });
}

#[test]
fn a_panicking_predicate_still_lets_the_waiters_notified_before_it_wake() {
    run_clean(|| {
        let cond = Arc::new(Condition::new());
        let fibers: Vec<_> = (0..3)
            .map(|i| {
                let cond = cond.clone();
                spawn(move || {
                    cond.acquire().unwrap();
                    let waited = if i == 1 {
                        cond.wait_for(|| -> bool { panic!("bad predicate") })
                    } else {
                        cond.wait()
                    };
                    cond.release();
                    waited
                })
            })
            .collect();
        yield_now().unwrap();
        cond.acquire().unwrap();
        let notified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cond.notify_all()));
        assert!(notified.is_err());
        cond.release();
        yield_now().unwrap();
        assert!(fibers[0].is_finished(), "served before the panic: woken");
        assert_eq!(cond.waiter_count(), 2);
        for fiber in &fibers[1..] {
            fiber.cancel();
        }
        let results: Vec<_> = fibers.into_iter().map(|f| f.join().unwrap()).collect();
        assert_eq!(
            results,
            [Ok(()), Err(Error::Cancelled), Err(Error::Cancelled)]
        );
        assert_eq!(cond.waiter_count(), 0);
        assert!(cond.try_acquire(), "nobody holds the lock");
        cond.release();
    });
}
