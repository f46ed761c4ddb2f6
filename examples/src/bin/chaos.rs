//! `chaos`: namerd killed with SIGKILL, and its etcd or ZooKeeper killed,
//! while writers increment a counter by compare-and-set, for minutes; then
//! the check that no acknowledged increment was lost.
//!
//! For each store (the disk store, etcd, ZooKeeper) it starts the real
//! `namerd` binary on a fresh store, and `--writers` writers that each
//! loop: read the dtab `/counter=>/#/n<N>` with its ETag, put `N + 1` with
//! `If-Match`. Over `--duration` seconds it kills namerd `--kills` times
//! (down for `--down-ms`, then started again on the same store) and kills
//! the etcd or ZooKeeper server `--backend-restarts` times (down for
//! `--down-ms`, then started again on the same port and data). At the end
//! it holds every answer the writers got against the final counter (see
//! `integration::chaos::counter`) and prints the figures; it exits with an
//! error if an acknowledged increment was lost or acknowledged twice.
//! etcd and ZooKeeper come from the Debian packages; a store whose server
//! is missing is skipped.
//!
//! ```sh
//! cargo run --release -p examples --bin chaos -- --duration 180 --writers 50 --kills 6
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use integration::chaos::counter::{self, Swarm, Tally};
use integration::chaos::namerd::{Backend, Namerd, Store};
use integration::chaos::{
    KillReport, OutageReport, RECOVERY_LIMIT, kill_and_restart, restart_backend,
};

