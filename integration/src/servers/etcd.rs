//! A single-member etcd 3.4 cluster from the Debian package.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{
    Process, START_ATTEMPTS, StartError, Workdir, free_port, log_tail, missing, wait_ready,
};

/// Where the Debian package (`etcd-server`) puts the server.
const BINARY: &str = "/usr/bin/etcd";

/// An etcd server on 127.0.0.1, killed when dropped.
pub struct Etcd {
    work: Workdir,
    port: u16,
    peer_port: u16,
    process: Option<Process>,
}

impl Etcd {
    /// Starts a server on free client and peer ports and waits until
    /// `GET /health` says it is healthy. `None` (after a `SKIPPED:` line on
    /// stderr) when etcd is not installed; panics instead when `CI=true`, or
    /// when an installed server does not start.
    pub fn start() -> Option<Etcd> {
        if !Path::new(BINARY).is_file() {
            missing("etcd", "etcd-server", &format!("{BINARY} is missing"));
            return None;
        }
        let work = Workdir::new("etcd-");
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let peer_port = free_port();
            if port == peer_port {
                continue;
            }
            match launch(&work, port, peer_port) {
                Ok(process) => {
                    return Some(Etcd {
                        work,
                        port,
                        peer_port,
                        process: Some(process),
                    });
                }
                // Most likely someone took a port meanwhile: try others. A
                // failed first start may leave a half-made data dir behind.
                Err(StartError::Exited) => {
                    let _ = std::fs::remove_dir_all(work.data());
                    continue;
                }
                Err(StartError::NotReady) => fail(&work, port, "did not become healthy in time"),
            }
        }
        fail(&work, 0, "exited during start-up on every port tried")
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client URL: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the server is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the server (like a crash; its data stays). Does nothing if it
    /// is stopped already.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same ports and data dir (stopping it
    /// first if it runs) and waits until it is healthy.
    pub fn restart(&mut self) {
        self.stop();
        match launch(&self.work, self.port, self.peer_port) {
            Ok(process) => self.process = Some(process),
            Err(StartError::Exited) => fail(&self.work, self.port, "exited during restart"),
            Err(StartError::NotReady) => fail(
                &self.work,
                self.port,
                "did not become healthy after restart",
            ),
        }
    }

    /// The server's log (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        log_tail(&self.work.log())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fail(work: &Workdir, port: u16, why: &str) -> ! {
    panic!(
        "etcd on 127.0.0.1:{port} {why}; its log:\n{}",
        log_tail(&work.log())
    )
}

fn launch(work: &Workdir, port: u16, peer_port: u16) -> Result<Process, StartError> {
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut command = Command::new(BINARY);
    command
        .arg("--name=test")
        .arg(format!("--data-dir={}", work.data().display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=test={peer}"))
        .arg("--initial-cluster-state=new")
        .current_dir(work.path());
    let mut process = Process::spawn(command, &work.log());
    wait_ready(&mut process, || healthy(port))?;
    Ok(process)
}

/// `GET /health` answers `"health":"true"`. Every step has a timeout.
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(1));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains(r#""health":"true""#)
}
