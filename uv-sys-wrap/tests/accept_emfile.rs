//! Running out of file descriptors while accepting. libuv keeps a spare descriptor for this
//! case: on EMFILE it frees the spare, accepts the pending connections and closes them at once
//! (the client sees the connection end), so the listener does not spin on a readable socket it
//! cannot accept. Once descriptors are free again, connections are accepted as usual.
//! Alone in its binary because it lowers the process's fd limit.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Error, Handle, Loop, Stream, Tcp};

/// Sets the soft limit on open descriptors, returning the old one.
fn set_nofile(soft: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = soft.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    old
}

#[test]
fn accept_drops_connections_on_emfile_and_recovers_when_descriptors_are_freed() {
    let old_limit = set_nofile(128);
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.sockname().unwrap();
    let statuses = Rc::new(RefCell::new(Vec::new()));
    let conns = Rc::new(RefCell::new(Vec::new()));
    let (s, c) = (statuses.clone(), conns.clone());
    server
        .listen(64, move |server, status| {
            s.borrow_mut().push(status);
            if status.is_ok() {
                let conn = Tcp::new(&server.loop_handle()).unwrap();
                server.accept(&conn).unwrap();
                c.borrow_mut().push(conn);
            }
        })
        .unwrap();

    // Use up every descriptor, then connect: the client socket takes the one we free for it,
    // and the server cannot accept.
    let mut hogs = Vec::new();
    loop {
        // SAFETY: dup has no memory-safety preconditions; a failure returns -1.
        let fd = unsafe { libc::dup(2) };
        if fd < 0 {
            break;
        }
        hogs.push(fd);
    }
    // SAFETY: `fd` came from dup above and is closed once.
    unsafe { libc::close(hogs.pop().unwrap()) };
    let client = Tcp::new(&lp).unwrap();
    let ended = Rc::new(RefCell::new(None));
    let e = ended.clone();
    client.connect(addr, |r| r.unwrap()).unwrap();
    client
        .read_start(Vec::with_capacity, move |_, data| {
            e.borrow_mut().get_or_insert(data.map(|_| ()));
        })
        .unwrap();
    run_until(&lp, LIMIT, || ended.borrow().is_some());
    let end = ended.borrow().unwrap();
    assert!(
        end == Err(Error::EOF) || end == Err(Error::from_code(-libc::ECONNRESET)),
        "the dropped connection ends with EOF or a reset, got {end:?}"
    );
    assert!(conns.borrow().is_empty());
    // libuv handled EMFILE itself; the listener saw no error.
    assert!(statuses.borrow().is_empty());

    // Free the descriptors: the next connection is accepted.
    for fd in hogs.drain(..) {
        // SAFETY: each came from dup above and is closed once.
        unsafe { libc::close(fd) };
    }
    let client2 = Tcp::new(&lp).unwrap();
    client2.connect(addr, |r| r.unwrap()).unwrap();
    run_until(&lp, LIMIT, || !conns.borrow().is_empty());
    assert_eq!(
        conns.borrow()[0].peername().unwrap(),
        client2.sockname().unwrap()
    );
    assert_eq!(*statuses.borrow(), [Ok(())]);
    drop((server, client, client2, conns));
    close_clean(lp);
    set_nofile(old_limit);
}
