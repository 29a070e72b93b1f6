//! The context switch itself on x86_64 (System V ABI): our own, in two naked functions.
//!
//! A suspended context is the stack pointer at which its switch saved the callee-saved
//! general-purpose registers and the address to go on from:
//!
//! ```text
//!  saved sp -> r15, r14, r13, r12, rbx, rbp, resume address   (7 words, growing up)
//! ```
//!
//! [`Context::resume`] pushes the same seven words for the running side, switches stacks, pops
//! the target's and jumps (not `ret`) to its resume address: the branch target buffer predicts
//! that indirect jump from history, where a `ret` would always be mispredicted by the return
//! stack buffer, which holds the other stack's return addresses.
//!
//! Unlike boost.context's switch (used before session 7), it does not save and restore MXCSR or
//! the x87 control word: those stay the thread's, shared by all its fibers, as they are by
//! tokio's tasks or Go's goroutines. `stmxcsr` alone cost ~7 ns on this machine, more than half
//! of a switch. A fiber that changes the rounding mode or the exception masks and then reaches a
//! switchpoint changes them for the fibers that run next.

use std::arch::naked_asm;
use std::ptr::NonNull;

/// A suspended context (see the module docs); resuming it consumes it.
#[repr(transparent)]
pub(crate) struct Context(NonNull<u8>);

/// What a switch delivers to the side that is switched to: the context of the side that
/// switched away (to resume it later), and the value it passed.
#[repr(C)]
pub(crate) struct Transfer {
    pub(crate) context: Context,
    pub(crate) data: usize,
}

/// The entry of a new context: receives the first switch's [`Transfer`]; never returns.
pub(crate) type Entry = extern "C" fn(Transfer) -> !;

/// Lays out a new context on the stack memory `bottom..top` (see [`Context::new`]).
///
/// # Safety
///
/// As for [`Context::new`].
pub(crate) unsafe fn new_context(top: NonNull<u8>, _bottom: NonNull<u8>, entry: Entry) -> Context {
    // SAFETY: the caller's contract.
    unsafe { Context::new(top, entry) }
}

impl Context {
    /// Lays out a new context on the stack whose usable memory ends at `top`, so that the
    /// first switch to it calls `entry` with that switch's [`Transfer`].
    ///
    /// # Safety
    ///
    /// `top` must be 16-byte aligned, and the 72 bytes below it, and as much stack below them
    /// as `entry` will use, must be writable memory that stays valid and otherwise unused for
    /// as long as the context (or any context it switches away from) may be resumed.
    pub(crate) unsafe fn new(top: NonNull<u8>, entry: Entry) -> Context {
        debug_assert_eq!(top.as_ptr() as usize % 16, 0);
        // The seven words a switch pops: `rbx` holds `entry` for `start` to call, and the
        // resume address is `start`. They go at `top - 72 .. top - 16`, so that after the pops
        // the stack pointer is `top - 16`: 16-byte aligned, as at a call site.
        let words: [usize; 7] = [0, 0, 0, 0, entry as usize, 0, start as *const () as usize];
        // SAFETY: by the caller's contract the 72 bytes below `top` are ours to write, and
        // `top - 72` is 8-byte aligned (and not null: it is part of a stack).
        unsafe {
            let sp = top.as_ptr().sub(16 + 7 * 8);
            sp.cast::<[usize; 7]>().write(words);
            Context(NonNull::new_unchecked(sp))
        }
    }

    /// Switches to this context, passing `data`; returns when some context switches back to
    /// the one saved here, with what it passed.
    ///
    /// # Safety
    ///
    /// The context must have been made by [`new`](Self::new) or delivered by a switch, and its
    /// stack must still be valid.
    #[inline(always)]
    pub(crate) unsafe fn resume(self, data: usize) -> Transfer {
        // SAFETY: `switch` follows the C ABI for this signature and preserves every
        // callee-saved register of this side until it is switched back to; the target is a
        // valid suspended context (the caller's contract).
        unsafe { switch(self.0.as_ptr(), data) }
    }
}

