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

/// Drops every fiber-local value of the current fiber; the next access to each makes a new
/// one. For a fiber that runs one piece of work after another (an HTTP server's runner serves
/// one connection after another), so that nothing a piece of work left in a fiber-local
/// reaches the next.
///
/// # Switchpoint
///
/// The values' destructors run here and may block.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use fiber_core::FiberLocal;
///
/// static SEEN: FiberLocal<Cell<u32>> = FiberLocal::new(|| Cell::new(0));
///
/// fiber_core::run(|| {
///     SEEN.with(|s| s.set(7));
///     fiber_core::clear_locals();
///     assert_eq!(SEEN.with(|s| s.get()), 0);
/// });
/// ```
pub fn clear_locals() {
    let fiber = Hub::current().current_fiber();
    if fiber.locals.borrow().is_empty() {
        return;
    }
    let locals = std::mem::take(&mut *fiber.locals.borrow_mut());
    drop(fiber);
    // Dropped with no borrow held: a destructor may use fiber-locals.
    drop(locals);
}

impl<T: 'static> std::fmt::Debug for FiberLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FiberLocal").finish_non_exhaustive()
    }
}
