//! A small netcat: standard input to a TCP or Unix-socket address, and what comes back to
//! standard output, both directions at once (one fiber each).
//!
//! ```text
//! netcat ADDR
//! ```
//!
//! `ADDR` is `host:port` or a Unix socket path (anything with a `/`, or `@name` for an
//! abstract socket). When standard input ends, the connection is half-closed and the output
//! goes on until the peer closes; when the peer closes, netcat exits.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use gruvi::fiber;
use gruvi::stream::{Address, connect, stdin, stdout};

fn netcat(addr: &Address) -> io::Result<()> {
    let stream = connect(addr, Some(Duration::from_secs(30)))?;
    let (input, output) = (stdin()?, stdout()?);
    let upstream = stream.clone();
    let sender = fiber::spawn(move || -> io::Result<()> {
        io::copy(&mut &input, &mut &*upstream)?;
        upstream.write_eof()
    });
    let received = io::copy(&mut &*stream, &mut &output).and_then(|_| (&output).flush());
    // The peer is done: stop reading standard input, which may never end.
    sender.cancel();
    let sent = match sender.join() {
        Ok(result) => result,
        Err(err) if err.is_cancelled() => Ok(()),
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    };
    received?;
    // A cancelled copy is not an error; anything else the sender met is.
    match sent {
        Err(err) if fiber::Error::from_io(&err) == Some(fiber::Error::Cancelled) => Ok(()),
        other => other,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.as_slice() {
        [addr] => addr.parse::<Address>(),
        _ => {
            eprintln!("usage: netcat ADDR");
            return ExitCode::from(2);
        }
    };
    let addr = match addr {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("netcat: {err}");
            return ExitCode::from(2);
        }
    };
    match fiber::run(|| netcat(&addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("netcat: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
