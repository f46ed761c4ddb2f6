//! `dtab_propagation`: how long a `namerctl dtab update` takes to change
//! where the router sends traffic.
//!
//! It starts the real `namerd` (embedded disk store, serving its HTTP,
//! thrift and mesh interfaces) and, for each namerd interpreter kind in
//! turn (`io.l5d.namerd.http`, `io.l5d.namerd`, `io.l5d.mesh`), a `router`
//! binary using it, and two backends in this process, `a` and `b`.
//! Each round rewrites namespace `default` with `namerctl dtab update`,
//! alternating `/svc/web` between the two backends, while a client sends
//! requests for `web` through the router back to back on one keep-alive
//! connection. A round's time runs from starting `namerctl` (or from its
//! exit, when namerd has stored the dtab) to the first response from the
//! new backend. It prints p50, p90, p99 and the worst of both.
//!
//! ```sh
//! cargo run --release -p examples --bin dtab_propagation -- --updates 100
//! cargo run --release -p examples --bin dtab_propagation -- --interpreters io.l5d.mesh
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use clap::Parser;
use examples::harness::{Backend, ChildProcess, build, free_port, tempdir, wait_listening};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Times `namerctl dtab update` → router routing.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// How many updates to time (1 to 10,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    updates: u32,
    /// The directory holding `namerd`, `namerctl` and `router`; by default
    /// they are built with `cargo build --release -p namerd -p router`.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The interpreter kinds to time, one router each, in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "io.l5d.namerd.http,io.l5d.namerd,io.l5d.mesh"
    )]
    interpreters: Vec<String>,
}

/// The longest a single update may take before the run fails.
const ROUND_LIMIT: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => build()?,
    };
    let work = tempdir("dtab-propagation")?;
    let result = run(&bin_dir, &work, args.updates, &args.interpreters).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run(bin_dir: &Path, work: &Path, updates: u32, kinds: &[String]) -> Result<()> {
    // Held until the end: a backend stops when dropped.
    let (backend_a, backend_b) = (Backend::start("a").await?, Backend::start("b").await?);
    let (a, b) = (backend_a.addr, backend_b.addr);

    let (http_port, thrift_port, mesh_port) = (free_port()?, free_port()?, free_port()?);
    let namerd_yaml = format!(
        "admin:\n  ip: 127.0.0.1\n  port: {}\nstorage:\n  kind: io.switchboard.disk\n  dir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  ip: 127.0.0.1\n  port: {http_port}\n- kind: io.l5d.thriftNameInterpreter\n  ip: 127.0.0.1\n  port: {thrift_port}\n- kind: io.l5d.mesh\n  ip: 127.0.0.1\n  port: {mesh_port}\n",
        free_port()?,
        work.join("store").display(),
    );
    std::fs::write(work.join("namerd.yaml"), namerd_yaml)?;
    let _namerd = ChildProcess::spawn(
        Command::new(bin_dir.join("namerd")).arg(work.join("namerd.yaml")),
        &work.join("namerd.log"),
    )?;
    for port in [http_port, thrift_port, mesh_port] {
        wait_listening(port).await?;
    }

    let base_url = format!("http://127.0.0.1:{http_port}");
    let dtab_file = work.join("dtab");
    std::fs::write(&dtab_file, dtab_to(a))?;
    namerctl(
        bin_dir,
        &base_url,
        &["dtab", "create", "default"],
        &dtab_file,
    )
    .await?;

    for kind in kinds {
        let (port, namespace) = match kind.as_str() {
            "io.l5d.namerd.http" => (http_port, "namespace: default"),
            "io.l5d.namerd" => (thrift_port, "namespace: default"),
            "io.l5d.mesh" => (mesh_port, "root: /default"),
            other => bail!("{other:?} is not a namerd interpreter kind"),
        };
        // The dtab routes web to `a` again before each kind's rounds.
        std::fs::write(&dtab_file, dtab_to(a))?;
        namerctl(
            bin_dir,
            &base_url,
            &["dtab", "update", "default"],
            &dtab_file,
        )
        .await?;
        let router_port = free_port()?;
        let router_yaml = format!(
            "admin:\n  ip: 127.0.0.1\n  port: {}\nrouters:\n- protocol: http\n  interpreter:\n    kind: {kind}\n    dst: /$/inet/127.0.0.1/{port}\n    {namespace}\n  servers:\n  - ip: 127.0.0.1\n    port: {router_port}\n",
            free_port()?,
        );
        let config = work.join(format!("router-{kind}.yaml"));
        std::fs::write(&config, router_yaml)?;
        let _router = ChildProcess::spawn(
            Command::new(bin_dir.join("router")).arg(&config),
            &work.join(format!("router-{kind}.log")),
        )?;
        wait_listening(router_port).await?;
        let rounds = Rounds {
            bin_dir,
            base_url: &base_url,
            dtab_file: &dtab_file,
            backends: (a, b),
        };
        rounds.time(kind, router_port, updates).await?;
    }
    Ok(())
}

