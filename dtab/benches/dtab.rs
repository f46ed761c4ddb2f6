//! Benchmarks of the dtab crate's hot paths: reading a dtab, one lookup step,
//! and printing a dtab back.
//!
//! The data is generated deterministically so that runs are comparable: a
//! 1,000-dentry dtab shaped like a large routing table (prefixes of 2 to 4
//! labels, `*` wildcards, plain paths, fail-over alternatives and weighted
//! unions as destinations), and a 10-dentry dtab the size of a typical
//! per-request `l5d-dtab` header. Run with `cargo bench -p dtab`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dtab::{Dtab, NameTree, Path};

/// A five-label name, as an HTTP router would build from `/svc` plus host
/// and request path, that the large dtab delegates through three dentries.
const MATCHING_PATH: &str = "/svc/team17/api42/v1/users";

/// A five-label name that no dentry of the large dtab matches.
const MISSING_PATH: &str = "/http/1.1/GET/example.com/users";

/// The three dentries [`MATCHING_PATH`] matches: a catch-all, a wildcard and
/// a specific one. They sit at the start, middle and end of the table.
const CATCH_ALL: (&str, &str) = ("/svc", "/#/io.l5d.k8s/default/http");
const WILDCARD: (&str, &str) = (
    "/svc/*/api42",
    "/#/io.l5d.k8s/prod/http/api42 | /#/io.l5d.fs/api42",
);
const SPECIFIC: (&str, &str) = (
    "/svc/team17/api42",
    "0.9 * /srv/team17/api42-v1 & 0.1 * /srv/team17/api42-v2 | /srv/team17/api42",
);

/// A small deterministic pseudo-random sequence (Knuth's MMIX LCG), so the
/// table varies without depending on a random-number crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// The `index`th generated dentry as `(prefix, dst)` text.
fn generated_dentry(index: u64, rng: &mut Lcg) -> (String, String) {
    let team = rng.next(100);
    let service = match rng.next(3) {
        0 => format!("web{}", rng.next(50)),
        1 => format!("api{}", rng.next(50)),
        _ => format!("grpc{}", rng.next(50)),
    };
    let prefix = match index % 10 {
        0..=3 => format!("/svc/team{team}/{service}"),
        4 => format!("/svc/team{team}"),
        5 | 6 => format!("/svc/team{team}/{service}/v{}", rng.next(4)),
        7 => format!("/svc/*/{service}"),
        8 => format!(
            "/srv/{}/{service}",
            ["prod", "staging", "canary"][(index % 3) as usize]
        ),
        _ => format!("/host/{service}.team{team}.example.com"),
    };
    let dst = match rng.next(10) {
        0..=2 => format!("/srv/team{team}/{service}"),
        3..=5 => format!("/#/io.l5d.k8s/prod/http/{service} | /#/io.l5d.fs/{service}"),
        6 | 7 => format!("0.9 * /srv/team{team}/{service}-v1 & 0.1 * /srv/team{team}/{service}-v2"),
        8 => format!(
            "0.95 * /#/io.l5d.k8s/prod/http/{service} & 0.05 * /#/io.l5d.k8s/canary/http/{service} \
             | /#/io.l5d.fs/{service}"
        ),
        _ => format!(
            "/$/inet/10.{}.{}.{}/8080 | ~",
            rng.next(256),
            rng.next(256),
            rng.next(256)
        ),
    };
    (prefix, dst)
}

/// `count` dentries: the catch-all, the wildcard and the specific dentry for
/// [`MATCHING_PATH`], and generated ones that do not match it.
fn dentries(count: usize) -> Vec<(String, String)> {
    let Ok(matching) = Path::read(MATCHING_PATH) else {
        panic!("{MATCHING_PATH} is not a path");
    };
    let owned = |(prefix, dst): (&str, &str)| (prefix.to_string(), dst.to_string());
    let mut out = vec![owned(CATCH_ALL)];
    let mut rng = Lcg(0x5eed);
    let mut index = 0;
    while out.len() < count - 1 {
        if out.len() == count / 2 {
            out.push(owned(WILDCARD));
            continue;
        }
        let (prefix, dst) = generated_dentry(index, &mut rng);
        index += 1;
        let Ok(parsed) = dtab::Prefix::read(&prefix) else {
            panic!("generated prefix {prefix} does not parse");
        };
        if !parsed.matches(&matching) {
            out.push((prefix, dst));
        }
    }
    out.push(owned(SPECIFIC));
    out
}

