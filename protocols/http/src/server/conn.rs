//! One connection's life on the server: read a request head, run the handler in this fiber,
//! write the response, and again while the connection may stay open.

use std::cell::{Cell, RefCell};
use std::io;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, Version};

use super::respond::{Exchange, write_error, write_response};
use super::runner::Task;
use super::{Handler, InPlaceHandler, OwnedHandler, Shared};
use crate::body::{Body, Kind};
use crate::error::Error;
use crate::head::{Framing, RequestHead};
use crate::incoming::Incoming;
use crate::parser::Parser;
use crate::wire::{Step, Wire};

/// How long a closing connection keeps reading (and dropping) what the client still sends,
/// so that the client reads the last response instead of a reset.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes dropped while lingering.
const LINGER_BYTES: usize = 256 * 1024;

/// What the server knows of a connection while it runs.
pub(crate) struct ConnState {
    /// While the connection waits for a request with nothing received (idle: safe to close
    /// on shutdown), the sweeper tick at which it is closed; 0 otherwise. The sweeper's
    /// coarse clock spares each request a timer and a clock read.
    pub(crate) idle_until: Cell<u64>,
    /// The id of the fiber serving the connection (0, the root fiber's, while none does: no
    /// connection is served on the root fiber): a handler that shuts its own server down does
    /// not wait for its own request.
    pub(crate) fiber: Cell<u64>,
}

impl ConnState {
    pub(crate) fn is_idle(&self) -> bool {
        self.idle_until.get() != 0
    }

    /// Whether `fiber` (the caller of a shutdown) is the one serving this connection: never
    /// for the root fiber, whose id marks a connection no fiber serves (waiting for a runner,
    /// or in its connection wrapper's handshake).
    pub(crate) fn is_served_by(&self, fiber: &fiber_core::Fiber) -> bool {
        !fiber.is_root() && self.fiber.get() == fiber.id()
    }
}

/// Why no request head came.
enum NoHead {
    /// The client closed, went idle too long, or the server is shutting down: close quietly.
    Quiet,
    /// A head did not arrive in time: 408.
    TimedOut,
    /// The head broke the protocol or a limit.
    Invalid(Error),
    /// The connection waits idle without a fiber: it is told when bytes come.
    Detached,
}

/// Serves the task's connection until it closes, or until it waits idle for its next request
/// without a fiber (see [`runner`](super::runner)). `resumed`: it was waiting so, and bytes or
/// the end came.
pub(crate) fn serve(task: &Rc<Task>, resumed: bool) {
    let (shared, wire) = (&task.shared, &task.wire);
    let config = &shared.config;
    let server_line = shared.server_line.as_deref();
    if !resumed {
        let _ = wire.conn.set_write_timeout(Some(config.write_timeout));
        wire.body_timeout.set(Some(config.body_timeout));
    }
    let mut resumed = resumed;
    loop {
        let head = match read_head(task, resumed) {
            Ok(head) => head,
            Err(NoHead::Detached) => return,
            Err(NoHead::Quiet) => break,
            Err(NoHead::TimedOut) => {
                write_error(wire, StatusCode::REQUEST_TIMEOUT, server_line);
                break;
            }
            Err(NoHead::Invalid(err)) => {
                write_error(wire, err.status(), server_line);
                break;
            }
        };
        resumed = false;
        task.first.set(false);
        match exchange(shared, wire, head) {
            // The usual keep-alive turn (without pipelining): all that came was answered,
            // and the connection waits idle without a fiber, as `read_head` would have it
            // wait, without that call.
            Ok(true) if wire.drained.get() => match wait_idle(task) {
                Some(NoHead::Detached) => return,
                Some(_) => break,
                None => {}
            },
            Ok(true) => {}
            Ok(false) => break,
            Err(Abort) => {
                // The answers before this one are complete: they still go out.
                let _ = wire.flush();
                wire.conn.close();
                return;
            }
        }
    }
    close_gracefully(wire);
}

/// The protocol error met while the body of this request was read, if it has one.
#[inline(always)]
fn body_error(wire: &Wire, has_body: bool) -> Option<Error> {
    if has_body {
        wire.body_error.borrow_mut().take()
    } else {
        None
    }
}

/// The connection must be dropped without another byte.
struct Abort;

