//! The raw context switch: coroutines on pooled stacks, on top of the `corosensei` crate. This
//! is the only file that uses `corosensei`.
//!
//! A [`Coroutine`] runs a closure on its own [`Stack`]. [`Coroutine::resume`] switches into it,
//! passing a `usize`; inside, [`suspend`] switches back to whoever resumed it, passing a `usize`
//! the other way. The model is asymmetric, like Gruvi's greenlets under the Hub: the thread (the
//! root) resumes the Hub's coroutine, the Hub resumes fibers, and each suspends back to its
//! resumer.
//!
//! The closure runs under `catch_unwind`: a panic never unwinds into the switch's frames; its
//! payload comes back from `resume` as [`Outcome::Finished`]`(Err(payload))`. When the closure
//! returns, the coroutine makes its final switch back to its resumer and is never resumed again;
//! the resumer then gives the stack back to the pool. So a stack is never released while code
//! still runs on it.
//!
//! # Memory layout
//!
//! `Coroutine::new` writes a `Control` block at the top of the stack (the [`GuardRecord`] read
//! by the overflow handler, the coroutine's `Yielder` and its flags). corosensei's stack starts
//! just below it: it stores the closure there, and the closure's frames grow down from there. A
//! thread-local pointer, `CURRENT`, names the innermost running coroutine's control block;
//! `resume` sets it and restores it when the coroutine switches back.
//!
//! # Why corosensei
//!
//! The first switch was boost.context's assembly (the `context` crate). Its switch saves and
//! restores MXCSR and the x87 control word, which cost ~10 ns a switch on this project's machine
//! (`stmxcsr` alone), and became 56-86 ns whenever the two sides' MXCSR exception status bits
//! differed, which needed a workaround that wrote into boost's saved register block.
//! corosensei's switch saves only what the ABI makes callee-saved in general-purpose registers
//! and lets the compiler spill the rest, so neither cost exists. As everywhere on a thread,
//! floating-point control state (rounding mode, exception masks) is shared by every fiber of the
//! thread: a fiber that changes it changes it for the others.

use std::cell::Cell;
use std::mem;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::thread;

use corosensei::stack::{STACK_ALIGNMENT, Stack as SwitchStack, StackPointer};
use corosensei::{CoroutineResult, Yielder};

use crate::stack::Stack;
use crate::stack_overflow::{self, GuardRecord};

/// Closures larger than this are boxed rather than stored at the top of the stack.
const MAX_INLINE_ENTRY: usize = 1024;

thread_local! {
    /// The control block of the innermost coroutine running on this thread, or null on the
    /// thread's own stack. An atomic so that the signal handler can read it.
    static CURRENT: AtomicPtr<Control> = const { AtomicPtr::new(ptr::null_mut()) };
    /// Whether `prepare_thread` ran on this thread.
    static PREPARED: Cell<bool> = const { Cell::new(false) };
}

/// What [`Coroutine::resume`] came back with.
#[derive(Debug)]
pub enum Outcome {
    /// The coroutine called [`suspend`] with this value; resume it again to continue.
    Suspended(usize),
    /// The coroutine's closure returned this value or panicked with this payload. Its stack is
    /// back in the pool.
    Finished(thread::Result<usize>),
}

/// The corosensei coroutine under ours: `usize` each way, the closure's result at the end.
type Inner = corosensei::Coroutine<usize, usize, thread::Result<usize>, PooledStack>;

/// A closure running on its own stack, switched to with [`resume`](Self::resume) and away from
/// with [`suspend`].
///
/// Dropping a coroutine that has started and not finished unwinds its stack: `suspend` panics
/// inside it with a private payload, its destructors run, and `drop` returns when the closure
/// has finished. Code on its stack must therefore not call `suspend` from a destructor while
/// being dropped (that would panic during a panic and abort).
///
/// A coroutine stays on the thread that made it:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<fiber_core::__private::Coroutine>();
/// ```
pub struct Coroutine {
    // INVARIANT: points to the `Control` that `new` wrote at the top of the stack that `inner`
    // runs on; valid while `inner` is `Some`. Only this thread accesses it (the type is not
    // `Send`), through shared references, since all its fields are cells.
    control: NonNull<Control>,
    /// The coroutine: `Some` until it has finished (its stack then goes back to the pool).
    inner: Option<Inner>,
}

