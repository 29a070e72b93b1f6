//! Stack-overflow reports: which fiber overflowed, printed before the process dies.
//!
//! A fiber that overflows a guarded stack touches the guard page below it and gets `SIGSEGV` (or
//! `SIGBUS`). [`prepare_thread`] installs, once per process, a handler for both signals that runs on
//! an alternate signal stack (the fiber's own stack is exhausted), and gives every thread that runs
//! fibers such a stack if it has none. The handler looks for the faulting address among the guard
//! pages of the stacks running on its thread; on a match it writes
//! `fiber '<name>' (id N) overflowed its stack of X bytes` to stderr and aborts. Any other fault
//! goes to the handler that was installed before ours (Rust's own reports overflows of thread
//! stacks), or to the default action.
//!
//! The handler takes no lock and allocates nothing. The stacks it searches are a per-thread chain
//! of [`GuardRecord`]s: each coroutine's record sits in its control block at the top of its stack,
//! the innermost running coroutine's record is found through a thread-local pointer
//! (`stack_switch::innermost_guard_record`), and each record links to the coroutine that resumed
//! it. An overflow always faults on the thread running the fiber, so that chain is enough. The
//! message is assembled in a buffer on the signal stack and written with `write(2)`.

use std::ffi::c_int;
use std::ops::Range;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use crate::stack::page_size;
use crate::stack_switch;

/// The most bytes of a fiber's name an overflow report shows.
pub(crate) const NAME_CAPACITY: usize = 64;

/// Size of the alternate signal stacks this module maps (plus a guard page).
const SIGNAL_STACK_SIZE: usize = 64 * 1024;

/// Bound on the records the handler visits, in case a chain was corrupted.
const MAX_CHAIN: usize = 4096;

/// What the signal handler knows about one running stack.
///
/// Written only by the thread that owns the coroutine, read by that thread's signal handler:
/// every field is immutable or atomic, so a signal arriving mid-update sees no torn value.
///
/// `prev`, the one field written on every resume, comes last: it then shares a cache line with
/// the fields of the coroutine's control block that every switch touches (which follow the
/// record), and a resume touches one line of the control block instead of two.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct GuardRecord {
    /// The guard page's addresses; empty for an unguarded stack.
    guard: Range<usize>,
    stack_size: usize,
    id: AtomicU64,
    name_len: AtomicUsize,
    name: [AtomicU8; NAME_CAPACITY],
    /// The record of the coroutine that resumed this one, or null when that was the thread itself.
    prev: AtomicPtr<GuardRecord>,
}

/// Where a record's `prev` lies in it (checked against the control block's layout).
pub(crate) const GUARD_RECORD_PREV_OFFSET: usize = std::mem::offset_of!(GuardRecord, prev);

impl GuardRecord {
    /// A record for a stack of `stack_size` bytes with the given guard page, named "" with id 0.
    pub(crate) fn new(guard: Option<Range<usize>>, stack_size: usize) -> GuardRecord {
        GuardRecord {
            prev: AtomicPtr::new(ptr::null_mut()),
            guard: guard.unwrap_or(0..0),
            stack_size,
            id: AtomicU64::new(0),
            name_len: AtomicUsize::new(0),
            name: [const { AtomicU8::new(0) }; NAME_CAPACITY],
        }
    }

    /// Records the coroutine that resumed this one (null for the thread itself).
    #[inline]
    pub(crate) fn set_prev(&self, prev: *mut GuardRecord) {
        self.prev.store(prev, Ordering::Relaxed);
    }

    /// Sets the fiber id and name an overflow report shows; the name is cut to 64 bytes.
    pub(crate) fn set_identity(&self, id: u64, name: &str) {
        let mut len = name.len().min(NAME_CAPACITY);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        // Hide the name while it changes, so a report shows the old or new one or nothing.
        self.name_len.store(0, Ordering::Relaxed);
        for (slot, byte) in self.name.iter().zip(&name.as_bytes()[..len]) {
            slot.store(*byte, Ordering::Relaxed);
        }
        self.id.store(id, Ordering::Relaxed);
        self.name_len.store(len, Ordering::Relaxed);
    }

    /// The id set by [`set_identity`](Self::set_identity).
    #[cfg(test)]
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// The record of the coroutine that resumed this one.
    #[cfg(test)]
    pub(crate) fn prev_for_tests(&self) -> *mut GuardRecord {
        self.prev.load(Ordering::Relaxed)
    }

