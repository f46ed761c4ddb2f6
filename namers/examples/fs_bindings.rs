//! Measures many live bindings over one `io.l5d.fs` directory: the memory
//! each binding costs, and how long an edited service file takes to reach
//! every binding that uses it.
//!
//! ```sh
//! cargo run --release -p namers --example fs_bindings
//! cargo run --release -p namers --example fs_bindings -- --services 1 --residuals 10
//! ```
//!
//! Options: `--services N` (1000) service files of 10 endpoints each,
//! `--residuals M` (10) names bound per service (`/svc/web17/r3`),
//! `--rounds R` (100) single-file edits, `--all-rounds K` (3) edits of every
//! file at once, `--idle-secs S` (12) of idle time over which the CPU used by
//! the namer's periodic re-reads is measured (0 to skip).

use std::collections::BTreeSet;
use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, NameTree, Path};
use futures_util::future::BoxFuture;
use namers::fs::FsNamer;
use namers::system::SystemNamers;
use namers::system::inet::{DnsAnswer, DnsResolve, InetResolver};
use namers::{Activity, Addr, Binding, Interpreter, Live, NameInterpreter};
use tokio::task::JoinSet;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// How long any one wait may take before the measurement is abandoned.
const GIVE_UP: Duration = Duration::from_secs(60);
const ENDPOINTS_PER_FILE: u8 = 10;

struct Options {
    services: usize,
    residuals: usize,
    rounds: usize,
    all_rounds: usize,
    idle_secs: u64,
}

fn options() -> Result<Options> {
    let mut options = Options {
        services: 1000,
        residuals: 10,
        rounds: 100,
        all_rounds: 3,
        idle_secs: 12,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number: usize = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
        match flag.as_str() {
            "--services" => options.services = number.max(1),
            "--residuals" => options.residuals = number.max(1),
            "--rounds" => options.rounds = number,
            "--all-rounds" => options.all_rounds = number,
            "--idle-secs" => options.idle_secs = number as u64,
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    Ok(options)
}

/// DNS that is never asked: every endpoint is an IP literal.
struct NoDns;

impl DnsResolve for NoDns {
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::result::Result<DnsAnswer, String>> {
        let host = host.to_owned();
        Box::pin(async move { Err(format!("no DNS here (asked for {host})")) })
    }
}

/// The endpoints of service `service` in edit `version`.
fn endpoints(service: usize, version: u16) -> Vec<SocketAddr> {
    let [_, _, hi, lo] = (service as u32).to_be_bytes();
    (1..=ENDPOINTS_PER_FILE)
        .map(|k| {
            let ip = IpAddr::V4(Ipv4Addr::new(10, hi, lo, k));
            SocketAddr::new(ip, 8000 + version)
        })
        .collect()
}

fn file_text(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("{} {}\n", a.ip(), a.port()))
        .collect()
}

fn service_name(service: usize) -> String {
    format!("web{service}")
}

/// Replaces a service file the way an editor saves: write a temporary file
/// next to it, then rename it over the old one. Returns when the rename
/// happened.
fn save(dir: &FsPath, service: usize, version: u16) -> Result<Instant> {
    let name = service_name(service);
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, file_text(&endpoints(service, version)))?;
    let renamed = Instant::now();
    std::fs::rename(&temp, dir.join(&name))?;
    Ok(renamed)
}

/// The resident set size of this process, in KiB.
fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmRSS line")?
        .parse()?;
    Ok(kib)
}

