//! `protocol: tcp` routers end to end: real TCP backends on 127.0.0.1, a
//! router started in-process from YAML, and clients connecting through
//! it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::{FsDir, STEP, client, closed_port, config, get, start_router, within};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that answers each chunk it reads with `<name>:<chunk>`, and
/// when the client shuts its write half, writes `<name>:bye` and closes.
async fn echo(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo_on(name, stream));
        }
    });
    addr
}

async fn echo_on<S: AsyncRead + AsyncWrite + Unpin>(name: &str, mut stream: S) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            let _ = stream.write_all(format!("{name}:bye").as_bytes()).await;
            let _ = stream.shutdown().await;
            return;
        }
        let mut answer = format!("{name}:").into_bytes();
        answer.extend_from_slice(&buf[..n]);
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Writes `text` and reads one answer.
async fn say<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, text: &str) -> String {
    within(STEP, &format!("an answer to {text:?}"), async {
        stream.write_all(text.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
}

/// Points the `io.l5d.fs` service `name` at `addrs`.
fn point(fs: &FsDir, name: &str, addrs: &[SocketAddr]) {
    let lines: String = addrs
        .iter()
        .map(|a| format!("{} {}\n", a.ip(), a.port()))
        .collect();
    fs.write(name, &lines);
}

async fn metrics(admin: SocketAddr) -> serde_json::Value {
    let reply = get(&client(), admin, "admin", "/admin/metrics.json", &[]).await;
    serde_json::from_slice(&reply.body).unwrap()
}

fn figure(metrics: &serde_json::Value, name: &str) -> f64 {
    metrics[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {metrics:#}"))
}

const DTAB: &str = "/svc => /#/io.l5d.fs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_name_routes_and_a_half_close_passes_through() {
    let backend = echo("redis").await;
    let fs = FsDir::new();
    point(&fs, "redis", &[backend]);
    let yaml = format!(
        "- protocol: tcp\n  dtab: {DTAB}\n  servers:\n  - port: 0\n    dstName: /svc/redis\n"
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    assert_eq!(say(&mut stream, "ping").await, "redis:ping");
    // The client is done writing; the backend's last words still arrive.
    stream.shutdown().await.unwrap();
    let mut rest = String::new();
    within(STEP, "the backend's reply after a half-close", async {
        stream.read_to_string(&mut rest).await.unwrap();
    })
    .await;
    assert_eq!(rest, "redis:bye");
    drop(stream);

    let m = within(STEP, "the connection to be counted closed", async {
        loop {
            let m = metrics(router.admin).await;
            if m["rt/tcp/server/127.0.0.1/0/closes"] == 1 {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let server = "rt/tcp/server/127.0.0.1/0";
    assert_eq!(figure(&m, &format!("{server}/connects")), 1.0);
    assert_eq!(figure(&m, &format!("{server}/connections")), 0.0);
    assert_eq!(figure(&m, &format!("{server}/received_bytes")), 4.0);
    assert_eq!(
        figure(&m, &format!("{server}/sent_bytes")),
        ("redis:ping".len() + "redis:bye".len()) as f64
    );
    let client = "rt/tcp/client/#/io.l5d.fs/redis";
    assert_eq!(figure(&m, &format!("{client}/connects")), 1.0);
    assert_eq!(figure(&m, &format!("{client}/closes")), 1.0);
    assert_eq!(figure(&m, &format!("{client}/sent_bytes")), 4.0);
    assert_eq!(figure(&m, &format!("{client}/connect_failures")), 0.0);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtab_change_reroutes_new_connections_and_keeps_open_ones() {
    let (a, b) = (echo("a").await, echo("b").await);
    let fs = FsDir::new();
    let dtab_file = fs.path().join("dtab");
    let write_dtab = |port: u16| {
        let tmp = fs.path().join(".dtab.tmp");
        std::fs::write(&tmp, format!("/svc/db => /$/inet/127.0.0.1/{port}\n")).unwrap();
        std::fs::rename(&tmp, &dtab_file).unwrap();
    };
    write_dtab(a.port());
    let yaml = format!(
        "- protocol: tcp\n  interpreter:\n    kind: io.l5d.fs\n    dtabFile: {}\n  servers:\n  - port: 0\n    dstName: /svc/db\n",
        dtab_file.display()
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut old = TcpStream::connect(router.addr()).await.unwrap();
    assert_eq!(say(&mut old, "x").await, "a:x");

    write_dtab(b.port());
    within(STEP, "new connections to reach b", async {
        loop {
            let mut new = TcpStream::connect(router.addr()).await.unwrap();
            if say(&mut new, "x").await == "b:x" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        say(&mut old, "y").await,
        "a:y",
        "an open connection keeps its upstream"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_endpoint_is_skipped_and_marked_dead() {
    let good = echo("good").await;
    let refusing = closed_port().await;
    let fs = FsDir::new();
    point(&fs, "redis", &[refusing, good]);
    let yaml = format!(
        "- protocol: tcp\n  dtab: {DTAB}\n  client:\n    failureAccrual:\n      kind: io.l5d.consecutiveFailures\n      failures: 1\n      backoff: {{kind: constant, ms: 60000}}\n  servers:\n  - port: 0\n    dstName: /svc/redis\n"
    );
    let router = start_router(&config(&fs, &yaml)).await;
    for i in 0..20 {
        let mut stream = TcpStream::connect(router.addr()).await.unwrap();
        assert_eq!(say(&mut stream, "hi").await, "good:hi", "connection {i}");
    }
    let m = metrics(router.admin).await;
    let client = "rt/tcp/client/#/io.l5d.fs/redis";
    assert_eq!(figure(&m, &format!("{client}/connect_failures")), 1.0);
    assert_eq!(
        figure(&m, &format!("{client}/failure_accrual/removals")),
        1.0
    );
    assert_eq!(figure(&m, &format!("{client}/loadbalancer/available")), 1.0);
    assert_eq!(figure(&m, &format!("{client}/connects")), 20.0);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_bind_closes_the_connection() {
    let fs = FsDir::new();
    let yaml = format!(
        "- protocol: tcp\n  dtab: {DTAB}\n  bindingTimeoutMs: 500\n  servers:\n  - port: 0\n    dstName: /svc/nowhere\n"
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    let mut buf = Vec::new();
    within(STEP, "the router to close the connection", async {
        let _ = stream.read_to_end(&mut buf).await;
    })
    .await;
    assert!(buf.is_empty());
    let m = metrics(router.admin).await;
    assert_eq!(figure(&m, "rt/tcp/server/127.0.0.1/0/unrouted"), 1.0);
    assert_eq!(figure(&m, "rt/tcp/server/127.0.0.1/0/unnamed"), 0.0);
    router.stop().await;
}

/// A TLS backend serving `host`'s certificate, answering as `echo` does.
async fn tls_backend(pki: &integration::pki::Pki, host: &'static str) -> SocketAddr {
    let leaf = pki.leaf(host, &[host]);
    let tls = serde_json::from_value::<namers::tls::ServerTlsConfig>(serde_json::json!({
        "certPath": leaf.cert,
        "keyPath": leaf.key,
    }))
    .unwrap()
    .build(&[])
    .unwrap();
    let acceptor = tls.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    echo_on(host, stream).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_server_name_picks_the_backend_and_tls_passes_through() {
    let pki = integration::pki::Pki::new("tcp");
    let a = tls_backend(&pki, "a.example").await;
    let b = tls_backend(&pki, "b.example").await;
    let fs = FsDir::new();
    let yaml = format!(
        "- protocol: tcp\n  dstPrefix: /tls\n  dtab: /tls/a.example => /$/inet/127.0.0.1/{};/tls/b.example => /$/inet/127.0.0.1/{}\n  servers:\n  - port: 0\n    dstFromSni: true\n",
        a.port(),
        b.port()
    );
    let router = start_router(&config(&fs, &yaml)).await;
    for host in ["b.example", "a.example"] {
        let tls = serde_json::from_value::<namers::tls::ClientTlsConfig>(serde_json::json!({
            "commonName": host,
            "trustCerts": [pki.ca()],
        }))
        .unwrap()
        .build(&[])
        .unwrap();
        let connector = tokio_rustls::TlsConnector::from(tls.rustls_config());
        let tcp = TcpStream::connect(router.addr()).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from(host.to_string()).unwrap();
        let mut stream = within(STEP, "the TLS handshake through the router", async {
            connector.connect(name, tcp).await.unwrap()
        })
        .await;
        assert_eq!(say(&mut stream, "hello").await, format!("{host}:hello"));
    }

    // A client that speaks no TLS has no name: its connection is closed.
    let mut plain = TcpStream::connect(router.addr()).await.unwrap();
    plain.write_all(b"PING\r\n").await.unwrap();
    let mut buf = Vec::new();
    within(STEP, "a plain connection to be closed", async {
        let _ = plain.read_to_end(&mut buf).await;
    })
    .await;
    assert!(buf.is_empty());
    let m = metrics(router.admin).await;
    assert_eq!(figure(&m, "rt/tcp/server/127.0.0.1/0/unnamed"), 1.0);
    assert_eq!(figure(&m, "rt/tcp/server/127.0.0.1/0/connects"), 3.0);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_lets_spliced_connections_finish_within_the_grace_period() {
    let backend = echo("redis").await;
    let fs = FsDir::new();
    point(&fs, "redis", &[backend]);
    let yaml = format!(
        "- protocol: tcp\n  dtab: {DTAB}\n  servers:\n  - port: 0\n    dstName: /svc/redis\n    maxConcurrency: 1\n"
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let addr = router.addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(say(&mut open, "a").await, "redis:a");
    // One connection at a time: a second is closed at once.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    within(
        STEP,
        "a connection over maxConcurrency to be closed",
        async {
            let _ = second.read_to_end(&mut buf).await;
        },
    )
    .await;
    assert!(buf.is_empty());

    let stopped = Arc::new(tokio::sync::Notify::new());
    let done = stopped.clone();
    let stopping = tokio::spawn(async move {
        router.stop().await;
        done.notify_one();
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "stop waits for the open connection"
    );
    assert_eq!(say(&mut open, "b").await, "redis:b");
    drop(open);
    within(STEP, "the router to stop", stopped.notified()).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    let backend = echo("redis").await;
    let fs = FsDir::new();
    point(&fs, "redis", &[backend]);
    let yaml = format!(
        "- protocol: tcp\n  dtab: {DTAB}\n  servers:\n  - port: 0\n    dstName: /svc/redis\n    serverSession:\n      idleTimeMs: 300\n"
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    // Activity keeps it open past the idle time.
    let mut last_sent = std::time::Instant::now();
    for i in 0..4 {
        last_sent = std::time::Instant::now();
        assert_eq!(say(&mut stream, &i.to_string()).await, format!("redis:{i}"));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut buf = Vec::new();
    within(STEP, "the idle connection to be closed", async {
        let _ = stream.read_to_end(&mut buf).await;
    })
    .await;
    // The router saw the last byte after it was sent, and keeps time in
    // whole milliseconds, so the close comes at least 299 ms later.
    assert!(
        last_sent.elapsed() >= Duration::from_millis(299),
        "{:?}",
        last_sent.elapsed()
    );
    router.stop().await;
}

#[test]
fn http_keys_on_a_tcp_router_are_refused_by_name() {
    let check = |router: &str| {
        let yaml = format!("routers:\n{router}");
        let source = namers::config::Source::new("linkerd.yaml", yaml);
        let config: router::config::Config = source.parse().unwrap();
        config
            .validate()
            .map(drop)
            .map_err(|e| source.error(&e).to_string())
    };
    let server = "  servers:\n  - port: 7474\n    dstName: /svc/redis\n";
    assert_eq!(check(&format!("- protocol: tcp\n{server}")), Ok(()));
    let refused = [
        (
            "  identifier:\n    kind: io.l5d.header\n",
            "routers[0].identifier: line 3",
        ),
        (
            "  responseClassifier:\n    kind: io.l5d.http.retryableRead5XX\n",
            "routers[0].responseClassifier: line 3",
        ),
        (
            "  httpAccessLog: a.log\n",
            "routers[0].httpAccessLog: line 3",
        ),
        (
            "  client:\n    requestAttemptTimeoutMs: 5\n",
            "routers[0].client.requestAttemptTimeoutMs: line 4",
        ),
        (
            "  service:\n    totalTimeoutMs: 5\n",
            "routers[0].service: line 3",
        ),
    ];
    for (keys, expected) in refused {
        let err = check(&format!("- protocol: tcp\n{keys}{server}")).unwrap_err();
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(err.contains("tcp routers do not take it"), "{err}");
    }
    let err = check("- protocol: tcp\n  servers:\n  - port: 7474\n").unwrap_err();
    assert!(err.contains("routers[0].servers[0]"), "{err}");
    assert!(err.contains("dstName or dstFromSni"), "{err}");
    let err = check("- protocol: tcp\n  servers:\n  - port: 7474\n    dstName: /svc/a\n    maxConcurrentRequests: 5\n").unwrap_err();
    assert!(
        err.contains("routers[0].servers[0].maxConcurrentRequests: line 6"),
        "{err}"
    );
    let err =
        check("- protocol: http\n  servers:\n  - port: 7474\n    dstName: /svc/a\n").unwrap_err();
    assert!(
        err.contains("routers[0].servers[0].dstName: line 5: only tcp routers take it"),
        "{err}"
    );
}
