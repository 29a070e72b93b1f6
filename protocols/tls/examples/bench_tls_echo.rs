//! TLS echo throughput over loopback: a client sends N MiB (default 10) while reading the echo
//! back, against an echo server on another thread (its own Hub); reports MiB/s for each of
//! `--runs` runs (default 3) and their median, for TLS and, for comparison, plain TCP.
//!
//! ```text
//! cargo run --release -p gruvi-tls --example bench_tls_echo -- [--mib N] [--runs R] [--only tls|tcp]
//! ```
//!
//! On a loaded machine, `--only` with the shell's `time` gives CPU time per MiB, which other
//! processes disturb less than the wall-clock rate.

use std::io;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use fiber_core::Event;
use gruvi_stream::{Address, Server, Stream};
use gruvi_tls::{CertifiedKey, ClientConfig, ServerConfig};

type Error = Box<dyn std::error::Error>;

fn echo(stream: Rc<Stream>) -> io::Result<()> {
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

/// Runs an echo server (TLS with `config`, else plain) on its own thread until `stop` is set.
fn server_thread(
    config: Option<ServerConfig>,
    stop: Arc<Event>,
) -> (Address, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        fiber_core::run(|| {
            let server = match config {
                Some(config) => gruvi_tls::server(config, echo),
                None => Server::new(echo),
            };
            server.listen(&"127.0.0.1:0".parse().unwrap()).unwrap();
            tx.send(server.addresses()[0].clone()).unwrap();
            stop.wait().unwrap();
            server.close().unwrap();
        });
    });
    (rx.recv().unwrap(), thread)
}

/// One echo of `data`; returns MiB/s (of the data size, each way).
fn run_once(stream: Rc<Stream>, data: Rc<Vec<u8>>) -> f64 {
    let started = Instant::now();
    let writer = {
        let (stream, data) = (stream.clone(), data.clone());
        fiber_core::spawn(move || -> io::Result<()> {
            for chunk in data.chunks(64 * 1024) {
                stream.write_all(chunk)?;
            }
            stream.write_eof()
        })
    };
    let mut got = 0;
    while stream.fill().unwrap() {
        let n = stream.with_buffered(<[u8]>::len);
        stream.consume(n);
        got += n;
    }
    writer.join().unwrap().unwrap();
    assert_eq!(got, data.len());
    data.len() as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (mut mib, mut runs) = (10usize, 3usize);
    let mut modes = vec![true, false];
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--mib" => mib = value.parse()?,
            "--runs" => runs = value.parse()?,
            "--only" if value == "tls" => modes = vec![true],
            "--only" if value == "tcp" => modes = vec![false],
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let identity = CertifiedKey::self_signed(&["127.0.0.1"], 1)?;
    let cert = identity.leaf().to_pem()?;
    let server_config = ServerConfig::builder(identity).build()?;
    let client_config = ClientConfig::builder()
        .use_system_roots(false)
        .add_ca_pem(&cert)
        .build()?;
    let data = Rc::new(
        (0..mib << 20)
            .map(|i| (i * 31 + i / 977) as u8)
            .collect::<Vec<u8>>(),
    );
    for tls in modes {
        let stop = Arc::new(Event::new());
        let (addr, thread) = server_thread(tls.then(|| server_config.clone()), stop.clone());
        let rates: Vec<f64> = fiber_core::run(|| {
            (0..runs)
                .map(|_| {
                    let stream: Rc<Stream> = if tls {
                        gruvi_tls::connect(&addr, &client_config).unwrap()
                    } else {
                        gruvi_stream::connect(&addr, None).unwrap()
                    };
                    run_once(stream, data.clone())
                })
                .collect()
        });
        stop.set();
        thread.join().unwrap();
        let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "{} echo, {mib} MiB: {} MiB/s (runs: {})",
            if tls { "TLS " } else { "TCP " },
            format_args!("{:.0}", median(rates.clone())),
            list.join(", ")
        );
    }
    Ok(())
}
