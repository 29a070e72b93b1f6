//! wait and as_completed over fibers, events and promises: counts, timeouts, mixed objects,
//! callbacks always removed.

mod support;
mod sync_support;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fiber_core::{
    Error, Event, Promise, Waitable, as_completed, as_completed_timeout, sleep, spawn, wait,
    wait_timeout, yield_now,
};
use support::run_clean;
use sync_support::Rng;

fn promises(n: usize) -> Vec<Promise<usize>> {
    (0..n).map(|_| Promise::new()).collect()
}

#[test]
fn wait_for_all_and_for_a_count() {
    run_clean(|| {
        let all = promises(10);
        let setters: Vec<_> = all.clone();
        let setter = spawn(move || {
            for (i, p) in setters.iter().enumerate().rev() {
                sleep(Duration::from_micros(200)).unwrap();
                p.set_result(i);
            }
        });
        let (done, pending) = wait(&all, Some(5)).unwrap();
        assert_eq!((done.len(), pending.len()), (5, 5));
        // Done in completion order (the setter goes backwards), pending in input order.
        let done_values: Vec<usize> = done.iter().map(|p| p.result().unwrap()).collect();
        assert_eq!(done_values, [9, 8, 7, 6, 5]);
        assert!(pending.iter().all(|p| !p.is_done()));
        let (done, pending) = wait(&all, None).unwrap();
        assert_eq!((done.len(), pending.len()), (10, 0));
        setter.join().unwrap();
        assert!(all.iter().all(|p| p.callback_count() == 0));
        let (done, _) = wait(&all, Some(0)).unwrap();
        assert!(done.is_empty(), "count 0 returns at once");
    });
}

#[test]
fn a_hundred_fibers_each_wait_for_two_of_a_hundred_promises() {
    run_clean(|| {
        let all = Rc::new(promises(100));
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let all = all.clone();
                spawn(move || wait(all.iter(), Some(2)).unwrap().0.len())
            })
            .collect();
        yield_now().unwrap();
        let mut order: Vec<usize> = (0..100).collect();
        Rng::new(5).shuffle(&mut order);
        for i in order {
            all[i].set_result(i);
        }
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), 2);
        }
        assert!(all.iter().all(|p| p.callback_count() == 0));
    });
}

#[test]
fn a_timeout_returns_what_is_done_so_far_and_removes_every_callback() {
    run_clean(|| {
        let events: Vec<Event> = (0..3).map(|_| Event::new()).collect();
        let start = Instant::now();
        let (done, pending) = wait_timeout(&events, None, Duration::from_millis(10)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!((done.len(), pending.len()), (0, 3));
        events[1].set();
        let (done, pending) = wait_timeout(&events, None, Duration::from_millis(5)).unwrap();
        assert_eq!((done.len(), pending.len()), (1, 2));
        assert!(events.iter().all(|e| e.callback_count() == 0));
    });
}

#[test]
fn ten_fibers_time_out_together() {
    run_clean(|| {
        let event = Arc::new(Event::new());
        let fibers: Vec<_> = (0..10)
            .map(|_| {
                let event = event.clone();
                spawn(move || {
                    let start = Instant::now();
                    let (done, _) =
                        wait_timeout([&*event], None, Duration::from_millis(10)).unwrap();
                    (done.len(), start.elapsed())
                })
            })
            .collect();
        for fiber in fibers {
            let (done, waited) = fiber.join().unwrap();
            assert_eq!(done, 0);
            assert!(waited >= Duration::from_millis(10));
        }
        assert_eq!(event.callback_count(), 0);
    });
}

#[test]
fn the_same_object_twice_counts_twice() {
    run_clean(|| {
        let event = Event::new();
        let other = Event::new();
        event.set();
        let (done, pending) = wait([&event, &event, &other], Some(2)).unwrap();
        assert_eq!((done.len(), pending.len()), (2, 1));
        assert!(std::ptr::eq(pending[0], &other));
        assert_eq!(other.callback_count(), 0);
    });
}

#[test]
fn fibers_events_and_promises_mix() {
    run_clean(|| {
        let event = Arc::new(Event::new());
        let promise: Promise<u8> = Promise::new();
        let fiber = spawn(|| sleep(Duration::from_millis(3)));
        let (e, p) = (event.clone(), promise.clone());
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            e.set();
            p.set_result(1);
        });
        let objects: [&dyn Waitable; 3] = [&*event, &promise, &fiber];
        let (done, pending) = wait(objects, None).unwrap();
        assert_eq!((done.len(), pending.len()), (3, 0));
        assert!(fiber.is_finished());
        fiber_core::blocking(move || setter.join().unwrap()).unwrap();
        assert_eq!(event.callback_count() + promise.callback_count(), 0);
    });
}

