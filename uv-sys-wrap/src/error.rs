//! libuv error codes as one Rust error type.

use std::ffi::{CStr, c_char, c_int};
use std::fmt;
use std::io;

use libuv_sys2 as sys;

/// A libuv error: a negative libuv error code (`UV_E*`).
///
/// On Unix libuv reports system errors as the negated `errno`, so [`Error::raw_os_error`] gives the
/// OS code back and the conversion to [`std::io::Error`] keeps it (with std's [`io::ErrorKind`]).
/// libuv's own codes (`UV_EOF`, the `UV_EAI_*` resolver codes) map to the nearest kind.
/// Cancellation (`UV_ECANCELED`) never maps to [`io::ErrorKind::Interrupted`], so std's retry
/// loops (`read_exact`, `write_all`) cannot spin on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error {
    code: c_int,
}

/// `Result` with [`Error`] as the error type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// End of file (`UV_EOF`): the peer closed its side of a stream.
    pub const EOF: Error = Error::from_code(sys::uv_errno_t_UV_EOF);
    /// The operation was cancelled (`UV_ECANCELED`), e.g. a write pending when its handle closed.
    pub const ECANCELED: Error = Error::from_code(sys::uv_errno_t_UV_ECANCELED);
    /// A resolver request was cancelled (`UV_EAI_CANCELED`).
    pub const EAI_CANCELED: Error = Error::from_code(sys::uv_errno_t_UV_EAI_CANCELED);
    /// The name is not known to the resolver (`UV_EAI_NONAME`).
    pub const EAI_NONAME: Error = Error::from_code(sys::uv_errno_t_UV_EAI_NONAME);
    /// Bad file descriptor (`UV_EBADF`); also what a method of an already closed handle returns.
    pub const EBADF: Error = Error::from_code(sys::uv_errno_t_UV_EBADF);
    /// Invalid argument (`UV_EINVAL`).
    pub const EINVAL: Error = Error::from_code(sys::uv_errno_t_UV_EINVAL);
    /// Resource temporarily unavailable (`UV_EAGAIN`).
    pub const EAGAIN: Error = Error::from_code(sys::uv_errno_t_UV_EAGAIN);
    /// Resource busy or locked (`UV_EBUSY`).
    pub const EBUSY: Error = Error::from_code(sys::uv_errno_t_UV_EBUSY);
    /// Connection refused (`UV_ECONNREFUSED`).
    pub const ECONNREFUSED: Error = Error::from_code(sys::uv_errno_t_UV_ECONNREFUSED);
    /// Address already in use (`UV_EADDRINUSE`).
    pub const EADDRINUSE: Error = Error::from_code(sys::uv_errno_t_UV_EADDRINUSE);
    /// Broken pipe (`UV_EPIPE`).
    pub const EPIPE: Error = Error::from_code(sys::uv_errno_t_UV_EPIPE);
    /// Not connected (`UV_ENOTCONN`).
    pub const ENOTCONN: Error = Error::from_code(sys::uv_errno_t_UV_ENOTCONN);
    /// No such file or directory (`UV_ENOENT`).
    pub const ENOENT: Error = Error::from_code(sys::uv_errno_t_UV_ENOENT);
    /// Too many open files (`UV_EMFILE`).
    pub const EMFILE: Error = Error::from_code(sys::uv_errno_t_UV_EMFILE);
    /// No such process (`UV_ESRCH`).
    pub const ESRCH: Error = Error::from_code(sys::uv_errno_t_UV_ESRCH);
    /// Operation not supported (`UV_ENOTSUP`).
    pub const ENOTSUP: Error = Error::from_code(sys::uv_errno_t_UV_ENOTSUP);
    /// No buffer space available (`UV_ENOBUFS`): an allocation callback gave an empty buffer.
    pub const ENOBUFS: Error = Error::from_code(sys::uv_errno_t_UV_ENOBUFS);

    /// Wraps a libuv error code (a negative `UV_E*` value).
    pub const fn from_code(code: c_int) -> Error {
        Error { code }
    }

    /// Turns a libuv return value into a `Result`: negative values are errors, others are
    /// returned unchanged.
    pub fn check(ret: c_int) -> Result<c_int> {
        if ret < 0 {
            Err(Error { code: ret })
        } else {
            Ok(ret)
        }
    }

    /// The libuv error code (negative).
    pub fn code(self) -> c_int {
        self.code
    }

    /// The error's name, e.g. `"ECONNREFUSED"` (`uv_err_name_r`).
    pub fn name(self) -> String {
        let mut buf = [0 as c_char; 64];
        // SAFETY: the buffer is valid for `buf.len()` bytes and uv_err_name_r always
        // NUL-terminates what it writes within that length.
        unsafe { sys::uv_err_name_r(self.code, buf.as_mut_ptr(), buf.len()) };
        // SAFETY: see above; the buffer holds a NUL-terminated string.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// The error's message, e.g. `"connection refused"` (`uv_strerror_r`).
    pub fn message(self) -> String {
        let mut buf = [0 as c_char; 256];
        // SAFETY: the buffer is valid for `buf.len()` bytes and uv_strerror_r always
        // NUL-terminates what it writes within that length.
        unsafe { sys::uv_strerror_r(self.code, buf.as_mut_ptr(), buf.len()) };
        // SAFETY: see above; the buffer holds a NUL-terminated string.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// The OS error number behind this error, if it is one (on Unix libuv codes are `-errno`).
    pub fn raw_os_error(self) -> Option<i32> {
        // libuv's own codes (UV_EOF = -4095, UV_EAI_* = -3000..-3014 and friends) lie far
        // below every errno value.
        (-self.code > 0 && -self.code < 3000).then_some(-self.code)
    }

    /// True for `UV_EOF`.
    pub fn is_eof(self) -> bool {
        self == Error::EOF
    }

    /// True for `UV_ECANCELED` and `UV_EAI_CANCELED`.
    pub fn is_cancelled(self) -> bool {
        self == Error::ECANCELED || self == Error::EAI_CANCELED
    }

    /// The [`io::ErrorKind`] this error converts to.
    pub fn kind(self) -> io::ErrorKind {
        match self.raw_os_error() {
            Some(errno) if errno != libc::ECANCELED => io::Error::from_raw_os_error(errno).kind(),
            _ => self.uv_kind(),
        }
    }

    fn uv_kind(self) -> io::ErrorKind {
        match self.code {
            sys::uv_errno_t_UV_EOF => io::ErrorKind::UnexpectedEof,
            sys::uv_errno_t_UV_EAI_NONAME | sys::uv_errno_t_UV_EAI_NODATA => {
                io::ErrorKind::NotFound
            }
            sys::uv_errno_t_UV_EAI_ADDRFAMILY
            | sys::uv_errno_t_UV_EAI_BADFLAGS
            | sys::uv_errno_t_UV_EAI_BADHINTS
            | sys::uv_errno_t_UV_EAI_FAMILY
            | sys::uv_errno_t_UV_EAI_SERVICE
            | sys::uv_errno_t_UV_EAI_SOCKTYPE
            | sys::uv_errno_t_UV_EAI_PROTOCOL => io::ErrorKind::InvalidInput,
            sys::uv_errno_t_UV_EAI_MEMORY => io::ErrorKind::OutOfMemory,
            _ => io::ErrorKind::Other,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("name", &self.name())
            .field("message", &self.message())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.name())
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        match err.raw_os_error() {
            // std knows the kind and message of a plain errno and keeps the code.
            Some(errno) if errno != libc::ECANCELED => io::Error::from_raw_os_error(errno),
            _ => io::Error::new(err.uv_kind(), err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_refused_keeps_kind_and_os_code() {
        let err = Error::ECONNREFUSED;
        assert_eq!(err.name(), "ECONNREFUSED");
        assert_eq!(err.message(), "connection refused");
        assert_eq!(err.to_string(), "connection refused (ECONNREFUSED)");
        let io: io::Error = err.into();
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(io.raw_os_error(), Some(libc::ECONNREFUSED));
    }

    #[test]
    fn eof_is_unexpected_eof_without_os_code() {
        let io: io::Error = Error::EOF.into();
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(io.raw_os_error(), None);
        assert!(Error::EOF.is_eof());
        assert_eq!(Error::EOF.name(), "EOF");
    }

    #[test]
    fn cancellation_is_never_interrupted() {
        for err in [Error::ECANCELED, Error::EAI_CANCELED] {
            assert!(err.is_cancelled());
            let io: io::Error = err.into();
            assert_ne!(io.kind(), io::ErrorKind::Interrupted);
            assert_eq!(err.kind(), io.kind());
        }
    }

    #[test]
    fn resolver_errors_map_to_kinds() {
        assert_eq!(Error::EAI_NONAME.kind(), io::ErrorKind::NotFound);
        assert_eq!(Error::EAI_NONAME.raw_os_error(), None);
    }

    #[test]
    fn check_passes_non_negative_values() {
        assert_eq!(Error::check(3), Ok(3));
        assert_eq!(Error::check(sys::uv_errno_t_UV_EPIPE), Err(Error::EPIPE));
        assert_eq!(Error::EPIPE.kind(), io::ErrorKind::BrokenPipe);
    }
}
