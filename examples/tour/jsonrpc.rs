//! The tour's JSON-RPC step: a server and a client peer over loopback TCP, calls in both
//! directions, concurrent callers on one connection, notifications, a 2.0 batch.

use std::io::{Read, Write};
use std::time::Instant;

use gruvi::fiber::{self, Hub};
use gruvi::jsonrpc::{Config, Methods, RpcError, Server, Value, connect};
use gruvi::stream::{Address, TcpStream};

/// A JSON-RPC server whose handlers block and call back into the client.
pub fn tour() -> Result<(), Box<dyn std::error::Error>> {
    println!("[jsonrpc] JSON-RPC 1.0 and 2.0, both ends calling each other");
    let hub = Hub::current();
    let mut methods = Methods::new();
    methods.add("add", |_, (a, b): (i64, i64)| Ok(a + b));
    methods.add("greet", |peer, (name,): (String,)| {
        // A server handler calling the client while the client's own call is pending.
        let title: String = peer
            .call("title", (&name,))
            .map_err(|e| RpcError::new(-32000, e.to_string()))?;
        Ok(format!("hello, {title} {name}"))
    });
    let server = Server::new(methods, Config::default());
    server.listen(&"127.0.0.1:0".parse()?)?;
    let addr = server.addresses()[0].clone();
    println!("  server listening on {addr}");

    let mut client_methods = Methods::new();
    client_methods.add("title", |_, (_name,): (String,)| Ok("dear"));
    let client = connect(&addr, client_methods, Config::default())?;
    println!("  add(1, 2) = {}", client.call::<i64>("add", (1, 2))?);
    println!(
        "  greet(\"fibers\") = {:?}",
        client.call::<String>("greet", ("fibers",))?
    );

    let start = Instant::now();
    let callers: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            fiber::spawn(move || client.call::<i64>("add", (i, 1000)))
        })
        .collect();
    let mut ok = 0;
    for caller in callers {
        ok += usize::from(caller.join().map_err(|e| e.to_string())?.is_ok());
    }
    println!(
        "  100 fibers called at once over one connection: {ok} answers matched by id in {:?}",
        start.elapsed()
    );

    let err = client.call::<Value>("no_such_method", ()).unwrap_err();
    println!("  an unknown method: {err}");
    client.notify("add", (1, 1))?;
    println!("  a notification: sent, and no answer expects it");

    batch(&addr)?;
    client.close();
    server.close()?;
    drop(client);
    println!("  hub closed, {} handles left open", hub.close());
    Ok(())
}

/// A raw 2.0 batch: one array in, one array of answers out (none for the notification).
fn batch(addr: &Address) -> Result<(), Box<dyn std::error::Error>> {
    let Address::Tcp(host, port) = addr else {
        return Ok(());
    };
    let mut conn = TcpStream::connect((host.as_str(), *port))?;
    let request = r#"[{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1},
                      {"jsonrpc":"2.0","method":"add","params":[3,4]},
                      {"jsonrpc":"2.0","method":"nope","id":2}]"#;
    conn.write_all(request.as_bytes())?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    println!("  a batch of 3 (one a notification) got: {answer}");
    Ok(())
}
