//! D-Bus method-call throughput: peer to peer (our server, no daemon) and through a private
//! `dbus-daemon`, each as separate processes, with every process's CPU time per call.
//!
//! ```text
//! cargo run --release --example bench_dbus [-- --runs N --p2p-calls N --bus-calls N]
//! ```
//!
//! Peer to peer, the server process is pinned to CPU 0 and the client process to CPU 1 (with
//! `taskset`, when installed); the figure to look at is calls per second of server CPU time
//! ("per server core"). Through the bus, the daemon, the service and the client are separate
//! processes; the CPU time per call of each is printed. Each figure is the median of the runs.
//! CPU times are read from `/proc/PID/task/*/schedstat` (nanoseconds on CPU).
//!
//! The same binary is the server (`--serve-p2p ADDR`), the bus service (`--serve-bus ADDR`)
//! and the client (`--client ...`) that the benchmark starts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi::dbus::{Connection, Interface, Server};
use gruvi::fiber;

const PATH: &str = "/com/example/Bench";
const IFACE: &str = "com.example.Bench";
const NAME: &str = "com.example.Bench";

fn interface() -> Interface {
    Interface::new(IFACE).method("Echo", ("text",), ("text",), |_, (text,): (String,)| {
        Ok((text,))
    })
}

/// Nanoseconds on CPU of every thread of `pid`.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn ready(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {what}");
    let _ = out.flush();
}

/// Serves the interface peer to peer until SIGINT/SIGTERM.
fn serve_p2p(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let signal = fiber::spawn(|| fiber::wait_for_signal(&[libc::SIGINT, libc::SIGTERM]));
    let server = Server::new();
    server.export(PATH, interface())?;
    let listening = server.listen(address)?;
    ready(&listening);
    signal.join().map_err(|e| e.to_string())??;
    server.close()?;
    Ok(())
}

/// Exports the interface on a bus under [`NAME`] until SIGINT/SIGTERM.
fn serve_bus(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let signal = fiber::spawn(|| fiber::wait_for_signal(&[libc::SIGINT, libc::SIGTERM]));
    let connection = Connection::connect(address)?;
    connection.export(PATH, interface())?;
    connection.request_name(NAME, 0)?;
    ready(NAME);
    signal.join().map_err(|e| e.to_string())??;
    connection.close();
    Ok(())
}

