//! What `h2_loadtest` prints: a line per run while it goes, then per
//! scenario a table of the proxies, the router's ratios to the better
//! peer, and the targets.

use std::fmt::Write as _;

use examples::load::report::{Verdict, fmt_opt_us, fmt_us, mib, verdict, verdict_table};
use examples::load::sys::Pinning;

use super::{Args, Entry, Outcome, Sample, Scenario};

/// A figure of a run that ratios are taken of.
type Metric = fn(&Sample) -> Option<f64>;

/// The router's CPU per unit should be at most this share of the better
/// peer's.
const CPU_TARGET: f64 = 0.8;

/// The scenario's name in reports.
pub(crate) fn scenario_name(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::H2 => "h2",
        Scenario::GrpcUnary => "grpc-unary",
        Scenario::GrpcStream => "grpc-stream",
    }
}

fn unit(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::H2 => "request",
        Scenario::GrpcUnary => "call",
        Scenario::GrpcStream => "message",
    }
}

fn rate_label(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::H2 => "Requests/s",
        Scenario::GrpcUnary => "Calls/s",
        Scenario::GrpcStream => "Messages/s",
    }
}

/// One line per measured run, as it ends.
pub(crate) fn progress_line(name: &str, scenario: Scenario, s: &Sample) -> String {
    let mut line = format!(
        "{:<11} {:<8} {:>9.0} {}  CPU {:.0} %  p50 {}  p99 {}",
        scenario_name(scenario),
        name,
        s.rate,
        rate_label(scenario).to_lowercase(),
        s.cpu_pct,
        fmt_us(s.p50_us),
        fmt_us(s.p99_us)
    );
    if let Some(cpu) = s.cpu_us {
        let _ = write!(line, "  {cpu:.2} µs/{}", unit(scenario));
    }
    if let (Some(p), Some(l)) = (s.proxy_core_us, s.load_core_us) {
        let _ = write!(line, " (whole CPU: proxy's {p:.2}, load's {l:.2})");
    }
    if s.failed > 0 {
        let _ = write!(
            line,
            "  ({} failed{})",
            s.failed,
            s.first_failure
                .as_deref()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        );
    }
    line
}

/// The tables, ratios and targets of every scenario.
pub(crate) fn report(args: &Args, pin: &Pinning, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} rounds of {} s per scenario and proxy, after {} s of warm-up each; medians of the rounds. {}. \
         Load: {} connections, {} requests in flight on each.",
        args.rounds, args.duration, args.warmup, pin.note, args.connections, args.streams
    );
    let mut verdicts = Vec::new();
    for outcome in outcomes {
        scenario_table(&mut out, args, outcome);
        if let Some(v) = ratios(&mut out, outcome) {
            verdicts.push(v);
        }
    }
    if !verdicts.is_empty() {
        out.push_str(&verdict_table(&verdicts));
    }
    let failed: u64 = outcomes
        .iter()
        .flat_map(|o| &o.entries)
        .flat_map(|e| &e.samples)
        .map(|s| s.failed)
        .sum();
    let _ = writeln!(
        out,
        "\nFailed requests or calls, all measured runs: {failed}."
    );
    for o in outcomes {
        for e in &o.entries {
            if let Some(s) = e.samples.iter().find(|s| s.failed > 0) {
                let _ = writeln!(
                    out,
                    "- {}, {}: first failure: {}",
                    scenario_name(o.scenario),
                    e.kind.name(),
                    s.first_failure.as_deref().unwrap_or("?")
                );
            }
        }
    }
    out
}

fn scenario_table(out: &mut String, args: &Args, outcome: &Outcome) {
    let scenario = outcome.scenario;
    let _ = writeln!(
        out,
        "\n{}: {}.\n",
        scenario_name(scenario),
        describe(scenario, args)
    );
    let stream = scenario == Scenario::GrpcStream;
    let _ = writeln!(
        out,
        "| Proxy | {rate} |{calls} p50 | p99 | CPU µs / {unit} | Proxy's CPU, µs / {unit} | Load's CPU, µs / {unit} | Proxy's CPU use | Peak RSS | Failed | {rate} by round |",
        rate = rate_label(scenario),
        calls = if stream { " Calls/s |" } else { "" },
        unit = unit(scenario)
    );
    let _ = writeln!(
        out,
        "|---|---|{}---|---|---|---|---|---|---|---|---|",
        if stream { "---|" } else { "" }
    );
    for e in &outcome.entries {
        if e.samples.is_empty() {
            let why = e.unavailable.as_deref().unwrap_or("no run");
            let _ = writeln!(out, "| {} | n/a: {} |", e.kind.name(), one_line(why));
            continue;
        }
        let col = |f: Metric| -> Vec<f64> { e.samples.iter().filter_map(f).collect() };
        let latency = |f: Metric| match e.median_opt(f) {
            Some(us) if us.is_finite() => fmt_us(us),
            _ => "–".into(),
        };
        let rounds: Vec<String> = e.samples.iter().map(|s| format!("{:.0}", s.rate)).collect();
        let calls = if stream {
            format!(
                " {:.0} |",
                e.median_opt(|s| Some(s.calls_rate)).unwrap_or(f64::NAN)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} |{calls} {} | {} | {} | {} | {} | {:.0} % | {:.1} MiB | {} | {} |",
            e.kind.name(),
            e.median_opt(|s| Some(s.rate)).unwrap_or(f64::NAN),
            latency(|s| Some(s.p50_us)),
            latency(|s| Some(s.p99_us)),
            fmt_cpu(&col(|s| s.cpu_us)),
            fmt_cpu(&col(|s| s.proxy_core_us)),
            fmt_cpu(&col(|s| s.load_core_us)),
            e.median_opt(|s| Some(s.cpu_pct)).unwrap_or(f64::NAN),
            mib(e.samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0)),
            e.samples.iter().map(|s| s.failed).sum::<u64>(),
            rounds.join(", ")
        );
        if let Some(why) = &e.unavailable {
            let _ = writeln!(
                out,
                "| | (stopped after {} rounds: {}) |",
                e.samples.len(),
                one_line(why)
            );
        }
    }
}

