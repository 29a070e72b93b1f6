//! Async: waking a loop from other threads.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Async, Error, Handle, Loop};

#[test]
fn sends_from_four_threads_wake_the_loop() {
    let lp = Loop::new().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let wakeups = Rc::new(Cell::new(0));
    let seen = Rc::new(Cell::new(0));
    let (w, s, sent_in_cb) = (wakeups.clone(), seen.clone(), sent.clone());
    let wakeup = Async::new(&lp, move |_| {
        w.set(w.get() + 1);
        s.set(sent_in_cb.load(Ordering::SeqCst));
    })
    .unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (sender, sent, barrier) = (wakeup.sender(), sent.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..100 {
                    sent.fetch_add(1, Ordering::SeqCst);
                    sender.send().unwrap();
                }
            })
        })
        .collect();
    // Every send happens-before some later callback: once all 400 are counted, one more
    // callback must come and observe them.
    run_until(&lp, LIMIT, || seen.get() == 400);
    for t in threads {
        t.join().unwrap();
    }
    assert!(wakeups.get() >= 1 && wakeups.get() <= 400, "sends coalesce");
    drop(wakeup);
    close_clean(lp);
}

#[test]
fn sender_outliving_its_handle_reports_ebadf() {
    let lp = Loop::new().unwrap();
    let wakeup = Async::new(&lp, |_| {}).unwrap();
    let sender = wakeup.sender();
    assert_eq!(sender.send(), Ok(()));
    drop(wakeup);
    assert_eq!(sender.send(), Err(Error::EBADF));
    close_clean(lp);
    let t = std::thread::spawn(move || sender.send());
    assert_eq!(t.join().unwrap(), Err(Error::EBADF));
}

#[test]
fn loop_close_disconnects_senders_of_an_open_async() {
    let lp = Loop::new().unwrap();
    let wakeup = Async::new(&lp, |_| {}).unwrap();
    let sender = wakeup.sender();
    assert_eq!(lp.close().unwrap(), 1);
    assert!(wakeup.is_closing());
    assert_eq!(sender.send(), Err(Error::EBADF));
    drop(wakeup);
}
