//! `h2_loadtest`: the router's `protocol: h2` (prior-knowledge h2c on both
//! sides) measured beside HAProxy and nginx, in one run, on three
//! scenarios:
//!
//! - `h2`: `h2load -c 50 -m 10` sending `GET /` (`:authority: web`) to
//!   an h2c upstream (nginx, `return 200 "ok"`);
//! - `grpc-unary`: gRPC unary calls (a 7-byte request, a 4-byte answer)
//!   from this program's load client, 50 connections with 10 calls in
//!   flight on each, to this program's gRPC server;
//! - `grpc-stream`: server-streaming gRPC calls, each answered with 100
//!   messages of 100 bytes; counted in messages.
//!
//! Each scenario starts its upstream and the three proxies, checks one
//! request through each, warms each up, then loads each in turn, round
//! after round, the order rotating every round; the figures are the
//! medians of the rounds. Pinning is as in `loadtest`: the proxies on
//! CPU 1, the upstream and the load on CPU 0. CPU is read from `/proc`
//! for the proxy's process group (user plus system) and for the whole
//! proxy CPU (kernel network work included). A proxy that cannot run a
//! scenario here is reported as "n/a" with the reason.
//!
//! The gRPC server (`grpc-server`) and the gRPC load (`grpc-client`) are
//! this program run again with a hidden subcommand.
//!
//! Needs `h2load` (nghttp2-client), `haproxy` and `nginx` on the `PATH`,
//! and `taskset` for pinning. Run it from the repository:
//!
//! ```sh
//! cargo run --release -p examples --bin h2_loadtest -- --duration 10 --rounds 3
//! ```

mod client;
mod grpc;
mod h2load;
mod measure;
mod peers;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use examples::harness::{build_router, clock_ticks_per_sec, installed};
use examples::load::procs::{Proc, WorkDir, install_signal_handler, log_tail};
use examples::load::report::median;
use examples::load::sys::Pinning;

use grpc::Method;
use peers::{Kind, Upstream};

/// Compares the router's h2 and gRPC proxying with HAProxy and nginx.
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
    /// The gRPC upstream, until killed.
    #[command(hide = true)]
    GrpcServer {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        messages: u32,
        #[arg(long)]
        size: usize,
    },
    /// The gRPC load, run as a child pinned to the load's CPU; prints its
    /// result as JSON.
    #[command(hide = true)]
    GrpcClient(ClientArgs),
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, value_enum)]
    method: Method,
    #[arg(long)]
    messages: u64,
    #[arg(long)]
    connections: u32,
    #[arg(long)]
    streams: u32,
    #[arg(long)]
    secs: u64,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// `GET /` with h2load against an h2c upstream.
    H2,
    /// gRPC unary calls.
    GrpcUnary,
    /// gRPC server-streaming calls.
    GrpcStream,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Seconds of each measured run (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round runs the scenario against every proxy
    /// once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Client connections (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Requests in flight on each connection (1 to 100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    streams: u32,
    /// Messages in each answer of `grpc-stream` (1 to 10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    stream_messages: u32,
    /// Bytes of each streamed protobuf message (2 to 129).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..=129))]
    message_size: u64,
    /// Seconds of the unmeasured warm-up of each proxy in each scenario
    /// (0 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// The scenarios to run, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "h2,grpc-unary,grpc-stream"
    )]
    scenarios: Vec<Scenario>,
    /// Use this router binary instead of running
    /// `cargo build --release -p router`.
    #[arg(long)]
    router_bin: Option<PathBuf>,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Keep the work directory (configs and logs).
    #[arg(long)]
    keep: bool,
}

impl Args {
    fn message_size(&self) -> usize {
        usize::try_from(self.message_size).unwrap_or(100)
    }
}