    /// The name set by [`set_identity`](Self::set_identity), possibly cut.
    #[cfg(test)]
    pub(crate) fn name(&self) -> String {
        let len = self.name_len.load(Ordering::Relaxed).min(NAME_CAPACITY);
        let bytes: Vec<u8> = self.name[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Makes sure this thread can report fiber stack overflows: installs the process's signal
/// handler the first time, and gives this thread an alternate signal stack if it has none.
pub(crate) fn prepare_thread() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        install_handler(libc::SIGSEGV, &PREVIOUS_SEGV);
        install_handler(libc::SIGBUS, &PREVIOUS_BUS);
    });
    // During thread teardown the thread-local may be gone; the report is then best effort.
    let _ = SIGNAL_STACK.try_with(|_| ());
}

/// The handlers that were installed before ours, called for faults that are not fiber overflows.
static PREVIOUS_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREVIOUS_BUS: OnceLock<libc::sigaction> = OnceLock::new();

fn install_handler(signal: c_int, previous: &OnceLock<libc::sigaction>) {
    // SAFETY: all-zero bytes are a valid `sigaction` (plain integers and a null handler).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`, a valid out-pointer.
    if unsafe { libc::sigaction(signal, ptr::null(), &mut old) } != 0 {
        return;
    }
    let _ = previous.set(old);
    // SAFETY: as above, all-zero bytes are a valid `sigaction`.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = on_fault;
    action.sa_sigaction = handler as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and `on_fault` is async-signal-safe (it only reads
    // atomics, calls write(2), abort(3), sigaction(2) and the previous handler).
    unsafe { libc::sigaction(signal, &action, ptr::null_mut()) };
}

extern "C" fn on_fault(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler of SIGSEGV/SIGBUS,
    // for which si_addr is the field that is set.
    let address = unsafe { (*info).si_addr() } as usize;
    let mut record = stack_switch::innermost_guard_record();
    let mut visited = 0;
    while !record.is_null() && visited < MAX_CHAIN {
        // SAFETY: a record in this thread's chain belongs to a coroutine that is running or is
        // waiting in `resume` for a nested one; its stack, which holds the record, is owned by the
        // borrowed `Coroutine` and stays mapped until that `resume` returns.
        let current = unsafe { &*record };
        if current.guard.contains(&address) {
            report_overflow(current);
        }
        record = current.prev.load(Ordering::Relaxed);
        visited += 1;
    }
    call_previous(signal, info, context);
}

/// Writes which fiber overflowed and aborts, using only async-signal-safe calls.
fn report_overflow(record: &GuardRecord) -> ! {
    let mut message = Message::new();
    message.push(b"fiber '");
    let len = record.name_len.load(Ordering::Relaxed).min(NAME_CAPACITY);
    for byte in &record.name[..len] {
        message.push(&[byte.load(Ordering::Relaxed)]);
    }
    message.push(b"' (id ");
    message.push_decimal(record.id.load(Ordering::Relaxed));
    message.push(b") overflowed its stack of ");
    message.push_decimal(record.stack_size as u64);
    message.push(b" bytes\n");
    message.write_to_stderr();
    // SAFETY: abort is async-signal-safe; the process cannot continue on an exhausted stack.
    unsafe { libc::abort() }
}

/// A fixed buffer for the report, filled without allocating.
struct Message {
    bytes: [u8; 256],
    len: usize,
}

impl Message {
    fn new() -> Message {
        Message {
            bytes: [0; 256],
            len: 0,
        }
    }

    fn push(&mut self, text: &[u8]) {
        let n = text.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&text[..n]);
        self.len += n;
    }

    fn push_decimal(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[start..]);
    }

    fn write_to_stderr(&self) {
        let mut written = 0;
        while written < self.len {
            let rest = &self.bytes[written..self.len];
            // SAFETY: `rest` is a valid buffer of `rest.len()` bytes; write(2) is async-signal-safe.
            let n = unsafe { libc::write(libc::STDERR_FILENO, rest.as_ptr().cast(), rest.len()) };
            if n > 0 {
                written += n as usize;
            } else if n < 0 && io_interrupted() {
                continue;
            } else {
                break;
            }
        }
    }
}

fn io_interrupted() -> bool {
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
}

