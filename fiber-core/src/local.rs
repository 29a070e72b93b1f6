//! Fiber-local storage.

use std::any::Any;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::hub::Hub;

/// A value each fiber has its own copy of, made on first access by the fiber and dropped when
/// it finishes (Gruvi's `local`). Declare it as a `static`.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use fiber_core::FiberLocal;
///
/// static COUNTER: FiberLocal<Cell<u32>> = FiberLocal::new(|| Cell::new(0));
///
/// fiber_core::run(|| {
///     COUNTER.with(|c| c.set(5));
///     let other = fiber_core::spawn(|| COUNTER.with(|c| c.get()));
///     assert_eq!(other.join().unwrap(), 0); // its own copy
///     assert_eq!(COUNTER.with(|c| c.get()), 5);
/// });
/// ```
pub struct FiberLocal<T: 'static> {
    init: fn() -> T,
    _not_sync: PhantomData<fn() -> T>,
}

impl<T: 'static> FiberLocal<T> {
    /// A fiber-local whose per-fiber value starts as `init()`.
    pub const fn new(init: fn() -> T) -> FiberLocal<T> {
        FiberLocal {
            init,
            _not_sync: PhantomData,
        }
    }

    /// Calls `f` with the current fiber's value, making it first if needed. The value is not
    /// borrowed from any shared table while `f` runs, so `f` may use other fiber-locals.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let fiber = Hub::current().current_fiber();
        let key = self as *const Self as usize;
        let existing = fiber.locals.borrow().get(&key).cloned();
        let value: Rc<dyn Any> = match existing {
            Some(value) => value,
            None => {
                let value: Rc<dyn Any> = Rc::new((self.init)());
                fiber.locals.borrow_mut().insert(key, value.clone());
                value
            }
        };
        drop(fiber);
        f(value
            .downcast_ref::<T>()
            .expect("fiber-local keyed by its own address"))
    }

    /// Drops the current fiber's value, if it has one; the next access makes a new one.
    pub fn reset(&'static self) {
        let fiber = Hub::current().current_fiber();
        let key = self as *const Self as usize;
        let old = fiber.locals.borrow_mut().remove(&key);
        drop(old);
    }
}

impl<T: 'static> std::fmt::Debug for FiberLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FiberLocal").finish_non_exhaustive()
    }
}