/// What each round of updates needs.
struct Rounds<'a> {
    bin_dir: &'a Path,
    base_url: &'a str,
    dtab_file: &'a Path,
    backends: (SocketAddr, SocketAddr),
}

impl Rounds<'_> {
    /// Times `updates` rounds through the router on `router_port`.
    async fn time(&self, kind: &str, router_port: u16, updates: u32) -> Result<()> {
        let (a, b) = self.backends;
        let mut client = Client::connect(router_port).await?;
        let deadline = Instant::now() + ROUND_LIMIT;
        loop {
            let answer = client.get_web().await?;
            if answer == "a" {
                break;
            }
            if Instant::now() > deadline {
                bail!("{kind}: the router never routed web to backend a; it answered {answer:?}");
            }
        }
        let mut from_start = Vec::new();
        let mut from_ack = Vec::new();
        for round in 0..updates {
            let (target, name) = if round % 2 == 0 { (b, "b") } else { (a, "a") };
            std::fs::write(self.dtab_file, dtab_to(target))?;
            let started = Instant::now();
            namerctl(
                self.bin_dir,
                self.base_url,
                &["dtab", "update", "default"],
                self.dtab_file,
            )
            .await?;
            let acknowledged = Instant::now();
            loop {
                if client.get_web().await? == name {
                    break;
                }
                if started.elapsed() > ROUND_LIMIT {
                    bail!(
                        "{kind}: update {round}: web still not routed to {name} after {ROUND_LIMIT:?}"
                    );
                }
            }
            from_start.push(started.elapsed());
            from_ack.push(acknowledged.elapsed());
        }
        println!(
            "{updates} updates of /svc/web through namerctl, namerd (disk store) and a router with {kind}:"
        );
        report("namerctl started -> routed", &mut from_start);
        report("namerctl exited  -> routed", &mut from_ack);
        Ok(())
    }
}

fn dtab_to(backend: SocketAddr) -> String {
    format!("/svc/web => /$/inet/127.0.0.1/{};\n", backend.port())
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[index].as_secs_f64() * 1000.0
    };
    println!(
        "  {what}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

async fn namerctl(bin_dir: &Path, base_url: &str, args: &[&str], file: &Path) -> Result<()> {
    let status = tokio::process::Command::new(bin_dir.join("namerctl"))
        .arg("--base-url")
        .arg(base_url)
        .args(args)
        .arg(file)
        .stdout(Stdio::null())
        .status()
        .await
        .context("running namerctl")?;
    if !status.success() {
        bail!("namerctl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// One keep-alive connection to the router.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Client {
    async fn connect(port: u16) -> Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Client { sender })
    }

    /// Which backend answered a request for `web`, or the router's error
    /// (status and body).
    async fn get_web(&mut self) -> Result<String> {
        self.sender.ready().await?;
        let request = hyper::Request::get("/")
            .header(hyper::header::HOST, "web")
            .body(Empty::new())?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        Ok(if status.is_success() {
            body
        } else {
            format!("{status}: {body}")
        })
    }
}
