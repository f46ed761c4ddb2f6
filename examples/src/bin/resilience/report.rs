//! Counting a run's outcomes and latencies, and printing them as a row,
//! a markdown table and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::load::{Outcome, Sample};

/// What one run measured.
#[derive(Debug, Default)]
pub(crate) struct Run {
    sent: u64,
    success: u64,
    server_errors: u64,
    l5d_errs: u64,
    other_status: u64,
    timeouts: u64,
    connection_errors: u64,
    /// Latencies at p50, p90, p99, p99.9 and the maximum, in ms.
    percentiles_ms: [f64; 5],
    connections_opened: u64,
    /// Requests the failing backend received (retries included).
    pub(crate) to_failing: u64,
    /// Requests the slow backend received.
    pub(crate) to_slow: u64,
    /// How far behind its schedule the sender fell at worst.
    pub(crate) max_lag: Duration,
    pub(crate) cpu_secs: f64,
}

const PERCENTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

impl Run {
    pub(crate) fn tally(samples: &[Sample], connections_opened: u64, max_lag: Duration) -> Run {
        let mut run = Run {
            sent: samples.len() as u64,
            connections_opened,
            max_lag,
            ..Run::default()
        };
        for (outcome, _) in samples {
            *match outcome {
                Outcome::Success => &mut run.success,
                Outcome::ServerError => &mut run.server_errors,
                Outcome::L5dErr => &mut run.l5d_errs,
                Outcome::OtherStatus => &mut run.other_status,
                Outcome::Timeout => &mut run.timeouts,
                Outcome::ConnectionError => &mut run.connection_errors,
            } += 1;
        }
        let mut latencies: Vec<u64> = samples.iter().map(|(_, l)| *l).collect();
        latencies.sort_unstable();
        for (slot, p) in run.percentiles_ms.iter_mut().zip(PERCENTILES) {
            *slot = nearest_rank(&latencies, p) as f64 / 1e3;
        }
        run.percentiles_ms[4] = latencies.last().copied().unwrap_or(0) as f64 / 1e3;
        run
    }

    fn success_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * self.success as f64 / self.sent as f64
        }
    }
}

/// The value at quantile `q` of `sorted` (nearest rank).
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One measured configuration.
pub(crate) struct Row {
    pub(crate) proxy: &'static str,
    pub(crate) label: String,
    pub(crate) run: Run,
}

pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Proxy | Config | Sent | Success | 5xx | l5d-err | Timeouts | Conn. errors \
         | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | To 500 | To slow | CPU s | Conns |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let r = &row.run;
        let [p50, p90, p99, p999, max] = r.percentiles_ms;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} % | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            row.proxy,
            row.label,
            r.sent,
            r.success_pct(),
            r.server_errors,
            r.l5d_errs,
            r.timeouts,
            r.connection_errors,
            ms(p50),
            ms(p90),
            ms(p99),
            ms(p999),
            ms(max),
            r.to_failing,
            r.to_slow,
            r.cpu_secs,
            r.connections_opened
        );
    }
    out
}

/// Milliseconds with as many decimals as matter.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

pub(crate) fn row_line(row: &Row) -> String {
    let r = &row.run;
    let [p50, p90, p99, p999, max] = r.percentiles_ms;
    let mut line = format!(
        "{:<8} {:<50} sent {:>7}  success {:>7.3} %  5xx {:>5}  l5d-err {:>5}  timeouts {:>4}  conn errors {:>5}  \
         p50 {} p90 {} p99 {} p99.9 {} max {} ms  to 500 {}  to slow {}  CPU {:.2} s  conns {}",
        row.proxy,
        row.label,
        r.sent,
        r.success_pct(),
        r.server_errors,
        r.l5d_errs,
        r.timeouts,
        r.connection_errors,
        ms(p50),
        ms(p90),
        ms(p99),
        ms(p999),
        ms(max),
        r.to_failing,
        r.to_slow,
        r.cpu_secs,
        r.connections_opened
    );
    if r.other_status > 0 {
        let _ = write!(line, "  (+{} neither 2xx nor 5xx)", r.other_status);
    }
    line
}

pub(crate) fn row_json(row: &Row) -> Value {
    let r = &row.run;
    let [p50, p90, p99, p999, max] = r.percentiles_ms;
    json!({
        "proxy": row.proxy,
        "config": row.label,
        "sent": r.sent,
        "success": r.success,
        "success_pct": r.success_pct(),
        "failures": {
            "status_5xx": r.server_errors,
            "l5d_err": r.l5d_errs,
            "other_status": r.other_status,
            "timeouts": r.timeouts,
            "connection_errors": r.connection_errors,
        },
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "p99_9": p999, "max": max},
        "to_failing_backend": r.to_failing,
        "to_slow_backend": r.to_slow,
        "cpu_secs": r.cpu_secs,
        "connections_opened": r.connections_opened,
        "sender_max_lag_ms": r.max_lag.as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=1000).collect();
        assert_eq!(nearest_rank(&sorted, 0.5), 500);
        assert_eq!(nearest_rank(&sorted, 0.999), 999);
        assert_eq!(nearest_rank(&sorted, 1.0), 1000);
        assert_eq!(nearest_rank(&[7], 0.99), 7);
        assert_eq!(nearest_rank(&[], 0.5), 0);
    }

    #[test]
    fn tally_counts_each_kind() {
        let samples = [
            (Outcome::Success, 1_000),
            (Outcome::Success, 2_000),
            (Outcome::L5dErr, 3_000),
            (Outcome::Timeout, 10_000_000),
        ];
        let run = Run::tally(&samples, 2, Duration::ZERO);
        assert_eq!(
            (run.sent, run.success, run.l5d_errs, run.timeouts),
            (4, 2, 1, 1)
        );
        assert_eq!(run.success_pct(), 50.0);
        assert_eq!(run.percentiles_ms[0], 2.0);
        assert_eq!(run.percentiles_ms[4], 10_000.0);
    }
}
