//! SwitchBack: turning callbacks, including libuv's, into switchpoints.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use fiber_core::{Hub, SwitchBack, spawn};
use support::run_clean;
use uv_sys_wrap::{Handle, Stream, Tcp};

#[test]
fn the_first_call_wins_and_a_value_given_before_the_wait_returns_at_once() {
    run_clean(|| {
        let sb = SwitchBack::new();
        let (a, b) = (sb.callback(), sb.callback());
        assert!(a.is_active());
        assert!(a.call("first"));
        assert!(!b.call("second"));
        assert!(!a.is_active());
        assert_eq!(sb.wait(), Ok("first"));
    });
}

#[test]
fn another_fiber_completes_the_wait() {
    run_clean(|| {
        let sb = SwitchBack::new();
        let cb = sb.callback();
        let helper = spawn(move || cb.call(vec![1, 2, 3]));
        assert_eq!(sb.wait(), Ok(vec![1, 2, 3]));
        assert!(helper.join().unwrap());
    });
}

/// A blocking TCP connect built from uv-sys-wrap's callback API: the pattern the stream layer
/// uses, and the one users follow to wrap their own callback APIs.
fn connect(addr: std::net::SocketAddr) -> fiber_core::Result<Result<Tcp, uv_sys_wrap::Error>> {
    let hub = Hub::current();
    let tcp = Tcp::new(&hub.loop_handle()).expect("tcp");
    let sb = SwitchBack::new();
    let done = sb.callback();
    if let Err(err) = tcp.connect(addr, move |res| {
        done.call(res);
    }) {
        return Ok(Err(err));
    }
    Ok(sb.wait()?.map(|()| tcp))
}

#[test]
fn a_libuv_connect_becomes_a_blocking_call_while_other_fibers_run() {
    run_clean(|| {
        let hub = Hub::current();
        let server = Tcp::new(&hub.loop_handle()).unwrap();
        server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let accepted = Rc::new(RefCell::new(Vec::new()));
        let acc = accepted.clone();
        server
            .listen(128, move |server, status| {
                status.unwrap();
                let conn = Tcp::new(&server.loop_handle()).unwrap();
                server.accept(&conn).unwrap();
                acc.borrow_mut().push(conn);
            })
            .unwrap();
        let addr = server.sockname().unwrap();
        let clients: Vec<_> = (0..10).map(|_| spawn(move || connect(addr))).collect();
        let connected: Vec<Tcp> = clients
            .into_iter()
            .map(|c| c.join().unwrap().unwrap().unwrap())
            .collect();
        assert_eq!(connected.len(), 10);
        while accepted.borrow().len() < 10 {
            fiber_core::yield_now().unwrap();
        }
        let refused = {
            let spare = Tcp::new(&hub.loop_handle()).unwrap();
            spare.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = spare.sockname().unwrap();
            drop(spare);
            connect(addr).unwrap()
        };
        assert_eq!(refused.err(), Some(uv_sys_wrap::Error::ECONNREFUSED));
        drop((server, connected, accepted));
    });
}

#[test]
fn remote_callbacks_complete_waits_from_other_threads_and_from_home() {
    run_clean(|| {
        // From four threads at once: the first wins, the others are ignored.
        let sb = SwitchBack::new();
        let callers: Vec<_> = (0..4)
            .map(|i| {
                let cb = sb.remote_callback();
                std::thread::spawn(move || cb.call(i).unwrap())
            })
            .collect();
        let got = sb.wait().unwrap();
        assert!((0..4).contains(&got));
        for c in callers {
            c.join().unwrap();
        }
        // From the waiter's own thread (another fiber), the call is direct.
        let sb = SwitchBack::new();
        let cb = sb.remote_callback();
        let helper = spawn(move || cb.call("home").unwrap());
        assert_eq!(sb.wait(), Ok("home"));
        helper.join().unwrap();
    });
}

#[test]
fn park_returns_on_unpark_at_once_after_an_early_unpark_and_times_out() {
    use fiber_core::{Error, park, park_timeout};
    use std::time::{Duration, Instant};
    run_clean(|| {
        // An unpark before the park is remembered, once.
        let me = fiber_core::current();
        me.unpark();
        assert_eq!(park_timeout(Duration::from_secs(60)), Ok(()));
        let start = Instant::now();
        assert_eq!(
            park_timeout(Duration::from_millis(10)),
            Err(Error::TimedOut)
        );
        assert!(start.elapsed() >= Duration::from_millis(10));
        // Another fiber unparks a parked one; the dump shows it parked meanwhile.
        let parked = spawn(|| park());
        fiber_core::yield_now().unwrap();
        let info = fiber_core::dump()
            .into_iter()
            .find(|f| f.id == parked.fiber().id())
            .unwrap();
        assert_eq!(info.waiting_on, Some("park"));
        parked.fiber().unpark();
        assert_eq!(parked.join().unwrap(), Ok(()));
        // Cancellation ends a park.
        let stuck = spawn(|| park());
        fiber_core::yield_now().unwrap();
        stuck.cancel();
        assert_eq!(stuck.join().unwrap(), Err(Error::Cancelled));
    });
}
