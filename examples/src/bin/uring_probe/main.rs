//! `uring_probe`: what io_uring would take off the CPU a proxied request
//! costs, measured rather than estimated.
//!
//! Two forwarders that differ only in their kernel interface (see
//! `forward.rs`): `forward-epoll` (tokio: readiness from epoll, then
//! `recv`/`send` per socket) and `forward-uring` (tokio-uring: reads and
//! writes submitted to a ring and reaped in batches). Neither routes or
//! parses more than the framing; they are the floor of a proxy's
//! user-space work. Beside them run the router and nginx, on the same
//! nginx upstream, loaded in turn by `wrk` with keep-alive `GET`s exactly
//! as `loadtest --scenario get` does (proxies on CPU 1, upstream and load
//! on CPU 0, rounds rotating the order).
//!
//! The ratio `forward-uring / forward-epoll` is what moving the same work
//! from epoll to io_uring saves; `forward-epoll / router` is how much of
//! the router's CPU per request is its own work rather than the kernel's.
//!
//! ```sh
//! cargo run --release -p examples --bin uring_probe -- --rounds 3 --duration 10
//! ```

mod forward;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use examples::harness::{build_router, clock_ticks_per_sec, installed};
use examples::load::probe::{free_port, loopback, wait_for_ok};
use examples::load::procs::{Proc, WorkDir, install_signal_handler};
use examples::load::report::fmt_us;
use examples::load::rounds::{Bench, Contender, Outcome, Role, run_scenario};
use examples::load::scenario::Scenario;
use examples::load::servers::{
    RouterConfig, start_nginx_proxy, start_router, start_upstream, write_router_config,
};
use examples::load::sys::Pinning;

