//! [`Lock`]: a fair lock for fibers and threads (Gruvi's `Lock`).

use std::fmt;
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, compiler_fence, fence,
};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::sync::parking::thread_token;
use crate::sync::waiter::{self, SpinGuard, SpinLock, WaitQueue};

// How the lock works
//
// `owner` is 0 when the lock is free, else the token of the thread that acquired it (or was
// handed it). `flags` counts the queued waiters (in units of `WAITER`; it changes only under
// the queue's spin lock and always equals the queue's length) plus two bits about fences.
//
// Acquiring is one compare-exchange of `owner` from 0 (when nobody is queued: FIFO). Releasing
// with waiters queued hands the lock to the first one (`owner` becomes its thread's token and
// is never 0 in between). Releasing without waiters must not miss a waiter that is queueing
// right now: the waiter stores the new count and then reads `owner`; the releaser stores
// `owner = 0` and then reads the count. Each side needs its store ordered before its load, or
// both could read the old value: the waiter would park on a lock that nobody will hand over.
//
// The waiter always fences (a full fence after counting itself). The releaser, on the common
// path, only keeps the compiler from reordering (a plain store and a plain load: no locked
// instruction, about 10 ns less per acquire and release on x86), and the ordering it skips is
// supplied from the waiting side, which waits anyway:
// - a waiter that finds `owner` naming its own thread needs nothing more: that thread is not
//   running (the waiter is), and its release will come later in program order. A release from
//   another thread takes the fenced path, because the plain path is only for the thread that
//   `owner` names;
// - a waiter that finds another thread's token asks every later release to fence
//   (`FENCE_ASKED`: a release takes the plain path only when `flags` is 0) and then runs a
//   process-wide barrier (`membarrier(2)`, a few microseconds), which orders the store of every
//   release already past that question; then it reads `owner` again. Once one waiter has done
//   so (`FENCE_DONE`), later ones need no barrier: every release since fences.
// A waiter that finds the lock free after counting itself serves the queue itself
// (`serve_first`), as a release would; if a newcomer took the lock in between, the newcomer's
// release is ordered the same way (needed on weaker memory models than x86's). Whether the
// barrier exists is settled once per process; without it every release fences, and a waiter
// whose barrier is refused later (a seccomp filter) polls the lock instead of relying on the
// wake-up.

/// `flags`: a waiter on another thread than the owner's asked releases to fence.
const FENCE_ASKED: usize = 1;
/// `flags`: a process-wide barrier ran after `FENCE_ASKED` was set.
const FENCE_DONE: usize = 2;
/// `flags`: one queued waiter.
const WAITER: usize = 4;

/// Whether releases may take the path without a fence: 0 not known yet, then `YES` or `NO`.
/// Releases take it only once the answer is `YES`; waiters settle the answer first (see
/// [`asymmetric_settled`]).
static ASYMMETRIC: AtomicU8 = AtomicU8::new(0);
const YES: u8 = 1;
const NO: u8 = 2;

/// For tests: `barrier` fails as if the system refused it.
static REFUSE_BARRIER: AtomicBool = AtomicBool::new(false);

/// How often a waiter whose barrier was refused looks at the lock again.
const POLL_WITHOUT_BARRIER: Duration = Duration::from_millis(1);

/// Whether a release may take the plain path (the barrier is known to be available).
#[inline(always)]
fn plain_release_allowed() -> bool {
    ASYMMETRIC.load(Ordering::Relaxed) == YES
}

/// Whether the process-wide barrier is available, registering for it if nobody has asked yet.
/// A waiter must know for sure: a release may take the plain path the moment the answer is
/// `YES`.
#[inline]
fn asymmetric_settled() -> bool {
    match ASYMMETRIC.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => register_asymmetric(),
    }
}

