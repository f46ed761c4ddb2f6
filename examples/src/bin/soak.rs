//! `soak`: the router and namerd under steady load for a long time, with a
//! dtab update every second and endpoints coming and going, to show that
//! memory and open file descriptors stay flat.
//!
//! It starts the real `namerd` (embedded disk store, an `io.l5d.fs` namer)
//! and `router` (`io.l5d.namerd.http` interpreter) binaries and six small
//! backends in this process, and puts `wrk` on the router. Every second it
//! writes a new dtab through namerd's API (moving the weight between
//! `web-a` and `web-b`) and rewrites the endpoint files of both (three of
//! the six backends each, a different three every second). Every
//! `--sample` seconds it reads the resident memory and the open file
//! descriptors of both processes from `/proc`. It prints them, and the
//! growth from the first sample after the warm-up to the end.
//!
//! With `--kill-backend-at SECS` one backend is killed then (its port
//! closed, its connections dropped) while the endpoint files keep listing
//! it, and wrk's count of failed requests says what that cost.
//!
//! ```sh
//! cargo run --release -p examples --bin soak -- --duration 1800
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use examples::harness::{Backend, ChildProcess, build, free_port, tempdir, wait_listening};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A long run with dtab updates and endpoint churn; memory and descriptors.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(30..=86_400))]
    duration: u64,
    /// Seconds between two samples of memory and descriptors.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    sample: u64,
    /// Seconds before the baseline sample (caches and pools fill up first).
    #[arg(long, default_value_t = 60)]
    warmup: u64,
    /// Kill one backend this many seconds into the run.
    #[arg(long)]
    kill_backend_at: Option<u64>,
    /// Connections `wrk` keeps open to the router.
    #[arg(long, default_value_t = 20)]
    connections: u32,
    /// The directory holding `namerd` and `router`; by default they are
    /// built with `cargo build --release -p namerd -p router`.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// Names of the backends: each answers with its name.
