//! How one `io.l5d.k8s` namer copes with many services: binds 1,000
//! services of 10 endpoints each through the interpreter, against the
//! in-process fake of the Kubernetes API server (`integration::k8s`) run in
//! a child process so that its memory is not counted, then reports the
//! namer's memory (RSS delta) and how long a change of Endpoints takes to
//! reach a live binding once the fake has it. The services are spread over
//! `namespaces` namespaces (one watch each).
//!
//! ```text
//! cargo run --release -p namers --example k8s_scale [services] [endpoints] [changes] [namespaces]
//! ```

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, Path};
use integration::k8s::{Endpoints, FakeKube, Service, TargetPort};
use namers::k8s::K8sConfig;
use namers::system::{SystemNamers, inet::InetResolver};
use namers::{Activity, Addr, Binding, Bound, Interpreter, NameInterpreter, Namer};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The endpoints' port.
const PORT: u16 = 8080;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("--serve") {
        let services = number(args.get(1), 1000)?;
        let endpoints = number(args.get(2), 10)?;
        let namespaces = number(args.get(3), 1)?;
        return runtime.block_on(serve(services, endpoints, namespaces));
    }
    let services = number(args.first(), 1000)?;
    let endpoints = number(args.get(1), 10)?;
    let changes = number(args.get(2), 200)?;
    let namespaces = number(args.get(3), 1)?.max(1);
    runtime.block_on(measure(services, endpoints, changes, namespaces))
}

fn number(arg: Option<&String>, default: usize) -> Result<usize> {
    Ok(arg.map(|a| a.parse()).transpose()?.unwrap_or(default))
}

fn service_name(i: usize) -> String {
    format!("svc{i}")
}

fn namespace(i: usize, namespaces: usize) -> String {
    format!("ns{}", i % namespaces.max(1))
}

/// The Endpoints object of service `i` with these ready addresses.
fn endpoints_of(i: usize, namespaces: usize, addresses: &[String]) -> Endpoints {
    let mut eps = Endpoints::new(&namespace(i, namespaces), &service_name(i));
    for (n, ip) in addresses.iter().enumerate() {
        eps = eps.ready(ip, Some(&format!("node{}", n % 10)));
    }
    eps.port(Some("http"), PORT)
}

/// A distinct IPv4 address for endpoint `j` of service `i` (up to 250
/// endpoints per service, 64,000 services).
fn address(i: usize, j: usize) -> String {
    format!("10.{}.{}.{}", i / 256, i % 256, j % 250 + 1)
}

/// A distinct IPv4 address, unlike any of [`address`], for the `n`th
/// endpoint added to service `i` (up to 25,000).
fn added_address(i: usize, n: usize) -> String {
    format!("{}.{}.{}.{}", 11 + n / 250, i / 256, i % 256, n % 250 + 1)
}

/// The child: runs the fake with every service in place, prints its port,
/// then applies commands read from stdin (`add <service> <n>`, `watches`)
/// until stdin closes.
async fn serve(services: usize, endpoints: usize, namespaces: usize) -> Result<()> {
    let fake = FakeKube::start().await?;
    let mut addresses: Vec<Vec<String>> = Vec::with_capacity(services);
    for i in 0..services {
        let ns = namespace(i, namespaces);
        let name = service_name(i);
        fake.apply_service(&Service::new(&ns, &name).port(
            Some("http"),
            80,
            TargetPort::Number(PORT),
        ));
        let ips: Vec<String> = (0..endpoints).map(|j| address(i, j)).collect();
        fake.apply_endpoints(&endpoints_of(i, namespaces, &ips));
        addresses.push(ips);
    }
    println!("port {}", fake.addr().port());
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
        match words.as_slice() {
            ["add", service, n] => {
                let i: usize = service.parse()?;
                let n: usize = n.parse()?;
                let ips = addresses.get_mut(i).ok_or("no such service")?;
                ips.push(added_address(i, n));
                fake.apply_endpoints(&endpoints_of(i, namespaces, ips));
            }
            ["watches"] => println!("{}", fake.open_watches()),
            _ => return Err(format!("unknown command {line:?}").into()),
        }
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

struct Fake {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Fake {
    fn start(services: usize, endpoints: usize, namespaces: usize) -> Result<(Fake, u16)> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--serve",
                &services.to_string(),
                &endpoints.to_string(),
                &namespaces.to_string(),
            ])
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
        self.send("watches")?;
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

async fn measure(
    services: usize,
    endpoints: usize,
    changes: usize,
    namespaces: usize,
) -> Result<()> {
    println!(
        "starting the fake with {services} services x {endpoints} endpoints in {namespaces} namespace(s)"
    );
    let (mut fake, port) = Fake::start(services, endpoints, namespaces)?;

    let inet = Arc::new(InetResolver::system()?);
    let prefix = Path::read("/#/io.l5d.k8s")?;
    let config: K8sConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
    }))?;
    let dtab = Dtab::read("/svc => /#/io.l5d.k8s")?;
    let paths: Vec<Path> = (0..services)
        .map(|i| {
            let ns = namespace(i, namespaces);
            Path::read(&format!("/svc/{ns}/http/{}", service_name(i)))
        })
        .collect::<std::result::Result<_, _>>()?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib()?;

    let namer = config.build(prefix.clone())?;
    let interpreter = Interpreter::new(
        vec![(prefix, namer.clone() as Arc<dyn Namer>)],
        SystemNamers::new(inet),
    );
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
                        "change {k}: service {i} did not change within 10 s: {:?}",
                        namer.stats()
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
        "namespace watches: {} active, {open} watch streams open at the fake",
        namer.active_watches()
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
    while namer.active_watches() > 0 && ended.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The fake sees each stream close when its connection does.
    let mut open = fake.open_watches()?;
    while open > 0 && ended.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        open = fake.open_watches()?;
    }
    println!(
        "after dropping every binding: {} watches active, {open} watch streams open ({:?} later)",
        namer.active_watches(),
        ended.elapsed()
    );
    Ok(())
}
