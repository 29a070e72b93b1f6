//! Parsing message heads (`httparse`) and deciding what follows them: the body's framing,
//! keep-alive, `Expect`. Every RFC 9112 request-smuggling defence lives here.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};

use crate::error::Error;
use crate::limits::Limits;

/// How a message's body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// The chunked transfer coding, ending with a zero-size chunk and trailers.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilEof,
}

/// A parsed request head and what it implies.
///
/// `B` is the type of the request's body, which comes separately: `()` for the parser's
/// users. (The crate's server parses its heads with its [`Incoming`](crate::Incoming) as `B`, so that it hands
/// the parsed request itself to an in-place handler, the connection's body put in: a request
/// is large, and every move of it is a copy.)
#[derive(Debug)]
pub struct RequestHead<B = ()> {
    /// Method, target, version and header fields; the body is a placeholder (`()`).
    pub request: Request<B>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1: the client waits for `100 Continue` before the body.
    pub expect_continue: bool,
}

/// A parsed response head and what it implies.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and header fields (the body comes separately).
    pub response: Response<()>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection can carry another exchange after this one.
    pub keep_alive: bool,
}

/// Header storage on the stack (uninitialised: nothing to clear per parse) for heads with at
/// most this many fields; a head with more is parsed again with storage on the heap. Small, so
/// that a parse touches little stack: every connection fiber has its own, and cold cache lines
/// cost more than the rare second parse.
const STACK_HEADERS: usize = 24;

type Slot<'b> = MaybeUninit<httparse::Header<'b>>;

/// Parses a request head at the start of `buf`: `Ok(None)` while incomplete, else the head's
/// length in bytes and the head.
///
/// # Errors
///
/// Any [`Error`] but [`Error::IncompleteMessage`]; each names the status to answer with.
///
/// # Examples
///
/// ```
/// use gruvi_http::{Framing, Limits, parse_request_head};
///
/// let wire = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello";
/// let (len, head) = parse_request_head(wire, &Limits::default())?.unwrap();
/// assert_eq!(&wire[len..], b"hello");
/// assert_eq!(head.request.uri().path(), "/upload");
/// assert_eq!(head.framing, Framing::Length(5));
/// assert!(parse_request_head(&wire[..20], &Limits::default())?.is_none());
/// # Ok::<(), gruvi_http::Error>(())
/// ```
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(usize, RequestHead)>, Error> {
    let mut spare = Spare::new(None);
    Ok(request_head(buf, limits, &mut spare)?.map(|(len, head)| (len, *head)))
}

/// A request head parsed from the start of a buffer: its length in bytes, and the head.
pub(crate) type Parsed<B> = (usize, Box<RequestHead<B>>);

/// Allocations of earlier requests kept for the next head: the boxes of heads given back,
/// an emptied header map (a response's, once it is written), and the fields of recent heads.
///
/// A box given back holds the last request it carried, body and extensions emptied (see
/// `parser::recycle_head`): its method, target and map are often what the next head says
/// again, and are then kept as they are.
#[derive(Debug)]
pub(crate) struct Spare<B> {
    /// The box given back last: the usual head takes this one.
    pub(crate) head: Option<Box<RequestHead<B>>>,
    /// Boxes given back before it, while it was still here (requests whose handlers wait
    /// meanwhile), up to `parser::KEEP_HEADS`.
    pub(crate) older: Vec<Box<RequestHead<B>>>,
    pub(crate) headers: Option<HeaderMap>,
    /// `None`: each field is built anew.
    pub(crate) fields: Option<FieldCache>,
}

/// The body a request head's box carries until its request gets its own: what a [`Spare`]
/// of such boxes is made with, and where the thread keeps its spare (see `parser.rs`: one
/// per body type, so that the server's heads and the parser users' do not mix).
pub(crate) trait HeadBody: Sized {
    /// The placeholder body of a head just parsed.
    fn placeholder() -> Self;

    /// Runs `f` on the thread's spare for heads of this body type.
    fn with_spare<R>(f: impl FnOnce(&mut Spare<Self>) -> R) -> R;
}

impl<B> Spare<B> {
    /// Nothing kept, with `fields` as the field cache (`None`: each field is built anew).
    pub(crate) const fn new(fields: Option<FieldCache>) -> Spare<B> {
        Spare {
            head: None,
            older: Vec::new(),
            headers: None,
            fields,
        }
    }
}

impl<B: HeadBody> Spare<B> {
    /// A box for the next head: the one given back last, else an older one, else a new one.
    #[inline(always)]
    fn take_head(&mut self) -> Box<RequestHead<B>> {
        match self.head.take() {
            Some(head) => head,
            None => self.take_older_head(),
        }
    }

    /// [`take_head`](Self::take_head) when the box given back last is taken already.
    #[inline(never)]
    fn take_older_head(&mut self) -> Box<RequestHead<B>> {
        self.older.pop().unwrap_or_else(new_head)
    }
}

/// The header fields of recent request heads by position (the first [`CACHED_FIELDS`]), so
/// that a field repeated from one head to the next (`Host`, `User-Agent`, `Accept`... a
/// client sends the same ones on every request) is a comparison of its raw bytes and two
/// cheap clones instead of a name lookup, a validated copy of the value, and its allocation
/// (and the free when the request is dropped). A field is kept as a raw line when first seen
/// and parsed into the cache when the next head repeats it at the same position, so a field
/// that changes with every head costs only the copy of its line.
#[derive(Debug)]
pub(crate) struct FieldCache {
    slots: Vec<CachedField>,
    /// The whole field section of the last heads.
    block: CachedBlock,
    /// The last origin-form target other than `/` (which the head's box keeps), parsed: a
    /// client often asks for the same one again, and a clone of it spares the next request
    /// the parse (and a copy of its text).
    target: Option<Uri>,
    /// The whole last head whose field section was the cached one.
    last: LastHead,
}

