//! The error a [`StackPool`](crate::StackPool) returns when it cannot make a stack.
//!
//! It reaches callers as an [`io::Error`] of kind [`io::ErrorKind::OutOfMemory`] (or the OS
//! error's kind for failures other than `ENOMEM`), whose message names the limit that was hit
//! and the ways out, and whose [`source`](Error::source) is the OS error when there is one.

use std::error::Error;
use std::fmt;
use std::io;

use crate::stack::{RESERVED_MAPPINGS, max_map_count};

/// Why a stack could not be made; the message is formatted only when displayed, since memory
/// may be short when this is returned.
#[derive(Debug)]
pub(crate) struct StackAllocError {
    cause: Cause,
    size: usize,
    os: Option<io::Error>,
}

#[derive(Debug)]
pub(crate) enum Cause {
    /// The process-wide count of guarded stacks reached the limit.
    GuardedLimit { limit: usize, max: usize },
    /// `mmap` or `mprotect` of a guarded stack failed.
    Guarded,
    /// `mmap` of `count` unguarded stacks failed (or their size overflowed).
    Unguarded { count: usize },
}

impl StackAllocError {
    pub(crate) fn new(cause: Cause, size: usize, os: Option<io::Error>) -> StackAllocError {
        StackAllocError { cause, size, os }
    }

    fn kind(&self) -> io::ErrorKind {
        match &self.os {
            Some(os) if os.raw_os_error() != Some(libc::ENOMEM) => os.kind(),
            _ => io::ErrorKind::OutOfMemory,
        }
    }
}

impl From<StackAllocError> for io::Error {
    fn from(error: StackAllocError) -> io::Error {
        io::Error::new(error.kind(), error)
    }
}

impl fmt::Display for StackAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = self.size;
        let advice = "end some fibers, raise vm.max_map_count, or use an unguarded stack pool \
                      (StackConfig::unguarded)";
        match (&self.cause, &self.os) {
            (Cause::GuardedLimit { limit, max }, _) => write!(
                f,
                "cannot allocate a guarded fiber stack: {limit} are in use, the most that fit in \
                 the kernel's limit of vm.max_map_count = {max} memory mappings per process (each \
                 guarded stack takes 2, and {RESERVED_MAPPINGS} are left for the rest of the \
                 program); {advice}"
            ),
            (Cause::Guarded, Some(os)) if os.raw_os_error() == Some(libc::ENOMEM) => {
                let max = max_map_count().map_or("unknown".to_owned(), |m| m.to_string());
                write!(
                    f,
                    "cannot map a guarded fiber stack of {size} bytes: {os}: out of memory \
                     mappings (each guarded stack takes 2 of the vm.max_map_count = {max} a \
                     process may have) or of address space (ulimit -v); {advice}"
                )
            }
            (Cause::Guarded, os) => {
                write!(f, "cannot map a guarded fiber stack of {size} bytes")?;
                os.as_ref().map_or(Ok(()), |os| write!(f, ": {os}"))
            }
            (Cause::Unguarded { count }, os) => {
                write!(
                    f,
                    "cannot map {count} unguarded fiber stacks of {size} bytes"
                )?;
                match os {
                    Some(os) => write!(
                        f,
                        ": {os}; use a smaller stack size or fewer stacks per mapping, or raise \
                         the address-space limit (ulimit -v)"
                    ),
                    None => write!(f, ": the size overflows the address space"),
                }
            }
        }
    }
}

impl Error for StackAllocError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.os.as_ref().map(|os| os as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_names_the_limit_and_the_way_out() {
        let error: io::Error = StackAllocError::new(
            Cause::GuardedLimit {
                limit: 32253,
                max: 65530,
            },
            4096,
            None,
        )
        .into();
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        let text = error.to_string();
        assert!(text.contains("vm.max_map_count = 65530"), "{text}");
        assert!(text.contains("StackConfig::unguarded"), "{text}");
        let enomem = io::Error::from_raw_os_error(libc::ENOMEM);
        let error: io::Error = StackAllocError::new(Cause::Guarded, 4096, Some(enomem)).into();
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        assert!(error.to_string().contains("vm.max_map_count"));
        let source = error.get_ref().and_then(|e| e.source());
        let os = source.and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(os.and_then(io::Error::raw_os_error), Some(libc::ENOMEM));
    }
}
