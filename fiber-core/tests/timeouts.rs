//! Sleeps, per-call timeouts and nested timeout scopes.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{Error, SwitchBack, sleep, spawn, timeout, yield_now};
use support::run_clean;

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn ten_thousand_sleeps_wake_in_deadline_order_and_never_early() {
    run_clean(|| {
        // (deadline, woke at), both measured from `start`, in wake order.
        let woke: Rc<RefCell<Vec<(Duration, Duration)>>> = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        let mut seed = 0x2545_f491_4f6c_dd1d;
        let fibers: Vec<_> = (0..10_000)
            .map(|_| {
                let ms = xorshift(&mut seed) % 300;
                let w = woke.clone();
                fiber_core::Builder::new()
                    .stack_size(16 * 1024)
                    .spawn(move || {
                        let deadline = start.elapsed() + Duration::from_millis(ms);
                        sleep(Duration::from_millis(ms)).unwrap();
                        let at = start.elapsed();
                        assert!(at >= deadline, "a {ms} ms sleep woke early");
                        w.borrow_mut().push((deadline, at));
                    })
                    .unwrap()
            })
            .collect();
        for f in fibers {
            f.join().unwrap();
        }
        let woke = woke.borrow();
        assert_eq!(woke.len(), 10_000);
        // Wake order follows deadline order. The deadline is taken just before each sleep
        // arms its timer, so when the OS preempts the thread between the two, the timer's own
        // deadline moves later than the recorded one: allow generously for that (the machine
        // may be loaded), while still catching gross misordering.
        let slack = Duration::from_millis(50);
        for pair in woke.windows(2) {
            assert!(
                pair[0].0 <= pair[1].0 + slack,
                "deadline {:?} woke before deadline {:?}",
                pair[1].0,
                pair[0].0
            );
        }
    });
}

#[test]
fn sleep_lasts_at_least_its_duration() {
    run_clean(|| {
        for ms in [1, 10, 100] {
            let start = Instant::now();
            sleep(Duration::from_millis(ms)).unwrap();
            assert!(start.elapsed() >= Duration::from_millis(ms));
        }
    });
}

#[test]
fn switch_back_wait_timeout_times_out_and_later_calls_are_ignored() {
    run_clean(|| {
        let sb = SwitchBack::<u32>::new();
        let cb = sb.callback();
        let start = Instant::now();
        assert_eq!(
            sb.wait_timeout(Duration::from_millis(10)),
            Err(Error::TimedOut)
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert!(!cb.is_active());
        assert!(!cb.call(1), "a call after the wait is ignored");
    });
}

#[test]
fn nested_scopes_each_report_their_own_expiry() {
    run_clean(|| {
        // The inner scope expires; the outer one does not.
        let outer = timeout(Duration::from_secs(60), || {
            let inner = timeout(Duration::from_millis(5), || sleep(Duration::from_secs(60)));
            assert_eq!(inner, Err(Error::TimedOut));
            sleep(Duration::from_millis(1))
        });
        assert_eq!(outer, Ok(Ok(())));

        // The outer scope expires inside the inner one: the inner returns the failed
        // switchpoint's error as its value, the outer reports the expiry.
        let outer = timeout(Duration::from_millis(5), || {
            timeout(Duration::from_secs(60), || sleep(Duration::from_secs(60)))
        });
        assert_eq!(outer, Err(Error::TimedOut));

        // Once expired, every switchpoint in the scope fails at once.
        let start = Instant::now();
        let log = timeout(Duration::from_millis(5), || {
            let first = sleep(Duration::from_secs(60));
            let second = yield_now().and_then(|()| sleep(Duration::from_secs(60)));
            (first, second)
        });
        assert_eq!(log, Err(Error::TimedOut));
        assert!(start.elapsed() < Duration::from_secs(30));
    });
}

#[test]
fn a_scope_that_finishes_in_time_returns_its_value() {
    run_clean(|| {
        let got = timeout(Duration::from_secs(60), || {
            let child = spawn(|| 3);
            child.join().unwrap()
        });
        assert_eq!(got, Ok(3));
    });
}

#[test]
fn join_timeout_gives_up_and_the_handle_stays_usable() {
    run_clean(|| {
        let slow = spawn(|| sleep(Duration::from_millis(30)).map(|()| "done"));
        let err = slow.join_timeout(Duration::from_millis(1)).unwrap_err();
        assert_eq!(err.wait_error(), Some(Error::TimedOut));
        assert_eq!(slow.join().unwrap(), Ok("done"));
    });
}

/// Waits too long for the clock (`Duration::MAX`, `u64::MAX` ms) neither panic on overflow
/// nor wrap around to a timer that fires at once: they wait until woken, cancelled or
/// timed out by a shorter scope.
#[test]
fn huge_durations_wait_as_forever_without_overflow() {
    run_clean(|| {
        for huge in [Duration::MAX, Duration::from_millis(u64::MAX)] {
            // Ended by an enclosing scope.
            let start = Instant::now();
            let slept = timeout(Duration::from_millis(20), || sleep(huge));
            assert_eq!(slept, Err(Error::TimedOut));
            assert!(start.elapsed() >= Duration::from_millis(20));
            let parked = timeout(Duration::from_millis(20), || fiber_core::park_timeout(huge));
            assert_eq!(parked, Err(Error::TimedOut));
            // A scope of that length does not fire.
            assert_eq!(timeout(huge, || yield_now().map(|()| 5)), Ok(Ok(5)));
            // Alone (its own timer armed with the huge wait), ended by cancellation only.
            let sleeper = spawn(move || sleep(huge));
            sleep(Duration::from_millis(20)).unwrap();
            assert!(!sleeper.is_finished(), "a {huge:?} sleep ended early");
            sleeper.cancel();
            assert_eq!(sleeper.join().unwrap(), Err(Error::Cancelled));
            // join_timeout too.
            let quick = spawn(|| 7);
            assert_eq!(quick.join_timeout(huge).unwrap(), 7);
        }
    });
}
