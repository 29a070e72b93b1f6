//! [`SslPipe`]: the sans-IO TLS engine (Gruvi's `SslPipe`): ciphertext in, plaintext out and
//! back, over in-memory buffers. No fiber, no socket.

use std::fmt;

use openssl::ssl::{ErrorCode, ShutdownResult, Ssl, SslRef, SslStream};

use crate::config::{ClientConfig, ServerConfig};
use crate::error::TlsError;

mod memory_bio;

use memory_bio::MemoryBio;

/// The largest plaintext a TLS record carries.
const RECORD: usize = 16 * 1024;

thread_local! {
    /// Where records are decrypted to, shared by the thread's pipes.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The state of an [`SslPipe`] (Gruvi's `S_UNWRAPPED`, `S_DO_HANDSHAKE`, `S_WRAPPED`,
/// `S_SHUTDOWN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PipeState {
    /// No TLS: data passes through unchanged.
    Unwrapped,
    /// A handshake is in progress.
    Handshake,
    /// TLS is up: data is encrypted and decrypted.
    Wrapped,
    /// This side sent its `close_notify` and waits for the peer's; the peer's data is still
    /// decrypted meanwhile.
    Shutdown,
}

/// What one [`SslPipe::feed_ssldata`] call brought about, besides the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fed {
    /// Bytes of application data that came out of TLS records (excluding plaintext passed
    /// through or left over after an unwrap).
    pub decrypted: usize,
    /// The handshake completed.
    pub handshake_done: bool,
    /// The peer's `close_notify` arrived: its TLS data ended.
    pub close_notify: bool,
    /// Both `close_notify`s are through: the pipe is unwrapped, and the bytes after the
    /// peer's `close_notify` were passed on as plaintext.
    pub unwrapped: bool,
}

/// Which side this pipe plays, with what it needs to start a session.
#[derive(Clone)]
enum Role {
    Client {
        config: ClientConfig,
        server_name: String,
    },
    Server {
        config: ServerConfig,
    },
}

enum Io {
    Plain(MemoryBio),
    Tls(Box<SslStream<MemoryBio>>),
}

/// A sans-IO TLS engine over in-memory buffers (Gruvi's `SslPipe`): feed it the bytes received
/// from the peer ([`feed_ssldata`](Self::feed_ssldata)) and it gives back the application data;
/// feed it application data ([`feed_appdata`](Self::feed_appdata)) and it encrypts it; what it
/// has to send to the peer (records, handshake messages, alerts) waits in its output, taken
/// with [`take_ssldata`](Self::take_ssldata).
///
/// It starts unwrapped, passing data through: [`do_handshake`](Self::do_handshake) starts TLS,
/// [`shutdown`](Self::shutdown) sends `close_notify`, and once both sides' `close_notify`s are
/// through it is unwrapped again, passing on as plaintext whatever follows (STARTTLS), and can
/// start another session. TLS 1.3 post-handshake messages (session tickets, KeyUpdate) are
/// handled while decrypting; a KeyUpdate response waits in the output.
///
/// # Examples
///
/// Two pipes talking to each other in memory:
///
/// ```
/// # fn pems() -> (Vec<u8>, Vec<u8>) {
/// #     use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509::*};
/// #     use openssl::x509::extension::SubjectAlternativeName;
/// #     let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
/// #     let mut name = X509NameBuilder::new().unwrap();
/// #     name.append_entry_by_text("CN", "localhost").unwrap();
/// #     let name = name.build();
/// #     let mut b = X509Builder::new().unwrap();
/// #     b.set_version(2).unwrap();
/// #     b.set_subject_name(&name).unwrap();
/// #     b.set_issuer_name(&name).unwrap();
/// #     b.set_pubkey(&key).unwrap();
/// #     b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
/// #     b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
/// #     let san = SubjectAlternativeName::new().dns("localhost").build(&b.x509v3_context(None, None)).unwrap();
/// #     b.append_extension(san).unwrap();
/// #     b.sign(&key, MessageDigest::sha256()).unwrap();
/// #     (b.build().to_pem().unwrap(), key.private_key_to_pem_pkcs8().unwrap())
/// # }
/// use gruvi_tls::{CertifiedKey, ClientConfig, PipeState, ServerConfig, SslPipe};
///
/// let (cert, key) = pems(); // a self-signed certificate for "localhost"
/// let server_config = ServerConfig::builder(CertifiedKey::from_pem(&cert, &key)?).build()?;
/// let client_config = ClientConfig::builder().add_ca_pem(&cert).build()?;
/// let mut client = SslPipe::client(&client_config, "localhost");
/// let mut server = SslPipe::server(&server_config);
/// client.do_handshake()?;
/// server.do_handshake()?;
/// let mut appdata = Vec::new();
/// while client.state() == PipeState::Handshake || server.state() == PipeState::Handshake {
///     server.feed_ssldata(&client.take_ssldata(), &mut appdata)?;
///     client.feed_ssldata(&server.take_ssldata(), &mut appdata)?;
/// }
/// client.feed_appdata(b"hello")?;
/// server.feed_ssldata(&client.take_ssldata(), &mut appdata)?;
/// assert_eq!(appdata, b"hello");
/// # Ok::<(), gruvi_tls::TlsError>(())
/// ```
pub struct SslPipe {
    role: Role,
    state: PipeState,
    io: Io,
    /// The peer's `close_notify` arrived in this session.
    peer_closed: bool,
}