/// Hands a fault that is not a fiber overflow to the previous handler, or restores the default
/// action and returns so that the faulting instruction faults again and the process dies.
fn call_previous(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let previous = match signal {
        libc::SIGSEGV => PREVIOUS_SEGV.get(),
        _ => PREVIOUS_BUS.get(),
    };
    match previous {
        Some(action)
            if action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN =>
        {
            if action.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO the previous owner registered this address as a
                // three-argument handler, and we pass it the arguments the kernel gave us.
                let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(action.sa_sigaction) };
                handler(signal, info, context);
            } else {
                // SAFETY: without SA_SIGINFO the previous owner registered a one-argument handler.
                let handler: extern "C" fn(c_int) =
                    unsafe { std::mem::transmute(action.sa_sigaction) };
                handler(signal);
            }
        }
        _ => {
            // SAFETY: all-zero bytes are a valid `sigaction`; SIG_DFL is 0.
            let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
            default.sa_sigaction = libc::SIG_DFL;
            // SAFETY: `default` is initialised; sigaction(2) is async-signal-safe.
            unsafe { libc::sigaction(signal, &default, ptr::null_mut()) };
        }
    }
}

thread_local! {
    /// This thread's alternate signal stack, if this module had to make one.
    static SIGNAL_STACK: SignalStack = SignalStack::ensure();
}

/// An alternate signal stack mapped by this module, unmapped when its thread exits.
struct SignalStack {
    // INVARIANT: null, or the start of a live mapping of `len` bytes (a guard page, then the
    // signal stack) that this thread installed with sigaltstack and nothing else uses.
    mapping: *mut c_void,
    len: usize,
}

impl SignalStack {
    /// Installs an alternate signal stack on this thread unless one is already installed (Rust's
    /// runtime installs one on the threads it starts).
    fn ensure() -> SignalStack {
        let none = SignalStack {
            mapping: ptr::null_mut(),
            len: 0,
        };
        // SAFETY: all-zero bytes are a valid `stack_t`.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: a null new stack only reads the current one into `current`.
        if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0
            || current.ss_flags & libc::SS_DISABLE == 0
        {
            return none;
        }
        let page = page_size();
        let len = page + SIGNAL_STACK_SIZE;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK;
        // SAFETY: a new anonymous mapping overlaps no existing memory; checked below.
        let mapping = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, -1, 0) };
        if mapping == libc::MAP_FAILED {
            return none;
        }
        // SAFETY: the first page of the mapping just made becomes its guard page.
        unsafe { libc::mprotect(mapping, page, libc::PROT_NONE) };
        let stack = libc::stack_t {
            ss_sp: mapping.cast::<u8>().wrapping_add(page).cast(),
            ss_flags: 0,
            ss_size: SIGNAL_STACK_SIZE,
        };
        // SAFETY: `stack` describes writable memory that lives until `drop` uninstalls it.
        if unsafe { libc::sigaltstack(&stack, ptr::null_mut()) } != 0 {
            // SAFETY: the mapping was made above and is not in use.
            unsafe { libc::munmap(mapping, len) };
            return none;
        }
        SignalStack { mapping, len }
    }
}

impl Drop for SignalStack {
    fn drop(&mut self) {
        if self.mapping.is_null() {
            return;
        }
        let disable = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: SIGNAL_STACK_SIZE,
        };
        // SAFETY: disabling the alternate stack first means no signal can run on the memory
        // unmapped next; both calls concern this thread's own stack (see the INVARIANT).
        unsafe {
            libc::sigaltstack(&disable, ptr::null_mut());
            libc::munmap(self.mapping, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_cut_at_a_char_boundary() {
        let record = GuardRecord::new(None, 4096);
        let long = "é".repeat(40);
        record.set_identity(7, &long);
        assert_eq!(record.id(), 7);
        assert_eq!(record.name(), "é".repeat(32));
        record.set_identity(8, "short");
        assert_eq!(record.name(), "short");
    }

    #[test]
    fn message_formats_numbers_without_allocating() {
        let mut message = Message::new();
        message.push(b"id ");
        message.push_decimal(0);
        message.push(b" ");
        message.push_decimal(u64::MAX);
        assert_eq!(&message.bytes[..message.len], b"id 0 18446744073709551615");
    }

    #[test]
    fn message_truncates_instead_of_overflowing() {
        let mut message = Message::new();
        for _ in 0..100 {
            message.push(b"0123456789");
        }
        assert_eq!(message.len, 256);
    }

    #[test]
    fn prepared_thread_has_an_alternate_signal_stack() {
        std::thread::spawn(|| {
            prepare_thread();
            // SAFETY: all-zero bytes are a valid `stack_t`; a null new stack only reads.
            let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            assert_eq!(unsafe { libc::sigaltstack(ptr::null(), &mut current) }, 0);
            assert_eq!(current.ss_flags & libc::SS_DISABLE, 0);
        })
        .join()
        .unwrap();
    }
}
