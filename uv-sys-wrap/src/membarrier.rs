//! A process-wide memory barrier: Linux's `membarrier(2)` with
//! `MEMBARRIER_CMD_PRIVATE_EXPEDITED`.
//!
//! Not libuv, but the one other system call the fiber layer needs and cannot make without
//! `unsafe`. It lets a rare path (a thread about to wait for a lock another thread holds) pay
//! for the ordering that the frequent path (releasing an uncontended lock) then need not: after
//! [`barrier`] returns, every other running thread of the process has passed a full memory
//! barrier, so each of their stores made before it is visible to the caller, and each of their
//! loads made after it sees the caller's earlier stores. A frequent path that uses only a
//! compiler fence between a store and a load is then ordered against the caller's
//! store-barrier-load sequence as if both sides had used a full fence.

/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (linux/membarrier.h).
#[cfg(target_os = "linux")]
const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
/// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` (linux/membarrier.h).
#[cfg(target_os = "linux")]
const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for [`barrier`] (once per process is enough; repeating is harmless).
/// False where the system has no expedited private membarrier (kernels before 4.14, seccomp
/// filters that refuse the call, systems other than Linux): [`barrier`] must not be relied on.
pub fn register_barrier() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: membarrier takes two integers and a CPU id (unused here); it touches no
        // memory of ours. Unknown commands or a refusing filter only return -1.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                CMD_REGISTER_PRIVATE_EXPEDITED,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Makes every running thread of this process pass a full memory barrier before returning
/// (the calling thread included); false if the system refused, in which case nothing is
/// ordered. Takes a few microseconds when other threads run (an inter-processor interrupt
/// each), ~0.1 us otherwise. Meant for after [`register_barrier`] returned true; it can still
/// be refused then (a seccomp filter installed later on this thread), and a forked child whose
/// kernel does not carry the registration over registers here again.
pub fn barrier() -> bool {
    #[cfg(target_os = "linux")]
    {
        expedited_barrier() || (register_barrier() && expedited_barrier())
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// One `MEMBARRIER_CMD_PRIVATE_EXPEDITED`; false if refused (errno says why).
#[cfg(target_os = "linux")]
fn expedited_barrier() -> bool {
    // SAFETY: as in `register_barrier`: no memory of ours is touched.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            CMD_PRIVATE_EXPEDITED,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_then_barrier_returns() {
        if register_barrier() {
            assert!(barrier());
            // Registration is idempotent.
            assert!(register_barrier());
        } else {
            // Unregistered, the barrier is refused rather than pretending to order anything.
            assert!(!barrier());
        }
    }
}
