//! What `tls_loadtest` prints: a line per run while it goes, then the
//! tables, the ratios to HAProxy and nginx, and the verdicts; and the
//! same as JSON.

use std::fmt::Write as _;

use examples::load::report::{
    Verdict, fmt_opt_us, fmt_us, mib, verdict, verdict_table, verdicts_json,
};
use examples::load::sys::Pinning;

use super::{Args, Load, Proxy, Sample};

/// A figure of a run that ratios are taken of.
type Metric = fn(&Sample) -> Option<f64>;

/// One line per measured run, as it ends.
pub(super) fn progress_line(name: &str, load: Load, s: &Sample) -> String {
    let mut line = format!(
        "{:<18} {:<8} {:>8.0} {}  p50 {:>9}  p99 {:>9}  CPU {:.0} %",
        load.name(),
        name,
        s.rate,
        load.rate_label().to_lowercase(),
        fmt_us(s.p50_us),
        fmt_us(s.p99_us),
        s.cpu_pct
    );
    if let Some(cpu) = s.cpu_us {
        let _ = write!(line, "  {cpu:.1} µs/{}", load.unit());
    }
    if let (Some(p), Some(l)) = (s.proxy_core_us, s.load_core_us) {
        let _ = write!(line, " (whole CPU: proxy's {p:.1}, load's {l:.1})");
    }
    if let Some(resumed) = s.resumed {
        let _ = write!(line, "  resumed {}/{}", resumed, s.units);
    }
    if s.errors > 0 {
        let _ = write!(
            line,
            "  ({} errors{})",
            s.errors,
            s.first_error
                .as_deref()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        );
    }
    line
}

/// The tables, the ratios and the verdicts.
pub(super) fn report(args: &Args, pin: &Pinning, proxies: &[Proxy]) -> (String, Vec<Verdict>) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} rounds of {} s per load and proxy; medians of the rounds. {}. Certificate: {}, one CA and one leaf, the same files for every proxy; {}.\n",
        args.rounds,
        args.duration,
        pin.note,
        args.key.label(),
        match &args.tls13_suite {
            Some(suite) => format!("every proxy pinned to TLS 1.3 and {suite}"),
            None => "each proxy's default protocols and suites".into(),
        }
    );
    let _ = writeln!(
        out,
        "| Proxy | rustls client negotiates | openssl s_client negotiates | Second connection of one client |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for p in proxies {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            p.name, p.negotiated, p.openssl, p.second_handshake
        );
    }
    if proxies
        .iter()
        .any(|p| p.negotiated != proxies[0].negotiated)
    {
        let _ = writeln!(
            out,
            "\n**The proxies did not all negotiate the same parameters**: compare with care, or pin them with --tls13-suite."
        );
    }

    for (l, &load) in args.loads.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n{}: {}.\n",
            capitalised(load.name()),
            describe_load(load, args)
        );
        let _ = writeln!(
            out,
            "| Proxy | {} | p50 | p99 | CPU µs / {unit} | Proxy's CPU, µs / {unit} | Load's CPU, µs / {unit} | Proxy's CPU use | Resumed | Peak RSS | {} by round |",
            load.rate_label(),
            load.rate_label(),
            unit = load.unit()
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        for p in proxies {
            let samples = &p.samples[l];
            let rounds: Vec<String> = samples.iter().map(|s| format!("{:.0}", s.rate)).collect();
            let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_us).collect();
            let proxy_core: Vec<f64> = samples.iter().filter_map(|s| s.proxy_core_us).collect();
            let load_core: Vec<f64> = samples.iter().filter_map(|s| s.load_core_us).collect();
            let resumed = match (
                samples.iter().map(|s| s.resumed).sum::<Option<u64>>(),
                samples.iter().map(|s| s.units).sum::<u64>(),
            ) {
                (Some(r), total) if total > 0 => {
                    format!("{:.1} %", 100.0 * r as f64 / total as f64)
                }
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {:.0} % | {} | {:.1} MiB | {} |",
                p.name,
                p.median_of(l, |s| s.rate),
                fmt_us(p.median_of(l, |s| s.p50_us)),
                fmt_us(p.median_of(l, |s| s.p99_us)),
                fmt_opt_us(&cpu),
                fmt_opt_us(&proxy_core),
                fmt_opt_us(&load_core),
                p.median_of(l, |s| s.cpu_pct),
                resumed,
                mib(samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0)),
                rounds.join(", ")
            );
        }
    }

    let router = &proxies[0];
    let rate: Metric = |s| Some(s.rate);
    let cpu: Metric = |s| s.cpu_us;
    let p99: Metric = |s| Some(s.p99_us);
    let fmt = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}"));
    let _ = writeln!(out, "\n| Ratio | Of the medians | By round |");
    let _ = writeln!(out, "|---|---|---|");
    let mut verdicts = Vec::new();
    for other in &proxies[1..] {
        for (l, &load) in args.loads.iter().enumerate() {
            let ratio = |f: Metric| Some(router.median_opt(l, f)? / other.median_opt(l, f)?);
            let rows = [
                (load.rate_label().to_lowercase(), rate),
                (format!("CPU per {}", load.unit()), cpu),
                ("p99".to_string(), p99),
            ];
            for (what, f) in rows {
                let _ = writeln!(
                    out,
                    "| router / {}, {}, {what} | {} | {} |",
                    other.name,
                    load.name(),
                    fmt(ratio(f)),
                    by_round(router, other, l, f)
                );
            }
            if other.name == "HAProxy" {
                let r = ratio(rate);
                verdicts.push(verdict(
                    &format!(
                        "{}, {} vs HAProxy",
                        load.name(),
                        load.rate_label().to_lowercase()
                    ),
                    "≥ 1.0×",
                    fmt(r),
                    r.is_some_and(|r| r >= 1.0),
                ));
                let c = ratio(cpu);
                verdicts.push(verdict(
                    &format!("{}, CPU per {} vs HAProxy", load.name(), load.unit()),
                    "≤ 1.0×",
                    fmt(c),
                    c.is_some_and(|c| c <= 1.0),
                ));
            }
        }
    }
    let errors: u64 = proxies
        .iter()
        .flat_map(|p| p.samples.iter().flatten())
        .map(|s| s.errors)
        .sum();
    let _ = writeln!(
        out,
        "\nErrors (failed connections, non-2xx answers, socket errors), all runs: {errors}."
    );
    out.push_str(&verdict_table(&verdicts));
    (out, verdicts)
}

