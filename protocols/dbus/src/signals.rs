//! Receiving signals: match rules, [`Subscription`]s with a blocking receive, and handlers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use dbus::Message;
use fiber_core::{Callback, SwitchBack};

use crate::connection::{Connection, Inner, Role};
use crate::error::Error;
use crate::match_rule::MatchRule;

/// What a connection does with the signals it receives.
#[derive(Default)]
pub(crate) struct Signals {
    entries: Vec<Entry>,
    next_id: u64,
}

struct Entry {
    id: u64,
    rule: MatchRule,
    target: Target,
}

#[derive(Clone)]
enum Target {
    Queue(Rc<SignalQueue>),
    Handler(Rc<dyn Fn(&Message)>),
}

impl Signals {
    fn add(&mut self, rule: MatchRule, target: Target) -> u64 {
        self.next_id += 1;
        self.entries.push(Entry {
            id: self.next_id,
            rule,
            target,
        });
        self.next_id
    }

    fn remove(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        self.entries.len() != before
    }

    /// Ends every subscription: their receivers see the connection closed once drained.
    pub(crate) fn close(&mut self) {
        for entry in self.entries.drain(..) {
            if let Target::Queue(queue) = entry.target {
                queue.closed.set(true);
                queue.wake();
            }
        }
    }
}

/// Delivers a received signal to every matching subscription and handler. Handlers run here,
/// in the connection's dispatching fiber.
pub(crate) fn deliver(connection: &Connection, message: Message) {
    // Taken out first: a handler may subscribe or unsubscribe.
    let targets: Vec<Target> = {
        let signals = connection.inner.signals.borrow();
        signals
            .entries
            .iter()
            .filter(|e| e.rule.matches(&message))
            .map(|e| e.target.clone())
            .collect()
    };
    for target in targets {
        match target {
            Target::Handler(handler) => handler(&message),
            Target::Queue(queue) => {
                if let Ok(copy) = message.duplicate() {
                    queue.push(copy);
                }
            }
        }
    }
}

/// Parses a match rule for local filtering of signals.
fn local_rule(rule: &str) -> Result<MatchRule, Error> {
    MatchRule::parse(rule)
}

impl Connection {
    /// Subscribes to the signals matching `rule` (a D-Bus match rule such as
    /// `type='signal',interface='com.example.I',member='Tick'`): on a bus it calls
    /// `AddMatch`, so the bus sends them; on a peer connection it only filters. Receive them
    /// with [`Subscription::recv`].
    ///
    /// # Switchpoint
    ///
    /// Calls `AddMatch` on a bus.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad rule; the errors of the `AddMatch` call.
    pub fn add_match(&self, rule: &str) -> Result<Subscription, Error> {
        let local = local_rule(rule)?;
        self.bus_add_match(rule)?;
        let queue = Rc::new(SignalQueue {
            items: RefCell::new(VecDeque::new()),
            capacity: self.inner.config.signal_queue.max(1),
            dropped: Cell::new(0),
            waiter: RefCell::new(None),
            closed: Cell::new(false),
        });
        let id = self
            .inner
            .signals
            .borrow_mut()
            .add(local, Target::Queue(queue.clone()));
        Ok(Subscription {
            connection: Rc::downgrade(&self.inner),
            id,
            rule: rule.to_owned(),
            queue,
        })
    }

    /// Calls `handler` for each signal matching `rule` (see [`add_match`](Self::add_match)),
    /// in the connection's dispatching fiber: it must not block for long (spawn a fiber for
    /// slow work). Returns an id for
    /// [`remove_signal_handler`](Self::remove_signal_handler).
    ///
    /// # Switchpoint
    ///
    /// Calls `AddMatch` on a bus.
    ///
    /// # Errors
    ///
    /// As [`add_match`](Self::add_match).
    pub fn on_signal(
        &self,
        rule: &str,
        handler: impl Fn(&Message) + 'static,
    ) -> Result<u64, Error> {
        let local = local_rule(rule)?;
        self.bus_add_match(rule)?;
        Ok(self
            .inner
            .signals
            .borrow_mut()
            .add(local, Target::Handler(Rc::new(handler))))
    }

