//! `tcp_loadtest`: the router's `protocol: tcp` splicing connections,
//! measured side by side with HAProxy in `mode tcp`, in one run.
//!
//! It starts an echo server (this program, `echo-server`, hidden) as the
//! backend, then the router (one `tcp` server with a `dstName` bound to
//! the echo server) and HAProxy (one thread, `mode tcp`) in front of it.
//! Pinning is as in `loadtest`: the proxies on CPU 1, the echo server and
//! the load on CPU 0.
//!
//! Two loads, each run against every proxy in turn, round after round
//! (the order of the proxies rotates every round):
//!
//! - `per-connection`: each of 50 loops connects, sends 64 bytes, reads
//!   their echo, half-closes and reads until the proxy closes; then again.
//!   This is what a TCP proxy pays per connection: an accept, a connect to
//!   the backend, a few reads and writes, two closes. Connections/s and
//!   CPU per connection.
//! - `bulk`: 50 long connections, each writing 16 KiB chunks and reading
//!   the echo at the same time. Throughput (MB/s echoed, i.e. each byte
//!   crosses the proxy twice) and CPU per MB.
//!
//! The load runs in a child of this program (`client`, hidden), pinned to
//! the load's CPU, that prints its figures as JSON. CPU is read from
//! `/proc` for the proxy's process group (user plus system) and for the
//! whole proxy CPU (kernel network work included).
//!
//! Needs `haproxy` on the `PATH` (and `taskset` for pinning). Run it from
//! the repository:
//!
//! ```sh
//! cargo run --release -p examples --bin tcp_loadtest -- --duration 10 --rounds 3
//! ```

mod load;
mod report;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use examples::harness::{build_router, clock_ticks_per_sec, installed};
use examples::load::probe::{free_port, loopback};
use examples::load::procs::{Proc, WorkDir, install_signal_handler, log_tail, run_json_client};
use examples::load::report::median;
use examples::load::servers::start_router;
use examples::load::sys::{Pinning, UsageMeter};

use load::{ClientLoad, ClientRun, Mode};

/// Compares the router's TCP proxying with HAProxy in `mode tcp`.
#[derive(Parser, Debug)]
#[command(about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    child: Option<Sub>,
    #[command(flatten)]
    args: Args,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// The backend: echoes every connection until killed.
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        addr: SocketAddr,
    },
    /// The load, run as a child pinned to the load's CPU; prints its
    /// result as JSON.
    #[command(hide = true)]
    Client(ClientArgs),
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    connections: u32,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    secs: u64,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Seconds of each measured run (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round runs every load against every proxy
    /// once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Connections open at once (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Bytes sent (and echoed) per connection in the per-connection load
    /// (1 to 65536).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    request_size: u64,
    /// Bytes per write in the bulk load (1 to 1048576).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    chunk_size: u64,
    /// Seconds of the unmeasured warm-up of each load and proxy (0 to 60).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// The loads to run, in this order.
    #[arg(long, value_delimiter = ',', default_value = "per-connection,bulk")]
    loads: Vec<Mode>,
    /// Use this router binary instead of running
    /// `cargo build --release -p router`.
    #[arg(long)]
    router_bin: Option<PathBuf>,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Keep the work directory (configs and logs).
    #[arg(long)]
    keep: bool,
}

impl Args {
    fn size(&self, mode: Mode) -> usize {
        let size = match mode {
            Mode::PerConnection => self.request_size,
            Mode::Bulk => self.chunk_size,
        };
        usize::try_from(size).unwrap_or(usize::MAX)
    }
}

/// One measured run of one load against one proxy.
#[derive(Debug, Clone)]
struct Sample {
    /// Connections/s, or MB/s echoed.
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    first_error: Option<String>,
    /// The proxy's own CPU time per unit (connection or MB), µs.
    cpu_us: Option<f64>,
    /// Busy time of the proxy's CPU and of the load's CPU per unit, µs.
    proxy_core_us: Option<f64>,
    load_core_us: Option<f64>,
    /// The proxy's CPU time over the run's length, percent of one core.
    cpu_pct: f64,
    peak_rss_kib: u64,
}

/// One proxy under test and its runs, one list per load.
struct Proxy {
    name: &'static str,
    addr: SocketAddr,
    proc: Proc,
    samples: Vec<Vec<Sample>>,
}

