//! `tls_loadtest`: the router terminating TLS, measured side by side with
//! HAProxy and an nginx reverse proxy that serve the same certificate, in
//! one run.
//!
//! It makes a CA and a leaf certificate for `127.0.0.1` and `localhost`,
//! starts an nginx upstream that answers `200 ok` over plain HTTP, then
//! the router, HAProxy (one thread) and nginx (one worker), each
//! terminating TLS with that certificate and key and forwarding plain
//! HTTP/1.1 to the upstream. Pinning is as in `loadtest`: the proxies on
//! CPU 1, the upstream and the load on CPU 0.
//!
//! Three loads by default, each run against every proxy in turn, round
//! after round (the order of the proxies rotates every round):
//!
//! - `keepalive`: `wrk -t1 -c50 --latency https://…/`: requests over
//!   open TLS connections; requests/s, CPU per request, p99.
//! - `full`: handshakes. Each of 50 loops connects, makes a TLS handshake,
//!   sends one `GET` with `Connection: close`, reads the answer and
//!   closes, as `wrk -H 'Connection: close'` does; the client offers no
//!   session, so every handshake is a full one (certificate and
//!   signature). Handshakes/s, CPU per handshake.
//! - `resumed`: the same, offering the ticket of an earlier session, as
//!   `wrk` (OpenSSL) does when it reconnects; the report counts how many
//!   handshakes each server actually resumed.
//! - `wrk-close` (only when named in `--loads`): `wrk -H 'Connection:
//!   close'`, OpenSSL's client, which resumes its sessions.
//!
//! The handshake loads run in a child of this program (`handshake-client`,
//! hidden), pinned to the load's CPU, that prints its figures as JSON.
//!
//! Before the loads it reports what each proxy negotiates, with rustls and
//! with `openssl s_client` (OpenSSL's client, as `wrk` uses), and whether it
//! resumes a session. `--tls13-suite` pins every proxy to TLS 1.3 and one
//! cipher suite; without it each proxy keeps its defaults (TLS 1.2 and 1.3).
//!
//! Needs `nginx`, `haproxy`, `wrk` and `openssl` on the `PATH` (and
//! `taskset` for pinning). Run it from the repository:
//!
//! ```sh
//! cargo run --release -p examples --bin tls_loadtest -- --duration 10 --rounds 3
//! ```

mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use examples::harness::{build_router, clock_ticks_per_sec, installed};
use examples::load::handshakes::{self, HandshakeLoad, HandshakeRun};
use examples::load::probe::{free_port, loopback, wait_for_ok, wait_for_ok_with};
use examples::load::procs::{Proc, WorkDir, install_signal_handler, run_json_client};
use examples::load::report::median;
use examples::load::servers::{
    RouterConfig, start_haproxy, start_nginx_proxy, start_router, start_upstream,
    write_router_config,
};
use examples::load::sys::{Pinning, UsageMeter};
use examples::load::tls::{
    KeyKind, ServerTls, https_get, make_certificate, openssl_negotiated, resumes, verifying_client,
};
use examples::load::wrk::{WrkLoad, run_wrk};

/// Compares the router terminating TLS with HAProxy and nginx.
#[derive(Parser, Debug)]
#[command(about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    client: Option<Sub>,
    #[command(flatten)]
    args: Args,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// The handshake load, run as a child pinned to the load's CPU;
    /// prints its result as JSON.
    #[command(hide = true)]
    HandshakeClient(ClientArgs),
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    connections: u32,
    #[arg(long)]
    secs: u64,
    #[arg(long)]
    resume: bool,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Seconds of each measured run (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round runs every load against every proxy
    /// once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// `wrk` connections of the keep-alive load (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Connections open at once in the handshake loads (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    handshake_connections: u32,
    /// Seconds of the unmeasured warm-up of each load and proxy (0 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// The loads to run, in this order.
    #[arg(long, value_delimiter = ',', default_value = "keepalive,full,resumed")]
    loads: Vec<Load>,
    /// The leaf certificate's key.
    #[arg(long, value_enum, default_value_t = KeyKind::EcdsaP256)]
    key: KeyKind,
    /// Pin every proxy to TLS 1.3 and this suite
    /// (`TLS_AES_128_GCM_SHA256`, `TLS_AES_256_GCM_SHA384`,
    /// `TLS_CHACHA20_POLY1305_SHA256`); by default each keeps its own.
    #[arg(long)]
    tls13_suite: Option<String>,
    /// Leave nginx out.
    #[arg(long)]
    no_nginx: bool,
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
    /// Keep the work directory (configs, certificate and logs).
    #[arg(long)]
    keep: bool,
}

