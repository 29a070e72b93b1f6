//! [`Batch`]: several calls and notifications sent as one JSON-RPC 2.0 batch.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::message::Version;
use crate::peer::Peer;

/// A JSON-RPC 2.0 batch being built: calls and notifications sent in one array by
/// [`send`](Self::send), which waits for every call's answer. Made by [`Peer::batch`]. The
/// entries are 2.0 messages whatever the peer's [`Config::version`](crate::Config) (1.0 has
/// no batches).
///
/// # Examples
///
/// ```
/// use gruvi_jsonrpc::{Config, Methods, Peer, Value};
/// use gruvi_stream::{Stream, UnixStream};
/// use std::rc::Rc;
///
/// fiber_core::run(|| -> Result<(), Box<dyn std::error::Error>> {
///     let (a, b) = UnixStream::pair()?;
///     let mut methods = Methods::new();
///     methods.add("add", |_peer, (x, y): (i64, i64)| Ok(x + y));
///     let _server = Peer::new(Rc::new(Stream::new(a)), methods, Config::default())?;
///     let client = Peer::new(Rc::new(Stream::new(b)), Methods::new(), Config::default())?;
///     let mut batch = client.batch();
///     batch.call("add", (1, 2))?.notify("add", (0, 0))?.call("nope", ())?;
///     let answers = batch.send()?;
///     assert_eq!(answers[0].as_ref().unwrap(), &Value::from(3));
///     assert!(answers[1].is_err()); // Method not found
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Batch<'a> {
    peer: &'a Peer,
    /// The entries, serialized, without the brackets.
    entries: Vec<u8>,
    /// The ids of the calls, in order.
    ids: Vec<u64>,
    timeout: Option<Duration>,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(peer: &'a Peer, timeout: Option<Duration>) -> Batch<'a> {
        Batch {
            peer,
            entries: Vec::new(),
            ids: Vec::new(),
            timeout,
        }
    }

    /// Adds a call; its answer comes from [`send`](Self::send) at the same position among
    /// the calls.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParams`] or [`Error::Json`] for params that are not an array or
    /// object; the batch is unchanged.
    pub fn call(&mut self, method: &str, params: impl Serialize) -> Result<&mut Self, Error> {
        let id = self.peer.inner().calls.next_id();
        self.add(method, &params, Some(id))?;
        self.ids.push(id);
        Ok(self)
    }

    /// Adds a notification.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn notify(&mut self, method: &str, params: impl Serialize) -> Result<&mut Self, Error> {
        self.add(method, &params, None)?;
        Ok(self)
    }

    /// Sets how long [`send`](Self::send) waits for the answers (default: the peer's
    /// [`Config::call_timeout`](crate::Config)).
    pub fn timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.timeout = timeout;
        self
    }

    fn add(&mut self, method: &str, params: &impl Serialize, id: Option<u64>) -> Result<(), Error> {
        let start = self.entries.len();
        if start > 0 {
            self.entries.push(b',');
        }
        let encoded = crate::encode::request(&mut self.entries, Version::V2, method, params, id);
        if encoded.is_err() {
            self.entries.truncate(start);
        }
        encoded
    }

    /// Sends the batch and waits for the answers of its calls: one result per call, in the
    /// order they were added (a call not answered within the timeout gets
    /// [`Error::TimedOut`]). A batch of notifications only returns once it is queued; an empty
    /// batch sends nothing.
    ///
    /// # Switchpoint
    ///
    /// Blocks the fiber until every call is answered or the timeout passes.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] (the batch could not be sent), [`Error::Fiber`] (cancelled).
    /// Each call's own failure is in its result.
    pub fn send(self) -> Result<Vec<Result<Value, Error>>, Error> {
        if self.entries.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.peer.inner();
        // A timeout too long to add to the clock is no timeout.
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        inner.wait_to_send()?;
        let _unregister = inner.calls.register(self.ids.clone());
        inner.outbox.push(|out| {
            out.push(b'[');
            out.extend_from_slice(&self.entries);
            out.push(b']');
        });
        let answers = inner.calls.wait(&self.ids, deadline)?;
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(Error::TimedOut)))
            .collect())
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("calls", &self.ids.len())
            .field("bytes", &self.entries.len())
            .finish()
    }
}