/// Settles whether the process-wide barrier is available, registering the process for
/// `membarrier(2)` if nobody has yet (the Hub does it when it starts, so that fibers' locks
/// release with a plain store from the first use). The first answer is final: a release may
/// take the plain path once it is `YES`, and a waiter that read `NO` skips the barrier, so it
/// can change in neither direction. Racing callers all register (idempotent) and one answer
/// wins. A thread that a seccomp filter keeps from the barrier later just waits polling.
#[cold]
pub(crate) fn register_asymmetric() -> bool {
    let settled = ASYMMETRIC.load(Ordering::Relaxed);
    if settled != 0 {
        return settled == YES;
    }
    let answer = if uv_sys_wrap::register_barrier() {
        YES
    } else {
        NO
    };
    match ASYMMETRIC.compare_exchange(0, answer, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => answer == YES,
        Err(settled) => settled == YES,
    }
}

/// The process-wide barrier; false if the system refused it.
#[cold]
fn barrier() -> bool {
    !REFUSE_BARRIER.load(Ordering::Relaxed) && uv_sys_wrap::barrier()
}

/// Makes every later release fence, as if the system had no process-wide barrier (for tests of
/// that path; call it before any lock is used, in a process of its own).
#[doc(hidden)]
pub fn fence_every_release() {
    ASYMMETRIC.store(NO, Ordering::Relaxed);
}

/// Makes the process-wide barrier fail from now on, as a seccomp filter could (for tests of
/// the polling fallback; in a process of its own).
#[doc(hidden)]
pub fn refuse_barrier() {
    REFUSE_BARRIER.store(true, Ordering::Relaxed);
}

/// What [`Lock::serve_first`] did.
enum Served {
    /// Gave the lock to this waiter, now out of the queue (to be woken after unlocking).
    Waiter(waiter::Queued<u64>),
    /// Nobody is queued.
    Nobody,
    /// The lock is held, by this thread's token.
    Taken(u64),
}

/// A lock that blocks only the calling fiber (Gruvi's `Lock`), usable from fibers on any
/// thread's Hub and from plain threads.
///
/// Fair: waiters get the lock in strict FIFO order, because [`release`](Self::release) hands it
/// directly to the first waiter instead of freeing it for whoever comes next. A waiter that
/// times out or is cancelled leaves the queue; if the lock was handed to it in that very
/// moment, it keeps it (and its call succeeds), so ownership is never lost.
///
/// The lock has no owner: any fiber or thread may release it (Gruvi allows that too); for an
/// owner-checked, reentrant lock use [`RLock`](crate::RLock), for a lock that guards data use
/// [`Mutex`](crate::Mutex). An uncontended acquire is one atomic compare-exchange; releasing
/// it from the thread that acquired it is a plain store.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use fiber_core::{Lock, spawn};
///
/// fiber_core::run(|| {
///     let lock = Arc::new(Lock::new());
///     let guard = lock.lock()?;
///     let other = {
///         let lock = lock.clone();
///         spawn(move || lock.lock().map(|_guard| "got it after the root"))
///     };
///     fiber_core::yield_now()?; // `other` now waits for the lock
///     drop(guard); // hands the lock to `other`
///     assert_eq!(other.join().unwrap()?, "got it after the root");
///     fiber_core::Result::Ok(())
/// })?;
/// # Ok::<(), fiber_core::Error>(())
/// ```
pub struct Lock {
    /// 0 when free, else the token of the thread that acquired it or was handed it.
    owner: AtomicU64,
    /// The number of queued waiters times `WAITER`, plus `FENCE_ASKED` and `FENCE_DONE`.
    /// Written only under `waiters`' spin lock.
    flags: AtomicUsize,
    /// The waiters, each with its thread's token.
    waiters: SpinLock<WaitQueue<u64>>,
}

impl Lock {
    /// An unlocked lock.
    pub const fn new() -> Lock {
        Lock {
            owner: AtomicU64::new(0),
            flags: AtomicUsize::new(0),
            waiters: SpinLock::new(WaitQueue::new()),
        }
    }

