//! One measured run: the scenario's load (h2load, or this program's gRPC
//! client) against one proxy, and what `/proc` says it cost the proxy.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use examples::load::procs::{Proc, run_json_client};
use examples::load::sys::{Pinning, UsageMeter, group_rss_kib};

use super::grpc::Method;
use super::{Bench, Sample, Scenario, client, h2load, method};

impl Bench<'_> {
    /// Runs the scenario's load against one proxy for `secs` and says what
    /// it cost.
    pub(super) fn measure(
        &self,
        proc: &mut Proc,
        addr: SocketAddr,
        scenario: Scenario,
        secs: u64,
    ) -> Result<Sample> {
        let group = proc.pid();
        let meter = UsageMeter::start(group, self.pin);
        let load = match scenario {
            Scenario::H2 => self.run_h2load(addr, secs, group)?,
            Scenario::GrpcUnary | Scenario::GrpcStream => {
                self.run_grpc(addr, scenario, secs, group)?
            }
        };
        let usage = meter.stop(self.ticks);
        proc.check_running()?;
        let units = load.units as f64;
        let per = |secs: Option<f64>| secs.filter(|_| units > 0.0).map(|s| s * 1e6 / units);
        Ok(Sample {
            rate: units / load.secs,
            calls_rate: load.calls as f64 / load.secs,
            p50_us: load.p50_us,
            p99_us: load.p99_us,
            failed: load.failed,
            first_failure: load.first_failure,
            cpu_us: per(Some(usage.group_secs)),
            proxy_core_us: per(usage.proxy_cpu_secs),
            load_core_us: per(usage.load_cpu_secs),
            cpu_pct: 100.0 * usage.group_secs / load.secs,
            peak_rss_kib: load.peak_rss_kib,
        })
    }

    fn run_h2load(&self, addr: SocketAddr, secs: u64, group: u32) -> Result<LoadRun> {
        let log = self.work.file("h2load-requests.log");
        let mut command = Pinning::command(self.pin.load, "h2load");
        h2load::args(
            &mut command,
            addr,
            "web",
            self.args.connections,
            self.args.streams,
            secs,
            &log,
        );
        let out = self.work.file("h2load.out");
        let mut proc = Proc::spawn("h2load", command, &out)?;
        let (status, peak) = wait_sampling(&mut proc, secs, group)?;
        let output = std::fs::read_to_string(&out)?;
        if !status.success() {
            bail!("h2load failed ({status}):\n{output}");
        }
        let summary = h2load::parse_summary(&output)?;
        let (p50_us, p99_us) = h2load::log_percentiles(&std::fs::read_to_string(&log)?);
        let failed = summary.failed + summary.timeout;
        let first_failure = (failed > 0).then(|| {
            format!(
                "h2load: {} done, {} succeeded, {} failed ({} errored), {} timeout; status codes {} 2xx, {} 3xx, {} 4xx, {} 5xx",
                summary.done,
                summary.succeeded,
                summary.failed,
                summary.errored,
                summary.timeout,
                summary.status[0],
                summary.status[1],
                summary.status[2],
                summary.status[3]
            )
        });
        Ok(LoadRun {
            units: summary.succeeded,
            calls: summary.succeeded,
            secs: summary.secs,
            p50_us,
            p99_us,
            failed,
            first_failure,
            peak_rss_kib: peak,
        })
    }

    fn run_grpc(
        &self,
        addr: SocketAddr,
        scenario: Scenario,
        secs: u64,
        group: u32,
    ) -> Result<LoadRun> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut command = Pinning::command(self.pin.load, exe);
        command
            .arg("grpc-client")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--method")
            .arg(match method(scenario) {
                Some(Method::Stream) => "stream",
                _ => "unary",
            })
            .arg("--messages")
            .arg(self.expected_messages(scenario).to_string())
            .arg("--connections")
            .arg(self.args.connections.to_string())
            .arg("--streams")
            .arg(self.args.streams.to_string())
            .arg("--secs")
            .arg(secs.to_string());
        let log = self.work.file("grpc-client.out");
        let (json, peak) = run_json_client("gRPC client", command, &log, secs, group)?;
        let run = client::Run::from_json(&json)?;
        Ok(LoadRun {
            units: match scenario {
                Scenario::GrpcStream => run.messages,
                Scenario::H2 | Scenario::GrpcUnary => run.calls,
            },
            calls: run.calls,
            secs: run.secs,
            p50_us: run.p50_us,
            p99_us: run.p99_us,
            failed: run.failed,
            first_failure: run.first_failure,
            peak_rss_kib: peak,
        })
    }
}

/// What a load client reported, in the scenario's units.
struct LoadRun {
    /// Requests or messages answered as expected.
    units: u64,
    /// Requests or calls answered as expected.
    calls: u64,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    failed: u64,
    first_failure: Option<String>,
    peak_rss_kib: u64,
}

/// Waits for a load client that runs `secs` (plus up to 30 s), sampling
/// the resident memory of process group `group` meanwhile.
fn wait_sampling(proc: &mut Proc, secs: u64, group: u32) -> Result<(ExitStatus, u64)> {
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let mut peak = 0;
    loop {
        peak = peak.max(group_rss_kib(group));
        if let Some(status) = proc.try_wait()? {
            return Ok((status, peak));
        }
        if Instant::now() >= deadline {
            bail!("{} did not finish within {secs} s + 30 s", proc.name());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
