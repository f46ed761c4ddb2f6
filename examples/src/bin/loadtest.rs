//! `loadtest`: the router as an HTTP/1.1 proxy, measured side by side with
//! HAProxy and an nginx reverse proxy in one run.
//!
//! It starts an nginx upstream, then the router, HAProxy (one thread) and
//! nginx (one worker) in front of it, each on its own loopback port. Each
//! proxy is pinned to CPU 1 and the upstream and `wrk` to CPU 0 when
//! `taskset` is there and the machine has two CPUs or more. For each
//! scenario (`--scenario`, default `get`), after a warm-up of each proxy,
//! `wrk --latency` runs against the proxies in turn, round after round
//! (the order rotates every round), and the medians of the rounds are
//! printed with the router's ratios to the other two:
//!
//! - `get`: keep-alive `GET /`, a 2-byte answer;
//! - `post16k`: keep-alive `POST /post` with a 16 KiB body (a `wrk` Lua script
//!   written to the work directory); the upstream reads every body;
//! - `resp100k`: keep-alive `GET /100k`, a 100 KiB static file;
//! - `newconn`: `GET /` with `Connection: close`, a new client connection
//!   per request (the report counts the connections each run opened);
//! - `features`: `get` through a second router configured with failure
//!   accrual, retries, a classifier, timeouts and a Prometheus telemeter
//!   (`examples/perf/features-*.yaml`), beside the plain one;
//! - `all`: each of them in turn, one table per scenario.
//!
//! It also reports the router's memory (idle after start, and peak under
//! load) and the time from starting the router to its first routed
//! request.
//!
//! Everything listens on 127.0.0.1 only, every wait is bounded in time,
//! and every child process is stopped on exit, on error, on panic and on
//! Ctrl-C or SIGTERM.
//!
//! Needs `nginx`, `haproxy` and `wrk` on the `PATH` (and `taskset` for
//! pinning). Run it from the repository:
//!
//! ```sh
//! cargo run --release -p examples --bin loadtest -- --duration 10 --rounds 3
//! cargo run --release -p examples --bin loadtest -- --scenario all
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use examples::harness::{build_router, clock_ticks_per_sec, installed};
use examples::load::probe::{free_port, loopback, wait_for_ok};
use examples::load::procs::{Proc, WorkDir, install_signal_handler};
use examples::load::report::{median, mib, verdict, verdict_table, verdicts_json};
use examples::load::rounds::{Bench, Contender, Outcome, Role, run_scenario};
use examples::load::scenario::{NGINX_PROXY_TUNING, Scenarios, start_scenario_upstream};
use examples::load::scenario_report::{
    FEATURES_NAME, RunInfo, scenario_json, scenario_tables, scenario_verdicts, summary_table,
};
use examples::load::servers::{
    RouterConfig, start_haproxy, start_nginx_proxy_tuned, start_router, write_router_config,
};
use examples::load::sys::{Pinning, status_kib};

/// The router entry's keys of the `features` scenario.
const FEATURES_ROUTER: &str = include_str!("../../perf/features-router.yaml");
/// The top-level keys of the `features` scenario (a telemeter).
const FEATURES_TOP: &str = include_str!("../../perf/features-top.yaml");
/// The admin path `FEATURES_TOP` serves Prometheus text on.
const FEATURES_METRICS_PATH: &str = "/metrics";

/// Compares the router with HAProxy and an nginx reverse proxy under `wrk`.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// What to measure: get, post16k, resp100k, newconn, features, a
    /// comma-separated list of them, or all.
    #[arg(long, default_value = "get")]
    scenario: Scenarios,
    /// Seconds of each measured `wrk` run (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round runs every proxy once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// `wrk` connections (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Seconds of the unmeasured warm-up run of each proxy, per scenario
    /// (0 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// How many times to time the router's start to its first routed
    /// request (0 to 50; 0 skips it).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=50))]
    start_trials: u32,
    /// Use this router binary instead of running
    /// `cargo build --release -p router`.
    #[arg(long)]
    router_bin: Option<PathBuf>,
    /// YAML keys added to the (plain) router's entry (a file of lines as
    /// they would appear under `- protocol: http`, without the indent),
    /// e.g. a `client` and a `service` block, to measure what they cost.
    #[arg(long)]
    router_extra: Option<PathBuf>,
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

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The router's memory and start time, measured once per run.
struct RouterFigures {
    idle_rss: u64,
    hwm: u64,
    peak_sampled: u64,
    after: u64,
    starts: Vec<f64>,
}

