//! The raw context switch: coroutines on pooled stacks.
//!
//! A [`Coroutine`] runs a closure on its own [`Stack`]. [`Coroutine::resume`] switches into it,
//! passing a `usize`; inside, [`suspend`] switches back to whoever resumed it, passing a `usize`
//! the other way. The model is asymmetric, like Gruvi's greenlets under the Hub: the thread (the
//! root) resumes the Hub's coroutine, the Hub resumes fibers, and each suspends back to its
//! resumer.
//!
//! The closure runs under `catch_unwind`: a panic never unwinds into the assembly frames; its
//! payload comes back from `resume` as [`Outcome::Finished`]`(Err(payload))`. When the closure
//! returns, the coroutine stores its result in its control block, switches back to its resumer
//! one last time and is never resumed again; the resumer then gives the stack back to the pool.
//! So a stack is never released while code still runs on it.
//!
//! # Memory layout
//!
//! `Coroutine::new` writes a `Frame` at the top of the stack: the `Control` block (resumer's
//! context, result, flags and the [`GuardRecord`] read by the overflow handler) followed by the
//! closure. The initial context sits just below, and the closure's frames grow down from there.
//! A thread-local pointer, `CURRENT`, names the innermost running coroutine's control block;
//! `resume` sets it and restores it when the coroutine switches back.
//!
//! # The switch
//!
//! On x86_64 the switch is our own (`stack_switch/x86_64.rs`): it saves the callee-saved
//! general-purpose registers only, leaving MXCSR and the x87 control word to the thread, as
//! tokio's tasks and Go's goroutines do. Elsewhere it is boost.context's, through the `context`
//! crate (`stack_switch/portable.rs`).

use std::cell::Cell;
use std::mem::{self, MaybeUninit};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::thread;

#[cfg(not(target_arch = "x86_64"))]
use portable as arch;
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

use arch::{Context, Transfer};

use crate::stack::Stack;
use crate::stack_overflow::{self, GuardRecord};

#[cfg(not(target_arch = "x86_64"))]
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86_64;

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
    // INVARIANT: points to the `Control` that `new` wrote at the top of `stack` (the first field
    // of a `Frame<F>`); valid while `stack` is `Some`. Only this thread accesses it (the type is
    // not `Send`), through shared references, since all its fields are cells or atomics.
    control: NonNull<Control>,
    /// The context to switch to: `Some` exactly while the coroutine is neither running nor
    /// finished.
    context: Option<Context>,
    /// The stack's registration with valgrind; before `stack`, so that it is dropped (the
    /// stack deregistered) before the stack goes back to its pool.
    #[cfg(feature = "valgrind")]
    registration: Option<valgrind::Registration>,
    /// The stack, held until the coroutine has finished.
    stack: Option<Stack>,
}

/// The per-coroutine state shared by the two sides of the switch. The fields every switch
/// touches follow the record (whose last field, `prev`, every resume writes), so that they
/// share one cache line.
#[repr(C)]
struct Control {
    /// Must stay the first field: the overflow handler reads `CURRENT` as a `GuardRecord`.
    record: GuardRecord,
    /// The context of whoever resumed the coroutine: `Some` while it runs.
    resumer: Cell<Option<Context>>,
    /// Set by the trampoline before its final switch.
    finished: Cell<bool>,
    /// Set by `Coroutine::drop` to make `suspend` panic inside the coroutine.
    unwinding: Cell<bool>,
    /// The closure's result, stored by the trampoline before its final switch.
    result: Cell<Option<thread::Result<usize>>>,
    /// Drops the closure if the coroutine never starts; cleared when it starts.
    drop_entry: Cell<Option<unsafe fn(*mut Control)>>,
}

// The hot fields of `Control` share one line of a line-aligned frame (see `with_entry`).
const _: () = assert!(
    (mem::offset_of!(Control, record) + stack_overflow::GUARD_RECORD_PREV_OFFSET) / 64
        == (mem::offset_of!(Control, unwinding)) / 64
        && mem::offset_of!(Control, resumer) / 64 == mem::offset_of!(Control, unwinding) / 64
);

/// What `Coroutine::new` writes at the top of the stack.
#[repr(C)]
struct Frame<F> {
    control: Control,
    entry: MaybeUninit<F>,
}

