//! [`Client`]: an HTTP/1.1 client on one connection at a time, with pipelining and reuse;
//! [`get`] for one request.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use gruvi_stream::{Address, Connection, TcpStream, UnixStream};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, Version};

use crate::body::{Body, Kind, OutFraming, write_body};
use crate::encode;
use crate::head::{Framing, ResponseHead};
use crate::incoming::Incoming;
use crate::limits::Limits;
use crate::parser::{Event, Parser};
use crate::url::Target;
use crate::wire::{Step, Wire};

/// A client's settings; every one has a default.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Size limits of responses (heads and bodies).
    pub limits: Limits,
    /// How long connecting may take (default 30 s).
    pub connect_timeout: Duration,
    /// How long a read of a response head or body may wait for bytes, and a send for room
    /// (default 60 s).
    pub timeout: Duration,
    /// The `User-Agent` sent when a request has none (default `gruvi-http`; `None`: no header).
    pub user_agent: Option<String>,
    /// The most bytes of an unread response body skipped to reach the next response (default
    /// 1 MiB). With a longer rest the connection is closed instead: the next request goes on
    /// a new connection, and a response already requested behind it (pipelining) is an error.
    pub max_discard: u64,
    /// The TLS settings for `https` ([`Client::connect_tls`], [`Client::connect_target`]);
    /// default `None`: [`tls_client_builder`](crate::tls_client_builder)'s (the system trust
    /// store, ALPN `http/1.1`). The server's name is verified and sent as SNI.
    pub tls: Option<gruvi_tls::ClientConfig>,
    /// How long a request with `Expect: 100-continue` and a body waits for the server's
    /// `100 Continue` before sending the body anyway (default 1 s, as curl; RFC 9110 10.1.1).
    pub continue_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
            user_agent: Some("gruvi-http".to_owned()),
            max_discard: 1024 * 1024,
            tls: None,
            continue_timeout: Duration::from_secs(1),
        }
    }
}

/// An HTTP/1.1 client (Gruvi's `HttpClient`): one connection, reused while the server keeps
/// it open, with requests pipelined if the caller sends several before reading.
///
/// [`request`](Self::request) sends a request and returns the response once its head is in;
/// the body ([`Incoming`]) streams in as it is read. [`send_request`](Self::send_request) and
/// [`read_response`](Self::read_response) do the two halves apart, for pipelining; responses
/// come in request order. Reading a response skips what is left of the previous body.
/// Interim (1xx) responses are skipped; a response to HEAD has no body; a body cut short by
/// the connection's end is an `UnexpectedEof` error.
///
/// A request with `Expect: 100-continue` and a body sends its head, then waits for the
/// server's `100 Continue` (at most [`ClientConfig::continue_timeout`]) before the body; a
/// final answer that comes first (a 401, 413 or 417, say) is the response, the body is never
/// sent, and the connection is not reused. With other requests in flight the body goes out at
/// once (their answers come first).
///
/// A request's body is bytes (sent with a `Content-Length`) or a reader or writer function
/// (sent chunked unless the request's headers give a `Content-Length`). `Host` and
/// `User-Agent` are added when missing. When the server closed the connection, the next
/// request connects again (when nothing is in flight), with TLS again for HTTPS
/// ([`connect_tls`](Self::connect_tls), [`connect_target`](Self::connect_target)).
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use gruvi_http::{Body, Client, Server};
/// use gruvi_http::http::{Request, Response};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let server = Server::new(|_| Response::new(Body::from("pong")));
///     server.listen(&"127.0.0.1:0".parse()?)?;
///     let client = Client::new();
///     client.connect(&server.addresses()[0])?;
///     for _ in 0..2 {
///         let request = Request::get("/ping").body(Body::empty()).unwrap();
///         let mut response = client.request(request)?;
///         let mut text = String::new();
///         response.body_mut().read_to_string(&mut text)?;
///         assert_eq!(text, "pong");
///     }
///     client.close();
///     server.close()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Client {
    config: ClientConfig,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// Where to connect again.
    address: Option<Address>,
    /// The default `Host`.
    host: Option<String>,
    /// The name to verify the server as, for TLS; `None`: plain.
    server_name: Option<String>,
    conn: Option<Rc<ClientConn>>,
}

