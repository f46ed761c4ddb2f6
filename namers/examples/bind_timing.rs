//! Times the binding benchmarks' operations side by side, alternating them
//! call by call, and prints percentiles of the single-call times.
//!
//! On a busy machine criterion's medians move with the load; alternating the
//! operations gives each the same share of it, so their ratios are steadier,
//! and the 10th percentile shows what a call costs when it is not
//! interrupted. The mean includes the calls during which the process was
//! descheduled, as criterion's figures do. The data is the benchmark's
//! (`benches/support/chain.rs`).
//!
//! ```sh
//! cargo run --release -p namers --example bind_timing [-- ROUNDS]
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use namers::{Interpreter, NameInterpreter};

#[path = "../benches/support/chain.rs"]
mod chain;

use chain::{CHAIN, NAME, bind_core, check, large_dtab, read_path, system_namers};

const OPERATIONS: [&str; 5] = [
    "core: bind_tree + dtab_then + system lookup",
    "live: Interpreter::bind, first answer",
    "live: bind, drop, task ends",
    "delegate",
    "dtab lookups only (6 of 1000 dentries)",
];

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 20_000,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _entered = runtime.enter();
    let dtab = large_dtab();
    let system = system_namers();
    let interpreter = Interpreter::new(Vec::new(), system.clone());
    let name = read_path(NAME);
    let chain: Vec<_> = CHAIN.iter().map(|p| read_path(p)).collect();
    check(&dtab, &system, &interpreter);

    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); OPERATIONS.len()];
    runtime.block_on(async {
        for round in 0..rounds + rounds / 10 {
            for (op, samples) in times.iter_mut().enumerate() {
                let timed = match op {
                    0 => {
                        let start = Instant::now();
                        black_box(bind_core(&dtab, &system, black_box(&name)));
                        start.elapsed()
                    }
                    1 => {
                        let start = Instant::now();
                        let binding = interpreter.bind(&dtab, black_box(&name));
                        black_box(binding.load());
                        let elapsed = start.elapsed();
                        drop(binding);
                        tokio::task::yield_now().await;
                        elapsed
                    }
                    2 => {
                        let start = Instant::now();
                        let binding = interpreter.bind(&dtab, black_box(&name));
                        black_box(binding.load());
                        drop(binding);
                        tokio::task::yield_now().await;
                        start.elapsed()
                    }
                    3 => {
                        let start = Instant::now();
                        black_box(interpreter.delegate(&dtab, black_box(&name)).now_or_never());
                        start.elapsed()
                    }
                    _ => {
                        let start = Instant::now();
                        for path in &chain {
                            black_box(dtab.lookup(black_box(path)));
                        }
                        start.elapsed()
                    }
                };
                // The first tenth of the rounds warms up.
                if round >= rounds / 10 {
                    samples.push(timed);
                }
            }
        }
    });

    let core_p10 = {
        let mut core = times[0].clone();
        core.sort();
        percentile(&core, 10)
    };
    println!("{rounds} rounds, operations alternated call by call; times in µs");
    println!();
    println!("| Operation | p10 | p50 | p90 | mean | p10 / core p10 |");
    println!("|---|---|---|---|---|---|");
    for (label, samples) in OPERATIONS.iter().zip(&mut times) {
        samples.sort();
        let p10 = percentile(samples, 10);
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            us(p10),
            us(percentile(samples, 50)),
            us(percentile(samples, 90)),
            us(mean),
            us(p10) / us(core_p10)
        );
    }
    Ok(())
}
