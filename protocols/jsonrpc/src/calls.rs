//! [`Calls`]: the table of a peer's outgoing calls waiting for their answers, by id.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Instant;

use fiber_core::Fiber;
use serde_json::Value;

use crate::error::{Error, RpcError};
use crate::message::{Id, Response};

/// A call waiting for its answer.
struct Pending {
    fiber: Fiber,
    answer: Option<Result<Value, Error>>,
}

/// The calls waiting for answers: the reader delivers an answer into its entry and unparks
/// the fiber waiting for it.
pub(crate) struct Calls {
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Pending>>,
}

/// Removes the entries of calls however the wait for them ends.
pub(crate) struct Unregister<'a>(&'a Calls, Vec<u64>);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        let mut pending = self.0.pending.borrow_mut();
        for id in &self.1 {
            pending.remove(id);
        }
    }
}

impl Calls {
    pub(crate) fn new() -> Calls {
        Calls {
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
        }
    }

    /// How many calls wait.
    pub(crate) fn len(&self) -> usize {
        self.pending.borrow().len()
    }

    /// A fresh id for an outgoing call.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.replace(self.next_id.get() + 1)
    }

    /// Registers the current fiber as waiting for the answers to `ids`, until the guard drops.
    pub(crate) fn register(&self, ids: Vec<u64>) -> Unregister<'_> {
        let mut pending = self.pending.borrow_mut();
        for &id in &ids {
            let call = Pending {
                fiber: fiber_core::current(),
                answer: None,
            };
            pending.insert(id, call);
        }
        drop(pending);
        Unregister(self, ids)
    }

    /// Waits until every call of `ids` (registered by this fiber) is answered, or `deadline`
    /// passes: the answers in order, `None` for those that did not come in time.
    ///
    /// Switchpoint: parks the fiber.
    pub(crate) fn wait(
        &self,
        ids: &[u64],
        deadline: Option<Instant>,
    ) -> Result<Vec<Option<Result<Value, Error>>>, Error> {
        let mut answers: Vec<Option<Result<Value, Error>>> = ids.iter().map(|_| None).collect();
        let mut missing = ids.len();
        loop {
            let mut pending = self.pending.borrow_mut();
            for (slot, id) in answers.iter_mut().zip(ids) {
                if slot.is_none()
                    && let Some(answer) = pending.get_mut(id).and_then(|p| p.answer.take())
                {
                    *slot = Some(answer);
                    missing -= 1;
                }
            }
            drop(pending);
            if missing == 0 {
                return Ok(answers);
            }
            let parked = match deadline {
                None => fiber_core::park(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(answers);
                    }
                    fiber_core::park_timeout(left)
                }
            };
            match parked {
                Ok(()) => {}
                // Our own deadline passed: collect what came, then return.
                Err(fiber_core::Error::TimedOut)
                    if deadline.is_some_and(|d| Instant::now() >= d) => {}
                // An enclosing timeout scope, or cancellation.
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Delivers a response to the call waiting for it; a response nobody waits for (an
    /// unknown id, or a call that timed out) is logged and dropped.
    ///
    /// An error with id null is the peer saying it could not read a request of ours (not
    /// JSON, not a request, a batch it refuses, a message over its size limit) without being
    /// able to say which: it fails every waiting call with that error. Which call it meant
    /// cannot be known, and that one would otherwise wait forever (or until its timeout).
    pub(crate) fn route_response(&self, response: Response) {
        match (response.id, response.result) {
            (Id::Null, Err(error)) => self.fail_unattributed(&error),
            (id, result) => self.answer(&id, result.map_err(Error::Rpc)),
        }
    }

    /// Fails every call still waiting for its answer with the peer's id-null `error`.
    fn fail_unattributed(&self, error: &RpcError) {
        let mut pending = self.pending.borrow_mut();
        let waiting = pending
            .values()
            .filter(|call| call.answer.is_none())
            .count();
        log::warn!(
            "JSON-RPC error response with id null ({error}): failing the {waiting} waiting calls"
        );
        for call in pending.values_mut().filter(|call| call.answer.is_none()) {
            call.answer = Some(Err(Error::Rpc(error.clone())));
            call.fiber.unpark();
        }
    }

    /// Completes the call with `id` with `answer`, if one waits; logs it otherwise.
    pub(crate) fn answer(&self, id: &Id, answer: Result<Value, Error>) {
        let mut pending = self.pending.borrow_mut();
        match id.as_u64().and_then(|n| pending.get_mut(&n)) {
            Some(call) => {
                call.answer = Some(answer);
                call.fiber.unpark();
            }
            None => log::warn!("ignoring a JSON-RPC response with unknown id {id}"),
        }
    }

    /// Fails every waiting call with [`Error::ConnectionLost`].
    pub(crate) fn fail_all(&self, why: &str) {
        for call in self.pending.borrow_mut().values_mut() {
            call.answer = Some(Err(Error::ConnectionLost(why.to_owned())));
            call.fiber.unpark();
        }
    }
}
