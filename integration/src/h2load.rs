//! h2load (Debian's `nghttp2-client`) as a load client that counts what
//! went wrong: every request answered, failed or errored, by status class.

use std::path::Path;
use std::process::Command;

use crate::servers::missing;

/// Where the Debian package puts it.
const BINARY: &str = "/usr/bin/h2load";

/// What one h2load run reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct H2loadReport {
    /// Requests asked for.
    pub total: u64,
    /// Answered with a 2xx or 3xx.
    pub succeeded: u64,
    /// Answered with a 4xx or 5xx, or not answered.
    pub failed: u64,
    /// Not answered: the stream or connection failed.
    pub errored: u64,
    /// Answers by status class: 2xx, 3xx, 4xx, 5xx.
    pub status: [u64; 4],
    /// h2load's whole output, for failure messages.
    pub output: String,
}

/// Runs h2load with `args` (e.g. `-n 1000 -c 10 -m 10 URL`) and reads its
/// summary. `None` (after a `SKIPPED:` line) when h2load is not installed;
/// panics instead when `CI=true`.
pub fn run(args: &[&str]) -> Option<H2loadReport> {
    if !Path::new(BINARY).is_file() {
        missing("h2load", "nghttp2-client", &format!("{BINARY} is missing"));
        return None;
    }
    let output = match Command::new(BINARY).args(args).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run {BINARY}: {e}"),
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    match parse(&text) {
        Some(report) => Some(report),
        None => panic!(
            "h2load {args:?} printed no summary:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Reads the `requests:` and `status codes:` lines of h2load's summary.
fn parse(text: &str) -> Option<H2loadReport> {
    let requests = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("requests:"))?;
    let statuses = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("status codes:"))?;
    // "200000 total, 200000 started, 200000 done, 199104 succeeded, 896 failed, 0 errored, 0 timeout"
    let count = |line: &str, what: &str| -> Option<u64> {
        line.split(',').find_map(|part| {
            let (n, name) = part.trim().split_once(' ')?;
            (name == what).then(|| n.parse().ok()).flatten()
        })
    };
    Some(H2loadReport {
        total: count(requests, "total")?,
        succeeded: count(requests, "succeeded")?,
        failed: count(requests, "failed")?,
        errored: count(requests, "errored")?,
        status: [
            count(statuses, "2xx")?,
            count(statuses, "3xx")?,
            count(statuses, "4xx")?,
            count(statuses, "5xx")?,
        ],
        output: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary() {
        let text = "finished in 5.48s, 36463.59 req/s, 1.06MB/s\n\
                    requests: 200000 total, 200000 started, 200000 done, 199104 succeeded, 896 failed, 3 errored, 0 timeout\n\
                    status codes: 199104 2xx, 0 3xx, 1 4xx, 892 5xx\n";
        let report = parse(text).unwrap_or_default();
        assert_eq!(
            (
                report.total,
                report.succeeded,
                report.failed,
                report.errored
            ),
            (200_000, 199_104, 896, 3)
        );
        assert_eq!(report.status, [199_104, 0, 1, 892]);
    }
}