/// namerd's dtab stores under SIGKILL and backend restarts.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The stores to run, one after the other: disk, etcd, zk (comma
    /// separated).
    #[arg(long, default_value = "disk,etcd,zk", value_delimiter = ',', value_parser = parse_store)]
    store: Vec<Store>,
    /// Seconds of writing per store.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    duration: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    writers: u64,
    /// SIGKILLs of namerd per store, spread over the run.
    #[arg(long, default_value_t = 5)]
    kills: u32,
    /// Restarts of the etcd or ZooKeeper server per store, spread over the
    /// run (none for the disk store).
    #[arg(long, default_value_t = 2)]
    backend_restarts: u32,
    /// How long namerd, or the server, stays down each time, in ms.
    #[arg(long, default_value_t = 500)]
    down_ms: u64,
    /// The directory holding `namerd`; by default it is built with
    /// `cargo build --release -p namerd -p router`.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn parse_store(name: &str) -> Result<Store, String> {
    Store::from_name(name).ok_or_else(|| format!("unknown store {name:?} (disk, etcd or zk)"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => examples::harness::build()?,
    };
    let namerd = bin_dir.join("namerd");
    let mut failed = Vec::new();
    for &store in &args.store {
        match run(store, &namerd, &args).await {
            Ok(true) => {}
            Ok(false) => failed.push(store.name()),
            Err(e) => {
                eprintln!("{}: {e:#}", store.name());
                failed.push(store.name());
            }
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

/// One thing done to the store during a run.
#[derive(Clone, Copy, Debug)]
enum Event {
    KillNamerd,
    RestartBackend,
}

/// When each event happens, from the start of the run: each kind spread
/// evenly over the duration.
fn schedule(store: Store, args: &Args) -> Vec<(Duration, Event)> {
    let duration = Duration::from_secs(args.duration);
    let spread = |n: u32, event: Event| (1..=n).map(move |i| (duration * i / (n + 1), event));
    let mut events: Vec<_> = spread(args.kills, Event::KillNamerd).collect();
    if store != Store::Disk {
        events.extend(spread(args.backend_restarts, Event::RestartBackend));
    }
    events.sort_by_key(|(at, _)| *at);
    events
}

/// Runs one store; `Ok(false)` when the check failed.
async fn run(store: Store, namerd_binary: &Path, args: &Args) -> Result<bool> {
    let Some(mut backend) = tokio::task::block_in_place(|| Backend::start(store)) else {
        println!("{}: skipped, its server is not installed", store.kind());
        return Ok(true);
    };
    let ns = "chaos";
    let mut namerd = tokio::task::block_in_place(|| {
        Namerd::start(namerd_binary, &backend.storage_yaml("/chaos"))
    });
    counter::reset(namerd.api(), ns, RECOVERY_LIMIT)
        .await
        .map_err(anyhow::Error::msg)?;
    let writers = usize::try_from(args.writers)?;
    let swarm = Swarm::start(&[namerd.api()], ns, writers);
    let started = Instant::now();
    let events = disturb(store, args, &mut namerd, &mut backend, &swarm, ns).await;
    let logs = swarm.stop().await;
    let (kills, outages) = events?;
    let ran = started.elapsed();
    let (value, writer) = counter::read(namerd.api(), ns, RECOVERY_LIMIT)
        .await
        .map_err(anyhow::Error::msg)?;
    let tally = Tally::new(&logs, value, &writer);
    let verdict = tally.check();
    print(store, args, ran, &tally, &kills, &outages);
    if let Err(e) = &verdict {
        println!("  FAILED: {e}");
    }
    Ok(verdict.is_ok())
}

/// Does the scheduled kills and restarts while the writers run, and waits
/// out the rest of the run.
async fn disturb(
    store: Store,
    args: &Args,
    namerd: &mut Namerd,
    backend: &mut Backend,
    swarm: &Swarm,
    ns: &str,
) -> Result<(Vec<KillReport>, Vec<OutageReport>)> {
    let down = Duration::from_millis(args.down_ms);
    let started = Instant::now();
    let mut kills = Vec::new();
    let mut outages = Vec::new();
    for (at, event) in schedule(store, args) {
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        match event {
            Event::KillNamerd => kills.push(
                kill_and_restart(namerd, swarm, ns, down)
                    .await
                    .map_err(anyhow::Error::msg)
                    .context("a kill of namerd")?,
            ),
            Event::RestartBackend => outages.push(
                restart_backend(backend, swarm, down)
                    .await
                    .map_err(anyhow::Error::msg)
                    .context("a restart of the server")?,
            ),
        }
    }
    if let Some(rest) = Duration::from_secs(args.duration).checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    Ok((kills, outages))
}

fn print(
    store: Store,
    args: &Args,
    ran: Duration,
    tally: &Tally,
    kills: &[KillReport],
    outages: &[OutageReport],
) {
    let server = match store {
        Store::Disk => String::new(),
        Store::Etcd => format!(", {} restarts of etcd", outages.len()),
        Store::ZooKeeper => format!(", {} restarts of ZooKeeper", outages.len()),
    };
    println!(
        "{} ({}): {:.0} s, {} writers, {} SIGKILLs of namerd{server}, down {} ms each",
        store.name(),
        store.kind(),
        ran.as_secs_f64(),
        args.writers,
        kills.len(),
        args.down_ms,
    );
    let per_second = tally.acked as f64 / ran.as_secs_f64();
    println!(
        "  increments acknowledged (204)   {} ({per_second:.0}/s)",
        tally.acked
    );
    println!("  refused (412)                   {}", tally.conflicts);
    println!(
        "  answer lost (unknown outcome)   {}, of which stored {}",
        tally.unknown,
        tally.final_value.saturating_sub(tally.acked_kept)
    );
    println!("  final counter                   {}", tally.final_value);
    println!(
        "  lost increments                 {}",
        tally.lost_increments()
    );
    println!(
        "  values acknowledged twice       {}",
        tally.acked_twice.len()
    );
    if !kills.is_empty() {
        let mut recovery: Vec<Duration> = kills.iter().map(|k| k.recovery).collect();
        let mut start: Vec<Duration> = kills.iter().map(|k| k.start).collect();
        println!(
            "  SIGKILL -> first 204 after restart (incl. {} ms down)  {}",
            args.down_ms,
            figures(&mut recovery)
        );
        println!(
            "  namerd start -> API listening                          {}",
            figures(&mut start)
        );
    }
    if !outages.is_empty() {
        let mut outage: Vec<Duration> = outages.iter().map(|o| o.outage).collect();
        let mut recovery: Vec<Duration> = outages.iter().map(|o| o.recovery).collect();
        println!(
            "  server killed -> serving again                         {}",
            figures(&mut outage)
        );
        println!(
            "  server serving -> first 204 through namerd             {}",
            figures(&mut recovery)
        );
    }
}

/// `median … max …` of some durations, in ms.
fn figures(values: &mut [Duration]) -> String {
    values.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match (values.get(values.len() / 2), values.last()) {
        (Some(&median), Some(&max)) => {
            format!("median {:.0} ms, max {:.0} ms", ms(median), ms(max))
        }
        _ => "-".to_string(),
    }
}