    /// Whether somebody holds the lock now (Gruvi's `locked()`).
    pub fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != 0
    }

    /// Acquires the lock, waiting for it if needed.
    ///
    /// # Switchpoint
    ///
    /// Blocks the calling fiber (or thread, without a Hub) while another holds the lock.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`](crate::Error::Cancelled), or [`Error::TimedOut`](crate::Error::TimedOut)
    /// from an enclosing [`timeout`](crate::timeout) scope; the lock is then not acquired.
    #[inline]
    #[track_caller]
    pub fn acquire(&self) -> Result<()> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_slow(None)
    }

    /// Like [`acquire`](Self::acquire), giving up with
    /// [`Error::TimedOut`](crate::Error::TimedOut) after `timeout` (Gruvi's
    /// `acquire(timeout=...)` returning `False`). A timed-out waiter leaves nothing behind.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_slow(waiter::deadline(timeout))
    }

    /// Acquires the lock if it is free now and nobody waits for it (Gruvi's
    /// `acquire(blocking=False)`). Never switches.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        // Queued waiters come first: a release hands the lock to them, and one that finds it
        // free for a moment (see `dispatch`) serves them.
        self.flags.load(Ordering::Relaxed) < WAITER
            && self
                .owner
                .compare_exchange(0, thread_token(), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Releases the lock: the first waiter, if any, now owns it. Never switches.
    ///
    /// # Panics
    ///
    /// If the lock is not held (Gruvi: `RuntimeError('lock not currently held')`).
    #[inline]
    pub fn release(&self) {
        let owner = self.owner.load(Ordering::Relaxed);
        assert!(owner != 0, "Lock::release: lock not currently held");
        // The plain path (see the comment at the top): nobody queued, no fences asked, and the
        // thread that `owner` names releases.
        if self.flags.load(Ordering::Relaxed) == 0
            && owner == thread_token()
            && plain_release_allowed()
        {
            self.owner.store(0, Ordering::Release);
            compiler_fence(Ordering::SeqCst);
            if self.flags.load(Ordering::Relaxed) != 0 {
                self.fence_and_serve();
            }
        } else {
            self.release_slow();
        }
    }

    /// Acquires the lock and returns a guard that releases it when dropped (Gruvi's `with lock:`).
    ///
    /// # Switchpoint
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    #[track_caller]
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        self.acquire()?;
        Ok(LockGuard { lock: self })
    }

    /// Like [`lock`](Self::lock), giving up after `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        self.acquire_timeout(timeout)?;
        Ok(LockGuard { lock: self })
    }

    /// A guard if the lock is free now. Never switches.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.try_acquire().then(|| LockGuard { lock: self })
    }

    #[cold]
    #[track_caller]
    fn acquire_slow(&self, deadline: Option<Instant>) -> Result<()> {
        let me = thread_token();
        let asymmetric = asymmetric_settled();
        let mut queue = self.waiters.lock();
        let before = queue.len();
        let nobody_queued = queue.front_live().is_none();
        self.uncount(before - queue.len());
        if nobody_queued
            && self
                .owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Ok(());
        }
        let (id, parker) = queue.push(me);
        self.flags.store(
            self.flags.load(Ordering::Relaxed) + WAITER,
            Ordering::Relaxed,
        );
        // Counted, then look at the owner: a release either sees the count or is seen here.
        fence(Ordering::SeqCst);
        #[cfg(test)]
        tests::before_owner_check(self);
        let mut polling = false;
        let served = loop {
            let owner = match self.owner.load(Ordering::Relaxed) {
                // Released since this waiter counted itself: serve the queue as that release
                // would. A newcomer may have taken it meanwhile: then look at its thread.
                0 => match self.serve_first(&mut queue) {
                    Served::Waiter(next) => break Some(next),
                    Served::Nobody => break None,
                    Served::Taken(by) => by,
                },
                owner => owner,
            };
            if polling || !self.may_release_unordered(owner, me, asymmetric) {
                break None;
            }
            // If the system refuses the barrier, wait polling instead.
            let fenced;
            (queue, fenced) = self.ask_and_fence(queue);
            polling = !fenced;
        };
        drop(queue);
        if let Some(next) = served {
            if next.id == id {
                // Served itself without parking: the wait ends here.
                parker.release();
                return Ok(());
            }
            next.waker.wake();
        }
        if polling {
            return waiter::block_polling(
                parker,
                "Lock::acquire",
                deadline,
                POLL_WITHOUT_BARRIER,
                &|| self.poll_served(id),
                || self.withdraw(id),
                || self.release(),
            );
        }
        waiter::block(
            parker,
            "Lock::acquire",
            deadline,
            || self.withdraw(id),
            || self.release(),
        )
    }

    /// For a waiter that could not run the barrier: serves the queue if the lock is free (a
    /// release may have missed the waiter); true if that gave the lock to waiter `id`.
    fn poll_served(&self, id: u64) -> bool {
        let mut queue = self.waiters.lock();
        if self.owner.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let Served::Waiter(next) = self.serve_first(&mut queue) else {
            return false;
        };
        drop(queue);
        if next.id == id {
            return true;
        }
        next.waker.wake();
        false
    }

    /// Under the queue's lock, `owner` holding the lock: whether its release may take the plain
    /// path without seeing this thread's count (see the comment at the top of the file).
    fn may_release_unordered(&self, owner: u64, me: u64, asymmetric: bool) -> bool {
        owner != me && asymmetric && self.flags.load(Ordering::Relaxed) & FENCE_DONE == 0
    }

    /// Asks every later release to fence, and orders those already past the question with the
    /// process-wide barrier, run without the spin lock (it takes microseconds). Returns the
    /// queue locked again and whether the barrier ran.
    fn ask_and_fence<'a>(
        &'a self,
        queue: SpinGuard<'a, WaitQueue<u64>>,
    ) -> (SpinGuard<'a, WaitQueue<u64>>, bool) {
        self.set_flags(FENCE_ASKED);
        drop(queue);
        let fenced = barrier();
        let queue = self.waiters.lock();
        if fenced {
            self.set_flags(FENCE_DONE);
        }
        (queue, fenced)
    }

    /// Under the queue's lock: sets `bits` in `flags`.
    fn set_flags(&self, bits: usize) {
        let flags = self.flags.load(Ordering::Relaxed);
        self.flags.store(flags | bits, Ordering::Relaxed);
    }

    /// Takes a waiter that gave up out of the queue; false if the lock was handed to it.
    fn withdraw(&self, id: u64) -> bool {
        let mut queue = self.waiters.lock();
        let before = queue.len();
        let queued = queue.remove(id).is_some();
        self.uncount(before - queue.len());
        queued
    }

    /// The rest of a release after its store of `owner = 0`, ordered: fence, then serve the
    /// queue if a waiter counted itself meanwhile. The plain path comes here only when `flags`
    /// changed after its store.
    #[cold]
    fn fence_and_serve(&self) {
        fence(Ordering::SeqCst);
        if self.flags.load(Ordering::Relaxed) >= WAITER {
            self.dispatch();
        }
    }

    /// A release with waiters queued, fences asked, or from another thread than `owner` names.
    #[inline(never)]
    fn release_slow(&self) {
        if self.flags.load(Ordering::Relaxed) >= WAITER {
            let mut queue = self.waiters.lock();
            let before = queue.len();
            let next = queue.pop();
            self.uncount(before - queue.len());
            if let Some(next) = next {
                // Still held: the first waiter owns it now (it is never free in between, so
                // nobody can come first).
                self.owner.store(next.data, Ordering::Release);
                drop(queue);
                next.waker.wake();
                return;
            }
            // Every waiter withdrew (or its Hub is gone) meanwhile: free it.
        }
        self.owner.store(0, Ordering::Release);
        self.fence_and_serve();
    }

    /// The lock was freed while waiters were queueing: the first one owns it now, unless a
    /// newcomer took it meanwhile, whose release then serves the queue.
    #[cold]
    fn dispatch(&self) {
        let me = thread_token();
        let mut queue = self.waiters.lock();
        let next = loop {
            match self.serve_first(&mut queue) {
                Served::Waiter(next) => break Some(next),
                Served::Nobody => break None,
                // The newcomer's release sees the count if it runs on this thread (later in
                // program order) or fences; one on another thread may release with a plain
                // store, so order it as a waiter would (see `acquire_slow`). If the system
                // refuses the barrier, nothing more can be done here: on x86 the newcomer's
                // compare-exchange already orders its later loads after the count.
                Served::Taken(by) => {
                    if !self.may_release_unordered(by, me, asymmetric_settled()) {
                        break None;
                    }
                    let fenced;
                    (queue, fenced) = self.ask_and_fence(queue);
                    if !fenced {
                        break None;
                    }
                }
            }
        };
        drop(queue);
        if let Some(next) = next {
            next.waker.wake();
        }
    }

    /// Under the queue's lock: gives a free lock to the first live waiter and takes it out of
    /// the queue (to be woken after unlocking).
    fn serve_first(&self, queue: &mut WaitQueue<u64>) -> Served {
        let before = queue.len();
        let served = match queue.front_live().map(|first| first.data) {
            None => Served::Nobody,
            Some(token) => {
                match self
                    .owner
                    .compare_exchange(0, token, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => queue.take(0).map_or(Served::Nobody, Served::Waiter),
                    Err(by) => Served::Taken(by),
                }
            }
        };
        self.uncount(before - queue.len());
        served
    }

    /// Under the queue's lock: `removed` waiters left the queue.
    #[inline(always)]
    fn uncount(&self, removed: usize) {
        if removed != 0 {
            let flags = self.flags.load(Ordering::Relaxed);
            debug_assert!(
                flags / WAITER >= removed,
                "lock waiter count below the queue's"
            );
            self.flags
                .store(flags - removed * WAITER, Ordering::Relaxed);
        }
    }

    /// How many waiters are queued (for tests: nothing is left behind).
    #[doc(hidden)]
    pub fn waiter_count(&self) -> usize {
        let queue = self.waiters.lock();
        debug_assert_eq!(
            self.flags.load(Ordering::Relaxed) / WAITER,
            queue.len(),
            "lock waiter count out of step with its queue"
        );
        queue.len()
    }
}

