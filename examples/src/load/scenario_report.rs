//! The Markdown tables, verdicts and JSON of `loadtest`'s scenarios.

use std::fmt::Write as _;

use super::report::{Verdict, fmt_opt_us, fmt_us, verdict};
use super::rounds::{Outcome, Role, Row, Sample};
use super::scenario::Scenario;

/// The goal for the router's CPU per request against the better peer's.
pub const CPU_VS_PEER_GOAL: f64 = 0.8;
/// The goal for the features' cost: CPU per request, on over plain.
pub const FEATURES_GOAL: f64 = 1.05;
/// The name of the router with features in the reports.
pub const FEATURES_NAME: &str = "router+features";

/// How the runs were made, for the report's header line.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo<'a> {
    /// Measured rounds.
    pub rounds: u32,
    /// `wrk` connections.
    pub connections: u32,
    /// Seconds of each measured run.
    pub duration: u64,
    /// Where everything ran.
    pub pinning: &'a str,
}

fn rate(s: &Sample) -> f64 {
    s.wrk.rps
}

fn p99(s: &Sample) -> f64 {
    s.wrk.p99_us
}

fn cpu(s: &Sample) -> f64 {
    s.cpu_us.unwrap_or(f64::NAN)
}

/// `a / b` of `f` round by round, as `0.97, 1.02, …`.
fn by_round(a: &Row, b: &Row, f: fn(&Sample) -> f64) -> String {
    a.samples
        .iter()
        .zip(&b.samples)
        .map(|(x, y)| format!("{:.2}", f(x) / f(y)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a / b` of the medians of `f`.
fn ratio(a: &Row, b: &Row, f: fn(&Sample) -> f64) -> f64 {
    a.median_of(f) / b.median_of(f)
}

/// The `wrk` command line of a scenario, for the header.
fn wrk_line(scenario: Scenario, info: &RunInfo<'_>) -> String {
    let mut line = format!(
        "wrk -t1 -c{} -d{}s --latency",
        info.connections, info.duration
    );
    for header in scenario.headers() {
        let _ = write!(line, " -H '{header}'");
    }
    if scenario == Scenario::Post16k {
        line.push_str(" -s post16k.lua");
    }
    let _ = write!(line, " http://<proxy>{}", scenario.path());
    line
}

/// The tables of one scenario: every contender's medians, then the
/// router's ratios to each peer round by round.
pub fn scenario_tables(outcome: &Outcome, info: &RunInfo<'_>) -> String {
    let scenario = outcome.scenario;
    let rate_label = scenario.rate_label();
    let mut out = String::new();
    let _ = writeln!(out, "\n## {scenario}: {}\n", scenario.describe());
    let _ = writeln!(
        out,
        "{} rounds of `{}` per proxy; medians of the rounds. {}.\n",
        info.rounds,
        wrk_line(scenario, info),
        info.pinning
    );
    let _ = writeln!(
        out,
        "| Proxy | {rate_label} | p50 | p99 | CPU µs / request | CPU / better peer's | Proxy's CPU, µs / request | Load's CPU, µs / request | New connections / request, client; upstream | {rate_label} by round |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let better = outcome.better_peer();
    for row in &outcome.rows {
        let rounds: Vec<String> = row
            .samples
            .iter()
            .map(|s| format!("{:.0}", s.wrk.rps))
            .collect();
        let vs_peer = match better {
            Some(peer) => format!("{:.2}", row.cpu_us() / peer.cpu_us()),
            None => "–".into(),
        };
        let conns = match (
            row.median_opt(|s| s.client_conns),
            row.median_opt(|s| s.upstream_conns),
        ) {
            (Some(c), Some(u)) => format!("{c:.2}; {u:.3}"),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.1} | {vs_peer} | {} | {} | {conns} | {} |",
            row.name,
            row.median_of(rate),
            fmt_us(row.median_of(|s| s.wrk.p50_us)),
            fmt_us(row.median_of(p99)),
            row.cpu_us(),
            fmt_opt_us(
                &row.samples
                    .iter()
                    .filter_map(|s| s.proxy_core_us)
                    .collect::<Vec<_>>()
            ),
            fmt_opt_us(
                &row.samples
                    .iter()
                    .filter_map(|s| s.load_core_us)
                    .collect::<Vec<_>>()
            ),
            rounds.join(", ")
        );
    }

    let _ = writeln!(out, "\n| Ratio | Of the medians | By round |");
    let _ = writeln!(out, "|---|---|---|");
    let routers = outcome.rows.iter().filter(|r| r.role == Role::Router);
    let peers: Vec<&Row> = outcome
        .rows
        .iter()
        .filter(|r| r.role == Role::Peer)
        .collect();
    for router in routers {
        for peer in &peers {
            for (what, f) in [
                (rate_label.to_lowercase(), rate as fn(&Sample) -> f64),
                ("p99".to_string(), p99),
                ("CPU µs / request".to_string(), cpu),
            ] {
                let _ = writeln!(
                    out,
                    "| {} / {}, {what} | {:.2} | {} |",
                    router.name,
                    peer.name,
                    ratio(router, peer, f),
                    by_round(router, peer, f)
                );
            }
        }
    }
    if let (Some(on), Some(plain)) = (outcome.row(FEATURES_NAME), outcome.row("router")) {
        let _ = writeln!(
            out,
            "| {FEATURES_NAME} / router, CPU µs / request | {:.3} | {} |",
            ratio(on, plain, cpu),
            by_round(on, plain, cpu)
        );
        let scrapes: u64 = on.samples.iter().map(|s| s.scrapes).sum();
        let failed: u64 = on.samples.iter().map(|s| s.scrape_failures).sum();
        let _ = writeln!(
            out,
            "\n{FEATURES_NAME}: {scrapes} Prometheus scrapes during the measured runs, {failed} failed."
        );
    }
    let errors: u64 = outcome.rows.iter().map(Row::errors).sum();
    let _ = writeln!(
        out,
        "\nNon-2xx answers and socket errors, all runs: {errors}."
    );
    out
}

/// One line per scenario: rate, p99 and CPU per request of each
/// contender, and the router's CPU against the better peer's.
pub fn summary_table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Summary\n\n| Scenario | Proxy | Rate (requests or connections / s) | p99 | CPU µs / request | Router / better peer, CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for outcome in outcomes {
        let better = outcome.better_peer();
        for row in &outcome.rows {
            let vs_peer = match (row.role, better) {
                (Role::Router, Some(peer)) => format!("{:.2}", row.cpu_us() / peer.cpu_us()),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {:.1} | {vs_peer} |",
                outcome.scenario,
                row.name,
                row.median_of(rate),
                fmt_us(row.median_of(p99)),
                row.cpu_us(),
            );
        }
    }
    out
}

/// The targets a scenario is held to.
pub fn scenario_verdicts(outcome: &Outcome) -> Vec<Verdict> {
    let scenario = outcome.scenario;
    let mut verdicts = Vec::new();
    if let Some(peer) = outcome.better_peer() {
        for router in outcome.rows.iter().filter(|r| r.role == Role::Router) {
            let r = router.cpu_us() / peer.cpu_us();
            verdicts.push(verdict(
                &format!(
                    "{scenario}: {} CPU per request vs the better peer ({})",
                    router.name, peer.name
                ),
                &format!("≤ {CPU_VS_PEER_GOAL}×"),
                format!("{r:.2}×"),
                r <= CPU_VS_PEER_GOAL,
            ));
        }
    }
    if let (Some(on), Some(plain)) = (outcome.row(FEATURES_NAME), outcome.row("router")) {
        let r = ratio(on, plain, cpu);
        verdicts.push(verdict(
            &format!("{scenario}: CPU per request, features on / plain"),
            &format!("≤ {FEATURES_GOAL}×"),
            format!("{r:.3}×"),
            r <= FEATURES_GOAL,
        ));
    }
    if scenario == Scenario::Get
        && let (Some(router), Some(haproxy), Some(nginx)) = (
            outcome.row("router"),
            outcome.row("HAProxy"),
            outcome.row("nginx"),
        )
    {
        let rps_n = ratio(router, nginx, rate);
        let rps_h = ratio(router, haproxy, rate);
        let p99_h = ratio(router, haproxy, p99);
        verdicts.push(verdict(
            "requests/s vs nginx",
            "≥ 1.0×",
            format!("{rps_n:.2}×"),
            rps_n >= 1.0,
        ));
        verdicts.push(verdict(
            "requests/s vs HAProxy",
            "≥ 0.8×",
            format!("{rps_h:.2}×"),
            rps_h >= 0.8,
        ));
        verdicts.push(verdict(
            "p99 vs HAProxy",
            "≤ 1.5×",
            format!("{p99_h:.2}×"),
            p99_h <= 1.5,
        ));
    }
    verdicts
}

/// A scenario's figures as JSON.
pub fn scenario_json(outcome: &Outcome) -> serde_json::Value {
    let proxies: Vec<serde_json::Value> = outcome
        .rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "name": row.name,
                "role": match row.role { Role::Router => "router", Role::Peer => "peer" },
                "rps_median": row.median_of(rate),
                "p50_us_median": row.median_of(|s| s.wrk.p50_us),
                "p99_us_median": row.median_of(p99),
                "cpu_us_per_request_median": row.median_opt(|s| s.cpu_us),
                "proxy_cpu_us_per_request_median": row.median_opt(|s| s.proxy_core_us),
                "load_cpu_us_per_request_median": row.median_opt(|s| s.load_core_us),
                "client_connections_per_request_median": row.median_opt(|s| s.client_conns),
                "upstream_connections_per_request_median": row.median_opt(|s| s.upstream_conns),
                "peak_rss_kib": row.samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0),
                "runs": row.samples.iter().map(|s| serde_json::json!({
                    "rps": s.wrk.rps, "p50_us": s.wrk.p50_us, "p99_us": s.wrk.p99_us,
                    "requests": s.wrk.requests, "non_2xx": s.wrk.non_2xx,
                    "socket_errors": s.wrk.socket_errors,
                    "cpu_us_per_request": s.cpu_us,
                    "client_connections_per_request": s.client_conns,
                    "upstream_connections_per_request": s.upstream_conns,
                    "scrapes": s.scrapes, "scrape_failures": s.scrape_failures,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let better = outcome.better_peer();
    serde_json::json!({
        "scenario": outcome.scenario.name(),
        "description": outcome.scenario.describe(),
        "proxies": proxies,
        "better_peer": better.map(|p| p.name),
        "router_cpu_vs_better_peer": better.and_then(|p| {
            Some(outcome.row("router")?.cpu_us() / p.cpu_us())
        }),
        "features_cpu_on_over_plain": outcome.row(FEATURES_NAME).zip(outcome.row("router"))
            .map(|(on, plain)| ratio(on, plain, cpu)),
    })
}