/// Runs one request: the handler, then the response. `Ok(keep_alive)`.
#[inline]
fn exchange(
    shared: &Rc<Shared>,
    wire: &Rc<Wire>,
    head: Box<RequestHead<Incoming>>,
) -> Result<bool, Abort> {
    let config = &shared.config;
    let server_line = shared.server_line.as_deref();
    let (framing, keep_alive, expect_continue) =
        (head.framing, head.keep_alive, head.expect_continue);
    let has_body = framing != Framing::Length(0);
    wire.message.set(wire.message.get() + 1);
    let version = head.request.version();
    let is_head = head.request.method() == Method::HEAD;
    wire.continue_pending.set(expect_continue && has_body);
    if !has_body {
        // The parser ends an empty body without input.
        wire.parser.borrow_mut().end_empty_body();
    }
    // The handler's response is written into this slot and used in place: a response is
    // large, and every move of it is a copy to stack lines the fiber would not touch else.
    let mut slot = Slot(ManuallyDrop::new(None));
    // An in-place handler's request (the head's) and response (from the thread's pool).
    let (handled, mut in_place) = match &shared.handler {
        Handler::Owned(handler) => {
            let handled = call_handler(handler, wire, head, has_body, &mut slot.0);
            (handled, None)
        }
        Handler::InPlace(handler) => {
            let in_place = call_in_place(handler, wire, head, has_body);
            (in_place.is_some(), in_place)
        }
    };
    // Only a body read can break the protocol here: a bodiless request's `Incoming` reads
    // nothing from the wire.
    if let Some(err) = body_error(wire, has_body) {
        // The body broke the protocol while the handler read it: that answer wins.
        write_error(wire, err.status(), server_line);
        return Ok(false);
    }
    // An owned handler's response is in the slot, an in-place handler's in `in_place`.
    let response = match &mut *slot.0 {
        Some(response) => Some(response),
        None => in_place.as_mut().map(|(_, reused)| &mut reused.response),
    };
    let (true, Some(response)) = (handled, response) else {
        write_error(wire, StatusCode::INTERNAL_SERVER_ERROR, server_line);
        return Ok(false);
    };
    let requested = keep_alive;
    let mut keep_alive = keep_alive && !shared.closing.get();
    let mut body_done = true;
    if has_body && !finish_body(wire, config.max_discard) {
        keep_alive = false;
        body_done = false;
    }
    wire.client_done.set(!requested && body_done);
    if let Some(err) = body_error(wire, has_body) {
        write_error(wire, err.status(), server_line);
        return Ok(false);
    }
    let exchange = Exchange {
        version,
        is_head,
        keep_alive,
        server_line,
        defaults: &shared.defaults,
    };
    let (start, flushes) = (wire.out_len(), wire.flushes.get());
    // Drops what was queued of this response (after a send, everything queued is its).
    let unqueue = || {
        let keep = if wire.flushes.get() == flushes {
            start
        } else {
            0
        };
        wire.with_out(|out| out.truncate(keep.min(out.len())));
    };
    match catch_unwind(AssertUnwindSafe(|| {
        write_response(wire, response, &exchange)
    })) {
        Ok(Ok(keep)) => {
            match (in_place, &mut *slot.0) {
                (Some((head, reused)), _) => Reused::give_back(head, reused),
                // The written response's (emptied) map serves the next request head; an
                // in-place response keeps its own.
                (None, Some(response)) => {
                    crate::parser::recycle_request_headers(response.headers_mut());
                }
                (None, None) => {}
            }
            Ok(keep)
        }
        Ok(Err(_)) => {
            unqueue();
            Err(Abort)
        }
        // A body that panics before anything of its response went out still gets a 500.
        Err(_) if wire.flushes.get() == flushes && wire.out_len() >= start => {
            unqueue();
            write_error(wire, StatusCode::INTERNAL_SERVER_ERROR, server_line);
            Ok(false)
        }
        // Part of it went out: the client must see the connection end, not a complete
        // message.
        Err(_) => {
            unqueue();
            Err(Abort)
        }
    }
}

/// The slot of a handler's response. Dropped, it lets go of a response that owns nothing any
/// more without running its drop glue: the writer takes the body, and once it is written the
/// header map is swapped for an unallocated one (see `parser::recycle_request_headers`), so a
/// drop would only walk an empty map, extensions and an empty body (~100 instructions per
/// request). Any other response is dropped as usual.
struct Slot(ManuallyDrop<Option<Response<Body>>>);

