//! FiberPool and ThreadPool: submit, panics, maxsize really enforced, map order and timeout,
//! close, cancellation, blocking().

mod support;
mod sync_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fiber_core::{
    Error, FiberPool, PoolBuilder, PoolClosed, PromiseError, ThreadPool, blocking, sleep, spawn,
    yield_now,
};
use support::run_clean;
use sync_support::Rng;

/// Pauses a job: a fiber sleep in a fiber pool, a thread sleep in a thread pool.
fn pause(in_fiber: bool, duration: Duration) {
    if in_fiber {
        sleep(duration).unwrap();
    } else {
        std::thread::sleep(duration);
    }
}

/// What both pools offer, for tests run on each.
trait Pool {
    const FIBERS: bool;
    fn submit_job(
        &self,
        job: impl FnOnce() -> u64 + Send + 'static,
    ) -> Result<fiber_core::Promise<u64>, PoolClosed>;
    fn workers(&self) -> usize;
    fn close_pool(&self) -> fiber_core::Result<()>;
}

impl Pool for FiberPool {
    const FIBERS: bool = true;
    fn submit_job(
        &self,
        job: impl FnOnce() -> u64 + Send + 'static,
    ) -> Result<fiber_core::Promise<u64>, PoolClosed> {
        self.submit(job)
    }
    fn workers(&self) -> usize {
        self.size()
    }
    fn close_pool(&self) -> fiber_core::Result<()> {
        self.close()
    }
}

impl Pool for ThreadPool {
    const FIBERS: bool = false;
    fn submit_job(
        &self,
        job: impl FnOnce() -> u64 + Send + 'static,
    ) -> Result<fiber_core::Promise<u64>, PoolClosed> {
        self.submit(job)
    }
    fn workers(&self) -> usize {
        self.size()
    }
    fn close_pool(&self) -> fiber_core::Result<()> {
        self.close()
    }
}

fn submits_run_and_a_panic_only_fails_its_own_promise<P: Pool>(pool: &P) {
    let promises: Vec<_> = (0..100u64)
        .map(|i| pool.submit_job(move || i * 2).unwrap())
        .collect();
    let sleepy = pool
        .submit_job(move || {
            pause(P::FIBERS, Duration::from_millis(2));
            7
        })
        .unwrap();
    let boom = pool.submit_job(|| panic!("job exploded")).unwrap();
    for (i, promise) in promises.into_iter().enumerate() {
        assert_eq!(promise.into_result().unwrap(), i as u64 * 2);
    }
    assert_eq!(sleepy.into_result().unwrap(), 7);
    match boom.into_result() {
        Err(PromiseError::Panicked(message)) => assert_eq!(message, "job exploded"),
        other => panic!("expected a panic, got {other:?}"),
    }
    // The pool carries on after the panic.
    assert_eq!(pool.submit_job(|| 1).unwrap().into_result().unwrap(), 1);
}

#[test]
fn fiber_pool_submits_run_and_a_panic_only_fails_its_own_promise() {
    run_clean(|| submits_run_and_a_panic_only_fails_its_own_promise(&FiberPool::new(50)));
}

#[test]
fn thread_pool_submits_run_and_a_panic_only_fails_its_own_promise() {
    run_clean(|| submits_run_and_a_panic_only_fails_its_own_promise(&ThreadPool::new(5)));
}

fn maxsize_two_never_runs_more_than_two_jobs<P: Pool>(pool: &P) {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let promises: Vec<_> = (0..12)
        .map(|_| {
            let (running, most) = (running.clone(), most.clone());
            pool.submit_job(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                pause(P::FIBERS, Duration::from_millis(3));
                running.fetch_sub(1, Ordering::SeqCst);
                0
            })
            .unwrap()
        })
        .collect();
    for promise in promises {
        promise.into_result().unwrap();
        assert!(pool.workers() <= 2, "{} workers", pool.workers());
    }
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

#[test]
fn fiber_pool_of_maxsize_two_never_runs_more_than_two_jobs() {
    run_clean(|| maxsize_two_never_runs_more_than_two_jobs(&FiberPool::new(2)));
}

#[test]
fn thread_pool_of_maxsize_two_never_runs_more_than_two_jobs() {
    run_clean(|| maxsize_two_never_runs_more_than_two_jobs(&ThreadPool::new(2)));
}

#[test]
fn map_keeps_the_input_order_under_random_delays() {
    run_clean(|| {
        let delays: Vec<u64> = {
            let mut rng = Rng::new(3);
            (0..30).map(|_| rng.below(3000)).collect()
        };
        let fibers = FiberPool::new(10);
        let out: Vec<u64> = fibers
            .map(
                |(i, us)| {
                    sleep(Duration::from_micros(us)).unwrap();
                    i
                },
                delays
                    .iter()
                    .copied()
                    .enumerate()
                    .map(|(i, d)| (i as u64, d)),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (0..30).collect::<Vec<_>>());
        let threads = ThreadPool::new(5);
        let out: Vec<u64> = threads
            .map(
                |(i, us)| {
                    std::thread::sleep(Duration::from_micros(us));
                    i
                },
                delays
                    .iter()
                    .copied()
                    .enumerate()
                    .map(|(i, d)| (i as u64, d)),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (0..30).collect::<Vec<_>>());
        threads.close().unwrap();
        fibers.close().unwrap();
    });
}