/// Per-message CPU of a stream is a fraction of a µs: two decimals there.
fn fmt_cpu(values: &[f64]) -> String {
    match values {
        [] => fmt_opt_us(values),
        _ if examples::load::report::median(values) < 10.0 => {
            format!("{:.2}", examples::load::report::median(values))
        }
        _ => fmt_opt_us(values),
    }
}

/// The router's ratios to the peer that spent the least CPU per unit;
/// the verdict on the CPU target.
fn ratios(out: &mut String, outcome: &Outcome) -> Option<Verdict> {
    let scenario = outcome.scenario;
    let router = outcome.entries.first().filter(|e| !e.samples.is_empty())?;
    let better = outcome.entries[1..]
        .iter()
        .filter(|e| e.median_opt(|s| s.cpu_us).is_some())
        .min_by(|a, b| {
            let cpu = |e: &Entry| e.median_opt(|s| s.cpu_us).unwrap_or(f64::INFINITY);
            cpu(a).total_cmp(&cpu(b))
        })?;
    let fmt = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}"));
    let _ = writeln!(
        out,
        "\n| {}: router / {} (the peer with less CPU per {}) | Of the medians | By round |",
        scenario_name(scenario),
        better.kind.name(),
        unit(scenario)
    );
    let _ = writeln!(out, "|---|---|---|");
    let rows: [(String, Metric); 4] = [
        (rate_label(scenario).to_string(), |s| Some(s.rate)),
        (format!("CPU per {}", unit(scenario)), |s| s.cpu_us),
        (format!("proxy's whole CPU per {}", unit(scenario)), |s| {
            s.proxy_core_us
        }),
        ("p99".to_string(), |s| Some(s.p99_us)),
    ];
    for (what, f) in rows {
        let ratio = router
            .median_opt(f)
            .zip(better.median_opt(f))
            .map(|(a, b)| a / b);
        let _ = writeln!(
            out,
            "| {what} | {} | {} |",
            fmt(ratio),
            by_round(router, better, f)
        );
    }
    let cpu = router.median_opt(|s| s.cpu_us)? / better.median_opt(|s| s.cpu_us)?;
    Some(verdict(
        &format!(
            "{}: router's CPU per {}",
            scenario_name(scenario),
            unit(scenario)
        ),
        &format!("≤ {CPU_TARGET}× the better peer's"),
        format!("{cpu:.2}× {}'s", better.kind.name()),
        cpu <= CPU_TARGET,
    ))
}

/// `a / b` of `f`, round by round.
fn by_round(a: &Entry, b: &Entry, f: Metric) -> String {
    a.samples
        .iter()
        .zip(&b.samples)
        .map(|(x, y)| match (f(x), f(y)) {
            (Some(x), Some(y)) => format!("{:.2}", x / y),
            _ => "–".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    first.replace('|', "/")
}

fn describe(scenario: Scenario, args: &Args) -> String {
    match scenario {
        Scenario::H2 => format!(
            "`h2load -c {} -m {} -H ':authority: web'`, `GET /` answered `200 ok` by nginx over h2c \
             (nginx the proxy: HTTP/1.1 to the upstream)",
            args.connections, args.streams
        ),
        Scenario::GrpcUnary => format!(
            "gRPC unary calls, {} connections × {} calls in flight, a 7-byte request message and a 4-byte answer",
            args.connections, args.streams
        ),
        Scenario::GrpcStream => format!(
            "gRPC server-streaming calls, {} connections × {} calls in flight, each answered with {} messages of {} bytes; \
             CPU and rate per message, latency per call",
            args.connections, args.streams, args.stream_messages, args.message_size
        ),
    }
}