/// The last request head whose field section was the cached one ([`CachedBlock`], parsed),
/// whole: its bytes, the limits it was checked against, and, once a second head repeated
/// them, what it says ([`KeptHead`]). A head that is these bytes again, under the same
/// limits, is the same head (a client repeating its request on a kept-alive connection: a
/// poller, a health check, a load generator), and httparse would parse it the same way to the
/// same verdict: it is not parsed again, but compared. Forgotten whenever the section is.
///
/// What it costs a head that is not the kept one: a comparison that fails (most often in the
/// first bytes of the target), and a copy of its bytes to be kept instead. After
/// [`BLOCK_MISSES`] such heads in a row, only two heads in a row out of every
/// [`BLOCK_PROBE`] are kept, as for the field section.
#[derive(Debug, Default)]
struct LastHead {
    /// The whole head, up to and with the empty line that ends it.
    bytes: Vec<u8>,
    /// What it says, once a second head repeated the bytes.
    parsed: Option<KeptHead>,
    limits: Option<Limits>,
    /// Heads in a row that were not the one before (up to [`BLOCK_MISSES`]).
    misses: u8,
    /// Heads still to pass over before the next one is kept.
    skip: u8,
}

/// What a [`LastHead`] says: its method, target and what was decided from its fields (the
/// same for the same bytes under the same limits).
#[derive(Debug)]
struct KeptHead {
    method: Method,
    /// `None` for `/`.
    target: Option<Uri>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

impl LastHead {
    /// Forgets the kept head (its field section is no longer the cached one); the count of
    /// misses stays.
    #[inline(always)]
    fn forget(&mut self) {
        if !self.bytes.is_empty() {
            self.bytes.clear();
            self.parsed = None;
        }
    }
}

/// The longest request line (with the empty lines before it) of a [`LastHead`].
const CACHED_START: usize = 1024;

/// The field section of recent request heads as a whole (its raw bytes, from the first
/// field's name to the end of the head): a client on a kept-alive connection often
/// sends the same fields with every request. Repeated a second time, it is parsed into the
/// cache with what its fields say ([`Semantics`]); later heads with the same bytes (and HTTP
/// version) then get clones of its fields with no per-field comparison, and their semantics
/// without reading the fields again. A section that changes is a copy of its bytes, and
/// goes on to the per-field cache; after [`BLOCK_MISSES`] changes in a row, only two heads
/// in a row out of every [`BLOCK_PROBE`] are looked at, so that sections that never repeat
/// (a request id in every head) cost little more than without this cache, and one that
/// starts to repeat is still found within two rounds.
#[derive(Debug, Default)]
struct CachedBlock {
    bytes: Vec<u8>,
    version: Version,
    /// The fields and what they say, once a second head repeated the bytes.
    parsed: Option<(Vec<(HeaderName, HeaderValue)>, Semantics)>,
    /// No name comes twice in the parsed fields (see [`CachedBlock::holds`]).
    distinct: bool,
    /// Sections in a row that were not the one before (up to [`BLOCK_MISSES`]).
    misses: u8,
    /// Heads still to pass over before the next section is looked at.
    skip: u8,
}

/// Changed sections in a row after which the cache looks only at some heads.
const BLOCK_MISSES: u8 = 4;
/// Then two heads in a row out of this many are looked at.
const BLOCK_PROBE: u8 = 16;

/// The longest field section cached whole.
const CACHED_BLOCK: usize = 2048;

/// Fields cached per thread (by position in the head).
const CACHED_FIELDS: usize = 16;
/// The longest field line (name to end of value) cached.
const CACHED_LINE: usize = 512;

#[derive(Debug, Default)]
struct CachedField {
    /// The raw bytes from the start of the name to the end of the value.
    line: Vec<u8>,
    /// The name's length and where the value starts, in `line`.
    name_len: usize,
    value_at: usize,
    /// The field, once a second head repeated the line.
    parsed: Option<(HeaderName, HeaderValue)>,
}

impl FieldCache {
    pub(crate) const fn new() -> FieldCache {
        FieldCache {
            slots: Vec::new(),
            block: CachedBlock {
                bytes: Vec::new(),
                version: Version::HTTP_11,
                parsed: None,
                distinct: false,
                misses: 0,
                skip: 0,
            },
            target: None,
            last: LastHead {
                bytes: Vec::new(),
                parsed: None,
                limits: None,
                misses: 0,
                skip: 0,
            },
        }
    }

    /// The length of the head at the start of `buf` if it is the [`LastHead`] again, under
    /// the same `limits`.
    #[inline(always)]
    fn repeated(&self, buf: &[u8], limits: &Limits) -> Option<usize> {
        let last = &self.last;
        let bytes = &*last.bytes;
        let same = last.parsed.is_some()
            && buf.len() >= bytes.len()
            && buf[..bytes.len()] == *bytes
            && last.limits.is_some_and(|kept| same_limits(&kept, limits));
        same.then_some(bytes.len())
    }

    /// Keeps the head `head` of `len` bytes, parsed from the start of `buf` under `limits`,
    /// as the [`LastHead`] (it was not that one): its field section, from `fields_at` on, is
    /// the cached one. What it says is kept too if the last head kept had the same bytes
    /// (under the same limits).
    #[inline(never)]
    fn keep_last<B>(
        &mut self,
        buf: &[u8],
        (fields_at, len): (usize, usize),
        head: &RequestHead<B>,
        limits: &Limits,
    ) {
        let last = &mut self.last;
        if last.skip > 0 {
            last.skip -= 1;
            return;
        }
        let bytes = &buf[..len];
        let same_limits = last.limits.is_some_and(|kept| same_limits(&kept, limits));
        if last.parsed.is_none() && *last.bytes == *bytes && same_limits {
            let request = &head.request;
            last.parsed = Some(KeptHead {
                method: request.method().clone(),
                target: (!is_root(request.uri())).then(|| request.uri().clone()),
                framing: head.framing,
                keep_alive: head.keep_alive,
                expect_continue: head.expect_continue,
            });
            last.misses = 0;
            return;
        }
        last.bytes.clear();
        last.parsed = None;
        if fields_at <= CACHED_START {
            last.bytes.extend_from_slice(bytes);
            last.limits = Some(*limits);
        }
        if last.misses < BLOCK_MISSES {
            last.misses += 1;
        } else {
            last.skip = BLOCK_PROBE - 2;
            last.misses = BLOCK_MISSES - 1;
        }
    }

