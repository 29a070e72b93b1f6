//! Readiness of raw descriptors on fibers (Gruvi's test_poll): waits, several waiters and
//! callbacks per descriptor in registration order, removal, update, close.

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{SwitchBack, spawn};
use gruvi_stream::poll::{self, MultiPoll, PollEvents};
use support::run_clean;

const LIMIT: Duration = Duration::from_secs(5);

type Log = Rc<RefCell<Vec<&'static str>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

#[test]
fn a_socket_becomes_readable_after_the_peer_writes() {
    run_clean(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let err = poll::wait_readable_timeout(&a, Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(poll::polled_fds(), 0, "the timed-out waiter left");
        b.write_all(b"x").unwrap();
        poll::wait_readable(&a).unwrap();
        assert_eq!((&a).read(&mut [0; 4]).unwrap(), 1);
        assert_eq!(poll::polled_fds(), 0);
    });
}

#[test]
fn a_socket_is_writable_at_once() {
    run_clean(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        poll::wait_writable(&a).unwrap();
        let ready = poll::wait_fd(&a, PollEvents::READABLE | PollEvents::WRITABLE, None).unwrap();
        assert_eq!(ready, PollEvents::WRITABLE, "only what is ready");
        let err = poll::wait_fd(&a, PollEvents::empty(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn several_waiting_fibers_on_one_descriptor_wake_in_registration_order() {
    run_clean(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let log = log();
        let waiter = |name: &'static str, events: PollEvents| {
            let (a, log) = (a.clone(), log.clone());
            spawn(move || -> io::Result<()> {
                poll::wait_fd(&*a, events, None)?;
                log.borrow_mut().push(name);
                Ok(())
            })
        };
        let (r, w) = (PollEvents::READABLE, PollEvents::WRITABLE);
        let readers = [waiter("r0", r), waiter("r1", r)];
        let writers = [waiter("w0", w), waiter("w1", w)];
        let last_reader = waiter("r2", r);
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
        assert_eq!(
            *log.borrow(),
            ["w0", "w1"],
            "writable at once, readers still wait"
        );
        assert_eq!(poll::polled_fds(), 1, "one shared handle");
        b.write_all(b"x").unwrap();
        for reader in readers.into_iter().chain([last_reader]) {
            reader.join().unwrap().unwrap();
        }
        assert_eq!(*log.borrow(), ["w0", "w1", "r0", "r1", "r2"]);
        assert_eq!(poll::polled_fds(), 0);
    });
}

/// Adds a callback to `poll` that logs `name`, and completes `done` once `log` has `until`
/// entries.
fn logging_callback(
    poll: &MultiPoll,
    events: PollEvents,
    name: &'static str,
    log: &Log,
    done: &fiber_core::Callback<()>,
    until: usize,
) -> poll::CallbackId {
    let (log, done) = (log.clone(), done.clone());
    poll.add_callback(events, move |ready| {
        ready.unwrap();
        log.borrow_mut().push(name);
        if log.borrow().len() >= until {
            done.call(());
        }
    })
    .unwrap()
}

#[test]
fn readers_and_writers_callbacks_are_called_in_registration_order() {
    run_clean(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let poll = MultiPoll::new(&a).unwrap();
        let log = log();
        let sb = SwitchBack::new();
        let done = sb.callback();
        let (r, w) = (PollEvents::READABLE, PollEvents::WRITABLE);
        let ids = [
            logging_callback(&poll, r, "r1", &log, &done, 2),
            logging_callback(&poll, w, "w1", &log, &done, 2),
            logging_callback(&poll, r, "r2", &log, &done, 2),
            logging_callback(&poll, w, "w2", &log, &done, 2),
        ];
        sb.wait_timeout(LIMIT).unwrap();
        assert_eq!(log.borrow()[..2], ["w1", "w2"]);
        // Now readable as well: one round calls all four in order.
        b.write_all(b"x").unwrap();
        let sb = SwitchBack::new();
        let done = sb.callback();
        let l = log.clone();
        let watch = poll
            .add_callback(r, move |_| {
                if l.borrow().ends_with(&["r1", "w1", "r2", "w2"]) {
                    done.call(());
                }
            })
            .unwrap();
        sb.wait_timeout(LIMIT).unwrap();
        for id in ids.into_iter().chain([watch]) {
            poll.remove_callback(id).unwrap();
        }
    });
}

#[test]
fn a_removed_or_disabled_callback_is_not_called() {
    run_clean(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let poll = MultiPoll::new(&a).unwrap();
        let log = log();
        let sb = SwitchBack::new();
        let done = sb.callback();
        let removed = logging_callback(&poll, PollEvents::READABLE, "removed", &log, &done, 1);
        let disabled = logging_callback(&poll, PollEvents::READABLE, "disabled", &log, &done, 1);
        poll.remove_callback(removed).unwrap();
        let err = poll.remove_callback(removed).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        poll.update_callback(disabled, PollEvents::empty()).unwrap();
        b.write_all(b"x").unwrap();
        // A fiber waiter on the same descriptor sees it readable; the callbacks stay silent.
        assert_eq!(
            poll.wait(PollEvents::READABLE).unwrap(),
            PollEvents::READABLE
        );
        assert!(log.borrow().is_empty(), "{:?}", log.borrow());
        // Enabled again, it is called.
        poll.update_callback(disabled, PollEvents::READABLE)
            .unwrap();
        sb.wait_timeout(LIMIT).unwrap();
        assert_eq!(log.borrow()[0], "disabled");
        poll.remove_callback(disabled).unwrap();
    });
}

#[test]
fn a_cancelled_waiter_leaves_and_the_handle_closes() {
    run_clean(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let a2 = a.clone();
        let waiter = spawn(move || poll::wait_readable(&*a2));
        fiber_core::yield_now().unwrap();
        assert_eq!(poll::polled_fds(), 1);
        waiter.cancel();
        let err = waiter.join().unwrap().unwrap_err();
        assert_eq!(
            fiber_core::Error::from_io(&err),
            Some(fiber_core::Error::Cancelled)
        );
        assert_eq!(poll::polled_fds(), 0);
    });
}

#[test]
fn after_close_waiters_are_woken_and_every_call_fails() {
    run_clean(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let poll = Rc::new(MultiPoll::new(&a).unwrap());
        let other = MultiPoll::new(&a).unwrap();
        let p = poll.clone();
        let waiter = spawn(move || p.wait(PollEvents::READABLE));
        fiber_core::yield_now().unwrap();
        poll.close();
        let err = waiter.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert!(poll.is_closed());
        let not_connected =
            |r: io::Result<()>| r.unwrap_err().kind() == io::ErrorKind::NotConnected;
        assert!(not_connected(poll.wait(PollEvents::WRITABLE).map(drop)));
        assert!(not_connected(
            poll.add_callback(PollEvents::READABLE, |_| {}).map(drop)
        ));
        // Another MultiPoll of the descriptor is unaffected.
        assert_eq!(
            other.wait(PollEvents::WRITABLE).unwrap(),
            PollEvents::WRITABLE
        );
        assert_eq!(poll::polled_fds(), 1);
        drop(other);
        assert_eq!(poll::polled_fds(), 0);
    });
}

#[test]
fn a_regular_file_cannot_be_polled() {
    run_clean(|| {
        let file = std::fs::File::open("/proc/self/exe")
            .or_else(|_| std::fs::File::open(std::env::current_exe()?))
            .unwrap();
        let err = poll::wait_readable(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert_eq!(poll::polled_fds(), 0);
    });
}