/// The per-coroutine state shared by the two sides of the switch.
#[repr(C)]
struct Control {
    /// Must stay the first field: the overflow handler reads `CURRENT` as a `GuardRecord`.
    record: GuardRecord,
    /// The coroutine's yielder (on its stack), set when the closure starts; null before.
    yielder: Cell<*const Yielder<usize, usize>>,
    /// Set by `Coroutine::drop` to make `suspend` panic inside the coroutine.
    unwinding: Cell<bool>,
}

/// The payload of the panic that unwinds a dropped coroutine.
struct ForcedUnwind;

/// A pooled stack as corosensei sees it: from `base` (just below our control block) down to the
/// stack's guard page.
struct PooledStack {
    stack: Stack,
    base: StackPointer,
    limit: StackPointer,
}

// SAFETY: `base..limit` is memory that `stack` owns for as long as this value lives (the
// control block sits above `base`, outside corosensei's part); `base` is aligned to
// STACK_ALIGNMENT and at least half the stack lies below it (checked in `Coroutine::with_entry`),
// far more than MIN_STACK_SIZE for every size `StackConfig` accepts. A guarded stack has its
// guard page just below `bottom`, included in `limit`. An unguarded stack has none: that is the
// documented trade-off of `StackConfig::unguarded` (no overflow detection), chosen explicitly by
// the program.
unsafe impl SwitchStack for PooledStack {
    fn base(&self) -> StackPointer {
        self.base
    }

    fn limit(&self) -> StackPointer {
        self.limit
    }
}

impl Coroutine {
    /// Prepares `entry` to run on `stack`; it starts at the first [`resume`](Self::resume),
    /// receiving that call's value, and its return value comes back as [`Outcome::Finished`].
    pub fn new<F>(stack: Stack, entry: F) -> Coroutine
    where
        F: FnOnce(usize) -> usize + 'static,
    {
        if mem::size_of::<F>() > MAX_INLINE_ENTRY {
            let boxed = Box::new(entry);
            Coroutine::with_entry(stack, boxed)
        } else {
            Coroutine::with_entry(stack, entry)
        }
    }

    fn with_entry<F>(stack: Stack, entry: F) -> Coroutine
    where
        F: FnOnce(usize) -> usize + 'static,
    {
        prepare_thread();
        let top = stack.top();
        let control_addr = (top as usize - mem::size_of::<Control>())
            & !(mem::align_of::<Control>().max(STACK_ALIGNMENT) - 1);
        let control_ptr = top.with_addr(control_addr).cast::<Control>();
        assert!(
            control_addr - stack.bottom() as usize >= stack.size() / 2,
            "coroutine stack too small"
        );
        // SAFETY: `control_ptr` is aligned and lies at the top of the stack's writable memory,
        // which `stack` owns and nothing else uses (corosensei's part starts below it).
        unsafe {
            control_ptr.write(Control {
                record: GuardRecord::new(stack.guard_range(), stack.size()),
                yielder: Cell::new(ptr::null()),
                unwinding: Cell::new(false),
            })
        };
        let control = NonNull::new(control_ptr).expect("stack addresses are not null");
        let lowest = stack
            .guard_range()
            .map_or(stack.bottom() as usize, |guard| guard.start);
        let switch_stack = PooledStack {
            base: NonZeroUsize::new(control_addr).expect("stack addresses are not null"),
            limit: NonZeroUsize::new(lowest).expect("stack addresses are not null"),
            stack,
        };
        let inner = Inner::with_stack(switch_stack, move |yielder, data| {
            // SAFETY: the control block lives above this closure's stack for the coroutine's
            // whole life (INVARIANT of `Coroutine::control`), and only this thread touches it.
            let control = unsafe { control.as_ref() };
            control.yielder.set(yielder);
            panic::catch_unwind(AssertUnwindSafe(move || entry(data)))
        });
        Coroutine {
            control,
            inner: Some(inner),
        }
    }

