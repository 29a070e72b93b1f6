//! Stack limits through the fiber API: an overflowing fiber is named before the process dies,
//! the guarded-stack limit gives a clean error, and unguarded stacks hold a million fibers.
//!
//! Each test runs its body in a child process: this test binary re-run on itself with
//! `FIBER_CORE_LIMITS_CHILD` set (as in `stack_overflow.rs`). The child does the damage or the
//! heavy lifting; the parent checks its exit status and what it printed.

mod support;

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::rc::Rc;

use fiber_core::{
    Builder, Callback, Error, Hub, StackConfig, StackPool, SwitchBack, spawn, yield_now,
};
use support::run_clean;

const CHILD_ENV: &str = "FIBER_CORE_LIMITS_CHILD";

/// Runs the test `name` of this binary in a child process with `CHILD_ENV` set.
fn run_child(name: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap()
}

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The text the child printed after `CHILD ` (the test harness prints the test name before it).
fn child_line(stdout: &str) -> &str {
    let line = stdout.lines().find_map(|line| line.split_once("CHILD "));
    line.unwrap_or_else(|| panic!("no CHILD line in:\n{stdout}"))
        .1
}

/// The value of `key=` in a child's line.
fn field(line: &str, key: &str) -> usize {
    let value = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
    value
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Recurses until the stack runs out.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 512]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(u64::from(frame[0]))
}

/// Spawns a fiber that keeps a little state live and parks on a [`SwitchBack`] whose callback
/// it leaves in `gate`; when the wait ends, `cancelled` counts it if it was cancelled.
fn spawn_parked(
    builder: Builder,
    gate: &Rc<RefCell<Vec<Callback<()>>>>,
    cancelled: &Rc<Cell<usize>>,
) -> io::Result<fiber_core::JoinHandle<()>> {
    let gate = gate.clone();
    let cancelled = cancelled.clone();
    builder.spawn(move || {
        let buf = black_box([1u8; 64]);
        let parked = SwitchBack::new();
        gate.borrow_mut().push(parked.callback());
        match parked.wait() {
            Ok(()) => {}
            Err(Error::Cancelled) => cancelled.set(cancelled.get() + 1),
            Err(other) => panic!("parked fiber woke with {other}"),
        }
        black_box(buf);
    })
}

#[test]
fn overflow_in_a_named_fiber_prints_its_name_and_id_and_kills_the_process() {
    if in_child() {
        fiber_core::run(|| {
            let deep = Builder::new()
                .name("deep-recursion")
                .stack_size(64 * 1024)
                .spawn(|| recurse(0))
                .unwrap();
            println!("CHILD id={}", deep.fiber().id());
            let _ = deep.join();
        });
        unreachable!("the fiber overflowed");
    }
    let output =
        run_child("overflow_in_a_named_fiber_prints_its_name_and_id_and_kills_the_process");
    let stderr = stderr_of(&output);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "{:?}\n{stderr}",
        output.status
    );
    let id = field(child_line(&String::from_utf8_lossy(&output.stdout)), "id");
    let expected =
        format!("fiber 'deep-recursion' (id {id}) overflowed its stack of 65536 bytes\n");
    assert!(stderr.contains(&expected), "stderr:\n{stderr}");
}

#[test]
fn spawning_guarded_fibers_past_the_map_count_limit_fails_cleanly() {
    if in_child() {
        let limit = StackPool::guarded_stack_limit().expect("vm.max_map_count is readable");
        let gate = Rc::new(RefCell::new(Vec::new()));
        let cancelled = Rc::new(Cell::new(0));
        let mut handles = Vec::new();
        let hub = Hub::current();
        let error = loop {
            let builder = Builder::new().stack_size(16 * 1024);
            match spawn_parked(builder, &gate, &cancelled) {
                Ok(handle) => handles.push(handle),
                Err(error) => break error,
            }
            if handles.len() % 1024 == 0 {
                // Let the new fibers run until they park, as a server's would.
                yield_now().unwrap();
            }
        };
        yield_now().unwrap();
        assert_eq!(gate.borrow().len(), handles.len(), "every fiber parked");
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        println!("CHILD count={} limit={limit} error={error}", handles.len());
        // Closing the Hub cancels the parked fibers; each sees `Cancelled` and finishes.
        assert_eq!(hub.close(), 0, "libuv handles left open");
        assert!(handles.iter().all(|h| h.is_finished()));
        assert_eq!(cancelled.get(), handles.len());
        drop(handles);
        drop(gate);
        drop(hub);
        // Their stacks are back: a new Hub can spawn guarded fibers again.
        run_clean(|| assert_eq!(spawn(|| 7).join().unwrap(), 7));
        return;
    }
    if StackPool::guarded_stack_limit().is_none_or(|limit| limit > 100_000) {
        eprintln!("skipped: vm.max_map_count is unreadable or too large to exhaust quickly");
        return;
    }
    let output = run_child("spawning_guarded_fibers_past_the_map_count_limit_fails_cleanly");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr_of(&output));
    let line = child_line(&stdout);
    assert_eq!(field(line, "count"), field(line, "limit"), "{line}");
    assert!(line.contains("vm.max_map_count"), "{line}");
    assert!(line.contains("StackConfig::unguarded"), "{line}");
}

#[test]
fn a_million_parked_fibers_fit_on_unguarded_stacks() {
    const FIBERS: usize = 1_000_000;
    const STACK_SIZE: usize = 16 * 1024;
    if in_child() {
        run_clean(|| {
            let gate = Rc::new(RefCell::new(Vec::with_capacity(FIBERS)));
            let cancelled = Rc::new(Cell::new(0));
            // The same fiber on a guarded stack of the same size first: if its frames ever
            // outgrew the stack, this overflow would be reported instead of an unguarded one
            // silently overwriting a neighbour.
            let probe = spawn_parked(Builder::new().stack_size(STACK_SIZE), &gate, &cancelled);
            yield_now().unwrap();
            gate.take()
                .into_iter()
                .for_each(|wake| assert!(wake.call(())));
            probe.unwrap().join().unwrap();

            // Ended fibers' stacks stay cached rather than each going back to the kernel with
            // its own `madvise` (a million system calls this test is not about); the process
            // exits right after.
            let config = StackConfig::unguarded()
                .stack_size(STACK_SIZE)
                .max_cached(FIBERS);
            Hub::current().set_stack_config(config);
            let handles: Vec<_> = (0..FIBERS)
                .map(|_| spawn_parked(Builder::new(), &gate, &cancelled).unwrap())
                .collect();
            yield_now().unwrap();
            assert_eq!(gate.borrow().len(), FIBERS, "every fiber parked");
            let rss = rss_kib();
            let woken = gate.take().into_iter().filter(|wake| wake.call(())).count();
            assert_eq!(woken, FIBERS);
            let mut joined = 0;
            for handle in handles {
                handle.join().unwrap();
                joined += 1;
            }
            assert_eq!(joined, FIBERS);
            assert_eq!(cancelled.get(), 0);
            println!("CHILD joined={joined} rss_mib={}", rss / 1024);
        });
        return;
    }
    let output = run_child("a_million_parked_fibers_fit_on_unguarded_stacks");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr_of(&output));
    let line = child_line(&stdout);
    assert_eq!(field(line, "joined"), FIBERS, "{line}");
    eprintln!("{line}");
}

/// The process's resident set in KiB.
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .unwrap();
    line.split_whitespace().next().unwrap().parse().unwrap()
}
