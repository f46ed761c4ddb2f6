//! `endpoints`: each proxy balancing over 10 upstream ports and over
//! `--endpoints` (1,000), under the same `wrk` load; what a request costs
//! with each.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use examples::load::probe::{loopback, parse_status};
use examples::load::report::{fmt_us, median, mib, verdict, verdict_table, verdicts_json};
use examples::load::sys::{Pinning, UsageMeter};
use examples::load::wrk::{WrkLoad, WrkRun, run_wrk};

use super::{Args, FEW_ENDPOINTS, Kind, Running, Setup};

/// The router's cost with many endpoints over its cost with few, at or
/// under which the target counts as met: 1.0 plus the rounds' noise.
const RATIO_TARGET: f64 = 1.05;

/// One `wrk` run and what it cost the proxy.
#[derive(Debug, Clone)]
struct Sample {
    run: WrkRun,
    cpu_us: f64,
    peak_rss_kib: u64,
}

/// One proxy kind with few and with many endpoints.
pub(super) struct Pair {
    kind: Kind,
    /// Few endpoints, then many.
    sets: [Running; 2],
    samples: [Vec<Sample>; 2],
    /// The router's own count of its balancer's endpoints and upstream
    /// connections, per set.
    router_stats: [Option<String>; 2],
}

impl Pair {
    fn median_of(&self, set: usize, f: impl Fn(&Sample) -> f64) -> f64 {
        median(&self.samples[set].iter().map(f).collect::<Vec<_>>())
    }

    /// Many over few, of the medians.
    fn ratio(&self, f: impl Fn(&Sample) -> f64 + Copy) -> f64 {
        self.median_of(1, f) / self.median_of(0, f)
    }

