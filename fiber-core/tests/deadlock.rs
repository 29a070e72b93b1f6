//! Deadlock detection: a wait nothing can end is reported instead of hanging.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fiber_core::{Error, Hub, JoinHandle, SwitchBack, spawn, yield_now};
use support::run_clean;

#[test]
fn two_fibers_joining_each_other_are_reported_to_the_root() {
    run_clean(|| {
        type Slot = Rc<RefCell<Option<JoinHandle<()>>>>;
        let (a_slot, b_slot): (Slot, Slot) = Default::default();
        let b_for_a = b_slot.clone();
        let a = spawn(move || {
            yield_now().unwrap();
            let b = b_for_a.borrow_mut().take().unwrap();
            let _ = b.join();
        });
        let a_for_b = a_slot.clone();
        let b = spawn(move || {
            yield_now().unwrap();
            let a = a_for_b.borrow_mut().take().unwrap();
            let _ = a.join();
        });
        *a_slot.borrow_mut() = Some(a);
        *b_slot.borrow_mut() = Some(b);
        let waiter = SwitchBack::<()>::new();
        let _keep = waiter.callback(); // held, never called
        assert_eq!(waiter.wait(), Err(Error::WouldBlockForever));
        // The Hub closes cleanly: the stuck fibers are cancelled and unwound.
    });
}

#[test]
fn joining_yourself_would_block_forever() {
    run_clean(|| {
        let me: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
        let outcome = Rc::new(RefCell::new(None));
        let (m, o) = (me.clone(), outcome.clone());
        let fiber = spawn(move || {
            let handle = m.borrow_mut().take().unwrap();
            let err = handle.join_timeout(Duration::from_secs(60)).unwrap_err();
            *o.borrow_mut() = err.wait_error();
        });
        let id = fiber.fiber().id();
        *me.borrow_mut() = Some(fiber);
        while fiber_core::dump().iter().any(|f| f.id == id) {
            yield_now().unwrap();
        }
        assert_eq!(*outcome.borrow(), Some(Error::WouldBlockForever));
    });
}

thread_local! {
    static PENDING: RefCell<Option<fiber_core::Callback<u32>>> = const { RefCell::new(None) };
}

#[test]
fn an_open_remote_hub_keeps_the_root_waiting_for_another_thread() {
    run_clean(|| {
        let hub = Hub::current();
        let sb = SwitchBack::<u32>::new();
        PENDING.with(|p| *p.borrow_mut() = Some(sb.callback()));
        let remote = hub.remote();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            // Runs on the Hub's thread, where it finds the callback.
            let fire = || assert!(PENDING.with(|p| p.borrow_mut().take().unwrap().call(9)));
            remote.run_callback(fire).unwrap();
        });
        // Nothing local is active, but another thread holds a RemoteHub: a wait, not a deadlock.
        assert_eq!(sb.wait(), Ok(9));
        thread.join().unwrap();
    });
}

#[test]
fn root_waiting_on_nothing_is_told_at_once() {
    run_clean(|| {
        let sb = SwitchBack::<()>::new();
        let _cb = sb.callback();
        assert_eq!(sb.wait(), Err(Error::WouldBlockForever));
    });
}
