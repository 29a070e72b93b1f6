//! The `std::io` and settings surface that every transport-backed stream ([`TcpStream`],
//! [`UnixStream`], [`Tty`]) shares, written once. Each type has a `transport: Transport<_>`
//! field.
//!
//! [`TcpStream`]: crate::TcpStream
//! [`UnixStream`]: crate::UnixStream
//! [`Tty`]: crate::Tty

/// Implements `Read` and `Write` on `$t` and `&$t` (so one fiber can read while another
/// writes), forwarding to its transport.
macro_rules! transport_io {
    ($t:ty) => {
        impl ::std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.transport.read(buf)
            }
        }

        impl ::std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.transport.read(buf)
            }
        }

        impl ::std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.transport.write(buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.transport.write_vectored(bufs)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                self.transport.flush()
            }
        }

        impl ::std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.transport.write(buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.transport.write_vectored(bufs)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                self.transport.flush()
            }
        }
    };
}
pub(crate) use transport_io;

/// Implements the timeout and flow-control settings on `$t`, forwarding to its transport.
macro_rules! transport_settings {
    ($t:ty) => {
        impl $t {
            /// Sets how long a read may block before failing with `ErrorKind::TimedOut`
            /// (`None`: forever). The stream stays usable after a timeout.
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a zero duration, as std.
            pub fn set_read_timeout(
                &self,
                timeout: Option<::std::time::Duration>,
            ) -> ::std::io::Result<()> {
                $crate::tcp::check_timeout(timeout)?;
                self.transport.set_read_timeout(timeout);
                Ok(())
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
                Ok(self.transport.read_timeout())
            }

            /// Sets how long a write may block on a full queue before failing with
            /// `ErrorKind::TimedOut` (`None`: forever).
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a zero duration, as std.
            pub fn set_write_timeout(
                &self,
                timeout: Option<::std::time::Duration>,
            ) -> ::std::io::Result<()> {
                $crate::tcp::check_timeout(timeout)?;
                self.transport.set_write_timeout(timeout);
                Ok(())
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
                Ok(self.transport.write_timeout())
            }

            /// The buffer and queue limits (flow control).
            pub fn limits(&self) -> $crate::Limits {
                self.transport.limits()
            }

            /// Sets the buffer and queue limits.
            ///
            /// # Panics
            ///
            /// If `read_low_water > read_high_water` or `read_high_water` is 0.
            pub fn set_limits(&self, limits: $crate::Limits) {
                self.transport.set_limits(limits)
            }
        }
    };
}
pub(crate) use transport_settings;