impl SslPipe {
    /// An unwrapped client pipe that will verify the server as `server_name` (a host name,
    /// also sent as SNI, or an IP address).
    pub fn client(config: &ClientConfig, server_name: &str) -> SslPipe {
        SslPipe::new(Role::Client {
            config: config.clone(),
            server_name: server_name.to_owned(),
        })
    }

    /// An unwrapped server pipe.
    pub fn server(config: &ServerConfig) -> SslPipe {
        SslPipe::new(Role::Server {
            config: config.clone(),
        })
    }

    fn new(role: Role) -> SslPipe {
        SslPipe {
            role,
            state: PipeState::Unwrapped,
            io: Io::Plain(MemoryBio::default()),
            peer_closed: false,
        }
    }

    /// The state.
    pub fn state(&self) -> PipeState {
        self.state
    }

    /// Whether this side is a server.
    pub fn is_server(&self) -> bool {
        matches!(self.role, Role::Server { .. })
    }

    /// How many bytes the peer may send after its `close_notify` (kept for an unwrap).
    fn after_close_notify_limit(&self) -> usize {
        match &self.role {
            Role::Client { config, .. } => config.limits.after_close_notify,
            Role::Server { config } => config.limits.after_close_notify,
        }
    }

    /// Whether the peer's `close_notify` arrived in the current session.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The OpenSSL session (ALPN, certificates, cipher...), while one exists.
    pub fn ssl(&self) -> Option<&SslRef> {
        match &self.io {
            Io::Plain(_) => None,
            Io::Tls(tls) => Some(tls.ssl()),
        }
    }

    fn bio(&mut self) -> &mut MemoryBio {
        match &mut self.io {
            Io::Plain(bio) => bio,
            Io::Tls(tls) => tls.get_mut(),
        }
    }

    /// Whether output waits to be sent.
    pub fn has_ssldata(&self) -> bool {
        match &self.io {
            Io::Plain(bio) => !bio.outgoing.is_empty(),
            Io::Tls(tls) => !tls.get_ref().outgoing.is_empty(),
        }
    }

    /// How many bytes wait to be sent to the peer.
    pub fn ssldata_len(&self) -> usize {
        match &self.io {
            Io::Plain(bio) => bio.outgoing.len(),
            Io::Tls(tls) => tls.get_ref().outgoing.len(),
        }
    }

    /// Puts back, in front of any newer output, bytes taken with
    /// [`take_ssldata`](Self::take_ssldata) that could not be sent, so that nothing is lost and
    /// the order holds.
    pub fn requeue_ssldata(&mut self, mut data: Vec<u8>) {
        let bio = self.bio();
        data.append(&mut bio.outgoing);
        bio.outgoing = data;
    }

