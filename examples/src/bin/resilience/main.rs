//! `resilience`: how the router, HAProxy and nginx cope with a backend pool
//! where some members are broken, after Linkerd's "beyond round robin"
//! experiment.
//!
//! This process starts ten HTTP/1.1 backends on loopback ports: seven
//! healthy ones (200 after about 1 ms), one answering 500 to everything,
//! one refusing connections (a port bound, then closed) and one answering
//! after 2 s. Then, for each proxy configuration in turn, it starts the
//! proxy in front of all ten and sends it `GET /` (with `Host: web`) at a
//! fixed rate, open loop: request *i* is due at *i*/rate seconds whatever
//! happened to the earlier ones, over a pool of keep-alive connections that
//! grows when every connection is busy. Each request has a client timeout.
//!
//! How to read a row:
//! - *Success* is the share of requests answered 2xx. What the proxy lets
//!   through of the 500s, the refused connections and the slow answers
//!   shows in *5xx* (a backend's 500, or a proxy's 502/503/504 without
//!   `l5d-err`), *l5d-err* (a 5xx the router made itself and explained),
//!   *Timeouts* (no answer within the client timeout) and *Conn. errors*
//!   (the connection failed or closed under a request).
//! - Latencies are from each request's due time, not from when it was
//!   sent, so a stalled sender cannot hide slow answers (no coordinated
//!   omission). They cover every request, failed ones too; a timeout
//!   counts as the timeout. A p99 near 2,000 ms means about 1 % of the
//!   requests still went to the slow backend. The floor, about 3 ms at
//!   p50, is the same for every proxy: the healthy backends' 1 ms sleep
//!   and the sender's and backends' 1 ms timer ticks.
//! - The run starts cold: what a proxy has to learn (which backend is
//!   broken, which is slow) is part of the measured time.
//! - *CPU s* is the user plus system time the proxy's processes used during
//!   the run, from `/proc`: what the retries and the bookkeeping cost.
//! - *Conns* is how many connections the client opened: about as many as
//!   requests in flight at the peak (each slow answer holds one for 2 s),
//!   more if the proxy closes connections.
//!
//! The router runs once per balancer (`--balancers`), with `io.l5d.fs`
//! naming the ten backends and a response classifier (`--classifier`);
//! `--router-extra FILE` merges more router keys (failure accrual,
//! retries) into each of its configs. HAProxy gets `leastconn`, L7 retries
//! with redispatch and passive health (`observe layer7`); nginx gets
//! `least_conn`, `max_fails` and `proxy_next_upstream`. Every config is
//! checked by its proxy (`router --check`, `haproxy -c`, `nginx -t`)
//! before the first run, and a refusal stops the run with the proxy's
//! own words. Each proxy is pinned to CPU 1 and this process to CPU 0
//! when `taskset` is there and the machine has two CPUs.
//!
//! ```sh
//! cargo run --release -p examples --bin resilience -- --secs 60 --rate 1000
//! cargo run --release -p examples --bin resilience -- --proxies router \
//!     --balancers p2c --classifier none --secs 5
//! ```

mod load;
mod proxies;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use examples::harness::{
    Backend, clock_ticks_per_sec, free_port, taskset_works, tempdir, tree_cpu_ticks,
};
use hyper::StatusCode;
use serde_json::json;

use crate::load::{Connections, Load, run_load};
use crate::report::{Row, row_json, row_line, table};

