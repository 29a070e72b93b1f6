//! Buffers handed to libuv (`uv_buf_t`).

use libuv_sys2 as sys;

/// A `uv_buf_t` describing `bytes`, for libuv calls that only read it. libuv copies the
/// `uv_buf_t` array itself on submission, but the bytes must stay put until the request's
/// callback has run: requests therefore own the values the slices come from.
pub(crate) fn for_read(bytes: &[u8]) -> sys::uv_buf_t {
    sys::uv_buf_t {
        base: bytes.as_ptr().cast_mut().cast(),
        len: bytes.len(),
    }
}

/// A `uv_buf_t` over the spare capacity of `vec`, for libuv to read into.
pub(crate) fn spare(vec: &mut Vec<u8>) -> sys::uv_buf_t {
    let spare = vec.spare_capacity_mut();
    sys::uv_buf_t {
        base: spare.as_mut_ptr().cast(),
        len: spare.len(),
    }
}

/// `uv_buf_t`s for a list of owned buffers.
pub(crate) fn for_all<B: AsRef<[u8]>>(bufs: &[B]) -> Vec<sys::uv_buf_t> {
    bufs.iter().map(|b| for_read(b.as_ref())).collect()
}