    /// Takes the bytes to send to the peer.
    pub fn take_ssldata(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bio().outgoing)
    }

    /// Appends the bytes to send to the peer to `out`, keeping both buffers' memory.
    pub fn take_ssldata_into(&mut self, out: &mut Vec<u8>) {
        let bio = self.bio();
        if out.is_empty() {
            std::mem::swap(out, &mut bio.outgoing);
        } else {
            out.append(&mut bio.outgoing);
        }
    }

    /// Starts a TLS session: the client's first flight waits in the output; a server waits
    /// for the client's.
    ///
    /// # Errors
    ///
    /// [`TlsError::State`] unless unwrapped (Gruvi's "handshake in progress or completed");
    /// [`TlsError::Config`] if OpenSSL cannot set up the session (a bad server name).
    pub fn do_handshake(&mut self) -> Result<(), TlsError> {
        if self.state != PipeState::Unwrapped {
            return Err(TlsError::State("handshake in progress or completed"));
        }
        let ssl = self.new_ssl()?;
        let Io::Plain(bio) = std::mem::replace(&mut self.io, Io::Plain(MemoryBio::default()))
        else {
            unreachable!("an unwrapped pipe has no TLS session");
        };
        let tls = SslStream::new(ssl, bio).map_err(|e| TlsError::config("TLS session", e))?;
        self.io = Io::Tls(Box::new(tls));
        self.state = PipeState::Handshake;
        self.peer_closed = false;
        self.step_handshake().map(|_| ())
    }

    fn new_ssl(&self) -> Result<Ssl, TlsError> {
        let bad = |e| TlsError::config("TLS session", e);
        match &self.role {
            Role::Client {
                config,
                server_name,
            } => {
                let mut ssl = config
                    .connector
                    .configure()
                    .map_err(bad)?
                    .into_ssl(server_name)
                    .map_err(|e| TlsError::config(&format!("server name {server_name:?}"), e))?;
                ssl.set_connect_state();
                Ok(ssl)
            }
            Role::Server { config } => {
                let mut ssl = Ssl::new(&config.context).map_err(bad)?;
                ssl.set_accept_state();
                Ok(ssl)
            }
        }
    }

    /// Advances the handshake: `Ok(true)` once it completed.
    fn step_handshake(&mut self) -> Result<bool, TlsError> {
        let Io::Tls(tls) = &mut self.io else {
            unreachable!("a handshake has a TLS session");
        };
        match tls.do_handshake() {
            Ok(()) => {
                self.state = PipeState::Wrapped;
                Ok(true)
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => Ok(false),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// The error of a failed OpenSSL call; any alert for the peer stays in the output.
    fn failed(&self, err: &openssl::ssl::Error) -> TlsError {
        match &self.io {
            Io::Tls(tls) if tls.get_ref().eof && err.ssl_error().is_none() => {
                TlsError::Protocol("the peer closed the connection during the handshake".into())
            }
            Io::Tls(tls) => TlsError::from_ssl(err, tls.ssl()),
            Io::Plain(_) => TlsError::Protocol(err.to_string()),
        }
    }

    /// Feeds bytes received from the peer and appends the application data they carry to
    /// `appdata` (unwrapped: the bytes themselves). Drives the handshake, answers
    /// post-handshake messages, and on the peer's `close_notify` stops decrypting: what follows
    /// it is kept, up to the config's `after_close_notify_limit`, for an unwrap (STARTTLS).
    ///
    /// # Errors
    ///
    /// [`TlsError::Verification`] or [`TlsError::Protocol`] when the session fails (also when
    /// more than the limit arrives after the peer's `close_notify`); an alert for the peer may
    /// wait in the output.
    pub fn feed_ssldata(&mut self, data: &[u8], appdata: &mut Vec<u8>) -> Result<Fed, TlsError> {
        let mut fed = Fed::default();
        if self.state == PipeState::Unwrapped {
            let bio = self.bio();
            bio.drain_into(appdata);
            appdata.extend_from_slice(data);
            return Ok(fed);
        }
        self.bio().push(data);
        if self.state == PipeState::Handshake {
            if !self.step_handshake()? {
                return Ok(fed);
            }
            fed.handshake_done = true;
        }
        self.decrypt(appdata, &mut fed)?;
        if self.peer_closed && self.state != PipeState::Unwrapped {
            let kept = self.bio().unread().len();
            let limit = self.after_close_notify_limit();
            if kept > limit {
                return Err(TlsError::Protocol(format!(
                    "{kept} bytes arrived after the peer's close_notify, more than the limit of \
                     {limit} kept for an unwrap"
                )));
            }
        }
        self.bio().release_if_drained();
        Ok(fed)
    }

    /// Decrypts every whole record that was fed.
    fn decrypt(&mut self, appdata: &mut Vec<u8>, fed: &mut Fed) -> Result<(), TlsError> {
        if self.peer_closed {
            return Ok(());
        }
        let Io::Tls(tls) = &mut self.io else {
            unreachable!("decrypting needs a TLS session");
        };
        // Decrypt into the thread's scratch buffer and copy out: cheaper than zero-filling
        // room in `appdata` for every call (most find no whole record), and no connection
        // keeps a buffer of its own for it.
        let stopped = SCRATCH.with_borrow_mut(|scratch| {
            scratch.resize(RECORD, 0);
            loop {
                match tls.ssl_read(scratch) {
                    Ok(n) => {
                        appdata.extend_from_slice(&scratch[..n]);
                        fed.decrypted += n;
                    }
                    Err(e) => return e,
                }
            }
        });
        match stopped.code() {
            ErrorCode::WANT_READ => Ok(()),
            ErrorCode::ZERO_RETURN => {
                self.peer_closed = true;
                fed.close_notify = true;
                if self.state == PipeState::Shutdown {
                    self.finish_unwrap(appdata);
                    fed.unwrapped = true;
                }
                Ok(())
            }
            _ => Err(self.failed(&stopped)),
        }
    }

    /// Ends the session; what follows the peer's `close_notify` is plaintext for `appdata`.
    fn finish_unwrap(&mut self, appdata: &mut Vec<u8>) {
        let bio = std::mem::take(self.bio());
        let mut plain = MemoryBio {
            outgoing: bio.outgoing,
            ..MemoryBio::default()
        };
        appdata.extend_from_slice(&bio.incoming[bio.pos..]);
        plain.eof = bio.eof;
        self.io = Io::Plain(plain);
        self.state = PipeState::Unwrapped;
    }

    /// Tells the pipe the peer closed the connection.
    ///
    /// # Errors
    ///
    /// [`TlsError::Truncated`] if a session is up and the peer's `close_notify` did not come
    /// first; [`TlsError::Protocol`] during a handshake.
    pub fn feed_eof(&mut self) -> Result<(), TlsError> {
        self.bio().eof = true;
        match self.state {
            PipeState::Unwrapped => Ok(()),
            PipeState::Handshake => {
                // OpenSSL reports the end itself (with any alert that came before it).
                self.step_handshake()?;
                Err(TlsError::Protocol(
                    "the peer closed the connection during the handshake".into(),
                ))
            }
            PipeState::Wrapped | PipeState::Shutdown if self.peer_closed => Ok(()),
            // Every whole record was decrypted when it was fed: what is left is at most part
            // of one, cut short.
            PipeState::Wrapped | PipeState::Shutdown => Err(TlsError::Truncated),
        }
    }

    /// Encrypts `data` (unwrapped: passes it through) into the output; returns how many bytes
    /// were taken, which is all of them.
    ///
    /// # Errors
    ///
    /// [`TlsError::State`] during a handshake or after this side's `close_notify`;
    /// [`TlsError::Protocol`] if the session failed.
    pub fn feed_appdata(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        match self.state {
            PipeState::Unwrapped => {
                self.bio().outgoing.extend_from_slice(data);
                Ok(data.len())
            }
            PipeState::Handshake => Err(TlsError::State("handshake in progress")),
            PipeState::Shutdown => Err(TlsError::State("close_notify was sent: no more data")),
            PipeState::Wrapped => {
                let Io::Tls(tls) = &mut self.io else {
                    unreachable!("a wrapped pipe has a TLS session");
                };
                let mut done = 0;
                while done < data.len() {
                    match tls.ssl_write(&data[done..]) {
                        Ok(n) => done += n,
                        Err(e) => return Err(self.failed(&e)),
                    }
                }
                Ok(done)
            }
        }
    }

    /// Sends `close_notify`. If the peer's already came, the pipe is unwrapped at once;
    /// otherwise it waits for it in [`PipeState::Shutdown`]. Idempotent in that state.
    ///
    /// # Errors
    ///
    /// [`TlsError::State`] when unwrapped (Gruvi's "no security layer present") or during a
    /// handshake.
    pub fn shutdown(&mut self) -> Result<(), TlsError> {
        match self.state {
            PipeState::Unwrapped => Err(TlsError::State("no security layer present")),
            PipeState::Handshake => Err(TlsError::State("handshake in progress")),
            PipeState::Shutdown => Ok(()),
            PipeState::Wrapped => {
                let Io::Tls(tls) = &mut self.io else {
                    unreachable!("a wrapped pipe has a TLS session");
                };
                match tls.shutdown() {
                    Ok(ShutdownResult::Received) => {}
                    Ok(ShutdownResult::Sent) if self.peer_closed => {}
                    Ok(ShutdownResult::Sent) => {
                        self.state = PipeState::Shutdown;
                        return Ok(());
                    }
                    Err(e) => return Err(self.failed(&e)),
                }
                // Both close_notifys are through; any bytes after the peer's are plaintext,
                // passed on by the next feed.
                let mut leftover = Vec::new();
                self.finish_unwrap(&mut leftover);
                self.bio().incoming = leftover;
                Ok(())
            }
        }
    }
}

impl fmt::Debug for SslPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SslPipe")
            .field("server", &self.is_server())
            .field("state", &self.state)
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}