    /// Switches into the coroutine, passing `data` (to the closure on the first call, as the
    /// return value of [`suspend`] after that), until it suspends or finishes.
    ///
    /// # Panics
    ///
    /// If the coroutine has finished.
    #[inline(always)]
    pub fn resume(&mut self, data: usize) -> Outcome {
        let inner = self.inner.as_mut().expect("resumed a finished coroutine");
        let control_ptr = self.control.as_ptr();
        let outer = CURRENT.with(|current| current.load(Ordering::Relaxed));
        // SAFETY: `inner` is `Some`, so the stack and its control block are alive (INVARIANT of
        // `control`).
        let control = unsafe { &*control_ptr };
        control.record.set_prev(outer.cast());
        CURRENT.with(|current| current.store(control_ptr, Ordering::Relaxed));
        let result = inner.resume(data);
        CURRENT.with(|current| current.store(outer, Ordering::Relaxed));
        match result {
            CoroutineResult::Yield(data) => Outcome::Suspended(data),
            CoroutineResult::Return(result) => {
                // The coroutine made its final switch: nothing runs on its stack any more, and
                // dropping corosensei's stack hands ours back to the pool.
                self.finish();
                Outcome::Finished(result)
            }
        }
    }

    #[cold]
    fn finish(&mut self) {
        if let Some(inner) = self.inner.take() {
            let PooledStack { stack, .. } = inner.into_stack();
            drop(stack);
        }
    }

    /// Whether the closure has returned or panicked.
    pub fn is_finished(&self) -> bool {
        self.inner.is_none()
    }

    /// Sets the fiber id and name that a stack-overflow report shows (the name is cut to 64
    /// bytes). Does nothing once the coroutine has finished.
    pub fn set_identity(&self, id: u64, name: &str) {
        if self.inner.is_some() {
            // SAFETY: the stack is held, so the control block is valid (INVARIANT of `control`).
            let control = unsafe { self.control.as_ref() };
            control.record.set_identity(id, name);
        }
    }
}

impl Drop for Coroutine {
    fn drop(&mut self) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        if !inner.started() {
            // Dropping corosensei's coroutine drops the closure unrun.
            self.inner = None;
            return;
        }
        // SAFETY: the stack is held, so the control block is valid (INVARIANT of `control`).
        let control = unsafe { self.control.as_ref() };
        control.unwinding.set(true);
        if let Outcome::Suspended(_) = self.resume(0) {
            // Unreachable, since `suspend` panics again while unwinding; but should the
            // coroutine ever suspend here, its frames are live and its stack must never be
            // reused: leak it (corosensei's own drop would try to unwind it once more).
            mem::forget(self.inner.take());
        }
    }
}

impl std::fmt::Debug for Coroutine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coroutine")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Switches from the running coroutine back to whoever resumed it, passing `data` as the value
/// of its [`Coroutine::resume`]; returns the value of the next `resume`.
///
/// # Panics
///
/// If called outside a coroutine (on a thread's own stack). Inside a coroutine that is being
/// dropped, it panics to unwind the coroutine's stack.
#[inline(always)]
pub fn suspend(data: usize) -> usize {
    let control_ptr = CURRENT.with(|current| current.load(Ordering::Relaxed));
    assert!(
        !control_ptr.is_null(),
        "suspend() called outside a coroutine"
    );
    // SAFETY: a non-null `CURRENT` is the control block of the coroutine running this code; its
    // `Coroutine` is borrowed by the `resume` waiting for this switch, so its stack is alive
    // until we return.
    let control = unsafe { &*control_ptr };
    if control.unwinding.get() {
        panic::resume_unwind(Box::new(ForcedUnwind));
    }
    // SAFETY: the closure stored its yielder before running any code that can reach here; the
    // yielder lives on this coroutine's stack, below the running frames' callers, until the
    // closure returns.
    let yielder = unsafe { &*control.yielder.get() };
    let data = yielder.suspend(data);
    if control.unwinding.get() {
        panic::resume_unwind(Box::new(ForcedUnwind));
    }
    data
}

