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

/// A backend answering every request with `name`.
pub async fn backend(name: &'static str) -> Result<SocketAddr> {
    Ok(Backend::start(name).await?.addr)
}

/// A backend in this process that can be killed: its port closes and its
/// open connections are dropped at once, as when its process dies.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    killed: tokio::sync::watch::Sender<bool>,
}

impl Backend {
    /// Starts a backend answering every request with `name`.
    pub async fn start(name: &'static str) -> Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (killed, mut on_kill) = tokio::sync::watch::channel(false);
        let connections = killed.subscribe();
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
                tokio::spawn(async move {
                    let service = service_fn(move |_| async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(name.as_bytes()),
                        )))
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
        Ok(Backend { addr, killed })
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