struct ClientConn {
    wire: Rc<Wire>,
    /// The methods of the requests sent and not yet answered, in order.
    in_flight: RefCell<VecDeque<Method>>,
    /// The server may take another request on this connection.
    reusable: std::cell::Cell<bool>,
    /// A final response that came while a request waited for `100 Continue` (its body was
    /// not sent): the answer `read_response` returns next.
    early: RefCell<Option<Box<ResponseHead>>>,
}

/// How a wait for `100 Continue` ended.
enum Continue {
    /// `100 Continue` came, the wait timed out, or the server closed: send the body.
    Send,
    /// A final response came first: the body is not sent.
    Answered(Box<ResponseHead>),
}

impl Client {
    /// A client with the default [`ClientConfig`].
    pub fn new() -> Client {
        Client::with_config(ClientConfig::default())
    }

    /// A client with its own settings.
    pub fn with_config(config: ClientConfig) -> Client {
        Client {
            config,
            state: RefCell::new(State::default()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Connects to `addr` (a TCP host and port, or a Unix socket path), closing any current
    /// connection.
    ///
    /// # Switchpoint
    ///
    /// Blocks for the lookup and the connection.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused`, `NotFound`, `TimedOut` after the connect timeout.
    pub fn connect(&self, addr: &Address) -> io::Result<()> {
        self.connect_as(addr, default_host(addr), None)
    }

    /// Connects to `addr` with TLS (HTTPS), verifying the server as `server_name` (a host
    /// name, also sent as SNI, or an IP address), with the config's [`tls`](ClientConfig::tls)
    /// settings; closes any current connection. The client connects again the same way when
    /// the server closed the connection.
    ///
    /// # Switchpoint
    ///
    /// Blocks for the lookup, the connection and the TLS handshake.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), and the handshake's: `InvalidData` with a
    /// [`gruvi_tls::TlsError`] inside naming the cause (an unknown CA, a name mismatch...),
    /// `TimedOut` after the TLS handshake timeout.
    pub fn connect_tls(&self, addr: &Address, server_name: &str) -> io::Result<()> {
        self.connect_as(addr, default_host(addr), Some(server_name.to_owned()))
    }

    /// Connects to where `target` (a parsed URL) points: with TLS, verifying the URL's host,
    /// for `https`; with the URL's `Host` as the default one.
    ///
    /// # Switchpoint
    ///
    /// As [`connect_tls`](Self::connect_tls).
    ///
    /// # Errors
    ///
    /// As [`connect_tls`](Self::connect_tls).
    pub fn connect_target(&self, target: &Target) -> io::Result<()> {
        let server_name = match (&target.address, target.tls) {
            (Address::Tcp(host, _), true) => Some(host.clone()),
            (Address::Unix(_), true) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "https over a Unix socket names no host to verify: use connect_tls",
                ));
            }
            (_, false) => None,
        };
        self.connect_as(&target.address, target.host.clone(), server_name)
    }

    fn connect_as(
        &self,
        addr: &Address,
        host: String,
        server_name: Option<String>,
    ) -> io::Result<()> {
        self.close();
        let tls = match &server_name {
            Some(name) => Some((crate::tls::client_config(self.config.tls.as_ref())?, name)),
            None => None,
        };
        let tls = tls.as_ref().map(|(config, name)| (config, name.as_str()));
        let conn = open(addr, self.config.connect_timeout, tls)?;
        let mut state = self.state.borrow_mut();
        state.address = Some(addr.clone());
        state.host = Some(host);
        state.server_name = server_name;
        drop(state);
        self.use_connection(conn);
        Ok(())
    }

    /// Uses `conn`, connected elsewhere, for the next requests, with `host` as their default
    /// `Host`: any [`Connection`], such as a TLS stream set up with settings of its own
    /// ([`connect_tls`](Self::connect_tls) covers the usual HTTPS case). The client does not
    /// reconnect such a connection by itself.
    pub fn connect_with(&self, conn: Rc<dyn Connection>, host: &str) {
        self.close();
        let mut state = self.state.borrow_mut();
        state.address = None;
        state.server_name = None;
        state.host = Some(host.to_owned());
        drop(state);
        self.use_connection(conn);
    }

    fn use_connection(&self, conn: Rc<dyn Connection>) {
        let wire = Rc::new(Wire::new(conn, Parser::responses(self.config.limits)));
        wire.body_timeout.set(Some(self.config.timeout));
        let _ = wire.conn.set_write_timeout(Some(self.config.timeout));
        self.state.borrow_mut().conn = Some(Rc::new(ClientConn {
            wire,
            in_flight: RefCell::new(VecDeque::new()),
            reusable: std::cell::Cell::new(true),
            early: RefCell::new(None),
        }));
    }