impl Drop for Slot {
    fn drop(&mut self) {
        // Empty for an in-place handler (whose response is reused): nothing to move out.
        let Some(response) = &mut *self.0 else {
            return;
        };
        // A map without index slots has no allocation at all (`HeaderMap` allocates its
        // indices and entries together, and extra values only next to entries).
        if response.headers().capacity() == 0 && matches!(response.body().kind, Kind::Empty) {
            // Extensions may hold a (possibly empty) map: dropped as usual.
            drop(std::mem::take(response.extensions_mut()));
            return;
        }
        drop(self.0.take());
    }
}

/// Runs the handler on the request of `head`, its response into `slot`: `false` if it
/// panicked.
///
/// Inlined, as are [`exchange`], [`call_in_place`] and [`write_response`]: requests run on a
/// runner's stack, still in cache (see `runner`), so the frames' size matters less than the
/// calls (when each connection had a fiber, these were kept out of line so that their frames
/// overlapped on its cold stack).
#[inline]
fn call_handler(
    handler: &OwnedHandler,
    wire: &Rc<Wire>,
    head: Box<RequestHead<Incoming>>,
    has_body: bool,
    slot: &mut Option<Response<Body>>,
) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        handler(wire, head, has_body, slot);
    }))
    .is_ok()
}

/// The most in-place responses a thread keeps for its next exchanges.
const KEEP_REUSED: usize = 16;

thread_local! {
    /// In-place responses whose exchange is over, for the next exchange of any connection on
    /// this thread: per thread rather than per connection, so that the memory reused is the
    /// memory touched last, still in cache (see `parser::SPARE`, which keeps the requests'
    /// boxes). An exchange that fails or panics does not give its response back.
    #[expect(clippy::vec_box, reason = "a response is large: taken and given back as a pointer")]
    static REUSED: RefCell<Vec<Box<Reused>>> = const { RefCell::new(Vec::new()) };
    /// The response given back last, out of [`REUSED`]: the usual exchange takes and gives
    /// back only this one, a swap of a pointer rather than a `Vec`'s pop and push under a
    /// borrow.
    static LAST_REUSED: Cell<Option<Box<Reused>>> = const { Cell::new(None) };
}

/// An in-place handler's response, reused from one exchange to the next. Its request is the
/// parsed head's own (see [`call_in_place`]).
pub(crate) struct Reused {
    response: Response<Body>,
}

impl Reused {
    /// Made when the thread's pool is empty, out of line (a response is large).
    #[cold]
    #[inline(never)]
    fn new() -> Box<Reused> {
        Box::new(Reused {
            response: Response::new(Body::empty()),
        })
    }

    /// Takes a response from the thread's pool, or makes one.
    #[inline(always)]
    fn take() -> Box<Reused> {
        match LAST_REUSED.take() {
            Some(reused) => reused,
            None => Reused::take_older(),
        }
    }

    /// [`take`](Self::take) when the last response given back is taken already.
    #[inline(never)]
    fn take_older() -> Box<Reused> {
        REUSED.with_borrow_mut(Vec::pop).unwrap_or_else(Reused::new)
    }

    /// Gives the box of an exchange's request head back to the parser (which empties the
    /// request's body, holding the connection, and extensions) and its written response to
    /// the thread's pool, without what must not outlive the exchange: the response's body
    /// (taken when written) and extensions (which may hold anything the handler put there).
    /// Responses come only from here or [`new`](Self::new), so their extensions are empty
    /// when the next exchange takes them.
    #[inline(always)]
    fn give_back(head: Box<RequestHead<Incoming>>, mut reused: Box<Reused>) {
        crate::parser::recycle_head(head);
        reused.response.extensions_mut().clear();
        if !matches!(reused.response.body().kind, Kind::Empty) {
            *reused.response.body_mut() = Body::empty();
        }
        if let Some(older) = LAST_REUSED.replace(Some(reused)) {
            Reused::keep_older(older);
        }
    }

    /// Keeps a response given back before the last one, if the pool has room.
    #[inline(never)]
    fn keep_older(reused: Box<Reused>) {
        REUSED.with_borrow_mut(|pool| {
            // The last one is kept beside the pool.
            if pool.len() < KEEP_REUSED - 1 {
                pool.push(reused);
            }
        });
    }

    /// Resets the response to a fresh one (its extensions were cleared when it was given
    /// back). Nothing of the last exchange is left; the header map keeps its allocation.
    #[inline(always)]
    fn reset(&mut self) {
        let response = &mut self.response;
        *response.status_mut() = StatusCode::OK;
        *response.version_mut() = Version::HTTP_11;
        // The map and the body are empty already (drained and taken when the response was
        // written; a response that was not is not given back): checked anyway, at the cost
        // of two comparisons.
        let headers = response.headers_mut();
        if !headers.is_empty() {
            headers.clear();
        }
        if !matches!(response.body().kind, Kind::Empty) {
            *response.body_mut() = Body::empty();
        }
    }
}

