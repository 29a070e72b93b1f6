//! Fiber stacks: mmap'd, committed lazily, pooled for reuse.
//!
//! A [`StackPool`] hands out [`Stack`]s and takes them back when they are dropped. Stack memory is
//! reserved with `mmap(MAP_NORESERVE)` and never touched by the pool, so the kernel commits a page
//! only when the fiber first writes to it: an idle fiber costs the pages it touched (usually one),
//! not its stack size.
//!
//! Two modes, chosen with [`StackConfig`]:
//!
//! - **Guarded** (the default): every stack is its own mapping with a `PROT_NONE` guard page below
//!   it. A fiber that overflows its stack faults on the guard page, and the process prints which
//!   fiber overflowed and aborts (see `stack_overflow.rs`). The kernel counts the guard page and
//!   the stack as two mappings, and Linux limits a process to `vm.max_map_count` of them (65,530 by
//!   default), so about 32k guarded stacks can be live at once. The pool stops 1,024 mappings short
//!   of that limit ([`StackPool::guarded_stack_limit`]) so that `malloc` and libuv can still map
//!   memory, and returns an [`io::ErrorKind::OutOfMemory`] error naming the limit.
//! - **Unguarded** ([`StackConfig::unguarded`]): stacks are carved side by side out of large
//!   mappings (one per [`StackConfig::stacks_per_mapping`] stacks), so a million fibers need a
//!   thousand mappings. The trade-off: nothing detects an overflow. A fiber that outgrows its stack
//!   silently overwrites the top of the stack below it (another fiber's live frames), so choose a
//!   stack size with a wide margin.
//!
//! A dropped stack goes back to the pool's cache (at most [`StackConfig::max_cached`] stacks) with
//! its pages still committed, so reuse costs no system call. Past that bound the pool trims: a
//! guarded stack is unmapped, an unguarded one is handed back to the kernel with
//! `madvise(MADV_DONTNEED)` and kept for reuse as fresh, uncommitted memory.
//!
//! Lazy commit relies on Linux's default overcommit policy; under `vm.overcommit_memory = 2` the
//! kernel ignores `MAP_NORESERVE` and charges every stack's full size at `mmap` time.

use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::stack_error::{Cause, StackAllocError};

/// Mappings kept free for the rest of the program when counting guarded stacks against
/// `vm.max_map_count`.
pub(crate) const RESERVED_MAPPINGS: usize = 1024;

/// Guarded stacks currently mapped by every pool of the process.
static GUARDED_MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Configuration of a [`StackPool`]: stack size, guard pages, cache size.
///
/// # Examples
///
/// ```
/// use fiber_core::{StackConfig, StackPool};
///
/// // 64 KiB stacks, each with a guard page (the default mode).
/// let pool = StackPool::new(StackConfig::new().stack_size(64 * 1024));
/// let stack = pool.get()?;
/// assert_eq!(stack.size(), 64 * 1024);
/// assert!(stack.is_guarded());
///
/// // A million small fibers: no guard pages, stacks carved out of shared mappings.
/// let many = StackPool::new(StackConfig::unguarded().stack_size(16 * 1024));
/// assert!(!many.get()?.is_guarded());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct StackConfig {
    stack_size: usize,
    guarded: bool,
    max_cached: usize,
    stacks_per_mapping: usize,
}

impl StackConfig {
    /// The smallest stack size a pool uses; smaller requests are raised to it.
    pub const MIN_STACK_SIZE: usize = 16 * 1024;
    /// The largest stack size a pool uses; larger requests are lowered to it.
    pub const MAX_STACK_SIZE: usize = 1 << 30;
    /// The stack size of [`StackConfig::new`].
    pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
    /// The number of idle stacks a pool keeps committed by default.
    pub const DEFAULT_MAX_CACHED: usize = 64;
    /// The number of unguarded stacks per mapping by default.
    pub const DEFAULT_STACKS_PER_MAPPING: usize = 1024;