impl Proxy {
    fn median_opt(&self, load: usize, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.samples[load].iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(&values))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.child {
        Some(Sub::EchoServer { addr }) => load::echo_server(*addr),
        Some(Sub::Client(client)) => client_child(client),
        None => run(&cli.args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn client_child(args: &ClientArgs) -> Result<()> {
    let run = load::run_client(ClientLoad {
        addr: args.addr,
        mode: args.mode,
        connections: args.connections,
        size: args.size,
        duration: Duration::from_secs(args.secs),
    })?;
    println!("{}", run.to_json());
    Ok(())
}

/// Everything a measured run needs besides the proxy.
struct Bench<'a> {
    work: &'a WorkDir,
    pin: &'a Pinning,
    ticks: f64,
    args: &'a Args,
}

impl Bench<'_> {
    /// Runs `mode` against `proxy` for `secs` and says what it cost.
    fn measure(&self, proxy: &mut Proxy, mode: Mode, secs: u64) -> Result<Sample> {
        let group = proxy.proc.pid();
        let meter = UsageMeter::start(group, self.pin);
        let (run, peak) = self.run_client(proxy.addr, mode, secs, group)?;
        let usage = meter.stop(self.ticks);
        proxy.proc.check_running()?;
        let units = match mode {
            Mode::PerConnection => run.connections as f64,
            Mode::Bulk => run.echoed_bytes as f64 / 1e6,
        };
        let per = |secs: Option<f64>| secs.filter(|_| units > 0.0).map(|s| s * 1e6 / units);
        Ok(Sample {
            rate: units / run.secs,
            p50_us: run.p50_us,
            p99_us: run.p99_us,
            errors: run.errors,
            first_error: run.first_error,
            cpu_us: per(Some(usage.group_secs)),
            proxy_core_us: per(usage.proxy_cpu_secs),
            load_core_us: per(usage.load_cpu_secs),
            cpu_pct: 100.0 * usage.group_secs / run.secs,
            peak_rss_kib: peak,
        })
    }

    /// Starts this program's client on the load's CPU; samples the RSS of
    /// `target_group` while it runs.
    fn run_client(
        &self,
        addr: SocketAddr,
        mode: Mode,
        secs: u64,
        target_group: u32,
    ) -> Result<(ClientRun, u64)> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut command = Pinning::command(self.pin.load, exe);
        command
            .arg("client")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--mode")
            .arg(match mode {
                Mode::PerConnection => "per-connection",
                Mode::Bulk => "bulk",
            })
            .arg("--connections")
            .arg(self.args.connections.to_string())
            .arg("--size")
            .arg(self.args.size(mode).to_string())
            .arg("--secs")
            .arg(secs.to_string());
        let log = self.work.file("client.out");
        let (result, peak) = run_json_client("client", command, &log, secs, target_group)?;
        Ok((ClientRun::from_json(&result)?, peak))
    }
}

fn run(args: &Args) -> Result<()> {
    if !installed("haproxy") {
        bail!(
            "haproxy is not installed: tcp_loadtest measures the router beside HAProxy in mode tcp \
             (apt-get install -y haproxy)"
        );
    }
    if args.loads.is_empty() {
        bail!("--loads names no load");
    }
    install_signal_handler()?;
    let work = WorkDir::create("switchboard-tcp-loadtest", args.keep)?;
    let router_bin = match &args.router_bin {
        Some(path) => path.clone(),
        None => build_router()?,
    };
    let pin = Pinning::detect(args.no_pin);
    let ticks = clock_ticks_per_sec();
    eprintln!("router: {}", router_bin.display());
    eprintln!("pinning: {}", pin.note);

    let echo_port = free_port()?;
    let mut echo = start_echo(&work, echo_port, pin.load)?;
    wait_for_echo(&mut echo, loopback(echo_port))?;

    let mut proxies = start_proxies(&work, &router_bin, &pin, echo_port, args)?;
    for proxy in &mut proxies {
        let addr = proxy.addr;
        wait_for_echo(&mut proxy.proc, addr)?;
    }

    let bench = Bench {
        work: &work,
        pin: &pin,
        ticks,
        args,
    };
    if args.warmup > 0 {
        for &mode in &args.loads {
            for proxy in &mut proxies {
                eprintln!(
                    "warm-up: {}, {} for {} s",
                    report::load_name(mode),
                    proxy.name,
                    args.warmup
                );
                bench.measure(proxy, mode, args.warmup)?;
            }
        }
    }

    let n = proxies.len();
    for round in 0..args.rounds as usize {
        for (l, &mode) in args.loads.iter().enumerate() {
            for k in 0..n {
                let proxy = &mut proxies[(round + k) % n];
                let sample = bench.measure(proxy, mode, args.duration)?;
                eprintln!(
                    "round {}: {}",
                    round + 1,
                    report::progress_line(proxy.name, mode, &sample)
                );
                proxy.samples[l].push(sample);
            }
        }
    }

    print!("{}", report::report(args, &pin, &proxies));

    // Stop the proxies before the backend.
    drop(proxies);
    drop(echo);
    Ok(())
}