/// Runs an in-place handler on the request of `head`, in its box (no part of it moves: the
/// parse filled it where the handler reads it), with this request's body put in, and a
/// response from the thread's pool, reset: the head and the response, unless the handler
/// panicked (both are dropped then). Inlined, as [`call_handler`].
#[inline]
fn call_in_place(
    handler: &InPlaceHandler,
    wire: &Rc<Wire>,
    mut head: Box<RequestHead<Incoming>>,
    has_body: bool,
) -> Option<(Box<RequestHead<Incoming>>, Box<Reused>)> {
    *head.request.body_mut() = Incoming::new(wire.clone(), has_body);
    let mut reused = Reused::take();
    reused.reset();
    let request = &mut head.request;
    let response = &mut reused.response;
    let handled = catch_unwind(AssertUnwindSafe(|| handler(request, response))).is_ok();
    handled.then_some((head, reused))
}

/// What the server keeps of an owned handler: `run_handler` for its type, behind one dynamic
/// call.
pub(crate) fn handler<H>(handler: H) -> Box<OwnedHandler>
where
    H: Fn(Request<Incoming>) -> Response<Body> + 'static,
{
    Box::new(move |wire: &Rc<Wire>, head, has_body, slot: &mut _| {
        run_handler(&handler, wire, head, has_body, slot);
    })
}

/// Builds the request of `head` and runs `handler` on it, the response into `slot`. The head's
/// box goes back to the parser for the next head.
///
/// Generic (one copy per handler type): the request is built where the handler takes it and
/// the response goes straight into the slot, where a call through `dyn Fn` would copy both.
fn run_handler<H>(
    handler: &H,
    wire: &Rc<Wire>,
    mut head: Box<RequestHead<Incoming>>,
    has_body: bool,
    slot: &mut Option<Response<Body>>,
) where
    H: Fn(Request<Incoming>) -> Response<Body>,
{
    // Built in its place by a call of its own: built here, it was copied there.
    let request = request_of(wire, &mut head, has_body);
    crate::parser::recycle_head(head);
    // Inserted, not assigned: one copy of the response less.
    let _ = slot.insert(handler(request));
}

/// The request of `head`, taken out of its box (which gets a fresh one), with this request's
/// body put in.
#[inline(never)]
fn request_of(
    wire: &Rc<Wire>,
    head: &mut RequestHead<Incoming>,
    has_body: bool,
) -> Request<Incoming> {
    let mut request = std::mem::replace(&mut head.request, Request::new(Incoming::empty()));
    *request.body_mut() = Incoming::new(wire.clone(), has_body);
    request
}

/// Reads whatever of the request body the handler left, if it is short and the client is
/// sending it: `true` if the body ended and the connection can go on.
fn finish_body(wire: &Rc<Wire>, max_discard: u64) -> bool {
    // The handler never asked for the body: the client may be waiting for 100 Continue
    // before sending it, or send it anyway. Either way the framing is in doubt.
    if wire.continue_pending.replace(false) {
        return false;
    }
    // The handler's own `Incoming` and this one share the parser, so this goes on where the
    // handler stopped.
    let mut body = Incoming::new(wire.clone(), true);
    matches!(body.discard(max_discard), Ok(true))
}

/// After an exchange that used up what was received: sends the answers and leaves the
/// connection waiting idle without a fiber. `Some(Detached)` when it does, `Some(Quiet)` when
/// the send failed; `None` when it cannot (bytes came meanwhile, the server is closing, the
/// connection does not support the wait): [`read_head`] then, which finds nothing to send.
#[inline(always)]
fn wait_idle(task: &Rc<Task>) -> Option<NoHead> {
    let (shared, wire, state) = (&*task.shared, &*task.wire, &*task.state);
    if wire.flush().is_err() {
        return Some(NoHead::Quiet);
    }
    if !wire.parser.borrow().is_idle() || shared.closing.get() {
        return None;
    }
    if detach_idle(task) {
        return Some(NoHead::Detached);
    }
    // Bytes came meanwhile: not idle (the sweeper and a shutdown would close it).
    state.idle_until.set(0);
    None
}

