//! Fiber micro-benchmarks, printed in the `RESULT` format of `../shared/peers` so that its
//! `run.sh` can put them beside tokio, may, Go and corosensei.
//!
//! Run it with `cargo run --release --example bench_fibers [-- --million]`. It prints:
//!
//! - `gruvi_rs_switch`: one-way raw fiber switch (half a resume/suspend round trip, no Hub), the
//!   fiber doing an inexact f64 division before each switch (the case that boost.context's
//!   MXCSR restore, used until session 7, made slow). Anchor: the corosensei peer's
//!   resume/suspend.
//! - `gruvi_rs_yield`: two fibers alternating through the Hub with `yield_now()`, per handoff
//!   (total yields / elapsed). Anchors: tokio's and may's `yield_now`, Go's `Gosched`.
//! - `gruvi_rs_fiber`: spawn 100,000 fibers that each keep 64 bytes live and park on a
//!   [`SwitchBack`], until all have parked (`spawn_and_park_ns`), RSS growth per parked fiber,
//!   then wake them all and join them (`total_ns_per_task`, from the first spawn). Stacks are
//!   unguarded 16 KiB ones, the corosensei peer's size; guarded ones stop near 32k fibers at the
//!   default `vm.max_map_count`. Each run is a fresh process, as every peer's is, so that page
//!   faults on new memory are paid and RSS growth is not hidden by memory freed earlier.
//! - `gruvi_rs_lock_uncontended`: `Lock::acquire` + `release` with nobody else around, per pair
//!   (one compare-exchange and a plain store). Anchor: an uncontended `std::sync::Mutex` lock +
//!   unlock.
//! - `gruvi_rs_lock_handover`: two fibers passing a `Lock` back and forth, each release handing
//!   it to the other, waiting, fiber; per hand-over.
//! - `gruvi_rs_queue_handover`: two fibers playing ping-pong through two unbounded `Queue`s, each
//!   put handing the item to the other, waiting, fiber; per hand-over.
//!   The ping side is the root fiber (the closure given to `run`), so each hand-over is one
//!   switch between the root, which runs the scheduler, and the other fiber.
//! - `gruvi_rs_queue_handover_spawned`: the same with the ping side a spawned fiber too, so
//!   that each hand-over is two switches, fiber -> root (the scheduler) -> fiber.
//! - `gruvi_rs_channel_handover`: the same ping-pong through two unbounded channels.
//! - `gruvi_rs_cross_thread_wakeup`: the same ping-pong between fibers on two threads' Hubs; per
//!   one-way wake-up (through the other Hub's remote queue and its loop's eventfd).
//!
//! Every figure is the median of 5 runs (`--runs N` to change). `--million` instead parks one
//! million fibers once and reports the same figures for them. `--only NAME` runs only the
//! benchmarks whose name contains NAME (handy under a profiler).

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use gruvi::fiber::__private::{Coroutine, Outcome, suspend};
use gruvi::fiber::{
    Callback, Hub, Lock, Queue, StackConfig, StackPool, SwitchBack, channel, run, spawn, yield_now,
};

/// Resume/suspend round trips per raw-switch run.
const SWITCH_PAIRS: usize = 5_000_000;
/// Yields per fiber per yield run (the peers' `ITERS`).
const YIELD_ITERS: u64 = 5_000_000;
/// Fibers per spawn run (the peers' `SPAWN_N`).
const SPAWN_N: usize = 100_000;
/// Stack size of the spawned fibers.
const STACK_SIZE: usize = 16 * 1024;
/// The argument that makes this program one spawn run (a child of the main process).
/// A named micro-benchmark: its name, the decimals it is printed with, and the function that
/// measures it once.
type Bench = (&'static str, usize, &'static dyn Fn() -> f64);

