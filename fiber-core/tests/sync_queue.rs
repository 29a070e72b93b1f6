//! Queue, LifoQueue, PriorityQueue: order, sizes, timeouts, task accounting, producers and
//! consumers on many threads.

mod support;
mod sync_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber_core::{
    Error, LifoQueue, PriorityQueue, PutError, Queue, QueueEmpty, QueueFull, no_switch, sleep,
    spawn, yield_now,
};
use support::run_clean;
use sync_support::{Rng, hub_thread};

#[test]
fn items_of_any_type_come_out_in_fifo_order() {
    run_clean(|| {
        let queue = Queue::new(0);
        for i in 0..10 {
            queue.put(10 + i).unwrap();
        }
        assert_eq!(queue.qsize(), 10);
        assert_eq!(queue.len(), 10);
        let got: Vec<i32> = (0..10).map(|_| queue.get().unwrap()).collect();
        assert_eq!(got, (10..20).collect::<Vec<_>>());
        let strings = Queue::new(0);
        strings.put(vec!["foo".to_owned()]).unwrap();
        assert_eq!(strings.get().unwrap(), ["foo"]);
        assert!(queue.is_empty());
    });
}

#[test]
fn qsize_sums_the_item_sizes_and_an_oversize_item_enters_an_empty_queue() {
    run_clean(|| {
        let queue = Queue::with_size_fn(10, |item: &Vec<u8>| item.len());
        queue.put(vec![0; 4]).unwrap();
        queue.put(vec![0; 6]).unwrap();
        assert_eq!((queue.qsize(), queue.len()), (10, 2));
        assert!(queue.is_full());
        let full = no_switch(|| queue.try_put(vec![0; 1])).unwrap_err();
        assert_eq!(full.0.len(), 1);
        assert_eq!(queue.get().unwrap().len(), 4);
        assert_eq!(queue.get().unwrap().len(), 6);
        queue.put(vec![0; 25]).unwrap(); // bigger than maxsize: fits only an empty queue
        assert_eq!(queue.qsize(), 25);
        assert!(queue.try_put(vec![]).is_err());
        assert_eq!(queue.get().unwrap().len(), 25);
    });
}

#[test]
fn get_waits_for_a_put_from_another_fiber() {
    run_clean(|| {
        let queue = Arc::new(Queue::new(0));
        let q = queue.clone();
        let putter = spawn(move || {
            sleep(Duration::from_millis(5)).unwrap();
            q.put("foo").unwrap();
        });
        let start = Instant::now();
        assert_eq!(queue.get(), Ok("foo"));
        assert!(start.elapsed() >= Duration::from_millis(5));
        putter.join().unwrap();
    });
}

#[test]
fn get_timeout_gives_up_after_at_least_the_timeout_and_leaves_nothing_behind() {
    run_clean(|| {
        let queue: Queue<u8> = Queue::new(0);
        let start = Instant::now();
        assert_eq!(
            queue.get_timeout(Duration::from_millis(10)),
            Err(Error::TimedOut)
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(queue.waiter_counts(), (0, 0, 0));
    });
}

#[test]
fn the_nowait_calls_never_switch() {
    run_clean(|| {
        let queue = Queue::new(1);
        no_switch(|| {
            assert_eq!(queue.try_get(), Err(QueueEmpty));
            assert_eq!(queue.try_put(1), Ok(()));
            assert_eq!(queue.try_put(2), Err(QueueFull(2)));
            assert!(queue.is_full());
            assert_eq!(queue.try_get(), Ok(1));
            assert!(queue.is_empty());
        });
    });
}

#[test]
fn put_timeout_on_a_full_queue_gives_the_item_back() {
    run_clean(|| {
        let queue = Queue::new(1);
        queue.put("first").unwrap();
        let start = Instant::now();
        let err = queue
            .put_timeout("second", Duration::from_millis(10))
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(
            err,
            PutError {
                item: "second",
                error: Error::TimedOut
            }
        );
        assert_eq!(queue.waiter_counts(), (0, 0, 0));
        assert_eq!(queue.qsize(), 1);
    });
}

#[test]
fn task_done_too_often_panics_and_join_waits_for_every_task() {
    run_clean(|| {
        let queue = Arc::new(Queue::new(0));
        for i in 0..3 {
            queue.put(i).unwrap();
        }
        assert_eq!(queue.unfinished_tasks(), 3);
        let q = queue.clone();
        let worker = spawn(move || {
            while let Ok(_item) = q.get_timeout(Duration::from_millis(1)) {
                yield_now().unwrap();
                q.task_done();
            }
        });
        queue.join().unwrap();
        assert_eq!(queue.unfinished_tasks(), 0);
        worker.join().unwrap();
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| queue.task_done()))
            .unwrap_err();
        let message = err.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(
            message.contains("task_done() called too many times"),
            "{message}"
        );
    });
}