/// Marks the connection idle, nothing received yet (the sweeper closes it if it stays so:
/// head_timeout for the first head, keep_alive_timeout after), and leaves it waiting without a
/// fiber where the connection supports that: `true` then. Else the caller waits, or unmarks.
#[inline(always)]
fn detach_idle(task: &Rc<Task>) -> bool {
    let deadline = task.shared.idle_deadline_tick(task.first.get());
    task.state.idle_until.set(deadline);
    task.wire.detach(task.clone())
}

/// Waits for and parses the next request head. `resumed`: the connection waited idle without
/// a fiber, and was told that bytes (or the end) came.
#[inline]
fn read_head(task: &Rc<Task>, resumed: bool) -> Result<Box<RequestHead<Incoming>>, NoHead> {
    let (shared, wire, state) = (&*task.shared, &*task.wire, &*task.state);
    let config = &shared.config;
    let mut started: Option<Instant> = None;
    // The last parse used up the buffer (one request per read, without pipelining): a parse
    // before waiting would find nothing, unless bytes came during a switch since. Told that
    // bytes (or the end) came, parse at once: the `fill` that would return at once is left
    // out (a parse that needs more, at the end of stream too, goes on as after any parse).
    let mut parse = resumed || !wire.drained.get();
    if resumed {
        state.idle_until.set(0);
        // Time passed while the connection waited.
        crate::encode::date_may_be_stale();
    }
    loop {
        if parse {
            let step = wire.parse_request_head();
            match step {
                Ok(Step::Got(Some(head))) => return Ok(head),
                Ok(Step::Got(None)) => {
                    return Err(NoHead::Invalid(Error::Malformed("unexpected data")));
                }
                Ok(Step::NeedMore) => {}
                Err(err) => return Err(NoHead::Invalid(err)),
            }
        }
        // About to wait: what is answered so far goes out first (pipelined answers leave
        // together, in one send).
        if wire.flush().is_err() {
            return Err(NoHead::Quiet);
        }
        let idle = wire.parser.borrow().is_idle();
        let filled = if idle {
            if shared.closing.get() {
                if !parse {
                    // Bytes that came during a switch are still answered.
                    parse = true;
                    continue;
                }
                return Err(NoHead::Quiet);
            }
            if detach_idle(task) {
                return Err(NoHead::Detached);
            }
            // Waits in this fiber, still marked idle.
            let filled = wire.fill(None);
            state.idle_until.set(0);
            filled
        } else {
            let start = *started.get_or_insert_with(Instant::now);
            let left = config.head_timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(NoHead::TimedOut);
            }
            wire.fill(Some(left))
        };
        parse = true;
        match filled {
            // The head timeout runs from the first wait for the rest of a head, right after
            // its first bytes came (a head that comes whole costs no clock read).
            Ok(true) => {}
            // End of stream, or a connection error: nobody to answer.
            Ok(false) => return Err(NoHead::Quiet),
            Err(err) if err.kind() == io::ErrorKind::TimedOut && !idle => {
                return Err(NoHead::TimedOut);
            }
            Err(_) => return Err(NoHead::Quiet),
        }
    }
}

/// Sends what is pending, shuts down the sending side, and reads what the client still sends
/// for a while, so that a client still writing gets the last response rather than a reset.
/// No lingering when the client asked to close and everything it sent was read: it sends
/// nothing more (RFC 9112 section 9.6), and a close with nothing unread sends no reset.
#[inline(never)]
fn close_gracefully(wire: &Wire) {
    if wire.flush().is_err() {
        wire.conn.close();
        return;
    }
    // Before lingering would start: the write shutdown comes with the close.
    if wire.client_done.get() && wire.parser.borrow().is_idle() {
        wire.settle();
        let mut unread = 0;
        wire.conn.with_buffered(&mut |data| unread = data.len());
        if unread == 0 {
            // A TCP or Unix socket without a write shutdown (TLS still sends close_notify).
            let _ = wire.conn.close_when_sent();
            return;
        }
    }
    if wire.conn.shutdown_write().is_err() {
        wire.conn.close();
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !matches!(wire.fill(Some(left)), Ok(true)) {
            break;
        }
        wire.settle();
        let mut n = 0;
        wire.conn.with_buffered(&mut |data| n = data.len());
        wire.conn.consume(n);
        dropped += n;
    }
    wire.conn.close();
}

/// A fresh request parser for a connection of this server.
pub(crate) fn parser(shared: &Shared) -> Parser {
    Parser::requests(shared.config.limits)
}
