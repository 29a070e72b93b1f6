//! Event: level-triggered waits, timeouts, threads, done callbacks.

mod support;
mod sync_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber_core::{Error, Event, Waitable, no_switch, sleep, spawn, yield_now};
use support::run_clean;
use sync_support::{Rng, hub_thread};

#[test]
fn set_and_clear_toggle_the_flag_and_a_set_event_does_not_block() {
    run_clean(|| {
        let event = Event::new();
        assert!(!event.is_set());
        no_switch(|| event.set());
        assert!(event.is_set());
        event.wait().unwrap();
        event.wait().unwrap(); // level-triggered: still set
        no_switch(|| event.clear());
        assert!(!event.is_set());
        assert_eq!(
            event.wait_timeout(Duration::from_millis(1)),
            Err(Error::TimedOut)
        );
    });
}

#[test]
fn set_wakes_every_waiter() {
    run_clean(|| {
        let event = Arc::new(Event::new());
        let woken = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let (event, woken) = (event.clone(), woken.clone());
                spawn(move || {
                    event.wait().unwrap();
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        yield_now().unwrap();
        assert_eq!(event.waiter_count(), 10);
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        event.set();
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 10);
        assert_eq!(event.waiter_count(), 0);
    });
}

#[test]
fn wait_timeout_gives_up_after_at_least_the_timeout_and_leaves_nothing_behind() {
    run_clean(|| {
        let event = Event::new();
        let start = Instant::now();
        assert_eq!(
            event.wait_timeout(Duration::from_millis(10)),
            Err(Error::TimedOut)
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(event.waiter_count(), 0);
    });
}

#[test]
fn a_set_from_another_thread_wakes_a_fiber_and_a_fiber_wakes_a_plain_thread() {
    run_clean(|| {
        let event = Arc::new(Event::new());
        let e = event.clone();
        let setter = hub_thread(move || {
            sleep(Duration::from_millis(2)).unwrap();
            e.set();
        });
        event.wait().unwrap();
        setter.join();

        let back = Arc::new(Event::new());
        let b = back.clone();
        let plain = std::thread::spawn(move || b.wait_timeout(Duration::from_secs(30)));
        while back.waiter_count() == 0 {
            sleep(Duration::from_millis(1)).unwrap();
        }
        back.set();
        assert_eq!(
            fiber_core::blocking(move || plain.join().unwrap()).unwrap(),
            Ok(())
        );
    });
}

#[test]
fn threads_of_fibers_mixing_timeouts_and_sets_lose_no_wake_up() {
    run_clean(|| {
        // Twenty events, each set once by one fiber somewhere after a random pause; every other
        // fiber waits on one of them, some with short timeouts. An event stays set, so every
        // untimed wait must end: a lost wake-up would show as a 10 s timeout.
        let events: Arc<Vec<Event>> = Arc::new((0..20).map(|_| Event::new()).collect());
        let threads: Vec<_> = (0..5u64)
            .map(|t| {
                let events = events.clone();
                hub_thread(move || {
                    let fibers: Vec<_> = (0..100u64)
                        .map(|f| {
                            let events = events.clone();
                            spawn(move || {
                                let mut rng = Rng::new(t * 1000 + f);
                                let n = t * 100 + f;
                                let event = &events[(n % 20) as usize];
                                if rng.chance(20) {
                                    sleep(Duration::from_micros(rng.below(1500))).unwrap();
                                } else {
                                    yield_now().unwrap();
                                }
                                if n < 20 {
                                    event.set();
                                } else if rng.chance(30) {
                                    match event.wait_timeout(Duration::from_micros(rng.below(1500)))
                                    {
                                        Ok(()) => assert!(event.is_set()),
                                        Err(err) => assert_eq!(err, Error::TimedOut),
                                    }
                                } else {
                                    assert_eq!(event.wait_timeout(Duration::from_secs(10)), Ok(()));
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
        assert!(events.iter().all(|e| e.is_set() && e.waiter_count() == 0));
    });
}

#[test]
fn done_callbacks_run_once_on_set_and_can_be_removed() {
    run_clean(|| {
        let event = Event::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let kept = event.add_done_callback(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        let c = calls.clone();
        let removed = event
            .add_done_callback(Box::new(move || {
                c.fetch_add(100, Ordering::SeqCst);
            }))
            .unwrap();
        assert!(kept.is_some());
        assert!(event.remove_done_callback(removed));
        assert!(!event.remove_done_callback(removed));
        event.set();
        event.clear();
        event.set();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(event.callback_count(), 0);
        // Already set: runs at once, nothing registered.
        let c = calls.clone();
        assert!(
            event
                .add_done_callback(Box::new(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                }))
                .is_none()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
}
