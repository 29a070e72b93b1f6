//! [`TlsStream`]: TLS over any [`Connection`], itself a [`Connection`].

use std::cell::{Cell, RefCell};
use std::io;

use fiber_core::{Event, Lock};
use gruvi_stream::Connection;
use openssl::ssl::SslRef;
use openssl::x509::X509;

use crate::config::{ClientConfig, Limits, ServerConfig};
use crate::error::TlsError;
use crate::pipe::{Fed, PipeState, SslPipe};

mod connection;

/// A drained plaintext buffer up to this size stays with its stream; a larger one goes to the
/// thread's spare, so an idle stream holds no big buffer.
const KEEP: usize = 4096;

thread_local! {
    /// A large drained plaintext buffer, for the next stream on this thread that receives.
    static SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Empties a drained plaintext buffer, handing a large one to the thread's spare (if larger
/// than the spare there).
fn release(plain: &mut Vec<u8>) {
    plain.clear();
    if plain.capacity() > KEEP {
        let buf = std::mem::take(plain);
        SPARE.with_borrow_mut(|spare| {
            if spare.capacity() < buf.capacity() {
                *spare = buf;
            }
        });
    }
}

/// Plaintext is encrypted and sent in pieces of this size, so the connection's write flow
/// control applies to a large write as it goes. Not a limit (a write of any size goes out
/// piece by piece, and the connection's own send queue bounds what waits), so not configurable.
const SEND_CHUNK: usize = 64 * 1024;

/// A TLS session over a byte connection (TCP, a Unix socket, any [`Connection`]): Gruvi's
/// `SslTransport`. It is itself a [`Connection`], so a [`gruvi_stream::Stream`],
/// [`gruvi_stream::Server`] handler or any protocol written against `dyn Connection` works over
/// it unchanged; `Read` and `Write` are implemented on `TlsStream` and `&TlsStream`.
///
/// One fiber can read while another writes: the OpenSSL session ([`SslPipe`]) is borrowed only
/// for non-blocking calls, never while waiting for the network. Ciphertext goes out in the
/// order the session made it, under a lock that only senders take (a reader that produced a
/// reply, such as a KeyUpdate response, sends it when no writer is busy, or leaves it to the
/// writer, which sends it before letting go).
///
/// Reading: application data, then end of stream at the peer's `close_notify`; a peer that
/// closes the connection without one is reported as [`TlsError::Truncated`]
/// (`io::ErrorKind::UnexpectedEof`), not as end of stream. [`shutdown_write`] sends
/// `close_notify` (TLS has no other half-close); [`unwrap`](Self::unwrap) ends the session
/// and goes on in plaintext, and [`start_tls`](Self::start_tls) starts a new one (STARTTLS).
/// Closing or dropping the stream sends no `close_notify`: shut down the writing side first
/// for a clean end ([`gruvi_tls::server`](crate::server) does it when a handler returns).
///
/// [`shutdown_write`]: Connection::shutdown_write
///
/// # Examples
///
/// ```no_run
/// use std::io::{Read, Write};
/// use gruvi_stream::TcpStream;
/// use gruvi_tls::{ClientConfig, TlsStream};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let config = ClientConfig::builder().build()?;
///     let tcp = TcpStream::connect("example.com:443")?;
///     let mut tls = TlsStream::connect(tcp, &config, "example.com")?;
///     tls.write_all(b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")?;
///     let mut response = Vec::new();
///     tls.read_to_end(&mut response)?;
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TlsStream {
    inner: Box<dyn Connection>,
    pipe: RefCell<SslPipe>,
    /// Received application data; `plain[pos..]` is unread.
    plain: RefCell<Vec<u8>>,
    pos: Cell<usize>,
    /// The peer's data ended: its `close_notify`, or end of stream while unwrapped.
    eof: Cell<bool>,
    /// This side sent `close_notify` (or shut down its plaintext side): writes fail.
    write_closed: Cell<bool>,
    /// The session failed: every later read and write reports it.
    failed: RefCell<Option<TlsError>>,
    /// Sending failed for good (the peer reset the connection...): every later write reports
    /// the same kind of error at once, and nothing more is encrypted or kept.
    write_error: RefCell<Option<(io::ErrorKind, String)>>,
    /// Taken by whoever sends ciphertext, so that it goes out in order.
    send_lock: Lock,
    /// Set while no handshake runs; reads and writes wait for it.
    ready: Event,
    /// The config's limits (the handshake timeout for [`start_tls`](Self::start_tls)...).
    limits: Limits,
}

impl TlsStream {
    fn new(conn: impl Connection, pipe: SslPipe, limits: Limits) -> Self {
        let ready = Event::new();
        ready.set();
        TlsStream {
            inner: Box::new(conn),
            pipe: RefCell::new(pipe),
            plain: RefCell::new(Vec::new()),
            pos: Cell::new(0),
            eof: Cell::new(false),
            write_closed: Cell::new(false),
            failed: RefCell::new(None),
            write_error: RefCell::new(None),
            send_lock: Lock::new(),
            ready,
            limits,
        }
    }

    /// Starts TLS as the client on `conn` and returns once the handshake is done, the server
    /// verified as `server_name` (a host name, also sent as SNI, or an IP address).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the handshake, at most the config's handshake timeout.
    ///
    /// # Errors
    ///
    /// [`TlsError::Verification`] (expired, wrong host, unknown CA), [`TlsError::Protocol`],
    /// [`TlsError::HandshakeTimeout`], the connection's errors.
    pub fn connect(
        conn: impl Connection,
        config: &ClientConfig,
        server_name: &str,
    ) -> io::Result<TlsStream> {
        let tls = TlsStream::client_unwrapped(conn, config, server_name);
        tls.start_tls()?;
        Ok(tls)
    }

    /// Starts TLS as the server on `conn` and returns once the handshake is done.
    ///
    /// # Switchpoint
    ///
    /// Blocks for the handshake, at most the config's handshake timeout.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); a client that says nothing gets
    /// [`TlsError::HandshakeTimeout`].
    pub fn accept(conn: impl Connection, config: &ServerConfig) -> io::Result<TlsStream> {
        let tls = TlsStream::server_unwrapped(conn, config);
        tls.start_tls()?;
        Ok(tls)
    }

    /// A client stream in plaintext until [`start_tls`](Self::start_tls) (STARTTLS).
    pub fn client_unwrapped(
        conn: impl Connection,
        config: &ClientConfig,
        server_name: &str,
    ) -> TlsStream {
        let pipe = SslPipe::client(config, server_name);
        TlsStream::new(conn, pipe, config.limits)
    }

    /// A server stream in plaintext until [`start_tls`](Self::start_tls) (STARTTLS).
    pub fn server_unwrapped(conn: impl Connection, config: &ServerConfig) -> TlsStream {
        TlsStream::new(conn, SslPipe::server(config), config.limits)
    }

    /// The connection underneath.
    pub fn get_ref(&self) -> &dyn Connection {
        &*self.inner
    }

    /// Whether a TLS session is up (or being set up or shut down).
    pub fn is_wrapped(&self) -> bool {
        self.pipe.borrow().state() != PipeState::Unwrapped
    }

    /// Calls `f` with the OpenSSL session, if there is one, for what the accessors here do not
    /// cover (channel bindings, session details). `f` must not use this stream.
    ///
    /// # Panics
    ///
    /// If `f` uses this stream (the session is borrowed meanwhile).
    pub fn with_ssl<R>(&self, f: impl FnOnce(Option<&SslRef>) -> R) -> R {
        f(self.pipe.borrow().ssl())
    }

    /// The ALPN protocol agreed on.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.with_ssl(|ssl| ssl?.selected_alpn_protocol().map(<[u8]>::to_vec))
    }

    /// The peer's certificate.
    pub fn peer_certificate(&self) -> Option<X509> {
        self.with_ssl(|ssl| ssl?.peer_certificate())
    }

    /// How many bytes of ciphertext wait to be sent: left by a write that timed out, or a
    /// reader's output (KeyUpdate responses) waiting for a writer. At most about one write's
    /// worth plus the config's reader output limit; nothing once sending failed for good.
    pub fn unsent_len(&self) -> usize {
        self.pipe.borrow().ssldata_len()
    }

    /// The protocol version in use, e.g. `"TLSv1.3"`.
    pub fn protocol_version(&self) -> Option<&'static str> {
        self.with_ssl(|ssl| ssl.map(SslRef::version_str))
    }

    /// The cipher suite in use, e.g. `"TLS_AES_256_GCM_SHA384"`.
    pub fn cipher(&self) -> Option<String> {
        self.with_ssl(|ssl| Some(ssl?.current_cipher()?.name().to_owned()))
    }

    /// The server name the client asked for (SNI), on the server side.
    pub fn server_name(&self) -> Option<String> {
        self.with_ssl(|ssl| {
            ssl?.servername(openssl::ssl::NameType::HOST_NAME)
                .map(str::to_owned)
        })
    }

    /// Starts a TLS session on a plaintext stream and waits until its handshake is done.
    /// Bytes already received and not read are taken as the peer's first TLS bytes. No other
    /// fiber may use the stream meanwhile (their reads and writes wait for it).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the handshake, at most the config's handshake timeout.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`TlsError::State`] if a session is up already.
    pub fn start_tls(&self) -> io::Result<()> {
        self.check_failed()?;
        if self.is_wrapped() {
            return Err(TlsError::State("handshake in progress or completed").into());
        }
        self.ready.clear();
        let result = match self.limits.handshake_timeout {
            None => self.handshake(),
            Some(limit) => match fiber_core::timeout(limit, || self.handshake()) {
                Ok(result) => result,
                Err(fiber_core::Error::TimedOut) => Err(TlsError::HandshakeTimeout(limit).into()),
                Err(err) => Err(err.into()),
            },
        };
        if let Err(err) = &result {
            let cause = TlsError::from_io(err).cloned().unwrap_or_else(|| {
                TlsError::Protocol(format!("the handshake was interrupted: {err}"))
            });
            if self.pipe.borrow().is_server() {
                self.log_failed_handshake(&cause);
            }
            self.failed.borrow_mut().get_or_insert(cause);
        }
        self.ready.set();
        result
    }

    /// Reports a failed server-side handshake: a warning when the client broke the protocol or
    /// its certificate did not verify, a debug message when it went away or said nothing.
    fn log_failed_handshake(&self, cause: &TlsError) {
        let peer = match self.inner.peer_address() {
            Ok(addr) => addr.to_string(),
            Err(err) => format!("an unknown peer ({err})"),
        };
        let level = match cause {
            TlsError::Verification { .. } | TlsError::Protocol(_) | TlsError::State(_) => {
                log::Level::Warn
            }
            _ => log::Level::Debug,
        };
        log::log!(level, "TLS handshake with {peer} failed: {cause}");
    }

    fn handshake(&self) -> io::Result<()> {
        {
            let mut pipe = self.pipe.borrow_mut();
            pipe.do_handshake()?;
            // Bytes received in plaintext and not read yet belong to the handshake.
            let early = self.take_unread();
            if !early.is_empty() {
                let mut plain = self.plain.borrow_mut();
                let fed = pipe.feed_ssldata(&early, &mut plain);
                drop((plain, pipe));
                self.outcome(fed)?;
            }
        }
        self.eof.set(false);
        self.write_closed.set(false);
        loop {
            self.send_pending()?;
            if self.pipe.borrow().state() != PipeState::Handshake {
                return Ok(());
            }
            self.receive()?;
        }
    }

    /// Ends the TLS session (`close_notify` both ways) and goes on in plaintext on the same
    /// connection; bytes the peer sent after its `close_notify` are read as plaintext.
    ///
    /// # Switchpoint
    ///
    /// Blocks until the peer's `close_notify` arrives (the connection's read timeout applies).
    ///
    /// # Errors
    ///
    /// [`TlsError::State`] when no session is up; `InvalidData` if application data is unread
    /// or arrives instead of the peer's `close_notify` (it stays readable: read it and call
    /// `unwrap` again); the session's and the connection's errors.
    pub fn unwrap(&self) -> io::Result<()> {
        self.wait_ready()?;
        if !self.is_wrapped() {
            return Err(TlsError::State("no security layer present").into());
        }
        let unread = |n: usize| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{n} bytes of application data are unread: read them before unwrapping"),
            )
        };
        if self.buffered() > 0 {
            return Err(unread(self.buffered()));
        }
        self.send_close_notify()?;
        while self.is_wrapped() {
            let fed = self.receive()?;
            if fed.decrypted > 0 {
                return Err(unread(fed.decrypted));
            }
        }
        self.eof.set(false);
        self.write_closed.set(false);
        // Whatever followed the peer's close_notify is plaintext.
        let mut plain = self.plain.borrow_mut();
        let fed = self.pipe.borrow_mut().feed_ssldata(&[], &mut plain);
        drop(plain);
        self.outcome(fed).map(|_| ())
    }

    fn buffered(&self) -> usize {
        self.plain.borrow().len() - self.pos.get()
    }

    fn take_unread(&self) -> Vec<u8> {
        let mut plain = self.plain.borrow_mut();
        let unread = plain.split_off(self.pos.get());
        plain.clear();
        self.pos.set(0);
        unread
    }

    /// The error that ended sending for good, if any.
    fn check_write_error(&self) -> io::Result<()> {
        match &*self.write_error.borrow() {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }

    fn check_failed(&self) -> io::Result<()> {
        match &*self.failed.borrow() {
            Some(err) => Err(err.clone().into()),
            None => Ok(()),
        }
    }

    /// Waits while another fiber runs a handshake.
    fn wait_ready(&self) -> io::Result<()> {
        if !self.ready.is_set() {
            self.ready.wait().map_err(io::Error::from)?;
        }
        self.check_failed()
    }

    /// Records a failed session (and sends its alert, if any); passes the rest on.
    fn outcome(&self, result: Result<Fed, TlsError>) -> io::Result<Fed> {
        match result {
            Ok(fed) => {
                if fed.close_notify {
                    self.eof.set(true);
                }
                Ok(fed)
            }
            Err(err) => {
                self.failed.borrow_mut().get_or_insert(err.clone());
                // Best effort: the peer learns why (a bad certificate alert, say). A sender
                // holding the lock sends it itself.
                let _ = self.send_pending_if_free();
                Err(err.into())
            }
        }
    }

    /// Waits for bytes from the connection and feeds them to the session.
    fn receive(&self) -> io::Result<Fed> {
        match self.inner.fill()? {
            true => {
                let mut consumed = 0;
                let mut result = Ok(Fed::default());
                {
                    let mut pipe = self.pipe.borrow_mut();
                    let mut plain = self.plain.borrow_mut();
                    if self.pos.get() == plain.len() {
                        plain.clear();
                        self.pos.set(0);
                        if plain.capacity() == 0 {
                            *plain = SPARE.take();
                        }
                    }
                    self.inner.with_buffered(&mut |data| {
                        consumed = data.len();
                        result = pipe.feed_ssldata(data, &mut plain);
                    });
                }
                self.inner.consume(consumed);
                self.outcome(result)
            }
            false => {
                let result = self.pipe.borrow_mut().feed_eof();
                match result {
                    Ok(()) => {
                        self.eof.set(true);
                        Ok(Fed::default())
                    }
                    Err(err) => self.outcome(Err(err)),
                }
            }
        }
    }

    /// Sends what the session has queued, keeping the order: under the send lock.
    fn send_pending(&self) -> io::Result<()> {
        if !self.pipe.borrow().has_ssldata() {
            return Ok(());
        }
        self.check_write_error()?;
        let _guard = self.send_lock.lock().map_err(io::Error::from)?;
        self.drain_locked()
    }

    /// A reader's output (KeyUpdate response...): sent now unless a writer holds the lock,
    /// in which case it sends it before letting go.
    fn send_pending_if_free(&self) -> io::Result<()> {
        if !self.pipe.borrow().has_ssldata() {
            return Ok(());
        }
        if self.write_error.borrow().is_some() {
            // Nothing can be sent any more: the output is dropped, and reading goes on.
            drop(self.pipe.borrow_mut().take_ssldata());
            return Ok(());
        }
        match self.send_lock.try_lock() {
            Some(_guard) => self.drain_locked(),
            None => Ok(()),
        }
    }

    /// Sends the session's output until none is left; the caller holds the send lock.
    fn drain_locked(&self) -> io::Result<()> {
        let mut out = Vec::new();
        loop {
            self.pipe.borrow_mut().take_ssldata_into(&mut out);
            if out.is_empty() {
                return Ok(());
            }
            self.send_records(&mut out)?;
        }
    }

    /// Sends ciphertext taken from the session. If the connection refuses it for now (a
    /// timeout, a cancelled fiber), it goes back in front of the session's output, so no
    /// record is lost and the order holds. Any other error ends sending for good: it is
    /// recorded for every later write, and the output is dropped. The caller holds the send
    /// lock.
    fn send_records(&self, out: &mut Vec<u8>) -> io::Result<()> {
        self.check_write_error()?;
        match self.inner.send(out) {
            Ok(()) => {
                out.clear();
                Ok(())
            }
            Err(err)
                if err.kind() == io::ErrorKind::TimedOut
                    || fiber_core::Error::from_io(&err).is_some() =>
            {
                self.pipe.borrow_mut().requeue_ssldata(std::mem::take(out));
                Err(err)
            }
            Err(err) => {
                out.clear();
                drop(self.pipe.borrow_mut().take_ssldata());
                *self.write_error.borrow_mut() = Some((err.kind(), err.to_string()));
                Err(err)
            }
        }
    }

    /// Queues `close_notify` (once) and sends it.
    fn send_close_notify(&self) -> io::Result<()> {
        let _guard = self.send_lock.lock().map_err(io::Error::from)?;
        let state = self.pipe.borrow().state();
        if state == PipeState::Wrapped {
            let result = self.pipe.borrow_mut().shutdown();
            if let Err(err) = result {
                let err = self.outcome(Err(err)).unwrap_err();
                let _ = self.drain_locked();
                return Err(err);
            }
        }
        self.write_closed.set(true);
        self.drain_locked()
    }

    fn read_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let mut n = 0;
        self.with_buffered(&mut |data| {
            n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
        });
        self.consume(n);
        Ok(n)
    }
}
