//! How fast a dtab update reaches many watchers: starts the release `namerd`
//! binary with the embedded disk store, opens N streaming watches of one
//! namespace, then updates the dtab repeatedly and measures, for every
//! watcher, the time from sending the update to receiving it.
//!
//! `cargo build --release -p namerd && cargo run --release -p namerd --example watch_bench -- [watchers] [updates]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn put(addr: SocketAddr, body: &str) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "PUT /api/1/dtabs/default HTTP/1.1\r\nHost: n\r\nConnection: close\r\nContent-Type: application/dtab\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 204"), "{out}");
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let watchers = args.first().copied().unwrap_or(1000);
    let updates = args.get(1).copied().unwrap_or(20);
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/namerd");
    assert!(
        std::path::Path::new(binary).exists(),
        "build it first: cargo build --release -p namerd"
    );

    let dir = tempfile::tempdir().unwrap();
    let (api_port, admin_port) = (free_port(), free_port());
    let config = dir.path().join("namerd.yaml");
    std::fs::write(
        &config,
        format!(
            "admin:\n  port: {admin_port}\nstorage:\n  kind: io.switchboard.disk\n  dir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: {api_port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(binary)
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let namerd = Kill(child);
    let pid = namerd.0.id();
    let api: SocketAddr = ([127, 0, 0, 1], api_port).into();
    let started = Instant::now();
    while TcpStream::connect(api).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "namerd did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    put(api, "/svc=>/#/io.l5d.fs;/marker=>/m0").await;
    let idle_rss = rss_kb(pid, "VmRSS:");

    // Every watcher records when it sees marker n.
    let seen = Arc::new(Mutex::new(vec![Vec::<(usize, Instant)>::new(); watchers]));
    let count = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    for i in 0..watchers {
        let (seen, count, notify) = (seen.clone(), count.clone(), notify.clone());
        let mut stream = TcpStream::connect(api).await.unwrap();
        stream
            .write_all(b"GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHost: n\r\n\r\n")
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                // The marker dentry is {"prefix":"/marker","dst":"/m<n>"}.
                if let Some(at) = line.find("\"dst\":\"/m") {
                    let digits = &line[at + "\"dst\":\"/m".len()..];
                    let n: usize = digits[..digits.find('"').unwrap_or(0)].parse().unwrap_or(0);
                    seen.lock().await[i].push((n, Instant::now()));
                    count.fetch_add(1, Ordering::SeqCst);
                    notify.notify_one();
                }
            }
        });
    }
    // Wait for every watcher's first document (marker 0).
    while count.load(Ordering::SeqCst) < watchers {
        tokio::time::timeout(Duration::from_secs(30), notify.notified())
            .await
            .expect("watchers did not connect");
    }
    let connected_rss = rss_kb(pid, "VmRSS:");

    let mut latencies = Vec::new();
    for n in 1..=updates {
        let target = watchers * (n + 1);
        let sent = Instant::now();
        put(api, &format!("/svc=>/#/io.l5d.fs;/marker=>/m{n}")).await;
        while count.load(Ordering::SeqCst) < target {
            tokio::time::timeout(Duration::from_secs(30), notify.notified())
                .await
                .expect("an update was lost");
        }
        let seen = seen.lock().await;
        for w in seen.iter() {
            let (_, at) = w.iter().find(|(m, _)| *m == n).expect("update missing");
            latencies.push(at.duration_since(sent));
        }
        drop(seen);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "watchers: {watchers}, updates: {updates}, deliveries: {}",
        latencies.len()
    );
    println!(
        "delivery after PUT: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "namerd RSS: idle {:.1} MB, with {watchers} watchers {:.1} MB, peak {:.1} MB",
        idle_rss as f64 / 1024.0,
        connected_rss as f64 / 1024.0,
        rss_kb(pid, "VmHWM:") as f64 / 1024.0
    );
}