/// `a / b` of `f`, round by round.
fn by_round(a: &Proxy, b: &Proxy, load: usize, f: Metric) -> String {
    a.samples[load]
        .iter()
        .zip(&b.samples[load])
        .map(|(x, y)| match (f(x), f(y)) {
            (Some(x), Some(y)) => format!("{:.2}", x / y),
            _ => "–".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a load does, for the heading of its table.
fn describe_load(load: Load, args: &Args) -> String {
    match load {
        Load::Keepalive => format!(
            "`wrk -t1 -c{} --latency https://…/`, requests over open TLS connections",
            args.connections
        ),
        Load::Full => format!(
            "{} connections at a time, each a full TLS handshake (no session offered), one `GET` with `Connection: close`, the answer, close",
            args.handshake_connections
        ),
        Load::Resumed => format!(
            "as the full handshakes, {} at a time, each connection offering the newest session ticket the client holds",
            args.handshake_connections
        ),
        Load::WrkClose => format!(
            "`wrk -t1 -c{} --latency -H 'Connection: close' https://…/` (OpenSSL resumes its sessions)",
            args.connections
        ),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Everything measured, as JSON.
pub(super) fn to_json(
    args: &Args,
    pin: &Pinning,
    proxies: &[Proxy],
    verdicts: &[Verdict],
) -> serde_json::Value {
    let proxies_json: Vec<serde_json::Value> = proxies
        .iter()
        .map(|p| {
            let loads: serde_json::Map<String, serde_json::Value> = args
                .loads
                .iter()
                .enumerate()
                .map(|(l, load)| {
                    let value = serde_json::json!({
                        "rate_median": p.median_of(l, |s| s.rate),
                        "p50_us_median": p.median_of(l, |s| s.p50_us),
                        "p99_us_median": p.median_of(l, |s| s.p99_us),
                        "cpu_us_per_unit_median": p.median_opt(l, |s| s.cpu_us),
                        "proxy_cpu_us_per_unit_median": p.median_opt(l, |s| s.proxy_core_us),
                        "load_cpu_us_per_unit_median": p.median_opt(l, |s| s.load_core_us),
                        "runs": p.samples[l].iter().map(|s| serde_json::json!({
                            "rate": s.rate, "p50_us": s.p50_us, "p99_us": s.p99_us,
                            "units": s.units, "errors": s.errors, "resumed": s.resumed, "offered": s.offered,
                            "cpu_us_per_unit": s.cpu_us, "proxy_cpu_us_per_unit": s.proxy_core_us,
                            "load_cpu_us_per_unit": s.load_core_us, "cpu_pct": s.cpu_pct,
                            "peak_rss_kib": s.peak_rss_kib,
                        })).collect::<Vec<_>>(),
                    });
                    (load.name().to_string(), value)
                })
                .collect();
            serde_json::json!({
                "name": p.name,
                "negotiated_rustls": p.negotiated,
                "negotiated_openssl": p.openssl,
                "second_handshake": p.second_handshake,
                "loads": loads,
            })
        })
        .collect();
    serde_json::json!({
        "duration_secs": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "handshake_connections": args.handshake_connections,
        "key": args.key.label(),
        "tls13_suite": args.tls13_suite,
        "pinning": pin.note,
        "proxies": proxies_json,
        "verdicts": verdicts_json(verdicts),
    })
}