    /// Closes the connection, if any. Never switches.
    pub fn close(&self) {
        if let Some(conn) = self.state.borrow_mut().conn.take() {
            conn.wire.conn.close();
        }
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.state.borrow().conn.is_some()
    }

    /// Sends `request` and waits for the head of its response.
    ///
    /// # Switchpoint
    ///
    /// Blocks while sending and until the response head arrived.
    ///
    /// # Errors
    ///
    /// As [`send_request`](Self::send_request) and [`read_response`](Self::read_response).
    pub fn request(&self, request: Request<Body>) -> io::Result<Response<Incoming>> {
        self.send_request(request)?;
        self.read_response()
    }

    /// Sends `request` without waiting for its response (pipelining).
    ///
    /// # Switchpoint
    ///
    /// Blocks while the connection's send queue is full, to reconnect, and to skip what is
    /// left of an unread response body (at most [`ClientConfig::max_discard`] bytes; a longer
    /// rest of known length means a new connection at once).
    ///
    /// # Errors
    ///
    /// `NotConnected` without a connection, the connection's errors, `InvalidInput` for a body
    /// of unknown length on HTTP/1.0, or a reader body failing.
    pub fn send_request(&self, request: Request<Body>) -> io::Result<()> {
        let conn = self.connection()?;
        let (parts, body) = request.into_parts();
        let target = match parts.uri.path_and_query() {
            Some(pq) => pq.as_str(),
            None => "/",
        };
        let target =
            if parts.method == Method::OPTIONS && target == "/" && parts.uri.path().is_empty() {
                "*"
            } else {
                target
            };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let framing = match (&body.kind, declared) {
            (Kind::Empty, _) if sends_no_empty_length(&parts.method) => OutFraming::Suppressed,
            (Kind::Empty, _) => OutFraming::Length(0),
            (Kind::Bytes(bytes), _) => OutFraming::Length(bytes.len() as u64),
            (_, Some(n)) => OutFraming::Length(n),
            (_, None) if parts.version == Version::HTTP_10 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a body of unknown length needs HTTP/1.1 (chunked) or a Content-Length",
                ));
            }
            (_, None) => OutFraming::Chunked,
        };
        let host = match parts.uri.authority() {
            Some(authority) => Some(authority.as_str().to_owned()),
            None => self.state.borrow().host.clone(),
        };
        let wire = &conn.wire;
        wire.with_out(|out| {
            encode::request_line(out, &parts.method, target, parts.version);
            let managed = |name: &HeaderName| {
                name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING
            };
            if !parts.headers.contains_key(header::HOST)
                && let Some(host) = &host
            {
                encode::field(out, b"host", host.as_bytes());
            }
            encode::fields(out, &parts.headers, managed);
            if let Some(agent) = &self.config.user_agent
                && !parts.headers.contains_key(header::USER_AGENT)
            {
                encode::field(out, b"user-agent", agent.as_bytes());
            }
            match framing {
                OutFraming::Length(n) => encode::content_length(out, n),
                OutFraming::Chunked => encode::field(out, b"transfer-encoding", b"chunked"),
                OutFraming::Suppressed | OutFraming::Close => {}
            }
            out.extend_from_slice(b"\r\n");
        });
        conn.in_flight.borrow_mut().push_back(parts.method.clone());
        let wait_for_continue = !matches!(body.kind, Kind::Empty)
            && expects_continue(&parts.headers)
            && conn.in_flight.borrow().len() == 1
            && !wire.parser.borrow().in_body();
        let sent = (|| {
            if wait_for_continue {
                wire.flush()?;
                if let Continue::Answered(head) = self.await_continue(&conn, &parts.method)? {
                    // The server answered without the body: the framing the head announced
                    // is broken, so the connection ends after this answer.
                    conn.reusable.set(false);
                    *conn.early.borrow_mut() = Some(head);
                    return Ok(());
                }
            }
            write_body(wire, body, framing)?;
            wire.flush()
        })();
        if sent.is_err() {
            // The request may be half sent: nothing more can go on this connection.
            self.close();
        }
        sent
    }

    /// Waits for the head of the next response, in request order; its body streams in as it
    /// is read. What is left of the previous response's body is skipped first.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the head arrived.
    ///
    /// # Errors
    ///
    /// `NotConnected` with no request in flight, `TimedOut` after the client's timeout,
    /// `UnexpectedEof` if the server closed first, `InvalidData` with an [`Error`](crate::Error)
    /// for a response that breaks the protocol or a limit (the connection is closed).
    pub fn read_response(&self) -> io::Result<Response<Incoming>> {
        let conn = self.state.borrow().conn.clone().ok_or_else(not_connected)?;
        let result = self.read_response_on(&conn);
        if result.is_err() {
            self.close();
        }
        result
    }

    fn read_response_on(&self, conn: &Rc<ClientConn>) -> io::Result<Response<Incoming>> {
        let wire = &conn.wire;
        let Some(method) = conn.in_flight.borrow().front().cloned() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no request in flight",
            ));
        };
        if let Some(head) = conn.early.borrow_mut().take() {
            return Ok(final_response(conn, *head));
        }
        // Skip what is left of the previous body.
        if wire.parser.borrow().in_body() {
            let mut rest = Incoming::new(wire.clone(), true);
            if !rest.discard(self.config.max_discard)? {
                return Err(io::Error::other(
                    "the previous response body is too long to skip",
                ));
            }
        }
        wire.parser.borrow_mut().set_request_method(method);
        loop {
            match next_head(wire)? {
                Some(head) if head.response.status().is_informational() => continue,
                Some(head) => return Ok(final_response(conn, *head)),
                None => {}
            }
            if !wire.fill(Some(self.config.timeout))? {
                let _ = wire.parser.borrow_mut().finish();
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection before responding",
                ));
            }
        }
    }

    /// Waits for `100 Continue` to a request with method `method` whose head was sent, within
    /// the continue timeout; interim answers other than 100 are skipped.
    ///
    /// Switchpoint: blocks until an answer, the timeout or the end of the connection.
    fn await_continue(&self, conn: &ClientConn, method: &Method) -> io::Result<Continue> {
        let wire = &conn.wire;
        wire.parser.borrow_mut().set_request_method(method.clone());
        let deadline = fiber_core::deadline_after(self.config.continue_timeout);
        loop {
            match next_head(wire)? {
                Some(head) if head.response.status() == http::StatusCode::CONTINUE => {
                    return Ok(Continue::Send);
                }
                Some(head) if head.response.status().is_informational() => {}
                Some(head) => return Ok(Continue::Answered(head)),
                None => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(Continue::Send);
                    }
                    match wire.fill(Some(left)) {
                        Ok(true) => {}
                        // Sending will fail, or the answer will tell.
                        Ok(false) => return Ok(Continue::Send),
                        Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                            return Ok(Continue::Send);
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }

    /// The connection to send on: the current one, or a new one if the server closed it and
    /// nothing is in flight.
    fn connection(&self) -> io::Result<Rc<ClientConn>> {
        let current = self.state.borrow().conn.clone();
        if let Some(conn) = current {
            let idle = conn.in_flight.borrow().is_empty();
            if idle && conn.reusable.get() && conn.wire.parser.borrow().in_body() {
                // The last response's body was left unread: skipped if it is short enough
                // (`max_discard`), else this request goes on a new connection rather than
                // failing on the old one. A longer rest of known length is not read at all.
                let known = conn.wire.parser.borrow().body_known_remaining();
                let skip = match known {
                    Some(left) if left > self.config.max_discard => false,
                    _ => {
                        let mut rest = Incoming::new(conn.wire.clone(), true);
                        matches!(rest.discard(self.config.max_discard), Ok(true))
                    }
                };
                if !skip {
                    conn.reusable.set(false);
                }
            }
            if conn.reusable.get() || !idle {
                return Ok(conn);
            }
            self.close();
        }
        let (address, server_name) = {
            let state = self.state.borrow();
            (state.address.clone(), state.server_name.clone())
        };
        match address {
            Some(addr) => {
                let tls = match &server_name {
                    Some(name) => {
                        Some((crate::tls::client_config(self.config.tls.as_ref())?, name))
                    }
                    None => None,
                };
                let tls = tls.as_ref().map(|(config, name)| (config, name.as_str()));
                let conn = open(&addr, self.config.connect_timeout, tls)?;
                self.use_connection(conn);
                self.state.borrow().conn.clone().ok_or_else(not_connected)
            }
            None => Err(not_connected()),
        }
    }
}

/// Parses the next response head from the buffered bytes: `None` while more are needed. An
/// interim (1xx) response has no body: its end is stepped over.
fn next_head(wire: &Wire) -> io::Result<Option<Box<ResponseHead>>> {
    let step = wire.parse(0, |event| match event {
        Event::Response(head) => Some(head),
        _ => None,
    });
    match step.map_err(io::Error::from)? {
        Step::Got(Some(head)) => {
            if head.response.status().is_informational() {
                let _ = wire.parse(0, |_| ());
            }
            Ok(Some(head))
        }
        Step::Got(None) => Err(io::Error::other("a response ended unexpectedly")),
        Step::NeedMore => Ok(None),
    }
}

/// Turns the head of a final response into the response, its body to be read from the
/// connection.
fn final_response(conn: &ClientConn, head: ResponseHead) -> Response<Incoming> {
    let wire = &conn.wire;
    conn.in_flight.borrow_mut().pop_front();
    conn.reusable.set(conn.reusable.get() && head.keep_alive);
    wire.message.set(wire.message.get() + 1);
    let has_body = head.framing != Framing::Length(0);
    if !has_body {
        let _ = wire.parse(0, |_| ());
    }
    let (parts, ()) = head.response.into_parts();
    Response::from_parts(parts, Incoming::new(wire.clone(), has_body))
}

/// Whether a request's `Expect` field asks for `100 Continue`.
fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::EXPECT).iter().any(|v| {
        v.as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"100-continue")
    })
}

