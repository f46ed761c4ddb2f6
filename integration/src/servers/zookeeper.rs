//! A standalone ZooKeeper 3.8 server from the Debian package.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{
    Process, START_ATTEMPTS, StartError, Workdir, free_port, log_tail, missing, wait_ready,
};

/// Where the Debian package puts the server (its manifest names its deps).
const JAR: &str = "/usr/share/java/zookeeper.jar";

/// A ZooKeeper server on 127.0.0.1, killed when dropped.
pub struct ZooKeeper {
    work: Workdir,
    port: u16,
    process: Option<Process>,
}

impl ZooKeeper {
    /// Starts a server on a free port and waits until it answers `ruok`
    /// with `imok` and serves clients.
    /// `None` (after a `SKIPPED:` line on stderr) when ZooKeeper or Java is
    /// not installed; panics instead when `CI=true`, or when an installed
    /// server does not start.
    pub fn start() -> Option<ZooKeeper> {
        if !Path::new(JAR).is_file() {
            missing("ZooKeeper", "zookeeper", &format!("{JAR} is missing"));
            return None;
        }
        if !super::on_path("java") {
            missing("ZooKeeper", "zookeeper", "no `java` on PATH to run it");
            return None;
        }
        let work = Workdir::new("zookeeper-");
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match launch(&work, port) {
                Ok(process) => {
                    return Some(ZooKeeper {
                        work,
                        port,
                        process: Some(process),
                    });
                }
                // Most likely someone took the port meanwhile: try another.
                Err(StartError::Exited) => continue,
                Err(StartError::NotReady) => fail(&work, port, "did not answer `ruok` in time"),
            }
        }
        fail(&work, 0, "exited during start-up on every port tried")
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connect string for clients: `127.0.0.1:<port>`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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

    /// Starts the server again on the same port and data dir (stopping it
    /// first if it runs) and waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        match launch(&self.work, self.port) {
            Ok(process) => self.process = Some(process),
            Err(StartError::Exited) => fail(&self.work, self.port, "exited during restart"),
            Err(StartError::NotReady) => {
                fail(&self.work, self.port, "did not answer `ruok` after restart")
            }
        }
    }

    /// The server's log (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        log_tail(&self.work.log())
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fail(work: &Workdir, port: u16, why: &str) -> ! {
    panic!(
        "ZooKeeper on 127.0.0.1:{port} {why}; its log:\n{}",
        log_tail(&work.log())
    )
}

/// Writes the config for `port` and starts the server.
fn launch(work: &Workdir, port: u16) -> Result<Process, StartError> {
    let config = work.path().join("zoo.cfg");
    // A short tick so that tests may ask for short sessions; snapshots and
    // log files stay small; fsync is off because a killed process still
    // leaves its writes in the page cache.
    let text = format!(
        "tickTime=500\n\
         minSessionTimeout=1000\n\
         maxSessionTimeout=60000\n\
         dataDir={data}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=ruok,srvr\n\
         preAllocSize=1024\n\
         forceSync=no\n\
         maxClientCnxns=0\n",
        data = work.data().display(),
    );
    if let Err(e) =
        std::fs::create_dir_all(work.data()).and_then(|()| std::fs::write(&config, text))
    {
        panic!("cannot write {}: {e}", config.display());
    }
    let mut command = Command::new("java");
    command
        .args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            "-Dzookeeper.admin.enableServer=false",
            "-cp",
            JAR,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ])
        .arg(&config)
        .current_dir(work.path());
    let mut process = Process::spawn(command, &work.log());
    // `ruok` says the process is up; `srvr` says it serves sessions (before
    // that it answers "not currently serving requests" and drops clients).
    wait_ready(&mut process, || {
        four_letters(port, b"ruok").is_some_and(|a| a == "imok")
            && four_letters(port, b"srvr").is_some_and(|a| a.contains("Mode: standalone"))
    })?;
    Ok(process)
}

/// Sends a four-letter command and reads the answer. Every step has a
/// timeout: during start-up a connection can be accepted and never answered.
fn four_letters(port: u16, command: &[u8]) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    let timeout = Some(Duration::from_secs(1));
    stream.set_read_timeout(timeout).ok()?;
    stream.set_write_timeout(timeout).ok()?;
    stream.write_all(command).ok()?;
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    String::from_utf8(answer).ok()
}
