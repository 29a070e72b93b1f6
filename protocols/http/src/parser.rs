//! [`Parser`]: the sans-IO message parser, heads and bodies of a stream of messages.

use std::cell::RefCell;

use http::{HeaderMap, Method};

use crate::decoder::BodyDecoder;
use crate::error::Error;
use crate::head::{
    FieldCache, Framing, HeadBody, Parsed, RequestHead, ResponseHead, Spare, request_head,
    response_head,
};
use crate::incoming::Incoming;
use crate::limits::Limits;

/// The largest header map (in fields it holds without growing) kept for the next request head.
pub(crate) const KEEP_HEADERS: usize = 64;

/// The most request head boxes a thread keeps for its next heads (one but in rare cases: a
/// box is given back when its exchange is over, and another exchange takes it only when
/// handlers wait meanwhile).
pub(crate) const KEEP_HEADS: usize = 16;

thread_local! {
    /// Allocations given back by the thread's request parsers, for the next head any of them
    /// parses. Shared by the thread's connections rather than kept per connection: the memory
    /// reused is then the memory touched last, still in cache, where a connection's own would
    /// have gone cold while the other connections ran.
    static SPARE: RefCell<Spare<()>> = const { RefCell::new(Spare::new(Some(FieldCache::new()))) };
    /// The same for the heads of the thread's servers, whose requests carry an [`Incoming`]
    /// body (see [`RequestHead`]).
    static SERVER_SPARE: RefCell<Spare<Incoming>> =
        const { RefCell::new(Spare::new(Some(FieldCache::new()))) };
}

impl HeadBody for () {
    fn placeholder() {}

    #[inline(always)]
    fn with_spare<R>(f: impl FnOnce(&mut Spare<()>) -> R) -> R {
        SPARE.with_borrow_mut(f)
    }
}

impl HeadBody for Incoming {
    fn placeholder() -> Incoming {
        Incoming::empty()
    }

    #[inline(always)]
    fn with_spare<R>(f: impl FnOnce(&mut Spare<Incoming>) -> R) -> R {
        SERVER_SPARE.with_borrow_mut(f)
    }
}

/// What [`Parser::parse`] found. (`B`, the body type of request heads, is `()` for the parser's
/// users: see [`RequestHead`].)
#[derive(Debug)]
pub enum Event<'a, B = ()> {
    /// The input was used up (possibly kept for later): feed more.
    NeedMore,
    /// A request head; its body (if any) follows as [`Data`](Event::Data) events and an
    /// [`End`](Event::End).
    Request(Box<RequestHead<B>>),
    /// A response head; its body follows as for a request.
    Response(Box<ResponseHead>),
    /// Body data, a slice of the input.
    Data(&'a [u8]),
    /// The message ended (trailers, if any, from [`Parser::take_trailers`]); the next message
    /// can follow.
    End,
}

/// A sans-IO HTTP/1.x parser for a connection's stream of requests (server side) or responses
/// (client side): feed it the bytes as they come, in pieces of any size, and it reports heads,
/// body data and message ends. Nothing is copied in the common case: a head that arrives whole
/// is parsed where it lies, and body data comes back as slices of the input. Only a head
/// split across inputs is kept, bounded by [`Limits::max_head_size`].
///
/// # Examples
///
/// ```
/// use gruvi_http::{Event, Limits, Parser};
///
/// let mut parser = Parser::requests(Limits::default());
/// let wire = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n\
///              Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
/// let mut input = &wire[..];
/// let mut seen = Vec::new();
/// while !input.is_empty() {
///     let (used, event) = parser.parse(input, usize::MAX)?;
///     match event {
///         Event::Request(head) => seen.push(head.request.uri().to_string()),
///         Event::Data(data) => seen.push(String::from_utf8_lossy(data).into_owned()),
///         Event::End => seen.push("end".to_owned()),
///         _ => {}
///     }
///     input = &input[used..];
/// }
/// assert_eq!(seen, ["/a", "end", "/b", "abc", "end"]);
/// # Ok::<(), gruvi_http::Error>(())
/// ```
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    /// The method of the request the next response answers (`None` on the server side).
    response_to: Option<Method>,
    /// `None` between messages, else the body being decoded.
    body: Option<BodyDecoder>,
    /// A message without a body (no decoder made for it) is to end next.
    bodiless: bool,
    /// A head that arrived in pieces.
    pending: Vec<u8>,
    /// Boxed: most messages have none.
    trailers: Option<Box<HeaderMap>>,
    failed: Option<Error>,
}

impl Parser {
    /// A parser of requests, for a server.
    pub fn requests(limits: Limits) -> Parser {
        Parser::new(limits, None)
    }

