//! One-way raw context switch cost (`Coroutine::resume` / `suspend`, no Hub), with and without f64
//! math on either side (boost.context's switch, used before, restored MXCSR on every switch,
//! which was slow when the two sides' exception status bits differed; ours leaves MXCSR alone).
//!
//! Run with `cargo bench -p fiber-core --bench switch [-- <name substring>...]`. Each variant runs 5 times on a fresh
//! thread; the `RESULT` line gives the median, in the format of `../shared/peers`.

use std::hint::black_box;
use std::time::Instant;

use fiber_core::__private::{Coroutine, Outcome, suspend};
use fiber_core::{StackConfig, StackPool};

const SWITCH_PAIRS: usize = 5_000_000;
const WARMUP_PAIRS: usize = 100_000;
const RUNS: usize = 5;

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    /// The coroutine does an inexact f64 division before each switch.
    coroutine_math: bool,
    /// The resumer does one too.
    resumer_math: bool,
}

/// Nanoseconds per one-way switch for one run of `variant`, on a fresh thread.
fn run_once(variant: Variant) -> f64 {
    std::thread::spawn(move || {
        let pool = StackPool::new(StackConfig::new());
        let math = variant.coroutine_math;
        let mut co = Coroutine::new(pool.get().expect("stack"), move |mut data| {
            let mut x = 1.0f64;
            loop {
                if math {
                    x = black_box(x) / 3.0 + 1.0;
                }
                data = suspend(data.wrapping_add(x as usize));
            }
        });
        // The loop body is written out twice (warm-up and timed) rather than put in a closure:
        // returning from a call right after a switch costs a mispredicted return, since the
        // switch ends in `jmp` rather than `ret`; the corosensei peer bench has no such call.
        let mut y = 1.0f64;
        for i in 0..WARMUP_PAIRS {
            if variant.resumer_math {
                y = black_box(y) / 3.0 + 1.0;
            }
            if let Outcome::Finished(_) = co.resume(i) {
                unreachable!("the coroutine loops forever");
            }
        }
        let start = Instant::now();
        for i in 0..SWITCH_PAIRS {
            if variant.resumer_math {
                y = black_box(y) / 3.0 + 1.0;
            }
            match co.resume(i) {
                Outcome::Suspended(value) => black_box(value),
                Outcome::Finished(_) => unreachable!("the coroutine loops forever"),
            };
        }
        let elapsed = start.elapsed();
        elapsed.as_nanos() as f64 / (2 * SWITCH_PAIRS) as f64
    })
    .join()
    .expect("benchmark thread")
}

fn main() {
    let variants = [
        Variant {
            name: "gruvi_rs_rawswitch",
            coroutine_math: false,
            resumer_math: false,
        },
        Variant {
            name: "gruvi_rs_rawswitch_fp",
            coroutine_math: true,
            resumer_math: false,
        },
        Variant {
            name: "gruvi_rs_rawswitch_fp_both",
            coroutine_math: true,
            resumer_math: true,
        },
    ];
    // `cargo bench --bench switch -- <substring>` runs only the matching variants.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for variant in variants {
        if !filter.is_empty() && !filter.iter().any(|f| variant.name.contains(f.as_str())) {
            continue;
        }
        let mut runs: Vec<f64> = (0..RUNS).map(|_| run_once(variant)).collect();
        runs.sort_by(f64::total_cmp);
        let median = runs[RUNS / 2];
        let all: Vec<String> = runs.iter().map(|ns| format!("{ns:.2}")).collect();
        println!("# {}: runs {} ns", variant.name, all.join(" "));
        println!("RESULT name={} ns_per_switch={median:.2}", variant.name);
    }
}
