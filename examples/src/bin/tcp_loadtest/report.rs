//! What `tcp_loadtest` prints: a line per run while it goes, then a table
//! per load and the router's ratios to HAProxy.

use std::fmt::Write as _;

use examples::load::report::{fmt_opt_us, fmt_us, mib};
use examples::load::sys::Pinning;

use super::load::Mode;
use super::{Args, Proxy, Sample};

/// A figure of a run that ratios are taken of.
type Metric = fn(&Sample) -> Option<f64>;

/// The load's name in reports.
pub(super) fn load_name(mode: Mode) -> &'static str {
    match mode {
        Mode::PerConnection => "connection per request",
        Mode::Bulk => "bulk, long connections",
    }
}

fn unit(mode: Mode) -> &'static str {
    match mode {
        Mode::PerConnection => "connection",
        Mode::Bulk => "MB",
    }
}

fn rate_label(mode: Mode) -> &'static str {
    match mode {
        Mode::PerConnection => "Connections/s",
        Mode::Bulk => "MB/s echoed",
    }
}

/// One line per measured run, as it ends.
pub(super) fn progress_line(name: &str, mode: Mode, s: &Sample) -> String {
    let mut line = format!(
        "{:<22} {:<8} {:>9.1} {}  CPU {:.0} %",
        load_name(mode),
        name,
        s.rate,
        rate_label(mode).to_lowercase(),
        s.cpu_pct
    );
    if mode == Mode::PerConnection {
        let _ = write!(line, "  p50 {}  p99 {}", fmt_us(s.p50_us), fmt_us(s.p99_us));
    }
    if let Some(cpu) = s.cpu_us {
        let _ = write!(line, "  {cpu:.1} µs/{}", unit(mode));
    }
    if let (Some(p), Some(l)) = (s.proxy_core_us, s.load_core_us) {
        let _ = write!(line, " (whole CPU: proxy's {p:.1}, load's {l:.1})");
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

/// The tables and the ratios.
pub(super) fn report(args: &Args, pin: &Pinning, proxies: &[Proxy]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} rounds of {} s per load and proxy; medians of the rounds. {}. Backend: this program's echo server, one thread.",
        args.rounds, args.duration, pin.note,
    );
    for (l, &mode) in args.loads.iter().enumerate() {
        let _ = writeln!(out, "\n{}: {}.\n", load_name(mode), describe(mode, args));
        let _ = writeln!(
            out,
            "| Proxy | {rate} | p50 | p99 | CPU µs / {unit} | Proxy's CPU, µs / {unit} | Load's CPU, µs / {unit} | Proxy's CPU use | Peak RSS | {rate} by round |",
            rate = rate_label(mode),
            unit = unit(mode)
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for p in proxies {
            let samples = &p.samples[l];
            let col = |f: Metric| -> Vec<f64> { samples.iter().filter_map(f).collect() };
            let rounds: Vec<String> = samples.iter().map(|s| format!("{:.1}", s.rate)).collect();
            let latency = |f: Metric| match (mode, p.median_opt(l, f)) {
                (Mode::PerConnection, Some(us)) if us.is_finite() => fmt_us(us),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {:.1} | {} | {} | {} | {} | {} | {:.0} % | {:.1} MiB | {} |",
                p.name,
                p.median_opt(l, |s| Some(s.rate)).unwrap_or(f64::NAN),
                latency(|s| Some(s.p50_us)),
                latency(|s| Some(s.p99_us)),
                fmt_opt_us(&col(|s| s.cpu_us)),
                fmt_opt_us(&col(|s| s.proxy_core_us)),
                fmt_opt_us(&col(|s| s.load_core_us)),
                p.median_opt(l, |s| Some(s.cpu_pct)).unwrap_or(f64::NAN),
                mib(samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0)),
                rounds.join(", ")
            );
        }
    }

    let router = &proxies[0];
    let fmt = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}"));
    let _ = writeln!(out, "\n| Ratio | Of the medians | By round |");
    let _ = writeln!(out, "|---|---|---|");
    for other in &proxies[1..] {
        for (l, &mode) in args.loads.iter().enumerate() {
            let ratio = |f: Metric| Some(router.median_opt(l, f)? / other.median_opt(l, f)?);
            let rows: [(String, Metric); 3] = [
                (rate_label(mode).to_string(), |s| Some(s.rate)),
                (format!("CPU per {}", unit(mode)), |s| s.cpu_us),
                (format!("proxy's whole CPU per {}", unit(mode)), |s| {
                    s.proxy_core_us
                }),
            ];
            for (what, f) in rows {
                let _ = writeln!(
                    out,
                    "| router / {}, {}, {what} | {} | {} |",
                    other.name,
                    load_name(mode),
                    fmt(ratio(f)),
                    by_round(router, other, l, f)
                );
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
        "\nErrors (failed or timed-out connections, wrong echoes), all runs: {errors}."
    );
    out
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

fn describe(mode: Mode, args: &Args) -> String {
    match mode {
        Mode::PerConnection => format!(
            "{} loops, each connecting, sending {} bytes, reading their echo, half-closing and reading until the proxy closes, then again",
            args.connections, args.request_size
        ),
        Mode::Bulk => format!(
            "{} long connections, each writing {}-byte chunks and reading the echo at once; MB are echoed bytes (each crossed the proxy twice), 10^6 bytes",
            args.connections, args.chunk_size
        ),
    }
}
