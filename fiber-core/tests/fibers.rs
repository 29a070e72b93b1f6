//! Spawning, joining, panics, names and the fiber dump.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fiber_core::{Builder, FiberState, current, dump, sleep, spawn, yield_now};
use support::run_clean;

#[test]
fn thousand_fibers_that_sleep_are_spawned_and_joined() {
    run_clean(|| {
        let handles: Vec<_> = (0..1000u64)
            .map(|i| {
                spawn(move || {
                    sleep(Duration::from_millis(i % 7)).unwrap();
                    i
                })
            })
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 999 * 1000 / 2);
    });
}

#[test]
fn thousand_deep_nested_spawns_join_in_order() {
    fn nest(depth: u32, order: Rc<RefCell<Vec<u32>>>) -> u32 {
        if depth == 0 {
            order.borrow_mut().push(0);
            return 0;
        }
        let o = order.clone();
        let child = Builder::new()
            .stack_size(32 * 1024)
            .spawn(move || nest(depth - 1, o))
            .unwrap();
        let below = child.join().unwrap();
        order.borrow_mut().push(depth);
        below + 1
    }
    run_clean(|| {
        let order = Rc::new(RefCell::new(Vec::new()));
        assert_eq!(nest(1000, order.clone()), 1000);
        assert_eq!(*order.borrow(), (0..=1000).collect::<Vec<_>>());
    });
}

#[test]
fn panic_in_a_fiber_reaches_join_and_the_hub_lives_on() {
    run_clean(|| {
        let bad = spawn(|| -> u32 { panic!("fiber boom") });
        let err = bad.join().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"fiber boom"));
        let good = spawn(|| 5);
        assert_eq!(good.join().unwrap(), 5);
    });
}

#[test]
fn fibers_have_ids_names_and_states() {
    run_clean(|| {
        let root = current();
        assert!(root.is_root());
        assert_eq!((root.id(), root.name()), (0, "Root"));
        assert_eq!(root.state(), FiberState::Running);
        let named = Builder::new()
            .name("worker")
            .spawn(|| current().name().to_owned())
            .unwrap();
        let anonymous = spawn(|| current().name().to_owned());
        assert_eq!(named.fiber().state(), FiberState::Ready);
        assert!(!named.is_finished());
        let id = anonymous.fiber().id();
        assert_eq!(named.join().unwrap(), "worker");
        assert_eq!(anonymous.join().unwrap(), format!("Fiber-{id}"));
    });
}

#[test]
fn dump_lists_every_fiber_and_what_it_waits_on() {
    run_clean(|| {
        let sleeper = Builder::new()
            .name("sleeper")
            .spawn(|| sleep(Duration::from_secs(60)))
            .unwrap();
        let yielder = Builder::new()
            .name("yielder")
            .spawn(|| yield_now())
            .unwrap();
        yield_now().unwrap();
        let dump = dump();
        let names: Vec<_> = dump.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["Root", "sleeper", "yielder"]);
        assert_eq!(dump[1].state, FiberState::Waiting);
        assert_eq!(dump[1].waiting_on, Some("sleep"));
        assert_eq!(
            dump[1].to_string(),
            format!("#{} \"sleeper\" Waiting in sleep", dump[1].id)
        );
        assert_eq!(dump[2].state, FiberState::Ready);
        sleeper.cancel();
        assert!(yielder.join().unwrap().is_ok());
        assert!(sleeper.join().unwrap().is_err());
        assert_eq!(fiber_core::dump().len(), 1);
    });
}

#[test]
fn spawned_fibers_start_when_the_spawner_blocks() {
    run_clean(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let child = spawn(move || l.borrow_mut().push("child"));
        log.borrow_mut().push("parent before");
        yield_now().unwrap();
        log.borrow_mut().push("parent after");
        child.join().unwrap();
        assert_eq!(*log.borrow(), ["parent before", "child", "parent after"]);
    });
}

#[test]
fn fiber_locals_are_per_fiber_and_dropped_when_it_finishes() {
    use fiber_core::FiberLocal;
    use std::cell::Cell;
    struct Tracked(Rc<Cell<u32>>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    static VALUE: FiberLocal<Cell<u32>> = FiberLocal::new(|| Cell::new(1));
    static TRACKED: FiberLocal<RefCell<Option<Tracked>>> = FiberLocal::new(|| RefCell::new(None));
    run_clean(|| {
        let drops = Rc::new(Cell::new(0));
        VALUE.with(|v| v.set(10));
        let (d1, d2) = (drops.clone(), drops.clone());
        let a = spawn(move || {
            TRACKED.with(|t| *t.borrow_mut() = Some(Tracked(d1)));
            VALUE.with(|v| v.set(20));
            yield_now().unwrap();
            VALUE.with(|v| v.get())
        });
        let b = spawn(move || {
            TRACKED.with(|t| *t.borrow_mut() = Some(Tracked(d2)));
            VALUE.with(|v| v.get())
        });
        assert_eq!(a.join().unwrap(), 20);
        assert_eq!(b.join().unwrap(), 1);
        assert_eq!(VALUE.with(|v| v.get()), 10);
        assert_eq!(drops.get(), 2, "both fibers' locals were dropped");
        VALUE.reset();
        assert_eq!(VALUE.with(|v| v.get()), 1);
    });
}
