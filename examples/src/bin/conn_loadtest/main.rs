//! `conn_loadtest`: what many client connections and many endpoints cost
//! the router, measured beside HAProxy (one thread) and nginx (one
//! worker) in one run.
//!
//! Two scenarios share one nginx upstream that answers `200 ok` on
//! `--endpoints` loopback ports (one worker, one `server` block):
//!
//! - `idle10k`: `--connections` (10,000) keep-alive HTTP/1.1 connections
//!   to each proxy in turn, each having made one `GET`; `--active` (100)
//!   of them then send `GET`s back to back for `--duration` while the rest
//!   sit idle. The load is this program (`client`, hidden), a
//!   single-threaded tokio client pinned to the load's CPU. It reads the
//!   proxy's memory and CPU time at its phase boundaries, counts the
//!   proxy's ESTABLISHED sockets from `/proc/net/tcp`, and at the end
//!   sends a second `GET` on every idle connection to show it was kept.
//! - `endpoints`: each proxy balancing over 10 and over `--endpoints`
//!   (1,000) upstream ports, under `wrk -t1 -c50` as in `loadtest`: the
//!   router through an `io.l5d.fs` file with the default balancer (`p2c`),
//!   HAProxy with `balance leastconn`, nginx with `least_conn`.
//!
//! Pinning is as in `loadtest`: the proxies on CPU 1, the upstream and
//! the load on CPU 0. The open-file limit is raised (soft up to hard)
//! for this program and so for every child; each proxy's own connection
//! limits are set above the load (nginx `worker_connections`, HAProxy
//! `maxconn`), and the router's client connections may stay idle for 10
//! minutes (`serverSession.idleTimeMs`).
//!
//! Needs `nginx`, `haproxy` and `wrk` on the `PATH` (and `taskset` and
//! `prlimit` from util-linux). Run it from the repository:
//!
//! ```sh
//! cargo run --release -p examples --bin conn_loadtest -- --scenario all
//! ```

mod client;
mod endpoints;
mod idle;
mod proxies;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use examples::harness::{build_router, clock_ticks_per_sec, installed};
use examples::load::conns::raise_nofile;
use examples::load::probe::{free_port, loopback, wait_for_ok};
use examples::load::procs::{Proc, WorkDir, install_signal_handler};
use examples::load::sys::Pinning;

use proxies::Capacity;

/// Many connections and many endpoints: the router beside HAProxy and nginx.
#[derive(Parser, Debug)]
#[command(about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    child: Option<Sub>,
    #[command(flatten)]
    args: Args,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// The `idle10k` load, run as a child pinned to the load's CPU;
    /// prints its result as JSON.
    #[command(hide = true)]
    Client(ClientArgs),
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    connections: u32,
    #[arg(long)]
    active: u32,
    #[arg(long)]
    parallel: u32,
    #[arg(long)]
    settle: u64,
    #[arg(long)]
    secs: u64,
    #[arg(long)]
    proxy_group: u32,
}

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 10,000 connections, 1 % of them active.
    Idle10k,
    /// 10 against 1,000 endpoints behind one name.
    Endpoints,
    /// Both.
    All,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Seconds of each measured run: the active phase of `idle10k`, each
    /// `wrk` run of `endpoints` (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round measures every proxy once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// `idle10k`: client connections held open to each proxy (1 to 15000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=15_000))]
    connections: u32,
    /// `idle10k`: of those, how many send requests back to back.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    active: u32,
    /// `idle10k`: seconds everything sits open and idle before the active
    /// phase (memory is read at its end) (1 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    settle: u64,
    /// `endpoints`: the large endpoint set (the small one is 10) (10 to 2000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=2000))]
    endpoints: u32,
    /// `endpoints`: `wrk` connections (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    wrk_connections: u32,
    /// `endpoints`: seconds of the unmeasured warm-up of each proxy (0 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// Use this router binary instead of running
    /// `cargo build --release -p router`.
    #[arg(long)]
    router_bin: Option<PathBuf>,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the work directory (configs and logs) after the run.
    #[arg(long)]
    keep: bool,
}

/// The small endpoint set of `endpoints`.
const FEW_ENDPOINTS: usize = 10;

/// The proxies compared, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Router,
    HAProxy,
    Nginx,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Router, Kind::HAProxy, Kind::Nginx];

    fn name(self) -> &'static str {
        match self {
            Kind::Router => "router",
            Kind::HAProxy => "HAProxy",
            Kind::Nginx => "nginx",
        }
    }
}

/// A proxy started and answering.
struct Running {
    kind: Kind,
    addr: SocketAddr,
    /// The router's admin port.
    admin: Option<u16>,
    proc: Proc,
}

/// What both scenarios share: the work directory, pinning, the router
/// binary and the upstream's ports.
struct Setup<'a> {
    args: &'a Args,
    work: WorkDir,
    pin: Pinning,
    ticks: f64,
    router_bin: PathBuf,
    /// This program, copied to the work directory: the `idle10k` client.
    client_bin: PathBuf,
    nofile: u64,
    upstream_ports: Vec<u16>,
}