/// Compares an epoll and an io_uring forwarder with the router and nginx.
#[derive(Parser, Debug)]
#[command(about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    child: Option<Sub>,
    #[command(flatten)]
    args: Args,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Seconds of each measured `wrk` run (1 to 120).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    duration: u64,
    /// Measured rounds; each round runs every contender once (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// `wrk` connections (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Seconds of the unmeasured warm-up run of each contender (0 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// Use this router binary instead of running `cargo build --release -p router`.
    #[arg(long)]
    router_bin: Option<PathBuf>,
    /// Do not pin processes to CPUs.
    #[arg(long)]
    no_pin: bool,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// (Internal) one of the forwarders.
    #[command(hide = true)]
    Forward {
        /// Which kernel interface it uses.
        #[arg(long, value_enum)]
        mode: Mode,
        /// Where it listens.
        #[arg(long)]
        listen: SocketAddr,
        /// Where it forwards.
        #[arg(long)]
        upstream: SocketAddr,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Mode {
    Epoll,
    Uring,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.child {
        Some(Sub::Forward {
            mode,
            listen,
            upstream,
        }) => match mode {
            Mode::Epoll => forward::epoll::run(listen, upstream),
            #[cfg(target_os = "linux")]
            Mode::Uring => forward::uring::run(listen, upstream),
            #[cfg(not(target_os = "linux"))]
            Mode::Uring => Err(std::io::Error::other("io_uring is Linux's")),
        }
        .context("forwarding"),
        None => run(&cli.args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uring_probe: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    for tool in ["nginx", "wrk"] {
        if !installed(tool) {
            bail!("{tool} is not installed (apt-get install -y nginx wrk)");
        }
    }
    install_signal_handler()?;
    let work = WorkDir::create("switchboard-uring-probe", false)?;
    let router_bin = match &args.router_bin {
        Some(path) => path.clone(),
        None => build_router()?,
    };
    let pin = Pinning::detect(args.no_pin);
    eprintln!("pinning: {}", pin.note);
    let this = std::env::current_exe().context("finding this program")?;

    let upstream_port = free_port()?;
    let mut upstream = start_upstream(&work, upstream_port, pin.load)?;
    wait_for_ok(
        &mut upstream,
        loopback(upstream_port),
        Instant::now(),
        Duration::from_secs(10),
    )?;

    let forwarder = |name: &'static str, mode: &str| -> Result<Contender> {
        let port = free_port()?;
        let mut command = Pinning::command(pin.proxy, &this);
        command
            .args(["forward", "--mode", mode, "--listen"])
            .arg(loopback(port).to_string())
            .arg("--upstream")
            .arg(loopback(upstream_port).to_string());
        let proc = Proc::spawn(name, command, &work.file(&format!("{name}.log")))?;
        Ok(contender(name, Role::Peer, port, proc))
    };
    let router_port = free_port()?;
    let config = write_router_config(
        &work,
        "router",
        &RouterConfig {
            port: router_port,
            admin: free_port()?,
            upstream: upstream_port,
            extra: "",
            tls: None,
        },
    )?;
    let mut router = contender(
        "router",
        Role::Router,
        router_port,
        start_router(&work, &router_bin, "router", &config, pin.proxy)?,
    );
    let nginx_port = free_port()?;
    let mut nginx = contender(
        "nginx",
        Role::Peer,
        nginx_port,
        start_nginx_proxy(&work, nginx_port, upstream_port, pin.proxy, None)?,
    );
    let mut epoll = forwarder("forward-epoll", "epoll")?;
    let mut uring = forwarder("forward-uring", "uring")?;
    for contender in [&mut router, &mut nginx, &mut epoll, &mut uring] {
        wait_for_ok(
            &mut contender.proc,
            contender.addr,
            Instant::now(),
            Duration::from_secs(10),
        )?;
    }

    let bench = Bench {
        work: &work,
        pin: &pin,
        ticks: clock_ticks_per_sec(),
        connections: args.connections,
        upstream: loopback(upstream_port),
    };
    let outcome = run_scenario(
        &bench,
        Scenario::Get,
        &mut [&mut router, &mut nginx, &mut epoll, &mut uring],
        args.rounds,
        args.duration,
        args.warmup,
    )?;
    print!("{}", table(&outcome, args, &pin)?);
    drop((router, nginx, epoll, uring));
    drop(upstream);
    Ok(())
}

fn contender(name: &'static str, role: Role, port: u16, proc: Proc) -> Contender {
    Contender {
        name,
        role,
        addr: loopback(port),
        proc,
        scrape: None,
    }
}

/// The medians of the rounds, with each contender's CPU per request over
/// the epoll forwarder's and the router's.
fn table(outcome: &Outcome, args: &Args, pin: &Pinning) -> Result<String> {
    use std::fmt::Write as _;
    let cpu = |name: &str| -> Result<f64> {
        let row = outcome
            .row(name)
            .with_context(|| format!("no figures for {name}"))?;
        Ok(row.cpu_us())
    };
    let (epoll, router) = (cpu("forward-epoll")?, cpu("router")?);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} rounds of `wrk -t1 -c{} -d{}s --latency` keep-alive `GET /` (2-byte answer) \
         per contender; medians of the rounds. {}.\n",
        args.rounds, args.connections, args.duration, pin.note
    );
    let _ = writeln!(
        out,
        "| Contender | Requests/s | p99 | CPU µs / request | / forward-epoll | / router | Errors |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for row in &outcome.rows {
        let us = row.cpu_us();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.1} | {:.2} | {:.2} | {} |",
            row.name,
            row.median_of(|s| s.wrk.rps),
            fmt_us(row.median_of(|s| s.wrk.p99_us)),
            us,
            us / epoll,
            us / router,
            row.errors()
        );
    }
    let by_round: Vec<String> = outcome
        .row("forward-uring")
        .zip(outcome.row("forward-epoll"))
        .map(|(u, e)| {
            u.samples
                .iter()
                .zip(&e.samples)
                .filter_map(|(u, e)| Some(format!("{:.2}", u.cpu_us? / e.cpu_us?)))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\nforward-uring / forward-epoll, CPU µs / request, by round: {}",
        by_round.join(", ")
    );
    Ok(out)
}
