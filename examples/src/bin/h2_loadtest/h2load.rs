//! `h2load` (nghttp2's load generator) as the load of the `h2` scenario:
//! its command line, and its summary and per-request log read back.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, anyhow};

use super::client::percentile;

/// What one `h2load` run says.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Summary {
    /// Seconds of the measured part.
    pub(crate) secs: f64,
    pub(crate) done: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) errored: u64,
    pub(crate) timeout: u64,
    /// Answers by status class: 2xx, 3xx, 4xx, 5xx.
    pub(crate) status: [u64; 4],
}

/// `h2load` arguments for `secs` seconds of `GET /` with `:authority`
/// `authority` against `addr`, each request logged to `log`.
pub(crate) fn args(
    command: &mut Command,
    addr: SocketAddr,
    authority: &str,
    connections: u32,
    streams: u32,
    secs: u64,
    log: &Path,
) {
    command
        .arg("-c")
        .arg(connections.to_string())
        .arg("-m")
        .arg(streams.to_string())
        .arg("-t")
        .arg("1")
        .arg("-D")
        .arg(secs.to_string())
        .arg("-H")
        .arg(format!(":authority: {authority}"))
        .arg("--log-file")
        .arg(log)
        .arg(format!("http://{addr}/"));
}

/// Reads the summary `h2load` prints.
pub(crate) fn parse_summary(output: &str) -> Result<Summary> {
    let mut summary = Summary::default();
    let finished = output
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .ok_or_else(|| anyhow!("no `finished in` line in h2load's output:\n{output}"))?;
    summary.secs = duration_secs(finished.split(',').next().unwrap_or(""))
        .with_context(|| format!("reading `finished in {finished}`"))?;
    let requests = output
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .ok_or_else(|| anyhow!("no `requests:` line in h2load's output:\n{output}"))?;
    for part in requests.split(',') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let n: u64 = n.parse().with_context(|| format!("reading `{part}`"))?;
        match what {
            "done" => summary.done = n,
            "succeeded" => summary.succeeded = n,
            "failed" => summary.failed = n,
            "errored" => summary.errored = n,
            "timeout" => summary.timeout = n,
            _ => {}
        }
    }
    if let Some(codes) = output
        .lines()
        .find_map(|l| l.strip_prefix("status codes: "))
    {
        for (i, part) in codes.split(',').enumerate().take(4) {
            summary.status[i] = part
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    Ok(summary)
}

/// `10.00s`, `391.84ms` or `12us` in seconds.
fn duration_secs(text: &str) -> Result<f64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(anyhow!("not a duration: {text:?}"));
    };
    Ok(number.parse::<f64>()? * scale)
}

/// The median and 99th percentile (µs) of the request times in an
/// `h2load --log-file` log (start, status, µs to the end of the answer).
pub(crate) fn log_percentiles(log: &str) -> (f64, f64) {
    let mut times: Vec<u32> = log
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    times.sort_unstable();
    (percentile(&times, 0.50), percentile(&times, 0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_summary() {
        let out = "starting benchmark...\n\
            finished in 10.00s, 51041.63 req/s, 1.43MB/s\n\
            requests: 510416 total, 510916 started, 510416 done, 510400 succeeded, 16 failed, 16 errored, 0 timeout\n\
            status codes: 510400 2xx, 0 3xx, 0 4xx, 16 5xx\n";
        let s = parse_summary(out).unwrap();
        assert_eq!(s.secs, 10.0);
        assert_eq!(s.done, 510_416);
        assert_eq!(s.succeeded, 510_400);
        assert_eq!((s.failed, s.errored, s.timeout), (16, 16, 0));
        assert_eq!(s.status, [510_400, 0, 0, 16]);
        let s = parse_summary(&out.replace("10.00s", "391.84ms")).unwrap();
        assert!((s.secs - 0.39184).abs() < 1e-9);
        assert!(parse_summary("connect failed").is_err());
    }

    #[test]
    fn reads_the_request_log() {
        let log =
            "1733550000000000\t200\t300\n1733550000000100\t200\t100\n1733550000000200\t200\t200\n";
        assert_eq!(log_percentiles(log), (200.0, 300.0));
    }
}
