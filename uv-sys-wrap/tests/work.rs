//! The thread pool: results come back to the loop thread, panics propagate from `Loop::run`,
//! and queued work and lookups can be cancelled.
//!
//! The pool is shared by every loop of the process, so only one test here fills it.

mod support;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{
    AddrInfoHints, Error, Loop, Result, RunMode, getaddrinfo, getnameinfo, queue_work,
};

#[test]
fn result_is_delivered_on_the_loop_thread() {
    let lp = Loop::new().unwrap();
    let loop_thread = thread::current().id();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let pending = queue_work(
        &lp,
        move || {
            assert_ne!(thread::current().id(), loop_thread, "runs on a pool thread");
            vec![1u8, 2, 3]
        },
        move |res| {
            assert_eq!(thread::current().id(), loop_thread);
            *g.borrow_mut() = Some(res);
        },
    )
    .unwrap();
    run_until(&lp, LIMIT, || got.borrow().is_some());
    assert_eq!(got.take(), Some(Ok(vec![1, 2, 3])));
    assert!(!pending.is_pending());
    assert_eq!(pending.cancel(), Err(Error::EBUSY));
    close_clean(lp);
}

#[test]
fn panic_in_work_propagates_from_loop_run() {
    let lp = Loop::new().unwrap();
    let after_ran = Rc::new(Cell::new(false));
    let a = after_ran.clone();
    queue_work(
        &lp,
        || -> u32 { panic!("boom in the pool") },
        move |_| a.set(true),
    )
    .unwrap();
    let payload = panic::catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default)))
        .expect_err("the work's panic is resumed by Loop::run");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in the pool"));
    assert!(!after_ran.get());
    assert_eq!(lp.live_requests(), 0);
    close_clean(lp);
}

#[test]
fn many_work_items_complete() {
    let lp = Loop::new().unwrap();
    let sum = Rc::new(Cell::new(0u64));
    let count = Rc::new(Cell::new(0));
    for i in 0..200u64 {
        let (s, c) = (sum.clone(), count.clone());
        queue_work(
            &lp,
            move || i * i,
            move |res| {
                s.set(s.get() + res.unwrap());
                c.set(c.get() + 1);
            },
        )
        .unwrap();
    }
    assert_eq!(lp.live_requests(), 200);
    run_until(&lp, LIMIT, || count.get() == 200);
    assert_eq!(sum.get(), (0..200u64).map(|i| i * i).sum());
    close_clean(lp);
}

#[test]
fn dropping_the_token_does_not_cancel() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    drop(queue_work(&lp, || 7, move |res: Result<i32>| g.set(Some(res))).unwrap());
    run_until(&lp, LIMIT, || got.get().is_some());
    assert_eq!(got.get(), Some(Ok(7)));
    close_clean(lp);
}

/// The pool's size: libuv reads `UV_THREADPOOL_SIZE` (default 4, at least 1).
fn pool_size() -> usize {
    std::env::var("UV_THREADPOOL_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
        .clamp(1, 1024)
}

#[test]
fn queued_work_and_lookups_can_be_cancelled() {
    let lp = Loop::new().unwrap();
    // Occupy every pool thread with a blocker, and wait until all of them run: whatever is
    // queued next stays queued until the gate opens.
    let n = pool_size();
    let gate = Arc::new(Barrier::new(n + 1));
    let (started_tx, started_rx) = mpsc::channel();
    let released = Rc::new(Cell::new(0));
    for _ in 0..n {
        let (g, tx, r) = (gate.clone(), started_tx.clone(), released.clone());
        let work = move || {
            tx.send(()).unwrap();
            g.wait();
        };
        queue_work(&lp, work, move |res| {
            res.unwrap();
            r.set(r.get() + 1);
        })
        .unwrap();
    }
    for _ in 0..n {
        started_rx.recv_timeout(LIMIT).expect("blocker started");
    }

    let work_res = Rc::new(Cell::new(None));
    let w = work_res.clone();
    let work = queue_work(
        &lp,
        || -> u32 { panic!("cancelled work ran") },
        move |res| w.set(Some(res)),
    )
    .unwrap();
    let lookup_res = Rc::new(RefCell::new(None));
    let l = lookup_res.clone();
    let lookup = getaddrinfo(
        &lp,
        Some("localhost"),
        None,
        AddrInfoHints::default(),
        move |res| *l.borrow_mut() = Some(res),
    )
    .unwrap();
    let name_res = Rc::new(RefCell::new(None));
    let nm = name_res.clone();
    let name = getnameinfo(&lp, "127.0.0.1:80".parse().unwrap(), 0, move |res| {
        *nm.borrow_mut() = Some(res)
    })
    .unwrap();
    work.cancel().unwrap();
    lookup.cancel().unwrap();
    name.cancel().unwrap();

    run_until(&lp, LIMIT, || {
        work_res.get().is_some() && lookup_res.borrow().is_some() && name_res.borrow().is_some()
    });
    assert_eq!(work_res.get(), Some(Err(Error::ECANCELED)));
    assert_eq!(lookup_res.take().unwrap().unwrap_err(), Error::EAI_CANCELED);
    assert_eq!(name_res.take().unwrap().unwrap_err(), Error::EAI_CANCELED);
    assert!(!work.is_pending() && !lookup.is_pending() && !name.is_pending());
    assert_eq!(work.cancel(), Err(Error::EBUSY));
    assert_eq!(released.get(), 0, "the blockers still run");

    gate.wait();
    run_until(&lp, LIMIT, || released.get() == n);
    close_clean(lp);
}
