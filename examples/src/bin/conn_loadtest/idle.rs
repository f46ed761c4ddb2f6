//! `idle10k`: each proxy holds `--connections` keep-alive connections,
//! `--active` of them busy; what that costs in memory, and what the busy
//! ones get.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use examples::load::conns::established_on_port;
use examples::load::procs::run_json_client;
use examples::load::report::{fmt_us, median, mib, verdict, verdict_table, verdicts_json};
use examples::load::sys::{Pinning, group_rss_kib, group_status_kib};

use super::client::IdleRun;
use super::{Args, Kind, Running, Setup};

/// Connections opened at once by the client.
const PARALLEL_OPENS: u32 = 200;
/// The target for the router's memory with all connections open, MiB.
const RSS_TARGET_MIB: f64 = 64.0;

/// One proxy's figures.
pub(super) struct IdleResult {
    kind: Kind,
    /// VmRSS after start and one request, before any load, KiB.
    idle_rss_kib: u64,
    runs: Vec<IdleRun>,
    /// The highest VmRSS sampled every 100 ms while the client ran.
    peak_sampled_kib: u64,
    /// VmHWM at the end (summed over nginx's processes).
    hwm_kib: u64,
    /// VmRSS once the last round's connections had closed.
    after_kib: u64,
}

impl IdleResult {
    fn median_of(&self, f: impl Fn(&IdleRun) -> f64) -> f64 {
        median(&self.runs.iter().map(f).collect::<Vec<_>>())
    }

    /// Memory per held connection, KiB: what all of them open and idle
    /// added to the proxy's idle RSS.
    fn kib_per_connection(&self, connections: u32) -> f64 {
        let open = self.median_of(|r| r.rss_open_kib as f64);
        (open - self.idle_rss_kib as f64) / f64::from(connections.max(1))
    }
}