#[test]
fn map_timeout_fails_with_timed_out_and_cancels_the_rest() {
    run_clean(|| {
        let pool = FiberPool::new(2);
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let start = Instant::now();
        let mut results = pool
            .map_timeout(
                move |i: u64| {
                    s.fetch_add(1, Ordering::SeqCst);
                    sleep(Duration::from_millis(if i == 0 { 1 } else { 60_000 })).unwrap();
                    i
                },
                0..10,
                Duration::from_millis(20),
            )
            .unwrap();
        assert_eq!(results.next().unwrap().unwrap(), 0);
        let err = results.next().unwrap().unwrap_err();
        assert_eq!(err.wait_error(), Some(Error::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(results.next().is_none());
        // The cancelled jobs end promptly; the queued ones never start.
        pool.close().unwrap();
        assert!(
            started.load(Ordering::SeqCst) <= 3,
            "{}",
            started.load(Ordering::SeqCst)
        );
    });
}

fn close_then_submit_and_map_fail<P: Pool>(pool: &P) {
    let promise = pool
        .submit_job(|| {
            pause(P::FIBERS, Duration::from_millis(2));
            5
        })
        .unwrap();
    pool.close_pool().unwrap();
    assert_eq!(pool.workers(), 0);
    assert_eq!(promise.into_result().unwrap(), 5, "queued work finished");
    assert_eq!(pool.submit_job(|| 0).unwrap_err(), PoolClosed);
}

#[test]
fn a_closed_fiber_pool_refuses_work() {
    run_clean(|| {
        let pool = FiberPool::new(4);
        close_then_submit_and_map_fail(&pool);
        assert_eq!(pool.map(|x: u8| x, 0..3).unwrap_err(), PoolClosed);
    });
}

#[test]
fn a_closed_thread_pool_refuses_work() {
    run_clean(|| {
        let pool = ThreadPool::new(4);
        close_then_submit_and_map_fail(&pool);
        assert_eq!(pool.map(|x: u8| x, 0..3).unwrap_err(), PoolClosed);
    });
}

#[test]
fn minsize_workers_start_at_once_and_extra_ones_leave_when_idle() {
    run_clean(|| {
        let pool = PoolBuilder::new()
            .name("sized")
            .minsize(2)
            .maxsize(4)
            .idle_timeout(Duration::from_millis(5))
            .fiber_pool();
        assert_eq!((pool.name(), pool.size()), ("sized", 2));
        let jobs: Vec<_> = (0..4)
            .map(|_| {
                pool.submit(|| sleep(Duration::from_millis(2)).unwrap())
                    .unwrap()
            })
            .collect();
        yield_now().unwrap();
        assert_eq!(pool.size(), 4);
        for job in jobs {
            job.into_result().unwrap();
        }
        while pool.size() > 2 {
            sleep(Duration::from_millis(2)).unwrap();
        }
        assert_eq!(pool.size(), 2);
        pool.close().unwrap();

        let threads = PoolBuilder::new()
            .minsize(1)
            .maxsize(3)
            .idle_timeout(Duration::from_millis(5))
            .thread_pool();
        assert_eq!(threads.size(), 1);
        threads.close().unwrap();
        assert_eq!(threads.size(), 0);
    });
}

#[test]
fn cancelling_a_running_fiber_job_cancels_its_worker_which_is_replaced() {
    run_clean(|| {
        let pool = FiberPool::new(1);
        let stuck = pool
            .submit(|| sleep(Duration::from_secs(60)).map(|()| 0))
            .unwrap();
        let next = pool.submit(|| fiber_core::Result::Ok(1)).unwrap();
        yield_now().unwrap();
        assert!(stuck.is_running());
        // From another thread, through the pool's Hub.
        let s = stuck.clone();
        std::thread::spawn(move || assert!(s.cancel()))
            .join()
            .unwrap();
        assert!(stuck.into_result().unwrap_err().is_cancelled());
        assert_eq!(next.into_result().unwrap(), Ok(1));
        assert!(pool.size() <= 1);
        pool.close().unwrap();
    });
}

#[test]
fn join_waits_for_every_submitted_job() {
    run_clean(|| {
        let done = Arc::new(AtomicUsize::new(0));
        let fibers = FiberPool::new(3);
        let threads = ThreadPool::new(3);
        for i in 0..6u64 {
            let d = done.clone();
            fibers
                .submit(move || {
                    sleep(Duration::from_millis(i)).unwrap();
                    d.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            let d = done.clone();
            threads
                .submit(move || {
                    std::thread::sleep(Duration::from_millis(i));
                    d.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        fibers.join().unwrap();
        threads.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 12);
        threads.close().unwrap();
        fibers.close().unwrap();
    });
}

#[test]
fn blocking_runs_on_a_thread_while_the_other_fibers_keep_running() {
    run_clean(|| {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = spawn(move || {
            while sleep(Duration::from_millis(1)).is_ok() {
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        let caller = std::thread::current().id();
        let (value, ran_on) = blocking(move || {
            std::thread::sleep(Duration::from_millis(30));
            (42, std::thread::current().id())
        })
        .unwrap();
        assert_eq!(value, 42);
        assert_ne!(ran_on, caller);
        assert!(
            ticks.load(Ordering::SeqCst) >= 5,
            "{}",
            ticks.load(Ordering::SeqCst)
        );
        ticker.cancel();
        ticker.join().unwrap();
        let err = std::panic::catch_unwind(|| blocking(|| panic!("inner trouble"))).unwrap_err();
        assert!(
            err.downcast_ref::<String>()
                .unwrap()
                .contains("inner trouble")
        );
    });
}