/// Methods that send no `Content-Length: 0` for an empty body.
fn sends_no_empty_length(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the client is not connected")
}

/// The default `Host` for a connection to `addr`.
fn default_host(addr: &Address) -> String {
    match addr {
        Address::Tcp(host, port) if host.contains(':') => format!("[{host}]:{port}"),
        Address::Tcp(host, port) => format!("{host}:{port}"),
        Address::Unix(_) => "localhost".to_owned(),
    }
}

/// Connects to `addr` within `timeout`, then, with `tls`, does the TLS handshake (within the
/// TLS config's handshake timeout), verifying the server as the name given.
fn open(
    addr: &Address,
    timeout: Duration,
    tls: Option<(&gruvi_tls::ClientConfig, &str)>,
) -> io::Result<Rc<dyn Connection>> {
    let attempt = || -> io::Result<Rc<dyn Connection>> {
        match addr {
            Address::Tcp(host, port) => {
                let conn = TcpStream::connect((host.as_str(), *port))?;
                let _ = conn.set_nodelay(true);
                Ok(Rc::new(conn))
            }
            Address::Unix(path) => Ok(Rc::new(UnixStream::connect(path)?)),
        }
    };
    let conn = match fiber_core::timeout(timeout, attempt) {
        Ok(result) => result?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    };
    match tls {
        None => Ok(conn),
        Some((config, server_name)) => Ok(Rc::new(gruvi_tls::TlsStream::connect(
            conn,
            config,
            server_name,
        )?)),
    }
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// Fetches `url` with a GET on a new connection and returns the response with its whole body
/// (at most [`Limits::max_body_size`] bytes).
///
/// # Switchpoint
///
/// Blocks until the whole response arrived.
///
/// # Errors
///
/// `InvalidInput` for a bad URL, the errors of [`Client::connect_target`] (for `https`, the
/// TLS handshake's, with their cause) and of [`Client::request`].
///
/// # Examples
///
/// ```
/// use gruvi_http::{Body, Server, get};
/// use gruvi_http::http::Response;
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let server = Server::new(|request| Response::new(Body::from(request.uri().to_string())));
///     server.listen(&"127.0.0.1:0".parse()?)?;
///     let response = get(&format!("http://{}/path?q=1", server.addresses()[0]))?;
///     assert_eq!(response.body(), b"/path?q=1");
///     server.close()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn get(url: &str) -> io::Result<Response<Vec<u8>>> {
    let target = Target::parse(url)?;
    let client = Client::new();
    client.connect_target(&target)?;
    let mut request = Request::get(target.path.as_str())
        .body(Body::empty())
        .map_err(io::Error::other)?;
    let host = HeaderValue::from_str(&target.host).map_err(io::Error::other)?;
    request.headers_mut().insert(header::HOST, host);
    if let Some(auth) = &target.authorization {
        let value = HeaderValue::from_str(auth).map_err(io::Error::other)?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let response = client.request(request)?;
    let (parts, mut body) = response.into_parts();
    let limit = usize::try_from(client.config.limits.max_body_size).unwrap_or(usize::MAX);
    let bytes = body.read_to_vec(limit)?;
    client.close();
    Ok(Response::from_parts(parts, bytes))
}
