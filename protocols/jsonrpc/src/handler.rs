//! What answers requests: the [`Handler`] trait, and [`Methods`], a registry of named methods
//! with typed parameters.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::RpcError;
use crate::message::{Params, Request};
use crate::peer::Peer;

/// Answers the requests a peer receives. Each request runs in a fiber of the connection's
/// handler pool, so a handler may block: sleep, do I/O, or call back into the peer that sent
/// the request (`peer.call(...)`) while that peer's own call is pending.
///
/// The answer to a notification is dropped. A panic is answered with `-32603 Internal error`
/// and the connection goes on.
///
/// Closures `Fn(&Peer, Request) -> Result<Value, RpcError>` are handlers; so is [`Methods`].
pub trait Handler: 'static {
    /// Answers `request`, received on the connection of `peer`.
    fn handle(&self, peer: &Peer, request: Request) -> Result<Value, RpcError>;
}

impl<F> Handler for F
where
    F: Fn(&Peer, Request) -> Result<Value, RpcError> + 'static,
{
    fn handle(&self, peer: &Peer, request: Request) -> Result<Value, RpcError> {
        self(peer, request)
    }
}

/// A method of a [`Methods`] registry.
type Method = Box<dyn Fn(&Peer, Params) -> Result<Value, RpcError>>;

/// A registry of methods by name (the method registry of jsonrpc-core, for fibers): an
/// unknown method is answered with `-32601 Method not found`, parameters that do not
/// deserialize into the method's type with `-32602 Invalid params`.
///
/// # Examples
///
/// ```
/// use gruvi_jsonrpc::{Methods, Params, RpcError};
///
/// let mut methods = Methods::new();
/// methods.add("add", |_peer, (a, b): (i64, i64)| Ok(a + b));
/// methods.add_raw("echo", |_peer, params: Params| Ok(params.into_value()));
/// assert!(methods.contains("add"));
/// ```
#[derive(Default)]
pub struct Methods {
    methods: HashMap<String, Method>,
}

impl Methods {
    /// An empty registry: every request is answered with `Method not found`. A peer with no
    /// methods of its own uses one.
    pub fn new() -> Methods {
        Methods::default()
    }

    /// Adds (or replaces) method `name`: its params deserialize into `P` (a tuple from
    /// positional params, a struct from named ones, `()` from none) and its result serializes
    /// from `R`.
    pub fn add<P, R, F>(&mut self, name: &str, f: F) -> &mut Methods
    where
        P: DeserializeOwned,
        R: Serialize,
        F: Fn(&Peer, P) -> Result<R, RpcError> + 'static,
    {
        let method = move |peer: &Peer, params: Params| {
            let result = f(peer, params.parse()?)?;
            serde_json::to_value(result).map_err(RpcError::internal_error)
        };
        self.methods.insert(name.to_owned(), Box::new(method));
        self
    }

    /// Adds (or replaces) method `name`, which takes the params as they came.
    pub fn add_raw<F>(&mut self, name: &str, f: F) -> &mut Methods
    where
        F: Fn(&Peer, Params) -> Result<Value, RpcError> + 'static,
    {
        self.methods.insert(name.to_owned(), Box::new(f));
        self
    }

    /// Whether method `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }
}

impl Handler for Methods {
    fn handle(&self, peer: &Peer, request: Request) -> Result<Value, RpcError> {
        match self.methods.get(&request.method) {
            Some(method) => method(peer, request.params),
            None => Err(RpcError::method_not_found(&request.method)),
        }
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.methods.keys().collect();
        names.sort();
        f.debug_struct("Methods").field("methods", &names).finish()
    }
}
