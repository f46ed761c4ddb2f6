//! `loadtest`: the router as an HTTP/1.1 proxy, measured side by side with
//! HAProxy and an nginx reverse proxy in one run.
//!
//! It starts an nginx upstream that answers `200 ok`, then the router,
//! HAProxy (one thread) and nginx (one worker) in front of it, each on its
//! own loopback port. Each proxy is pinned to CPU 1 and the upstream and
//! `wrk` to CPU 0 when `taskset` is there and the machine has two CPUs or
//! more. After a warm-up of each proxy, `wrk --latency` runs against the
//! proxies in turn, round after round (the order rotates every round), and
//! the medians of the rounds are printed with the router's ratios to the
//! other two. It also reports the router's memory (idle after start, and
//! peak under load) and the time from starting the router to its first
//! routed request.
//!
//! Everything listens on 127.0.0.1 only, every wait is bounded in time,
//! and every child process is stopped on exit, on error, on panic and on
//! Ctrl-C or SIGTERM.
//!
//! Needs `nginx`, `haproxy` and `wrk` on the `PATH` (and `taskset` for
//! pinning). Run it from the repository:
//!
//! ```sh
//! cargo run --release -p examples --bin loadtest -- --duration 10 --rounds 3
//! ```

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use examples::harness::{
    build_router, clock_ticks_per_sec, nginx_http_conf, nginx_main_conf, pinned_command,
    signal_group, stat_fields, taskset_works,
};

/// Compares the router with HAProxy and an nginx reverse proxy under `wrk`.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Seconds of each measured `wrk` run (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round runs every proxy once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// `wrk` connections (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Seconds of the unmeasured warm-up run of each proxy (0 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// How many times to time the router's start to its first routed
    /// request (0 to 50; 0 skips it).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=50))]
    start_trials: u32,
    /// Use this router binary instead of running
    /// `cargo build --release -p router`.
    #[arg(long)]
    router_bin: Option<PathBuf>,
    /// YAML keys added to the router's entry (a file of lines as they
    /// would appear under `- protocol: http`, without the indent), e.g. a
    /// `client` and a `service` block, to measure what they cost.
    #[arg(long)]
    router_extra: Option<PathBuf>,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the work directory (configs and logs) after the run.
    #[arg(long)]
    keep: bool,
}

/// Loopback only: the harness never sends traffic anywhere else.
const HOST: [u8; 4] = [127, 0, 0, 1];

// ---------------------------------------------------------------------------
// Child processes

/// Process groups of the children still running, for the signal handler.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The work directory, removed by the signal handler unless kept.
static WORKDIR: OnceLock<(PathBuf, bool)> = OnceLock::new();

/// A child process in its own process group, stopped (with its whole
/// group) when dropped.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Proc {
    /// Starts `command` with its output going to `log`.
    fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Proc> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // Hold the lock while spawning so that a signal cannot slip between
        // the spawn and the registration.
        let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        groups.push(child.id());
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the end of the log if the process has exited.
    fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.stopped = true;
                unregister(self.pid());
                bail!(
                    "{} exited ({status}); end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log)
                )
            }
            Err(e) => Err(anyhow!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM to the group, then SIGKILL if it has not exited in 3 s.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.pid();
        signal_group(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    signal_group(pid, "KILL");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        unregister(pid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unregister(pid: u32) {
    GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|&g| g != pid);
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Stops every child and exits on Ctrl-C, SIGTERM or SIGHUP.
fn install_signal_handler() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term, mut hup) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        });
        eprintln!("\ninterrupted: stopping the child processes");
        let groups = GROUPS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for &g in &groups {
            signal_group(g, "TERM");
        }
        std::thread::sleep(Duration::from_millis(500));
        for &g in &groups {
            signal_group(g, "KILL");
        }
        if let Some((dir, keep)) = WORKDIR.get()
            && !keep
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
    Ok(())
}