fn run(args: &Args) -> Result<()> {
    for tool in ["nginx", "haproxy", "wrk"] {
        if !installed(tool) {
            bail!("{tool} is not installed (apt-get install -y nginx haproxy wrk)");
        }
    }
    let scenarios = &args.scenario.0;
    if scenarios.is_empty() {
        bail!("--scenario names no scenario");
    }
    install_signal_handler()?;
    let work = WorkDir::create("switchboard-loadtest", args.keep)?;
    let router_extra = match &args.router_extra {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => String::new(),
    };
    let router_bin = match &args.router_bin {
        Some(path) => path.clone(),
        None => build_router()?,
    };
    let pin = Pinning::detect(args.no_pin);
    eprintln!("router: {}", router_bin.display());
    eprintln!("pinning: {}", pin.note);

    let upstream_port = free_port()?;
    let mut upstream = start_scenario_upstream(&work, upstream_port, pin.load)?;
    wait_for_ok(
        &mut upstream,
        loopback(upstream_port),
        Instant::now(),
        Duration::from_secs(10),
    )?;

    let starts = time_starts(args, &work, &router_bin, &pin, upstream_port, &router_extra)?;

    // The proxies; the router with features only when a scenario needs it.
    let started = |name: &'static str, role: Role, port: u16, proc: Proc| Contender {
        name,
        role,
        addr: loopback(port),
        proc,
        scrape: None,
    };
    let (router_port, haproxy_port, nginx_port) = (free_port()?, free_port()?, free_port()?);
    let config = write_router_config(
        &work,
        "router",
        &RouterConfig {
            port: router_port,
            admin: free_port()?,
            upstream: upstream_port,
            extra: &router_extra,
            tls: None,
        },
    )?;
    let mut router = started(
        "router",
        Role::Router,
        router_port,
        start_router(&work, &router_bin, "router", &config, pin.proxy)?,
    );
    let mut haproxy = started(
        "HAProxy",
        Role::Peer,
        haproxy_port,
        start_haproxy(&work, haproxy_port, upstream_port, pin.proxy, None)?,
    );
    let mut nginx = started(
        "nginx",
        Role::Peer,
        nginx_port,
        start_nginx_proxy_tuned(
            &work,
            nginx_port,
            upstream_port,
            pin.proxy,
            None,
            &NGINX_PROXY_TUNING,
        )?,
    );
    let mut featured = match scenarios.iter().any(|s| s.with_features()) {
        true => Some(start_featured_router(
            &work,
            &router_bin,
            &pin,
            upstream_port,
        )?),
        false => None,
    };
    for contender in [&mut router, &mut haproxy, &mut nginx]
        .into_iter()
        .chain(featured.as_mut())
    {
        wait_for_ok(
            &mut contender.proc,
            contender.addr,
            Instant::now(),
            Duration::from_secs(10),
        )?;
    }
    let router_pid = router.proc.pid();
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = status_kib(router_pid, "VmRSS").unwrap_or(0);
    eprintln!(
        "router idle RSS after start and one request: {:.1} MiB",
        mib(idle_rss)
    );

    let bench = Bench {
        work: &work,
        pin: &pin,
        ticks: clock_ticks_per_sec(),
        connections: args.connections,
        upstream: loopback(upstream_port),
    };
    let info = RunInfo {
        rounds: args.rounds,
        connections: args.connections,
        duration: args.duration,
        pinning: &pin.note,
    };
    let mut outcomes = Vec::new();
    for &scenario in scenarios {
        let mut contenders: Vec<&mut Contender> = vec![&mut router];
        if scenario.with_features()
            && let Some(featured) = featured.as_mut()
        {
            contenders.push(featured);
        }
        contenders.push(&mut haproxy);
        contenders.push(&mut nginx);
        let outcome = run_scenario(
            &bench,
            scenario,
            &mut contenders,
            args.rounds,
            args.duration,
            args.warmup,
        )?;
        // Each scenario's tables as soon as it is done: `all` runs long.
        print!("{}", scenario_tables(&outcome, &info));
        outcomes.push(outcome);
    }

    let peak_sampled = outcomes
        .iter()
        .filter_map(|o| o.row("router"))
        .flat_map(|r| &r.samples)
        .map(|s| s.peak_rss_kib)
        .max()
        .unwrap_or(0);
    let hwm = status_kib(router_pid, "VmHWM").unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let figures = RouterFigures {
        idle_rss,
        hwm,
        peak_sampled,
        after: status_kib(router_pid, "VmRSS").unwrap_or(0),
        starts,
    };
    let (out, json) = report(args, &pin, &outcomes, &figures);
    print!("{out}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    // Stop the proxies before the upstream.
    drop((router, haproxy, nginx, featured));
    drop(upstream);
    Ok(())
}

/// Times the start of a fresh router to its first routed request,
/// `args.start_trials` times; milliseconds.
fn time_starts(
    args: &Args,
    work: &WorkDir,
    router_bin: &Path,
    pin: &Pinning,
    upstream_port: u16,
    router_extra: &str,
) -> Result<Vec<f64>> {
    let mut starts = Vec::new();
    for trial in 0..args.start_trials {
        let port = free_port()?;
        let config = write_router_config(
            work,
            "router-start",
            &RouterConfig {
                port,
                admin: free_port()?,
                upstream: upstream_port,
                extra: router_extra,
                tls: None,
            },
        )?;
        let started = Instant::now();
        let mut router = start_router(work, router_bin, "router-start", &config, pin.proxy)?;
        let elapsed = wait_for_ok(
            &mut router,
            loopback(port),
            started,
            Duration::from_secs(10),
        )?;
        router.stop();
        eprintln!(
            "start to first routed request, trial {}: {:.1} ms",
            trial + 1,
            elapsed.as_secs_f64() * 1e3
        );
        starts.push(elapsed.as_secs_f64() * 1e3);
    }
    Ok(starts)
}

