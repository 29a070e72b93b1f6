//! The tour's fourth step: blocking-style streams, endpoints and child processes on fibers.

use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;

use gruvi::fiber::{self, Hub};
use std::time::Duration;

use gruvi::stream::{Address, Command, Server, Stdio, TcpListener, TcpStream};

/// An uppercasing line server and three clients talking to it at once.
pub fn tour() -> Result<(), Box<dyn std::error::Error>> {
    println!("[stream] TCP with std's shapes, blocking only the calling fiber");
    let hub = Hub::current();
    let listener = TcpListener::bind("localhost:0")?;
    let addr = listener.local_addr()?;
    println!("  listening on {addr} (\"localhost\" resolved through libuv)");
    let server = fiber::spawn(move || -> std::io::Result<()> {
        let mut handlers = Vec::new();
        for _ in 0..3 {
            let (conn, peer) = listener.accept()?;
            handlers.push(fiber::spawn(move || -> std::io::Result<()> {
                let mut lines = BufReader::new(&conn).lines();
                while let Some(line) = lines.next().transpose()? {
                    writeln!(&conn, "{}", line.to_uppercase())?;
                }
                println!("  server: {peer} said goodbye");
                Ok(())
            }));
        }
        handlers.into_iter().try_for_each(|h| h.join().unwrap())
    });
    let clients: Vec<_> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(|word| {
            fiber::spawn(move || -> std::io::Result<String> {
                let conn = TcpStream::connect(addr)?;
                writeln!(&conn, "hello from {word}")?;
                let mut reply = String::new();
                BufReader::new(&conn).read_line(&mut reply)?;
                conn.shutdown(Shutdown::Write)?;
                Ok(reply.trim_end().to_owned())
            })
        })
        .collect();
    for client in clients {
        println!("  client got: {}", client.join().unwrap()?);
    }
    server.join().unwrap()?;
    endpoints()?;
    child_process()?;
    let left = hub.close();
    println!("  hub closed, {left} handles left open");
    Ok(())
}

/// A `Server` runs a fiber per connection and caps how many it serves.
fn endpoints() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::new(|stream| {
        while let Ok(line) = stream.readline(Some(1024)) {
            if line.is_empty() {
                break;
            }
            stream.write_all(&line)?;
        }
        Ok(())
    });
    server.set_max_connections(Some(2));
    server.listen(&"127.0.0.1:0".parse::<Address>()?)?;
    let addr = server.addresses()[0].clone();
    // Three connections open at once: the third is over the limit.
    let streams = (0..3)
        .map(|_| gruvi::stream::connect(&addr, Some(Duration::from_secs(5))))
        .collect::<Result<Vec<_>, _>>()?;
    let served: Vec<_> = streams
        .iter()
        .enumerate()
        .map(|(i, stream)| -> std::io::Result<bool> {
            stream.write_all(format!("ping {i}\n").as_bytes())?;
            Ok(!stream.readline(Some(1024))?.is_empty())
        })
        .collect();
    let answered = served.iter().filter(|r| matches!(r, Ok(true))).count();
    println!(
        "  server: max 2 connections; {answered} of 3 clients were answered, the third was closed at once"
    );
    server.close()?;
    Ok(())
}

/// A child process with piped stdin and stdout, fed and read by fibers.
fn child_process() -> Result<(), Box<dyn std::error::Error>> {
    let mut child = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let output = child.communicate(b"shout through a child process")?;
    println!(
        "  process: tr (pid {}) answered {:?}, {}",
        child.id(),
        String::from_utf8_lossy(&output.stdout),
        output.status
    );
    Ok(())
}