impl Setup<'_> {
    /// Starts `kind` as `name` over `upstreams`, and waits until it routes.
    fn start(
        &self,
        kind: Kind,
        name: &str,
        upstreams: &[u16],
        connections: u32,
    ) -> Result<Running> {
        let port = free_port()?;
        let capacity = Capacity {
            connections,
            nofile: self.nofile,
            idle_secs: 600,
        };
        let cpu = self.pin.proxy;
        let work = &self.work;
        let (proc, admin) = match kind {
            Kind::Router => {
                let admin = free_port()?;
                let bin = &self.router_bin;
                let ports = (port, admin);
                let proc =
                    proxies::start_router_over(work, bin, name, ports, upstreams, capacity, cpu)?;
                (proc, Some(admin))
            }
            Kind::HAProxy => (
                proxies::start_haproxy(work, name, port, upstreams, capacity, cpu)?,
                None,
            ),
            Kind::Nginx => (
                proxies::start_nginx_proxy(work, name, port, upstreams, capacity, cpu)?,
                None,
            ),
        };
        let mut running = Running {
            kind,
            addr: loopback(port),
            admin,
            proc,
        };
        let limit = Duration::from_secs(10);
        wait_for_ok(&mut running.proc, running.addr, Instant::now(), limit)?;
        Ok(running)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.child {
        Some(Sub::Client(args)) => client_child(args),
        None => run(&cli.args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conn_loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn client_child(args: &ClientArgs) -> Result<()> {
    let run = client::run(client::IdleLoad {
        addr: args.addr,
        connections: args.connections,
        active: args.active,
        parallel: args.parallel,
        settle: Duration::from_secs(args.settle),
        duration: Duration::from_secs(args.secs),
        proxy_group: args.proxy_group,
    })?;
    println!("{}", run.to_json());
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    for tool in ["nginx", "haproxy", "wrk"] {
        if !installed(tool) {
            bail!("{tool} is not installed (apt-get install -y nginx haproxy wrk)");
        }
    }
    if args.active > args.connections {
        bail!(
            "--active {} is more than --connections {}",
            args.active,
            args.connections
        );
    }
    let idle = matches!(args.scenario, Scenario::Idle10k | Scenario::All);
    let endpoints = matches!(args.scenario, Scenario::Endpoints | Scenario::All);
    // The client holds every connection; each proxy holds the other end
    // and its upstream connections.
    let nofile = raise_nofile(u64::from(args.connections) + 4096)?;
    install_signal_handler()?;
    let work = WorkDir::create("switchboard-conn-loadtest", args.keep)?;
    // Both binaries run from copies: a build elsewhere in the tree during
    // the run replaces the files in `target/`, and the second scenario
    // would start another router (or no client at all).
    let client_bin = keep_copy(&work, &std::env::current_exe()?, "conn_loadtest")?;
    let built = match &args.router_bin {
        Some(path) => path.clone(),
        None => build_router()?,
    };
    let router_bin = keep_copy(&work, &built, "router")?;
    let pin = Pinning::detect(args.no_pin);
    eprintln!("router: {} (run from a copy)", built.display());
    eprintln!("pinning: {}", pin.note);
    eprintln!("open-file limit: {nofile}");
    let load_before = load_average();
    eprintln!("load average before: {load_before}");

    let setup = Setup {
        args,
        work,
        pin,
        ticks: clock_ticks_per_sec(),
        router_bin,
        client_bin,
        nofile,
        upstream_ports: proxies::free_ports(args.endpoints as usize)?,
    };
    let mut upstream =
        proxies::start_upstream(&setup.work, &setup.upstream_ports, nofile, setup.pin.load)?;
    let limit = Duration::from_secs(10);
    wait_for_ok(
        &mut upstream,
        loopback(setup.upstream_ports[0]),
        Instant::now(),
        limit,
    )?;

    let mut out = String::new();
    let mut json = serde_json::json!({
        "pinning": setup.pin.note,
        "rounds": args.rounds,
        "duration_secs": args.duration,
        "nofile": nofile,
        "load_average_before": load_before,
    });
    if idle {
        let results = idle::run(&setup)?;
        out.push_str(&idle::report(args, &setup.pin, &results));
        json["idle10k"] = idle::to_json(args, &results);
    }
    if endpoints {
        let results = endpoints::run(&setup)?;
        out.push_str(&endpoints::report(args, &setup.pin, &results));
        json["endpoints"] = endpoints::to_json(args, &results);
    }
    let after = load_average();
    out.push_str(&format!(
        "\nLoad average (1, 5, 15 min): {load_before} before, {after} after.\n"
    ));
    json["load_average_after"] = after.into();
    print!("{out}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    drop(upstream);
    Ok(())
}

/// Copies the executable `bin` into the work directory as `name`.
fn keep_copy(work: &WorkDir, bin: &Path, name: &str) -> Result<PathBuf> {
    let copy = work.file(name);
    std::fs::copy(bin, &copy)
        .with_context(|| format!("copying {} to {}", bin.display(), copy.display()))?;
    Ok(copy)
}

/// `/proc/loadavg`'s first three figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