/// One kind of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Load {
    /// Requests over open TLS connections (`wrk`).
    Keepalive,
    /// A full handshake per request.
    Full,
    /// A resumed handshake per request.
    Resumed,
    /// `wrk -H 'Connection: close'` (OpenSSL, resuming).
    WrkClose,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Keepalive => "keep-alive",
            Load::Full => "full handshakes",
            Load::Resumed => "resumed handshakes",
            Load::WrkClose => "wrk, Connection: close",
        }
    }

    /// What one unit of work is.
    fn unit(self) -> &'static str {
        match self {
            Load::Keepalive => "request",
            Load::Full | Load::Resumed | Load::WrkClose => "handshake",
        }
    }

    fn rate_label(self) -> &'static str {
        match self {
            Load::Keepalive => "Requests/s",
            Load::Full | Load::Resumed | Load::WrkClose => "Handshakes/s",
        }
    }
}

/// One measured run of one load against one proxy.
#[derive(Debug, Clone)]
struct Sample {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    /// Requests or handshakes completed.
    units: u64,
    errors: u64,
    /// Handshakes the server resumed, and connections that offered a
    /// ticket (handshake loads of this program's client).
    resumed: Option<u64>,
    offered: Option<u64>,
    first_error: Option<String>,
    /// The proxy's own CPU time per unit.
    cpu_us: Option<f64>,
    /// Busy time of the proxy's CPU and of the load's CPU per unit.
    proxy_core_us: Option<f64>,
    load_core_us: Option<f64>,
    /// The proxy's CPU time over the run's length, percent of one core.
    cpu_pct: f64,
    peak_rss_kib: u64,
}

/// One proxy under test and its runs, one list per load.
struct Proxy {
    name: &'static str,
    addr: SocketAddr,
    proc: Proc,
    samples: Vec<Vec<Sample>>,
    negotiated: String,
    openssl: String,
    second_handshake: String,
}

impl Proxy {
    fn median_of(&self, load: usize, f: impl Fn(&Sample) -> f64) -> f64 {
        median(&self.samples[load].iter().map(f).collect::<Vec<_>>())
    }

