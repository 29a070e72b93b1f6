//! Waiting for Unix signals in a fiber (e.g. SIGINT to shut down cleanly).

use std::time::Duration;

use uv_sys_wrap::Signal;

use crate::error::Result;
use crate::hub::Hub;
use crate::switch_back::SwitchBack;

/// Blocks until one of `signums` arrives and returns it. While waiting, the signals' default
/// actions (such as SIGINT ending the process) are replaced by this wait; afterwards they are
/// restored.
///
/// # Switchpoint
///
/// Other fibers run meanwhile.
///
/// # Errors
///
/// [`Error::Cancelled`](crate::Error::Cancelled), [`Error::TimedOut`](crate::Error::TimedOut)
/// from an enclosing [`timeout`](crate::timeout) scope.
///
/// # Panics
///
/// If a signal number is not one libuv can watch (e.g. SIGKILL).
///
/// # Examples
///
/// ```
/// fiber_core::run(|| {
///     let waiter = fiber_core::spawn(|| fiber_core::wait_for_signal(&[libc::SIGUSR2]));
///     fiber_core::yield_now().unwrap(); // the waiter now listens
///     // SAFETY (doc example): raising a signal we are handling is harmless.
///     unsafe { libc::raise(libc::SIGUSR2) };
///     assert_eq!(waiter.join().unwrap(), Ok(libc::SIGUSR2));
/// });
/// ```
#[track_caller]
pub fn wait_for_signal(signums: &[i32]) -> Result<i32> {
    wait_inner(signums, None)
}

/// Like [`wait_for_signal`], giving up with [`Error::TimedOut`](crate::Error::TimedOut) after
/// `timeout`.
///
/// # Switchpoint
///
/// Blocks for at most `timeout`.
#[track_caller]
pub fn wait_for_signal_timeout(signums: &[i32], timeout: Duration) -> Result<i32> {
    wait_inner(signums, Some(timeout))
}

#[track_caller]
fn wait_inner(signums: &[i32], timeout: Option<Duration>) -> Result<i32> {
    let hub = Hub::current();
    let sb = SwitchBack::new();
    let handles: Vec<Signal> = signums
        .iter()
        .map(|&signum| {
            let signal = Signal::new(&hub.loop_handle()).expect("signal handle on the Hub's loop");
            let got = sb.callback();
            signal
                .start(signum, move |_, signum| {
                    got.call(signum);
                })
                .unwrap_or_else(|err| panic!("cannot watch signal {signum}: {err}"));
            signal
        })
        .collect();
    let result = match timeout {
        None => sb.wait(),
        Some(timeout) => sb.wait_timeout(timeout),
    };
    drop(handles);
    result
}