/// Saves this side's callee-saved registers and resume address on its stack, switches to the
/// stack `target`, restores that side's registers and jumps to its resume address, handing it
/// `Transfer { context: the saved stack pointer of this side, data }` in `rax:rdx`.
#[unsafe(naked)]
unsafe extern "C" fn switch(target: *mut u8, data: usize) -> Transfer {
    naked_asm!(
        // The return address is already on the stack: the resume address of this side.
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rax, rsp",
        "mov rsp, rdi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "mov rdx, rsi",
        "pop rcx",
        "jmp rcx",
    )
}

/// The first code of a new context, reached by a switch's `jmp` with the transfer in
/// `rax:rdx` and the entry in `rbx` (see [`Context::new`]); the stack pointer is 16-byte
/// aligned, as at a call site.
#[unsafe(naked)]
extern "C" fn start() -> ! {
    naked_asm!("mov rdi, rax", "mov rsi, rdx", "call rbx", "ud2")
}

#[cfg(test)]
mod tests {
    use std::arch::asm;
    use std::ptr::NonNull;

    use super::{Context, Transfer, switch};
    use crate::stack::{StackConfig, StackPool};

    /// The coroutine of the register test: switches back with every callee-saved register
    /// (rbx, rbp, r12-r15) set to garbage, passing the value it got plus one; forever.
    extern "C" fn clobber_and_return(transfer: Transfer) -> ! {
        let (mut back, mut data) = (transfer.context.0.as_ptr(), transfer.data);
        loop {
            // SAFETY: the asm saves and restores rbx and rbp itself (they cannot be declared)
            // and declares every other register the call may change; `back` is the test's
            // side, suspended in its own call to `switch`.
            unsafe {
                asm!(
                    "push rbx",
                    "push rbp",
                    "mov rbx, -1",
                    "mov rbp, -1",
                    "mov r12, -2",
                    "mov r13, -3",
                    "mov r14, -4",
                    "mov r15, -5",
                    "call {switch}",
                    "pop rbp",
                    "pop rbx",
                    switch = sym switch,
                    inout("rdi") back => _,
                    inout("rsi") data + 1 => _,
                    out("rax") back,
                    out("rdx") data,
                    out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                    clobber_abi("C"),
                );
            }
        }
    }

    /// Every callee-saved register holds its value across a switch to a context that sets them
    /// all to garbage and switches back, and the values passed arrive on both sides.
    #[test]
    fn a_switch_keeps_the_callee_saved_registers_and_passes_data() {
        let pool = StackPool::new(StackConfig::new().stack_size(64 * 1024));
        let stack = pool.get().unwrap();
        let top = NonNull::new(stack.top()).unwrap();
        // SAFETY: the stack's top is 16-byte aligned and the stack lives until the end of the
        // test; the context is not resumed after that.
        let mut target = unsafe { Context::new(top, clobber_and_return) }.0.as_ptr();
        for round in 0..3usize {
            let mut regs = [0u64; 6];
            let data: usize;
            // SAFETY: as in `clobber_and_return`; the pointer to `regs` is kept on the stack
            // across the call (every register may change), and `target` is a valid suspended
            // context: new, or the coroutine's side suspended in its call to `switch`.
            unsafe {
                asm!(
                    "push rbx",
                    "push rbp",
                    "push {regs}",
                    "sub rsp, 8",
                    "mov rbx, 0x1111",
                    "mov rbp, 0x2222",
                    "mov r12, 0x3333",
                    "mov r13, 0x4444",
                    "mov r14, 0x5555",
                    "mov r15, 0x6666",
                    "call {switch}",
                    "add rsp, 8",
                    "pop rcx",
                    "mov [rcx], rbx",
                    "mov [rcx + 8], rbp",
                    "mov [rcx + 16], r12",
                    "mov [rcx + 24], r13",
                    "mov [rcx + 32], r14",
                    "mov [rcx + 40], r15",
                    "pop rbp",
                    "pop rbx",
                    switch = sym switch,
                    regs = in(reg) regs.as_mut_ptr(),
                    inout("rdi") target => _,
                    inout("rsi") round * 10 => _,
                    out("rax") target,
                    out("rdx") data,
                    out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                    clobber_abi("C"),
                );
            }
            assert_eq!(regs, [0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666]);
            assert_eq!(data, round * 10 + 1);
        }
    }
}