    /// The `Uri` of the request target `target` (neither `/` nor empty), from the cache if
    /// it is the last one.
    #[inline(always)]
    fn target(&mut self, target: &str) -> Result<Uri, Error> {
        match &self.target {
            Some(uri) if uri.path_and_query().is_some_and(|pq| pq.as_str() == target) => {
                Ok(uri.clone())
            }
            _ => self.new_target(target),
        }
    }

    /// [`target`](Self::target) for a target not in the cache: parsed (from a copy of its
    /// own, not a slice of the head's), and kept if it is in origin form.
    #[cold]
    #[inline(never)]
    fn new_target(&mut self, target: &str) -> Result<Uri, Error> {
        let uri = target_uri(Bytes::copy_from_slice(target.as_bytes()))?;
        // Only a path and query is its own text again (`path_and_query` drops a fragment,
        // and other forms have more parts): the comparison above is then exact.
        let origin = uri.scheme().is_none()
            && uri.authority().is_none()
            && uri.path_and_query().is_some_and(|pq| pq.as_str() == target);
        self.target = origin.then(|| uri.clone());
        Ok(uri)
    }
}

/// [`parse_request_head`] with the head boxed: it moves through the parser's layers as a
/// pointer.
///
/// `spare` holds allocations of earlier heads to reuse; what the head takes is taken from it,
/// the rest stays for later.
pub(crate) fn request_head<B: HeadBody>(
    buf: &[u8],
    limits: &Limits,
    spare: &mut Spare<B>,
) -> Result<Option<Parsed<B>>, Error> {
    // Here rather than in the parse: a repeated head costs no entry into the parse's large
    // frame.
    if let Some(cache) = &spare.fields
        && let Some(len) = cache.repeated(buf, limits)
    {
        return Ok(Some((len, repeated_head(spare))));
    }
    let mut storage = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let small = limits.max_headers.min(STACK_HEADERS);
    request_with(buf, limits, &mut storage[..small], spare)
}

/// [`request_with`] with room for `limits.max_headers` fields, for heads with more than
/// [`STACK_HEADERS`].
#[cold]
#[inline(never)]
fn request_on_heap<B: HeadBody>(
    buf: &[u8],
    limits: &Limits,
    spare: &mut Spare<B>,
) -> Result<Option<Parsed<B>>, Error> {
    request_with(buf, limits, &mut heap_slots(limits), spare)
}

fn request_with<'b, B: HeadBody>(
    buf: &'b [u8],
    limits: &Limits,
    storage: &mut [Slot<'b>],
    spare: &mut Spare<B>,
) -> Result<Option<Parsed<B>>, Error> {
    let slots = storage.len();
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, storage);
    // The start line's limit comes first: measured from the parse when the head is complete,
    // else on the raw bytes (the line may still be arriving).
    match (parsed, req.method, req.path) {
        (Ok(httparse::Status::Complete(_)), Some(method), Some(path)) => {
            if request_line_len(buf, method, path) > limits.max_request_line {
                return Err(Error::UriTooLong);
            }
        }
        _ => check_start_line(buf, limits.max_request_line, Error::UriTooLong)?,
    }
    let retry = || request_on_heap(buf, limits, spare);
    let reparse = |prefix: &[u8]| {
        let mut storage = heap_slots(limits);
        let mut req = httparse::Request::new(&mut []);
        req.parse_with_uninit_headers(prefix, &mut storage).err()
    };
    let len = match head_len(parsed, buf, limits, slots, retry, reparse) {
        Ok(len) => len,
        Err(done) => return done,
    };
    let shared = Shared::new(len, req.headers.len());
    let slice = |part: &[u8]| shared.slice(buf, part);
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // The field section as a whole, if it is the cached one: its semantics are known.
    let cached = match &spare.fields {
        Some(cache) => cache.block.semantics(buf, len, req.headers, version),
        None => None,
    };
    let hit = cached.is_some();
    let semantics = match cached {
        Some(semantics) => semantics,
        None => Semantics::of(req.headers, version)?,
    };
    // The fields go straight into the (possibly reused) box rather than through temporaries:
    // a head is large, every move of it is a copy, and every stack line a connection fiber
    // touches is a likely cache miss.
    let mut head = spare.take_head();
    let method = req.method.unwrap_or_default();
    // The box's method is usually GET already (a request's default, left by the last one):
    // a GET then costs one comparison instead of a lookup and the old method's drop.
    if method != "GET" || *head.request.method() != Method::GET {
        *head.request.method_mut() = Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::Malformed("invalid method"))?;
    }
    match req.path.unwrap_or_default() {
        // The box's target is often `/` already (a request's default, left by the last one):
        // building a `Uri`, even from a static string, parses it.
        "/" => set_root(head.request.uri_mut()),
        target => {
            *head.request.uri_mut() = match &mut spare.fields {
                Some(cache) => cache.target(target)?,
                None => target_uri(slice(target.as_bytes()))?,
            }
        }
    }
    *head.request.version_mut() = version;
    let headers = head.request.headers_mut();
    take_spare_map(headers, &mut spare.headers);
    match &mut spare.fields {
        Some(cache) if hit => cache.block.fill_or_keep(headers),
        fields => {
            if !headers.is_empty() {
                headers.clear();
            }
            match fields {
                Some(cache) => {
                    // The section changes (or is new): a kept whole head no longer holds.
                    cache.last.forget();
                    fill_cached(headers, req.headers, buf, cache, &slice)?;
                    cache
                        .block
                        .remember(buf, len, version, req.headers, &semantics);
                }
                None => fill_headers(headers, req.headers, &slice)?,
            }
        }
    }
    decide(&mut head, &semantics, limits)?;
    if hit && let Some(cache) = &mut spare.fields {
        // Checked whole: kept for the next head to be compared with. The field section
        // starts at the first field's name (`hit` means there are fields).
        let fields_at = req.headers.first().map_or(0, |field| {
            field.name.as_ptr() as usize - buf.as_ptr() as usize
        });
        cache.keep_last(buf, (fields_at, len), &head, limits);
    }
    Ok(Some((len, head)))
}

