//! Method calls: a reply matched to its call by serial, typed arguments, timeouts and
//! `NO_REPLY_EXPECTED`.

use std::time::Duration;

use dbus::arg::{AppendAll, ReadAll};
use dbus::{Message, MessageType};
use fiber_core::SwitchBack;

use crate::connection::{Connection, ForgetPending};
use crate::error::{Error, MethodError};
use crate::message::{method_call, read_args};

impl Connection {
    /// Sends a method call and waits for its reply, for at most [`Config::call_timeout`](crate::Config::call_timeout).
    ///
    /// # Switchpoint
    ///
    /// Blocks until the reply comes.
    ///
    /// # Errors
    ///
    /// As [`call_timeout`](Self::call_timeout).
    pub fn call(&self, message: Message) -> Result<Message, Error> {
        self.call_timeout(message, self.inner.config.call_timeout)
    }

    /// Sends a method call and waits for its reply, for at most `timeout`. A call flagged
    /// `NO_REPLY_EXPECTED` does not wait: it returns an empty method return at once.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the reply comes or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`Error::MethodCall`] for an error reply, [`Error::TimedOut`],
    /// [`Error::Disconnected`] when the connection closes first, the errors of
    /// [`send`](Self::send).
    pub fn call_timeout(&self, mut message: Message, timeout: Duration) -> Result<Message, Error> {
        if message.get_no_reply() {
            // A method return needs the call's serial (libdbus refuses serial 0).
            let serial = self.inner.next_serial();
            message.set_serial(serial);
            let empty = message.method_return();
            self.inner.write(message, serial)?;
            return Ok(empty);
        }
        let inner = &self.inner;
        let serial = inner.next_serial();
        let sb = SwitchBack::new();
        inner.pending.borrow_mut().insert(serial, sb.callback());
        // Forgets the entry however the wait ends (the reply's route removes it first).
        let _forget = ForgetPending(inner, serial);
        inner.write(message, serial)?;
        let reply = match sb.wait_timeout(timeout) {
            Ok(reply) => reply?,
            Err(fiber_core::Error::TimedOut) => return Err(Error::TimedOut),
            Err(err) => return Err(err.into()),
        };
        if reply.msg_type() == MessageType::Error {
            return Err(Error::MethodCall(MethodError::from_reply(reply)));
        }
        Ok(reply)
    }

    /// Calls `interface.method` on the object at `path` of `destination` (empty: none, for a
    /// peer) with typed arguments, and returns the reply's arguments typed (a tuple, `()` for
    /// none).
    ///
    /// # Switchpoint
    ///
    /// Blocks until the reply comes or [`Config::call_timeout`](crate::Config::call_timeout) passes.
    ///
    /// # Errors
    ///
    /// As [`call_timeout`](Self::call_timeout); [`Error::InvalidInput`] for a bad name or
    /// path, [`Error::Args`] when the reply's arguments are not of the types asked for.
    pub fn call_method<A: AppendAll, R: ReadAll>(
        &self,
        destination: &str,
        path: &str,
        interface: &str,
        method: &str,
        args: A,
    ) -> Result<R, Error> {
        let mut message = method_call(destination, path, interface, method)?;
        message.append_all(args);
        let reply = self.call(message)?;
        read_args(&reply)
    }

    /// [`call_method`](Self::call_method) with its own timeout.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the reply comes or `timeout` passes.
    ///
    /// # Errors
    ///
    /// As [`call_method`](Self::call_method).
    pub fn call_method_timeout<A: AppendAll, R: ReadAll>(
        &self,
        destination: &str,
        path: &str,
        interface: &str,
        method: &str,
        args: A,
        timeout: Duration,
    ) -> Result<R, Error> {
        let mut message = method_call(destination, path, interface, method)?;
        message.append_all(args);
        let reply = self.call_timeout(message, timeout)?;
        read_args(&reply)
    }

    /// Calls a method with `NO_REPLY_EXPECTED` set: the peer sends no reply and this does not
    /// wait for one.
    ///
    /// # Switchpoint
    ///
    /// Blocks while the send queue is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); [`Error::InvalidInput`] for a bad name or path.
    pub fn call_method_no_reply<A: AppendAll>(
        &self,
        destination: &str,
        path: &str,
        interface: &str,
        method: &str,
        args: A,
    ) -> Result<(), Error> {
        let mut message = method_call(destination, path, interface, method)?;
        message.append_all(args);
        message.set_no_reply(true);
        self.send(message).map(drop)
    }
}