#[test]
fn two_thousand_items_through_maxsize_ten_never_exceed_ten_and_keep_their_order() {
    run_clean(|| {
        let queue = Arc::new(Queue::new(10));
        let most = Arc::new(AtomicUsize::new(0));
        let (q, m) = (queue.clone(), most.clone());
        let producer = spawn(move || {
            let mut rng = Rng::new(1);
            for i in 0..2000 {
                q.put(i).unwrap();
                m.fetch_max(q.qsize(), Ordering::SeqCst);
                if rng.chance(5) {
                    yield_now().unwrap();
                }
            }
        });
        let mut rng = Rng::new(2);
        for expected in 0..2000 {
            most.fetch_max(queue.qsize(), Ordering::SeqCst);
            assert_eq!(queue.get().unwrap(), expected);
            if rng.chance(5) {
                yield_now().unwrap();
            }
        }
        producer.join().unwrap();
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 10, "{most}");
        assert_eq!(most, 10, "the producer filled the queue at some point");
    });
}

#[test]
fn five_producer_and_five_consumer_threads_of_twenty_fibers_lose_nothing() {
    run_clean(|| {
        let queue = Arc::new(Queue::new(10));
        let producers: Vec<_> = (0..5u32)
            .map(|t| {
                let queue = queue.clone();
                hub_thread(move || {
                    let fibers: Vec<_> = (0..20u32)
                        .map(|f| {
                            let queue = queue.clone();
                            spawn(move || {
                                let mut rng = Rng::new(u64::from(t * 100 + f));
                                for n in 0..5u32 {
                                    if rng.chance(10) {
                                        sleep(Duration::from_micros(rng.below(1000))).unwrap();
                                    }
                                    queue.put((t, f, n)).unwrap();
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
        let consumers: Vec<_> = (0..5u32)
            .map(|t| {
                let queue = queue.clone();
                hub_thread(move || {
                    let fibers: Vec<_> = (0..20u32)
                        .map(|f| {
                            let queue = queue.clone();
                            spawn(move || {
                                let mut rng = Rng::new(u64::from(1000 + t * 100 + f));
                                let mut got = Vec::new();
                                for _ in 0..5 {
                                    // Some give up and retry: a timed-out get loses nothing.
                                    loop {
                                        let item = if rng.chance(30) {
                                            queue
                                                .get_timeout(Duration::from_micros(rng.below(1000)))
                                        } else {
                                            queue.get()
                                        };
                                        match item {
                                            Ok(item) => break got.push(item),
                                            Err(err) => assert_eq!(err, Error::TimedOut),
                                        }
                                    }
                                }
                                got
                            })
                        })
                        .collect();
                    fibers
                        .into_iter()
                        .flat_map(|f| f.join().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for producer in producers {
            producer.join();
        }
        let got: Vec<(u32, u32, u32)> = consumers.into_iter().flat_map(|c| c.join()).collect();
        assert_eq!(got.len(), 500);
        // Each item exactly once, and each producer fiber's items in the order it put them
        // (consumers take in FIFO order; a consumer's own list preserves that).
        let mut seen: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
        for (t, f, n) in &got {
            seen.entry((*t, *f)).or_default().push(*n);
        }
        assert_eq!(seen.len(), 100);
        for numbers in seen.values_mut() {
            numbers.sort_unstable();
            assert_eq!(*numbers, [0, 1, 2, 3, 4]);
        }
        assert_eq!(queue.waiter_counts(), (0, 0, 0));
        assert!(queue.is_empty());
    });
}

#[test]
fn an_item_handed_to_a_getter_as_it_is_cancelled_is_not_lost() {
    run_clean(|| {
        let queue = Arc::new(Queue::new(0));
        let q = queue.clone();
        let getter = spawn(move || (q.get(), yield_now()));
        yield_now().unwrap();
        assert_eq!(queue.waiter_counts(), (1, 0, 0));
        queue.put(7).unwrap(); // handed straight to the waiting getter...
        getter.cancel(); // ...which is cancelled before it runs
        assert_eq!(getter.join().unwrap(), (Ok(7), Err(Error::Cancelled)));
        assert!(queue.is_empty());
    });
}

#[test]
fn a_waiting_putter_is_admitted_when_a_get_makes_room() {
    run_clean(|| {
        let queue = Arc::new(Queue::new(2));
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let q = queue.clone();
        let putters: Vec<_> = (3..=4)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).map_err(|e| e.error))
            })
            .collect();
        yield_now().unwrap();
        assert_eq!(queue.waiter_counts(), (0, 2, 0));
        assert_eq!(queue.get().unwrap(), 1); // room for one: putter 3 goes in, in order
        assert_eq!(queue.waiter_counts(), (0, 1, 0));
        assert_eq!(queue.get().unwrap(), 2);
        for putter in putters {
            putter.join().unwrap().unwrap();
        }
        assert_eq!((queue.get().unwrap(), queue.get().unwrap()), (3, 4));
    });
}

#[test]
fn a_lifo_queue_hands_out_the_newest_item_first() {
    run_clean(|| {
        let queue = LifoQueue::new(0);
        for i in 0..10 {
            queue.put(i).unwrap();
        }
        let got: Vec<i32> = (0..10).map(|_| queue.get().unwrap()).collect();
        assert_eq!(got, (0..10).rev().collect::<Vec<_>>());
    });
}

#[test]
fn a_priority_queue_hands_out_the_lowest_item_first() {
    run_clean(|| {
        let queue = PriorityQueue::new(0);
        let mut items: Vec<(u32, String)> = (0..100).map(|i| (i, format!("item {i}"))).collect();
        Rng::new(7).shuffle(&mut items);
        for item in items {
            queue.put(item).unwrap();
        }
        let got: Vec<u32> = (0..100).map(|_| queue.get().unwrap().0).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn a_getter_whose_thread_exits_without_closing_its_hub_withdraws_and_gets_nothing() {
    run_clean(|| {
        let queue = Arc::new(Queue::new(0));
        let q = queue.clone();
        std::thread::spawn(move || {
            let getter = spawn(move || q.get());
            yield_now().unwrap();
            std::mem::forget(getter);
        })
        .join()
        .unwrap();
        // The thread's exit unwound the parked getter, which withdrew.
        assert_eq!(queue.waiter_counts(), (0, 0, 0));
        queue.put(5).unwrap();
        assert_eq!(queue.waiter_counts(), (0, 0, 0));
        assert_eq!(no_switch(|| queue.try_get()), Ok(5));
    });
}

#[test]
fn a_cross_thread_put_racing_timing_out_gets_loses_nothing_and_keeps_the_order() {
    // Each get times out after up to 1.5 ms while a plain thread puts at random moments,
    // so puts keep landing just as a getter withdraws (handed over from another thread while
    // its wait ends, or withdrawn first). Every item must arrive exactly once, in order, and no
    // waiter may be left behind.
    const ITEMS: u32 = 1000;
    run_clean(|| {
        let queue = Arc::new(Queue::new(0));
        let putter = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(7);
                for i in 0..ITEMS {
                    // Mostly right away, now and then after about a getter's timeout.
                    if rng.chance(20) {
                        std::thread::sleep(Duration::from_micros(rng.below(3000)));
                    }
                    queue.put(i).unwrap();
                }
            })
        };
        let getters: Vec<_> = (0..2u64)
            .map(|seed| {
                let queue = queue.clone();
                spawn(move || {
                    let mut rng = Rng::new(100 + seed);
                    let mut got = Vec::new();
                    let mut timeouts = 0u32;
                    loop {
                        match queue.get_timeout(Duration::from_micros(rng.below(1500))) {
                            Ok(u32::MAX) => return (got, timeouts),
                            Ok(item) => got.push(item),
                            Err(err) => {
                                assert_eq!(err, Error::TimedOut);
                                timeouts += 1;
                            }
                        }
                    }
                })
            })
            .collect();
        // Wait for the plain thread without blocking this Hub (the getters run meanwhile).
        while !putter.is_finished() {
            sleep(Duration::from_millis(1)).unwrap();
        }
        putter.join().unwrap();
        // One end marker per getter, each taken by one of them.
        queue.put(u32::MAX).unwrap();
        queue.put(u32::MAX).unwrap();
        let results: Vec<_> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        let timeouts: u32 = results.iter().map(|(_, t)| t).sum();
        assert!(timeouts > 0, "no get timed out: the race was not exercised");
        // Each getter's items are increasing (FIFO), and together they are every item once.
        let mut all = Vec::new();
        for (got, _) in results {
            assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
            all.extend(got);
        }
        all.sort_unstable();
        assert_eq!(all, (0..ITEMS).collect::<Vec<_>>());
        assert_eq!(queue.waiter_counts(), (0, 0, 0));
        assert!(queue.is_empty());
    });
}

#[test]
fn hand_overs_work_on_each_of_several_successive_hubs_of_one_thread() {
    // Each `run` closes its Hub and the next makes a fresh one (with a new identity for
    // wake-ups): a put from the root must still wake a fiber of the current Hub directly.
    std::thread::spawn(|| {
        for round in 0..3u32 {
            run_clean(|| {
                let queue = Arc::new(Queue::new(0));
                let back = Arc::new(Queue::new(0));
                let echo = {
                    let (queue, back) = (queue.clone(), back.clone());
                    spawn(move || {
                        for _ in 0..100 {
                            let item: u32 = queue.get().unwrap();
                            back.put(item + 1).unwrap();
                        }
                    })
                };
                for i in 0..100 {
                    queue.put(round * 1000 + i).unwrap();
                    assert_eq!(back.get().unwrap(), round * 1000 + i + 1);
                }
                echo.join().unwrap();
                assert_eq!(queue.waiter_counts(), (0, 0, 0));
            });
        }
    })
    .join()
    .unwrap();
}