/// The head of [`FieldCache::repeated`]: the kept one's parts, cloned into the (possibly
/// reused) box, with what was decided from its fields when it was kept (the same bytes under
/// the same limits: the same verdict).
#[inline(always)]
fn repeated_head<B: HeadBody>(spare: &mut Spare<B>) -> Box<RequestHead<B>> {
    let mut head = spare.take_head();
    let Some(cache) = &mut spare.fields else {
        unreachable!("a repeated head is found in the cache");
    };
    let (last, block) = (&cache.last, &cache.block);
    let Some(kept) = &last.parsed else {
        unreachable!("a repeated head is parsed");
    };
    if *head.request.method() != kept.method {
        *head.request.method_mut() = kept.method.clone();
    }
    match &kept.target {
        None => set_root(head.request.uri_mut()),
        Some(target) => *head.request.uri_mut() = target.clone(),
    }
    *head.request.version_mut() = block.version;
    let headers = head.request.headers_mut();
    take_spare_map(headers, &mut spare.headers);
    block.fill_or_keep(headers);
    head.framing = kept.framing;
    head.keep_alive = kept.keep_alive;
    head.expect_continue = kept.expect_continue;
    head
}

/// Makes `uri` the target `/`; the box's target is often that already (a request's default,
/// left by the last one), and building a `Uri`, even from a static string, parses it.
#[inline(always)]
fn set_root(uri: &mut Uri) {
    if !is_root(uri) {
        *uri = Uri::from_static("/");
    }
}

/// `a == b`, without a branch per field. Every field is named (a field added to `Limits`
/// breaks the build here rather than being left out of the comparison).
#[inline(always)]
fn same_limits(a: &Limits, b: &Limits) -> bool {
    let words = |l: &Limits| {
        let Limits {
            max_request_line,
            max_headers,
            max_head_size,
            max_chunk_extension,
            max_trailer_size,
            max_body_size,
        } = *l;
        [
            max_request_line as u64,
            max_headers as u64,
            max_head_size as u64,
            max_chunk_extension as u64,
            max_trailer_size as u64,
            max_body_size,
        ]
    };
    let differ = words(a)
        .iter()
        .zip(words(b))
        .fold(0, |acc, (x, y)| acc | (x ^ y));
    differ == 0
}

/// Gives a head's empty map the `spare` one's allocation. A box given back usually got the
/// last written response's map already (see `parser::recycle_request_headers`), else the
/// spare map is used: swapped, the head's map (empty, taken by the last request) goes to the
/// spare, where the next written response's map replaces it.
#[inline(always)]
fn take_spare_map(headers: &mut HeaderMap, spare: &mut Option<HeaderMap>) {
    if headers.capacity() == 0
        && let Some(reuse) = spare
    {
        std::mem::swap(headers, reuse);
        if reuse.capacity() > crate::parser::KEEP_HEADERS {
            *spare = None;
        }
    }
}

