//! The real `router` binary in front of backend processes that fail in each
//! way a mesh is for: one answers 500, one is slow, one port refuses
//! connections, and a healthy one is killed in the middle of the traffic.
//! Reads must all succeed (retried, requeued, cut off by the attempt
//! timeout); a POST must never reach a backend twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use integration::process::{Process, binary, free_port};

/// One request on a fresh connection; (status, body). A POST carries a
/// small body.
fn send(router: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let body = if method == "POST" { "hello" } else { "" };
    integration::process::http(router, method, path, "web", &[], body)
}

/// What a backend process has served, asked of it directly.
fn served(backend: SocketAddr) -> u64 {
    let mut stream = TcpStream::connect(backend).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /__count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    raw.split_once("\r\n\r\n")
        .unwrap()
        .1
        .trim()
        .parse()
        .unwrap()
}

struct Backend {
    addr: SocketAddr,
    process: Process,
}

fn backend(dir: &std::path::Path, status: u16, delay_ms: u64, name: &str) -> Backend {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut process = Process::start(
        &binary("integration", "flaky_backend"),
        &[
            &port.to_string(),
            &status.to_string(),
            &delay_ms.to_string(),
            name,
        ],
        dir,
    );
    process.wait_listening(addr);
    Backend { addr, process }
}

#[test]
fn reads_survive_failing_slow_refusing_and_killed_backends_and_posts_are_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let healthy: Vec<Backend> = (0..3)
        .map(|i| backend(dir.path(), 200, 0, &format!("ok{i}")))
        .collect();
    let failing = backend(dir.path(), 500, 0, "failing");
    let slow = backend(dir.path(), 200, 3000, "slow");
    let refusing: SocketAddr = ([127, 0, 0, 1], free_port()).into();

    let disco = dir.path().join("disco");
    std::fs::create_dir_all(&disco).unwrap();
    let lines: String = healthy
        .iter()
        .map(|b| b.addr)
        .chain([failing.addr, slow.addr, refusing])
        .map(|a| format!("127.0.0.1 {}\n", a.port()))
        .collect();
    std::fs::write(disco.join("web"), lines).unwrap();
    let router_port = free_port();
    let router_addr: SocketAddr = ([127, 0, 0, 1], router_port).into();
    let config = dir.path().join("linkerd.yaml");
    std::fs::write(
        &config,
        format!(
            "admin:\n  port: {}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\nrouters:\n- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  client:\n    requestAttemptTimeoutMs: 300\n    failureAccrual:\n      kind: none\n  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n  servers:\n  - port: {router_port}\n",
            free_port(),
            disco.display()
        ),
    )
    .unwrap();
    let mut router = Process::start(
        &binary("router", "router"),
        &[config.to_str().unwrap()],
        dir.path(),
    );
    router.wait_listening(router_addr);

    let mut healthy = healthy;
    for i in 0..200 {
        if i == 100 {
            // A healthy backend dies without closing anything properly.
            let killed = healthy.remove(0);
            killed.process.kill();
        }
        let (status, body) = send(router_addr, "GET", "/");
        assert_eq!(status, 200, "GET {i}: {body}\n{}", router.log());
        assert!(body.starts_with("ok"), "GET {i} answered by {body}");
    }
    // The slow backend was tried, timed out and was given up on.
    assert!(served(slow.addr) >= 1);

    // (Failure accrual is off, so the failing and the slow backend keep
    // their share of the traffic.)
    let failing_before = served(failing.addr);
    let slow_before = served(slow.addr);
    let (mut failed_posts, mut timed_out_posts) = (0, 0);
    for _ in 0..60 {
        let (status, body) = send(router_addr, "POST", "/");
        match status {
            200 => assert!(body.starts_with("ok"), "{body}"),
            500 => failed_posts += 1,
            503 => timed_out_posts += 1,
            other => panic!("POST answered {other}: {body}\n{}", router.log()),
        }
    }
    // Every POST the failing or the slow backend saw came back as its
    // answer or a timeout: none was sent again.
    assert!(failed_posts > 0 && timed_out_posts > 0);
    assert_eq!(served(failing.addr) - failing_before, failed_posts);
    assert_eq!(served(slow.addr) - slow_before, timed_out_posts);
    drop(router);
}
