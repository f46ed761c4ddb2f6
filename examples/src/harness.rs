//! Pieces the example harnesses share: release binaries, child processes
//! that die with the harness, tiny backends, ports and work directories.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// A backend in this process that can be killed: its port closes and its
/// open connections are dropped at once, as when its process dies.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    killed: tokio::sync::watch::Sender<bool>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Backend {
    /// Starts a backend answering every request with `name`.
    pub async fn start(name: &'static str) -> Result<Backend> {
        Backend::answering(name, hyper::StatusCode::OK, Duration::ZERO).await
    }

    /// Starts a backend answering every request with `status` and `body`
    /// after `delay`, as a healthy, failing or slow server would.
    pub async fn answering(
        body: &'static str,
        status: hyper::StatusCode,
        delay: Duration,
    ) -> Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (killed, mut on_kill) = tokio::sync::watch::channel(false);
        let connections = killed.subscribe();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = on_kill.wait_for(|k| *k) => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => return,
                    },
                };
                let mut on_kill = connections.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_| {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        async move {
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let mut response = hyper::Response::new(Full::new(Bytes::from_static(
                                body.as_bytes(),
                            )));
                            *response.status_mut() = status;
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let serve = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = on_kill.wait_for(|k| *k) => {}
                        _ = serve => {}
                    }
                });
            }
        });
        Ok(Backend {
            addr,
            killed,
            requests,
        })
    }

    /// How many requests it has received.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes the port and drops every open connection.
    pub fn kill(&self) {
        self.killed.send_replace(true);
    }
}

/// A child process, killed when dropped.
pub struct ChildProcess(Child);

impl ChildProcess {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// How it exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// Starts `command` with its output in `log`.
    pub fn spawn(command: &mut Command, log: &Path) -> Result<ChildProcess> {
        let out = std::fs::File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        Ok(ChildProcess(child))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `port`.
pub async fn wait_listening(port: u16) -> Result<()> {
    let limit = Duration::from_secs(10);
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A port nothing listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh work directory named after `what` and this process.
pub fn tempdir(what: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Builds the release binaries and returns the directory holding them.
pub fn build() -> Result<PathBuf> {
    eprintln!("building: cargo build --release -p namerd -p router");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "namerd", "-p", "router"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release -p namerd -p router failed ({status})");
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the directory of this program")?;
    Ok(dir.to_path_buf())
}

/// Builds the release router alone and returns the path of its binary.
pub fn build_router() -> Result<PathBuf> {
    eprintln!("building the router: cargo build --release -p router");
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "router",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !output.status.success() {
        bail!("cargo build --release -p router failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "router"
            && message["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo built no router binary")
}

/// Whether `program -v` runs, i.e. the program is installed.
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether `taskset` can pin processes here.
pub fn taskset_works() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program` run on CPU `cpu` through `taskset` (which execs it, so the
/// child's pid is the program's), or as is when `cpu` is `None`.
pub fn pinned_command(cpu: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (state first,
/// then ppid, pgrp, …; utime and stime are at 11 and 12).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The unit of the CPU times in `/proc`.
pub fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU time, in clock ticks, of `pid` and its live
/// descendants (an nginx master and its worker).
pub fn tree_cpu_ticks(pid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let procs: Vec<(u32, Vec<String>)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, stat_fields(p)?)))
        .collect();
    let mut tree = vec![pid];
    // Parents come before children in no particular order; repeat until
    // no new descendant turns up.
    loop {
        let before = tree.len();
        for (p, fields) in &procs {
            let parent = fields.get(1).and_then(|v| v.parse::<u32>().ok());
            if !tree.contains(p) && parent.is_some_and(|pp| tree.contains(&pp)) {
                tree.push(*p);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    procs
        .iter()
        .filter(|(p, _)| tree.contains(p))
        .map(|(_, f)| {
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            field(11) + field(12)
        })
        .sum()
}

pub use integration::servers::nginx::{http_conf as nginx_http_conf, main_conf as nginx_main_conf};

/// A child process in a process group of its own, the whole group killed
/// when dropped: a master that forks workers (nginx) leaves none behind,
/// as a worker outlives a master killed alone.
pub struct ProcessGroup(ChildProcess);

impl ProcessGroup {
    /// Starts `command` as the leader of a new group, its output in `log`.
    pub fn spawn(command: &mut Command, log: &Path) -> Result<ProcessGroup> {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
        Ok(ProcessGroup(ChildProcess::spawn(command, log)?))
    }

    /// The leader's process id, which is also the group id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// How the leader exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.exited()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SIGTERM first, so that a master stops and reaps its workers;
        // SIGKILL for whatever is left after 2 s.
        signal_group(self.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        signal_group(self.id(), "KILL");
        // The ChildProcess inside then reaps the leader.
    }
}

/// Sends `signal` to the process group `pgid` with `kill(1)`: the
/// workspace forbids the unsafe code a libc call needs.
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
