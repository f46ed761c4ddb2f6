//! What the `*_scale` examples share: the fake run in a child process and
//! driven over its stdin, the addresses of services and endpoints, and the
//! measurement itself (bind every service, RSS before and after, the
//! latency of a change to a live binding, and the watches left after the
//! bindings are dropped). Each example keeps only its namer and its fake.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, Path};
use namers::system::{SystemNamers, inet::InetResolver};
use namers::{Activity, Addr, Binding, Bound, Interpreter, NameInterpreter, Namer};

pub(crate) type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The endpoints' port.
pub(crate) const PORT: u16 = 8080;

/// The numeric argument `arg`, or `default` when it is absent.
pub(crate) fn number(arg: Option<&String>, default: usize) -> Result<usize> {
    Ok(arg.map(|a| a.parse()).transpose()?.unwrap_or(default))
}

pub(crate) fn service_name(i: usize) -> String {
    format!("svc{i}")
}

/// A distinct IPv4 address for endpoint `j` of service `i` (up to 250
/// endpoints per service, 64,000 services).
pub(crate) fn address(i: usize, j: usize) -> String {
    format!("10.{}.{}.{}", i / 256, i % 256, j % 250 + 1)
}

/// A distinct IPv4 address, unlike any of [`address`], for the `n`th
/// endpoint added to service `i` (up to 25,000).
pub(crate) fn added_address(i: usize, n: usize) -> String {
    format!("{}.{}.{}.{}", 11 + n / 250, i / 256, i % 256, n % 250 + 1)
}

/// The child's side: prints the fake's `port`, then hands each command
/// read from stdin, split into words, to `apply` until stdin closes.
pub(crate) async fn serve_commands(
    port: u16,
    mut apply: impl FnMut(&[&str]) -> Result<()>,
) -> Result<()> {
    println!("port {port}");
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        apply(&words)?;
    }
    Ok(())
}

/// The resident set size of this process, in KiB.
fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("bad VmRSS line")?
        .parse()?)
}

/// The fake, run by this same example with `--serve` in a child process.
pub(crate) struct Fake {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    /// The command that asks for the fake's figure of open watches.
    figure: &'static str,
}

impl Fake {
    /// Starts the child with `--serve` and `args`; `figure` is the command
    /// that asks it for its open watches.
    pub(crate) fn start(args: &[usize], figure: &'static str) -> Result<(Fake, u16)> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("--serve");
        command.args(args.iter().map(usize::to_string));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .ok_or_else(|| format!("unexpected {line:?}"))?
            .parse()?;
        Ok((
            Fake {
                child,
                stdin,
                stdout,
                figure,
            },
            port,
        ))
    }

    fn send(&mut self, command: &str) -> Result<()> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn open_watches(&mut self) -> Result<usize> {
        self.send(self.figure)?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().parse()?)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn leaf(binding: &Binding) -> Option<Bound> {
    match &*binding.load() {
        Activity::Ok(dtab::NameTree::Leaf(bound)) => Some(bound.clone()),
        _ => None,
    }
}

fn endpoint_count(bound: &Bound) -> usize {
    match &*bound.addr.load() {
        Addr::Bound(set) => set.endpoints().len(),
        _ => 0,
    }
}

/// The namer under test, as the measurement needs it.
pub(crate) trait Measured {
    fn namer(&self) -> Arc<dyn Namer>;
    fn active_watches(&self) -> u64;
    /// Its counters, for an error message.
    fn stats(&self) -> String;
}

/// One run: what to bind, and what the figures are called.
pub(crate) struct Scale {
    pub(crate) endpoints: usize,
    pub(crate) changes: usize,
    pub(crate) prefix: Path,
    pub(crate) dtab: Dtab,
    /// One path per service.
    pub(crate) paths: Vec<Path>,
    /// What the namer's watches are, e.g. `namespace watches`.
    pub(crate) watches: &'static str,
    /// What the fake's figure counts, e.g. `blocking queries in flight`.
    pub(crate) fake_figure: &'static str,
}

impl Scale {
    /// Builds the namer with `build` and measures it against `fake`. The
    /// fake's `add <service> <n>` command adds endpoint `n` to a service.
    pub(crate) async fn measure<N: Measured>(
        self,
        mut fake: Fake,
        build: impl FnOnce() -> Result<N>,
    ) -> Result<()> {
        let Scale {
            endpoints,
            changes,
            prefix,
            dtab,
            paths,
            watches,
            fake_figure,
        } = self;
        let services = paths.len();
        let inet = Arc::new(InetResolver::system()?);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib()?;

        let measured = build()?;
        let interpreter =
            Interpreter::new(vec![(prefix, measured.namer())], SystemNamers::new(inet));
        let started = Instant::now();
        let bindings: Vec<Binding> = paths.iter().map(|p| interpreter.bind(&dtab, p)).collect();
        let mut bound: Vec<Option<Bound>> = vec![None; services];
        loop {
            let mut done = 0;
            for (slot, binding) in bound.iter_mut().zip(&bindings) {
                if slot.is_none() {
                    *slot = leaf(binding);
                }
                if slot
                    .as_ref()
                    .is_some_and(|b| endpoint_count(b) == endpoints)
                {
                    done += 1;
                }
            }
            if done == services {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(format!("only {done} of {services} bound after 120 s").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bind_time = started.elapsed();
        let bound: Vec<Bound> = bound.into_iter().flatten().collect();
        // Let every watch settle.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib()?;
        let open = fake.open_watches()?;

        let mut latencies = Vec::with_capacity(changes);
        for k in 0..changes {
            let i = (k * 7919) % services;
            let mut addr = bound[i].addr.clone();
            addr.mark_seen();
            let expected = endpoint_count(&bound[i]) + 1;
            let sent = Instant::now();
            fake.send(&format!("add {i} {k}"))?;
            while endpoint_count(&bound[i]) < expected {
                tokio::time::timeout(Duration::from_secs(10), addr.changed())
                    .await
                    .map_err(|_| {
                        format!(
                            "change {k}: service {i} did not change within 10 s: {}",
                            measured.stats()
                        )
                    })?;
            }
            latencies.push(sent.elapsed());
        }
        latencies.sort();
        let at = |q: f64| {
            let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies.get(index).copied().unwrap_or_default()
        };
        let total = services * endpoints;
        println!("bound {services} services ({total} endpoints) in {bind_time:?}");
        println!(
            "namer RSS: {before} KiB before, {after} KiB after: +{} KiB ({:.1} KiB per service, {:.2} KiB per endpoint)",
            after.saturating_sub(before),
            after.saturating_sub(before) as f64 / services as f64,
            after.saturating_sub(before) as f64 / total as f64,
        );
        println!(
            "{watches}: {} active, {open} {fake_figure} at the fake",
            measured.active_watches()
        );
        println!(
            "change -> live binding over {changes} changes: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        );
        drop(bindings);
        drop(bound);
        let ended = Instant::now();
        while measured.active_watches() > 0 && ended.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The fake sees each watch end when its connection does.
        let mut open = fake.open_watches()?;
        while open > 0 && ended.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            open = fake.open_watches()?;
        }
        println!(
            "after dropping every binding: {} {watches} active, {open} {fake_figure} ({:?} later)",
            measured.active_watches(),
            ended.elapsed()
        );
        Ok(())
    }
}