    /// Many over few, round by round.
    fn ratios_by_round(&self, f: impl Fn(&Sample) -> f64) -> String {
        self.samples[1]
            .iter()
            .zip(&self.samples[0])
            .map(|(many, few)| format!("{:.2}", f(many) / f(few)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Starts each proxy twice (few and many endpoints), warms each up, and
/// runs `wrk` against them: round after round, the proxies in rotating
/// order, each proxy's two sets back to back in alternating order.
pub(super) fn run(setup: &Setup<'_>) -> Result<Vec<Pair>> {
    let args = setup.args;
    let sizes = [FEW_ENDPOINTS, args.endpoints as usize];
    let mut pairs = Vec::new();
    for kind in Kind::ALL {
        let start = |n: usize| {
            let name = format!("{}-{n}", kind.name().to_lowercase());
            setup.start(
                kind,
                &name,
                &setup.upstream_ports[..n],
                args.wrk_connections,
            )
        };
        pairs.push(Pair {
            kind,
            sets: [start(sizes[0])?, start(sizes[1])?],
            samples: [Vec::new(), Vec::new()],
            router_stats: [None, None],
        });
    }
    if args.warmup > 0 {
        for pair in &mut pairs {
            for (set, n) in sizes.iter().enumerate() {
                eprintln!(
                    "warm-up: {} over {n} endpoints for {} s",
                    pair.kind.name(),
                    args.warmup
                );
                measure(setup, &mut pair.sets[set], args.warmup)?;
            }
        }
    }
    let n = pairs.len();
    for round in 0..args.rounds as usize {
        for k in 0..n {
            let pair = &mut pairs[(round + k) % n];
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for set in order {
                let sample = measure(setup, &mut pair.sets[set], args.duration)?;
                eprintln!(
                    "endpoints round {}: {:<8} {:>5} endpoints {:>8.0} requests/s  p99 {:>9}  \
                     {:.1} µs CPU/request{}",
                    round + 1,
                    pair.kind.name(),
                    sizes[set],
                    sample.run.rps,
                    fmt_us(sample.run.p99_us),
                    sample.cpu_us,
                    errors_note(&sample.run)
                );
                pair.samples[set].push(sample);
            }
        }
    }
    for pair in &mut pairs {
        for set in 0..2 {
            if let Some(admin) = pair.sets[set].admin {
                pair.router_stats[set] = Some(router_stats(admin));
            }
        }
    }
    Ok(pairs)
}

fn errors_note(run: &WrkRun) -> String {
    if run.non_2xx + run.socket_errors == 0 {
        return String::new();
    }
    format!(
        "  ({} non-2xx, {} socket errors)",
        run.non_2xx, run.socket_errors
    )
}

/// One `wrk -t1` run of `secs` against `proxy`.
fn measure(setup: &Setup<'_>, proxy: &mut Running, secs: u64) -> Result<Sample> {
    let group = proxy.proc.pid();
    let meter = UsageMeter::start(group, &setup.pin);
    let load = WrkLoad {
        url: &format!("http://{}/", proxy.addr),
        connections: setup.args.wrk_connections,
        secs,
        headers: &[],
    };
    let (run, peak_rss_kib) = run_wrk(&setup.work, setup.pin.load, &load, group)?;
    let usage = meter.stop(setup.ticks);
    proxy.proc.check_running()?;
    Ok(Sample {
        cpu_us: usage.group_us_per(run.requests).unwrap_or(f64::NAN),
        run,
        peak_rss_kib,
    })
}

/// The router's balancer size and upstream connections made, from its
/// admin metrics: `loadbalancer/size`, `connects` and `connections` of
/// its one client.
fn router_stats(admin: u16) -> String {
    let answer = match admin_metrics(admin) {
        Ok(answer) => answer,
        Err(e) => return format!("metrics not read: {e}"),
    };
    let Ok(serde_json::Value::Object(metrics)) = serde_json::from_str::<serde_json::Value>(&answer)
    else {
        return "metrics not read: not a JSON object".into();
    };
    ["loadbalancer/size", "connects", "connections"]
        .iter()
        .map(|key| {
            let value = metrics
                .iter()
                .find(|(name, _)| name.contains("/client/") && name.ends_with(&format!("/{key}")))
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| "–".into());
            format!("{key} {value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /admin/metrics.json` on the admin port: the body.
fn admin_metrics(admin: u16) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let addr = loopback(admin);
    let timeout = Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /admin/metrics.json HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(64 << 20).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = parse_status(&answer)?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    if status != 200 {
        return Err(std::io::Error::other(format!("status {status}")));
    }
    Ok(body.to_string())
}

/// The table and the verdict.
pub(super) fn report(args: &Args, pin: &Pinning, pairs: &[Pair]) -> String {
    let (few, many) = (FEW_ENDPOINTS, args.endpoints);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nendpoints: `wrk -t1 -c{} -d{}s` against each proxy balancing over {few} and over \
         {many} upstream ports; {} rounds, medians of the rounds. {}.\n",
        args.wrk_connections, args.duration, args.rounds, pin.note
    );
    let _ = writeln!(
        out,
        "| Proxy | Requests/s, {few} | Requests/s, {many} | CPU µs / request, {few} | CPU µs / \
         request, {many} | CPU ratio {many}/{few} | By round | Requests/s ratio | p99, {few} | \
         p99, {many} | Peak RSS, {many} |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    let cpu = |s: &Sample| s.cpu_us;
    let rps = |s: &Sample| s.run.rps;
    for p in pairs {
        let peak = p.samples[1].iter().map(|s| s.peak_rss_kib).max();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} | {} | {:.2} | {} | {} | {:.1} MiB |",
            p.kind.name(),
            p.median_of(0, rps),
            p.median_of(1, rps),
            p.median_of(0, cpu),
            p.median_of(1, cpu),
            p.ratio(cpu),
            p.ratios_by_round(cpu),
            p.ratio(rps),
            fmt_us(p.median_of(0, |s| s.run.p99_us)),
            fmt_us(p.median_of(1, |s| s.run.p99_us)),
            mib(peak.unwrap_or(0)),
        );
    }
    let errors: u64 = pairs
        .iter()
        .flat_map(|p| p.samples.iter().flatten())
        .map(|s| s.run.non_2xx + s.run.socket_errors)
        .sum();
    let _ = writeln!(
        out,
        "\nNon-2xx answers and socket errors, all runs: {errors}."
    );
    for p in pairs {
        for (set, n) in [few as u32, many].iter().enumerate() {
            if let Some(stats) = &p.router_stats[set] {
                let _ = writeln!(out, "Router over {n} endpoints, after the runs: {stats}.");
            }
        }
    }
    out.push_str(&verdict_table(&verdicts(args, pairs)));
    out
}

fn verdicts(args: &Args, pairs: &[Pair]) -> Vec<examples::load::report::Verdict> {
    pairs
        .iter()
        .filter(|p| p.kind == Kind::Router)
        .map(|p| {
            let ratio = p.ratio(|s| s.cpu_us);
            verdict(
                &format!(
                    "router CPU per request, {} endpoints / {FEW_ENDPOINTS}",
                    args.endpoints
                ),
                &format!("≤ 1.0× within noise (≤ {RATIO_TARGET})"),
                format!("{ratio:.2}× (rounds {})", p.ratios_by_round(|s| s.cpu_us)),
                ratio <= RATIO_TARGET,
            )
        })
        .collect()
}

/// The figures as JSON.
pub(super) fn to_json(args: &Args, pairs: &[Pair]) -> serde_json::Value {
    let sample = |s: &Sample| {
        serde_json::json!({
            "rps": s.run.rps, "p50_us": s.run.p50_us, "p99_us": s.run.p99_us,
            "requests": s.run.requests, "non_2xx": s.run.non_2xx,
            "socket_errors": s.run.socket_errors, "cpu_us_per_request": s.cpu_us,
            "peak_rss_kib": s.peak_rss_kib,
        })
    };
    serde_json::json!({
        "few": FEW_ENDPOINTS,
        "many": args.endpoints,
        "wrk_connections": args.wrk_connections,
        "proxies": pairs.iter().map(|p| serde_json::json!({
            "name": p.kind.name(),
            "cpu_ratio": p.ratio(|s| s.cpu_us),
            "rps_ratio": p.ratio(|s| s.run.rps),
            "few": p.samples[0].iter().map(sample).collect::<Vec<_>>(),
            "many": p.samples[1].iter().map(sample).collect::<Vec<_>>(),
            "router_stats": p.router_stats,
        })).collect::<Vec<_>>(),
        "verdicts": verdicts_json(&verdicts(args, pairs)),
    })
}