    /// Guarded stacks of [`DEFAULT_STACK_SIZE`](Self::DEFAULT_STACK_SIZE) bytes.
    pub fn new() -> StackConfig {
        StackConfig {
            stack_size: Self::DEFAULT_STACK_SIZE,
            guarded: true,
            max_cached: Self::DEFAULT_MAX_CACHED,
            stacks_per_mapping: Self::DEFAULT_STACKS_PER_MAPPING,
        }
    }

    /// Unguarded stacks of [`DEFAULT_STACK_SIZE`](Self::DEFAULT_STACK_SIZE) bytes, carved out of
    /// shared mappings.
    ///
    /// Use this for more fibers than guarded stacks allow (about 32k). A stack overflow is not
    /// detected: it overwrites the stack below, so leave a wide margin in the stack size.
    pub fn unguarded() -> StackConfig {
        StackConfig {
            guarded: false,
            ..StackConfig::new()
        }
    }

    /// Sets the usable size of each stack in bytes (the guard page comes on top).
    ///
    /// The pool raises it to [`MIN_STACK_SIZE`](Self::MIN_STACK_SIZE), lowers it to
    /// [`MAX_STACK_SIZE`](Self::MAX_STACK_SIZE) and rounds it up to a whole number of pages.
    pub fn stack_size(mut self, bytes: usize) -> StackConfig {
        self.stack_size = bytes;
        self
    }

    /// Sets whether each stack gets a guard page (see [`StackConfig::unguarded`]).
    pub fn guarded(mut self, guarded: bool) -> StackConfig {
        self.guarded = guarded;
        self
    }

    /// Sets how many idle stacks the pool keeps committed for cheap reuse.
    pub fn max_cached(mut self, stacks: usize) -> StackConfig {
        self.max_cached = stacks;
        self
    }

    /// Sets how many unguarded stacks share one mapping (at least 1; ignored when guarded).
    pub fn stacks_per_mapping(mut self, stacks: usize) -> StackConfig {
        self.stacks_per_mapping = stacks.max(1);
        self
    }
}

impl Default for StackConfig {
    fn default() -> StackConfig {
        StackConfig::new()
    }
}

/// Counters of a [`StackPool`], from [`StackPool::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackPoolStats {
    /// Stacks handed out and not yet returned.
    pub in_use: usize,
    /// Idle stacks kept committed for reuse.
    pub cached: usize,
    /// Requests served from an earlier stack instead of new memory.
    pub reused: u64,
    /// Requests served with new memory (a new mapping, or a new slot of an unguarded mapping).
    pub created: u64,
}

/// A pool of fiber stacks; cloning it gives another handle to the same pool.
///
/// A pool belongs to one thread (it is neither `Send` nor `Sync`), like the Hub that uses it.
/// Stacks keep the pool alive, so it may be dropped before them.
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<fiber_core::StackPool>();
/// ```
#[derive(Clone, Debug)]
pub struct StackPool {
    inner: Rc<PoolInner>,
}

impl StackPool {
    /// Creates an empty pool; no memory is mapped until the first [`get`](Self::get).
    pub fn new(config: StackConfig) -> StackPool {
        let page = page_size();
        let size = config
            .stack_size
            .clamp(StackConfig::MIN_STACK_SIZE, StackConfig::MAX_STACK_SIZE)
            .next_multiple_of(page);
        StackPool {
            inner: Rc::new(PoolInner {
                stack_size: size,
                page,
                guarded: config.guarded,
                max_cached: config.max_cached,
                stacks_per_mapping: config.stacks_per_mapping,
                state: RefCell::new(PoolState::default()),
            }),
        }
    }

    /// Takes a stack from the pool, mapping a new one if no idle stack is cached.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::OutOfMemory`] when the process has as many guarded stacks as
    /// `vm.max_map_count` allows (see [`guarded_stack_limit`](Self::guarded_stack_limit)), or when
    /// the kernel refuses the mapping (`ENOMEM`: out of mappings or of address space, e.g. under
    /// `ulimit -v`). The message names the limit and the ways out: fewer fibers, a higher
    /// `vm.max_map_count`, or an unguarded pool. Other `mmap` failures keep the OS error's kind.
    pub fn get(&self) -> io::Result<Stack> {
        let raw = self.inner.take_or_create()?;
        Ok(Stack {
            raw,
            pool: Rc::clone(&self.inner),
        })
    }

