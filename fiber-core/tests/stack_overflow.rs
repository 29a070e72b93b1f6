//! Stack overflows and exhausted mappings, each tried in a child process.
//!
//! Each test re-runs this test binary on itself with `FIBER_CORE_STACK_CHILD` set; the child
//! does the damage and the parent checks its exit status and output.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use fiber_core::__private::{Coroutine, Outcome, set_current_identity};
use fiber_core::{StackConfig, StackPool};

const CHILD_ENV: &str = "FIBER_CORE_STACK_CHILD";

/// Runs the test `name` of this binary in a child process with `CHILD_ENV` set, optionally under
/// `ulimit -v <kib>`.
fn run_child(name: &str, address_space_kib: Option<u64>) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut command = match address_space_kib {
        Some(kib) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                .arg(exe);
            sh
        }
        None => Command::new(exe),
    };
    command
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

#[test]
fn overflow_in_a_fiber_prints_its_name_and_id_and_aborts() {
    if in_child() {
        let pool = StackPool::new(StackConfig::new().stack_size(64 * 1024));
        let mut co = Coroutine::new(pool.get().unwrap(), |_| recurse(0) as usize);
        co.set_identity(42, "overflower");
        co.resume(0);
        unreachable!("the fiber overflowed");
    }
    let output = run_child(
        "overflow_in_a_fiber_prints_its_name_and_id_and_aborts",
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "{:?}\n{stderr}",
        output.status
    );
    let expected = "fiber 'overflower' (id 42) overflowed its stack of 65536 bytes\n";
    assert!(stderr.contains(expected), "stderr:\n{stderr}");
}

#[test]
fn overflow_in_a_nested_fiber_on_another_thread_names_the_inner_fiber() {
    if in_child() {
        let thread = std::thread::spawn(|| {
            let pool = StackPool::new(StackConfig::new().stack_size(32 * 1024));
            let inner_pool = pool.clone();
            let mut outer = Coroutine::new(pool.get().unwrap(), move |_| {
                let mut inner = Coroutine::new(inner_pool.get().unwrap(), |_| {
                    assert!(set_current_identity(7, "inner fiber"));
                    recurse(0) as usize
                });
                inner.resume(0);
                0
            });
            outer.set_identity(1, "outer fiber");
            outer.resume(0);
        });
        let _ = thread.join();
        unreachable!("the fiber overflowed");
    }
    let name = "overflow_in_a_nested_fiber_on_another_thread_names_the_inner_fiber";
    let output = run_child(name, None);
    let stderr = stderr_of(&output);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "{:?}\n{stderr}",
        output.status
    );
    let expected = "fiber 'inner fiber' (id 7) overflowed its stack of 32768 bytes\n";
    assert!(stderr.contains(expected), "stderr:\n{stderr}");
}

#[test]
fn overflow_of_a_thread_stack_still_gets_rusts_report() {
    if in_child() {
        // Install the fiber handler first, so that it must pass the fault on.
        let pool = StackPool::default();
        let mut co = Coroutine::new(pool.get().unwrap(), |x| x);
        assert!(matches!(co.resume(0), Outcome::Finished(Ok(0))));
        let thread = std::thread::Builder::new()
            .name("deep".into())
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = thread.join();
        unreachable!("the thread overflowed");
    }
    let output = run_child("overflow_of_a_thread_stack_still_gets_rusts_report", None);
    let stderr = stderr_of(&output);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        output.status.signal().is_some(),
        "{:?}\n{stderr}",
        output.status
    );
    let report = stderr
        .lines()
        .find(|line| line.starts_with("thread 'deep'"));
    let report = report.unwrap_or_else(|| panic!("no report in stderr:\n{stderr}"));
    assert!(
        report.ends_with("has overflowed its stack"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("fiber '"), "stderr:\n{stderr}");
}

#[test]
fn guarded_stacks_stop_at_the_map_count_limit_with_a_clear_error() {
    let limit = StackPool::guarded_stack_limit();
    if in_child() {
        let pool = StackPool::new(StackConfig::new().stack_size(16 * 1024).max_cached(0));
        let mut stacks = Vec::new();
        let error = loop {
            match pool.get() {
                Ok(stack) => stacks.push(stack),
                Err(error) => break error,
            }
        };
        assert_eq!(error.kind(), std::io::ErrorKind::OutOfMemory);
        println!("CHILD count={} error={error}", stacks.len());
        // The rest of the program can still map memory, and unguarded stacks still work.
        let big = vec![1u8; 64 << 20];
        assert_eq!(big.iter().map(|&b| usize::from(b)).sum::<usize>(), 64 << 20);
        let unguarded = StackPool::new(StackConfig::unguarded());
        let mut co = Coroutine::new(unguarded.get().unwrap(), |x| x + 1);
        assert!(matches!(co.resume(1), Outcome::Finished(Ok(2))));
        // Ending fibers makes room again.
        stacks.truncate(stacks.len() - 10);
        assert!(pool.get().is_ok());
        return;
    }
    let Some(limit) = limit.filter(|&limit| limit <= 100_000) else {
        eprintln!("skipped: vm.max_map_count is unreadable or too large to exhaust quickly");
        return;
    };
    let output = run_child(
        "guarded_stacks_stop_at_the_map_count_limit_with_a_clear_error",
        None,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr_of(&output));
    let line = child_line(&stdout);
    assert!(line.starts_with(&format!("count={limit} error=")), "{line}");
    assert!(line.contains("vm.max_map_count"), "{line}");
    assert!(line.contains("StackConfig::unguarded"), "{line}");
}

#[test]
fn exhausted_address_space_gives_a_clear_error() {
    if in_child() {
        let pool = StackPool::new(StackConfig::new().max_cached(0));
        let mut stacks = Vec::new();
        let error = loop {
            match pool.get() {
                Ok(stack) => stacks.push(stack),
                Err(error) => break error,
            }
        };
        drop(stacks);
        assert_eq!(error.kind(), std::io::ErrorKind::OutOfMemory);
        let source = error.get_ref().and_then(|inner| inner.source());
        let os = source.and_then(|source| source.downcast_ref::<std::io::Error>());
        assert_eq!(
            os.and_then(std::io::Error::raw_os_error),
            Some(libc::ENOMEM)
        );
        println!("CHILD error={error}");
        return;
    }
    // 2 GiB of address space: a few thousand 256 KiB stacks, far below the map-count limit.
    let output = run_child("exhausted_address_space_gives_a_clear_error", Some(2 << 20));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr_of(&output));
    let line = child_line(&stdout);
    assert!(line.contains("ulimit -v"), "{line}");
    assert!(line.contains("vm.max_map_count"), "{line}");
    assert!(line.contains("StackConfig::unguarded"), "{line}");
}