const BACKENDS: [&str; 6] = ["b0", "b1", "b2", "b3", "b4", "b5"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("needs wrk on the PATH (apt-get install wrk)");
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => build()?,
    };
    let work = tempdir("soak")?;
    let result = run(&args, &bin_dir, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// One reading of a process.
#[derive(Clone, Copy, Debug)]
struct Reading {
    rss_kib: u64,
    fds: usize,
}

async fn run(args: &Args, bin_dir: &Path, work: &Path) -> Result<()> {
    let mut running = Vec::new();
    for name in BACKENDS {
        running.push(Backend::start(name).await?);
    }
    let backends: Vec<SocketAddr> = running.iter().map(|b| b.addr).collect();
    let disco = work.join("disco");
    std::fs::create_dir_all(&disco)?;
    write_endpoints(&disco, &backends, 0)?;

    let namerd_port = free_port()?;
    std::fs::write(
        work.join("namerd.yaml"),
        format!(
            "admin:\n  ip: 127.0.0.1\n  port: {}\nstorage:\n  kind: io.switchboard.disk\n  dir: {}\n\
             namers:\n- kind: io.l5d.fs\n  rootDir: {}\n\
             interfaces:\n- kind: io.l5d.httpController\n  ip: 127.0.0.1\n  port: {namerd_port}\n",
            free_port()?,
            work.join("store").display(),
            disco.display(),
        ),
    )?;
    let namerd = ChildProcess::spawn(
        Command::new(bin_dir.join("namerd")).arg(work.join("namerd.yaml")),
        &work.join("namerd.log"),
    )?;
    wait_listening(namerd_port).await?;
    put_dtab(namerd_port, &dtab(5)).await?;

    let router_port = free_port()?;
    std::fs::write(
        work.join("router.yaml"),
        format!(
            "admin:\n  ip: 127.0.0.1\n  port: {}\nrouters:\n- protocol: http\n  interpreter:\n    \
             kind: io.l5d.namerd.http\n    dst: /$/inet/127.0.0.1/{namerd_port}\n    namespace: default\n  \
             servers:\n  - ip: 127.0.0.1\n    port: {router_port}\n",
            free_port()?,
        ),
    )?;
    let router = ChildProcess::spawn(
        Command::new(bin_dir.join("router")).arg(work.join("router.yaml")),
        &work.join("router.log"),
    )?;
    wait_listening(router_port).await?;

    let wrk_log = work.join("wrk.log");
    let wrk = ChildProcess::spawn(
        Command::new("wrk").args([
            "-t1",
            &format!("-c{}", args.connections),
            &format!("-d{}s", args.duration),
            "-H",
            "Host: web",
            &format!("http://127.0.0.1:{router_port}/"),
        ]),
        &wrk_log,
    )?;

    println!(
        "{:>6}  {:>12}  {:>10}  {:>12}  {:>10}  {:>8}",
        "secs", "router KiB", "router fd", "namerd KiB", "namerd fd", "updates"
    );
    let started = Instant::now();
    let mut samples: Vec<(u64, Reading, Reading)> = Vec::new();
    let mut updates = 0u64;
    let mut failed_updates = 0u64;
    let mut tick = 0u64;
    while started.elapsed() < Duration::from_secs(args.duration) {
        tick += 1;
        if args.kill_backend_at == Some(tick) {
            running[0].kill();
            println!(
                "{tick:>6}  backend {} ({}) killed",
                BACKENDS[0], backends[0]
            );
        }
        write_endpoints(&disco, &backends, tick)?;
        match put_dtab(namerd_port, &dtab(1 + tick % 9)).await {
            Ok(()) => updates += 1,
            Err(e) => {
                failed_updates += 1;
                eprintln!("dtab update {tick} failed: {e:#}");
            }
        }
        if tick.is_multiple_of(args.sample) {
            let secs = started.elapsed().as_secs();
            let r = reading(router.id()).context("reading the router's /proc")?;
            let n = reading(namerd.id()).context("reading namerd's /proc")?;
            println!(
                "{secs:>6}  {:>12}  {:>10}  {:>12}  {:>10}  {updates:>8}",
                r.rss_kib, r.fds, n.rss_kib, n.fds
            );
            samples.push((secs, r, n));
        }
        let next = started + Duration::from_secs(tick);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
    // Let wrk finish and write its summary.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(wrk);
    let summary = std::fs::read_to_string(&wrk_log).unwrap_or_default();

    let baseline = samples
        .iter()
        .find(|(secs, _, _)| *secs >= args.warmup)
        .or(samples.first())
        .copied()
        .context("no sample was taken")?;
    let last = *samples.last().context("no sample was taken")?;
    println!();
    println!(
        "dtab updates: {updates} ok, {failed_updates} failed; endpoint files rewritten {tick} times"
    );
    for (what, pick) in [
        (
            "router",
            (|s: &(u64, Reading, Reading)| s.1) as fn(&_) -> Reading,
        ),
        ("namerd", |s| s.2),
    ] {
        let (b, l) = (pick(&baseline), pick(&last));
        let max_rss = samples.iter().map(|s| pick(s).rss_kib).max().unwrap_or(0);
        let max_fds = samples.iter().map(|s| pick(s).fds).max().unwrap_or(0);
        println!(
            "{what}: RSS {} KiB at {} s -> {} KiB at {} s ({:+.1} %, max {max_rss} KiB); \
             fds {} -> {} ({:+.1} %, max {max_fds})",
            b.rss_kib,
            baseline.0,
            l.rss_kib,
            last.0,
            growth(b.rss_kib as f64, l.rss_kib as f64),
            b.fds,
            l.fds,
            growth(b.fds as f64, l.fds as f64),
        );
    }
    println!("wrk:");
    for line in summary.lines() {
        println!("  {line}");
    }
    Ok(())
}

fn growth(from: f64, to: f64) -> f64 {
    if from == 0.0 {
        0.0
    } else {
        (to - from) / from * 100.0
    }
}

/// The dtab of second `weight`: web split `weight` : `10 - weight` between
/// its two endpoint files.
fn dtab(weight: u64) -> String {
    format!(
        "/svc => /#/io.l5d.fs;\n/svc/web => {weight} * /#/io.l5d.fs/web-a & {} * /#/io.l5d.fs/web-b;\n",
        10 - weight
    )
}

/// Rewrites `web-a` and `web-b` with three backends each, rotating with
/// `tick`.
fn write_endpoints(disco: &Path, backends: &[SocketAddr], tick: u64) -> Result<()> {
    for (file, offset) in [("web-a", 0), ("web-b", 3)] {
        let lines: String = (0..3)
            .map(|i| {
                let index = (tick as usize + offset + i) % backends.len();
                format!("127.0.0.1 {}\n", backends[index].port())
            })
            .collect();
        // Written whole and renamed, as a deploy tool would.
        let temp = disco.join(format!(".{file}.tmp"));
        std::fs::write(&temp, lines)?;
        std::fs::rename(&temp, disco.join(file))?;
    }
    Ok(())
}

/// `PUT /api/1/dtabs/default` with `text`.
async fn put_dtab(port: u16, text: &str) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "PUT /api/1/dtabs/default HTTP/1.1\r\nHost: namerd\r\nContent-Type: application/dtab\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let status = answer.split(' ').nth(1).unwrap_or("");
    if status != "204" {
        bail!("namerd answered {}", answer.lines().next().unwrap_or(""));
    }
    Ok(())
}

/// Resident memory and open descriptors of process `pid`.
fn reading(pid: u32) -> Result<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok(Reading { rss_kib, fds })
}