/// Makes `calls` calls over `conns` connections with `fibers` fibers each, and prints
/// `done SECONDS CLIENT_CPU_NS PID:CPU_NS...` for itself and the watched processes.
fn client(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [address, dest, calls, conns, fibers, watched] = args else {
        return Err("--client ADDR DEST CALLS CONNS FIBERS PIDS".into());
    };
    let (calls, conns, fibers): (usize, usize, usize) =
        (calls.parse()?, conns.parse()?, fibers.parse()?);
    let watched: Vec<u32> = watched.split(',').filter_map(|p| p.parse().ok()).collect();
    let dest = if dest == "-" { "" } else { dest.as_str() };
    let connections = (0..conns)
        .map(|_| Connection::connect(address))
        .collect::<Result<Vec<_>, _>>()?;
    // Warm up every connection.
    for c in &connections {
        c.call_method::<_, (String,)>(dest, PATH, IFACE, "Echo", ("warm",))?;
    }
    let left = Rc::new(std::cell::Cell::new(calls));
    let me = std::process::id();
    let before: Vec<u64> = watched.iter().map(|&p| cpu_ns(p)).collect();
    let my_before = cpu_ns(me);
    let start = Instant::now();
    let mut workers = Vec::new();
    for c in &connections {
        for _ in 0..fibers {
            let (c, left, dest) = (c.clone(), left.clone(), dest.to_owned());
            workers.push(fiber::spawn(move || -> Result<(), gruvi::dbus::Error> {
                while left.get() > 0 {
                    left.set(left.get() - 1);
                    let (echo,): (String,) =
                        c.call_method(&dest, PATH, IFACE, "Echo", ("ping",))?;
                    assert_eq!(echo, "ping");
                }
                Ok(())
            }));
        }
    }
    for worker in workers {
        worker.join().map_err(|e| e.to_string())??;
    }
    let secs = start.elapsed().as_secs_f64();
    let mine = cpu_ns(me) - my_before;
    let others: Vec<String> = watched
        .iter()
        .zip(before)
        .map(|(&p, b)| format!("{p}:{}", cpu_ns(p) - b))
        .collect();
    println!("done {secs} {mine} {}", others.join(" "));
    for c in connections {
        c.close();
    }
    Ok(())
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first so that servers exit cleanly; then make sure.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(50));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program args` (on `cpu` with taskset when given) and reads its first line.
fn start(cpu: Option<u32>, program: &str, args: &[&str]) -> (Proc, String) {
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string(), program]);
            c
        }
        None => Command::new(program),
    };
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the first line");
    (Proc(child), line.trim().to_owned())
}

struct Sample {
    calls_per_sec: f64,
    client_us: f64,
    others_us: Vec<f64>,
}

/// Runs the client and parses its `done` line.
fn run_client(
    cpu: Option<u32>,
    address: &str,
    dest: &str,
    calls: usize,
    watched: &[u32],
) -> Sample {
    let me = std::env::current_exe().expect("own path");
    let pids: Vec<String> = watched.iter().map(u32::to_string).collect();
    let calls_s = calls.to_string();
    let (_client, line) = start(
        cpu,
        me.to_str().expect("utf-8 path"),
        &[
            "--client",
            address,
            dest,
            &calls_s,
            "4",
            "16",
            &pids.join(","),
        ],
    );
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"done"), "client said {line:?}");
    let secs: f64 = fields[1].parse().expect("seconds");
    let mine: f64 = fields[2].parse().expect("cpu");
    let per_call = |ns: f64| ns / calls as f64 / 1000.0;
    Sample {
        calls_per_sec: calls as f64 / secs,
        client_us: per_call(mine),
        others_us: fields[3..]
            .iter()
            .map(|f| {
                per_call(
                    f.split(':')
                        .nth(1)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0.0),
                )
            })
            .collect(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn orchestrate(runs: usize, p2p_calls: usize, bus_calls: usize) {
    let me = std::env::current_exe().expect("own path");
    let me = me.to_str().expect("utf-8 path");
    let taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let (server_cpu, client_cpu) = if taskset {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "bench_dbus: {runs} runs each; load average at start {}",
        load.trim()
    );
    println!("  client: 4 connections x 16 fibers, Echo(\"ping\") -> \"ping\"");

    let mut p2p = Vec::new();
    for _ in 0..runs {
        let (server, ready) = start(
            server_cpu,
            me,
            &["--serve-p2p", &format!("unix:dir={}", dir.path().display())],
        );
        let address = ready.strip_prefix("ready ").expect("ready line").to_owned();
        let pid = server_pid(&server);
        p2p.push(run_client(client_cpu, &address, "-", p2p_calls, &[pid]));
        drop(server);
    }
    let server_us = median(p2p.iter().map(|s| s.others_us[0]).collect());
    println!(
        "peer to peer ({p2p_calls} calls{}): {:.0} calls/s; server {:.2} us CPU/call = {:.0} calls per server-core second; client {:.2} us CPU/call",
        if taskset {
            ", server on CPU 0, client on CPU 1"
        } else {
            ""
        },
        median(p2p.iter().map(|s| s.calls_per_sec).collect()),
        server_us,
        1e6 / server_us,
        median(p2p.iter().map(|s| s.client_us).collect()),
    );

    let mut bus = Vec::new();
    for _ in 0..runs {
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<busconfig><type>session</type><listen>unix:path={}/bus</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/>
<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>"#,
                dir.path().display()
            ),
        )
        .expect("bus.conf");
        let (daemon, address) = start(
            None,
            "dbus-daemon",
            &[
                &format!("--config-file={}", config.display()),
                "--print-address=1",
                "--nofork",
                "--nopidfile",
                "--nosyslog",
            ],
        );
        let (service, _) = start(None, me, &["--serve-bus", &address]);
        let pids = [daemon.0.id(), server_pid(&service)];
        bus.push(run_client(None, &address, NAME, bus_calls, &pids));
        drop(service);
        drop(daemon);
    }
    println!(
        "through dbus-daemon ({bus_calls} calls): {:.0} calls/s; CPU per call: client {:.2} us, dbus-daemon {:.2} us, service {:.2} us",
        median(bus.iter().map(|s| s.calls_per_sec).collect()),
        median(bus.iter().map(|s| s.client_us).collect()),
        median(bus.iter().map(|s| s.others_us[0]).collect()),
        median(bus.iter().map(|s| s.others_us[1]).collect()),
    );
}

/// The pid of the benchmark process inside a `taskset` wrapper (taskset execs, so it is the
/// child's own pid either way).
fn server_pid(proc: &Proc) -> u32 {
    proc.0.id()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result: Result<(), Box<dyn std::error::Error>> = match args.first().map(String::as_str) {
        Some("--serve-p2p") => fiber::run(|| serve_p2p(&args[1])),
        Some("--serve-bus") => fiber::run(|| serve_bus(&args[1])),
        Some("--client") => fiber::run(|| client(&args[1..])),
        _ => {
            let mut runs = 3;
            let mut p2p_calls = 200_000;
            let mut bus_calls = 50_000;
            let mut it = args.iter();
            while let Some(flag) = it.next() {
                let value = it.next().and_then(|v| v.parse().ok());
                match (flag.as_str(), value) {
                    ("--runs", Some(v)) => runs = v,
                    ("--p2p-calls", Some(v)) => p2p_calls = v,
                    ("--bus-calls", Some(v)) => bus_calls = v,
                    _ => {
                        eprintln!("usage: bench_dbus [--runs N] [--p2p-calls N] [--bus-calls N]");
                        return ExitCode::from(2);
                    }
                }
            }
            orchestrate(runs.max(1), p2p_calls, bus_calls);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench_dbus: {err}");
            ExitCode::FAILURE
        }
    }
}