impl Default for Lock {
    fn default() -> Lock {
        Lock::new()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Releases a [`Lock`] when dropped; from [`Lock::lock`].
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // An unwinding fiber may have lost the lock (a condition wait that could not take it
        // back): never panic again while unwinding.
        if std::thread::panicking() && !self.lock.is_locked() {
            return;
        }
        self.lock.release();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Runs in `acquire_slow` between the waiter counting itself and its look at the owner.
        static BEFORE_OWNER_CHECK: Cell<Option<fn(&Lock)>> = const { Cell::new(None) };
    }

    pub(super) fn before_owner_check(lock: &Lock) {
        if let Some(hook) = BEFORE_OWNER_CHECK.with(Cell::take) {
            hook(lock);
        }
    }

    /// A waiter that finds the lock freed after counting itself serves itself without
    /// parking. Its wait must still end: a parker left behind kept the Hub counting a parked
    /// fiber (so it never reported a deadlock again) and tripped the fiber's next wait.
    #[test]
    fn a_waiter_that_serves_itself_ends_its_wait() {
        crate::run(|| {
            let lock = Lock::new();
            // Held by another thread's token, released (as a plain store on that thread
            // would, unseen by the waiter's count) while the waiter queues.
            lock.owner.store(u64::MAX, Ordering::Relaxed);
            BEFORE_OWNER_CHECK.with(|hook| {
                hook.set(Some(|lock| lock.owner.store(0, Ordering::Relaxed)));
            });
            lock.acquire()?;
            assert!(BEFORE_OWNER_CHECK.with(Cell::get).is_none(), "the hook ran");
            assert_eq!(lock.owner.load(Ordering::Relaxed), thread_token());
            assert_eq!(lock.waiter_count(), 0);
            lock.release();
            // A wait that nothing can end: the Hub reports it, as it does only when no fiber
            // is counted parked in a primitive.
            let waiter = crate::SwitchBack::<()>::new();
            let _never_called = waiter.callback();
            assert_eq!(waiter.wait(), Err(crate::Error::WouldBlockForever));
            crate::Result::Ok(())
        })
        .unwrap();
    }
}