    fn median_opt(&self, load: usize, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.samples[load].iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(&values))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.client {
        Some(Sub::HandshakeClient(client)) => handshake_client(client),
        None => run(&cli.args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls_loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The child: runs one handshake load and prints what it measured.
fn handshake_client(args: &ClientArgs) -> Result<()> {
    let run = handshakes::run(HandshakeLoad {
        addr: args.addr,
        connections: args.connections,
        duration: Duration::from_secs(args.secs),
        resume: args.resume,
    })?;
    println!("{}", run.to_json());
    Ok(())
}

/// Everything a measured run needs besides the proxy.
struct Bench<'a> {
    work: &'a WorkDir,
    pin: &'a Pinning,
    ticks: f64,
    args: &'a Args,
}

impl Bench<'_> {
    /// Runs `load` against `proxy` for `secs` and says what it cost.
    fn measure(&self, proxy: &mut Proxy, load: Load, secs: u64) -> Result<Sample> {
        let group = proxy.proc.pid();
        let meter = UsageMeter::start(group, self.pin);
        let mut sample = match load {
            Load::Keepalive | Load::WrkClose => {
                let close = ["Connection: close"];
                let (run, peak) = run_wrk(
                    self.work,
                    self.pin.load,
                    &WrkLoad {
                        url: &format!("https://{}/", proxy.addr),
                        connections: self.args.connections,
                        secs,
                        headers: if load == Load::WrkClose { &close } else { &[] },
                    },
                    group,
                )?;
                Sample {
                    rate: run.rps,
                    p50_us: run.p50_us,
                    p99_us: run.p99_us,
                    units: run.requests,
                    errors: run.non_2xx + run.socket_errors,
                    resumed: None,
                    offered: None,
                    first_error: None,
                    cpu_us: None,
                    proxy_core_us: None,
                    load_core_us: None,
                    cpu_pct: 0.0,
                    peak_rss_kib: peak,
                }
            }
            Load::Full | Load::Resumed => {
                let (run, peak) =
                    self.run_client(proxy.addr, secs, load == Load::Resumed, group)?;
                Sample {
                    rate: run.rate,
                    p50_us: run.p50_us,
                    p99_us: run.p99_us,
                    units: run.completed,
                    errors: run.errors,
                    resumed: Some(run.resumed),
                    offered: Some(run.offered),
                    first_error: run.first_error,
                    cpu_us: None,
                    proxy_core_us: None,
                    load_core_us: None,
                    cpu_pct: 0.0,
                    peak_rss_kib: peak,
                }
            }
        };
        let usage = meter.stop(self.ticks);
        sample.cpu_us = usage.group_us_per(sample.units);
        sample.proxy_core_us = usage.proxy_cpu_us_per(sample.units);
        sample.load_core_us = usage.load_cpu_us_per(sample.units);
        sample.cpu_pct = 100.0 * usage.group_secs / secs as f64;
        proxy.proc.check_running()?;
        Ok(sample)
    }

    /// Starts this program's handshake client on the load's CPU; samples
    /// the RSS of `target_group` while it runs.
    fn run_client(
        &self,
        addr: SocketAddr,
        secs: u64,
        resume: bool,
        target_group: u32,
    ) -> Result<(HandshakeRun, u64)> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut command = Pinning::command(self.pin.load, exe);
        command
            .arg("handshake-client")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--connections")
            .arg(self.args.handshake_connections.to_string())
            .arg("--secs")
            .arg(secs.to_string());
        if resume {
            command.arg("--resume");
        }
        let log = self.work.file("client.out");
        let (result, peak) =
            run_json_client("handshake client", command, &log, secs, target_group)?;
        Ok((HandshakeRun::from_json(&result)?, peak))
    }
}