/// The work directory, removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(keep: bool) -> Result<WorkDir> {
        let base = std::env::temp_dir();
        for attempt in 0..100 {
            let path = base.join(format!(
                "switchboard-loadtest-{}-{attempt}",
                std::process::id()
            ));
            if std::fs::create_dir(&path).is_ok() {
                let _ = WORKDIR.set((path.clone(), keep));
                return Ok(WorkDir { path, keep });
            }
        }
        bail!("cannot create a work directory in {}", base.display())
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("work directory kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// CPU pinning

/// Which CPUs the proxies and the load (upstream and `wrk`) run on.
#[derive(Debug, Clone)]
struct Pinning {
    proxy: Option<&'static str>,
    load: Option<&'static str>,
    note: String,
}

impl Pinning {
    fn detect(disabled: bool) -> Pinning {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = taskset_works();
        let none = |note: String| Pinning {
            proxy: None,
            load: None,
            note,
        };
        if disabled {
            none("not pinned (--no-pin)".into())
        } else if !taskset {
            none("not pinned: taskset is missing".into())
        } else if cpus < 2 {
            none(format!("not pinned: only {cpus} CPU available"))
        } else {
            Pinning {
                proxy: Some("1"),
                load: Some("0"),
                note: format!("proxies on CPU 1, upstream and wrk on CPU 0 ({cpus} CPUs)"),
            }
        }
    }

    fn command(cpu: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
        pinned_command(cpu, program)
    }
}

// ---------------------------------------------------------------------------
// /proc readings

/// The processes of the group `pgid`.
fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f.get(2) == Some(&pgid.to_string())))
        .collect()
}

/// User plus system CPU time of the group, in clock ticks.
fn group_cpu_ticks(pgid: u32) -> u64 {
    group_pids(pgid)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| {
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            field(11) + field(12)
        })
        .sum()
}

/// Busy time of one CPU (`"0"`, `"1"`) in clock ticks, from `/proc/stat`:
/// user, nice, system, irq and softirq. Unlike a process's own CPU time
/// this includes the kernel's network work done on that CPU (softirq),
/// which is most of what a proxy on loopback costs. Steal is left out.
fn cpu_busy_ticks(cpu: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let label = format!("cpu{cpu}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6))
}

/// A `/proc/<pid>/status` memory field (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resident memory of the whole group, in KiB.
fn group_rss_kib(pgid: u32) -> u64 {
    group_pids(pgid)
        .into_iter()
        .filter_map(|p| status_kib(p, "VmRSS"))
        .sum()
}

// ---------------------------------------------------------------------------
// HTTP probing

/// A free loopback port (bound, then released).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((HOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((HOST, port))
}

/// One `GET /` with `Connection: close`: the status and the whole answer.
fn http_get(addr: SocketAddr, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| answer.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    Ok((status, answer))
}