/// Whether the calling code runs inside a coroutine (rather than on its thread's own stack).
pub fn in_coroutine() -> bool {
    !CURRENT
        .with(|current| current.load(Ordering::Relaxed))
        .is_null()
}

/// Sets the fiber id and name that a stack-overflow report shows for the running coroutine;
/// returns `false` outside a coroutine.
pub fn set_current_identity(id: u64, name: &str) -> bool {
    let control_ptr = CURRENT.with(|current| current.load(Ordering::Relaxed));
    if control_ptr.is_null() {
        return false;
    }
    // SAFETY: as in `suspend`, the running coroutine's control block is alive.
    let control = unsafe { &*control_ptr };
    control.record.set_identity(id, name);
    true
}

/// The guard record of the innermost running coroutine, or null on a thread's own stack; called
/// by the overflow handler.
pub(crate) fn innermost_guard_record() -> *mut GuardRecord {
    // `record` is the first field of the `repr(C)` `Control`.
    CURRENT
        .with(|current| current.load(Ordering::Relaxed))
        .cast()
}

/// Sets up this thread for coroutines (once): an alternate signal stack and the overflow handler.
fn prepare_thread() {
    if PREPARED.with(Cell::get) {
        return;
    }
    PREPARED.with(|prepared| prepared.set(true));
    stack_overflow::prepare_thread();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{StackConfig, StackPool};

    fn pool() -> StackPool {
        StackPool::new(StackConfig::new().stack_size(64 * 1024))
    }

    #[test]
    fn first_resume_passes_data_to_the_closure() {
        let mut co = Coroutine::new(pool().get().unwrap(), |data| data * 2);
        match co.resume(21) {
            Outcome::Finished(Ok(value)) => assert_eq!(value, 42),
            other => panic!("unexpected {other:?}"),
        }
        assert!(co.is_finished());
    }

    #[test]
    fn current_record_is_set_only_inside() {
        assert!(innermost_guard_record().is_null());
        let mut co = Coroutine::new(pool().get().unwrap(), |_| {
            usize::from(!innermost_guard_record().is_null())
        });
        assert!(matches!(co.resume(0), Outcome::Finished(Ok(1))));
        assert!(innermost_guard_record().is_null());
    }

    #[test]
    fn large_closure_is_boxed() {
        let big = [7u8; 4 * MAX_INLINE_ENTRY];
        let mut co = Coroutine::new(pool().get().unwrap(), move |i| usize::from(big[i]));
        assert!(matches!(co.resume(5), Outcome::Finished(Ok(7))));
    }

    #[test]
    fn nested_coroutines_chain_their_guard_records() {
        let stacks = pool();
        let mut outer = Coroutine::new(stacks.get().unwrap(), move |_| {
            let outer_record = innermost_guard_record();
            let mut inner = Coroutine::new(stacks.get().unwrap(), move |_| {
                let record = innermost_guard_record();
                // SAFETY: the inner coroutine is running, so its record is alive.
                let prev = unsafe { (*record).prev_for_tests() };
                usize::from(prev == outer_record)
            });
            match inner.resume(0) {
                Outcome::Finished(Ok(value)) => value,
                _ => 0,
            }
        });
        assert!(matches!(outer.resume(0), Outcome::Finished(Ok(1))));
    }
}