fn run(args: &Args) -> Result<()> {
    for tool in ["nginx", "haproxy", "wrk"] {
        if !installed(tool) {
            bail!("{tool} is not installed (apt-get install -y nginx haproxy wrk)");
        }
    }
    if !openssl_installed() {
        bail!("openssl is not installed (apt-get install -y openssl)");
    }
    if args.loads.is_empty() {
        bail!("--loads names no load");
    }
    install_signal_handler()?;
    let work = WorkDir::create("switchboard-tls-loadtest", args.keep)?;
    let router_bin = match &args.router_bin {
        Some(path) => path.clone(),
        None => build_router()?,
    };
    let pin = Pinning::detect(args.no_pin);
    let ticks = clock_ticks_per_sec();
    eprintln!("router: {}", router_bin.display());
    eprintln!("pinning: {}", pin.note);

    let files = make_certificate(&work.path, args.key)?;
    let tls = ServerTls {
        files,
        tls13_suite: args.tls13_suite.clone(),
    };
    let verifying = verifying_client(&tls.files.ca)?;

    let upstream_port = free_port()?;
    let mut upstream = start_upstream(&work, upstream_port, pin.load)?;
    wait_for_ok(
        &mut upstream,
        loopback(upstream_port),
        Instant::now(),
        Duration::from_secs(10),
    )?;

    let mut proxies = start_proxies(&work, &router_bin, &pin, &tls, upstream_port, args)?;
    for proxy in &mut proxies {
        let addr = proxy.addr;
        wait_for_ok_with(
            &mut proxy.proc,
            addr,
            Instant::now(),
            Duration::from_secs(10),
            |addr, timeout| {
                https_get(&verifying, addr, timeout).map(|(status, answer, _)| (status, answer))
            },
        )?;
        describe_tls(proxy, &verifying, &tls.files.ca)?;
        eprintln!(
            "{}: rustls client: {}; openssl s_client: {}; second handshake of one client: {}",
            proxy.name, proxy.negotiated, proxy.openssl, proxy.second_handshake
        );
    }

    let bench = Bench {
        work: &work,
        pin: &pin,
        ticks,
        args,
    };
    if args.warmup > 0 {
        for &load in &args.loads {
            for proxy in &mut proxies {
                eprintln!(
                    "warm-up: {}, {} for {} s",
                    load.name(),
                    proxy.name,
                    args.warmup
                );
                bench.measure(proxy, load, args.warmup)?;
            }
        }
    }

    let n = proxies.len();
    for round in 0..args.rounds as usize {
        for (l, &load) in args.loads.iter().enumerate() {
            for k in 0..n {
                let proxy = &mut proxies[(round + k) % n];
                let sample = bench.measure(proxy, load, args.duration)?;
                eprintln!(
                    "round {}: {}",
                    round + 1,
                    report::progress_line(proxy.name, load, &sample)
                );
                proxy.samples[l].push(sample);
            }
        }
    }

    let (out, verdicts) = report::report(args, &pin, &proxies);
    print!("{out}");
    if let Some(path) = &args.json {
        let json = report::to_json(args, &pin, &proxies, &verdicts);
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    // Stop the proxies before the upstream.
    drop(proxies);
    drop(upstream);
    Ok(())
}

fn openssl_installed() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The router, HAProxy and (unless left out) nginx, terminating TLS.
fn start_proxies(
    work: &WorkDir,
    router_bin: &Path,
    pin: &Pinning,
    tls: &ServerTls,
    upstream: u16,
    args: &Args,
) -> Result<Vec<Proxy>> {
    let router_port = free_port()?;
    let config = write_router_config(
        work,
        "router",
        &RouterConfig {
            port: router_port,
            admin: free_port()?,
            upstream,
            extra: "",
            tls: Some(tls),
        },
    )?;
    let mut started = vec![(
        "router",
        router_port,
        start_router(work, router_bin, "router", &config, pin.proxy)?,
    )];
    let haproxy_port = free_port()?;
    started.push((
        "HAProxy",
        haproxy_port,
        start_haproxy(work, haproxy_port, upstream, pin.proxy, Some(tls))?,
    ));
    if !args.no_nginx {
        let nginx_port = free_port()?;
        started.push((
            "nginx",
            nginx_port,
            start_nginx_proxy(work, nginx_port, upstream, pin.proxy, Some(tls))?,
        ));
    }
    Ok(started
        .into_iter()
        .map(|(name, port, proc)| Proxy {
            name,
            addr: loopback(port),
            proc,
            samples: vec![Vec::new(); args.loads.len()],
            negotiated: String::new(),
            openssl: String::new(),
            second_handshake: String::new(),
        })
        .collect())
}

/// What the proxy negotiates with rustls and with OpenSSL, and whether
/// a second connection of the same client is resumed.
fn describe_tls(proxy: &mut Proxy, verifying: &Arc<rustls::ClientConfig>, ca: &Path) -> Result<()> {
    let (_, _, negotiated) = https_get(verifying, proxy.addr, Duration::from_secs(5))
        .with_context(|| format!("HTTPS to {}", proxy.name))?;
    proxy.negotiated = negotiated.to_string();
    proxy.openssl = openssl_negotiated(proxy.addr, ca)?;
    let second = resumes(verifying, proxy.addr)?;
    proxy.second_handshake = match second.kind {
        Some(rustls::HandshakeKind::Resumed) => "resumed".into(),
        Some(kind) => format!("{kind:?}").to_lowercase(),
        None => "none".into(),
    };
    Ok(())
}
