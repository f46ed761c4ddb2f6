//! Running the project's own binaries (namerd, namerctl, router) as child
//! processes, the way users run them.

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Binaries already brought up to date by this test process.
static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The path of a workspace binary in the debug profile, built (or found up
/// to date) by cargo once per test process, so a test never runs a stale
/// binary.
pub fn binary(package: &str, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", package, "--bin", name])
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build {name}: {e}"));
        assert!(status.success(), "building {name} failed");
        built.push(name.to_string());
    }
    path
}

/// A free TCP port on 127.0.0.1 (free when this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A running child process, killed when dropped.
pub struct Process {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args`, its stderr going to a log file in `dir`.
    pub fn start(binary: &Path, args: &[&str], dir: &Path) -> Process {
        let name = binary
            .file_name()
            .map_or("process".into(), |n| n.to_string_lossy().into_owned());
        let log = dir.join(format!("{name}-{}.log", free_port()));
        let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(binary)
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Process { child, name, log }
    }

    /// Starts `binary` with `args` and the environment variables `env`,
    /// its stderr read through a pipe (as a log collector reads it) and
    /// copied to a log file in `dir`.
    pub fn start_piped(binary: &Path, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Process {
        let name = binary
            .file_name()
            .map_or("process".into(), |n| n.to_string_lossy().into_owned());
        let log = dir.join(format!("{name}-{}.log", free_port()));
        let mut file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let mut child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let Some(mut stderr) = child.stderr.take() else {
            panic!("{name}: no stderr pipe");
        };
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match std::io::Read::read(&mut stderr, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let _ = std::io::Write::write_all(&mut file, &buf[..n]);
                    }
                }
            }
        });
        Process { child, name, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `addr` accepts connections, or panics with the log.
    pub fn wait_listening(&mut self, addr: SocketAddr) {
        if let Err(exited) = self.listening_or_exited(addr) {
            panic!("{exited}");
        }
    }

    /// Waits until `addr` accepts connections; `Err` saying how and with
    /// the log when the process exits first. Panics after 20 s.
    pub fn listening_or_exited(&mut self, addr: SocketAddr) -> Result<(), String> {
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening on {addr}:\n{}",
                    self.name,
                    self.log()
                ));
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} is not listening on {addr}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit status (at most 15 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{} did not stop on SIGTERM:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process at once (SIGKILL), like a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion.
pub fn run(binary: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, the
/// body with its `Content-Length`), as a plain client sends it: the status
/// (0 when there was no answer) and the body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("cannot send to {addr}: {e}"));
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A tiny HTTP/1.1 backend that answers `hello from <name>` on every
/// request of a keep-alive connection.
// Test support: a backend that cannot listen is a broken test.
#[allow(clippy::expect_used)]
pub fn hello_backend(name: &'static str) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a backend binds 127.0.0.1:0");
    let addr = listener.local_addr().expect("the backend's address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let Ok(read_half) = stream.try_clone() else {
                    return;
                };
                let mut reader = std::io::BufReader::new(read_half);
                let mut writer = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let text = format!("hello from {name}\n");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if writer.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