    /// A parser of responses, for a client; see [`set_request_method`](Self::set_request_method).
    pub fn responses(limits: Limits) -> Parser {
        Parser::new(limits, Some(Method::GET))
    }

    fn new(limits: Limits, response_to: Option<Method>) -> Parser {
        Parser {
            limits,
            response_to,
            body: None,
            bodiless: false,
            pending: Vec::new(),
            trailers: None,
            failed: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Tells a response parser which method the next response answers (a response to HEAD has
    /// no body). Defaults to GET.
    pub fn set_request_method(&mut self, method: Method) {
        self.response_to = Some(method);
    }

    /// Whether the parser is between messages with no partial head kept.
    pub fn is_idle(&self) -> bool {
        self.body.is_none() && !self.bodiless && self.pending.is_empty()
    }

    /// The bytes still to come of the body in progress, when its length is known (a
    /// `Content-Length`); `None` for a chunked or close-delimited one, or with no body in
    /// progress.
    pub(crate) fn body_known_remaining(&self) -> Option<u64> {
        self.body.as_ref().and_then(BodyDecoder::known_remaining)
    }

    /// Whether a body is being decoded.
    pub fn in_body(&self) -> bool {
        self.body.is_some() || self.bodiless
    }

    /// Body bytes of the current message decoded so far.
    pub fn body_len(&self) -> u64 {
        self.body.as_ref().map_or(0, BodyDecoder::decoded_len)
    }

    /// Gives back the box of a request head that is no longer needed, for the next head a
    /// parser on this thread reads to reuse (saving an allocation per request, and often the
    /// header map's: a map that holds the next head's fields already is kept as it is). Its
    /// body and extensions are dropped here.
    pub fn recycle(&mut self, head: Box<RequestHead>) {
        recycle_head(head);
    }

    /// Ends the message whose head said it has no body, as the [`End`](Event::End) that
    /// [`parse`](Self::parse) would report next (`false`, and nothing done, if a body is due):
    /// the server's shortcut for bodiless requests.
    pub(crate) fn end_empty_body(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        if self.bodiless {
            self.bodiless = false;
            self.trailers = None;
            return true;
        }
        if !self.body.as_ref().is_some_and(BodyDecoder::is_done) {
            return false;
        }
        self.end_message();
        true
    }

    /// The trailers of the message that just ended, if it had any.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take().map(|t| *t)
    }

    /// Parses from the start of `input`: returns how many bytes were used and what they held.
    /// Body data is reported `max_data` bytes at a time at most. Call again with the rest of
    /// the input (an [`End`](Event::End) may use no input at all).
    ///
    /// # Errors
    ///
    /// An [`Error`] when the input breaks the protocol or a limit; every later call returns
    /// it again.
    #[inline]
    pub fn parse<'a>(
        &mut self,
        input: &'a [u8],
        max_data: usize,
    ) -> Result<(usize, Event<'a>), Error> {
        self.parse_as(input, max_data)
    }

    /// [`parse`](Self::parse) with request heads whose body type is `B` (the server's:
    /// [`Incoming`]).
    #[inline]
    pub(crate) fn parse_as<'a, B: HeadBody>(
        &mut self,
        input: &'a [u8],
        max_data: usize,
    ) -> Result<(usize, Event<'a, B>), Error> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.step(input, max_data);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// Tells the parser the input ended: `Ok(End)` when that ends a body read until end of
    /// stream, `Ok(NeedMore)` between messages.
    ///
    /// # Errors
    ///
    /// [`Error::IncompleteMessage`] inside a message (or the error a partial head has).
    pub fn finish(&mut self) -> Result<Event<'static>, Error> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = match &mut self.body {
            None if self.bodiless => {
                self.bodiless = false;
                self.trailers = None;
                Ok(Event::End)
            }
            Some(body) => body.finish_at_eof().map(|()| {
                self.end_message();
                Event::End
            }),
            None if self.pending.is_empty() => Ok(Event::NeedMore),
            None => {
                let pending = std::mem::take(&mut self.pending);
                match self.parse_head::<()>(&pending) {
                    Err(err) => Err(err),
                    Ok(_) => Err(Error::IncompleteMessage),
                }
            }
        };
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn step<'a, B: HeadBody>(
        &mut self,
        input: &'a [u8],
        max_data: usize,
    ) -> Result<(usize, Event<'a, B>), Error> {
        if self.bodiless {
            self.bodiless = false;
            self.trailers = None;
            return Ok((0, Event::End));
        }
        if let Some(body) = &mut self.body {
            if body.is_done() {
                self.end_message();
                return Ok((0, Event::End));
            }
            let decoded = body.decode(input, max_data.max(1))?;
            let event = match decoded.data {
                Some((start, end)) => Event::Data(&input[start..end]),
                None if body.is_done() => {
                    self.end_message();
                    Event::End
                }
                None => Event::NeedMore,
            };
            return Ok((decoded.consumed, event));
        }
        if input.is_empty() {
            return Ok((0, Event::NeedMore));
        }
        if self.pending.is_empty() {
            return match self.parse_head(input)? {
                Some((len, event)) => Ok((len, event)),
                None => {
                    self.pending.extend_from_slice(input);
                    Ok((input.len(), Event::NeedMore))
                }
            };
        }
        // A head in pieces: parse again only when a line may have ended, so that a peer
        // sending a byte at a time cannot make each byte cost a parse of the whole head.
        let old = self.pending.len();
        self.pending.extend_from_slice(input);
        if !input.contains(&b'\n') {
            // The start line's limit first, as for a head parsed whole.
            self.check_line()?;
            if self.pending.len() > self.limits.max_head_size {
                return Err(Error::HeadTooLarge);
            }
            return Ok((input.len(), Event::NeedMore));
        }
        let pending = std::mem::take(&mut self.pending);
        match self.parse_head(&pending)? {
            // A head cannot end inside what was kept: that was parsed as incomplete.
            Some((len, event)) => match len.checked_sub(old) {
                Some(used) => Ok((used, event)),
                None => Err(Error::Malformed("head ended inside kept input")),
            },
            None => {
                self.pending = pending;
                Ok((input.len(), Event::NeedMore))
            }
        }
    }

    /// Checks the start line of a partial head against its limit.
    fn check_line(&self) -> Result<(), Error> {
        let too_long = match self.response_to {
            None => Error::UriTooLong,
            Some(_) => Error::HeadTooLarge,
        };
        crate::head::check_start_line(&self.pending, self.limits.max_request_line, too_long)
    }

    /// Parses a head at the start of `buf`, entering its body.
    fn parse_head<'a, B: HeadBody>(
        &mut self,
        buf: &[u8],
    ) -> Result<Option<(usize, Event<'a, B>)>, Error> {
        let (len, framing, event) = match &self.response_to {
            None => match B::with_spare(|spare| request_head(buf, &self.limits, spare))? {
                None => return Ok(None),
                Some((len, head)) => (len, head.framing, Event::Request(head)),
            },
            Some(method) => match response_head(buf, &self.limits, method)? {
                None => return Ok(None),
                Some((len, head)) => (len, head.framing, Event::Response(head)),
            },
        };
        self.enter_body(framing);
        Ok(Some((len, event)))
    }

    /// Enters the body of a message whose head said `framing`.
    #[inline(always)]
    fn enter_body(&mut self, framing: Framing) {
        // A message without a body gets no decoder: its end is a flag.
        if framing == Framing::Length(0) {
            self.bodiless = true;
        } else {
            self.body = Some(BodyDecoder::new(framing, &self.limits));
        }
    }

    /// The server's way to the next request head when the parser is between messages with
    /// nothing kept (the usual case), without the layers of [`parse_as`](Self::parse_as)
    /// and its [`Event`]: the head at the start of `input` and its length, `Ok(None)` when
    /// `input` holds only part of one (kept, as `parse_as` keeps it: all of `input` is
    /// used), exactly as `parse_as` would report them. `None` when the parser is not between
    /// messages (or `input` is empty): `parse_as` then.
    #[inline(always)]
    pub(crate) fn next_request_head<B: HeadBody>(
        &mut self,
        input: &[u8],
    ) -> Option<Result<Option<Parsed<B>>, Error>> {
        let at_rest = self.failed.is_none()
            && !self.bodiless
            && self.body.is_none()
            && self.pending.is_empty()
            && self.response_to.is_none()
            && !input.is_empty();
        if !at_rest {
            return None;
        }
        Some(
            match B::with_spare(|spare| request_head(input, &self.limits, spare)) {
                Ok(Some((len, head))) => {
                    self.enter_body(head.framing);
                    Ok(Some((len, head)))
                }
                Ok(None) => {
                    self.pending.extend_from_slice(input);
                    Ok(None)
                }
                Err(err) => {
                    self.failed = Some(err.clone());
                    Err(err)
                }
            },
        )
    }

    fn end_message(&mut self) {
        // Ended in place: the decoder is not moved out to be dropped.
        if let Some(body) = &mut self.body {
            self.trailers = body.take_boxed_trailers();
            self.body = None;
        }
    }
}