/// Success rate and latency of proxies in front of a partly broken pool.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Seconds of load per proxy configuration.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    secs: u64,
    /// Requests per second, sent whether or not earlier ones were answered.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    rate: u32,
    /// The client's time limit for one request, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout_secs: u64,
    /// The proxies to measure, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "router,haproxy,nginx"
    )]
    proxies: Vec<ProxyKind>,
    /// The router's balancers (`client.loadBalancer.kind`), one run each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "p2c,ewma,aperture,heap,roundRobin"
    )]
    balancers: Vec<String>,
    /// The router's `service.responseClassifier.kind`; `none` leaves it out.
    #[arg(long, default_value = "io.l5d.http.retryableRead5XX")]
    classifier: String,
    /// A YAML mapping merged into the router entry of each router config
    /// (its keys win; mappings merge key by key).
    #[arg(long)]
    router_extra: Option<PathBuf>,
    /// Use this router binary instead of `cargo build --release -p router`.
    #[arg(long)]
    router_bin: Option<PathBuf>,
    /// HAProxy's `balance` algorithm.
    #[arg(long, value_enum, default_value = "leastconn")]
    haproxy_balance: HaproxyBalance,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the work directory (configs and proxy logs) after the run.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProxyKind {
    Router,
    Haproxy,
    Nginx,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HaproxyBalance {
    Leastconn,
    Roundrobin,
}

// ---------------------------------------------------------------------------
// The backends

/// The ten backends, alive as long as this value.
struct Pool {
    /// Every address, in the order the proxies list them.
    addrs: Vec<SocketAddr>,
    servers: Vec<Backend>,
}

/// What the pool holds, for the report.
const POOL_NOTE: &str = "10 backends: 7 answer 200 after ~1 ms, 1 answers 500, 1 refuses connections, 1 answers after 2 s";

impl Pool {
    async fn start() -> Result<Pool> {
        let mut servers = Vec::new();
        for _ in 0..7 {
            servers.push(Backend::answering("ok", StatusCode::OK, Duration::from_millis(1)).await?);
        }
        servers.push(
            Backend::answering("failing", StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO)
                .await?,
        );
        servers.push(Backend::answering("slow", StatusCode::OK, Duration::from_secs(2)).await?);
        let mut addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        // Bound and closed at once: nothing listens there, so connecting
        // is refused.
        addrs.insert(8, SocketAddr::from(([127, 0, 0, 1], free_port()?)));
        Ok(Pool { addrs, servers })
    }

    /// Requests received so far by the failing and by the slow backend.
    fn bad_requests(&self) -> (u64, u64) {
        (self.servers[7].requests(), self.servers[8].requests())
    }
}

// ---------------------------------------------------------------------------

/// Which CPU the proxies run on, after pinning this process to CPU 0.
fn pin(disabled: bool) -> (Option<&'static str>, String) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if disabled {
        return (None, "Not pinned (--no-pin)".into());
    }
    if !taskset_works() {
        return (None, "Not pinned: taskset is missing".into());
    }
    if cpus < 2 {
        return (None, format!("Not pinned: only {cpus} CPU available"));
    }
    // Before the runtime starts: its threads inherit the main thread's CPU.
    let pinned = Command::new("taskset")
        .args(["-p", "-c", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !pinned {
        return (None, "Not pinned: taskset -p failed".into());
    }
    (
        Some("1"),
        "Each proxy on CPU 1; backends and client on CPU 0".into(),
    )
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let (cpu, pin_note) = pin(args.no_pin);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("resilience: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // On Ctrl-C or SIGTERM the run's future is dropped, and with it every
    // child process (`ProcessGroup` kills its group on drop).
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(&args, cpu, &pin_note) => result,
            () = interrupted() => Err(anyhow::anyhow!("interrupted; proxies stopped")),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("resilience: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// The work directory: removed at the end, kept when asked or when the
/// run failed, since its configs and logs say why.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("configs and logs kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn run(args: &Args, cpu: Option<&str>, pin_note: &str) -> Result<()> {
    let mut work = WorkDir {
        path: tempdir("switchboard-resilience")?,
        keep: args.keep,
    };
    let result = measure(args, &work.path, cpu, pin_note).await;
    work.keep |= result.is_err();
    result
}

async fn measure(args: &Args, work: &Path, cpu: Option<&str>, pin_note: &str) -> Result<()> {
    let pool = Pool::start().await?;
    eprintln!("{POOL_NOTE}:");
    for (addr, what) in
        pool.addrs.iter().zip(
            ["healthy"; 7]
                .into_iter()
                .chain(["500", "refusing", "slow (2 s)"]),
        )
    {
        eprintln!("  {addr} {what}");
    }
    eprintln!("pinning: {pin_note}");

    let setups = proxies::prepare(args, work, &pool.addrs)?;
    for setup in &setups {
        setup.check()?;
    }
    if setups.is_empty() {
        bail!("nothing to measure");
    }

    let load = Load {
        rate: args.rate,
        secs: args.secs,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let ticks = clock_ticks_per_sec();
    let mut rows = Vec::new();
    for setup in &setups {
        let title = format!("{} ({})", setup.name(), setup.label);
        eprintln!("{title}: {} requests/s for {} s", load.rate, load.secs);
        let mut child = setup.start(cpu).await?;
        setup.probe().await?;
        let pid = child.id();
        let cpu_before = tree_cpu_ticks(pid);
        let connections = Arc::new(Connections::new(SocketAddr::from((
            [127, 0, 0, 1],
            setup.port,
        ))));
        let (failing_before, slow_before) = pool.bad_requests();
        let mut run = run_load(connections, load, &title).await?;
        let (failing_after, slow_after) = pool.bad_requests();
        run.to_failing = failing_after - failing_before;
        run.to_slow = slow_after - slow_before;
        run.cpu_secs = tree_cpu_ticks(pid).saturating_sub(cpu_before) as f64 / ticks;
        if let Some(status) = child.exited() {
            bail!(
                "{title} exited during the run ({status}); its output:\n{}",
                std::fs::read_to_string(&setup.log).unwrap_or_default()
            );
        }
        drop(child);
        if run.max_lag > Duration::from_millis(50) {
            eprintln!(
                "  note: the sender fell {:.0} ms behind its schedule (this machine was busy); \
                 latencies count from the schedule, so they include it",
                run.max_lag.as_secs_f64() * 1e3
            );
        }
        let row = Row {
            proxy: setup.name(),
            label: setup.label.clone(),
            run,
        };
        println!("{}", row_line(&row));
        rows.push(row);
    }

    println!(
        "\n{POOL_NOTE}. Open-loop `GET /` at {} requests/s for {} s per row, client timeout {} s; \
         latency from each request's due time, over all requests. {pin_note}.\n",
        load.rate, load.secs, args.timeout_secs
    );
    print!("{}", table(&rows));

    if let Some(path) = &args.json {
        let json = json!({
            "backends": POOL_NOTE,
            "rate": load.rate,
            "secs": load.secs,
            "timeout_secs": args.timeout_secs,
            "pinning": pin_note,
            "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
