//! Cancelling fibers: while sleeping, while joining, before they start; sticky cancellation.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{Error, SwitchBack, current, sleep, spawn, yield_now};
use support::run_clean;

#[test]
fn cancel_wakes_a_sleeping_fiber_at_once_and_its_destructors_run() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    run_clean(|| {
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let sleeper = spawn(move || {
            let _flag = Flag(d);
            sleep(Duration::from_secs(60))
        });
        yield_now().unwrap();
        let start = Instant::now();
        sleeper.cancel();
        assert_eq!(sleeper.join().unwrap(), Err(Error::Cancelled));
        assert!(start.elapsed() < Duration::from_secs(30));
        assert!(dropped.get());
    });
}

#[test]
fn cancel_before_start_means_the_fiber_never_runs() {
    run_clean(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let fiber = spawn(move || r.set(true));
        fiber.cancel();
        let err = fiber.join().unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert!(!ran.get());
    });
}

#[test]
fn cancel_while_joining_returns_the_joiners_error_and_leaves_the_target_running() {
    run_clean(|| {
        let target = Rc::new(spawn(|| sleep(Duration::from_millis(20)).map(|()| 7)));
        let t = target.clone();
        let joiner = spawn(move || {
            let err = t.join_timeout(Duration::from_secs(60)).unwrap_err();
            err.wait_error()
        });
        yield_now().unwrap();
        joiner.cancel();
        assert_eq!(joiner.join().unwrap(), Some(Error::Cancelled));
        assert!(!target.is_finished());
        let target = Rc::try_unwrap(target).unwrap();
        assert_eq!(target.join().unwrap(), Ok(7));
    });
}

#[test]
fn cancellation_is_sticky_for_later_switchpoints() {
    run_clean(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let fiber = spawn(move || {
            l.borrow_mut().push(sleep(Duration::from_secs(60)));
            l.borrow_mut().push(yield_now());
            l.borrow_mut().push(sleep(Duration::from_millis(1)));
            let sb = SwitchBack::<()>::new();
            l.borrow_mut().push(sb.wait());
        });
        yield_now().unwrap();
        fiber.cancel();
        fiber.join().unwrap();
        assert_eq!(*log.borrow(), [Err(Error::Cancelled); 4]);
    });
}

#[test]
fn a_value_delivered_with_the_cancellation_is_not_lost() {
    run_clean(|| {
        let sb = Rc::new(RefCell::new(None));
        let slot = sb.clone();
        let fiber = spawn(move || {
            let wait = SwitchBack::<u32>::new();
            *slot.borrow_mut() = Some(wait.callback());
            let got = wait.wait();
            (got, yield_now())
        });
        yield_now().unwrap();
        // Deliver and cancel in the same turn: the value wins, the cancel stays for later.
        assert!(sb.borrow().as_ref().unwrap().call(42));
        fiber.cancel();
        assert_eq!(fiber.join().unwrap(), (Ok(42), Err(Error::Cancelled)));
    });
}

#[test]
fn a_fiber_can_cancel_itself() {
    run_clean(|| {
        let me = Rc::new(RefCell::new(
            None::<fiber_core::JoinHandle<fiber_core::Result<()>>>,
        ));
        let m = me.clone();
        let fiber = spawn(move || {
            yield_now()?;
            m.borrow().as_ref().unwrap().cancel();
            assert!(current().name().starts_with("Fiber-"));
            yield_now()
        });
        *me.borrow_mut() = Some(fiber);
        // Both sides only borrow the handle (shared borrows may span a switchpoint).
        let result = me
            .borrow()
            .as_ref()
            .unwrap()
            .join_timeout(Duration::from_secs(10));
        assert_eq!(result.unwrap(), Err(Error::Cancelled));
    });
}
