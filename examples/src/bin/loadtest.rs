//! `loadtest`: the router as an HTTP/1.1 proxy, measured side by side with
//! HAProxy and an nginx reverse proxy in one run.
//!
//! It starts an nginx upstream that answers `200 ok`, then the router,
//! HAProxy (one thread) and nginx (one worker) in front of it, each on its
//! own loopback port. Each proxy is pinned to CPU 1 and the upstream and
//! `wrk` to CPU 0 when `taskset` is there and the machine has two CPUs or
//! more. After a warm-up of each proxy, `wrk --latency` runs against the
//! proxies in turn, round after round (the order rotates every round), and
//! the medians of the rounds are printed with the router's ratios to the
//! other two. It also reports the router's memory (idle after start, and
//! peak under load) and the time from starting the router to its first
//! routed request.
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
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use examples::harness::{build_router, clock_ticks_per_sec};
use examples::load::probe::{free_port, loopback, wait_for_ok};
use examples::load::procs::{Proc, WorkDir, install_signal_handler};
use examples::load::report::{
    fmt_opt_us, fmt_us, median, mib, verdict, verdict_table, verdicts_json,
};
use examples::load::servers::{
    RouterConfig, start_haproxy, start_nginx_proxy, start_router, start_upstream,
    write_router_config,
};
use examples::load::sys::{Pinning, UsageMeter, status_kib};
use examples::load::wrk::{WrkLoad, WrkRun, run_wrk};

/// Compares the router with HAProxy and an nginx reverse proxy under `wrk`.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Seconds of each measured `wrk` run (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round runs every proxy once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// `wrk` connections (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Seconds of the unmeasured warm-up run of each proxy (0 to 60).
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
    /// YAML keys added to the router's entry (a file of lines as they
    /// would appear under `- protocol: http`, without the indent), e.g. a
    /// `client` and a `service` block, to measure what they cost.
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

/// One proxy under test and its measurements.
struct Proxy {
    name: &'static str,
    addr: SocketAddr,
    proc: Proc,
    runs: Vec<WrkRun>,
    cpu_us_per_request: Vec<f64>,
    /// Whole-CPU busy time per request on the proxy's CPU and on the CPU
    /// of `wrk` and the upstream (when pinned).
    proxy_cpu_us_per_request: Vec<f64>,
    load_cpu_us_per_request: Vec<f64>,
    peak_rss_kib: u64,
}

impl Proxy {
    fn median_of(&self, f: impl Fn(&WrkRun) -> f64) -> f64 {
        median(&self.runs.iter().map(f).collect::<Vec<_>>())
    }
}

// ---------------------------------------------------------------------------

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

