//! The Hub: callbacks from this and other threads, closing, no-switch sections, signals.

mod support;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use fiber_core::{Error, Hub, NoSwitch, SwitchBack, no_switch, sleep, spawn, yield_now};
use support::run_clean;

#[test]
fn run_callback_keeps_fifo_order_over_a_hundred_callbacks() {
    run_clean(|| {
        let hub = Hub::current();
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..100 {
            let o = order.clone();
            hub.run_callback(move || o.borrow_mut().push(i));
        }
        let sb = SwitchBack::new();
        let done = sb.callback();
        hub.run_callback(move || {
            done.call(());
        });
        sb.wait().unwrap();
        assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn run_callback_from_four_threads_keeps_per_thread_fifo() {
    run_clean(|| {
        let hub = Hub::current();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let barrier = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (remote, seen, barrier) = (hub.remote(), seen.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..250 {
                        let seen = seen.clone();
                        remote
                            .run_callback(move || seen.lock().unwrap().push((t, i)))
                            .unwrap();
                    }
                })
            })
            .collect();
        while seen.lock().unwrap().len() < 1000 {
            sleep(Duration::from_millis(1)).unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        let seen = seen.lock().unwrap();
        for t in 0..4 {
            let mine: Vec<_> = seen
                .iter()
                .filter(|(th, _)| *th == t)
                .map(|&(_, i)| i)
                .collect();
            assert_eq!(
                mine,
                (0..250).collect::<Vec<_>>(),
                "thread {t} out of order"
            );
        }
    });
}

#[test]
fn a_panicking_callback_is_reported_and_the_hub_lives_on() {
    run_clean(|| {
        let hub = Hub::current();
        hub.run_callback(|| panic!("callback boom"));
        let sb = SwitchBack::new();
        let done = sb.callback();
        hub.run_callback(move || {
            done.call(7);
        });
        assert_eq!(sb.wait(), Ok(7));
    });
}

#[test]
fn switchpoints_panic_in_a_no_switch_section_even_when_they_would_not_switch() {
    run_clean(|| {
        let _guard = NoSwitch::enter();
        assert!(NoSwitch::active());
        let yielded = catch_unwind(AssertUnwindSafe(yield_now));
        let msg = yielded.unwrap_err();
        assert!(
            msg.downcast_ref::<String>()
                .unwrap()
                .contains("no-switch section")
        );
        // sleep(0) and joining a finished fiber would not switch; they still refuse.
        assert!(catch_unwind(AssertUnwindSafe(|| sleep(Duration::ZERO))).is_err());
        let sb = SwitchBack::new();
        sb.callback().call(());
        assert!(catch_unwind(AssertUnwindSafe(|| sb.wait())).is_err());
    });
    // Callbacks run in no-switch sections too.
    run_clean(|| {
        let hub = Hub::current();
        let sb = SwitchBack::new();
        let done = sb.callback();
        hub.run_callback(move || {
            done.call(catch_unwind(AssertUnwindSafe(yield_now)).is_err());
        });
        assert_eq!(sb.wait(), Ok(true));
        assert!(no_switch(NoSwitch::active));
        assert!(!NoSwitch::active());
    });
}

#[test]
fn close_cancels_fibers_and_a_fresh_hub_follows() {
    let hub = Hub::current();
    let finished = Rc::new(RefCell::new(Vec::new()));
    let f = finished.clone();
    let sleeper = spawn(move || {
        let result = sleep(Duration::from_secs(60));
        f.borrow_mut().push(result);
        // Switchpoints after cancellation fail at once; cleanup still runs.
        f.borrow_mut().push(yield_now());
    });
    yield_now().unwrap();
    assert_eq!(hub.close(), 0);
    assert!(hub.is_closed());
    assert!(sleeper.is_finished());
    assert_eq!(
        *finished.borrow(),
        [Err(Error::Cancelled), Err(Error::Cancelled)]
    );
    let fresh = Hub::current();
    assert!(!Rc::ptr_eq(&hub, &fresh));
    assert_eq!(run_clean(|| spawn(|| 1).join().unwrap()), 1);
}

#[test]
fn close_from_a_fiber_is_refused() {
    run_clean(|| {
        let fiber = spawn(|| Hub::current().close());
        let err = fiber.join().unwrap_err();
        assert!(err.is_panic());
    });
}

#[test]
fn remote_callbacks_after_close_are_refused() {
    let hub = Hub::current();
    let remote = hub.remote();
    drop(hub);
    let hub = Hub::current();
    assert_eq!(hub.close(), 0);
    assert_eq!(remote.run_callback(|| {}), Err(Error::HubClosed));
}

#[test]
fn waiting_for_a_signal_in_a_fiber() {
    run_clean(|| {
        let waiter = spawn(|| fiber_core::wait_for_signal(&[libc::SIGUSR1, libc::SIGUSR2]));
        yield_now().unwrap();
        // SAFETY: raising a signal that a libuv handle is watching has no memory effects.
        unsafe { libc::raise(libc::SIGUSR1) };
        assert_eq!(waiter.join().unwrap(), Ok(libc::SIGUSR1));
        let timed = fiber_core::wait_for_signal_timeout(&[libc::SIGUSR2], Duration::from_millis(5));
        assert_eq!(timed, Err(Error::TimedOut));
    });
}

#[test]
fn a_thread_exiting_with_parked_fibers_unwinds_them() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static UNWOUND: AtomicUsize = AtomicUsize::new(0);
    struct Count;
    impl Drop for Count {
        fn drop(&mut self) {
            UNWOUND.fetch_add(1, Ordering::SeqCst);
        }
    }
    std::thread::spawn(|| {
        for _ in 0..3 {
            // Detached fibers parked forever; the thread then just returns.
            drop(spawn(|| {
                let _count = Count;
                let _ = sleep(Duration::from_secs(3600));
            }));
        }
        yield_now().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(
        UNWOUND.load(Ordering::SeqCst),
        3,
        "the parked fibers' destructors ran"
    );
}

#[test]
fn a_thread_exiting_with_a_live_hub_after_remote_callbacks_exits_cleanly() {
    // The Hub is closed by the thread's exit guard while thread-locals are being destroyed; the
    // remote-callback registry may already be gone then (this used to abort the process).
    std::thread::spawn(|| {
        let _hub = Hub::current();
        drop(SwitchBack::<()>::new().remote_callback());
        let parked = spawn(fiber_core::park);
        let kept = SwitchBack::<u8>::new();
        let remote = kept.remote_callback();
        yield_now().unwrap();
        // Both outlive the thread's locals: dropped during the same destruction.
        std::mem::forget(parked);
        std::thread_local! {
            static LATE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
        }
        LATE.with(|late| *late.borrow_mut() = Some(Box::new((kept, remote))));
    })
    .join()
    .unwrap();
}

/// The root and a fiber handing items back and forth never leave the ready queue empty, yet
/// the loop is still polled: a timer fires (here a sleeping fiber wakes) within a bounded
/// number of hand-overs instead of being starved for as long as the ping-pong lasts.
#[test]
fn a_ping_pong_between_the_root_and_a_fiber_does_not_starve_timers() {
    use fiber_core::Queue;
    use std::cell::Cell;
    run_clean(|| {
        let woke = Rc::new(Cell::new(false));
        let sleeper = {
            let woke = woke.clone();
            spawn(move || {
                sleep(Duration::from_millis(2)).unwrap();
                woke.set(true);
            })
        };
        let (ping, pong) = (Rc::new(Queue::new(0)), Rc::new(Queue::new(0)));
        let partner = {
            let (ping, pong) = (ping.clone(), pong.clone());
            spawn(move || {
                while let Some(n) = ping.get().unwrap() {
                    pong.put(n).unwrap();
                }
            })
        };
        // The timer is due after 2 ms; starved, it would not fire in 2 s of hand-overs.
        let start = std::time::Instant::now();
        let mut rounds = 0u64;
        while !woke.get() && start.elapsed() < Duration::from_secs(2) {
            ping.put(Some(rounds)).unwrap();
            assert_eq!(pong.get().unwrap(), rounds);
            rounds += 1;
        }
        ping.put(None).unwrap();
        partner.join().unwrap();
        assert!(
            woke.get(),
            "the sleeping fiber never woke during {rounds} hand-overs"
        );
        sleeper.join().unwrap();
    });
}
