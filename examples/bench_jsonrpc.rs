//! JSON-RPC benchmark over loopback TCP, the server on one core, in the `RESULT` format of
//! `../shared/peers`.
//!
//! Run it with `cargo run --release --example bench_jsonrpc [-- --runs N --secs S]`. It starts
//! itself twice: a server pinned to cpu 0 (`taskset -c 0`) and a client pinned to cpu 1, as the
//! peers harness pins servers and load generators. The client measures, each for `S` seconds
//! (default 3), median of `N` runs (default 3):
//!
//! - `jsonrpc_calls_1`: one fiber calling `echo` (`[1, "x"]`) back to back;
//! - `jsonrpc_calls_100`: 100 fibers calling concurrently over the same connection;
//! - `jsonrpc_notifications`: one fiber sending notifications as fast as the connection takes
//!   them (then a call makes sure the server handled all of them).
//!
//! For each it prints calls (or notifications) per second of wall time, the server's CPU use
//! (from `/proc/PID/stat`), and calls per second **per server core** (= count / server CPU
//! seconds), the figure to compare when the single client core saturates before the server.

use std::cell::Cell;
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi::fiber;
use gruvi::jsonrpc::{Config, Methods, Params, Peer, Server, connect};
use gruvi::stream::Address;

/// Concurrent callers of the second measurement.
const CALLERS: usize = 100;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (runs, secs) = (value_of("--runs", 3), value_of("--secs", 3));
    match args.first().map(String::as_str) {
        Some("--serve") => serve(),
        Some("--client") => {
            let addr = args[1].parse().expect("an address");
            let pid: u32 = args[2].parse().expect("the server's pid");
            fiber::run(|| client(&addr, pid, runs, Duration::from_secs(secs)))
        }
        _ => drive(runs, secs),
    }
}

/// Starts the pinned server and client processes and waits for the client.
fn drive(runs: u64, secs: u64) -> ExitCode {
    let me = std::env::current_exe().expect("own path");
    let pinned = Command::new("taskset").arg("-V").output().is_ok();
    let command = |cpu: &str| {
        if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu]).arg(&me);
            c
        } else {
            Command::new(&me)
        }
    };
    if !pinned {
        eprintln!("bench_jsonrpc: taskset not found, running unpinned");
    }
    let mut server = Killed(
        command("0")
            .arg("--serve")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server"),
    );
    let mut line = String::new();
    let stdout = server.0.stdout.take().expect("piped");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("the address")
        .to_owned();
    let status = command("1")
        .args(["--client", &addr, &server.0.id().to_string()])
        .args(["--runs", &runs.to_string(), "--secs", &secs.to_string()])
        .status()
        .expect("run the client");
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Kills and reaps the server however the driver ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server: `echo`, a notification sink `note`, and `notes` (how many arrived).
fn serve() -> ExitCode {
    fiber::run(|| {
        let notes = Rc::new(Cell::new(0u64));
        let mut methods = Methods::new();
        methods.add_raw("echo", |_, params: Params| Ok(params.into_value()));
        let n = notes.clone();
        methods.add_raw("note", move |_, _| {
            n.set(n.get() + 1);
            Ok(gruvi::jsonrpc::Value::Null)
        });
        methods.add("notes", move |_, ()| Ok(notes.get()));
        let server = Server::new(methods, Config::default());
        server
            .listen(&"127.0.0.1:0".parse().unwrap())
            .expect("listen");
        println!("listening on {}", server.addresses()[0]);
        // Runs until the driver kills it.
        fiber::sleep(Duration::from_secs(24 * 3600)).ok();
    });
    ExitCode::SUCCESS
}

/// The server's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// One measurement: count, wall time, server CPU time.
struct Sample {
    count: u64,
    wall: Duration,
    cpu: Duration,
}

fn measure(pid: u32, f: impl FnOnce() -> u64) -> Sample {
    let (cpu0, start) = (cpu_time(pid), Instant::now());
    let count = f();
    Sample {
        count,
        wall: start.elapsed(),
        cpu: cpu_time(pid) - cpu0,
    }
}

fn calls(peer: &Peer, callers: usize, dur: Duration) -> u64 {
    let deadline = Instant::now() + dur;
    let fibers: Vec<_> = (0..callers)
        .map(|_| {
            let peer = peer.clone();
            fiber::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let r: (u32, String) = peer.call("echo", (1, "x")).expect("echo");
                    assert_eq!(r.0, 1);
                    n += 1;
                }
                n
            })
        })
        .collect();
    fibers.into_iter().map(|f| f.join().unwrap()).sum()
}

fn notifications(peer: &Peer, dur: Duration) -> u64 {
    let before: u64 = peer.call("notes", ()).expect("notes");
    let deadline = Instant::now() + dur;
    let mut n = 0u64;
    while Instant::now() < deadline {
        for _ in 0..100 {
            peer.notify("note", (1, "x")).expect("notify");
        }
        n += 100;
        // Let the writer send (notify blocks only when the send buffer is full).
        fiber::yield_now().unwrap();
    }
    // Answered after the server read every notification before it; wait for them all.
    while peer.call::<u64>("notes", ()).expect("notes") - before < n {
        fiber::sleep(Duration::from_millis(1)).unwrap();
    }
    n
}

fn client(addr: &Address, pid: u32, runs: u64, dur: Duration) -> ExitCode {
    let peer = connect(addr, Methods::new(), Config::default()).expect("connect");
    // Warm up: workers spawned, buffers grown.
    calls(&peer, CALLERS, Duration::from_millis(300));
    type Bench<'a> = (&'a str, Box<dyn Fn() -> u64 + 'a>);
    let benches: [Bench; 3] = [
        ("jsonrpc_calls_1", Box::new(|| calls(&peer, 1, dur))),
        ("jsonrpc_calls_100", Box::new(|| calls(&peer, CALLERS, dur))),
        (
            "jsonrpc_notifications",
            Box::new(|| notifications(&peer, dur)),
        ),
    ];
    for (name, bench) in &benches {
        let mut samples: Vec<Sample> = (0..runs).map(|_| measure(pid, bench)).collect();
        let rate = |s: &Sample| s.count as f64 / s.wall.as_secs_f64();
        let per_core = |s: &Sample| s.count as f64 / s.cpu.as_secs_f64().max(1e-3);
        let cpu = |s: &Sample| 100.0 * s.cpu.as_secs_f64() / s.wall.as_secs_f64();
        samples.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        let m = &samples[samples.len() / 2];
        let all: Vec<String> = samples.iter().map(|s| format!("{:.0}", rate(s))).collect();
        println!(
            "RESULT name=gruvi_rs_{name} value={:.0} unit=per_s runs={}",
            rate(m),
            all.join(",")
        );
        println!(
            "RESULT name=gruvi_rs_{name}_server_cpu value={:.1} unit=percent",
            cpu(m)
        );
        println!(
            "RESULT name=gruvi_rs_{name}_per_server_core value={:.0} unit=per_s",
            per_core(m)
        );
    }
    peer.close();
    ExitCode::SUCCESS
}