/// Decides what the fields of `head` (which say `semantics`) mean for it under `limits`:
/// the `Host` rules, the framing, keep-alive, `Expect`; every RFC 9112 smuggling defence of
/// the fields is here.
#[inline(always)]
fn decide<B>(
    head: &mut RequestHead<B>,
    semantics: &Semantics,
    limits: &Limits,
) -> Result<(), Error> {
    let version = head.request.version();
    if version == Version::HTTP_11 {
        match semantics.hosts {
            0 => return Err(Error::Malformed("missing Host header")),
            1 => {}
            _ => return Err(Error::Malformed("duplicate Host header")),
        }
    } else if semantics.hosts > 1 {
        return Err(Error::Malformed("duplicate Host header"));
    }
    let framing = match (semantics.chunked, semantics.content_length) {
        (Some(_), _) if version == Version::HTTP_10 => {
            return Err(Error::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
        }
        (Some(_), Some(_)) => {
            return Err(Error::Malformed(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        (Some(true), None) => Framing::Chunked,
        (Some(false), None) => {
            return Err(Error::Malformed(
                "Transfer-Encoding does not end in chunked",
            ));
        }
        (None, Some(n)) if n > limits.max_body_size => return Err(Error::BodyTooLarge),
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Length(0),
    };
    let expect_continue = match semantics.expect_continue {
        None => false,
        // RFC 9110 10.1.1: a server ignores 100-continue from an HTTP/1.0 client.
        Some(true) => version == Version::HTTP_11,
        Some(false) => return Err(Error::UnknownExpectation),
    };
    head.framing = framing;
    head.keep_alive = semantics.keep_alive;
    head.expect_continue = expect_continue;
    Ok(())
}

/// Parses a response head at the start of `buf`, the answer to a request with `method`:
/// `Ok(None)` while incomplete, else the head's length in bytes and the head. Interim (1xx)
/// responses are returned like final ones, with no body.
///
/// # Errors
///
/// [`Error::Malformed`], [`Error::HeadTooLarge`], [`Error::UnsupportedVersion`],
/// [`Error::UnsupportedTransferCoding`].
///
/// # Examples
///
/// ```
/// use gruvi_http::{Framing, Limits, parse_response_head};
/// use http::Method;
///
/// let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
/// let (len, head) = parse_response_head(wire, &Limits::default(), &Method::HEAD)?.unwrap();
/// assert_eq!(len, wire.len() - 2);
/// assert_eq!(head.framing, Framing::Length(0)); // a HEAD response has no body
/// # Ok::<(), gruvi_http::Error>(())
/// ```
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
    method: &Method,
) -> Result<Option<(usize, ResponseHead)>, Error> {
    Ok(response_head(buf, limits, method)?.map(|(len, head)| (len, *head)))
}

/// [`parse_response_head`] with the head boxed.
pub(crate) fn response_head(
    buf: &[u8],
    limits: &Limits,
    method: &Method,
) -> Result<Option<(usize, Box<ResponseHead>)>, Error> {
    check_start_line(buf, limits.max_request_line, Error::HeadTooLarge)?;
    let mut storage = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let small = limits.max_headers.min(STACK_HEADERS);
    response_with(buf, limits, method, &mut storage[..small])
}

/// [`response_with`] with room for `limits.max_headers` fields.
#[cold]
#[inline(never)]
fn response_on_heap(
    buf: &[u8],
    limits: &Limits,
    method: &Method,
) -> Result<Option<(usize, Box<ResponseHead>)>, Error> {
    response_with(buf, limits, method, &mut heap_slots(limits))
}

fn response_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    method: &Method,
    storage: &mut [Slot<'b>],
) -> Result<Option<(usize, Box<ResponseHead>)>, Error> {
    let slots = storage.len();
    let mut res = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let parsed = config.parse_response_with_uninit_headers(&mut res, buf, storage);
    let retry = || response_on_heap(buf, limits, method);
    let reparse = |prefix: &[u8]| {
        let mut storage = heap_slots(limits);
        let mut res = httparse::Response::new(&mut []);
        config
            .parse_response_with_uninit_headers(&mut res, prefix, &mut storage)
            .err()
    };
    let len = match head_len(parsed, buf, limits, slots, retry, reparse) {
        Ok(len) => len,
        Err(done) => return done,
    };
    let shared = Shared::new(len, res.headers.len());
    let slice = |part: &[u8]| shared.slice(buf, part);
    let status = StatusCode::from_u16(res.code.unwrap_or_default())
        .map_err(|_| Error::Malformed("invalid status code"))?;
    let version = match res.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let semantics = Semantics::of(res.headers, version)?;
    let mut headers = HeaderMap::new();
    fill_headers(&mut headers, res.headers, &slice)?;
    let no_body = method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || (method == Method::CONNECT && status.is_success());
    let mut keep_alive = semantics.keep_alive;
    let framing = match (semantics.chunked, semantics.content_length) {
        _ if no_body => Framing::Length(0),
        (Some(true), cl) => {
            // RFC 9112 6.3: Transfer-Encoding wins, but the connection cannot be trusted.
            keep_alive &= cl.is_none();
            Framing::Chunked
        }
        (Some(false), _) | (None, None) => {
            keep_alive = false;
            Framing::UntilEof
        }
        (None, Some(n)) => Framing::Length(n),
    };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    let head = Box::new(ResponseHead {
        response,
        framing,
        keep_alive,
    });
    Ok(Some((len, head)))
}

/// A request head's box, for a thread with none to reuse. Out of line, as is
/// [`target_uri`]: their temporaries (a request is large) would enlarge the parse's stack
/// frame, and every stack line a connection fiber touches is a likely cache miss.
#[cold]
#[inline(never)]
fn new_head<B: HeadBody>() -> Box<RequestHead<B>> {
    Box::new(RequestHead {
        request: Request::new(B::placeholder()),
        framing: Framing::Length(0),
        keep_alive: false,
        expect_continue: false,
    })
}

/// A request target other than `/`, parsed.
#[inline(never)]
fn target_uri(target: Bytes) -> Result<Uri, Error> {
    Uri::from_maybe_shared(target).map_err(|_| Error::Malformed("invalid target"))
}

/// What the header fields say about framing and the connection, read from the raw fields
/// (cheaper than looking names up in the map).
#[derive(Clone, Copy, Debug)]
struct Semantics {
    content_length: Option<u64>,
    /// `Some(ends in chunked)` when Transfer-Encoding is present.
    chunked: Option<bool>,
    keep_alive: bool,
    /// `Host` fields (counted up to 2: more is as wrong as 2).
    hosts: u8,
    /// `Some(true)` for a single `Expect: 100-continue`, `Some(false)` for anything else.
    expect_continue: Option<bool>,
}

impl Semantics {
    #[inline(always)]
    fn of(fields: &[httparse::Header<'_>], version: Version) -> Result<Semantics, Error> {
        let mut semantics = Semantics {
            content_length: None,
            chunked: None,
            keep_alive: false,
            hosts: 0,
            expect_continue: None,
        };
        let (mut close, mut keep) = (false, false);
        let mut codings: Vec<&[u8]> = Vec::new();
        let mut has_te = false;
        for field in fields {
            let (name, value) = (field.name.as_bytes(), field.value);
            // The names looked for have distinct lengths: one comparison per field at most.
            let is = |wanted: &[u8]| eq_lowercase(name, wanted);
            match name.len() {
                14 if is(b"content-length") => {
                    for item in value.split(|&b| b == b',') {
                        let n = parse_length(trim(item))?;
                        if semantics.content_length.is_some_and(|m| m != n) {
                            return Err(Error::Malformed("conflicting Content-Length values"));
                        }
                        semantics.content_length = Some(n);
                    }
                }
                17 if is(b"transfer-encoding") => {
                    has_te = true;
                    let items = value.split(|&b| b == b',').map(trim);
                    codings.extend(items.filter(|item| !item.is_empty()));
                }
                10 if is(b"connection") => {
                    for token in value.split(|&b| b == b',').map(trim) {
                        close |= token.eq_ignore_ascii_case(b"close");
                        keep |= token.eq_ignore_ascii_case(b"keep-alive");
                    }
                }
                4 if is(b"host") => semantics.hosts = semantics.hosts.saturating_add(1).min(2),
                6 if is(b"expect") => {
                    let once = semantics.expect_continue.is_none();
                    semantics.expect_continue =
                        Some(once && trim(value).eq_ignore_ascii_case(b"100-continue"));
                }
                _ => {}
            }
        }
        semantics.keep_alive = !close && (version == Version::HTTP_11 || keep);
        if has_te {
            semantics.chunked = Some(transfer_coding(&codings)?);
        }
        Ok(semantics)
    }
}

/// `name == lower` ignoring ASCII case, for a `lower` without uppercase letters (exact for
/// any `name`): 8 bytes at a time, with the case bit of `lower`'s letters masked.
#[inline(always)]
fn eq_lowercase(name: &[u8], lower: &[u8]) -> bool {
    fn word(chunk: &[u8]) -> u64 {
        let mut bytes = [0; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(bytes)
    }
    fn case_bits(lower: &[u8]) -> u64 {
        let mut bits = [0; 8];
        for (bit, b) in bits.iter_mut().zip(lower) {
            *bit = if b.is_ascii_lowercase() { 0x20 } else { 0 };
        }
        u64::from_le_bytes(bits)
    }
    name.len() == lower.len()
        && name
            .chunks(8)
            .zip(lower.chunks(8))
            .all(|(a, b)| word(a) | case_bits(b) == word(b))
}

/// Checks a Transfer-Encoding list: `true` when it ends in `chunked` (applied once, after
/// codings this crate knows), `false` otherwise.
fn transfer_coding(codings: &[&[u8]]) -> Result<bool, Error> {
    let Some((last, before)) = codings.split_last() else {
        return Err(Error::Malformed("empty Transfer-Encoding"));
    };
    if !last.eq_ignore_ascii_case(b"chunked") {
        return Ok(false);
    }
    if before.iter().any(|c| c.eq_ignore_ascii_case(b"chunked")) {
        return Err(Error::Malformed("chunked applied more than once"));
    }
    if !before.is_empty() {
        return Err(Error::UnsupportedTransferCoding);
    }
    Ok(true)
}

/// A Content-Length value: decimal digits only, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Result<u64, Error> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::Malformed("invalid Content-Length"));
    }
    Ok(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Whether `uri` is the origin-form target `/`.
fn is_root(uri: &Uri) -> bool {
    uri.scheme().is_none()
        && uri.authority().is_none()
        && uri
            .path_and_query()
            .is_some_and(|target| target.as_str() == "/")
}

/// Fills the empty map `headers` (a reused one keeps its allocation) with the fields, the
/// values sharing one copy of the head.
fn fill_headers(
    headers: &mut HeaderMap,
    fields: &[httparse::Header<'_>],
    slice: &impl Fn(&[u8]) -> Bytes,
) -> Result<(), Error> {
    make_room(headers, fields.len());
    for field in fields {
        let (name, value) = build_field(field, slice(field.value))?;
        headers.append(name, value);
    }
    Ok(())
}

/// Readies the empty map `headers` for `fields` fields.
#[inline(always)]
fn make_room(headers: &mut HeaderMap, fields: usize) {
    debug_assert!(
        headers.is_empty(),
        "a header map is emptied before it is filled"
    );
    headers.reserve(fields);
}

/// A field's name and value, checked.
#[inline(never)]
fn build_field(
    field: &httparse::Header<'_>,
    value: Bytes,
) -> Result<(HeaderName, HeaderValue), Error> {
    let name = HeaderName::from_bytes(field.name.as_bytes())
        .map_err(|_| Error::Malformed("invalid header name"))?;
    let value = HeaderValue::from_maybe_shared(value)
        .map_err(|_| Error::Malformed("invalid header value"))?;
    Ok((name, value))
}

/// [`fill_headers`] through the `cache` of recent fields (`buf` holds the head).
///
/// Inlined: a frame of its own below the parse's touches more stack lines (cold ones, after
/// the other connections ran).
#[inline(always)]
fn fill_cached(
    headers: &mut HeaderMap,
    fields: &[httparse::Header<'_>],
    buf: &[u8],
    cache: &mut FieldCache,
    slice: &impl Fn(&[u8]) -> Bytes,
) -> Result<(), Error> {
    make_room(headers, fields.len());
    for (i, field) in fields.iter().enumerate() {
        let Some((line, value_at)) = raw_line(buf, field).filter(|_| i < CACHED_FIELDS) else {
            let (name, value) = build_field(field, slice(field.value))?;
            headers.append(name, value);
            continue;
        };
        let name_len = field.name.len();
        let (name, value) = match cache.slots.get(i) {
            Some(CachedField {
                line: cached,
                name_len: n,
                value_at: v,
                parsed: Some(parsed),
            }) if *cached == line && *n == name_len && *v == value_at => parsed.clone(),
            _ => cache.miss(i, field, line, value_at, slice)?,
        };
        headers.append(name, value);
    }
    Ok(())
}

impl FieldCache {
    /// A field not in slot `i` (or not parsed there yet): built, and remembered.
    #[cold]
    #[inline(never)]
    fn miss(
        &mut self,
        i: usize,
        field: &httparse::Header<'_>,
        line: &[u8],
        value_at: usize,
        slice: &impl Fn(&[u8]) -> Bytes,
    ) -> Result<(HeaderName, HeaderValue), Error> {
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, CachedField::default);
        }
        let slot = &mut self.slots[i];
        let name_len = field.name.len();
        if slot.line == line && slot.name_len == name_len && slot.value_at == value_at {
            // Repeated: parsed into a copy of its own (not a slice of this head's shared
            // copy, which the cache would keep alive).
            let parsed = build_field(field, Bytes::copy_from_slice(field.value))?;
            return Ok(slot.parsed.insert(parsed).clone());
        }
        // Seen for the first time here: remembered, not yet parsed into the cache.
        slot.line.clear();
        slot.line.extend_from_slice(line);
        slot.name_len = name_len;
        slot.value_at = value_at;
        slot.parsed = None;
        build_field(field, slice(field.value))
    }
}

impl CachedBlock {
    /// The semantics of the field section of the head of `len` bytes in `buf` (of `version`,
    /// with `fields`), if it is the cached one.
    #[inline(always)]
    fn semantics(
        &self,
        buf: &[u8],
        len: usize,
        fields: &[httparse::Header<'_>],
        version: Version,
    ) -> Option<Semantics> {
        let (parsed, semantics) = self.parsed.as_ref()?;
        let block = field_block(buf, len, fields)?;
        (parsed.len() == fields.len() && self.version == version && *self.bytes == *block)
            .then_some(*semantics)
    }

    /// Whether `headers` holds exactly the cached fields, as [`fill`](Self::fill) would have
    /// left it: the same names and values in the same order, and no others. An in-place
    /// handler's request map comes back holding its request's fields, and a client on a
    /// kept-alive connection usually sends the same again: then the map can stay as it is,
    /// whatever the handler did to it meanwhile (anything it changed shows here).
    ///
    /// Only tried for fields with distinct names: a map lists its values by name, in the
    /// order the names first came, so with a name repeated apart no map lists them in the
    /// head's order, and the comparison would fail every time. A value equal to the cached
    /// one but another copy of it is replaced by a clone of the cached one on the way (the
    /// same bytes: nothing anyone could see); a map found different is filled anew anyway.
    #[inline(always)]
    fn holds(&self, headers: &mut HeaderMap) -> bool {
        let Some((fields, _)) = &self.parsed else {
            return false;
        };
        if !self.distinct || headers.len() != fields.len() {
            return false;
        }
        let mut held = headers.iter_mut();
        for (n, v) in fields {
            let Some((name, value)) = held.next() else {
                return false;
            };
            if name != n || value.is_sensitive() != v.is_sensitive() {
                return false;
            }
            // The same bytes (a clone of the cached value), or equal ones: then the value
            // becomes a clone, so that the next comparison needs no look at the bytes (a map
            // filled from the per-field cache has other copies).
            if value.as_bytes().as_ptr() != v.as_bytes().as_ptr() || value.len() != v.len() {
                if value.as_bytes() != v.as_bytes() {
                    return false;
                }
                *value = v.clone();
            }
        }
        true
    }

    /// Leaves `headers` with exactly the cached fields: as it is if it holds them already
    /// (see [`holds`](Self::holds)), else emptied and filled.
    #[inline(always)]
    fn fill_or_keep(&self, headers: &mut HeaderMap) {
        if !self.holds(headers) {
            if !headers.is_empty() {
                headers.clear();
            }
            self.fill(headers);
        }
    }

    /// Fills the empty map `headers` with the cached fields.
    #[inline(always)]
    fn fill(&self, headers: &mut HeaderMap) {
        if let Some((fields, _)) = &self.parsed {
            make_room(headers, fields.len());
            for (name, value) in fields {
                headers.append(name.clone(), value.clone());
            }
        }
    }

    /// Remembers the field section of the head of `len` bytes in `buf` (of `version`, with
    /// `fields`, which say `semantics`), which was not the cached one: parsed into the cache
    /// if the last head had the same, else kept as bytes.
    #[inline(always)]
    fn remember(
        &mut self,
        buf: &[u8],
        len: usize,
        version: Version,
        fields: &[httparse::Header<'_>],
        semantics: &Semantics,
    ) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        let Some(block) = field_block(buf, len, fields) else {
            return;
        };
        // A parsed section was compared already (`semantics`): this one is another.
        if self.parsed.is_none() && self.version == version && *self.bytes == *block {
            self.misses = 0;
            self.parse(fields, semantics);
            return;
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(block);
        self.version = version;
        if self.parsed.is_some() {
            self.parsed = None;
        }
        if self.misses < BLOCK_MISSES {
            self.misses += 1;
        } else {
            // Some heads passed over; then the next two are looked at (the first compared
            // with this one, the second with the first).
            self.skip = BLOCK_PROBE - 2;
            self.misses = BLOCK_MISSES - 1;
        }
    }

    /// Parses the fields of the section just repeated into the cache.
    #[cold]
    #[inline(never)]
    fn parse(&mut self, fields: &[httparse::Header<'_>], semantics: &Semantics) {
        // Each value a copy of its own: a slice of the head's copy would keep all of it.
        let parsed = fields
            .iter()
            .map(|field| build_field(field, Bytes::copy_from_slice(field.value)))
            .collect::<Result<_, _>>();
        self.parsed = parsed.ok().map(|parsed| (parsed, *semantics));
        self.distinct = self.parsed.as_ref().is_some_and(|(fields, _)| {
            fields
                .iter()
                .enumerate()
                .all(|(i, (name, _))| fields[..i].iter().all(|(n, _)| n != name))
        });
    }
}

/// The field section of the head of `len` bytes at the start of `buf` (from the first
/// field's name to the end of the head), if it has fields and is short enough to cache.
#[inline(always)]
fn field_block<'b>(buf: &'b [u8], len: usize, fields: &[httparse::Header<'_>]) -> Option<&'b [u8]> {
    let start = (fields.first()?.name.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    buf.get(start..len)
        .filter(|block| block.len() <= CACHED_BLOCK)
}

/// The bytes of `buf` from the start of a field's name to the end of its value, and where the
/// value starts in them; `None` for a line too long to cache.
fn raw_line<'b>(buf: &'b [u8], field: &httparse::Header<'_>) -> Option<(&'b [u8], usize)> {
    let base = buf.as_ptr() as usize;
    let name_at = (field.name.as_ptr() as usize).wrapping_sub(base);
    let value_at = (field.value.as_ptr() as usize).wrapping_sub(base);
    let end = value_at.checked_add(field.value.len())?;
    let fits = name_at.checked_add(field.name.len())? <= value_at
        && end <= buf.len()
        && end - name_at <= CACHED_LINE;
    fits.then(|| (&buf[name_at..end], value_at - name_at))
}

/// The length of a parsed request line (CRLF not counted): its method and target are slices
/// of `buf`, followed by a space and the 8 bytes of the version (httparse takes single spaces).
fn request_line_len(buf: &[u8], method: &str, target: &str) -> usize {
    let base = buf.as_ptr() as usize;
    let start = (method.as_ptr() as usize).wrapping_sub(base);
    let end = (target.as_ptr() as usize).wrapping_sub(base) + target.len() + " HTTP/1.1".len();
    debug_assert!(
        end <= buf.len() && buf[end - 9..end].starts_with(b" HTTP/1."),
        "a request line is method SP target SP version"
    );
    end - start
}

/// Checks the length of the start line (after the empty lines a server may skip).
pub(crate) fn check_start_line(buf: &[u8], max: usize, too_long: Error) -> Result<(), Error> {
    // Skip the empty lines exactly as httparse does.
    let mut line = buf;
    loop {
        if let Some(rest) = line.strip_prefix(b"\r\n") {
            line = rest;
        } else if let Some(rest) = line.strip_prefix(b"\n") {
            line = rest;
        } else {
            break;
        }
    }
    let window = &line[..line.len().min(max + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let len = if end > 0 && window[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            if len > max { Err(too_long) } else { Ok(()) }
        }
        None if window.len() >= max + 2 => Err(too_long),
        None => Ok(()),
    }
}

/// `HTTP/x.y` with another version is 505; anything else is 400.
fn version_error(buf: &[u8]) -> Error {
    let line = buf
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty() && *l != b"\r");
    let line = line
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or_default();
    let looks_like_version = |v: &[u8]| {
        v.len() == 8
            && v.starts_with(b"HTTP/")
            && v[5].is_ascii_digit()
            && v[6] == b'.'
            && v[7].is_ascii_digit()
    };
    let request_version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    let response_version = line.split(|&b| b == b' ').next().unwrap_or_default();
    if looks_like_version(request_version) || looks_like_version(response_version) {
        Error::UnsupportedVersion
    } else {
        Error::Malformed("invalid HTTP version")
    }
}

/// Decides what a parse error in `buf` means. It counts only if it lies in the complete lines
/// within the head size limit (`reparse` parses such a prefix): that is what a head arriving
/// in pieces, re-parsed as lines end, would show, so any split gives the same outcome. An
/// error further on is a head too large, or not decided yet.
/// httparse's verdict on a head parsed with `slots` header slots: `Ok(len)` for a complete
/// head within the size limit, else what the parse comes to: `Ok(None)` while incomplete,
/// `retry` (the parse again with room for `limits.max_headers` fields) when the slots ran out
/// below the limit, or the error.
fn head_len<T>(
    parsed: httparse::Result<usize>,
    buf: &[u8],
    limits: &Limits,
    slots: usize,
    retry: impl FnOnce() -> Result<Option<T>, Error>,
    reparse: impl Fn(&[u8]) -> Option<httparse::Error>,
) -> Result<usize, Result<Option<T>, Error>> {
    match parsed {
        Ok(httparse::Status::Complete(len)) if len > limits.max_head_size => {
            Err(Err(Error::HeadTooLarge))
        }
        Ok(httparse::Status::Complete(len)) => Ok(len),
        Err(httparse::Error::TooManyHeaders) if slots < limits.max_headers => Err(retry()),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_size => {
            Err(Err(Error::HeadTooLarge))
        }
        Ok(httparse::Status::Partial) => Err(Ok(None)),
        Err(_) => Err(settle(buf, limits, reparse)),
    }
}

/// Header slots on the heap, as many as the limit allows.
fn heap_slots<'b>(limits: &Limits) -> Vec<Slot<'b>> {
    let mut storage = Vec::new();
    storage.resize_with(limits.max_headers, MaybeUninit::uninit);
    storage
}

fn settle<T>(
    buf: &[u8],
    limits: &Limits,
    reparse: impl Fn(&[u8]) -> Option<httparse::Error>,
) -> Result<Option<T>, Error> {
    let window = &buf[..buf.len().min(limits.max_head_size)];
    let lines = window
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    match reparse(&buf[..lines]) {
        Some(httparse::Error::Version) => Err(version_error(buf)),
        Some(httparse::Error::TooManyHeaders) => Err(Error::HeadTooLarge),
        Some(err) => Err(Error::Malformed(describe(err))),
        None if buf.len() > limits.max_head_size => Err(Error::HeadTooLarge),
        None => Ok(None),
    }
}

fn describe(err: httparse::Error) -> &'static str {
    match err {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid token in the request line",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Where the target and header values of a head are copied to: one shared copy of the whole
/// head when it has several fields, else a copy of each part (a shared copy costs an extra
/// allocation when first sliced). The shared copy is made when first needed: a head whose
/// fields all come from the [`FieldCache`] needs none.
struct Shared {
    len: usize,
    share: bool,
    copy: std::cell::OnceCell<Bytes>,
}

/// Heads with at least this many fields share one copy.
const SHARE_FROM: usize = 3;

impl Shared {
    fn new(len: usize, fields: usize) -> Shared {
        Shared {
            len,
            share: fields >= SHARE_FROM,
            copy: std::cell::OnceCell::new(),
        }
    }

    /// `part` (a sub-slice of `original`) as `Bytes`.
    fn slice(&self, original: &[u8], part: &[u8]) -> Bytes {
        if !self.share {
            return Bytes::copy_from_slice(part);
        }
        let shared = self
            .copy
            .get_or_init(|| Bytes::copy_from_slice(&original[..self.len]));
        let start = (part.as_ptr() as usize).wrapping_sub(original.as_ptr() as usize);
        if part.is_empty() || start >= shared.len() {
            return Bytes::new();
        }
        shared.slice(start..start + part.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_lowercase_is_eq_ignore_ascii_case() {
        for lower in [
            "host",
            "expect",
            "connection",
            "content-length",
            "transfer-encoding",
            "x-1",
        ] {
            let lower = lower.as_bytes();
            for i in 0..lower.len() {
                for byte in 0..=255u8 {
                    let mut name = lower.to_vec();
                    name[i] = byte;
                    assert_eq!(
                        eq_lowercase(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{:?} vs {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(lower)
                    );
                }
            }
            let upper = lower.to_ascii_uppercase();
            assert!(eq_lowercase(&upper, lower));
            assert!(!eq_lowercase(&upper[1..], lower));
            assert!(!eq_lowercase(b"", lower));
        }
    }
}