const CHILD_FLAG: &str = "--spawn-child";
/// Lock + unlock pairs per uncontended-lock run.
const LOCK_PAIRS: u64 = 20_000_000;
/// Round trips per same-thread hand-over run (two hand-overs each).
const HANDOVER_ROUNDS: u64 = 1_000_000;
/// Round trips per cross-thread run (two wake-ups each).
const CROSS_THREAD_ROUNDS: u64 = 50_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| {
        let at = args.iter().position(|a| a == flag)?;
        let value = args
            .get(at + 1)
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        Some(
            value
                .parse::<usize>()
                .unwrap_or_else(|_| usage(&format!("bad {flag} {value}"))),
        )
    };
    if let Some(n) = value_of(CHILD_FLAG) {
        let run = spawn_park_wake_join(n);
        println!(
            "{} {} {}",
            run.spawn_and_park_ns, run.total_ns, run.rss_kib_per_fiber
        );
        return;
    }
    if args.iter().any(|a| a == "--million") {
        million();
        return;
    }
    let runs = value_of("--runs").unwrap_or(5).max(1);
    // `--only NAME` runs the benchmarks whose name contains NAME (for profiling one of them).
    let only = args.iter().position(|a| a == "--only").map(|at| {
        args.get(at + 1)
            .cloned()
            .unwrap_or_else(|| usage("--only needs a value"))
    });
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));

    // (name, decimals printed, benchmark)
    let benches: [Bench; 8] = [
        ("gruvi_rs_switch", 2, &|| raw_switch_ns(SWITCH_PAIRS)),
        ("gruvi_rs_yield", 1, &|| hub_yield_ns(YIELD_ITERS)),
        ("gruvi_rs_lock_uncontended", 2, &|| {
            lock_uncontended_ns(LOCK_PAIRS)
        }),
        ("gruvi_rs_lock_handover", 1, &|| {
            lock_handover_ns(HANDOVER_ROUNDS)
        }),
        ("gruvi_rs_queue_handover", 1, &|| {
            queue_handover_ns(HANDOVER_ROUNDS, false)
        }),
        ("gruvi_rs_queue_handover_spawned", 1, &|| {
            queue_handover_ns(HANDOVER_ROUNDS, true)
        }),
        ("gruvi_rs_channel_handover", 1, &|| {
            channel_handover_ns(HANDOVER_ROUNDS)
        }),
        ("gruvi_rs_cross_thread_wakeup", 0, &|| {
            cross_thread_wakeup_ns(CROSS_THREAD_ROUNDS)
        }),
    ];
    for (name, decimals, bench) in benches {
        if wanted(name) {
            let ns = median_of(runs, name, bench);
            println!("RESULT name={name} ns_per_switch={ns:.decimals$}");
        }
    }
    if !wanted("gruvi_rs_fiber") {
        return;
    }

    let spawns: Vec<SpawnRun> = (0..runs).map(|_| spawn_run_in_child(SPAWN_N)).collect();
    let field = |name: &str, get: fn(&SpawnRun) -> f64| {
        let values: Vec<f64> = spawns.iter().map(get).collect();
        println!("# gruvi_rs_fiber {name}: runs {}", list(&values));
        median(values)
    };
    let spawn_and_park = field("spawn_and_park_ns", |r| r.spawn_and_park_ns);
    let total = field("total_ns_per_task", |r| r.total_ns);
    let rss = field("rss_kib_per_task", |r| r.rss_kib_per_fiber);
    println!(
        "RESULT name=gruvi_rs_fiber n={SPAWN_N} spawn_and_park_ns={spawn_and_park:.0} \
         total_ns_per_task={total:.0} rss_kib_per_task={rss:.2}"
    );
}

fn usage(problem: &str) -> ! {
    eprintln!("bench_fibers: {problem}\nusage: bench_fibers [--runs N] [--only NAME] [--million]");
    std::process::exit(2)
}

