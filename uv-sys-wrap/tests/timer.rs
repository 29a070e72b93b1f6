//! Timers: deadline order, repeat, restart from the callback, stop.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use support::close_clean;
use uv_sys_wrap::{Error, Handle, Loop, RunMode, Timer};

/// A small deterministic generator (xorshift), so the test needs no crate and always runs the
/// same deadlines.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The resolution of the clock libuv's loop time is read from.
fn coarse_clock_resolution() -> Duration {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `res` is a valid out pointer.
    let ret = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
    assert_eq!(ret, 0);
    Duration::new(res.tv_sec as u64, res.tv_nsec as u32)
}

#[test]
fn thousand_random_deadlines_fire_in_deadline_order_and_never_early() {
    let lp = Loop::new().unwrap();
    let fired: Rc<RefCell<Vec<(u64, Duration)>>> = Rc::new(RefCell::new(Vec::new()));
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    // Timeouts count from the loop's cached time: refresh it, then take our own reference,
    // which is not earlier than the loop's.
    lp.update_time();
    let began = Instant::now();
    let mut timers = Vec::new();
    for _ in 0..1000 {
        let timeout = xorshift(&mut seed) % 200;
        let t = Timer::new(&lp).unwrap();
        let f = fired.clone();
        t.start(timeout, 0, move |_| {
            f.borrow_mut().push((timeout, began.elapsed()))
        })
        .unwrap();
        timers.push(t);
    }
    lp.run(RunMode::Default);
    let fired = fired.borrow();
    assert_eq!(fired.len(), 1000);
    let order: Vec<u64> = fired.iter().map(|&(t, _)| t).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "timers fired out of deadline order");
    // libuv's loop time comes from CLOCK_MONOTONIC_COARSE in whole milliseconds, so a timer
    // may fire up to that clock's resolution (plus a millisecond) before our precise clock says.
    let slack = coarse_clock_resolution() + Duration::from_millis(1);
    for &(timeout, at) in fired.iter() {
        assert!(
            at + slack >= Duration::from_millis(timeout),
            "{timeout} ms timer fired at {at:?} (slack {slack:?})"
        );
    }
    drop(timers);
    close_clean(lp);
}

#[test]
fn repeating_timer_stops_itself_and_restarts_from_its_own_callback() {
    let lp = Loop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let timer = Timer::new(&lp).unwrap();
    let l = log.clone();
    timer
        .start(1, 1, move |t| {
            l.borrow_mut().push("tick");
            if l.borrow().len() == 3 {
                let l2 = l.clone();
                // Replace the running callback: the old one must finish safely.
                t.start(1, 0, move |_| l2.borrow_mut().push("restarted"))
                    .unwrap();
            }
        })
        .unwrap();
    assert_eq!(timer.repeat(), 1);
    assert!(timer.is_active());
    lp.run(RunMode::Default);
    assert_eq!(*log.borrow(), ["tick", "tick", "tick", "restarted"]);
    assert!(!timer.is_active());
    drop(timer);
    close_clean(lp);
}

#[test]
fn again_needs_a_started_timer_and_restarts_a_repeating_one() {
    let lp = Loop::new().unwrap();
    let timer = Timer::new(&lp).unwrap();
    assert_eq!(timer.again(), Err(Error::EINVAL));
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    timer
        .start(1000, 1, move |t| {
            c.set(c.get() + 1);
            if c.get() == 2 {
                t.stop().unwrap();
            }
        })
        .unwrap();
    // again() uses the repeat value (1 ms) instead of the 1000 ms timeout.
    timer.again().unwrap();
    lp.run(RunMode::Default);
    assert_eq!(n.get(), 2);
    timer.set_repeat(7);
    assert_eq!(timer.repeat(), 7);
    drop(timer);
    close_clean(lp);
}

#[test]
fn stopped_timer_does_not_fire_and_close_callback_runs() {
    let lp = Loop::new().unwrap();
    let timer = Timer::new(&lp).unwrap();
    timer
        .start(1, 0, |_| panic!("stopped timer fired"))
        .unwrap();
    timer.stop().unwrap();
    let closed = Rc::new(Cell::new(false));
    let c = closed.clone();
    timer.close_with(move || c.set(true));
    lp.run(RunMode::Default);
    assert!(closed.get());
    close_clean(lp);
}
