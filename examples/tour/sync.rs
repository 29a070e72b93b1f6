//! The tour's third step: thread-safe sync primitives, promises and pools.

use std::sync::Arc;
use std::time::Duration;

use gruvi::fiber::{self, Hub, Lock, Queue, ThreadPool};

/// A queue shared by a plain thread and fibers, a fair lock, and a thread pool.
pub fn tour() -> Result<(), Box<dyn std::error::Error>> {
    println!("[sync] primitives shared by fibers and threads");
    let hub = Hub::current();

    // A plain thread (no Hub) produces; three fibers consume. At most 4 items wait at once.
    let queue = Arc::new(Queue::new(4));
    let producer = {
        let queue = queue.clone();
        std::thread::spawn(move || {
            for i in 1..=30u32 {
                queue.put(i).unwrap();
            }
        })
    };
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let queue = queue.clone();
            fiber::spawn(move || {
                let mut sum = 0;
                for _ in 0..10 {
                    sum += queue.get().unwrap();
                }
                sum
            })
        })
        .collect();
    let sums: Vec<u32> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    producer.join().unwrap();
    println!(
        "  queue: a thread put 1..=30 through a queue of 4; fibers got sums {sums:?} (total {})",
        sums.iter().sum::<u32>()
    );

    // A fair lock hands over in arrival order.
    let lock = Arc::new(Lock::new());
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let guard = lock.lock().unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let (lock, order) = (lock.clone(), order.clone());
            fiber::spawn(move || {
                let _held = lock.lock().unwrap();
                order.lock().unwrap().push(i);
            })
        })
        .collect();
    fiber::yield_now()?;
    drop(guard);
    for w in waiters {
        w.join().unwrap();
    }
    println!(
        "  lock: four fibers got the lock in arrival order {:?}",
        order.lock().unwrap()
    );

    // Blocking work goes to a thread pool; the fiber waits on its promise while others run.
    let pool = ThreadPool::new(2);
    let promise = pool.submit(|| {
        std::thread::sleep(Duration::from_millis(20));
        (1..=10u64).product::<u64>()
    })?;
    let ticker = fiber::spawn(|| {
        let mut ticks = 0;
        while fiber::sleep(Duration::from_millis(2)).is_ok() {
            ticks += 1;
        }
        ticks
    });
    let factorial = promise.into_result()?;
    ticker.cancel();
    println!(
        "  pool: 10! = {factorial} computed on a pool thread while a fiber ticked {} times",
        ticker.join().unwrap()
    );
    pool.close()?;
    let left = hub.close();
    println!("  hub closed, {left} handles left open");
    Ok(())
}
