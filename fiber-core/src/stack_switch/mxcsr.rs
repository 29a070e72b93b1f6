//! Reads and writes of MXCSR's exception status bits (bits 0-5), for the switch's MXCSR fix.
//!
//! Rust lets code change these bits freely; only the control bits (exception masks, rounding
//! mode, FTZ/DAZ) must keep their defaults, and nothing here changes them. Off x86_64 there is no
//! MXCSR and these functions do nothing.

#[cfg(target_arch = "x86_64")]
use std::arch::asm;

/// The six exception status bits (invalid, denormal, divide-by-zero, overflow, underflow,
/// precision).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) const STATUS_BITS: u32 = 0x3f;

/// The current MXCSR.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn read() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: stmxcsr stores MXCSR into `value`, a valid, aligned and writable u32; it changes
    // no register or flag.
    unsafe {
        asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags));
    }
    value
}

/// Loads `value`, which must differ from the current MXCSR only in the status bits.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn write_status(value: u32) {
    debug_assert_eq!(value & !STATUS_BITS, read() & !STATUS_BITS);
    // SAFETY: ldmxcsr reads a valid u32; callers change only the exception status bits, which
    // Rust lets code modify, and no control bit.
    unsafe {
        asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, preserves_flags, readonly));
    }
}

/// Whether all six status bits are set (always `true` off x86_64).
pub(super) fn status_bits_set() -> bool {
    #[cfg(target_arch = "x86_64")]
    return read() & STATUS_BITS == STATUS_BITS;
    #[cfg(not(target_arch = "x86_64"))]
    return true;
}

/// Sets all six status bits.
pub(super) fn set_status_bits() {
    #[cfg(target_arch = "x86_64")]
    write_status(read() | STATUS_BITS);
}

/// Clears all six status bits.
pub(super) fn clear_status_bits() {
    #[cfg(target_arch = "x86_64")]
    write_status(read() & !STATUS_BITS);
}
