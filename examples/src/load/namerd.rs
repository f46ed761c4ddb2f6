//! The control plane as child processes: a release `namerd` with the
//! embedded disk store and the namers a run needs, routers that bind
//! through it, and what `/proc` says they hold and spend.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::keepalive;
use super::probe::{free_port, loopback};
use super::procs::{Proc, WorkDir};
use super::sys::status_kib;
use crate::harness::stat_fields;

/// A running namerd: its HTTP API, mesh (gRPC) interface and admin port.
pub struct Namerd {
    /// The process.
    pub proc: Proc,
    /// `io.l5d.httpController`.
    pub api: SocketAddr,
    /// `io.l5d.mesh`.
    pub mesh: SocketAddr,
    /// The admin port (`/admin/metrics.json`).
    pub admin: SocketAddr,
}

impl Namerd {
    /// Starts `<bin_dir>/namerd` with the disk store in the work directory,
    /// the namers of `namers_yaml` (the YAML list under `namers:`), and its
    /// HTTP and mesh interfaces; returns once both accept connections.
    pub async fn start(work: &WorkDir, bin_dir: &Path, namers_yaml: &str) -> Result<Namerd> {
        let (api, mesh, admin) = (free_port()?, free_port()?, free_port()?);
        let config = format!(
            "admin:\n  ip: 127.0.0.1\n  port: {admin}\n\
             storage:\n  kind: io.switchboard.disk\n  dir: {}\n\
             namers:\n{namers_yaml}\
             interfaces:\n\
             - kind: io.l5d.httpController\n  ip: 127.0.0.1\n  port: {api}\n\
             - kind: io.l5d.mesh\n  ip: 127.0.0.1\n  port: {mesh}\n",
            work.file("store").display(),
        );
        let path = work.file("namerd.yaml");
        std::fs::write(&path, config)?;
        let mut command = Command::new(bin_dir.join("namerd"));
        command.arg(&path);
        let mut proc = Proc::spawn("namerd", command, &work.file("namerd.log"))?;
        for port in [api, mesh, admin] {
            crate::harness::wait_listening(port).await?;
        }
        proc.check_running()?;
        Ok(Namerd {
            proc,
            api: loopback(api),
            mesh: loopback(mesh),
            admin: loopback(admin),
        })
    }

    /// Creates or replaces the dtab of `namespace` with `PUT`.
    pub async fn put_dtab(&self, namespace: &str, dtab: &str) -> Result<()> {
        let (status, body) = keepalive::call(
            self.api,
            hyper::Method::PUT,
            &format!("/api/1/dtabs/{namespace}"),
            Some("application/dtab"),
            dtab.to_string(),
        )
        .await?;
        if !(200..300).contains(&status) {
            bail!("PUT dtab {namespace}: status {status}: {body}");
        }
        Ok(())
    }

    /// Watch streams namerd is serving now over HTTP
    /// (`http/stream/response/pending`, summed over its interfaces).
    pub async fn open_http_streams(&self) -> Result<f64> {
        let metrics = keepalive::metrics(self.admin).await?;
        Ok(keepalive::metric_sum(
            &metrics,
            "http/stream/response/pending",
        ))
    }
}

/// Which namerd interpreter routers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InterpreterKind {
    /// `io.l5d.namerd.http`: a streaming HTTP/1.1 watch per binding and
    /// per address, each on a connection of its own.
    Http,
    /// `io.l5d.mesh`: gRPC streams over one HTTP/2 connection.
    Mesh,
}

impl InterpreterKind {
    /// The `kind` in a router's config.
    pub fn kind(self) -> &'static str {
        match self {
            InterpreterKind::Http => "io.l5d.namerd.http",
            InterpreterKind::Mesh => "io.l5d.mesh",
        }
    }

    /// The router's `interpreter:` block for `namerd`, namespace `default`.
    fn block(self, namerd: &Namerd) -> String {
        match self {
            InterpreterKind::Http => format!(
                "    kind: io.l5d.namerd.http\n    dst: /$/inet/127.0.0.1/{}\n    namespace: default\n",
                namerd.api.port()
            ),
            InterpreterKind::Mesh => format!(
                "    kind: io.l5d.mesh\n    dst: /$/inet/127.0.0.1/{}\n    root: /default\n",
                namerd.mesh.port()
            ),
        }
    }
}

