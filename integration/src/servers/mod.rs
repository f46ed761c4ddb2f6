//! Real ZooKeeper, etcd, nginx and dnsmasq servers for tests, each on
//! 127.0.0.1 with an ephemeral port and a temporary data dir, killed when
//! dropped.
//!
//! The servers come from the Debian packages (`zookeeper`, `etcd-server`,
//! `nginx`, `dnsmasq-base`).
//! When a package is missing, `start()` prints a `SKIPPED:` line to stderr
//! and returns `None`, so a test can return early; with `CI=true` a missing
//! server is a failure instead, and `start()` panics.
//!
//! Start-up, stop and restart block the calling thread for up to a few
//! seconds; from async tests, use a multi-threaded runtime
//! (`#[tokio::test(flavor = "multi_thread")]`) so that other tasks keep
//! running meanwhile.

mod dnsmasq;
mod etcd;
pub mod nginx;
mod zookeeper;

pub use dnsmasq::Dnsmasq;
pub use etcd::Etcd;
pub use nginx::{Nginx, NginxServer};
pub use zookeeper::ZooKeeper;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to become ready before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a start is retried when its port was taken meanwhile.
const START_ATTEMPTS: usize = 4;

/// Whether missing servers are failures (`CI=true`) rather than skips.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports a missing server: a loud skip locally, a panic in CI.
pub(crate) fn missing(what: &str, install: &str, detail: &str) {
    report_missing(in_ci(), what, install, detail);
}

fn report_missing(ci: bool, what: &str, install: &str, detail: &str) {
    let message = format!(
        "{what} is not installed (apt-get install {install}); {detail}; \
         the tests that need it do not run"
    );
    if ci {
        panic!("{message}: a missing server is a failure in CI");
    }
    eprintln!("SKIPPED: {message}");
}

/// A port on 127.0.0.1 that was free a moment ago. Another process may take
/// it before the server binds it; callers retry with a fresh one.
fn free_port() -> u16 {
    match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).and_then(|l| l.local_addr())
    {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot bind 127.0.0.1:0 to pick a port: {e}"),
    }
}

/// The last lines of a server's log, for failure messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    lines[start..].join("\n")
}

/// A server process that is killed (and reaped) when dropped.
struct Process {
    child: Child,
}

impl Process {
    /// Starts `command` with its output appended to `log`.
    fn spawn(mut command: Command, log: &Path) -> Process {
        let out = open_log(log);
        let err = match out.try_clone() {
            Ok(f) => f,
            Err(e) => panic!("cannot duplicate the handle of {}: {e}", log.display()),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        match command.spawn() {
            Ok(child) => Process { child },
            Err(e) => panic!("cannot start {:?}: {e}", command.get_program()),
        }
    }

    /// Whether the process has exited.
    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process and waits for it to be gone. SIGKILL, like a crash:
    /// both servers have written every acknowledged write to disk.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn open_log(path: &Path) -> File {
    match File::options().create(true).append(true).open(path) {
        Ok(f) => f,
        Err(e) => panic!("cannot open the server log {}: {e}", path.display()),
    }
}

/// Why a start attempt failed.
enum StartError {
    /// The process exited early, probably because its port was taken.
    Exited,
    /// The process runs but did not become ready in time.
    NotReady,
}

/// Waits until `ready()` holds, the process exits, or the start timeout.
fn wait_ready(process: &mut Process, mut ready: impl FnMut() -> bool) -> Result<(), StartError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if process.exited() {
            return Err(StartError::Exited);
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StartError::NotReady);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory for one server: its data dir and its log.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new(prefix: &str) -> Workdir {
        match tempfile::Builder::new().prefix(prefix).tempdir() {
            Ok(dir) => Workdir { dir },
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

/// Whether an executable named `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::{Etcd, ZooKeeper};

    #[test]
    #[should_panic(expected = "etcd is not installed (apt-get install etcd-server); \
                               /usr/bin/etcd is missing; the tests that need it do not run: \
                               a missing server is a failure in CI")]
    fn a_missing_server_fails_in_ci() {
        super::report_missing(true, "etcd", "etcd-server", "/usr/bin/etcd is missing");
    }

    #[test]
    fn a_missing_server_is_a_skip_elsewhere() {
        super::report_missing(false, "etcd", "etcd-server", "/usr/bin/etcd is missing");
    }

    fn accepts(port: u16) -> bool {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    #[test]
    fn zookeeper_starts_stops_and_restarts_on_the_same_port() {
        let Some(mut zk) = ZooKeeper::start() else {
            return;
        };
        let port = zk.port();
        assert_eq!(zk.connect_string(), format!("127.0.0.1:{port}"));
        assert!(accepts(port));
        zk.stop();
        assert!(!zk.is_running());
        assert!(!accepts(port));
        zk.restart();
        assert_eq!(zk.port(), port);
        assert!(accepts(port));
        drop(zk);
        assert!(!accepts(port), "a dropped server must be gone");
    }

    #[test]
    fn etcd_starts_stops_and_restarts_on_the_same_port() {
        let Some(mut etcd) = Etcd::start() else {
            return;
        };
        let port = etcd.port();
        assert_eq!(etcd.endpoint(), format!("http://127.0.0.1:{port}"));
        assert!(accepts(port));
        etcd.stop();
        assert!(!etcd.is_running());
        assert!(!accepts(port));
        etcd.restart();
        assert_eq!(etcd.port(), port);
        assert!(accepts(port));
        drop(etcd);
        assert!(!accepts(port), "a dropped server must be gone");
    }
}
