//! The loop's life: closing with handles left open, panics in callbacks, watchers, unref.

mod support;

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use support::close_clean;
use uv_sys_wrap::{Check, Error, Handle, HandleType, Idle, Loop, Prepare, RunMode, Tcp, Timer};

#[test]
fn close_reports_handles_left_open_and_their_owners_fail_cleanly() {
    let lp = Loop::new().unwrap();
    let timer = Timer::new(&lp).unwrap();
    timer.start(60_000, 0, |_| {}).unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let handle = lp.handle();
    let mut kinds = Vec::new();
    lp.walk(|info| kinds.push(info.kind));
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, [HandleType::Tcp, HandleType::Timer]);
    assert_eq!(lp.live_handles(), 2);
    assert_eq!(lp.close().unwrap(), 2, "two handles were still open");
    // The owners outlive the loop: methods fail, nothing touches freed memory.
    assert!(timer.is_closing());
    assert_eq!(timer.stop(), Err(Error::EBADF));
    assert_eq!(tcp.set_nodelay(true), Err(Error::EBADF));
    assert!(handle.is_closed());
    assert_eq!(Timer::new(&handle).err(), Some(Error::EBADF));
    drop((timer, tcp));
}

#[test]
fn panic_in_a_callback_is_resumed_by_run_and_the_loop_stays_usable() {
    let lp = Loop::new().unwrap();
    let timer = Timer::new(&lp).unwrap();
    timer.start(0, 0, |_| panic!("boom in timer")).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in timer"));
    let ok = Rc::new(Cell::new(false));
    let o = ok.clone();
    timer.start(0, 0, move |_| o.set(true)).unwrap();
    lp.run(RunMode::Default);
    assert!(ok.get());
    drop(timer);
    close_clean(lp);
}

#[test]
fn watchers_run_in_loop_phase_order() {
    let lp = Loop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (idle, prepare, check) = (
        Idle::new(&lp).unwrap(),
        Prepare::new(&lp).unwrap(),
        Check::new(&lp).unwrap(),
    );
    let l = log.clone();
    idle.start(move |idle| {
        l.borrow_mut().push("idle");
        if l.borrow().len() >= 6 {
            idle.stop().unwrap();
        }
    })
    .unwrap();
    let l = log.clone();
    prepare
        .start(move |_| l.borrow_mut().push("prepare"))
        .unwrap();
    let l = log.clone();
    check.start(move |_| l.borrow_mut().push("check")).unwrap();
    prepare.unref();
    check.unref();
    lp.run(RunMode::Default);
    let log = log.borrow();
    assert_eq!(&log[..3], ["idle", "prepare", "check"]);
    drop((idle, prepare, check));
    close_clean(lp);
}

#[test]
fn unref_handle_does_not_keep_the_loop_alive() {
    let lp = Loop::new().unwrap();
    let timer = Timer::new(&lp).unwrap();
    timer.start(60_000, 0, |_| panic!("must not fire")).unwrap();
    timer.unref();
    assert!(!timer.has_ref());
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default));
    timer.ref_();
    assert!(lp.alive());
    drop(timer);
    close_clean(lp);
}

#[test]
fn dropping_a_handle_inside_its_own_callback_is_safe() {
    let lp = Loop::new().unwrap();
    let slot: Rc<RefCell<Option<Timer>>> = Rc::new(RefCell::new(None));
    let timer = Timer::new(&lp).unwrap();
    let s = slot.clone();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    timer
        .start(0, 1, move |t| {
            f.set(f.get() + 1);
            drop(s.borrow_mut().take()); // drops the owner while we run on its view
            assert!(t.is_closing());
            assert_eq!(t.stop(), Err(Error::EBADF));
        })
        .unwrap();
    *slot.borrow_mut() = Some(timer);
    lp.run(RunMode::Default);
    assert_eq!(fired.get(), 1);
    close_clean(lp);
}

#[test]
#[should_panic(expected = "Loop::run called from inside the same loop's callback")]
fn reentrant_run_is_refused() {
    let lp = Rc::new(Loop::new().unwrap());
    let timer = Timer::new(&*lp).unwrap();
    let inner = lp.clone();
    timer
        .start(0, 0, move |_| {
            inner.run(RunMode::NoWait);
        })
        .unwrap();
    lp.run(RunMode::Default);
}
