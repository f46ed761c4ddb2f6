//! Running `wrk --latency` and reading what it printed.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use super::procs::{Proc, WorkDir};
use super::sys::{Pinning, group_rss_kib};

/// What one `wrk --latency` run reported.
#[derive(Debug, Clone, Default)]
pub struct WrkRun {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Requests completed.
    pub requests: u64,
    /// Answers other than 2xx and 3xx.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
}

/// `645.51us`, `1.50ms`, `2.00s`, `1.00m` as microseconds.
pub fn parse_duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(value * scale)
}

/// Reads the output of `wrk --latency`.
pub fn parse_wrk(output: &str) -> Result<WrkRun> {
    let mut run = WrkRun::default();
    let (mut rps, mut p50, mut p99) = (None, None, None);
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rps = value.parse().ok(),
            ["50%", value] => p50 = parse_duration_us(value),
            ["99%", value] => p99 = parse_duration_us(value),
            [count, "requests", "in", ..] => run.requests = count.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                run.non_2xx = count.parse().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                run.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    run.rps = rps.ok_or_else(|| anyhow!("no Requests/sec in wrk's output:\n{output}"))?;
    run.p50_us = p50.ok_or_else(|| anyhow!("no 50% latency in wrk's output:\n{output}"))?;
    run.p99_us = p99.ok_or_else(|| anyhow!("no 99% latency in wrk's output:\n{output}"))?;
    Ok(run)
}

/// One `wrk -t1` load.
#[derive(Debug, Clone)]
pub struct WrkLoad<'a> {
    /// `http://…/` or `https://…/`.
    pub url: &'a str,
    /// Open connections.
    pub connections: u32,
    /// Seconds.
    pub secs: u64,
    /// Headers added to every request (`Connection: close`).
    pub headers: &'a [&'a str],
}

/// Runs `wrk` on `cpu`; samples the resident memory of the group
/// `target_group` while it runs. Returns the run and the highest RSS seen
/// (KiB).
pub fn run_wrk(
    work: &WorkDir,
    cpu: Option<&str>,
    load: &WrkLoad<'_>,
    target_group: u32,
) -> Result<(WrkRun, u64)> {
    run_wrk_with(work, cpu, load, &[], target_group)
}

/// As [`run_wrk`], with `extra` arguments before the URL (`-s post.lua`).
pub fn run_wrk_with(
    work: &WorkDir,
    cpu: Option<&str>,
    load: &WrkLoad<'_>,
    extra: &[std::ffi::OsString],
    target_group: u32,
) -> Result<(WrkRun, u64)> {
    let log = work.file("wrk.out");
    let mut command = Pinning::command(cpu, "wrk");
    command.args([
        "-t1".to_string(),
        format!("-c{}", load.connections),
        format!("-d{}s", load.secs),
        "--latency".to_string(),
    ]);
    for header in load.headers {
        command.arg("-H").arg(header);
    }
    command.args(extra);
    command.arg(load.url);
    let mut wrk = Proc::spawn("wrk", command, &log)?;
    let deadline = Instant::now() + Duration::from_secs(load.secs + 30);
    let mut peak = 0;
    let status = loop {
        peak = peak.max(group_rss_kib(target_group));
        if let Some(status) = wrk.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!("wrk did not finish within {} s + 30 s", load.secs);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log)?;
    if !status.success() {
        bail!("wrk failed ({status}):\n{output}");
    }
    Ok((parse_wrk(&output)?, peak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_output() {
        let output = "Running 10s test @ http://127.0.0.1:8080/\n\
  1 threads and 50 connections\n\
  Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
    Latency   645.51us  200.10us   8.21ms   90.00%\n\
    Req/Sec    77.30k     3.00k   80.00k    70.00%\n\
  Latency Distribution\n\
     50%  600.00us\n\
     75%  700.00us\n\
     90%  800.00us\n\
     99%    1.50ms\n\
  773125 requests in 10.00s, 89.21MB read\n\
  Non-2xx or 3xx responses: 3\n\
  Socket errors: connect 0, read 2, write 0, timeout 1\n\
Requests/sec:  77304.44\n\
Transfer/sec:      8.92MB\n";
        let run = parse_wrk(output).unwrap();
        assert!((run.rps - 77304.44).abs() < 1e-6);
        assert!((run.p50_us - 600.0).abs() < 1e-6);
        assert!((run.p99_us - 1500.0).abs() < 1e-6);
        assert_eq!(run.requests, 773125);
        assert_eq!(run.non_2xx, 3);
        assert_eq!(run.socket_errors, 3);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("2.00s"), Some(2e6));
        assert_eq!(parse_duration_us("12.5ms"), Some(12500.0));
        assert_eq!(parse_duration_us("3x"), None);
    }
}
