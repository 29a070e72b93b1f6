//! Helpers shared by gruvi-tls's integration tests.
#![allow(dead_code)]

pub mod certs;

#[path = "../../../stream/tests/support/mod.rs"]
mod stream_support;

pub use stream_support::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use std::io;
use std::rc::Rc;

use gruvi_stream::{Address, Server, Stream, TcpListener, TcpStream};
use gruvi_tls::{CertifiedKey, ClientConfig, ServerConfig, TlsStream};

/// A server config presenting `pem`.
pub fn server_config(pem: &certs::Pem) -> ServerConfig {
    ServerConfig::builder(CertifiedKey::from_pem(&pem.cert, &pem.key).unwrap())
        .build()
        .unwrap()
}

/// A client config trusting only the test CA.
pub fn client_config(certs: &certs::Certs) -> ClientConfig {
    ClientConfig::builder()
        .use_system_roots(false)
        .add_ca_pem(&certs.ca.cert)
        .build()
        .unwrap()
}

/// How long a real program may take before the test gives up on it.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process killed and reaped when dropped, whose standard output arrives line by line
/// on a channel (read on a thread, so a silent child cannot hang the test).
pub struct Guarded {
    child: Option<Child>,
    pub lines: mpsc::Receiver<String>,
    /// Every line seen so far by [`wait_for`](Self::wait_for).
    pub seen: Vec<String>,
}

impl Guarded {
    /// Starts `command` with piped stdin and stdout (stderr merged into stdout when
    /// `merge_stderr`).
    pub fn spawn(command: &mut Command) -> Guarded {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Guarded {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    pub fn stdin(&mut self) -> &mut ChildStdin {
        let child = self.child.as_mut().expect("running");
        child.stdin.as_mut().expect("stdin was piped")
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.as_mut().expect("running").stdin.take());
    }

    /// Waits for an output line containing `needle` and returns it.
    ///
    /// # Panics
    ///
    /// After [`CHILD_TIMEOUT`], or if the output ends first, with everything seen.
    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(CHILD_TIMEOUT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; output so far: {:#?}", self.seen),
            }
        }
    }

    /// Waits for the child to exit (killing it after [`CHILD_TIMEOUT`]) and returns the rest
    /// of its output with its exit status.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        let (done, finished) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = done.send(());
            status
        });
        if finished.recv_timeout(CHILD_TIMEOUT).is_err() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            let _ = waiter.join();
            panic!("child did not exit; output: {:#?}", self.seen);
        }
        let status = waiter.join().expect("waiter").expect("wait for the child");
        let mut lines = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(CHILD_TIMEOUT) {
            lines.push(line);
        }
        (status, lines)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Echoes until the peer's close_notify, then sends its own.
pub fn echo(stream: Rc<Stream>) -> io::Result<()> {
    let mut chunk = Vec::new();
    while stream.fill()? {
        stream.with_buffered(|data| {
            chunk.clear();
            chunk.extend_from_slice(data);
        });
        stream.consume(chunk.len());
        stream.write_all(&chunk)?;
    }
    stream.write_eof()
}

pub fn listen(server: &Server, addr: &str) -> Address {
    server.listen(&addr.parse().unwrap()).unwrap();
    server.addresses()[0].clone()
}

/// Sends `data` from one fiber (then close_notify) while this one reads the echo to the end.
pub fn echo_through(stream: Rc<Stream<TlsStream>>, data: &[u8]) -> Vec<u8> {
    let writer = {
        let (stream, data) = (stream.clone(), data.to_vec());
        fiber_core::spawn(move || -> io::Result<()> {
            for chunk in data.chunks(100_000) {
                stream.write_all(chunk)?;
            }
            stream.write_eof()
        })
    };
    let echoed = stream.read_bytes(usize::MAX).unwrap();
    writer.join().unwrap().unwrap();
    echoed
}

/// A connected pair of TLS streams over TCP (client, server), wrapped or not yet.
pub fn pair(
    certs: &certs::Certs,
    client_config: &ClientConfig,
    wrapped: bool,
) -> (Rc<Stream<TlsStream>>, Rc<Stream<TlsStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config(&certs.good);
    let server = fiber_core::spawn(move || -> io::Result<TlsStream> {
        let (tcp, _) = listener.accept()?;
        let tls = TlsStream::server_unwrapped(tcp, &config);
        if wrapped {
            tls.start_tls()?;
        }
        Ok(tls)
    });
    let tls = TlsStream::client_unwrapped(
        TcpStream::connect(addr).unwrap(),
        client_config,
        "localhost",
    );
    if wrapped {
        tls.start_tls().unwrap();
    }
    let server = server.join().unwrap().unwrap();
    (Rc::new(Stream::new(tls)), Rc::new(Stream::new(server)))
}