/// CPU time used by this process so far (user + system), from
/// `/proc/self/stat`, assuming the usual 100 ticks per second.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_name = stat.rsplit_once(')').ok_or("malformed /proc/self/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    let ticks = |i: usize| -> Result<u64> {
        Ok(fields.get(i - 3).ok_or("short /proc/self/stat")?.parse()?)
    };
    Ok(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// The live address of the single leaf a binding is bound to, once it is.
fn leaf_addr(binding: &Binding) -> Option<Live<Addr>> {
    match &*binding.load() {
        Activity::Ok(NameTree::Leaf(bound)) => Some(bound.addr.clone()),
        _ => None,
    }
}

fn addr_is(addr: &Addr, want: &BTreeSet<SocketAddr>) -> bool {
    match addr {
        Addr::Bound(set) => {
            let got: BTreeSet<SocketAddr> = set.endpoints().iter().map(|e| e.addr).collect();
            got == *want
        }
        _ => false,
    }
}

/// Waits until `binding` is bound to a leaf whose address has endpoints.
async fn bound(binding: &mut Binding) -> Result<()> {
    loop {
        if let Some(addr) = leaf_addr(binding) {
            let mut addr = addr;
            loop {
                if matches!(&*addr.load(), Addr::Bound(set) if !set.is_empty()) {
                    return Ok(());
                }
                addr.changed().await;
            }
        }
        if let Activity::Failed(e) = &*binding.load() {
            return Err(format!("binding failed: {e}").into());
        }
        binding.changed().await;
    }
}

/// Spawns one watcher per address, each finishing with the instant it saw
/// `want`.
fn watch_for(addrs: Vec<Live<Addr>>, want: &BTreeSet<SocketAddr>) -> JoinSet<Instant> {
    let mut watchers = JoinSet::new();
    for mut addr in addrs {
        addr.mark_seen();
        let want = want.clone();
        watchers.spawn(async move {
            loop {
                if addr_is(&addr.load(), &want) {
                    return Instant::now();
                }
                addr.changed().await;
            }
        });
    }
    watchers
}

/// The latest instant the watchers report.
async fn last_seen(mut watchers: JoinSet<Instant>) -> Result<Instant> {
    let mut last: Option<Instant> = None;
    let all = async {
        while let Some(seen) = watchers.join_next().await {
            let seen = seen?;
            last = Some(last.map_or(seen, |l| l.max(seen)));
        }
        Ok::<_, tokio::task::JoinError>(())
    };
    tokio::time::timeout(GIVE_UP, all)
        .await
        .map_err(|_| "an edit was not seen within a minute")??;
    Ok(last.ok_or("nothing was watched")?)
}

/// Nearest-rank percentile of sorted `samples`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    let options = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> Result<()> {
    let Options {
        services,
        residuals,
        rounds,
        all_rounds,
        idle_secs,
    } = options;
    let total = services * residuals;
    let dir = tempfile::tempdir()?;
    for service in 0..services {
        std::fs::write(
            dir.path().join(service_name(service)),
            file_text(&endpoints(service, 0)),
        )?;
    }
    let prefix = Path::read("/#/io.l5d.fs")?;
    let namer = FsNamer::new(prefix.clone(), PathBuf::from(dir.path()))?;
    let system = SystemNamers::new(Arc::new(InetResolver::new(Arc::new(NoDns))));
    let interpreter = Interpreter::new(vec![(prefix, namer.clone())], system);
    let dtab = Dtab::read("/svc => /#/io.l5d.fs")?;
    let names: Vec<Path> = (0..total)
        .map(|i| {
            Path::read(&format!(
                "/svc/{}/r{}",
                service_name(i % services),
                i / services
            ))
        })
        .collect::<std::result::Result<_, _>>()?;

    println!(
        "{services} service files of {ENDPOINTS_PER_FILE} endpoints, {total} bindings \
         ({residuals} residuals per service), {} runtime workers",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_start = rss_kib()?;

    // One binding per service first, to tell the cost of tracking a file
    // from the cost of one more binding of a file already tracked.
    let started = Instant::now();
    let mut bindings: Vec<Binding> = Vec::with_capacity(total);
    for name in &names[..services] {
        bindings.push(interpreter.bind(&dtab, name));
    }
    for binding in &mut bindings {
        bound(binding).await?;
    }
    let first_bound = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_per_file = rss_kib()?;

    let started = Instant::now();
    for name in &names[services..] {
        bindings.push(interpreter.bind(&dtab, name));
    }
    let bind_calls = started.elapsed();
    for binding in &mut bindings[services..] {
        bound(binding).await?;
    }
    let rest_bound = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_all = rss_kib()?;

    let stats = interpreter.stats().clone();
    let recomputed_before_edits = stats
        .recomputations
        .load(std::sync::atomic::Ordering::Relaxed);
    println!();
    println!("| Binding | Figure |");
    println!("|---|---|");
    println!(
        "| {services} bindings (one per file), from first bind to all bound | {} |",
        ms(first_bound)
    );
    println!(
        "| {} more bindings: the `bind` calls | {} ({:.1} µs each) |",
        total - services,
        ms(bind_calls),
        bind_calls.as_secs_f64() * 1e6 / (total - services).max(1) as f64
    );
    println!(
        "| {} more bindings: from first bind to all bound | {} |",
        total - services,
        ms(rest_bound)
    );
    println!("| RSS before binding | {rss_start} KiB |");
    println!("| RSS with {services} bindings | {rss_per_file} KiB |");
    println!("| RSS with {total} bindings | {rss_all} KiB |");
    println!(
        "| Per binding, all {total} (RSS growth / bindings) | {:.0} bytes |",
        (rss_all.saturating_sub(rss_start) * 1024) as f64 / total as f64
    );
    println!(
        "| Per tracked file with its first binding | {:.0} bytes |",
        (rss_per_file.saturating_sub(rss_start) * 1024) as f64 / services as f64
    );
    if total > services {
        println!(
            "| Per further binding of a tracked file | {:.0} bytes |",
            (rss_all.saturating_sub(rss_per_file) * 1024) as f64 / (total - services) as f64
        );
    }
    println!(
        "| Files tracked by the namer / active bindings / runtime tasks | {} / {} / {} |",
        namer.watched_count(),
        stats.active_bindings(),
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    );

    // One file edited at a time.
    let mut latencies = Vec::with_capacity(rounds);
    let mut firsts = Vec::with_capacity(rounds);
    let mut version: u16 = 0;
    for round in 0..rounds {
        version += 1;
        let service = (round * 37 + 11) % services;
        let addrs: Vec<Live<Addr>> = (0..residuals)
            .filter_map(|r| leaf_addr(&bindings[r * services + service]))
            .collect();
        if addrs.len() != residuals {
            return Err(format!("{} is not bound", service_name(service)).into());
        }
        let want: BTreeSet<SocketAddr> = endpoints(service, version).into_iter().collect();
        let mut watchers = watch_for(addrs, &want);
        // The first to see it, then the rest.
        let renamed = save(dir.path(), service, version)?;
        let first = tokio::time::timeout(GIVE_UP, watchers.join_next())
            .await
            .map_err(|_| "an edit was not seen within a minute")?
            .ok_or("nothing was watched")??;
        let last = last_seen(watchers).await?.max(first);
        firsts.push(first.saturating_duration_since(renamed));
        latencies.push(last.saturating_duration_since(renamed));
        // Let the namer's second read (for the rename's own events) pass,
        // so rounds do not overlap.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    latencies.sort();
    firsts.sort();
    let recomputed = stats
        .recomputations
        .load(std::sync::atomic::Ordering::Relaxed)
        - recomputed_before_edits;

    println!();
    println!(
        "One file rewritten (temp + rename), {rounds} rounds; time from the rename until \
         all {residuals} bindings of that service see the new endpoints:"
    );
    println!();
    println!("| | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (what, samples) in [("first binding", &firsts), ("last binding", &latencies)] {
        println!(
            "| {what} | {} | {} | {} | {} |",
            ms(percentile(samples, 50.0)),
            ms(percentile(samples, 90.0)),
            ms(percentile(samples, 99.0)),
            ms(percentile(samples, 100.0)),
        );
    }
    println!(
        "Bindings recomputed because of these edits: {recomputed} (edits change addresses only)"
    );

    // Every file edited at once.
    if all_rounds > 0 {
        println!();
        println!(
            "Every file rewritten (temp + rename, one after another); time until all {total} \
             bindings see their new endpoints:"
        );
        println!();
        println!(
            "| Round | Writing all files | First rename → last seen | Last rename → last seen |"
        );
        println!("|---|---|---|---|");
    }
    for round in 0..all_rounds {
        version += 1;
        let mut watchers = JoinSet::new();
        for service in 0..services {
            let want: BTreeSet<SocketAddr> = endpoints(service, version).into_iter().collect();
            let addrs = (0..residuals).filter_map(|r| leaf_addr(&bindings[r * services + service]));
            let mut set = watch_for(addrs.collect(), &want);
            watchers.spawn(async move { last_seen_all(&mut set).await });
        }
        let started = Instant::now();
        let mut first_rename = None;
        let mut last_rename = started;
        for service in 0..services {
            last_rename = save(dir.path(), service, version)?;
            first_rename.get_or_insert(last_rename);
        }
        let written = started.elapsed();
        let last = last_seen(watchers).await?;
        println!(
            "| {} | {} | {} | {} |",
            round + 1,
            ms(written),
            ms(last.saturating_duration_since(first_rename.unwrap_or(started))),
            ms(last.saturating_duration_since(last_rename)),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // What the namer's periodic re-read of every tracked file costs.
    if idle_secs > 0 {
        let cpu_before = cpu_time()?;
        let wall = Instant::now();
        tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        let cpu = cpu_time()?.saturating_sub(cpu_before);
        println!();
        println!(
            "Idle for {:.1} s with {total} bindings: {} of CPU (the namer re-reads every \
             tracked file every 10 s)",
            wall.elapsed().as_secs_f64(),
            ms(cpu)
        );
    }

    // Everything is released once the bindings are dropped.
    let stats_ended = stats.clone();
    drop(bindings);
    let started = Instant::now();
    tokio::time::timeout(GIVE_UP, async {
        while namer.watched_count() > 0 || stats_ended.active_bindings() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .map_err(|_| "bindings were not released within a minute")?;
    println!();
    println!(
        "All bindings dropped: released in {}; files tracked {}, active bindings {}, \
         RSS {} KiB; failures masked {}",
        ms(started.elapsed()),
        namer.watched_count(),
        stats.active_bindings(),
        rss_kib()?,
        stats
            .failures_masked
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// The latest instant the watchers of one service report, for use inside a
/// spawned task (a watcher that panicked counts as seen now).
async fn last_seen_all(watchers: &mut JoinSet<Instant>) -> Instant {
    let mut last = None;
    while let Some(seen) = watchers.join_next().await {
        let seen = seen.unwrap_or_else(|_| Instant::now());
        last = Some(last.map_or(seen, |l: Instant| l.max(seen)));
    }
    last.unwrap_or_else(Instant::now)
}