/// One measured run of a scenario against one proxy.
#[derive(Debug, Clone)]
struct Sample {
    /// Requests/s (`h2`, `grpc-unary`) or messages/s (`grpc-stream`).
    rate: f64,
    /// Requests or calls per second.
    calls_rate: f64,
    p50_us: f64,
    p99_us: f64,
    /// Requests or calls that failed.
    failed: u64,
    first_failure: Option<String>,
    /// The proxy's own CPU time per request or message, µs.
    cpu_us: Option<f64>,
    /// Busy time of the proxy's CPU and of the load's CPU per unit, µs.
    proxy_core_us: Option<f64>,
    load_core_us: Option<f64>,
    /// The proxy's CPU time over the run's length, percent of one core.
    cpu_pct: f64,
    peak_rss_kib: u64,
}

/// One proxy in one scenario.
struct Entry {
    kind: Kind,
    /// The running proxy and its address, while the scenario runs.
    running: Option<(Proc, SocketAddr)>,
    samples: Vec<Sample>,
    /// Why it was not measured, or stopped being measured.
    unavailable: Option<String>,
}

impl Entry {
    fn median_opt(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.samples.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(&values))
    }
}

/// The results of one scenario.
struct Outcome {
    scenario: Scenario,
    entries: Vec<Entry>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.child {
        Some(Sub::GrpcServer {
            addr,
            messages,
            size,
        }) => grpc::serve(*addr, *messages, *size),
        Some(Sub::GrpcClient(args)) => client_child(args),
        None => run(&cli.args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("h2_loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn client_child(args: &ClientArgs) -> Result<()> {
    let run = client::run(client::Load {
        addr: args.addr,
        authority: "web".into(),
        method: args.method,
        messages: args.messages,
        connections: args.connections,
        streams: args.streams,
        duration: Duration::from_secs(args.secs),
    })?;
    println!("{}", run.to_json());
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    if args.scenarios.is_empty() {
        bail!("--scenarios names no scenario");
    }
    install_signal_handler()?;
    let work = WorkDir::create("switchboard-h2-loadtest", args.keep)?;
    let router_bin = match &args.router_bin {
        Some(path) => path.clone(),
        None => build_router()?,
    };
    let pin = Pinning::detect(args.no_pin);
    eprintln!("router: {}", router_bin.display());
    eprintln!("pinning: {}", pin.note);
    let bench = Bench {
        work: &work,
        pin: &pin,
        ticks: clock_ticks_per_sec(),
        args,
        router_bin: &router_bin,
    };
    let mut outcomes = Vec::new();
    for &scenario in &args.scenarios {
        outcomes.push(bench.scenario(scenario)?);
    }
    print!("{}", report::report(args, &pin, &outcomes));
    Ok(())
}

/// Everything a scenario needs.
struct Bench<'a> {
    work: &'a WorkDir,
    pin: &'a Pinning,
    ticks: f64,
    args: &'a Args,
    router_bin: &'a Path,
}

impl Bench<'_> {
    /// Starts the scenario's upstream and proxies, measures them and stops
    /// them again.
    fn scenario(&self, scenario: Scenario) -> Result<Outcome> {
        let name = report::scenario_name(scenario);
        eprintln!("\nscenario {name}");
        let (mut upstream, up) = match scenario {
            Scenario::H2 => peers::start_nginx_upstream(self.work, self.pin.load)?,
            Scenario::GrpcUnary | Scenario::GrpcStream => peers::start_grpc_upstream(
                self.work,
                self.pin.load,
                self.args.stream_messages,
                self.args.message_size(),
            )?,
        };
        self.wait_ready(
            &mut upstream,
            scenario,
            SocketAddr::from(([127, 0, 0, 1], up.h2)),
        )?;

        let no_load = (scenario == Scenario::H2 && !installed("h2load"))
            .then(|| "h2load is not installed (apt-get install -y nghttp2-client)".to_string());
        let mut entries = Vec::new();
        for kind in Kind::ALL {
            let mut entry = Entry {
                kind,
                running: None,
                samples: Vec::new(),
                unavailable: no_load.clone().or_else(|| kind.unavailable(scenario, &up)),
            };
            if entry.unavailable.is_none() {
                match self.start_proxy(kind, scenario, &up) {
                    Ok(running) => entry.running = Some(running),
                    Err(e) => {
                        eprintln!("{}: not measured: {e:#}", kind.name());
                        entry.unavailable = Some(format!("{e:#}"));
                    }
                }
            }
            entries.push(entry);
        }

        if self.args.warmup > 0 {
            for entry in &mut entries {
                eprintln!(
                    "warm-up: {name}, {} for {} s",
                    entry.kind.name(),
                    self.args.warmup
                );
                self.measure_entry(entry, scenario, self.args.warmup);
            }
            for entry in &mut entries {
                entry.samples.clear();
            }
        }
        let n = entries.len();
        for round in 0..self.args.rounds as usize {
            for k in 0..n {
                let entry = &mut entries[(round + k) % n];
                if let Some(sample) = self.measure_entry(entry, scenario, self.args.duration) {
                    eprintln!(
                        "round {}: {}",
                        round + 1,
                        report::progress_line(entry.kind.name(), scenario, &sample)
                    );
                }
            }
        }
        // Stop the proxies before the upstream.
        for entry in &mut entries {
            entry.running = None;
        }
        drop(upstream);
        Ok(Outcome { scenario, entries })
    }

    fn start_proxy(
        &self,
        kind: Kind,
        scenario: Scenario,
        upstream: &Upstream,
    ) -> Result<(Proc, SocketAddr)> {
        let (mut proc, addr) = peers::start(
            kind,
            scenario,
            self.work,
            self.router_bin,
            upstream,
            self.pin.proxy,
        )?;
        self.wait_ready(&mut proc, scenario, addr)?;
        Ok((proc, addr))
    }

    /// Measures a running entry, keeping the sample; a failed run marks it
    /// unavailable with the reason.
    fn measure_entry(&self, entry: &mut Entry, scenario: Scenario, secs: u64) -> Option<Sample> {
        let (proc, addr) = entry.running.as_mut()?;
        match self.measure(proc, *addr, scenario, secs) {
            Ok(sample) => {
                entry.samples.push(sample.clone());
                Some(sample)
            }
            Err(e) => {
                eprintln!("{}: stopped measuring: {e:#}", entry.kind.name());
                entry.unavailable = Some(format!("failed during the run: {e:#}"));
                entry.running = None;
                None
            }
        }
    }

    /// Polls `addr` with one request of the scenario until it is answered
    /// as expected, for up to 10 s.
    fn wait_ready(&self, proc: &mut Proc, scenario: Scenario, addr: SocketAddr) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let last = match runtime.block_on(self.probe(scenario, addr)) {
                Ok(()) => return Ok(()),
                Err(e) => format!("{e:#}"),
            };
            proc.check_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} at {addr} did not answer as expected within 10 s (last: {last}); end of {}:\n{}",
                    proc.name(),
                    proc.log().display(),
                    log_tail(proc.log())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn probe(&self, scenario: Scenario, addr: SocketAddr) -> Result<()> {
        let timeout = Duration::from_secs(2);
        let call = grpc::call_once(addr, "web", method(scenario));
        let answer = tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {timeout:?}")))?;
        match scenario {
            Scenario::H2 if answer.status == 200 && answer.body.as_ref() == b"ok" => Ok(()),
            Scenario::H2 => bail!(
                "status {}, body {:?}{}",
                answer.status,
                String::from_utf8_lossy(&answer.body),
                answer
                    .l5d_err
                    .map(|e| format!(", l5d-err: {e}"))
                    .unwrap_or_default()
            ),
            Scenario::GrpcUnary | Scenario::GrpcStream => {
                grpc::check_grpc(&answer, self.expected_messages(scenario))
            }
        }
    }

    fn expected_messages(&self, scenario: Scenario) -> u64 {
        match scenario {
            Scenario::GrpcStream => u64::from(self.args.stream_messages),
            Scenario::H2 | Scenario::GrpcUnary => 1,
        }
    }
}

/// The gRPC method a scenario calls; `None` for plain `GET /`.
fn method(scenario: Scenario) -> Option<Method> {
    match scenario {
        Scenario::H2 => None,
        Scenario::GrpcUnary => Some(Method::Unary),
        Scenario::GrpcStream => Some(Method::Stream),
    }
}
