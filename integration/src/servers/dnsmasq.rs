//! A dnsmasq DNS server (Debian `dnsmasq-base`) answering for the `test.`
//! domain from records a test gives.
//!
//! It listens on 127.0.0.1 (UDP and TCP) on an ephemeral port, reads no
//! `/etc/hosts` and no `/etc/resolv.conf`, and forwards nothing: names
//! under `test.` it does not know are NXDOMAIN, and names outside `test.`
//! are REFUSED. dnsmasq reads its SRV records only at start, so
//! [`Dnsmasq::set_records`] restarts it on the same port with the new ones.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{
    Process, START_ATTEMPTS, StartError, Workdir, free_port, log_tail, missing, wait_ready,
};

/// Where Debian's `dnsmasq-base` puts the server.
const BINARY: &str = "/usr/sbin/dnsmasq";

/// A dnsmasq server on 127.0.0.1, killed when dropped.
pub struct Dnsmasq {
    work: Workdir,
    binary: PathBuf,
    port: u16,
    process: Option<Process>,
}

impl Dnsmasq {
    /// Starts a server on a free port serving `records`: dnsmasq config
    /// lines such as `srv-host=_http._tcp.web.test,web-1.test,8080,0,10`
    /// and `host-record=web-1.test,127.0.0.1`. Waits until it answers.
    /// `None` (after a `SKIPPED:` line on stderr) when dnsmasq is not
    /// installed; panics instead when `CI=true`, or when it does not start.
    pub fn start(records: &str) -> Option<Dnsmasq> {
        let binary = if Path::new(BINARY).is_file() {
            PathBuf::from(BINARY)
        } else if super::on_path("dnsmasq") {
            PathBuf::from("dnsmasq")
        } else {
            missing("dnsmasq", "dnsmasq-base", &format!("{BINARY} is missing"));
            return None;
        };
        let work = Workdir::new("dnsmasq-");
        write_records(&work, records);
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match launch(&work, &binary, port) {
                Ok(process) => {
                    return Some(Dnsmasq {
                        work,
                        binary,
                        port,
                        process: Some(process),
                    });
                }
                // Most likely someone took the port meanwhile: try another.
                Err(StartError::Exited) => continue,
                Err(StartError::NotReady) => fail(&work, port, "did not answer in time"),
            }
        }
        fail(&work, 0, "exited during start-up on every port tried")
    }

    /// The port (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's address, as a `dnsHosts` entry takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the records: restarts the server on the same port with them.
    pub fn set_records(&mut self, records: &str) {
        self.stop();
        write_records(&self.work, records);
        self.restart();
    }

    /// Kills the server. Does nothing if it is stopped already.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same port (stopping it first if it
    /// runs) and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        match launch(&self.work, &self.binary, self.port) {
            Ok(process) => self.process = Some(process),
            Err(StartError::Exited) => fail(&self.work, self.port, "exited during restart"),
            Err(StartError::NotReady) => {
                fail(&self.work, self.port, "did not answer after restart")
            }
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        log_tail(&self.work.log())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fail(work: &Workdir, port: u16, why: &str) -> ! {
    panic!(
        "dnsmasq on 127.0.0.1:{port} {why}; its log:\n{}",
        log_tail(&work.log())
    )
}

fn write_records(work: &Workdir, records: &str) {
    let path = work.path().join("records.conf");
    if let Err(e) = std::fs::write(&path, records) {
        panic!("cannot write {}: {e}", path.display());
    }
}

/// Whether this process runs as root (dnsmasq then drops to another user
/// unless told to stay).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            == Some("0")
    })
}

fn launch(work: &Workdir, binary: &Path, port: u16) -> Result<Process, StartError> {
    let mut command = Command::new(binary);
    command
        .arg("--keep-in-foreground")
        .arg("--no-daemon")
        .arg("--log-queries")
        .arg(format!("--port={port}"))
        .arg("--listen-address=127.0.0.1")
        .arg("--bind-interfaces")
        .arg("--no-resolv")
        .arg("--no-hosts")
        .arg("--no-poll")
        .arg("--pid-file=")
        .arg("--local=/test/")
        .arg(format!(
            "--conf-file={}",
            work.path().join("records.conf").display()
        ))
        .current_dir(work.path());
    if running_as_root() {
        command.arg("--user=root");
    }
    let mut process = Process::spawn(command, &work.log());
    wait_ready(&mut process, || answers(port))?;
    Ok(process)
}

/// Whether the server answers a query (any answer will do).
fn answers(port: u16) -> bool {
    let Ok(socket) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    // A query for `ready.test. A`.
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["ready", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if socket.send_to(&query, server).is_err() {
        return false;
    }
    let mut answer = [0u8; 512];
    matches!(socket.recv_from(&mut answer), Ok((n, _)) if n >= 12 && answer[..2] == [0x12, 0x34])
}