/// [`Parser::recycle`] without a parser at hand (the server's, whose parser is behind a
/// `RefCell`). Inlined: both handler shapes call it once per request.
///
/// The request's body and extensions are emptied (the body may hold a connection, the
/// extensions anything a handler put there), and a map larger than a usual head's dropped;
/// its method, target and map are left for the next head, which keeps what it says again.
#[inline(always)]
pub(crate) fn recycle_head<B: HeadBody>(mut head: Box<RequestHead<B>>) {
    let request = &mut head.request;
    *request.body_mut() = B::placeholder();
    request.extensions_mut().clear();
    if request.headers().capacity() > KEEP_HEADERS {
        drop_map(request.headers_mut());
    }
    B::with_spare(|spare| {
        if let Some(older) = spare.head.replace(head) {
            keep_older_head(spare, older);
        }
    });
}

/// Replaces `headers` with a map that holds no allocation.
#[cold]
#[inline(never)]
fn drop_map(headers: &mut HeaderMap) {
    *headers = HeaderMap::new();
}

/// Keeps a head box given back before the last one, if the thread keeps fewer than
/// [`KEEP_HEADS`].
#[inline(never)]
fn keep_older_head<B>(spare: &mut Spare<B>, head: Box<RequestHead<B>>) {
    if spare.older.len() < KEEP_HEADS - 1 {
        spare.older.push(head);
    }
}