/// Polls `addr` about every millisecond until it answers `200 … ok`;
/// returns the time from `since`.
fn wait_for_ok(
    proc: &mut Proc,
    addr: SocketAddr,
    since: Instant,
    limit: Duration,
) -> Result<Duration> {
    let deadline = since + limit;
    let mut last: String;
    loop {
        match http_get(addr, Duration::from_secs(2)) {
            Ok((200, answer)) if answer.ends_with("ok") || answer.contains("\r\n\r\nok") => {
                return Ok(since.elapsed());
            }
            Ok((status, answer)) => {
                last = format!("status {status}: {}", answer.lines().last().unwrap_or(""));
            }
            Err(e) => last = e.to_string(),
        }
        proc.check_running()?;
        if Instant::now() >= deadline {
            bail!(
                "{} at {addr} did not answer 200 ok within {limit:?} (last: {last}); end of {}:\n{}",
                proc.name,
                proc.log.display(),
                log_tail(&proc.log)
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// The servers

fn start_nginx(work: &WorkDir, name: &str, conf: String, cpu: Option<&str>) -> Result<Proc> {
    let path = work.file(&format!("{name}.conf"));
    std::fs::write(&path, conf)?;
    let mut command = Pinning::command(cpu, "nginx");
    command
        .arg("-p")
        .arg(&work.path)
        .arg("-e")
        .arg(work.file(&format!("{name}-error.log")))
        .arg("-c")
        .arg(&path);
    Proc::spawn(name, command, &work.file(&format!("{name}.log")))
}

fn start_upstream(work: &WorkDir, port: u16, cpu: Option<&str>) -> Result<Proc> {
    let conf = format!(
        "{}http {{\n{}  server {{\n    listen 127.0.0.1:{port};\n    \
         location / {{ return 200 \"ok\"; }}\n  }}\n}}\n",
        nginx_main_conf(&work.path, "upstream"),
        nginx_http_conf(&work.path, "upstream"),
    );
    start_nginx(work, "upstream", conf, cpu)
}

fn start_nginx_proxy(work: &WorkDir, port: u16, upstream: u16, cpu: Option<&str>) -> Result<Proc> {
    let conf = format!(
        "{}http {{\n{}  upstream up {{\n    server 127.0.0.1:{upstream};\n    keepalive 128;\n    \
         keepalive_requests 1000000;\n  }}\n  server {{\n    listen 127.0.0.1:{port};\n    \
         location / {{\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n      \
         proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n",
        nginx_main_conf(&work.path, "nginx"),
        nginx_http_conf(&work.path, "nginx"),
    );
    start_nginx(work, "nginx", conf, cpu)
}

fn start_haproxy(work: &WorkDir, port: u16, upstream: u16, cpu: Option<&str>) -> Result<Proc> {
    let conf = format!(
        "global\n  nbthread 1\n  maxconn 4096\n\n\
         defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  \
         timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  \
         timeout http-keep-alive 75s\n\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\n\
         backend be\n  server up 127.0.0.1:{upstream}\n"
    );
    let path = work.file("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let mut command = Pinning::command(cpu, "haproxy");
    command.arg("-db").arg("-f").arg(&path);
    Proc::spawn("haproxy", command, &work.file("haproxy.log"))
}

fn write_router_config(
    work: &WorkDir,
    name: &str,
    port: u16,
    admin: u16,
    upstream: u16,
    extra: &str,
) -> Result<PathBuf> {
    let extra: String = extra.lines().map(|line| format!("  {line}\n")).collect();
    let conf = format!(
        "admin:\n  ip: 127.0.0.1\n  port: {admin}\n\
         routers:\n- protocol: http\n  dtab: \"/svc => /$/inet/127.0.0.1/{upstream}\"\n\
         {extra}  servers:\n  - ip: 127.0.0.1\n    port: {port}\n"
    );
    let path = work.file(&format!("{name}.yaml"));
    std::fs::write(&path, conf)?;
    Ok(path)
}

fn start_router(
    work: &WorkDir,
    bin: &Path,
    name: &str,
    config: &Path,
    cpu: Option<&str>,
) -> Result<Proc> {
    let mut command = Pinning::command(cpu, bin);
    command.arg(config);
    Proc::spawn(name, command, &work.file(&format!("{name}.log")))
}

// ---------------------------------------------------------------------------
// wrk

/// What one `wrk --latency` run reported.
#[derive(Debug, Clone, Default)]
struct WrkRun {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
}

/// `645.51us`, `1.50ms`, `2.00s`, `1.00m` as microseconds.
fn parse_duration_us(text: &str) -> Option<f64> {
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

fn parse_wrk(output: &str) -> Result<WrkRun> {
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

/// Runs `wrk` against `addr`; samples the target group's resident memory
/// while it runs. Returns the run and the highest RSS seen (KiB).
fn run_wrk(
    work: &WorkDir,
    cpu: Option<&str>,
    addr: SocketAddr,
    connections: u32,
    secs: u64,
    target_group: u32,
) -> Result<(WrkRun, u64)> {
    let log = work.file("wrk.out");
    let mut command = Pinning::command(cpu, "wrk");
    command.args([
        "-t1".to_string(),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        "--latency".to_string(),
        format!("http://{addr}/"),
    ]);
    let mut wrk = Proc::spawn("wrk", command, &log)?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let mut peak = 0;
    let status = loop {
        peak = peak.max(group_rss_kib(target_group));
        if let Some(status) = wrk.child.try_wait()? {
            wrk.stopped = true;
            unregister(wrk.pid());
            break status;
        }
        if Instant::now() >= deadline {
            bail!("wrk did not finish within {secs} s + 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log)?;
    if !status.success() {
        bail!("wrk failed ({status}):\n{output}");
    }
    Ok((parse_wrk(&output)?, peak))
}

// ---------------------------------------------------------------------------
// Statistics and output

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// The median of per-request CPU figures, or a dash when there are none
/// (not pinned).
fn fmt_opt_us(values: &[f64]) -> String {
    if values.is_empty() {
        "–".into()
    } else {
        format!("{:.1}", median(values))
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One proxy under test and its measurements.
struct Proxy {
    name: &'static str,
    addr: SocketAddr,
    proc: Proc,
    runs: Vec<WrkRun>,
    cpu_us_per_request: Vec<f64>,
    /// Whole-CPU busy time per request on the proxy's CPU and on the CPU
    /// of `wrk` and the upstream (when pinned).
    proxy_cpu_us_per_request: Vec<f64>,
    load_cpu_us_per_request: Vec<f64>,
    peak_rss_kib: u64,
}

impl Proxy {
    fn median_of(&self, f: impl Fn(&WrkRun) -> f64) -> f64 {
        median(&self.runs.iter().map(f).collect::<Vec<_>>())
    }
}

struct Verdict {
    what: String,
    target: String,
    measured: String,
    met: bool,
}

fn verdict(what: &str, target: &str, measured: String, met: bool) -> Verdict {
    Verdict {
        what: what.into(),
        target: target.into(),
        measured,
        met,
    }
}

// ---------------------------------------------------------------------------

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    for tool in ["nginx", "haproxy", "wrk"] {
        let found = Command::new(tool)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            bail!("{tool} is not installed (apt-get install -y nginx haproxy wrk)");
        }
    }
    install_signal_handler()?;
    let work = WorkDir::create(args.keep)?;
    let router_extra = match &args.router_extra {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => String::new(),
    };
    let router_bin = match &args.router_bin {
        Some(path) => path.clone(),
        None => build_router()?,
    };
    let pin = Pinning::detect(args.no_pin);
    let ticks = clock_ticks_per_sec();
    eprintln!("router: {}", router_bin.display());
    eprintln!("pinning: {}", pin.note);

    // The upstream.
    let upstream_port = free_port()?;
    let mut upstream = start_upstream(&work, upstream_port, pin.load)?;
    wait_for_ok(
        &mut upstream,
        loopback(upstream_port),
        Instant::now(),
        Duration::from_secs(10),
    )?;

    // Start to first routed request, on a fresh router each time.
    let mut starts = Vec::new();
    for trial in 0..args.start_trials {
        let port = free_port()?;
        let config = write_router_config(
            &work,
            "router-start",
            port,
            free_port()?,
            upstream_port,
            &router_extra,
        )?;
        let started = Instant::now();
        let mut router = start_router(&work, &router_bin, "router-start", &config, pin.proxy)?;
        let elapsed = wait_for_ok(
            &mut router,
            loopback(port),
            started,
            Duration::from_secs(10),
        )?;
        router.stop();
        eprintln!(
            "start to first routed request, trial {}: {:.1} ms",
            trial + 1,
            elapsed.as_secs_f64() * 1e3
        );
        starts.push(elapsed.as_secs_f64() * 1e3);
    }

    // The proxies.
    let (router_port, haproxy_port, nginx_port) = (free_port()?, free_port()?, free_port()?);
    let config = write_router_config(
        &work,
        "router",
        router_port,
        free_port()?,
        upstream_port,
        &router_extra,
    )?;
    let router = start_router(&work, &router_bin, "router", &config, pin.proxy)?;
    let haproxy = start_haproxy(&work, haproxy_port, upstream_port, pin.proxy)?;
    let nginx = start_nginx_proxy(&work, nginx_port, upstream_port, pin.proxy)?;
    let mut proxies: Vec<Proxy> = [
        ("router", router_port, router),
        ("HAProxy", haproxy_port, haproxy),
        ("nginx", nginx_port, nginx),
    ]
    .into_iter()
    .map(|(name, port, proc)| Proxy {
        name,
        addr: loopback(port),
        proc,
        runs: Vec::new(),
        cpu_us_per_request: Vec::new(),
        proxy_cpu_us_per_request: Vec::new(),
        load_cpu_us_per_request: Vec::new(),
        peak_rss_kib: 0,
    })
    .collect();
    for proxy in &mut proxies {
        wait_for_ok(
            &mut proxy.proc,
            proxy.addr,
            Instant::now(),
            Duration::from_secs(10),
        )?;
    }
    let router_pid = proxies[0].proc.pid();
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = status_kib(router_pid, "VmRSS").unwrap_or(0);
    eprintln!(
        "router idle RSS after start and one request: {:.1} MiB",
        mib(idle_rss)
    );

    if args.warmup > 0 {
        for proxy in &mut proxies {
            eprintln!("warm-up: {} for {} s", proxy.name, args.warmup);
            run_wrk(
                &work,
                pin.load,
                proxy.addr,
                args.connections,
                args.warmup,
                proxy.proc.pid(),
            )?;
            proxy.proc.check_running()?;
        }
    }

    let n = proxies.len();
    for round in 0..args.rounds as usize {
        for k in 0..n {
            let proxy = &mut proxies[(round + k) % n];
            let group = proxy.proc.pid();
            let cpu_before = group_cpu_ticks(group);
            let busy_before = (
                pin.proxy.and_then(cpu_busy_ticks),
                pin.load.and_then(cpu_busy_ticks),
            );
            let (result, peak) = run_wrk(
                &work,
                pin.load,
                proxy.addr,
                args.connections,
                args.duration,
                group,
            )?;
            let cpu_secs = group_cpu_ticks(group).saturating_sub(cpu_before) as f64 / ticks;
            let busy_us = |before: Option<u64>, cpu: Option<&str>| -> Option<f64> {
                let spent = cpu_busy_ticks(cpu?)?.saturating_sub(before?) as f64 / ticks;
                (result.requests > 0).then(|| spent * 1e6 / result.requests as f64)
            };
            let proxy_cpu_us = busy_us(busy_before.0, pin.proxy);
            let load_cpu_us = busy_us(busy_before.1, pin.load);
            proxy.proc.check_running()?;
            eprintln!(
                "round {}: {:<8} {:>9.0} rps  p50 {:>9}  p99 {:>9}  CPU {:.0} %{}{}",
                round + 1,
                proxy.name,
                result.rps,
                fmt_us(result.p50_us),
                fmt_us(result.p99_us),
                100.0 * cpu_secs / args.duration as f64,
                match (proxy_cpu_us, load_cpu_us) {
                    (Some(p), Some(l)) =>
                        format!("  whole-CPU µs/request: proxy's {p:.1}, load's {l:.1}"),
                    _ => String::new(),
                },
                if result.non_2xx + result.socket_errors > 0 {
                    format!(
                        "  ({} non-2xx, {} socket errors)",
                        result.non_2xx, result.socket_errors
                    )
                } else {
                    String::new()
                }
            );
            if result.requests > 0 {
                proxy
                    .cpu_us_per_request
                    .push(cpu_secs * 1e6 / result.requests as f64);
            }
            proxy.proxy_cpu_us_per_request.extend(proxy_cpu_us);
            proxy.load_cpu_us_per_request.extend(load_cpu_us);
            proxy.peak_rss_kib = proxy.peak_rss_kib.max(peak);
            proxy.runs.push(result);
        }
    }

    let router_hwm = status_kib(router_pid, "VmHWM").unwrap_or(0);
    let router_peak_sampled = proxies[0].peak_rss_kib;
    std::thread::sleep(Duration::from_secs(2));
    let router_after = status_kib(router_pid, "VmRSS").unwrap_or(0);

    // Report.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} rounds of `wrk -t1 -c{} -d{}s --latency` per proxy; medians of the rounds. {}.\n",
        args.rounds, args.connections, args.duration, pin.note
    );
    let _ = writeln!(
        out,
        "| Proxy | Requests/s | p50 | p99 | CPU µs / request | Proxy's CPU, µs / request | Load's CPU, µs / request | Requests/s by round |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for proxy in &proxies {
        let rounds: Vec<String> = proxy.runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.1} | {} | {} | {} |",
            proxy.name,
            proxy.median_of(|r| r.rps),
            fmt_us(proxy.median_of(|r| r.p50_us)),
            fmt_us(proxy.median_of(|r| r.p99_us)),
            median(&proxy.cpu_us_per_request),
            fmt_opt_us(&proxy.proxy_cpu_us_per_request),
            fmt_opt_us(&proxy.load_cpu_us_per_request),
            rounds.join(", ")
        );
    }
    let errors: u64 = proxies
        .iter()
        .flat_map(|p| &p.runs)
        .map(|r| r.non_2xx + r.socket_errors)
        .sum();
    let (router, haproxy, nginx) = (&proxies[0], &proxies[1], &proxies[2]);
    let ratio = |a: &Proxy, b: &Proxy, f: fn(&WrkRun) -> f64| a.median_of(f) / b.median_of(f);
    let by_round = |a: &Proxy, b: &Proxy, f: fn(&WrkRun) -> f64| -> String {
        a.runs
            .iter()
            .zip(&b.runs)
            .map(|(x, y)| format!("{:.2}", f(x) / f(y)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rps = |r: &WrkRun| r.rps;
    let p99 = |r: &WrkRun| r.p99_us;
    let _ = writeln!(out, "\n| Ratio | Of the medians | By round |");
    let _ = writeln!(out, "|---|---|---|");
    for (label, other) in [("HAProxy", haproxy), ("nginx", nginx)] {
        let _ = writeln!(
            out,
            "| router / {label}, requests/s | {:.2} | {} |",
            ratio(router, other, rps),
            by_round(router, other, rps)
        );
        let _ = writeln!(
            out,
            "| router / {label}, p99 | {:.2} | {} |",
            ratio(router, other, p99),
            by_round(router, other, p99)
        );
    }
    let _ = writeln!(
        out,
        "\nNon-2xx answers and socket errors, all runs: {errors}."
    );
    let start_median = median(&starts);
    let _ = writeln!(
        out,
        "Router memory: {:.1} MiB idle after start (VmRSS); {:.1} MiB peak (VmHWM), {:.1} MiB highest VmRSS sampled under load; {:.1} MiB 2 s after the load.",
        mib(idle_rss),
        mib(router_hwm),
        mib(router_peak_sampled),
        mib(router_after)
    );
    let _ = writeln!(
        out,
        "Peak RSS under load, others: HAProxy {:.1} MiB, nginx {:.1} MiB (master and worker).",
        mib(haproxy.peak_rss_kib),
        mib(nginx.peak_rss_kib)
    );
    if !starts.is_empty() {
        let mut sorted = starts.clone();
        sorted.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "Start to first routed request: median {start_median:.1} ms over {} starts (min {:.1}, max {:.1}).",
            starts.len(),
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }

    let rps_h = ratio(router, haproxy, rps);
    let rps_n = ratio(router, nginx, rps);
    let p99_h = ratio(router, haproxy, p99);
    let mut verdicts = vec![
        verdict(
            "requests/s vs nginx",
            "≥ 1.0×",
            format!("{rps_n:.2}×"),
            rps_n >= 1.0,
        ),
        verdict(
            "requests/s vs HAProxy",
            "≥ 0.8×",
            format!("{rps_h:.2}×"),
            rps_h >= 0.8,
        ),
        verdict(
            "p99 vs HAProxy",
            "≤ 1.5×",
            format!("{p99_h:.2}×"),
            p99_h <= 1.5,
        ),
        verdict(
            "RSS idle",
            "< 20 MiB",
            format!("{:.1} MiB", mib(idle_rss)),
            mib(idle_rss) < 20.0,
        ),
        verdict(
            "RSS under load (VmHWM)",
            "< 50 MiB",
            format!("{:.1} MiB", mib(router_hwm)),
            mib(router_hwm) < 50.0,
        ),
    ];
    if !starts.is_empty() {
        verdicts.push(verdict(
            "start to first routed request (median)",
            "< 100 ms",
            format!("{start_median:.1} ms"),
            start_median < 100.0,
        ));
    }
    let _ = writeln!(out, "\n| Target | Goal | Measured | Verdict |");
    let _ = writeln!(out, "|---|---|---|---|");
    for v in &verdicts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            v.what,
            v.target,
            v.measured,
            if v.met { "met" } else { "**missed**" }
        );
    }
    print!("{out}");

    if let Some(path) = &args.json {
        let proxies_json: Vec<serde_json::Value> = proxies
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "rps_median": p.median_of(|r| r.rps),
                    "p50_us_median": p.median_of(|r| r.p50_us),
                    "p99_us_median": p.median_of(|r| r.p99_us),
                    "cpu_us_per_request_median": median(&p.cpu_us_per_request),
                    "proxy_cpu_us_per_request_median": (!p.proxy_cpu_us_per_request.is_empty())
                        .then(|| median(&p.proxy_cpu_us_per_request)),
                    "load_cpu_us_per_request_median": (!p.load_cpu_us_per_request.is_empty())
                        .then(|| median(&p.load_cpu_us_per_request)),
                    "peak_rss_kib": p.peak_rss_kib,
                    "runs": p.runs.iter().map(|r| serde_json::json!({
                        "rps": r.rps, "p50_us": r.p50_us, "p99_us": r.p99_us,
                        "requests": r.requests, "non_2xx": r.non_2xx, "socket_errors": r.socket_errors,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let json = serde_json::json!({
            "duration_secs": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "pinning": pin.note,
            "proxies": proxies_json,
            "router": {
                "idle_rss_kib": idle_rss,
                "vm_hwm_kib": router_hwm,
                "peak_rss_sampled_kib": router_peak_sampled,
                "rss_after_load_kib": router_after,
                "start_to_first_request_ms": starts,
                "start_to_first_request_ms_median": if starts.is_empty() { serde_json::Value::Null } else { start_median.into() },
            },
            "verdicts": verdicts.iter().map(|v| serde_json::json!({
                "target": v.what, "goal": v.target, "measured": v.measured, "met": v.met,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    // Stop the proxies before the upstream.
    drop(proxies);
    drop(upstream);
    Ok(())
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
    fn durations_and_medians() {
        assert_eq!(parse_duration_us("2.00s"), Some(2e6));
        assert_eq!(parse_duration_us("12.5ms"), Some(12500.0));
        assert_eq!(parse_duration_us("3x"), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
