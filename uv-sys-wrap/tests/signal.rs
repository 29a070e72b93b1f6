//! Unix signal watchers.
//!
//! Signal dispositions are process-wide and the tests of this file run in parallel, so each
//! test that raises a signal owns a signal of its own: SIGUSR1, SIGUSR2 and SIGWINCH.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Error, Handle, Loop, Signal};

/// Sends `signum` to this process.
fn raise(signum: i32) {
    // SAFETY: kill has no memory-safety preconditions; every test that raises a signal first
    // starts a handle for it, so libuv's handler (not the default action) receives it.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signum) }, 0);
}

type Log = Rc<RefCell<Vec<(i32, Option<i32>)>>>;

/// Starts `signal` on `signum`, logging the number each callback gets and what the view's
/// `signum()` says.
fn start_logging(signal: &Signal, signum: i32) -> Log {
    let log = Log::default();
    let l = log.clone();
    signal
        .start(signum, move |view, n| {
            l.borrow_mut().push((n, view.signum()))
        })
        .unwrap();
    log
}

#[test]
fn every_handle_watching_a_signal_is_called_each_time_it_arrives() {
    let lp = Loop::new().unwrap();
    let first = Signal::new(&lp).unwrap();
    let second = Signal::new(&lp).unwrap();
    let log1 = start_logging(&first, libc::SIGUSR1);
    let log2 = start_logging(&second, libc::SIGUSR1);
    assert_eq!(first.signum(), Some(libc::SIGUSR1));
    assert!(first.is_active());

    raise(libc::SIGUSR1);
    run_until(&lp, LIMIT, || {
        log1.borrow().len() == 1 && log2.borrow().len() == 1
    });
    raise(libc::SIGUSR1);
    run_until(&lp, LIMIT, || {
        log1.borrow().len() == 2 && log2.borrow().len() == 2
    });
    let expected = vec![(libc::SIGUSR1, Some(libc::SIGUSR1)); 2];
    assert_eq!(*log1.borrow(), expected);
    assert_eq!(*log2.borrow(), expected);

    first.stop().unwrap();
    first.stop().unwrap();
    assert_eq!(first.signum(), None);
    assert!(!first.is_active());
    // `second` still watches SIGUSR1, so libuv's handler stays installed.
    raise(libc::SIGUSR1);
    run_until(&lp, LIMIT, || log2.borrow().len() == 3);
    assert_eq!(log1.borrow().len(), 2, "a stopped handle is not called");
    drop((first, second));
    close_clean(lp);
}

#[test]
fn oneshot_handle_fires_once_then_stops() {
    let lp = Loop::new().unwrap();
    // A repeating handle keeps libuv's handler installed after the one-shot one stopped, so
    // the second signal does not kill the process.
    let keeper = Signal::new(&lp).unwrap();
    let kept = start_logging(&keeper, libc::SIGUSR2);
    let oneshot = Signal::new(&lp).unwrap();
    let fired = Log::default();
    let f = fired.clone();
    oneshot
        .start_oneshot(libc::SIGUSR2, move |view, n| {
            f.borrow_mut().push((n, view.signum()))
        })
        .unwrap();
    assert_eq!(oneshot.signum(), Some(libc::SIGUSR2));

    raise(libc::SIGUSR2);
    run_until(&lp, LIMIT, || {
        kept.borrow().len() == 1 && fired.borrow().len() == 1
    });
    assert_eq!(fired.borrow()[0].0, libc::SIGUSR2);
    assert_eq!(oneshot.signum(), None);
    assert!(!oneshot.is_active());

    raise(libc::SIGUSR2);
    run_until(&lp, LIMIT, || kept.borrow().len() == 2);
    assert_eq!(fired.borrow().len(), 1, "one-shot handle fired again");
    drop((keeper, oneshot));
    close_clean(lp);
}

#[test]
fn restarting_from_the_callback_replaces_the_callback() {
    let lp = Loop::new().unwrap();
    let signal = Signal::new(&lp).unwrap();
    let log = Log::default();
    let l = log.clone();
    signal
        .start(libc::SIGWINCH, move |view, n| {
            l.borrow_mut().push((n, view.signum()));
            let l = l.clone();
            // Replaces the running callback; the old one is dropped once it returns.
            view.start(libc::SIGWINCH, move |view, n| {
                l.borrow_mut().push((-n, view.signum()))
            })
            .unwrap();
        })
        .unwrap();
    raise(libc::SIGWINCH);
    run_until(&lp, LIMIT, || log.borrow().len() == 1);
    raise(libc::SIGWINCH);
    run_until(&lp, LIMIT, || log.borrow().len() == 2);
    let s = Some(libc::SIGWINCH);
    assert_eq!(
        *log.borrow(),
        vec![(libc::SIGWINCH, s), (-libc::SIGWINCH, s)]
    );
    drop(signal);
    close_clean(lp);
}

#[test]
fn signals_that_cannot_be_caught_are_einval() {
    let lp = Loop::new().unwrap();
    let signal = Signal::new(&lp).unwrap();
    assert_eq!(signal.start(0, |_, _| {}), Err(Error::EINVAL));
    assert_eq!(signal.start(libc::SIGKILL, |_, _| {}), Err(Error::EINVAL));
    assert_eq!(
        signal.start_oneshot(libc::SIGSTOP, |_, _| {}),
        Err(Error::EINVAL)
    );
    assert_eq!(signal.signum(), None);
    assert!(!signal.is_active());
    drop(signal);
    close_clean(lp);
}
