//! The tour's third step: blocking-style streams on fibers.

use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;

use gruvi::fiber::{self, Hub};
use gruvi::stream::{TcpListener, TcpStream};

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
    let left = hub.close();
    println!("  hub closed, {left} handles left open");
    Ok(())
}