/// Registration of fiber stacks with valgrind, so that memcheck tells a switch of stacks from a
/// large stack frame.
#[cfg(feature = "valgrind")]
mod valgrind {
    use crate::stack::Stack;

    /// A stack registered with valgrind until dropped (nothing happens outside valgrind).
    pub(super) struct Registration(valgrind_requests::StackId);

    impl Registration {
        pub(super) fn new(stack: &Stack) -> Registration {
            let range = stack.range();
            // valgrind takes the lowest and the highest byte of the stack.
            Registration(valgrind_requests::valgrind::stack_register(
                range.start,
                range.end - 1,
            ))
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            valgrind_requests::valgrind::stack_deregister(self.0);
        }
    }
}

/// The payload of the panic that unwinds a dropped coroutine.
struct ForcedUnwind;

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
        // Line-aligned, so that the control block's hot fields (the record's `prev`, then
        // `resumer`, `finished` and `unwinding`, bytes 104-122) share one cache line.
        let align = mem::align_of::<Frame<F>>().max(64);
        let frame_addr = (top as usize - mem::size_of::<Frame<F>>()) & !(align - 1);
        let frame = top.with_addr(frame_addr).cast::<Frame<F>>();
        assert!(
            frame_addr - stack.bottom() as usize >= stack.size() / 2,
            "coroutine closure too large for its stack"
        );
        let record = GuardRecord::new(stack.guard_range(), stack.size());
        let control = Control {
            record,
            resumer: Cell::new(None),
            finished: Cell::new(false),
            unwinding: Cell::new(false),
            result: Cell::new(None),
            drop_entry: Cell::new(Some(drop_entry::<F>)),
        };
        // SAFETY: `frame` is aligned and lies in the top half of the stack's writable memory,
        // which `stack` owns and nothing else uses until the coroutine starts.
        unsafe {
            frame.write(Frame {
                control,
                entry: MaybeUninit::new(entry),
            })
        };
        let frame_start = NonNull::new(frame.cast::<u8>()).expect("stack addresses are not null");
        let bottom = NonNull::new(stack.bottom()).expect("stack addresses are not null");
        // SAFETY: `frame_addr..top` holds the frame, and the context's frames go below it
        // (`frame_addr` is 64-byte aligned), within the stack, which lives as long as the
        // coroutine holds `stack`; the coroutine never switches to the context after releasing
        // it.
        let context = unsafe { arch::new_context(frame_start, bottom, trampoline::<F>) };
        Coroutine {
            control: NonNull::new(frame.cast()).expect("stack addresses are not null"),
            context: Some(context),
            #[cfg(feature = "valgrind")]
            registration: Some(valgrind::Registration::new(&stack)),
            stack: Some(stack),
        }
    }

    /// Switches into the coroutine, passing `data` (to the closure on the first call, as the
    /// return value of [`suspend`] after that), until it suspends or finishes.
    ///
    /// # Panics
    ///
    /// If the coroutine has finished.
    // Always inlined: the switch returns with `jmp`, not `ret`, so the first `ret` after a
    // switch mispredicts; one call level fewer removes one such `ret` per switch.
    #[inline(always)]
    pub fn resume(&mut self, data: usize) -> Outcome {
        let context = self.context.take().expect("resumed a finished coroutine");
        let control_ptr = self.control.as_ptr();
        let outer = CURRENT.with(|current| current.load(Ordering::Relaxed));
        // SAFETY: `context` was `Some`, so the coroutine has not finished and holds its stack,
        // which holds the control block (INVARIANT of `control`).
        let control = unsafe { &*control_ptr };
        control.record.set_prev(outer.cast());
        CURRENT.with(|current| current.store(control_ptr, Ordering::Relaxed));
        // SAFETY: `context` is this coroutine's suspended context (from `new` or its last
        // switch); its stack is alive, and `CURRENT` names its control block as `trampoline`
        // and `suspend` expect. It switches back here by resuming the context it is given.
        let transfer = unsafe { context.resume(data) };
        CURRENT.with(|current| current.store(outer, Ordering::Relaxed));
        if control.finished.get() {
            let result = control.result.take();
            // The coroutine made its final switch: nothing runs on the stack any more.
            #[cfg(feature = "valgrind")]
            drop(self.registration.take());
            self.stack = None;
            return Outcome::Finished(result.unwrap_or_else(|| Err(Box::new(ForcedUnwind))));
        }
        self.context = Some(transfer.context);
        Outcome::Suspended(transfer.data)
    }

    /// Whether the closure has returned or panicked.
    pub fn is_finished(&self) -> bool {
        self.stack.is_none()
    }

    /// Sets the fiber id and name that a stack-overflow report shows (the name is cut to 64
    /// bytes). Does nothing once the coroutine has finished.
    pub fn set_identity(&self, id: u64, name: &str) {
        if self.stack.is_some() {
            // SAFETY: the stack is held, so the control block is valid (INVARIANT of `control`).
            let control = unsafe { self.control.as_ref() };
            control.record.set_identity(id, name);
        }
    }
}