/// Dtab text as written in a configuration file: one dentry per line.
fn config_text(dentries: &[(String, String)]) -> String {
    dentries
        .iter()
        .map(|(prefix, dst)| format!("{prefix} => {dst};\n"))
        .collect()
}

/// Dtab text as sent in an `l5d-dtab` header: compact, on one line.
fn header_text(dentries: &[(String, String)]) -> String {
    let compact: Vec<String> = dentries
        .iter()
        .map(|(prefix, dst)| format!("{prefix}=>{}", dst.replace(' ', "")))
        .collect();
    compact.join(";")
}

fn read(text: &str) -> Dtab {
    match Dtab::read(text) {
        Ok(dtab) => dtab,
        Err(e) => panic!("benchmark dtab does not parse: {e}"),
    }
}

fn path(text: &str) -> Path {
    match Path::read(text) {
        Ok(path) => path,
        Err(e) => panic!("benchmark path does not parse: {e}"),
    }
}

/// Checks the data is what the benchmarks claim to measure.
fn check(large: &Dtab, large_text: &str, matching: &Path, missing: &Path) {
    assert_eq!(large.len(), 1000);
    assert_eq!(
        read(&large.show()),
        *large,
        "show of the large dtab does not read back"
    );
    match large.lookup(matching) {
        NameTree::Alt(branches) => {
            assert_eq!(branches.len(), 3, "{MATCHING_PATH} should match 3 dentries")
        }
        other => panic!(
            "{MATCHING_PATH} should match 3 dentries, got {}",
            other.show()
        ),
    }
    assert!(
        large.lookup(missing).is_neg(),
        "{MISSING_PATH} should match nothing"
    );
    let wildcards = large
        .iter()
        .filter(|d| d.prefix.elems().contains(&dtab::PrefixElem::Any))
        .count();
    assert!(wildcards > 50, "only {wildcards} wildcard dentries");
    assert!(
        large_text.len() > 50_000,
        "large dtab text is only {} bytes",
        large_text.len()
    );
}

fn benches(c: &mut Criterion) {
    let large_dentries = dentries(1000);
    let large_text = config_text(&large_dentries);
    let large = read(&large_text);
    let header = header_text(&dentries(10));
    let matching = path(MATCHING_PATH);
    let missing = path(MISSING_PATH);
    check(&large, &large_text, &matching, &missing);
    assert_eq!(read(&header).len(), 10);

    let mut group = c.benchmark_group("dtab");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(50);

    group.throughput(Throughput::Bytes(large_text.len() as u64));
    group.bench_function(BenchmarkId::new("read", "1000 dentries"), |b| {
        b.iter(|| Dtab::read(black_box(&large_text)));
    });
    // The same with freeing the parsed dtab left out of the timing, to show
    // how the cost splits between parsing and dropping. Each dtab is dropped
    // straight after it is timed (criterion's `iter_with_large_drop` would
    // keep a batch of them alive and measure a colder heap instead).
    group.bench_function(
        BenchmarkId::new("read", "1000 dentries, drop excluded"),
        |b| {
            b.iter_custom(|iters| {
                let mut parsing = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let parsed = Dtab::read(black_box(&large_text));
                    parsing += start.elapsed();
                    drop(black_box(parsed));
                }
                parsing
            });
        },
    );
    group.throughput(Throughput::Bytes(header.len() as u64));
    group.bench_function(
        BenchmarkId::new("read", "10 dentries (l5d-dtab header)"),
        |b| {
            b.iter(|| Dtab::read(black_box(&header)));
        },
    );

    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("lookup", "5 labels, 3 matches in 1000"),
        |b| {
            b.iter(|| black_box(&large).lookup(black_box(&matching)));
        },
    );
    group.bench_function(
        BenchmarkId::new("lookup", "5 labels, no match in 1000"),
        |b| {
            b.iter(|| black_box(&large).lookup(black_box(&missing)));
        },
    );

    group.throughput(Throughput::Bytes(large.show().len() as u64));
    group.bench_function(BenchmarkId::new("show", "1000 dentries"), |b| {
        b.iter(|| black_box(&large).show());
    });
    group.finish();
}

criterion_group!(dtab_benches, benches);
criterion_main!(dtab_benches);
