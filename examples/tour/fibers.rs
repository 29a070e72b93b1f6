//! The tour's second step: fibers and the Hub.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi::fiber::{self, Builder, Error, Hub, SwitchBack};

/// Spawns, sleeps, cancels, times out and detects a deadlock, all on one thread.
pub fn tour() -> Result<(), Box<dyn std::error::Error>> {
    println!("[fiber] fibers on one thread, scheduled by the Hub");
    let hub = Hub::current();

    // A thousand fibers sleeping at once take as long as the longest sleep, not the sum.
    let start = Instant::now();
    let sleepers: Vec<_> = (0..1000)
        .map(|i| fiber::spawn(move || fiber::sleep(Duration::from_millis(10 + i % 10)).map(|()| i)))
        .collect();
    let total: u64 = sleepers
        .into_iter()
        .map(|s| s.join().unwrap().unwrap())
        .sum();
    println!(
        "  spawn: 1000 fibers slept 10-19 ms each, done in {} ms (ids summed to {total})",
        start.elapsed().as_millis()
    );

    // Fibers interleave at switchpoints.
    let log = Rc::new(RefCell::new(Vec::new()));
    let workers: Vec<_> = ["ping", "pong"]
        .into_iter()
        .map(|name| {
            let log = log.clone();
            Builder::new()
                .name(name)
                .spawn(move || {
                    for _ in 0..3 {
                        log.borrow_mut().push(fiber::current().name().to_owned());
                        fiber::yield_now().unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    println!("  yield: two fibers took turns: {}", log.borrow().join(" "));

    // Cancelling a blocked fiber wakes it at once with Error::Cancelled.
    let napper = Builder::new()
        .name("napper")
        .spawn(|| fiber::sleep(Duration::from_secs(3600)))?;
    fiber::yield_now()?;
    let info = fiber::dump()
        .into_iter()
        .find(|f| f.name == "napper")
        .unwrap();
    println!("  dump: {info}");
    napper.cancel();
    println!(
        "  cancel: the napper's sleep returned {:?}",
        napper.join().unwrap()
    );

    // A deadline bounds every switchpoint inside it.
    let bounded = fiber::timeout(Duration::from_millis(20), || {
        fiber::sleep(Duration::from_secs(60))
    });
    println!("  timeout: a 60 s sleep inside a 20 ms scope gave {bounded:?}");

    // Waiting on something nothing can ever provide is reported, not hung.
    let sb = SwitchBack::<()>::new();
    let _never_called = sb.callback();
    let stuck = sb.wait();
    assert_eq!(stuck, Err(Error::WouldBlockForever));
    println!("  deadlock: waiting on nothing returned {stuck:?}");

    let left = hub.close();
    println!("  hub closed, {left} handles left open");
    Ok(())
}