    /// The usable size of each stack in bytes, after rounding.
    pub fn stack_size(&self) -> usize {
        self.inner.stack_size
    }

    /// Whether each stack has a guard page.
    pub fn is_guarded(&self) -> bool {
        self.inner.guarded
    }

    /// The pool's counters.
    pub fn stats(&self) -> StackPoolStats {
        let state = self.inner.state.borrow();
        StackPoolStats {
            in_use: state.in_use,
            cached: state.hot.len(),
            reused: state.reused,
            created: state.created,
        }
    }

    /// Releases all but `keep` cached stacks: guarded ones are unmapped, unguarded ones are
    /// decommitted with `madvise(MADV_DONTNEED)` and kept for reuse.
    pub fn trim(&self, keep: usize) {
        let mut state = self.inner.state.borrow_mut();
        while state.hot.len() > keep {
            if let Some(raw) = state.hot.pop() {
                self.inner.discard(raw, &mut state);
            }
        }
    }

    /// How many guarded stacks the whole process may have mapped at once, or `None` where
    /// `vm.max_map_count` cannot be read (the kernel's own `ENOMEM` is then the only limit).
    ///
    /// This is `(vm.max_map_count - 1024) / 2`: each guarded stack takes two mappings, and 1,024
    /// are left for the rest of the program.
    pub fn guarded_stack_limit() -> Option<usize> {
        max_map_count().map(|max| max.saturating_sub(RESERVED_MAPPINGS) / 2)
    }
}

impl Default for StackPool {
    fn default() -> StackPool {
        StackPool::new(StackConfig::new())
    }
}

/// A fiber stack from a [`StackPool`]; dropping it returns it to the pool.
///
/// The memory is readable and writable from [`range`](Self::range)`.start` to `.end`; a guarded
/// stack has a `PROT_NONE` page just below.
#[derive(Debug)]
pub struct Stack {
    raw: RawStack,
    pool: Rc<PoolInner>,
}

impl Stack {
    /// The usable size in bytes.
    pub fn size(&self) -> usize {
        self.pool.stack_size
    }

    /// Whether a guard page sits below the stack.
    pub fn is_guarded(&self) -> bool {
        self.pool.guarded
    }

    /// The stack's addresses, lowest to one past the highest (stacks grow downwards from `end`).
    pub fn range(&self) -> Range<usize> {
        let lo = self.raw.lo.as_ptr() as usize;
        lo..lo + self.size()
    }

    /// The guard page's addresses, if the stack has one.
    pub fn guard_range(&self) -> Option<Range<usize>> {
        let lo = self.raw.lo.as_ptr() as usize;
        self.pool.guarded.then(|| lo - self.pool.page..lo)
    }

    /// One past the highest byte of the stack: where a new context's frames begin.
    pub(crate) fn top(&self) -> *mut u8 {
        self.raw.lo.as_ptr().wrapping_add(self.size())
    }

    /// The lowest usable byte of the stack.
    pub(crate) fn bottom(&self) -> *mut u8 {
        self.raw.lo.as_ptr()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.pool.release(self.raw);
    }
}

/// The memory of one stack, owned by a pool or by the `Stack` that holds it.
#[derive(Clone, Copy, Debug)]
struct RawStack {
    // INVARIANT: the lowest byte of `stack_size` readable and writable bytes of a live mapping
    // owned by the pool that made this value (and in guarded mode the page below is that
    // mapping's guard page); it has exactly one owner: the pool's lists or one `Stack`.
    lo: NonNull<u8>,
}

/// A mapping of unguarded stacks.
#[derive(Debug)]
struct Mapping {
    // INVARIANT: the start of a live mapping of `len` bytes made by `mmap` for this pool; it is
    // unmapped only in `PoolInner::drop`, when no stack carved from it is in use.
    addr: NonNull<u8>,
    len: usize,
}

