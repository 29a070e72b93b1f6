//! A slot holding a handle's callback, safe against being replaced while it runs.

use std::cell::Cell;

/// Holds one boxed callback of a handle (`uv_timer_cb`, `uv_read_cb`, ...).
///
/// libuv calls a handle's callback while user code may replace or clear it from inside that very
/// callback (`timer.start(..)` from the timer's own callback). [`Slot::with`] therefore moves the
/// callback out of the slot while it runs and puts it back afterwards, unless the callback was
/// replaced or cleared meanwhile; the old closure is then dropped after it has returned, never
/// while it is running.
pub(crate) struct Slot<F: ?Sized> {
    cb: Cell<Option<Box<F>>>,
    /// Bumped by every `set`/`clear`, so `with` can tell whether the running callback was replaced.
    generation: Cell<u32>,
}

impl<F: ?Sized> Slot<F> {
    pub(crate) fn new() -> Self {
        Slot {
            cb: Cell::new(None),
            generation: Cell::new(0),
        }
    }

    /// Installs `cb`, dropping the previous callback (if it is not running).
    pub(crate) fn set(&self, cb: Box<F>) {
        self.generation.set(self.generation.get().wrapping_add(1));
        drop(self.cb.replace(Some(cb)));
    }

    /// Removes the callback.
    pub(crate) fn clear(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        drop(self.cb.take());
    }

    /// Runs `f` on the callback, if one is installed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut F) -> R) -> Option<R> {
        let mut cb = self.cb.take()?;
        let generation = self.generation.get();
        let ret = f(&mut cb);
        if self.generation.get() == generation {
            // Unchanged since the take, so still empty (`set` and `clear` bump the
            // generation): nothing to drop. Forgotten rather than dropped, so that no drop code
            // runs for a value that cannot be there (were it there, it would leak, never be
            // used after free).
            let empty = self.cb.replace(Some(cb));
            debug_assert!(empty.is_none());
            std::mem::forget(empty);
        }
        Some(ret)
    }
}

/// The set of callbacks a handle keeps, dropped as soon as the handle is closed: libuv calls
/// none of them after `uv_close`, and what they capture (often other handles) should go at once,
/// not when the loop later runs the close callback.
pub(crate) trait Callbacks {
    fn clear_all(&self);
}

impl<F: ?Sized> Callbacks for Slot<F> {
    fn clear_all(&self) {
        self.clear();
    }
}

impl Callbacks for () {
    fn clear_all(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn callback_survives_its_own_call() {
        let slot: Slot<dyn FnMut() -> u32> = Slot::new();
        let mut n = 0;
        slot.set(Box::new(move || {
            n += 1;
            n
        }));
        assert_eq!(slot.with(|cb| cb()), Some(1));
        assert_eq!(slot.with(|cb| cb()), Some(2));
    }

    #[test]
    fn replacing_from_inside_drops_the_old_callback_after_it_returns() {
        let slot: Rc<Slot<dyn FnMut()>> = Rc::new(Slot::new());
        let token = Rc::new(());
        let (s, t) = (slot.clone(), token.clone());
        slot.set(Box::new(move || {
            let _keep = &t;
            s.set(Box::new(|| {}));
        }));
        assert_eq!(Rc::strong_count(&token), 2);
        slot.with(|cb| cb());
        assert_eq!(
            Rc::strong_count(&token),
            1,
            "old closure dropped once replaced"
        );
        // Break the slot -> closure -> slot cycle of the test.
        slot.clear();
    }

    #[test]
    fn clearing_from_inside_leaves_the_slot_empty() {
        let slot: Rc<Slot<dyn FnMut()>> = Rc::new(Slot::new());
        let s = slot.clone();
        slot.set(Box::new(move || s.clear()));
        assert_eq!(slot.with(|cb| cb()), Some(()));
        assert_eq!(slot.with(|cb| cb()), None);
    }
}
