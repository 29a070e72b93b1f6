//! Readiness polling of descriptors libuv does not own, on a Unix socket pair.

mod support;

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Error, Handle, Loop, Poll, PollEvents, RunMode};

/// A connected pair of Unix stream sockets; both close on drop.
fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid out array of two descriptors.
    let ret = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    assert_eq!(ret, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: socketpair returned two new descriptors that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn write_all(fd: &OwnedFd, bytes: &[u8]) {
    // SAFETY: `bytes` is valid for its length; `fd` is open.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(n, bytes.len() as isize);
}

/// Starts `poll` for `events`, collecting what its callback reports.
fn collect(poll: &Poll, events: PollEvents) -> Rc<RefCell<Vec<uv_sys_wrap::Result<PollEvents>>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    poll.start(events, move |poll, res| {
        s.borrow_mut().push(res);
        poll.stop().unwrap();
    })
    .unwrap();
    seen
}

#[test]
fn socket_is_writable_at_once() {
    let lp = Loop::new().unwrap();
    let (a, _b) = socketpair();
    let poll = Poll::new_socket(&lp, a.as_raw_fd()).unwrap();
    let seen = collect(&poll, PollEvents::WRITABLE);
    run_until(&lp, LIMIT, || !seen.borrow().is_empty());
    assert_eq!(seen.borrow()[0], Ok(PollEvents::WRITABLE));
    assert!(!poll.is_active(), "stopped from its callback");
    drop(poll);
    close_clean(lp);
}

#[test]
fn socket_becomes_readable_after_the_peer_writes() {
    let lp = Loop::new().unwrap();
    let (a, b) = socketpair();
    let poll = Poll::new(&lp, a.as_raw_fd()).unwrap();
    let seen = collect(&poll, PollEvents::READABLE);
    lp.run(RunMode::NoWait);
    assert!(seen.borrow().is_empty(), "nothing to read yet");
    assert!(poll.is_active());
    write_all(&b, b"ping");
    run_until(&lp, LIMIT, || !seen.borrow().is_empty());
    assert_eq!(seen.borrow()[0], Ok(PollEvents::READABLE));
    drop(poll);
    close_clean(lp);
}

#[test]
fn disconnect_is_reported_when_the_peer_closes() {
    let lp = Loop::new().unwrap();
    let (a, b) = socketpair();
    let poll = Poll::new(&lp, a.as_raw_fd()).unwrap();
    let seen = collect(&poll, PollEvents::READABLE | PollEvents::DISCONNECT);
    lp.run(RunMode::NoWait);
    assert!(seen.borrow().is_empty());
    drop(b);
    run_until(&lp, LIMIT, || !seen.borrow().is_empty());
    let events = seen.borrow()[0].unwrap();
    assert!(events.contains(PollEvents::DISCONNECT), "{events:?}");
    drop(poll);
    close_clean(lp);
}

#[test]
fn restarting_changes_the_events_and_the_callback() {
    let lp = Loop::new().unwrap();
    let (a, b) = socketpair();
    write_all(&b, b"x");
    let poll = Poll::new(&lp, a.as_raw_fd()).unwrap();
    let first = collect(&poll, PollEvents::WRITABLE);
    let second = collect(&poll, PollEvents::READABLE);
    run_until(&lp, LIMIT, || !second.borrow().is_empty());
    assert!(first.borrow().is_empty(), "replaced before it ran");
    assert_eq!(second.borrow()[0], Ok(PollEvents::READABLE));
    // Empty events stop the handle.
    poll.start(PollEvents::empty(), |_, _| panic!("stopped"))
        .unwrap();
    assert!(!poll.is_active());
    drop(poll);
    close_clean(lp);
}

#[test]
fn second_handle_on_the_same_descriptor_or_a_closed_one_is_refused() {
    let lp = Loop::new().unwrap();
    let (a, _b) = socketpair();
    let poll = Poll::new(&lp, a.as_raw_fd()).unwrap();
    let seen = collect(&poll, PollEvents::WRITABLE);
    run_until(&lp, LIMIT, || !seen.borrow().is_empty());
    poll.start(PollEvents::READABLE, |_, _| {}).unwrap();
    lp.run(RunMode::NoWait);
    let dup = Poll::new(&lp, a.as_raw_fd()).map(drop);
    assert_eq!(dup.unwrap_err().raw_os_error(), Some(libc::EEXIST));
    let closed = Poll::new(&lp, -1).map(drop);
    assert_eq!(closed, Err(Error::EBADF));
    drop(poll);
    close_clean(lp);
}

#[test]
fn methods_of_a_handle_closed_by_its_loop_fail_with_ebadf() {
    let lp = Loop::new().unwrap();
    let (a, _b) = socketpair();
    let poll = Poll::new(&lp, a.as_raw_fd()).unwrap();
    let lp2 = Loop::new().unwrap();
    // A handle of another loop shows the loop-close path without disturbing `lp`.
    let (c, _d) = socketpair();
    let orphan = Poll::new(&lp2, c.as_raw_fd()).unwrap();
    assert_eq!(lp2.close(), Ok(1));
    assert!(orphan.is_closing());
    assert_eq!(
        orphan.start(PollEvents::READABLE, |_, _| {}),
        Err(Error::EBADF)
    );
    assert_eq!(orphan.stop(), Err(Error::EBADF));
    drop(orphan);
    drop(poll);
    close_clean(lp);
}

#[test]
fn events_debug_lists_their_names() {
    let all = PollEvents::READABLE
        | PollEvents::WRITABLE
        | PollEvents::DISCONNECT
        | PollEvents::PRIORITIZED;
    assert_eq!(
        format!("{all:?}"),
        "PollEvents(READABLE | WRITABLE | DISCONNECT | PRIORITIZED)"
    );
    assert_eq!(format!("{:?}", PollEvents::empty()), "PollEvents()");
    assert_eq!(all & PollEvents::WRITABLE, PollEvents::WRITABLE);
    assert_eq!(PollEvents::from_bits_truncate(0xff), all);
    assert!(PollEvents::default().is_empty());
}
