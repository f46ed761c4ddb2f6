//! Rounds of one scenario: every proxy loaded in turn by `wrk`, the order
//! rotating each round, with what each run cost the proxy's process
//! (`/proc`), both CPUs, and how many TCP connections it took.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::probe::http_get_path;
use super::procs::{Proc, WorkDir};
use super::report::{fmt_us, median};
use super::scenario::{Scenario, tcp_passive_opens, upstream_accepts};
use super::sys::{Pinning, UsageMeter};
use super::wrk::{WrkLoad, WrkRun, run_wrk_with};

/// Whether a contender is the router (in some configuration) or a peer
/// it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The router.
    Router,
    /// HAProxy or nginx.
    Peer,
}

/// A running proxy under test.
pub struct Contender {
    /// Its name in the report (`router`, `router+features`, `HAProxy`).
    pub name: &'static str,
    /// Router or peer.
    pub role: Role,
    /// Where `wrk` sends its load.
    pub addr: SocketAddr,
    /// The process (group) whose CPU time is counted.
    pub proc: Proc,
    /// An admin address and path read every [`SCRAPE_EVERY`] while this
    /// proxy is loaded, as Prometheus would.
    pub scrape: Option<(SocketAddr, &'static str)>,
}

/// How often a contender's metrics are scraped while it is loaded.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(10);

/// One measured run of one scenario against one proxy.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// What `wrk` reported: rate, latency, requests and errors.
    pub wrk: WrkRun,
    /// The proxy's own user plus system CPU time per request.
    pub cpu_us: Option<f64>,
    /// The proxy's CPU time over the run's length, percent of one core.
    pub cpu_pct: f64,
    /// Busy time of the proxy's whole CPU per request (when pinned).
    pub proxy_core_us: Option<f64>,
    /// Busy time of the load's whole CPU per request (when pinned).
    pub load_core_us: Option<f64>,
    /// Connections the upstream accepted per request.
    pub upstream_conns: Option<f64>,
    /// Connections accepted on this machine per request, less the
    /// upstream's: the proxy's from `wrk` (and anything else that
    /// connected meanwhile).
    pub client_conns: Option<f64>,
    /// Highest resident memory of the proxy's group seen, KiB.
    pub peak_rss_kib: u64,
    /// Metrics scrapes made during the run.
    pub scrapes: u64,
    /// Scrapes that did not answer 200.
    pub scrape_failures: u64,
}

/// The samples of one contender in one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    /// The contender's name.
    pub name: &'static str,
    /// Router or peer.
    pub role: Role,
    /// One per round.
    pub samples: Vec<Sample>,
}

impl Row {
    /// The median of `f` over the rounds.
    pub fn median_of(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(&self.samples.iter().map(f).collect::<Vec<_>>())
    }

    /// The median of `f` over the rounds that have it.
    pub fn median_opt(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.samples.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(&values))
    }

    /// The median CPU µs per request (NaN when never measured).
    pub fn cpu_us(&self) -> f64 {
        self.median_opt(|s| s.cpu_us).unwrap_or(f64::NAN)
    }

    /// Answers other than 2xx and socket errors over every round.
    pub fn errors(&self) -> u64 {
        self.samples
            .iter()
            .map(|s| s.wrk.non_2xx + s.wrk.socket_errors)
            .sum()
    }
}

/// What one scenario measured, one row per contender in start order.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// One per contender.
    pub rows: Vec<Row>,
}

impl Outcome {
    /// The row of `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The peer with the lowest CPU per request.
    pub fn better_peer(&self) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| r.role == Role::Peer && r.cpu_us().is_finite())
            .min_by(|a, b| a.cpu_us().total_cmp(&b.cpu_us()))
    }
}

/// Everything a measured run needs besides the proxy.
pub struct Bench<'a> {
    /// Where configs, scripts and logs go.
    pub work: &'a WorkDir,
    /// Which CPU runs what.
    pub pin: &'a Pinning,
    /// Clock ticks per second, for `/proc` times.
    pub ticks: f64,
    /// `wrk` connections.
    pub connections: u32,
    /// The upstream, for its connection counter.
    pub upstream: SocketAddr,
}