/// A router binding through namerd.
pub struct NamerdRouter {
    /// The process.
    pub proc: Proc,
    /// Its HTTP server.
    pub addr: SocketAddr,
    /// Its admin port.
    pub admin: SocketAddr,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
}

/// The routers' log filter: what namerd sends them is logged (debug) with
/// the time it came.
pub const ROUTER_LOG_FILTER: &str = "info,router::interpreter::remote=debug";

/// Starts router `name` (`<bin_dir>/router`), one HTTP server, binding
/// through `namerd` with `kind`, with room in its binding cache for
/// `names` names; does not wait for it to listen.
pub fn spawn_router(
    work: &WorkDir,
    bin_dir: &Path,
    name: &str,
    namerd: &Namerd,
    kind: InterpreterKind,
    names: usize,
) -> Result<NamerdRouter> {
    let (port, admin) = (free_port()?, free_port()?);
    // Room for every name, so that none is evicted and re-bound.
    let cache = names.max(1000) + 100;
    let config = format!(
        "admin:\n  ip: 127.0.0.1\n  port: {admin}\n\
         routers:\n- protocol: http\n  label: {name}\n\
         \x20 bindingCache:\n    paths: {cache}\n    clients: {cache}\n\
         \x20 interpreter:\n{}\
         \x20 servers:\n  - ip: 127.0.0.1\n    port: {port}\n",
        kind.block(namerd),
    );
    let path = work.file(&format!("{name}.yaml"));
    std::fs::write(&path, config)?;
    let mut command = Command::new(bin_dir.join("router"));
    command.arg(&path);
    // Each tree and address namerd sends is logged with the time it came,
    // for timing updates from the router's side.
    command.env("RUST_LOG", ROUTER_LOG_FILTER);
    let log = work.file(&format!("{name}.log"));
    let proc = Proc::spawn(name, command, &log)?;
    Ok(NamerdRouter {
        log,
        proc,
        addr: loopback(port),
        admin: loopback(admin),
    })
}

impl NamerdRouter {
    /// Waits until the router's server and admin port accept connections.
    pub async fn wait_ready(&mut self) -> Result<()> {
        for port in [self.addr.port(), self.admin.port()] {
            if let Err(e) = crate::harness::wait_listening(port).await {
                self.proc.check_running()?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Bind and address watches its interpreter holds open, from its
    /// metrics (`interpreter/<kind>/watches/open`).
    pub async fn open_watches(&self) -> Result<f64> {
        let metrics = keepalive::metrics(self.admin).await?;
        Ok(keepalive::metric_sum(&metrics, "/watches/open"))
    }
}

/// Resident memory of a process, in MiB (0 when it is gone).
pub fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0
}

/// Peak resident memory of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0
}

/// The open-file limit the children inherit (this process's soft limit).
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The CPU seconds a set of processes spent between two readings.
pub struct CpuMeter {
    pids: Vec<u32>,
    start: u64,
    started: Instant,
    ticks_per_sec: f64,
}

impl CpuMeter {
    /// Starts counting the CPU of the processes `pids` (every thread).
    pub fn start(pids: Vec<u32>) -> CpuMeter {
        let start = cpu_ticks(&pids);
        CpuMeter {
            pids,
            start,
            started: Instant::now(),
            ticks_per_sec: crate::harness::clock_ticks_per_sec(),
        }
    }

    /// CPU seconds spent since the start, and the wall time.
    pub fn read(&self) -> (f64, Duration) {
        let now = cpu_ticks(&self.pids);
        (
            now.saturating_sub(self.start) as f64 / self.ticks_per_sec,
            self.started.elapsed(),
        )
    }
}

/// User plus system clock ticks of `pids`, summed.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&pid| stat_fields(pid))
        .map(|f| {
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            field(11) + field(12)
        })
        .sum()
}

/// Writes `contents` to `path` as an editor saves it: a temporary file in
/// the same directory, renamed over the old one.
pub fn replace_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp-save");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
