//! Blocking-style streams on Gruvi fibers: TCP, Unix sockets, UDP and TTYs with std's names and
//! shapes, endpoints, addresses and child processes. Every blocking call blocks only the
//! calling fiber; one libuv loop per thread does the I/O.
//!
//! # Examples
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use gruvi_stream::{TcpListener, TcpStream};
//!
//! fiber_core::run(|| -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     fiber_core::spawn(move || -> std::io::Result<()> {
//!         let (conn, _) = listener.accept()?;
//!         let mut line = String::new();
//!         BufReader::new(&conn).read_line(&mut line)?;
//!         (&conn).write_all(line.to_uppercase().as_bytes())
//!     });
//!     let mut client = TcpStream::connect(addr)?;
//!     client.write_all(b"hello fibers\n")?;
//!     let mut reply = String::new();
//!     BufReader::new(&client).read_line(&mut reply)?;
//!     assert_eq!(reply, "HELLO FIBERS\n");
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]

mod address;
mod buffered;
mod connection;
mod dispatcher;
mod endpoints;
mod framing;
pub mod poll;
mod process;
mod stream_impls;
mod tcp;
mod transport;
mod tty;
mod udp;
mod unix;

pub use address::{
    Address, DEFAULT_LOOKUP_TIMEOUT, ToSocketAddrs, lookup_host, lookup_host_timeout,
    reverse_lookup,
};
pub use buffered::{DEFAULT_MAX_LINE, Lines, Stream};
pub use connection::{Connection, FillNotify};
pub use dispatcher::{DEFAULT_MAX_MESSAGE_SIZE, Dispatcher, QueueLimits};
pub use endpoints::{Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Server, connect};
pub use framing::Framer;
pub use process::{Child, ChildPipe, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
pub use tcp::{TcpListener, TcpStream};
pub use transport::Limits;
pub use tty::{Stdin, StdioKind, Stdout, Tty, TtyMode, stdin, stdout};
pub use udp::{DEFAULT_RECV_QUEUE, UdpSocket};
pub use unix::{DEFAULT_LISTEN_BACKLOG, IpcPipe, IpcSend, Received, UnixListener, UnixStream};
