//! Benchmarks of binding a name: the pure core, the live interpreter and the
//! delegator, on a name that takes five rewrite steps through a
//! 1,000-dentry dtab before a `/$/inet` system namer binds it (the data is
//! described in `support/chain.rs`); the same name through weighted unions;
//! and how long the exponential dtab of the binding-limits report takes to
//! be refused. Run with `cargo bench -p namers --bench bind`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dtab::Path;
use futures_util::FutureExt;
use namers::{Interpreter, NameInterpreter};

#[path = "support/chain.rs"]
mod chain;

use chain::{
    CHAIN, NAME, bind_core, check, doubling_dtab, large_dtab, read_path, system_namers, union_dtab,
};

fn benches(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("cannot start a runtime: {e}"),
    };
    let _entered = runtime.enter();
    let dtab = large_dtab();
    let system = system_namers();
    let interpreter = Interpreter::new(Vec::new(), system.clone());
    let name = read_path(NAME);
    check(&dtab, &system, &interpreter);

    let mut group = c.benchmark_group("bind");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(50);

    group.bench_function(BenchmarkId::new("core", "5 steps, 1000 dentries"), |b| {
        b.iter(|| bind_core(black_box(&dtab), &system, black_box(&name)));
    });

    // The same name through unions: four leaves, weights carried down.
    let unions = union_dtab();
    group.bench_function(BenchmarkId::new("core", "unions, 1000 dentries"), |b| {
        b.iter(|| bind_core(black_box(&unions), &system, black_box(&name)));
    });

    // The exponential-binding report's dtab, refused by the leaf limit.
    let doubling = doubling_dtab();
    group.bench_function(BenchmarkId::new("over budget", "22 doublings"), |b| {
        b.iter(|| bind_core(black_box(&doubling), &system, black_box(&name)));
    });
    // The same after the 1,000-dentry dtab (each lookup scans it).
    let large_doubling = dtab.concat(&doubling);
    group.bench_function(
        BenchmarkId::new("over budget", "22 doublings after 1000 dentries"),
        |b| {
            b.iter(|| bind_core(black_box(&large_doubling), &system, black_box(&name)));
        },
    );

    // The first answer is computed before `bind` returns; the binding's task
    // has been spawned but not run. Dropping the binding and letting its task
    // end are left out of the timing and done between iterations.
    group.bench_function(BenchmarkId::new("live", "first answer"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let binding = interpreter.bind(black_box(&dtab), black_box(&name));
                    black_box(binding.load());
                    timed += start.elapsed();
                    drop(binding);
                    tokio::task::yield_now().await;
                }
                timed
            })
        });
    });

    // The whole life of a short binding: bind, read, drop, and the task
    // running once to notice nobody holds the binding any more.
    group.bench_function(BenchmarkId::new("live", "bind, drop, task ends"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let binding = interpreter.bind(black_box(&dtab), black_box(&name));
                    black_box(binding.load());
                    drop(binding);
                    tokio::task::yield_now().await;
                }
                start.elapsed()
            })
        });
    });

    group.bench_function(
        BenchmarkId::new("delegate", "5 steps, 1000 dentries"),
        |b| {
            b.iter(|| {
                interpreter
                    .delegate(black_box(&dtab), black_box(&name))
                    .now_or_never()
            });
        },
    );

    // Where the core's time goes: the six dtab lookups alone.
    let chain: Vec<Path> = CHAIN.iter().map(|p| read_path(p)).collect();
    group.bench_function(BenchmarkId::new("dtab lookups only", "6 of 1000"), |b| {
        b.iter(|| {
            for path in &chain {
                black_box(dtab.lookup(black_box(path)));
            }
        });
    });
    group.finish();

    let stats = interpreter.stats();
    runtime.block_on(async {
        for _ in 0..10 {
            if stats.active_bindings() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(
        stats.active_bindings(),
        0,
        "binding tasks were left running"
    );
}

criterion_group!(bind_benches, benches);
criterion_main!(bind_benches);