/// The router with `examples/perf/features-*.yaml`, its telemeter
/// scraped while it is loaded.
fn start_featured_router(
    work: &WorkDir,
    router_bin: &Path,
    pin: &Pinning,
    upstream_port: u16,
) -> Result<Contender> {
    let (port, admin) = (free_port()?, free_port()?);
    let config = write_router_config(
        work,
        FEATURES_NAME,
        &RouterConfig {
            port,
            admin,
            upstream: upstream_port,
            extra: FEATURES_ROUTER,
            tls: None,
        },
    )?;
    // Top-level keys go before the rest; order does not matter in YAML.
    let body = std::fs::read_to_string(&config)?;
    std::fs::write(&config, format!("{FEATURES_TOP}{body}"))?;
    Ok(Contender {
        name: FEATURES_NAME,
        role: Role::Router,
        addr: loopback(port),
        proc: start_router(work, router_bin, FEATURES_NAME, &config, pin.proxy)?,
        scrape: Some((loopback(admin), FEATURES_METRICS_PATH)),
    })
}

/// The closing report (after each scenario's own tables) and the JSON.
fn report(
    args: &Args,
    pin: &Pinning,
    outcomes: &[Outcome],
    figures: &RouterFigures,
) -> (String, serde_json::Value) {
    let mut out = String::new();
    if outcomes.len() > 1 {
        out.push_str(&summary_table(outcomes));
    }
    let peak_of = |name: &str| {
        outcomes
            .iter()
            .filter_map(|o| o.row(name))
            .flat_map(|r| &r.samples)
            .map(|s| s.peak_rss_kib)
            .max()
            .unwrap_or(0)
    };
    let _ = writeln!(
        out,
        "\nRouter memory: {:.1} MiB idle after start (VmRSS); {:.1} MiB peak (VmHWM), {:.1} MiB highest VmRSS sampled under load; {:.1} MiB 2 s after the load.",
        mib(figures.idle_rss),
        mib(figures.hwm),
        mib(figures.peak_sampled),
        mib(figures.after)
    );
    let _ = writeln!(
        out,
        "Peak RSS under load, others: HAProxy {:.1} MiB, nginx {:.1} MiB (master and worker).",
        mib(peak_of("HAProxy")),
        mib(peak_of("nginx"))
    );
    let starts = &figures.starts;
    let start_median = median(starts);
    if !starts.is_empty() {
        let mut sorted = starts.clone();
        sorted.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "Start to first routed request: median {start_median:.1} ms over {} starts (min {:.1}, max {:.1}).",
            starts.len(),
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }

    let mut verdicts: Vec<_> = outcomes.iter().flat_map(scenario_verdicts).collect();
    verdicts.push(verdict(
        "RSS idle",
        "≤ 12 MiB",
        format!("{:.1} MiB", mib(figures.idle_rss)),
        mib(figures.idle_rss) <= 12.0,
    ));
    verdicts.push(verdict(
        "RSS under load (VmHWM)",
        "< 50 MiB",
        format!("{:.1} MiB", mib(figures.hwm)),
        mib(figures.hwm) < 50.0,
    ));
    if !starts.is_empty() {
        verdicts.push(verdict(
            "start to first routed request (median)",
            "≤ 10 ms",
            format!("{start_median:.1} ms"),
            start_median <= 10.0,
        ));
    }
    out.push_str(&verdict_table(&verdicts));

    let scenarios: Vec<serde_json::Value> = outcomes.iter().map(scenario_json).collect();
    let names: Vec<&str> = outcomes.iter().map(|o| o.scenario.name()).collect();
    let mut json = serde_json::json!({
        "scenario": names.join(","),
        "duration_secs": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "pinning": pin.note,
        "scenarios": scenarios,
        "router": {
            "idle_rss_kib": figures.idle_rss,
            "vm_hwm_kib": figures.hwm,
            "peak_rss_sampled_kib": figures.peak_sampled,
            "rss_after_load_kib": figures.after,
            "start_to_first_request_ms": starts,
            "start_to_first_request_ms_median": if starts.is_empty() { serde_json::Value::Null } else { start_median.into() },
        },
        "verdicts": verdicts_json(&verdicts),
    });
    // One scenario: its proxies at the top level too, where they were
    // before there were scenarios.
    if let ([only], Some(object)) = (scenarios.as_slice(), json.as_object_mut())
        && let Some(proxies) = only.get("proxies")
    {
        object.insert("proxies".into(), proxies.clone());
    }
    (out, json)
}