#[derive(Debug)]
struct PoolInner {
    stack_size: usize,
    page: usize,
    guarded: bool,
    max_cached: usize,
    stacks_per_mapping: usize,
    state: RefCell<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    /// Idle stacks with their pages still committed, reused first.
    hot: Vec<RawStack>,
    /// Idle unguarded stacks decommitted by a trim.
    cold: Vec<RawStack>,
    /// Unguarded mappings.
    mappings: Vec<Mapping>,
    /// The part of the newest unguarded mapping not yet carved into stacks.
    uncarved: Range<usize>,
    in_use: usize,
    reused: u64,
    created: u64,
}

impl PoolInner {
    fn take_or_create(&self) -> io::Result<RawStack> {
        let mut state = self.state.borrow_mut();
        let raw = if let Some(raw) = state.hot.pop().or_else(|| state.cold.pop()) {
            state.reused += 1;
            raw
        } else {
            let raw = if self.guarded {
                map_guarded(self.stack_size, self.page)?
            } else {
                self.carve(&mut state)?
            };
            state.created += 1;
            raw
        };
        state.in_use += 1;
        Ok(raw)
    }

    /// Cuts the next stack out of the newest unguarded mapping, mapping a new one when it is full.
    fn carve(&self, state: &mut PoolState) -> io::Result<RawStack> {
        if state.uncarved.is_empty() {
            let mapping = map_unguarded(self.stack_size, self.stacks_per_mapping)?;
            let start = mapping.addr.as_ptr() as usize;
            state.uncarved = start..start + mapping.len;
            state.mappings.push(mapping);
        }
        let newest = state
            .mappings
            .last()
            .ok_or_else(|| io::Error::other("no stack mapping"))?;
        let offset = state.uncarved.start - newest.addr.as_ptr() as usize;
        state.uncarved.start += self.stack_size;
        // Deriving the pointer from the mapping's keeps its provenance.
        let lo = newest.addr.as_ptr().wrapping_add(offset);
        NonNull::new(lo)
            .map(|lo| RawStack { lo })
            .ok_or_else(|| io::Error::other("null stack address"))
    }

    fn release(&self, raw: RawStack) {
        let mut state = self.state.borrow_mut();
        state.in_use -= 1;
        state.hot.push(raw);
        // Unguarded stacks are given back in batches: one `madvise` for a run of adjacent
        // stacks instead of one per stack (about 2 µs each, most of a fiber's life).
        let slack = if self.guarded { 0 } else { self.max_cached };
        if state.hot.len() > self.max_cached + slack {
            self.trim_excess(&mut state);
        }
    }

    /// Gives back all but the `max_cached` most recently released stacks.
    fn trim_excess(&self, state: &mut PoolState) {
        let excess = state.hot.len() - self.max_cached;
        let mut batch: Vec<RawStack> = state.hot.drain(..excess).collect();
        if self.guarded {
            for raw in batch {
                self.unmap_guarded(raw);
            }
            return;
        }
        batch.sort_unstable_by_key(|raw| raw.lo.as_ptr() as usize);
        for run in batch
            .chunk_by(|a, b| b.lo.as_ptr() as usize == a.lo.as_ptr() as usize + self.stack_size)
        {
            // SAFETY: by RawStack's INVARIANT each stack of `run` is `stack_size` bytes of a
            // live private anonymous mapping of this pool; they are adjacent, so `run` spans
            // `run.len() * stack_size` bytes of this pool's mappings, and all are idle: no
            // fiber runs on them and no reference into them exists, so dropping their contents
            // is harmless.
            unsafe {
                libc::madvise(
                    run[0].lo.as_ptr().cast(),
                    run.len() * self.stack_size,
                    libc::MADV_DONTNEED,
                )
            };
        }
        state.cold.extend(batch);
    }

    /// Gives an idle stack's memory back to the kernel.
    fn discard(&self, raw: RawStack, state: &mut PoolState) {
        if self.guarded {
            self.unmap_guarded(raw);
        } else {
            // SAFETY: by RawStack's INVARIANT `raw` is `stack_size` bytes of a live private
            // anonymous mapping, and it is idle: no fiber runs on it and no reference into it
            // exists, so dropping its contents (the pages read back as zeroes) is harmless.
            unsafe { libc::madvise(raw.lo.as_ptr().cast(), self.stack_size, libc::MADV_DONTNEED) };
            state.cold.push(raw);
        }
    }

