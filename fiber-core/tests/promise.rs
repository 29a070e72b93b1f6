//! Promise (Gruvi's Future): results, errors, timeouts, cancellation, done callbacks, threads.

mod support;
mod sync_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber_core::{Error, Promise, PromiseError, Waitable, no_switch, sleep, spawn, yield_now};
use support::run_clean;
use sync_support::hub_thread;

#[test]
fn the_result_set_by_another_fiber_or_thread_reaches_the_waiter() {
    run_clean(|| {
        let promise = Promise::new();
        let p = promise.clone();
        let setter = spawn(move || {
            sleep(Duration::from_millis(2)).unwrap();
            p.set_result("fiber");
        });
        assert_eq!(promise.result().unwrap(), "fiber");
        setter.join().unwrap();

        let promise = Promise::new();
        let p = promise.clone();
        let setter = hub_thread(move || {
            sleep(Duration::from_millis(2)).unwrap();
            p.set_result("thread");
        });
        assert_eq!(promise.result().unwrap(), "thread");
        setter.join();
    });
}

#[test]
fn the_first_completion_wins() {
    run_clean(|| {
        let promise = Promise::new();
        assert!(promise.set_result(1));
        assert!(!promise.set_result(2));
        assert!(!promise.set_error("too late"));
        assert!(!promise.cancel());
        assert_eq!(promise.result().unwrap(), 1);

        let promise: Promise<u8> = Promise::new();
        assert!(promise.set_error("broken"));
        assert!(!promise.set_result(2));
        assert!(
            matches!(promise.result(), Err(PromiseError::Failed(e)) if e.to_string() == "broken")
        );
    });
}

#[test]
fn error_returns_the_failure_or_none() {
    run_clean(|| {
        let ok = Promise::new();
        ok.set_result(());
        assert!(ok.error().unwrap().is_none());
        let failed: Promise<()> = Promise::new();
        let f = failed.clone();
        let setter = spawn(move || f.set_error(std::io::Error::other("disk on fire")));
        let err = failed.error().unwrap().unwrap();
        assert_eq!(err.to_string(), "the job failed: disk on fire");
        assert!(setter.join().unwrap());
    });
}

#[test]
fn result_and_error_time_out_after_at_least_the_timeout() {
    run_clean(|| {
        let promise: Promise<u8> = Promise::new();
        let start = Instant::now();
        let err = promise
            .result_timeout(Duration::from_millis(10))
            .unwrap_err();
        assert_eq!(err.wait_error(), Some(Error::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(10));
        let start = Instant::now();
        assert_eq!(
            promise
                .error_timeout(Duration::from_millis(10))
                .unwrap_err(),
            Error::TimedOut
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(promise.waiter_count(), 0);
        assert!(!promise.is_done());
    });
}

#[test]
fn running_states_and_cancelling_when_pending_running_or_not_cancellable() {
    run_clean(|| {
        let pending: Promise<u8> = Promise::new();
        assert!(!pending.is_running());
        assert!(pending.cancel());
        assert!(pending.is_cancelled() && pending.is_done());
        assert!(pending.result().unwrap_err().is_cancelled());
        assert!(!pending.set_running(true), "a cancelled job must not start");

        let running: Promise<u8> = Promise::new();
        assert!(running.set_running(true));
        assert!(running.is_running());
        let r = running.clone();
        let waiter = spawn(move || r.result());
        yield_now().unwrap();
        assert!(running.cancel());
        assert!(waiter.join().unwrap().unwrap_err().is_cancelled());

        let fixed: Promise<u8> = Promise::new();
        assert!(fixed.set_running(false));
        assert!(!fixed.cancel());
        assert!(fixed.set_result(3));
        assert_eq!(fixed.result().unwrap(), 3);
    });
}

#[test]
fn done_callbacks_run_once_on_completion_and_can_be_removed() {
    run_clean(|| {
        let promise = Promise::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let add = |amount: usize| {
            let calls = calls.clone();
            promise.add_done_callback(Box::new(move || {
                calls.fetch_add(amount, Ordering::SeqCst);
            }))
        };
        let _one = add(1);
        let ten = add(10).unwrap();
        assert_eq!(promise.callback_count(), 2);
        assert!(promise.remove_done_callback(ten));
        assert!(!promise.remove_done_callback(ten));
        promise.set_result(5);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(promise.callback_count(), 0);
        assert!(add(100).is_none(), "already done: runs at once");
        assert_eq!(calls.load(Ordering::SeqCst), 101);
    });
}

#[test]
fn try_result_never_switches() {
    run_clean(|| {
        let promise = Promise::new();
        no_switch(|| {
            assert!(promise.try_result().is_none());
            promise.set_result(vec![1]);
            assert_eq!(promise.try_result().unwrap().unwrap(), [1]);
        });
    });
}

#[test]
fn into_result_moves_a_value_that_is_not_clone() {
    struct Token(u32);
    run_clean(|| {
        let promise = Promise::new();
        let p = promise.clone();
        spawn(move || p.set_result(Token(9)));
        assert_eq!(promise.into_result().unwrap().0, 9);
    });
}

#[test]
fn a_plain_thread_waits_for_a_promise_a_fiber_completes() {
    run_clean(|| {
        let promise = Promise::new();
        let p = promise.clone();
        let thread = std::thread::spawn(move || p.result_timeout(Duration::from_secs(30)));
        while promise.waiter_count() == 0 {
            sleep(Duration::from_millis(1)).unwrap();
        }
        promise.set_result(11);
        let got = fiber_core::blocking(move || thread.join().unwrap()).unwrap();
        assert_eq!(got.unwrap(), 11);
    });
}
