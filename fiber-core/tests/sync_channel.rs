//! Channels: bounded and unbounded, rendezvous, disconnection, many producers and consumers.

mod support;
mod sync_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber_core::channel::{self, RecvError, SendError, TryRecvError, TrySendError};
use fiber_core::{Error, no_switch, spawn, yield_now};
use support::run_clean;
use sync_support::hub_thread;

#[test]
fn values_arrive_in_order_and_receivers_see_the_disconnect_after_draining() {
    run_clean(|| {
        let (tx, rx) = channel::unbounded();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
        assert_eq!(no_switch(|| rx.try_recv()), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn try_send_and_try_recv_never_switch() {
    run_clean(|| {
        let (tx, rx) = channel::bounded(1);
        no_switch(|| {
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            assert_eq!(tx.try_send(1), Ok(()));
            assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
            assert_eq!(rx.try_recv(), Ok(1));
            drop(rx);
            assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
        });
    });
}

#[test]
fn a_bounded_send_waits_for_room_and_a_rendezvous_for_the_receiver() {
    run_clean(|| {
        for capacity in [0, 2] {
            let (tx, rx) = channel::bounded(capacity);
            let sent = Arc::new(AtomicUsize::new(0));
            let s = sent.clone();
            let producer = spawn(move || {
                for i in 0..5 {
                    tx.send(i).unwrap();
                    s.fetch_add(1, Ordering::SeqCst);
                }
            });
            yield_now().unwrap();
            assert_eq!(sent.load(Ordering::SeqCst), capacity);
            assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
            producer.join().unwrap();
        }
    });
}

#[test]
fn recv_timeout_gives_up_after_at_least_the_timeout() {
    run_clean(|| {
        let (_tx, rx) = channel::bounded::<u8>(1);
        let start = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvError::Wait(Error::TimedOut))
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn dropping_the_receivers_gives_waiting_and_later_senders_their_values_back() {
    run_clean(|| {
        let (tx, rx) = channel::bounded(1);
        tx.send("queued").unwrap();
        let t = tx.clone();
        let blocked = spawn(move || t.send("blocked"));
        yield_now().unwrap();
        let second = rx.clone();
        drop(rx);
        yield_now().unwrap();
        assert!(!blocked.is_finished(), "one receiver is left");
        drop(second);
        assert_eq!(
            blocked.join().unwrap(),
            Err(SendError::Disconnected("blocked"))
        );
        assert_eq!(tx.send("late"), Err(SendError::Disconnected("late")));
        assert_eq!(
            tx.send_timeout("timed", Duration::from_secs(1))
                .unwrap_err()
                .into_inner(),
            "timed"
        );
    });
}

#[test]
fn a_waiting_receiver_is_told_when_the_last_sender_goes() {
    run_clean(|| {
        let (tx, rx) = channel::unbounded::<u8>();
        let waiter = spawn(move || rx.recv());
        yield_now().unwrap();
        drop(tx);
        assert_eq!(waiter.join().unwrap(), Err(RecvError::Disconnected));
    });
}

#[test]
fn four_producer_and_four_consumer_threads_deliver_every_value_once() {
    run_clean(|| {
        let (tx, rx) = channel::bounded(8);
        let producers: Vec<_> = (0..4u32)
            .map(|t| {
                let tx = tx.clone();
                hub_thread(move || {
                    let fibers: Vec<_> = (0..10u32)
                        .map(|f| {
                            let tx = tx.clone();
                            spawn(move || {
                                for n in 0..25u32 {
                                    tx.send((t, f, n)).unwrap();
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
        drop(tx);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                hub_thread(move || {
                    let fibers: Vec<_> = (0..5)
                        .map(|_| {
                            let rx = rx.clone();
                            spawn(move || rx.iter().collect::<Vec<_>>())
                        })
                        .collect();
                    fibers
                        .into_iter()
                        .flat_map(|f| f.join().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        drop(rx);
        for producer in producers {
            producer.join();
        }
        let got: Vec<(u32, u32, u32)> = consumers.into_iter().flat_map(|c| c.join()).collect();
        assert_eq!(got.len(), 4 * 10 * 25);
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
    });
}