    fn unmap_guarded(&self, raw: RawStack) {
        let base = raw.lo.as_ptr().wrapping_sub(self.page);
        // SAFETY: by RawStack's INVARIANT `raw` is the usable part of its own guarded mapping,
        // which starts one page lower and spans `page + stack_size` bytes; the stack is idle and
        // owned by the pool, which forgets it here, so nothing uses the memory afterwards.
        unsafe { libc::munmap(base.cast(), self.page + self.stack_size) };
        GUARDED_MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Every `Stack` holds an `Rc` to the pool, so all stacks are idle here.
        let state = self.state.get_mut();
        if self.guarded {
            for raw in std::mem::take(&mut state.hot) {
                self.unmap_guarded(raw);
            }
        } else {
            for mapping in state.mappings.drain(..) {
                // SAFETY: by Mapping's INVARIANT this is a live mapping of `len` bytes owned by
                // this pool, and no stack carved from it is in use (see above).
                unsafe { libc::munmap(mapping.addr.as_ptr().cast(), mapping.len) };
            }
        }
    }
}

/// Maps one guarded stack: a `PROT_NONE` guard page with `size` writable bytes above it.
fn map_guarded(size: usize, page: usize) -> io::Result<RawStack> {
    let previous = GUARDED_MAPPED.fetch_add(1, Ordering::Relaxed);
    if let (Some(limit), Some(max)) = (StackPool::guarded_stack_limit(), max_map_count()) {
        if previous >= limit {
            GUARDED_MAPPED.fetch_sub(1, Ordering::Relaxed);
            let cause = Cause::GuardedLimit { limit, max };
            return Err(StackAllocError::new(cause, size, None).into());
        }
    }
    let result = map_guarded_memory(size, page);
    if result.is_err() {
        GUARDED_MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
    result
}

fn map_guarded_memory(size: usize, page: usize) -> io::Result<RawStack> {
    let total = page + size;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK;
    // SAFETY: an anonymous mapping at an address of the kernel's choosing overlaps no existing
    // memory; the result is checked below.
    let base = unsafe { libc::mmap(ptr::null_mut(), total, libc::PROT_NONE, flags, -1, 0) };
    if base == libc::MAP_FAILED {
        let os = io::Error::last_os_error();
        return Err(StackAllocError::new(Cause::Guarded, size, Some(os)).into());
    }
    let lo = base.cast::<u8>().wrapping_add(page);
    // SAFETY: `lo..lo + size` lies inside the mapping just made, which nothing else uses yet.
    let rc = unsafe { libc::mprotect(lo.cast(), size, libc::PROT_READ | libc::PROT_WRITE) };
    if rc != 0 {
        let os = io::Error::last_os_error();
        // SAFETY: `base` is the mapping of `total` bytes made above and not handed out.
        unsafe { libc::munmap(base, total) };
        return Err(StackAllocError::new(Cause::Guarded, size, Some(os)).into());
    }
    if size >= HUGE_PAGE {
        // A transparent huge page would commit 2 MiB at the first touch.
        // SAFETY: advice on a mapping we own; it changes no contents.
        unsafe { libc::madvise(lo.cast(), size, libc::MADV_NOHUGEPAGE) };
    }
    NonNull::new(lo)
        .map(|lo| RawStack { lo })
        .ok_or_else(|| io::Error::other("null stack address"))
}

const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// Maps room for `count` unguarded stacks of `size` bytes each.
fn map_unguarded(size: usize, count: usize) -> io::Result<Mapping> {
    let error = |os| StackAllocError::new(Cause::Unguarded { count }, size, os);
    let len = size.checked_mul(count).ok_or_else(|| error(None))?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: an anonymous mapping at an address of the kernel's choosing overlaps no existing
    // memory; the result is checked below.
    let addr = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, -1, 0) };
    if addr == libc::MAP_FAILED {
        return Err(error(Some(io::Error::last_os_error())).into());
    }
    // Without this, a huge page would commit 2 MiB (several stacks) at the first touch.
    // SAFETY: advice on the mapping just made; it changes no contents.
    unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) };
    NonNull::new(addr.cast())
        .map(|addr| Mapping { addr, len })
        .ok_or_else(|| io::Error::other("null stack address"))
}