/// Runs `bench` `runs` times, prints every run on a comment line and returns the median.
fn median_of(runs: usize, name: &str, bench: impl Fn() -> f64) -> f64 {
    let values: Vec<f64> = (0..runs).map(|_| bench()).collect();
    println!("# {name}: runs {} ns", list(&values));
    median(values)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Nanoseconds per one-way raw switch, on a fresh thread; the fiber does f64 math.
fn raw_switch_ns(pairs: usize) -> f64 {
    std::thread::spawn(move || {
        let pool = StackPool::new(StackConfig::new());
        let mut co = Coroutine::new(pool.get().expect("a stack"), |mut data| {
            let mut x = 1.0f64;
            loop {
                // Inexact: sets MXCSR's status bits on this side only.
                x = black_box(x) / 3.0 + 1.0;
                data = suspend(data.wrapping_add(x as usize));
            }
        });
        // Warm-up, then the timed loop, written out rather than shared through a closure (see
        // fiber-core/benches/switch.rs: a call returning right after a switch mispredicts).
        for i in 0..pairs / 50 {
            if let Outcome::Finished(_) = co.resume(i) {
                unreachable!("the coroutine loops forever");
            }
        }
        let start = Instant::now();
        for i in 0..pairs {
            match co.resume(i) {
                Outcome::Suspended(value) => black_box(value),
                Outcome::Finished(_) => unreachable!("the coroutine loops forever"),
            };
        }
        start.elapsed().as_nanos() as f64 / (2 * pairs) as f64
    })
    .join()
    .expect("switch benchmark thread")
}

/// Nanoseconds per handoff between two fibers yielding to each other through the Hub, on a
/// fresh thread with a fresh Hub.
fn hub_yield_ns(iters: u64) -> f64 {
    std::thread::spawn(move || {
        run(|| {
            let start = Instant::now();
            let yielder = move || {
                for _ in 0..iters {
                    yield_now().expect("yield");
                }
            };
            let a = spawn(yielder);
            let b = spawn(yielder);
            a.join().expect("fiber a");
            b.join().expect("fiber b");
            start.elapsed().as_nanos() as f64 / (2 * iters) as f64
        })
    })
    .join()
    .expect("yield benchmark thread")
}

/// One spawn run's figures.
struct SpawnRun {
    /// From the first spawn until every fiber has parked, per fiber.
    spawn_and_park_ns: f64,
    /// From the first spawn until every fiber is joined, per fiber.
    total_ns: f64,
    /// RSS growth while all fibers are parked, per fiber.
    rss_kib_per_fiber: f64,
}

/// Runs [`spawn_park_wake_join`] in a fresh process (this program with `--spawn-child n`).
fn spawn_run_in_child(n: usize) -> SpawnRun {
    let exe = std::env::current_exe().expect("own path");
    let output = Command::new(exe)
        .args([CHILD_FLAG, &n.to_string()])
        .output()
        .expect("run the spawn child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let figures: Vec<f64> = stdout
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match (output.status.success(), figures.as_slice()) {
        (true, &[spawn_and_park_ns, total_ns, rss_kib_per_fiber]) => SpawnRun {
            spawn_and_park_ns,
            total_ns,
            rss_kib_per_fiber,
        },
        _ => panic!(
            "spawn child failed: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Spawns `n` fibers that park, measures, wakes and joins them: the peers' spawn benchmark.
fn spawn_park_wake_join(n: usize) -> SpawnRun {
    run(|| {
        Hub::current().set_stack_config(StackConfig::unguarded().stack_size(STACK_SIZE));
        let started = Rc::new(Cell::new(0usize));
        let before = rss_kib();
        let start = Instant::now();
        // The wake-up side of every parked fiber; like the peers' handle vectors, allocated
        // after the first RSS reading so that it counts.
        let gate: Rc<RefCell<Vec<Callback<()>>>> = Rc::new(RefCell::new(Vec::with_capacity(n)));
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let gate = gate.clone();
            let started = started.clone();
            handles.push(spawn(move || {
                // A little live state, like a real handler (and like every peer's task).
                let mut buf = [0u8; 64];
                buf[0] = 1;
                let parked = SwitchBack::new();
                gate.borrow_mut().push(parked.callback());
                started.set(started.get() + 1);
                parked.wait().expect("woken");
                black_box(&buf);
            }));
        }
        // The fibers are queued: let each run until it parks.
        while started.get() < n {
            yield_now().expect("yield");
        }
        let spawn_and_park_ns = start.elapsed().as_nanos() as f64 / n as f64;
        let after = rss_kib();
        for wake in gate.take() {
            wake.call(());
        }
        for handle in handles {
            handle.join().expect("parked fiber");
        }
        SpawnRun {
            spawn_and_park_ns,
            total_ns: start.elapsed().as_nanos() as f64 / n as f64,
            rss_kib_per_fiber: after.saturating_sub(before) as f64 / n as f64,
        }
    })
}

/// Parks one million fibers on unguarded stacks, then wakes and joins them.
fn million() {
    const N: usize = 1_000_000;
    let before = rss_kib();
    let run = spawn_park_wake_join(N);
    println!(
        "RESULT name=gruvi_rs_fiber_million n={N} spawn_and_park_ns={:.0} total_ns_per_task={:.0} \
         rss_kib_per_task={:.2}",
        run.spawn_and_park_ns, run.total_ns, run.rss_kib_per_fiber
    );
    let parked_mib = run.rss_kib_per_fiber * N as f64 / 1024.0;
    println!(
        "# {N} parked fibers took {parked_mib:.0} MiB of RSS (process RSS before: {} MiB)",
        before / 1024
    );
}

/// The process's resident set in KiB (`VmRSS`, as every peer reads it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Nanoseconds per uncontended `Lock` acquire + release, on a fresh thread with a Hub.
fn lock_uncontended_ns(pairs: u64) -> f64 {
    std::thread::spawn(move || {
        run(|| {
            let lock = Lock::new();
            let start = Instant::now();
            for _ in 0..pairs {
                black_box(&lock).acquire().expect("free lock");
                black_box(&lock).release();
            }
            start.elapsed().as_nanos() as f64 / pairs as f64
        })
    })
    .join()
    .expect("lock benchmark thread")
}

/// Nanoseconds per hand-over of a `Lock` between the root and a fiber, each waiting for the
/// other's release.
fn lock_handover_ns(rounds: u64) -> f64 {
    std::thread::spawn(move || {
        run(|| {
            let lock = Arc::new(Lock::new());
            lock.acquire().expect("free lock");
            let other = {
                let lock = lock.clone();
                spawn(move || {
                    for _ in 0..rounds {
                        lock.acquire().expect("handed over");
                        lock.release();
                    }
                })
            };
            yield_now().expect("let the other queue up");
            let start = Instant::now();
            for _ in 0..rounds {
                lock.release();
                lock.acquire().expect("handed back");
            }
            let elapsed = start.elapsed();
            lock.release();
            other.join().expect("lock fiber");
            elapsed.as_nanos() as f64 / (2 * rounds) as f64
        })
    })
    .join()
    .expect("lock hand-over benchmark thread")
}

/// Nanoseconds per item handed over between two fibers through `Queue`s: a ping-pong, each
/// put finding the other fiber waiting in `get`. The ping side is the root (the closure of
/// `run`), or with `spawned` a fiber of its own, so that each hand-over goes from a fiber
/// through the scheduler to another fiber: two switches instead of one.
fn queue_handover_ns(rounds: u64, spawned: bool) -> f64 {
    std::thread::spawn(move || {
        run(|| {
            let (ping, pong) = (Arc::new(Queue::new(0)), Arc::new(Queue::new(0)));
            let other = {
                let (ping, pong) = (ping.clone(), pong.clone());
                spawn(move || {
                    for _ in 0..rounds {
                        let item: u64 = ping.get().expect("ping");
                        pong.put(item).expect("pong");
                    }
                })
            };
            let pinger = move || {
                yield_now().expect("let the other wait");
                let start = Instant::now();
                for i in 0..rounds {
                    ping.put(i).expect("ping");
                    black_box(pong.get().expect("pong"));
                }
                start.elapsed()
            };
            let elapsed = if spawned {
                spawn(pinger).join().expect("ping fiber")
            } else {
                pinger()
            };
            other.join().expect("queue fiber");
            elapsed.as_nanos() as f64 / (2 * rounds) as f64
        })
    })
    .join()
    .expect("queue hand-over benchmark thread")
}

/// Nanoseconds per item handed over between two fibers through unbounded channels: the
/// queue ping-pong with `Sender::send` and `Receiver::recv`.
fn channel_handover_ns(rounds: u64) -> f64 {
    std::thread::spawn(move || {
        run(|| {
            let (ping_tx, ping_rx) = channel::unbounded::<u64>();
            let (pong_tx, pong_rx) = channel::unbounded::<u64>();
            let other = spawn(move || {
                for _ in 0..rounds {
                    let item = ping_rx.recv().expect("ping");
                    pong_tx.send(item).expect("pong");
                }
            });
            yield_now().expect("let the other wait");
            let start = Instant::now();
            for i in 0..rounds {
                ping_tx.send(i).expect("ping");
                black_box(pong_rx.recv().expect("pong"));
            }
            let elapsed = start.elapsed();
            other.join().expect("channel fiber");
            elapsed.as_nanos() as f64 / (2 * rounds) as f64
        })
    })
    .join()
    .expect("channel hand-over benchmark thread")
}

/// Nanoseconds per one-way wake-up of a fiber by a fiber on another thread: the queue
/// ping-pong between two threads, each with its own Hub.
fn cross_thread_wakeup_ns(rounds: u64) -> f64 {
    let (ping, pong) = (Arc::new(Queue::new(0)), Arc::new(Queue::new(0)));
    let other = {
        let (ping, pong) = (ping.clone(), pong.clone());
        std::thread::spawn(move || {
            run(|| {
                for _ in 0..=rounds {
                    let item: u64 = ping.get().expect("ping");
                    pong.put(item).expect("pong");
                }
            })
        })
    };
    let elapsed = std::thread::spawn(move || {
        run(|| {
            // One round to let the other thread start and park.
            ping.put(0).expect("ping");
            pong.get().expect("pong");
            let start = Instant::now();
            for i in 0..rounds {
                ping.put(i).expect("ping");
                black_box(pong.get().expect("pong"));
            }
            start.elapsed()
        })
    })
    .join()
    .expect("cross-thread benchmark thread");
    other.join().expect("cross-thread partner");
    elapsed.as_nanos() as f64 / (2 * rounds) as f64
}
