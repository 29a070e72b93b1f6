//! Switching into and out of coroutines: values, panics, drops, nesting.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use fiber_core::__private::{Coroutine, Outcome, in_coroutine, suspend};
use fiber_core::{StackConfig, StackPool};

fn pool() -> StackPool {
    StackPool::new(StackConfig::new().stack_size(64 * 1024))
}

fn expect_suspended(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Suspended(value) => value,
        other => panic!("expected a suspension, got {other:?}"),
    }
}

fn expect_returned(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Finished(Ok(value)) => value,
        other => panic!("expected a return, got {other:?}"),
    }
}

#[test]
fn values_pass_both_ways_over_many_switches() {
    const ROUNDS: usize = 100_000;
    let mut co = Coroutine::new(pool().get().unwrap(), |first| {
        let mut received = first;
        for expected in 0..ROUNDS {
            assert_eq!(received, expected);
            received = suspend(received * 2 + 1);
        }
        received + 1000
    });
    for i in 0..ROUNDS {
        assert_eq!(expect_suspended(co.resume(i)), i * 2 + 1);
    }
    assert_eq!(expect_returned(co.resume(7)), 1007);
    assert!(co.is_finished());
}

#[test]
fn panic_in_a_coroutine_reaches_the_resumer() {
    let stacks = pool();
    let mut co = Coroutine::new(stacks.get().unwrap(), |_| {
        suspend(1);
        panic!("boom in a coroutine");
    });
    assert_eq!(expect_suspended(co.resume(0)), 1);
    match co.resume(0) {
        Outcome::Finished(Err(payload)) => {
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in a coroutine"));
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(co.is_finished());
    assert_eq!(stacks.stats().in_use, 0);
}

#[test]
fn resumer_keeps_working_after_a_coroutine_panics() {
    let stacks = pool();
    for round in 0..3 {
        let mut co = Coroutine::new(stacks.get().unwrap(), move |_| panic!("round {round}"));
        assert!(matches!(co.resume(0), Outcome::Finished(Err(_))));
    }
    let mut co = Coroutine::new(stacks.get().unwrap(), |x| x + 1);
    assert_eq!(expect_returned(co.resume(1)), 2);
}

struct SetOnDrop(Rc<Cell<bool>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn dropping_a_suspended_coroutine_runs_its_destructors() {
    let stacks = pool();
    let dropped = Rc::new(Cell::new(false));
    let after_suspend = Rc::new(Cell::new(false));
    let (flag, reached) = (Rc::clone(&dropped), Rc::clone(&after_suspend));
    let mut co = Coroutine::new(stacks.get().unwrap(), move |_| {
        let _guard = SetOnDrop(flag);
        suspend(0);
        reached.set(true);
        0
    });
    expect_suspended(co.resume(0));
    assert!(!dropped.get());
    drop(co);
    assert!(dropped.get());
    assert!(!after_suspend.get());
    assert_eq!(stacks.stats().in_use, 0);
}

#[test]
fn dropping_an_unstarted_coroutine_drops_its_closure_without_running_it() {
    let stacks = pool();
    let dropped = Rc::new(Cell::new(false));
    let ran = Rc::new(Cell::new(false));
    let (guard, flag) = (SetOnDrop(Rc::clone(&dropped)), Rc::clone(&ran));
    let co = Coroutine::new(stacks.get().unwrap(), move |_| {
        let _guard = guard;
        flag.set(true);
        0
    });
    drop(co);
    assert!(dropped.get());
    assert!(!ran.get());
    assert_eq!(stacks.stats().in_use, 0);
}

#[test]
#[should_panic(expected = "suspend() called outside a coroutine")]
fn suspend_outside_a_coroutine_panics() {
    suspend(0);
}

#[test]
#[should_panic(expected = "resumed a finished coroutine")]
fn resuming_a_finished_coroutine_panics() {
    let mut co = Coroutine::new(pool().get().unwrap(), |x| x);
    expect_returned(co.resume(0));
    co.resume(0);
}

#[test]
fn nested_coroutines_suspend_to_their_own_resumer() {
    let stacks = pool();
    let inner_stacks = stacks.clone();
    let mut outer = Coroutine::new(stacks.get().unwrap(), move |_| {
        let mut inner = Coroutine::new(inner_stacks.get().unwrap(), |x| {
            let y = suspend(x + 1);
            y * 10
        });
        let a = expect_suspended(inner.resume(1));
        let from_root = suspend(a);
        expect_returned(inner.resume(from_root))
    });
    assert_eq!(expect_suspended(outer.resume(0)), 2);
    assert_eq!(expect_returned(outer.resume(5)), 50);
}

#[test]
fn in_coroutine_tells_the_thread_stack_from_a_coroutine() {
    assert!(!in_coroutine());
    let mut co = Coroutine::new(pool().get().unwrap(), |_| usize::from(in_coroutine()));
    assert_eq!(expect_returned(co.resume(0)), 1);
    assert!(!in_coroutine());
}

/// The shape the Hub uses: the thread resumes a hub coroutine, which resumes fibers in turn; each
/// fiber suspends back to the hub, and the hub suspends back to the thread.
#[test]
fn hub_coroutine_schedules_fibers_round_robin() {
    let stacks = pool();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (hub_stacks, hub_log) = (stacks.clone(), Rc::clone(&log));
    let mut hub = Coroutine::new(stacks.get().unwrap(), move |_| {
        let mut fibers: Vec<Coroutine> = (0..3)
            .map(|id| {
                let log = Rc::clone(&hub_log);
                Coroutine::new(hub_stacks.get().unwrap(), move |_| {
                    for step in 0..id + 1 {
                        log.borrow_mut().push((id, step));
                        suspend(0);
                    }
                    id
                })
            })
            .collect();
        let mut finished = 0;
        while !fibers.is_empty() {
            fibers.retain_mut(|fiber| match fiber.resume(0) {
                Outcome::Suspended(_) => true,
                Outcome::Finished(result) => {
                    finished += 1;
                    assert!(result.is_ok());
                    false
                }
            });
            // Back to the thread once per round.
            suspend(0);
        }
        finished
    });
    let mut rounds = 0;
    let finished = loop {
        match hub.resume(0) {
            Outcome::Suspended(_) => rounds += 1,
            Outcome::Finished(result) => break result.unwrap(),
        }
    };
    assert_eq!(finished, 3);
    assert_eq!(rounds, 4);
    let expected = vec![(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2)];
    assert_eq!(*log.borrow(), expected);
    assert_eq!(stacks.stats().in_use, 0);
}

#[test]
fn coroutines_run_on_other_threads() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut co = Coroutine::new(pool().get().unwrap(), move |x| suspend(x + t) + t);
                let a = expect_suspended(co.resume(10));
                expect_returned(co.resume(a))
            })
        })
        .collect();
    for (t, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), 10 + 2 * t);
    }
}

#[test]
fn float_math_in_a_coroutine_is_exact_across_switches() {
    let mut co = Coroutine::new(pool().get().unwrap(), |_| {
        let mut x = 1.0f64;
        for _ in 0..10 {
            x = std::hint::black_box(x) / 3.0;
            suspend(x.to_bits() as usize);
        }
        (x * 59049.0).round() as usize
    });
    let mut y = 1.0f64;
    for _ in 0..10 {
        y = std::hint::black_box(y) / 3.0;
        assert_eq!(expect_suspended(co.resume(0)), y.to_bits() as usize);
    }
    assert_eq!(expect_returned(co.resume(0)), 1);
}