/// The kernel's limit on mappings per process, read once from `/proc/sys/vm/max_map_count`.
pub(crate) fn max_map_count() -> Option<usize> {
    static MAX: OnceLock<Option<usize>> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|text| text.trim().parse().ok())
    })
}

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let mut page = PAGE.load(Ordering::Relaxed);
    if page == 0 {
        // SAFETY: sysconf only reads a configuration value.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        page = usize::try_from(size).unwrap_or(4096).max(4096);
        PAGE.store(page, Ordering::Relaxed);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_size_is_clamped_and_rounded_to_pages() {
        let page = page_size();
        assert_eq!(
            StackPool::new(StackConfig::new().stack_size(1)).stack_size(),
            StackConfig::MIN_STACK_SIZE
        );
        let odd = StackPool::new(StackConfig::new().stack_size(100_000));
        assert_eq!(odd.stack_size(), 100_000usize.next_multiple_of(page));
        assert_eq!(
            StackPool::default().stack_size(),
            StackConfig::DEFAULT_STACK_SIZE
        );
        let huge = StackPool::new(StackConfig::new().stack_size(usize::MAX));
        assert_eq!(huge.stack_size(), StackConfig::MAX_STACK_SIZE);
    }

    #[test]
    fn guarded_stack_is_writable_with_a_guard_page_below() {
        let pool = StackPool::new(StackConfig::new().stack_size(32 * 1024));
        let stack = pool.get().unwrap();
        let guard = stack.guard_range().unwrap();
        assert_eq!(guard.end, stack.range().start);
        assert_eq!(guard.len(), page_size());
        // SAFETY: the stack's whole range is writable memory owned by `stack`.
        unsafe {
            stack.bottom().write(1);
            stack.top().sub(1).write(2);
        }
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let guard_line = format!("{:x}-{:x} ---p", guard.start, guard.end);
        assert!(maps.contains(&guard_line), "no {guard_line} in\n{maps}");
    }

    #[test]
    fn trimmed_unguarded_stack_comes_back_decommitted() {
        let pool = StackPool::new(StackConfig::unguarded().max_cached(0).stacks_per_mapping(1));
        let stack = pool.get().unwrap();
        let lo = stack.bottom();
        // SAFETY: the lowest byte of the stack is writable memory owned by `stack`.
        unsafe { lo.write(0xAA) };
        drop(stack);
        let again = pool.get().unwrap();
        assert_eq!(again.bottom(), lo);
        // SAFETY: as above; MADV_DONTNEED made the page read back as zeroes.
        assert_eq!(unsafe { again.bottom().read() }, 0);
        assert_eq!(pool.stats().reused, 1);
    }

    #[test]
    fn cached_stack_keeps_its_contents_and_address() {
        let pool = StackPool::new(StackConfig::new().max_cached(1));
        let stack = pool.get().unwrap();
        let lo = stack.bottom();
        // SAFETY: the lowest byte of the stack is writable memory owned by `stack`.
        unsafe { lo.write(0x55) };
        drop(stack);
        let again = pool.get().unwrap();
        assert_eq!(again.bottom(), lo);
        // SAFETY: as above; a cached stack is not decommitted.
        assert_eq!(unsafe { again.bottom().read() }, 0x55);
    }

    #[test]
    fn unguarded_stacks_are_adjacent_and_spill_into_new_mappings() {
        let pool = StackPool::new(StackConfig::unguarded().stacks_per_mapping(2));
        let size = pool.stack_size();
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        assert_eq!(pool.state_mappings(), 1);
        let c = pool.get().unwrap();
        assert_eq!(a.range().end, b.range().start);
        assert_eq!(b.range().len(), size);
        assert_eq!(c.range().len(), size);
        assert_eq!(pool.state_mappings(), 2);
    }

    impl StackPool {
        fn state_mappings(&self) -> usize {
            self.inner.state.borrow().mappings.len()
        }
    }
}
