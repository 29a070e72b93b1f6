//! [`Client`]: Gruvi's `Client` with TLS: connects with a configuration and holds the
//! connection.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;

use gruvi_stream::{Address, Stream};

use crate::config::ClientConfig;
use crate::endpoints::{connect, connect_with_name};
use crate::stream::TlsStream;

/// A TLS client (Gruvi's `Client` with `ssl=`): [`connect`](Self::connect) opens a connection
/// and completes the handshake, with the config's timeouts, and keeps it until
/// [`close`](Self::close) or the next `connect`.
///
/// # Examples
///
/// ```no_run
/// use gruvi_tls::{Client, ClientConfig};
///
/// fiber_core::run(|| -> std::io::Result<()> {
///     let client = Client::new(ClientConfig::builder().add_ca_file("ca.pem").build()?);
///     let stream = client.connect(&"localhost:8443".parse()?)?;
///     stream.write_all(b"hello\n")?;
///     stream.write_eof()?;
///     client.close();
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Client {
    config: ClientConfig,
    stream: RefCell<Option<Rc<Stream<TlsStream>>>>,
}

impl Client {
    /// A client connecting with `config`.
    pub fn new(config: ClientConfig) -> Client {
        Client {
            config,
            stream: RefCell::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Closes the current connection, if any, and connects to `addr` with TLS, verifying the
    /// server as the address's host (see [`connect`](crate::connect)).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the connection and the handshake, within the config's timeouts.
    ///
    /// # Errors
    ///
    /// As [`connect`](crate::connect).
    pub fn connect(&self, addr: &Address) -> io::Result<Rc<Stream<TlsStream>>> {
        self.close();
        let stream = connect(addr, &self.config)?;
        *self.stream.borrow_mut() = Some(stream.clone());
        Ok(stream)
    }

    /// [`connect`](Self::connect), verifying the server as `server_name`.
    ///
    /// # Switchpoint
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`connect_with_name`](crate::connect_with_name).
    pub fn connect_with_name(
        &self,
        addr: &Address,
        server_name: &str,
    ) -> io::Result<Rc<Stream<TlsStream>>> {
        self.close();
        let stream = connect_with_name(addr, server_name, &self.config)?;
        *self.stream.borrow_mut() = Some(stream.clone());
        Ok(stream)
    }

    /// The current connection.
    pub fn stream(&self) -> Option<Rc<Stream<TlsStream>>> {
        self.stream.borrow().clone()
    }

    /// Closes the current connection, if any, at once (no `close_notify`: call the stream's
    /// `write_eof` first for a clean end). Never switches.
    pub fn close(&self) {
        let stream = self.stream.borrow_mut().take();
        if let Some(stream) = stream {
            stream.close();
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("stream", &self.stream.borrow())
            .finish()
    }
}
