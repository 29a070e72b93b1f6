//! What the dispatching fiber of a connection does with each incoming message: method calls
//! run in a fiber each against the exported objects, signals go to subscriptions, and the
//! server side of a peer-to-peer connection answers `Hello` and a few bus methods itself.

use std::rc::{Rc, Weak};

use dbus::{Message, MessageType};
use fiber_core::{Builder, SwitchBack};

use crate::bus::{BUS_NAME, BUS_PATH};
use crate::connection::{Connection, Inner, Role};
use crate::error::{Error, MethodError, names};
use crate::framing::Frame;
use crate::objects::MethodCall;
use crate::server::ServerShared;

/// Handles one message that was not a reply to a call of ours.
pub(crate) fn dispatch(connection: &Connection, frame: Frame) -> Result<(), Error> {
    let Frame::Message(message) = frame else {
        return Ok(());
    };
    if let Role::Server(shared) = &connection.inner.role
        && shared.require_hello
        && !connection.inner.hello_done.get()
        && !is_hello(&message)
    {
        return Err(Error::Protocol(
            "the first message was not a Hello call".into(),
        ));
    }
    match message.msg_type() {
        MessageType::MethodCall => method_call(connection, message),
        MessageType::Signal => {
            crate::signals::deliver(connection, message);
            Ok(())
        }
        // A reply nobody waits for.
        MessageType::MethodReturn | MessageType::Error => Ok(()),
    }
}

fn method_call(connection: &Connection, message: Message) -> Result<(), Error> {
    if let Role::Server(shared) = &connection.inner.role {
        let to_bus = message.destination().is_some_and(|d| &*d == BUS_NAME)
            || message.interface().is_some_and(|i| &*i == BUS_NAME);
        if to_bus {
            return bus_method(connection, shared, message);
        }
    }
    connection.inner.acquire_call_slot()?;
    // An idle worker fiber takes it; else a new one.
    let idle = connection.inner.idle_workers.borrow_mut().pop();
    if let Some(worker) = idle {
        worker.call(Some(message));
        return Ok(());
    }
    let weak = Rc::downgrade(&connection.inner);
    let spawned = Builder::new()
        .name("dbus method call")
        .spawn(move || worker(weak, message));
    if let Err(err) = spawned {
        connection.inner.release_call_slot();
        return Err(Error::Io(err));
    }
    Ok(())
}

/// How many idle worker fibers a connection keeps for the next calls.
const MAX_IDLE_WORKERS: usize = 16;

/// A worker fiber: answers a call, then waits (holding no strong reference to the
/// connection) for the next one while fewer than [`MAX_IDLE_WORKERS`] others wait.
fn worker(weak: Weak<Inner>, first: Message) {
    let mut next = Some(first);
    while let Some(message) = next.take() {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let connection = Connection { inner };
        answer(connection.clone(), message);
        if connection.is_closed()
            || connection.inner.idle_workers.borrow().len() >= MAX_IDLE_WORKERS
        {
            return;
        }
        let sb = SwitchBack::new();
        connection
            .inner
            .idle_workers
            .borrow_mut()
            .push(sb.callback());
        drop(connection);
        // `None` or an error: the connection closed or the Hub is closing.
        next = sb.wait().ok().flatten();
    }
}

/// Answers one call against the exported objects; the guard frees its slot.
fn answer(connection: Connection, message: Message) {
    let guard = CallGuard {
        connection,
        message: Some(message),
    };
    let message = guard.message.as_ref().expect("the call");
    let call = MethodCall {
        message,
        connection: &guard.connection,
    };
    let reply = match guard.connection.inner.objects.handle(&call) {
        Ok(reply) => reply,
        Err(err) => err.to_reply(message),
    };
    let _ = guard.connection.reply_to(message, reply);
}

fn is_hello(message: &Message) -> bool {
    message.member().is_some_and(|m| &*m == "Hello")
        && message.interface().is_some_and(|i| &*i == BUS_NAME)
        && message.path().is_some_and(|p| &*p == BUS_PATH)
}

/// Releases the call's slot when its fiber ends; if the handler panicked, answers with an
/// error so that the caller does not wait for its timeout.
struct CallGuard {
    connection: Connection,
    message: Option<Message>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(message) = &self.message
        {
            // A switchpoint returns at once while unwinding, so this never blocks: the
            // reply is sent if the send queue has room.
            let reply = MethodError::failed("the method handler panicked").to_reply(message);
            let _ = self.connection.reply_to(message, reply);
        }
        self.connection.inner.release_call_slot();
    }
}

/// The bus methods a peer-to-peer server answers: `Hello` (once), `AddMatch` and
/// `RemoveMatch` (accepted: every signal goes to the peer anyway), `GetId`.
fn bus_method(
    connection: &Connection,
    shared: &ServerShared,
    message: Message,
) -> Result<(), Error> {
    let member = message.member().map(|m| m.to_string()).unwrap_or_default();
    let reply = match member.as_str() {
        "Hello" if connection.inner.hello_done.get() => Err(MethodError::new(
            names::ACCESS_DENIED,
            "Already handled an Hello message",
        )),
        "Hello" => {
            let name = shared.next_unique_name();
            *connection.inner.unique_name.borrow_mut() = Some(name.clone());
            connection.inner.hello_done.set(true);
            Ok(message.return_with_args((name,)))
        }
        "AddMatch" | "RemoveMatch" => match message.read1::<&str>() {
            Ok(_) => Ok(message.method_return()),
            Err(err) => Err(MethodError::invalid_args(err.to_string())),
        },
        "GetId" => Ok(message.return_with_args((connection.server_guid().to_owned(),))),
        "Ping" => Ok(message.method_return()),
        other => Err(MethodError::new(
            names::UNKNOWN_METHOD,
            format!("No such method '{other}' on this peer-to-peer server"),
        )),
    };
    let reply = reply.unwrap_or_else(|err| err.to_reply(&message));
    connection.reply_to(&message, reply)
}