/// The echo backend: this program, pinned to the load's CPU.
fn start_echo(work: &WorkDir, port: u16, cpu: Option<&str>) -> Result<Proc> {
    let exe = std::env::current_exe().context("finding this program")?;
    let mut command = Pinning::command(cpu, exe);
    command
        .arg("echo-server")
        .arg("--addr")
        .arg(loopback(port).to_string());
    Proc::spawn("echo server", command, &work.file("echo.log"))
}

/// The router and HAProxy, both forwarding to the echo server.
fn start_proxies(
    work: &WorkDir,
    router_bin: &Path,
    pin: &Pinning,
    echo: u16,
    args: &Args,
) -> Result<Vec<Proxy>> {
    let router_port = free_port()?;
    let config = write_router_config(work, router_port, free_port()?, echo)?;
    let haproxy_port = free_port()?;
    let started = vec![
        (
            "router",
            router_port,
            start_router(work, router_bin, "router", &config, pin.proxy)?,
        ),
        (
            "HAProxy",
            haproxy_port,
            start_haproxy_tcp(work, haproxy_port, echo, pin.proxy)?,
        ),
    ];
    Ok(started
        .into_iter()
        .map(|(name, port, proc)| Proxy {
            name,
            addr: loopback(port),
            proc,
            samples: vec![Vec::new(); args.loads.len()],
        })
        .collect())
}

/// One `tcp` router whose server names every connection `/svc/echo`,
/// bound to the echo server.
fn write_router_config(work: &WorkDir, port: u16, admin: u16, echo: u16) -> Result<PathBuf> {
    let conf = format!(
        "admin:\n  ip: 127.0.0.1\n  port: {admin}\n\
         routers:\n- protocol: tcp\n  label: tcp\n  dtab: \"/svc => /$/inet/127.0.0.1/{echo}\"\n  \
         servers:\n  - ip: 127.0.0.1\n    port: {port}\n    dstName: /svc/echo\n"
    );
    let path = work.file("router.yaml");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// HAProxy with one thread in `mode tcp`.
fn start_haproxy_tcp(work: &WorkDir, port: u16, echo: u16, cpu: Option<&str>) -> Result<Proc> {
    let conf = format!(
        "global\n  nbthread 1\n  maxconn 4096\n\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  \
         timeout server 30s\n\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\n\
         backend be\n  server echo 127.0.0.1:{echo}\n"
    );
    let path = work.file("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let mut command = Pinning::command(cpu, "haproxy");
    command.arg("-db").arg("-f").arg(&path);
    Proc::spawn("haproxy", command, &work.file("haproxy.log"))
}

/// Polls `addr` until a connection echoes a line back, for up to 10 s.
fn wait_for_echo(proc: &mut Proc, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = match echo_once(addr) {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        };
        proc.check_running()?;
        if Instant::now() >= deadline {
            bail!(
                "{} at {addr} did not echo within 10 s (last: {last}); end of {}:\n{}",
                proc.name(),
                proc.log().display(),
                log_tail(proc.log())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn echo_once(addr: SocketAddr) -> std::io::Result<()> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"ping\n")?;
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply)?;
    if &reply != b"ping\n" {
        return Err(std::io::Error::other(format!("echoed {reply:?}")));
    }
    Ok(())
}