#[test]
fn cancelling_a_waiting_fiber_removes_its_callbacks() {
    run_clean(|| {
        let event = Arc::new(Event::new());
        let e = event.clone();
        let waiter = spawn(move || wait([&*e], None).map(|(done, _)| done.len()));
        yield_now().unwrap();
        assert_eq!(event.callback_count(), 1);
        waiter.cancel();
        assert_eq!(waiter.join().unwrap(), Err(Error::Cancelled));
        assert_eq!(event.callback_count(), 0);
    });
}

#[test]
fn a_count_above_the_number_of_objects_panics() {
    run_clean(|| {
        let event = Event::new();
        let err = std::panic::catch_unwind(|| wait([&event], Some(2))).unwrap_err();
        assert!(
            err.downcast_ref::<String>()
                .unwrap()
                .contains("count must be between")
        );
    });
}

#[test]
fn as_completed_yields_in_completion_order_up_to_count() {
    run_clean(|| {
        let events: Arc<Vec<Event>> = Arc::new((0..10).map(|_| Event::new()).collect());
        let mut order: Vec<usize> = (0..10).collect();
        Rng::new(11).shuffle(&mut order);
        let (e, o) = (events.clone(), order.clone());
        let setter = spawn(move || {
            for i in o {
                sleep(Duration::from_micros(300)).unwrap();
                e[i].set();
            }
        });
        let index = |event: &Event| events.iter().position(|e| std::ptr::eq(e, event)).unwrap();
        let yielded: Vec<usize> = as_completed(events.iter(), Some(6))
            .map(|event| index(event.unwrap()))
            .collect();
        assert_eq!(yielded, order[..6]);
        setter.join().unwrap();
        assert!(events.iter().all(|e| e.callback_count() == 0));
    });
}

#[test]
fn as_completed_over_many_fibers() {
    run_clean(|| {
        let fibers: Vec<_> = (0..50u64)
            .map(|i| {
                spawn(move || {
                    sleep(Duration::from_micros((50 - i) * 40)).unwrap();
                    i
                })
            })
            .collect();
        let finished: Vec<u64> = as_completed(fibers, None)
            .map(|fiber| fiber.unwrap().join().unwrap())
            .collect();
        assert_eq!(finished.len(), 50);
        let mut sorted = finished.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    });
}

#[test]
fn as_completed_times_out_and_removes_every_callback() {
    run_clean(|| {
        let events: Vec<Event> = (0..3).map(|_| Event::new()).collect();
        events[2].set();
        let start = Instant::now();
        let mut iter = as_completed_timeout(&events, None, Duration::from_millis(10));
        assert!(std::ptr::eq(iter.next().unwrap().unwrap(), &events[2]));
        assert_eq!(iter.next().unwrap().unwrap_err(), Error::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert!(iter.next().is_none());
        assert!(events.iter().all(|e| e.callback_count() == 0));
        // Dropped half-way: callbacks removed too.
        let iter = as_completed(&events, None);
        assert_eq!(events[0].callback_count(), 1);
        drop(iter);
        assert!(events.iter().all(|e| e.callback_count() == 0));
    });
}