/// Gives back a header map that is no longer needed (a written response's), for the next
/// request head on this thread to fill instead of allocating its own (server side). Maps
/// larger than a usual head are dropped, so that one large response does not stay in memory.
///
/// The map is swapped with the empty one of the spare head box, if there is a box whose map
/// went to its request (the usual case: the next head then needs no swap), else with the
/// spare map: `headers` holds that one afterwards.
pub(crate) fn recycle_request_headers(headers: &mut HeaderMap) {
    if headers.capacity() <= KEEP_HEADERS {
        if !headers.is_empty() {
            headers.clear();
        }
        SERVER_SPARE.with_borrow_mut(|spare| {
            let kept = match (&mut spare.head, &mut spare.headers) {
                (Some(head), _) if head.request.headers().capacity() == 0 => {
                    head.request.headers_mut()
                }
                (_, Some(kept)) => kept,
                (_, None) => {
                    spare.headers = Some(std::mem::take(headers));
                    return;
                }
            };
            std::mem::swap(kept, headers);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{Event, Parser};
    use crate::limits::Limits;

    /// The events of `pieces` as the server reads heads: the shortcut first, `parse_as` when
    /// it declines (or `parse_as` only), as text; stops at the first error.
    fn events(pieces: &[&[u8]], shortcut: bool) -> Vec<String> {
        let limits = Limits {
            max_request_line: 64,
            max_headers: 8,
            max_head_size: 256,
            ..Limits::default()
        };
        let mut parser = Parser::requests(limits);
        let mut out = Vec::new();
        for piece in pieces {
            let mut input = *piece;
            loop {
                if shortcut && let Some(found) = parser.next_request_head::<()>(input) {
                    match found {
                        Ok(Some((used, head))) => {
                            out.push(format!("{used} {:?} {:?}", head.request, head.framing));
                            input = &input[used..];
                        }
                        Ok(None) => {
                            out.push(format!("{} more", input.len()));
                            break;
                        }
                        Err(err) => {
                            out.push(format!("error {err:?}"));
                            return out;
                        }
                    }
                } else {
                    match parser.parse_as::<()>(input, usize::MAX) {
                        Ok((used, Event::NeedMore)) => {
                            out.push(format!("{used} more"));
                            break;
                        }
                        Ok((used, Event::Request(head))) => {
                            out.push(format!("{used} {:?} {:?}", head.request, head.framing));
                            input = &input[used..];
                        }
                        Ok((used, Event::Data(data))) => {
                            out.push(format!("data {data:?}"));
                            input = &input[used..];
                        }
                        Ok((used, event)) => {
                            out.push(format!("{event:?}"));
                            input = &input[used..];
                        }
                        Err(err) => {
                            out.push(format!("error {err:?}"));
                            return out;
                        }
                    }
                }
                if input.is_empty() && !parser.in_body() {
                    break;
                }
            }
        }
        out
    }

    /// The server's shortcut to the next head says exactly what `parse_as` says, however the
    /// input is split: whole heads, heads in pieces, bodies between them, bad heads, limits.
    #[test]
    fn the_head_shortcut_says_what_the_parse_says() {
        let inputs: [&[u8]; 9] = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
              GET / HTTP/1.1\r\nHost: y\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\n\
              H: 8\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ];
        for input in inputs {
            for at in 0..=input.len() {
                let pieces = [&input[..at], &input[at..]];
                let expected = events(&pieces, false);
                assert_eq!(
                    events(&pieces, true),
                    expected,
                    "{:?} split at {at}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}
