//! How long connections to namerd's API and admin ports may stay open: a
//! minute with no request in flight, and 30 s for a request head from its
//! first byte, both on the watch path that namerd serves itself and on
//! hyper's. A watch is a request in flight for as long as it streams.
//! Spoken to on raw sockets, with time paused where the tests wait: when
//! every task waits, the clock jumps to the next timer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Long enough for anything a test waits for.
const FOREVER: Duration = Duration::from_secs(3600);

async fn start() -> namerd::server::Running {
    let yaml = "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /a\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n";
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", yaml).unwrap();
    namerd::server::start(&config).await.unwrap()
}

/// Reads until `buf` holds `text`, waiting at most a minute.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, text: &str) {
    while !String::from_utf8_lossy(buf).contains(text) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {text:?} in {:?}", String::from_utf8_lossy(buf)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {text:?}: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A connection on which `request` has been answered `200` with a body
/// ending in `end`.
async fn served(addr: SocketAddr, request: &str, end: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    read_until(&mut stream, &mut buf, end).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    stream
}

/// How long namerd takes to close `stream`, reading what it sends.
async fn closes_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(FOREVER, async {
        while let Ok(1..) = stream.read(&mut chunk).await {}
    })
    .await
    .expect("still open");
    started.elapsed()
}

fn between(waited: Duration, low: u64, high: u64, what: &str) {
    assert!(
        waited >= Duration::from_secs(low) && waited < Duration::from_secs(high),
        "{what}: closed after {waited:?}"
    );
}

const LIST: &str = "GET /api/1/dtabs HTTP/1.1\r\nHost: n\r\n\r\n";
const PING: &str = "GET /admin/ping HTTP/1.1\r\nHost: n\r\n\r\n";

#[tokio::test(start_paused = true)]
async fn idle_connections_close_after_a_minute() {
    let namerd = start().await;
    let ports = [
        ("api", namerd.api_addrs[0], LIST, "[\"default\"]\n"),
        ("admin", namerd.admin_addr, PING, "pong"),
    ];
    for (port, addr, request, end) in ports {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        between(closes_after(&mut silent).await, 60, 61, port);
        let mut kept = served(addr, request, end).await;
        between(closes_after(&mut kept).await, 60, 61, port);
    }
    namerd.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_head_that_stops_halfway_is_dropped_after_30_s() {
    let namerd = start().await;
    let ports = [
        ("api", namerd.api_addrs[0], LIST, "[\"default\"]\n"),
        ("admin", namerd.admin_addr, PING, "pong"),
    ];
    for (port, addr, request, end) in ports {
        // The first head, read by namerd's own watch path.
        let mut first = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
        first
            .write_all(b"GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHo")
            .await
            .unwrap();
        between(closes_after(&mut first).await, 30, 31, port);

        // A later head, read by hyper.
        let mut later = served(addr, request, end).await;
        tokio::time::sleep(Duration::from_secs(40)).await;
        later
            .write_all(b"GET /api/1/dtabs HTTP/1.1\r\nHo")
            .await
            .unwrap();
        between(closes_after(&mut later).await, 30, 31, port);
    }
    namerd.stop().await;
}

#[tokio::test]
async fn a_quiet_watch_is_not_idle() {
    let namerd = start().await;
    let api = namerd.api_addrs[0];
    let watch = "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHost: n\r\n\r\n";
    // Served by namerd's own watch path, and by hyper after another
    // request on the same connection.
    let mut lean = served(api, watch, "/svc").await;
    let mut hyper = served(api, LIST, "[\"default\"]\n").await;
    hyper.write_all(watch.as_bytes()).await.unwrap();
    read_until(&mut hyper, &mut Vec::new(), "/svc").await;

    // Ten quiet minutes pass with time paused; the update comes with time
    // running, as namerd's watches do not deliver with time paused.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(600)).await;
    tokio::time::resume();
    let mut put = TcpStream::connect(api).await.unwrap();
    put.write_all(
        b"PUT /api/1/dtabs/default HTTP/1.1\r\nHost: n\r\nContent-Type: application/dtab\r\nContent-Length: 8\r\n\r\n/x=>/y;\n",
    )
    .await
    .unwrap();
    read_until(&mut put, &mut Vec::new(), "204").await;
    for (path, stream) in [("lean", &mut lean), ("hyper", &mut hyper)] {
        let mut buf = Vec::new();
        read_until(stream, &mut buf, "/x").await;
        assert!(String::from_utf8_lossy(&buf).contains("/y"), "{path}");
    }
    namerd.stop().await;
}
