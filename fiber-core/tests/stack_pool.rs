//! The stack pool: reuse, cache bounds, trimming, and unguarded pools of many stacks.

use fiber_core::__private::{Coroutine, Outcome, suspend};
use fiber_core::{StackConfig, StackPool};

#[test]
fn finished_coroutine_stack_is_reused_by_the_next_one() {
    let pool = StackPool::new(StackConfig::new().stack_size(64 * 1024));
    let stack = pool.get().unwrap();
    let range = stack.range();
    let mut first = Coroutine::new(stack, |x| x);
    assert!(matches!(first.resume(1), Outcome::Finished(Ok(1))));
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.cached, stats.created), (0, 1, 1));

    let again = pool.get().unwrap();
    assert_eq!(again.range(), range);
    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.cached, stats.reused), (1, 0, 1));
    let mut second = Coroutine::new(again, |x| x + 1);
    assert!(matches!(second.resume(1), Outcome::Finished(Ok(2))));
}

#[test]
fn cache_keeps_at_most_max_cached_stacks() {
    for config in [StackConfig::new(), StackConfig::unguarded()] {
        let pool = StackPool::new(config.stack_size(16 * 1024).max_cached(4));
        let stacks: Vec<_> = (0..10).map(|_| pool.get().unwrap()).collect();
        assert_eq!(pool.stats().in_use, 10);
        drop(stacks);
        let stats = pool.stats();
        // Unguarded stacks are trimmed in batches, back to 4 each time 8 are idle.
        let expected_cached = if pool.is_guarded() { 4 } else { 5 };
        assert_eq!(
            (stats.in_use, stats.cached, stats.created),
            (0, expected_cached, 10)
        );
        // Trimmed unguarded stacks are reused too, so nothing new is mapped for them.
        let stacks: Vec<_> = (0..10).map(|_| pool.get().unwrap()).collect();
        let expected_created = if pool.is_guarded() { 16 } else { 10 };
        assert_eq!(pool.stats().created, expected_created);
        drop(stacks);
    }
}

#[test]
fn trim_releases_cached_stacks_beyond_keep() {
    let pool = StackPool::new(StackConfig::new().stack_size(16 * 1024));
    let stacks: Vec<_> = (0..8).map(|_| pool.get().unwrap()).collect();
    drop(stacks);
    assert_eq!(pool.stats().cached, 8);
    pool.trim(2);
    assert_eq!(pool.stats().cached, 2);
    pool.trim(0);
    assert_eq!(pool.stats().cached, 0);
}

#[test]
fn stacks_outlive_their_pool_handle() {
    let pool = StackPool::new(StackConfig::unguarded().stack_size(16 * 1024));
    let stack = pool.get().unwrap();
    drop(pool);
    let mut co = Coroutine::new(stack, |x| suspend(x) * 2);
    assert!(matches!(co.resume(3), Outcome::Suspended(3)));
    assert!(matches!(co.resume(4), Outcome::Finished(Ok(8))));
}

#[test]
fn unguarded_pool_runs_100_000_coroutines_at_once() {
    const FIBERS: usize = 100_000;
    let pool = StackPool::new(StackConfig::unguarded().stack_size(16 * 1024));
    let mut fibers: Vec<Coroutine> = (0..FIBERS)
        .map(|i| {
            let mut co = Coroutine::new(pool.get().unwrap(), move |x| suspend(x + i) + 1);
            assert!(matches!(co.resume(i), Outcome::Suspended(v) if v == 2 * i));
            co
        })
        .collect();
    assert_eq!(pool.stats().in_use, FIBERS);
    for (i, co) in fibers.iter_mut().enumerate() {
        assert!(matches!(co.resume(i), Outcome::Finished(Ok(v)) if v == i + 1));
    }
    assert_eq!(pool.stats().in_use, 0);
    assert_eq!(pool.stats().created, FIBERS as u64);
}