    /// Removes a handler added with [`on_signal`](Self::on_signal); `false` if there was
    /// none with that id. The bus keeps its match rule (see
    /// [`remove_match`](Self::remove_match)).
    pub fn remove_signal_handler(&self, id: u64) -> bool {
        self.inner.signals.borrow_mut().remove(id)
    }

    fn bus_add_match(&self, rule: &str) -> Result<(), Error> {
        if self.on_bus() {
            self.call_method::<_, ()>(
                crate::bus::BUS_NAME,
                crate::bus::BUS_PATH,
                crate::bus::BUS_NAME,
                "AddMatch",
                (rule,),
            )?;
        }
        Ok(())
    }

    /// Whether this is a client of a message bus (it got a unique name from `Hello`).
    pub(crate) fn on_bus(&self) -> bool {
        matches!(self.inner.role, Role::Client) && self.inner.unique_name.borrow().is_some()
    }
}

/// Received signals waiting for [`Subscription::recv`].
struct SignalQueue {
    items: RefCell<VecDeque<Message>>,
    capacity: usize,
    dropped: Cell<u64>,
    waiter: RefCell<Option<Callback<()>>>,
    closed: Cell<bool>,
}

impl SignalQueue {
    fn push(&self, message: Message) {
        if self.items.borrow().len() >= self.capacity {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        self.items.borrow_mut().push_back(message);
        self.wake();
    }

    fn wake(&self) {
        let waiter = self.waiter.borrow_mut().take();
        if let Some(waiter) = waiter {
            waiter.call(());
        }
    }
}

/// Signals matching a rule, received in order (from
/// [`Connection::add_match`]). Holds at most [`Config::signal_queue`](crate::Config) of
/// them; newer ones are dropped (and counted) while it is full. Dropping it stops the
/// delivery.
pub struct Subscription {
    connection: Weak<Inner>,
    id: u64,
    rule: String,
    queue: Rc<SignalQueue>,
}

impl Subscription {
    /// The next signal.
    ///
    /// # Switchpoint
    ///
    /// Blocks until a signal comes.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] once the connection closed and every signal received before
    /// was taken; the fiber's cancellation.
    pub fn recv(&self) -> Result<Message, Error> {
        self.wait(None)
    }

    /// [`recv`](Self::recv) for at most `timeout`.
    ///
    /// # Switchpoint
    ///
    /// Blocks until a signal comes or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`], and as [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, Error> {
        self.wait(Some(timeout))
    }

    /// The next signal if one is there. Never switches.
    pub fn try_recv(&self) -> Option<Message> {
        self.queue.items.borrow_mut().pop_front()
    }

    /// How many signals were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.get()
    }

    /// The match rule.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<Message, Error> {
        loop {
            if let Some(message) = self.try_recv() {
                return Ok(message);
            }
            if self.queue.closed.get() || self.connection.upgrade().is_none() {
                return Err(Error::Disconnected("the connection is closed".into()));
            }
            let sb = SwitchBack::new();
            *self.queue.waiter.borrow_mut() = Some(sb.callback());
            match timeout {
                None => sb.wait()?,
                Some(timeout) => match sb.wait_timeout(timeout) {
                    Ok(()) => {}
                    Err(fiber_core::Error::TimedOut) => {
                        return self.try_recv().ok_or(Error::TimedOut);
                    }
                    Err(err) => return Err(err.into()),
                },
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.connection.upgrade() {
            inner.signals.borrow_mut().remove(self.id);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("rule", &self.rule)
            .field("queued", &self.queue.items.borrow().len())
            .field("dropped", &self.dropped())
            .finish()
    }
}
