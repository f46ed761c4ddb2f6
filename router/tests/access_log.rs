//! Access logs as logrotate sees them: the file moved away, then SIGHUP
//! (here `reopen_all`, what the binary calls on SIGHUP) makes the router
//! write a new file at the path; and the real binary survives SIGHUP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, Uri, Version};
use router::access_log::{self, AccessEntry, AccessLog, AccessLogSettings};
use router::identify::Protocol;

fn get(log: &AccessLog, target: &str) {
    let uri: Uri = target.parse().unwrap();
    log.record(&AccessEntry {
        host: Some(b"web"),
        remote: None,
        method: &Method::GET,
        uri: &uri,
        version: Version::HTTP_11,
        status: 200,
        content_length: None,
        referer: None,
        user_agent: None,
    });
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn access_log_reopen_all_follows_logrotate_s_create_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = AccessLog::open(&AccessLogSettings::new("web", Protocol::Http, &path)).unwrap();
    get(&log, "/before");
    log.flush().await;

    // logrotate: rename, then `postrotate kill -HUP`.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    assert!(access_log::reopen_all() >= 1);
    get(&log, "/after");
    log.flush().await;

    let before = lines(&rotated);
    let after = lines(&path);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before[0].contains("\"GET /before HTTP/1.1\" 200 -"),
        "{before:?}"
    );
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].starts_with("web 0.0.0.0 - - ["), "{after:?}");
    assert!(
        after[0].contains("\"GET /after HTTP/1.1\" 200 -"),
        "{after:?}"
    );
    assert_eq!((log.written(), log.dropped()), (2, 0));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Polls `done` every few milliseconds until it holds, or panics after
/// `limit` with `what`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// Kills the router if a test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A backend answering `200` with `hi` to every request, on a thread.
fn backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    // The head ends with an empty line; requests have no body.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
                    if stream.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// One GET through the router; the status line.
fn request(router: SocketAddr, target: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(router).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "GET {target} HTTP/1.1\r\nHost: web\r\nUser-Agent: test-agent\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

/// Checks one line against Linkerd's format, all but the time.
fn assert_line(line: &str, target: &str) {
    let (before, after) = line.split_once(" [").unwrap_or_else(|| panic!("{line}"));
    assert_eq!(before, "web 127.0.0.1 - -", "{line}");
    let (time, rest) = after.split_once("] ").unwrap();
    assert!(
        time.ends_with(" UTC") && time.len() == "06/12/2026:13:00:00 UTC".len(),
        "{line}"
    );
    assert_eq!(
        rest,
        format!("\"GET {target} HTTP/1.1\" 200 2 \"-\" \"test-agent\""),
        "{line}"
    );
}

#[test]
fn access_log_sighup_reopens_and_the_router_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let web = backend();
    let config = dir.path().join("router.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{ip: 127.0.0.1, port: {admin}}}
routers:
- protocol: http
  dtab: /svc => /$/inet/127.0.0.1/{web};
  httpAccessLog: {}
  servers:
  - ip: 127.0.0.1
    port: {port}
",
            dir.path().join("logs/access.log").display()
        ),
    )
    .unwrap();
    let stderr_path = dir.path().join("router.stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut router = Running(
        Command::new(env!("CARGO_BIN_EXE_router"))
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    wait_until(Duration::from_secs(30), "the router to listen", || {
        if let Ok(Some(status)) = router.0.try_wait() {
            panic!("the router exited ({status}):\n{}", log());
        }
        TcpStream::connect(addr).is_ok()
    });

    let access = dir.path().join("logs/access.log");
    assert!(request(addr, "/first?x=1").starts_with("HTTP/1.1 200"));
    wait_until(Duration::from_secs(10), "the first line", || {
        lines(&access).len() == 1
    });
    assert_line(&lines(&access)[0], "/first?x=1");

    // logrotate's create mode: the file is moved away, then SIGHUP. One
    // signal at a time: signals sent together may arrive as one.
    let rotated = dir.path().join("logs/access.log.1");
    std::fs::rename(&access, &rotated).unwrap();
    for n in 1..=2 {
        signal(&router.0, "HUP");
        wait_until(Duration::from_secs(10), "\"reopening access logs\"", || {
            log().matches("reopening access logs").count() == n
        });
    }
    assert!(request(addr, "/second").starts_with("HTTP/1.1 200"));
    wait_until(Duration::from_secs(10), "a line in the new file", || {
        lines(&access).len() == 1
    });
    assert_line(&lines(&access)[0], "/second");
    assert_eq!(lines(&rotated).len(), 1, "the moved file got no more lines");
    assert!(
        router.0.try_wait().unwrap().is_none(),
        "SIGHUP ended the router:\n{}",
        log()
    );
    assert!(
        TcpStream::connect(addr).is_ok(),
        "not listening after SIGHUP"
    );

    // SIGTERM still stops it cleanly.
    signal(&router.0, "TERM");
    let mut status = None;
    wait_until(Duration::from_secs(20), "the router to stop", || {
        status = router.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}:\n{}",
        log()
    );
}