fn run(args: &Args) -> Result<()> {
    for tool in ["nginx", "haproxy", "wrk"] {
        let found = Command::new(tool)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            bail!("{tool} is not installed (apt-get install -y nginx haproxy wrk)");
        }
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
    let ticks = clock_ticks_per_sec();
    eprintln!("router: {}", router_bin.display());
    eprintln!("pinning: {}", pin.note);

    // The upstream.
    let upstream_port = free_port()?;
    let mut upstream = start_upstream(&work, upstream_port, pin.load)?;
    wait_for_ok(
        &mut upstream,
        loopback(upstream_port),
        Instant::now(),
        Duration::from_secs(10),
    )?;

    // Start to first routed request, on a fresh router each time.
    let mut starts = Vec::new();
    for trial in 0..args.start_trials {
        let port = free_port()?;
        let config = write_router_config(
            &work,
            "router-start",
            &RouterConfig {
                port,
                admin: free_port()?,
                upstream: upstream_port,
                extra: &router_extra,
                tls: None,
            },
        )?;
        let started = Instant::now();
        let mut router = start_router(&work, &router_bin, "router-start", &config, pin.proxy)?;
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

    // The proxies.
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
    let router = start_router(&work, &router_bin, "router", &config, pin.proxy)?;
    let haproxy = start_haproxy(&work, haproxy_port, upstream_port, pin.proxy, None)?;
    let nginx = start_nginx_proxy(&work, nginx_port, upstream_port, pin.proxy, None)?;
    let mut proxies: Vec<Proxy> = [
        ("router", router_port, router),
        ("HAProxy", haproxy_port, haproxy),
        ("nginx", nginx_port, nginx),
    ]
    .into_iter()
    .map(|(name, port, proc)| Proxy {
        name,
        addr: loopback(port),
        proc,
        runs: Vec::new(),
        cpu_us_per_request: Vec::new(),
        proxy_cpu_us_per_request: Vec::new(),
        load_cpu_us_per_request: Vec::new(),
        peak_rss_kib: 0,
    })
    .collect();
    for proxy in &mut proxies {
        wait_for_ok(
            &mut proxy.proc,
            proxy.addr,
            Instant::now(),
            Duration::from_secs(10),
        )?;
    }
    let router_pid = proxies[0].proc.pid();
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = status_kib(router_pid, "VmRSS").unwrap_or(0);
    eprintln!(
        "router idle RSS after start and one request: {:.1} MiB",
        mib(idle_rss)
    );

    if args.warmup > 0 {
        for proxy in &mut proxies {
            eprintln!("warm-up: {} for {} s", proxy.name, args.warmup);
            run_wrk(
                &work,
                pin.load,
                &WrkLoad {
                    url: &format!("http://{}/", proxy.addr),
                    connections: args.connections,
                    secs: args.warmup,
                    headers: &[],
                },
                proxy.proc.pid(),
            )?;
            proxy.proc.check_running()?;
        }
    }

    let n = proxies.len();
    for round in 0..args.rounds as usize {
        for k in 0..n {
            let proxy = &mut proxies[(round + k) % n];
            let group = proxy.proc.pid();
            let meter = UsageMeter::start(group, &pin);
            let (result, peak) = run_wrk(
                &work,
                pin.load,
                &WrkLoad {
                    url: &format!("http://{}/", proxy.addr),
                    connections: args.connections,
                    secs: args.duration,
                    headers: &[],
                },
                group,
            )?;
            let usage = meter.stop(ticks);
            let cpu_secs = usage.group_secs;
            let proxy_cpu_us = usage.proxy_cpu_us_per(result.requests);
            let load_cpu_us = usage.load_cpu_us_per(result.requests);
            proxy.proc.check_running()?;
            eprintln!(
                "round {}: {:<8} {:>9.0} rps  p50 {:>9}  p99 {:>9}  CPU {:.0} %{}{}",
                round + 1,
                proxy.name,
                result.rps,
                fmt_us(result.p50_us),
                fmt_us(result.p99_us),
                100.0 * cpu_secs / args.duration as f64,
                match (proxy_cpu_us, load_cpu_us) {
                    (Some(p), Some(l)) =>
                        format!("  whole-CPU µs/request: proxy's {p:.1}, load's {l:.1}"),
                    _ => String::new(),
                },
                if result.non_2xx + result.socket_errors > 0 {
                    format!(
                        "  ({} non-2xx, {} socket errors)",
                        result.non_2xx, result.socket_errors
                    )
                } else {
                    String::new()
                }
            );
            if result.requests > 0 {
                proxy
                    .cpu_us_per_request
                    .push(cpu_secs * 1e6 / result.requests as f64);
            }
            proxy.proxy_cpu_us_per_request.extend(proxy_cpu_us);
            proxy.load_cpu_us_per_request.extend(load_cpu_us);
            proxy.peak_rss_kib = proxy.peak_rss_kib.max(peak);
            proxy.runs.push(result);
        }
    }

    let router_hwm = status_kib(router_pid, "VmHWM").unwrap_or(0);
    let router_peak_sampled = proxies[0].peak_rss_kib;
    std::thread::sleep(Duration::from_secs(2));
    let router_after = status_kib(router_pid, "VmRSS").unwrap_or(0);

    // Report.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} rounds of `wrk -t1 -c{} -d{}s --latency` per proxy; medians of the rounds. {}.\n",
        args.rounds, args.connections, args.duration, pin.note
    );
    let _ = writeln!(
        out,
        "| Proxy | Requests/s | p50 | p99 | CPU µs / request | Proxy's CPU, µs / request | Load's CPU, µs / request | Requests/s by round |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for proxy in &proxies {
        let rounds: Vec<String> = proxy.runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.1} | {} | {} | {} |",
            proxy.name,
            proxy.median_of(|r| r.rps),
            fmt_us(proxy.median_of(|r| r.p50_us)),
            fmt_us(proxy.median_of(|r| r.p99_us)),
            median(&proxy.cpu_us_per_request),
            fmt_opt_us(&proxy.proxy_cpu_us_per_request),
            fmt_opt_us(&proxy.load_cpu_us_per_request),
            rounds.join(", ")
        );
    }
    let errors: u64 = proxies
        .iter()
        .flat_map(|p| &p.runs)
        .map(|r| r.non_2xx + r.socket_errors)
        .sum();
    let (router, haproxy, nginx) = (&proxies[0], &proxies[1], &proxies[2]);
    let ratio = |a: &Proxy, b: &Proxy, f: fn(&WrkRun) -> f64| a.median_of(f) / b.median_of(f);
    let by_round = |a: &Proxy, b: &Proxy, f: fn(&WrkRun) -> f64| -> String {
        a.runs
            .iter()
            .zip(&b.runs)
            .map(|(x, y)| format!("{:.2}", f(x) / f(y)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rps = |r: &WrkRun| r.rps;
    let p99 = |r: &WrkRun| r.p99_us;
    let _ = writeln!(out, "\n| Ratio | Of the medians | By round |");
    let _ = writeln!(out, "|---|---|---|");
    for (label, other) in [("HAProxy", haproxy), ("nginx", nginx)] {
        let _ = writeln!(
            out,
            "| router / {label}, requests/s | {:.2} | {} |",
            ratio(router, other, rps),
            by_round(router, other, rps)
        );
        let _ = writeln!(
            out,
            "| router / {label}, p99 | {:.2} | {} |",
            ratio(router, other, p99),
            by_round(router, other, p99)
        );
    }
    let _ = writeln!(
        out,
        "\nNon-2xx answers and socket errors, all runs: {errors}."
    );
    let start_median = median(&starts);
    let _ = writeln!(
        out,
        "Router memory: {:.1} MiB idle after start (VmRSS); {:.1} MiB peak (VmHWM), {:.1} MiB highest VmRSS sampled under load; {:.1} MiB 2 s after the load.",
        mib(idle_rss),
        mib(router_hwm),
        mib(router_peak_sampled),
        mib(router_after)
    );
    let _ = writeln!(
        out,
        "Peak RSS under load, others: HAProxy {:.1} MiB, nginx {:.1} MiB (master and worker).",
        mib(haproxy.peak_rss_kib),
        mib(nginx.peak_rss_kib)
    );
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

    let rps_h = ratio(router, haproxy, rps);
    let rps_n = ratio(router, nginx, rps);
    let p99_h = ratio(router, haproxy, p99);
    let mut verdicts = vec![
        verdict(
            "requests/s vs nginx",
            "≥ 1.0×",
            format!("{rps_n:.2}×"),
            rps_n >= 1.0,
        ),
        verdict(
            "requests/s vs HAProxy",
            "≥ 0.8×",
            format!("{rps_h:.2}×"),
            rps_h >= 0.8,
        ),
        verdict(
            "p99 vs HAProxy",
            "≤ 1.5×",
            format!("{p99_h:.2}×"),
            p99_h <= 1.5,
        ),
        verdict(
            "RSS idle",
            "< 20 MiB",
            format!("{:.1} MiB", mib(idle_rss)),
            mib(idle_rss) < 20.0,
        ),
        verdict(
            "RSS under load (VmHWM)",
            "< 50 MiB",
            format!("{:.1} MiB", mib(router_hwm)),
            mib(router_hwm) < 50.0,
        ),
    ];
    if !starts.is_empty() {
        verdicts.push(verdict(
            "start to first routed request (median)",
            "< 100 ms",
            format!("{start_median:.1} ms"),
            start_median < 100.0,
        ));
    }
    out.push_str(&verdict_table(&verdicts));
    print!("{out}");

    if let Some(path) = &args.json {
        let proxies_json: Vec<serde_json::Value> = proxies
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "rps_median": p.median_of(|r| r.rps),
                    "p50_us_median": p.median_of(|r| r.p50_us),
                    "p99_us_median": p.median_of(|r| r.p99_us),
                    "cpu_us_per_request_median": median(&p.cpu_us_per_request),
                    "proxy_cpu_us_per_request_median": (!p.proxy_cpu_us_per_request.is_empty())
                        .then(|| median(&p.proxy_cpu_us_per_request)),
                    "load_cpu_us_per_request_median": (!p.load_cpu_us_per_request.is_empty())
                        .then(|| median(&p.load_cpu_us_per_request)),
                    "peak_rss_kib": p.peak_rss_kib,
                    "runs": p.runs.iter().map(|r| serde_json::json!({
                        "rps": r.rps, "p50_us": r.p50_us, "p99_us": r.p99_us,
                        "requests": r.requests, "non_2xx": r.non_2xx, "socket_errors": r.socket_errors,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let json = serde_json::json!({
            "duration_secs": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "pinning": pin.note,
            "proxies": proxies_json,
            "router": {
                "idle_rss_kib": idle_rss,
                "vm_hwm_kib": router_hwm,
                "peak_rss_sampled_kib": router_peak_sampled,
                "rss_after_load_kib": router_after,
                "start_to_first_request_ms": starts,
                "start_to_first_request_ms_median": if starts.is_empty() { serde_json::Value::Null } else { start_median.into() },
            },
            "verdicts": verdicts_json(&verdicts),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    // Stop the proxies before the upstream.
    drop(proxies);
    drop(upstream);
    Ok(())
}