impl Bench<'_> {
    /// Loads `contender` with `scenario` for `secs` seconds.
    pub fn measure(
        &self,
        contender: &mut Contender,
        scenario: Scenario,
        wrk_args: &[OsString],
        secs: u64,
    ) -> Result<Sample> {
        let group = contender.proc.pid();
        let scraper = contender
            .scrape
            .map(|(addr, path)| Scraper::start(addr, path));
        let opens_before = tcp_passive_opens();
        let accepts_before = upstream_accepts(self.upstream).ok();
        let meter = UsageMeter::start(group, self.pin);
        let url = format!("http://{}{}", contender.addr, scenario.path());
        let (run, peak) = run_wrk_with(
            self.work,
            self.pin.load,
            &WrkLoad {
                url: &url,
                connections: self.connections,
                secs,
                headers: scenario.headers(),
            },
            wrk_args,
            group,
        )?;
        let usage = meter.stop(self.ticks);
        // Both counters are read after the CPU meter, so the two requests
        // to /nginx_status are not counted against the proxy.
        let accepts = accepts_before
            .zip(upstream_accepts(self.upstream).ok())
            .map(|(before, after)| after.saturating_sub(before));
        let opens = opens_before
            .zip(tcp_passive_opens())
            .map(|(before, after)| after.saturating_sub(before));
        let (scrapes, scrape_failures) = scraper.map_or((0, 0), Scraper::stop);
        contender.proc.check_running()?;
        let per_request = |n: u64| (run.requests > 0).then(|| n as f64 / run.requests as f64);
        // The kernel counted both /nginx_status requests and the scrapes;
        // the upstream's count includes the second /nginx_status request.
        let upstream_conns = accepts.map(|a| a.saturating_sub(1));
        let client_conns = opens.zip(accepts).map(|(o, a)| {
            o.saturating_sub(a)
                .saturating_sub(1)
                .saturating_sub(scrapes)
        });
        Ok(Sample {
            cpu_us: usage.group_us_per(run.requests),
            cpu_pct: 100.0 * usage.group_secs / secs as f64,
            proxy_core_us: usage.proxy_cpu_us_per(run.requests),
            load_core_us: usage.load_cpu_us_per(run.requests),
            upstream_conns: upstream_conns.and_then(per_request),
            client_conns: client_conns.and_then(per_request),
            peak_rss_kib: peak,
            scrapes,
            scrape_failures,
            wrk: run,
        })
    }
}

/// Runs `scenario`: a warm-up of each contender, then `rounds` rounds of
/// `secs` seconds each, the order rotating every round.
pub fn run_scenario(
    bench: &Bench<'_>,
    scenario: Scenario,
    contenders: &mut [&mut Contender],
    rounds: u32,
    secs: u64,
    warmup: u64,
) -> Result<Outcome> {
    let wrk_args = scenario.wrk_args(bench.work)?;
    if warmup > 0 {
        for contender in contenders.iter_mut() {
            eprintln!("{scenario}: warm-up of {} for {warmup} s", contender.name);
            bench.measure(contender, scenario, &wrk_args, warmup)?;
        }
    }
    let mut rows: Vec<Row> = contenders
        .iter()
        .map(|c| Row {
            name: c.name,
            role: c.role,
            samples: Vec::new(),
        })
        .collect();
    let n = contenders.len();
    for round in 0..rounds as usize {
        for k in 0..n {
            let i = (round + k) % n;
            let sample = bench.measure(contenders[i], scenario, &wrk_args, secs)?;
            eprintln!(
                "{scenario}, round {}: {}",
                round + 1,
                progress_line(contenders[i].name, &sample)
            );
            rows[i].samples.push(sample);
        }
    }
    Ok(Outcome { scenario, rows })
}

/// What a run measured, on one line.
fn progress_line(name: &str, s: &Sample) -> String {
    let mut line = format!(
        "{name:<16} {:>9.0} rps  p50 {:>9}  p99 {:>9}  CPU {:.0} %",
        s.wrk.rps,
        fmt_us(s.wrk.p50_us),
        fmt_us(s.wrk.p99_us),
        s.cpu_pct
    );
    if let Some(cpu) = s.cpu_us {
        line.push_str(&format!(", {cpu:.1} µs/request"));
    }
    if let (Some(p), Some(l)) = (s.proxy_core_us, s.load_core_us) {
        line.push_str(&format!(
            "  whole-CPU µs/request: proxy's {p:.1}, load's {l:.1}"
        ));
    }
    if let (Some(c), Some(u)) = (s.client_conns, s.upstream_conns) {
        line.push_str(&format!(
            "  connections/request: client {c:.2}, upstream {u:.3}"
        ));
    }
    if s.wrk.non_2xx + s.wrk.socket_errors > 0 {
        line.push_str(&format!(
            "  ({} non-2xx, {} socket errors)",
            s.wrk.non_2xx, s.wrk.socket_errors
        ));
    }
    line
}

/// Reads a metrics path every [`SCRAPE_EVERY`] until stopped.
struct Scraper {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    thread: JoinHandle<u64>,
}

impl Scraper {
    fn start(addr: SocketAddr, path: &'static str) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, failures) = (stop.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut made = 0;
                // Half an interval in, so that a run as long as the
                // interval gets one scrape.
                let mut next = Instant::now() + SCRAPE_EVERY / 2;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        made += 1;
                        let ok = matches!(
                            http_get_path(addr, path, Duration::from_secs(2), 64 << 20),
                            Ok((200, _))
                        );
                        if !ok {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        next += SCRAPE_EVERY;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                made
            })
        };
        Scraper {
            stop,
            failures,
            thread,
        }
    }

    /// Scrapes made and scrapes failed.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let made = self.thread.join().unwrap_or(0);
        (made, self.failures.load(Ordering::Relaxed))
    }
}