impl Drop for Coroutine {
    fn drop(&mut self) {
        if self.stack.is_none() {
            return;
        }
        // SAFETY: the stack is held, so the control block is valid (INVARIANT of `control`).
        let control = unsafe { self.control.as_ref() };
        if let Some(drop_entry) = control.drop_entry.take() {
            // SAFETY: the coroutine never started, so the closure is initialised and unread;
            // `take` makes this the only drop of it.
            unsafe { drop_entry(self.control.as_ptr()) };
            return;
        }
        control.unwinding.set(true);
        if let Outcome::Suspended(_) = self.resume(0) {
            // Unreachable, since `suspend` panics again while unwinding; but should the
            // coroutine ever suspend here, its frames are live and its stack must never be
            // reused: leak it.
            mem::forget(self.stack.take());
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

/// Drops the closure of a coroutine that never started.
///
/// # Safety
///
/// `control` must point to the `Control` of a live `Frame<F>` whose `entry` is initialised and
/// will not be read or dropped again.
unsafe fn drop_entry<F>(control: *mut Control) {
    let frame = control.cast::<Frame<F>>();
    // SAFETY: guaranteed by the caller.
    unsafe { ptr::drop_in_place((*frame).entry.as_mut_ptr()) };
}

/// The first code run on a coroutine's stack: runs the closure, stores its result and makes the
/// final switch back to the resumer.
extern "C" fn trampoline<F>(transfer: Transfer) -> !
where
    F: FnOnce(usize) -> usize + 'static,
{
    let control_ptr = CURRENT.with(|current| current.load(Ordering::Relaxed));
    let frame = control_ptr.cast::<Frame<F>>();
    // SAFETY: `resume` set `CURRENT` to this coroutine's control block, the first field of the
    // `Frame<F>` that `new` wrote at the top of this stack, before switching here.
    let control = unsafe { &*control_ptr };
    control.resumer.set(Some(transfer.context));
    control.drop_entry.set(None);
    // SAFETY: `new` initialised the closure; clearing `drop_entry` above makes this its only
    // read, and `Coroutine::drop` will not drop it.
    let entry = unsafe { (*frame).entry.assume_init_read() };
    let data = transfer.data;
    let result = panic::catch_unwind(AssertUnwindSafe(move || entry(data)));
    control.result.set(Some(result));
    control.finished.set(true);
    if let Some(resumer) = control.resumer.take() {
        // SAFETY: `resumer` is the context waiting in `resume`, which sees `finished` and never
        // switches here again; only plain values remain in this frame, so abandoning it (and
        // releasing the stack under it) skips no destructor.
        unsafe { resumer.resume(0) };
    }
    // Unreachable: a finished coroutine is never resumed.
    std::process::abort()
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
    let resumer = control
        .resumer
        .take()
        .expect("a running coroutine has a resumer");
    // SAFETY: `resumer` is the context waiting in `resume` for this coroutine; it switches back
    // here (or never, if it drops the coroutine after a forced unwind completes).
    let transfer = unsafe { resumer.resume(data) };
    control.resumer.set(Some(transfer.context));
    if control.unwinding.get() {
        panic::resume_unwind(Box::new(ForcedUnwind));
    }
    transfer.data
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

/// Sets up this thread for coroutines (once): an alternate signal stack and the overflow
/// handler.
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
