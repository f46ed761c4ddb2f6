//! Medians, units and the verdict table of a report.

use std::fmt::Write as _;

/// The median; NaN when there are no values.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `q` quantile (0 to 1) of `values` by the nearest-rank method: the
/// p99 of 100 values is the 99th smallest. NaN when there are none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (sorted.len() as f64 * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `850 µs` or `1.25 ms`.
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// The median of per-request CPU figures, or a dash when there are none
/// (not pinned).
pub fn fmt_opt_us(values: &[f64]) -> String {
    if values.is_empty() {
        "–".into()
    } else {
        format!("{:.1}", median(values))
    }
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One line of the targets table.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What is measured.
    pub what: String,
    /// The goal, as written in the project's targets.
    pub target: String,
    /// What this run measured.
    pub measured: String,
    /// Whether the goal was met.
    pub met: bool,
}

/// A [`Verdict`].
pub fn verdict(what: &str, target: &str, measured: String, met: bool) -> Verdict {
    Verdict {
        what: what.into(),
        target: target.into(),
        measured,
        met,
    }
}

/// The verdicts as a Markdown table.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n| Target | Goal | Measured | Verdict |");
    let _ = writeln!(out, "|---|---|---|---|");
    for v in verdicts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            v.what,
            v.target,
            v.measured,
            if v.met { "met" } else { "**missed**" }
        );
    }
    out
}

/// The verdicts as JSON.
pub fn verdicts_json(verdicts: &[Verdict]) -> serde_json::Value {
    verdicts
        .iter()
        .map(|v| {
            serde_json::json!({
                "target": v.what, "goal": v.target, "measured": v.measured, "met": v.met,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 50.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