/// Starts the three proxies in front of the upstream's first port and
/// runs the client against each in turn, round after round.
pub(super) fn run(setup: &Setup<'_>) -> Result<Vec<IdleResult>> {
    let args = setup.args;
    let upstream = &setup.upstream_ports[..1];
    let mut proxies = Vec::new();
    for kind in Kind::ALL {
        let name = format!("{}-idle", kind.name().to_lowercase());
        proxies.push(setup.start(kind, &name, upstream, args.connections)?);
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut results: Vec<IdleResult> = proxies
        .iter()
        .map(|p| IdleResult {
            kind: p.kind,
            idle_rss_kib: group_rss_kib(p.proc.pid()),
            runs: Vec::new(),
            peak_sampled_kib: 0,
            hwm_kib: 0,
            after_kib: 0,
        })
        .collect();

    let n = proxies.len();
    for round in 0..args.rounds as usize {
        for k in 0..n {
            let i = (round + k) % n;
            let (run, peak) = measure(setup, &mut proxies[i])?;
            eprintln!(
                "idle10k round {}: {}",
                round + 1,
                progress(&results[i], &run)
            );
            let result = &mut results[i];
            result.peak_sampled_kib = result.peak_sampled_kib.max(peak);
            result.runs.push(run);
            wait_closed(&proxies[i])?;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    for (proxy, result) in proxies.iter().zip(&mut results) {
        let group = proxy.proc.pid();
        result.hwm_kib = group_status_kib(group, "VmHWM");
        result.after_kib = group_rss_kib(group);
    }
    Ok(results)
}

/// One client run against `proxy`: the run and the highest RSS sampled.
fn measure(setup: &Setup<'_>, proxy: &mut Running) -> Result<(IdleRun, u64)> {
    let args = setup.args;
    let group = proxy.proc.pid();
    let mut command = Pinning::command(setup.pin.load, &setup.client_bin);
    command
        .arg("client")
        .args(["--addr", &proxy.addr.to_string()])
        .args(["--connections", &args.connections.to_string()])
        .args(["--active", &args.active.to_string()])
        .args(["--parallel", &PARALLEL_OPENS.to_string()])
        .args(["--settle", &args.settle.to_string()])
        .args(["--secs", &args.duration.to_string()])
        .args(["--proxy-group", &group.to_string()]);
    let log = setup.work.file("idle-client.out");
    // Opening and the second requests may take up to two minutes each.
    let secs = args.settle + args.duration + 240;
    let (value, peak) = run_json_client("idle10k client", command, &log, secs, group)?;
    proxy.proc.check_running()?;
    Ok((IdleRun::from_json(&value)?, peak))
}

/// Waits up to 20 s for the proxy to close its side of the client's
/// connections, so that the next proxy starts from a quiet machine.
fn wait_closed(proxy: &Running) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while established_on_port(proxy.addr.port())? > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn progress(result: &IdleResult, run: &IdleRun) -> String {
    format!(
        "{:<8} opened {} ({} failed) in {:.1} s, {} established; RSS {:.1} MiB open, {:.1} MiB \
         active; {:.0} requests/s, p50 {}, p99 {}, {:.1} µs CPU/request; {} idle closed early, \
         {} answered again{}",
        result.kind.name(),
        run.opened,
        run.open_errors,
        run.open_secs,
        run.established_open,
        mib(run.rss_open_kib),
        mib(run.rss_active_kib),
        run.requests as f64 / run.secs,
        fmt_us(run.p50_us),
        fmt_us(run.p99_us),
        run.cpu_us_per_request,
        run.idle_closed,
        run.idle_second_ok,
        run.first_error
            .as_deref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    )
}

/// The table and the verdict.
pub(super) fn report(args: &Args, pin: &Pinning, results: &[IdleResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nidle10k: {} keep-alive connections per proxy, each made one GET; {} of them then \
         send GETs back to back for {} s while the rest stay idle. {} rounds, medians of the \
         rounds. {}.\n",
        args.connections, args.active, args.duration, args.rounds, pin.note
    );
    let _ = writeln!(
        out,
        "| Proxy | RSS idle | RSS, all open and idle | RSS, active phase | Peak (VmHWM) | \
         After close | Per connection | Established (open / after active) | Requests/s | p50 | \
         p99 | CPU µs / request | CPU while idle | Closed early / failed | Answered again |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in results {
        let established = |f: fn(&IdleRun) -> u64| {
            r.runs
                .iter()
                .map(|run| f(run).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let failed: u64 = r.runs.iter().map(|x| x.open_errors + x.active_errors).sum();
        let closed: u64 = r.runs.iter().map(|x| x.idle_closed).sum();
        let again: u64 = r.runs.iter().map(|x| x.idle_second_ok).sum();
        let idle_total = u64::from(args.connections - args.active) * r.runs.len() as u64;
        let _ = writeln!(
            out,
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} KiB | {} / {} | \
             {:.0} | {} | {} | {:.1} | {:.1} % | {closed} / {failed} | {again} of {idle_total} |",
            r.kind.name(),
            mib(r.idle_rss_kib),
            mib(r.median_of(|x| x.rss_open_kib as f64) as u64),
            mib(r.median_of(|x| x.rss_active_kib as f64) as u64),
            mib(r.hwm_kib),
            mib(r.after_kib),
            r.kib_per_connection(args.connections),
            established(|x| x.established_open),
            established(|x| x.established_end),
            r.median_of(|x| x.requests as f64 / x.secs),
            fmt_us(r.median_of(|x| x.p50_us)),
            fmt_us(r.median_of(|x| x.p99_us)),
            r.median_of(|x| x.cpu_us_per_request),
            r.median_of(|x| x.idle_cpu_pct),
        );
    }
    let _ = writeln!(
        out,
        "\nRSS is VmRSS of the proxy's process group (nginx: master and worker); \"Peak\" is \
         VmHWM at the end, summed over the group. \"Per connection\" is (RSS all open − RSS \
         idle) / {}. \"Closed early\": idle connections the proxy closed before the end; \
         \"failed\": connections not opened and failed active requests; \"answered again\": \
         idle connections that answered a second GET at the end.",
        args.connections
    );
    for r in results {
        if let Some(e) = r.runs.iter().find_map(|x| x.first_error.as_deref()) {
            let _ = writeln!(out, "First error, {}: {e}", r.kind.name());
        }
    }
    out.push_str(&verdict_table(&verdicts(args, results)));
    out
}

fn verdicts(args: &Args, results: &[IdleResult]) -> Vec<examples::load::report::Verdict> {
    results
        .iter()
        .filter(|r| r.kind == Kind::Router)
        .map(|r| {
            let peak = mib(r.hwm_kib);
            let kept = r
                .runs
                .iter()
                .all(|x| x.opened == u64::from(args.connections) && x.idle_closed == 0);
            verdict(
                &format!("router RSS with {} connections (VmHWM)", args.connections),
                &format!("≤ {RSS_TARGET_MIB} MiB"),
                format!(
                    "{peak:.1} MiB{}",
                    if kept {
                        ""
                    } else {
                        " (not every connection was held)"
                    }
                ),
                peak <= RSS_TARGET_MIB && kept,
            )
        })
        .collect()
}

/// The figures as JSON.
pub(super) fn to_json(args: &Args, results: &[IdleResult]) -> serde_json::Value {
    serde_json::json!({
        "connections": args.connections,
        "active": args.active,
        "settle_secs": args.settle,
        "proxies": results.iter().map(|r| serde_json::json!({
            "name": r.kind.name(),
            "idle_rss_kib": r.idle_rss_kib,
            "peak_sampled_kib": r.peak_sampled_kib,
            "vm_hwm_kib": r.hwm_kib,
            "after_close_kib": r.after_kib,
            "kib_per_connection": r.kib_per_connection(args.connections),
            "runs": r.runs.iter().map(IdleRun::to_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "verdicts": verdicts_json(&verdicts(args, results)),
    })
}
