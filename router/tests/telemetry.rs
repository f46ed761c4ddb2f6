//! The metrics tree after known traffic: successes, classified failures, a
//! retried read and connection failures, checked value by value in
//! `/admin/metrics.json` (flat, tree and subtree) and in the Prometheus
//! text of an `io.l5d.prometheus` telemeter, with Linkerd's scopes, names
//! and labels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use support::{FsDir, client, closed_port, get, start_router};
use tokio::net::TcpListener;

/// A backend whose `n`th answer is `statuses[n % len]`.
async fn backend(statuses: &'static [u16]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let served = served.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let n = served.fetch_add(1, Ordering::SeqCst);
                    let status = statuses[n % statuses.len()];
                    async move {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"hi")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn admin(admin: SocketAddr, path: &str) -> (StatusCode, String) {
    let reply = get(&client(), admin, "admin", path, &[]).await;
    (reply.status, reply.text())
}

async fn metrics_json(router_admin: SocketAddr, query: &str) -> Value {
    let (status, text) = admin(router_admin, &format!("/admin/metrics.json{query}")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Waits until a stat's interval has ended with `count` values in it.
async fn wait_for_stat(router_admin: SocketAddr, key: &str, count: u64) -> Value {
    let started = Instant::now();
    loop {
        let json = metrics_json(router_admin, "").await;
        if json[format!("{key}.count")] == count {
            return json;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{key}.count never reached {count}: {json:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn prometheus_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_traffic_gives_exact_figures_in_every_format() {
    let fs = FsDir::new();
    let ok = backend(&[200]).await;
    let bad = backend(&[500]).await;
    let flaky = backend(&[503, 200]).await;
    let down = closed_port().await;
    for (name, addr) in [("ok", ok), ("bad", bad), ("flaky", flaky), ("down", down)] {
        fs.write(name, &format!("{} {}\n", addr.ip(), addr.port()));
    }
    let yaml = format!(
        "admin:
  port: 0
  histogramSnapshotIntervalMs: 1000
namers:
- kind: io.l5d.fs
  rootDir: {}
telemetry:
- kind: io.l5d.prometheus
- kind: io.l5d.prometheus
  path: /metrics
  prefix: linkerd_
- kind: io.l5d.influxdb
routers:
- protocol: http
  label: web
  dtab: /svc => /#/io.l5d.fs;
  client:
    failureAccrual:
      kind: none
  service:
    kind: io.l5d.static
    configs:
    - prefix: /svc/flaky
      responseClassifier:
        kind: io.l5d.http.retryableRead5XX
  servers:
  - port: 0
",
        fs.path().display()
    );
    let router = start_router(&yaml).await;
    let http = client();

    // One request first: when its interval ends, the next one begins, and
    // the traffic below fits in it.
    assert_eq!(
        get(&http, router.addr(), "ok", "/", &[]).await.status,
        StatusCode::OK
    );
    wait_for_stat(
        router.admin,
        "rt/web/server/127.0.0.1/0/request_latency_ms",
        1,
    )
    .await;
    for _ in 0..3 {
        let reply = get(&http, router.addr(), "ok", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    for _ in 0..2 {
        let reply = get(&http, router.addr(), "bad", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let reply = get(&http, router.addr(), "flaky", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "retried after the 503");
    for _ in 0..2 {
        let reply = get(&http, router.addr(), "down", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    }
    let json = wait_for_stat(
        router.admin,
        "rt/web/server/127.0.0.1/0/request_latency_ms",
        8,
    )
    .await;

    // The server: every answer, by status.
    let server = "rt/web/server/127.0.0.1/0";
    for (key, value) in [
        ("requests", 9),
        ("success", 5),
        ("failures", 4),
        ("status/200", 5),
        ("status/500", 2),
        ("status/502", 2),
        ("status/2XX", 5),
        ("status/5XX", 4),
        ("status/4XX", 0),
    ] {
        assert_eq!(json[format!("{server}/{key}")], value, "{server}/{key}");
    }
    assert!(json[format!("{server}/connects")].as_u64() >= Some(1));
    assert!(json[format!("{server}/connections")].is_f64());
    assert!(json[format!("{server}/request_latency_ms.p99")].is_u64());

    // Services: one per destination path, requests as the client sent them.
    let synthetic = "failures/com.twitter.finagle.service.ResponseClassificationSyntheticException";
    for (key, value) in [
        ("svc/ok/requests", 4),
        ("svc/ok/success", 4),
        ("svc/ok/failures", 0),
        ("svc/bad/requests", 2),
        ("svc/bad/failures", 2),
        (&format!("svc/bad/{synthetic}"), 2),
        ("svc/flaky/requests", 1),
        ("svc/flaky/success", 1),
        ("svc/flaky/retries/total", 1),
        ("svc/down/requests", 2),
        ("svc/down/failures", 2),
        ("svc/down/failures/not_sent", 2),
    ] {
        assert_eq!(
            json[format!("rt/web/service/{key}")],
            value,
            "service {key}"
        );
    }
    assert_eq!(
        json["rt/web/service/svc/flaky/retries/per_request.count"],
        1
    );
    assert_eq!(json["rt/web/service/svc/flaky/retries/per_request.max"], 1);
    // Requests without a retry count as zeros (the first was in the
    // interval before).
    assert_eq!(json["rt/web/service/svc/ok/retries/per_request.count"], 3);
    assert_eq!(json["rt/web/service/svc/ok/retries/per_request.max"], 0);

    // Clients: one per bound id, each attempt counted.
    for (key, value) in [
        ("#/io.l5d.fs/ok/requests", 4),
        ("#/io.l5d.fs/ok/status/200", 4),
        ("#/io.l5d.fs/bad/failures", 2),
        ("#/io.l5d.fs/bad/status/500", 2),
        ("#/io.l5d.fs/flaky/requests", 2),
        ("#/io.l5d.fs/flaky/success", 1),
        ("#/io.l5d.fs/flaky/failures", 1),
        ("#/io.l5d.fs/flaky/status/503", 1),
        ("#/io.l5d.fs/flaky/service/svc/flaky/requests", 2),
        ("#/io.l5d.fs/down/requests", 2),
        ("#/io.l5d.fs/down/failures/not_sent", 2),
        ("#/io.l5d.fs/down/status/error", 2),
    ] {
        assert_eq!(json[format!("rt/web/client/{key}")], value, "client {key}");
    }
    assert!(json["rt/web/client/#/io.l5d.fs/down/retries/requeues"].as_u64() > Some(0));
    // Each client opened one connection to its endpoint and keeps it; the
    // endpoint that is down took none.
    for (client, connects, open) in [("ok", 1, "1.0"), ("bad", 1, "1.0"), ("down", 0, "0.0")] {
        let scope = format!("rt/web/client/#/io.l5d.fs/{client}");
        assert_eq!(json[format!("{scope}/connects")], connects, "{scope}");
        assert_eq!(
            json[format!("{scope}/connections")].to_string(),
            open,
            "{scope}"
        );
    }
    assert_eq!(
        json["rt/web/client/#/io.l5d.fs/ok/loadbalancer/size"].to_string(),
        "1.0"
    );
    assert_eq!(
        json["rt/web/client/#/io.l5d.fs/ok/loadbalancer/available"].to_string(),
        "1.0"
    );
    assert_eq!(
        json["rt/web/client/#/io.l5d.fs/ok/failure_accrual/removals"],
        0
    );

    // The tree, and one subtree by key prefix.
    let tree = metrics_json(router.admin, "?tree=1").await;
    assert_eq!(
        tree["rt"]["web"]["client"]["#/io.l5d.fs/ok"]["requests"]["counter"],
        4
    );
    assert_eq!(
        tree["rt"]["web"]["server"]["127.0.0.1/0"]["request_latency_ms"]["stat.count"],
        8
    );
    let subtree = metrics_json(router.admin, "?q=rt/web/service/svc/flaky").await;
    assert_eq!(subtree["retries/total"], 1);
    let (status, missing) = admin(router.admin, "/admin/metrics.json?q=rt/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing.contains("No such subtree: rt/nothing"), "{missing}");

    // Prometheus, at the default path and at the telemeter's with its
    // prefix, labelled as Linkerd labelled them.
    let (status, text) = admin(router.admin, "/admin/metrics/prometheus").await;
    assert_eq!(status, StatusCode::OK);
    let server_labels = "rt=\"web\",server=\"127.0.0.1/0\"";
    assert_eq!(
        prometheus_value(&text, &format!("rt:server:requests{{{server_labels}}}")),
        9.0
    );
    assert_eq!(
        prometheus_value(&text, &format!("rt:server:status:5XX{{{server_labels}}}")),
        4.0
    );
    assert_eq!(
        prometheus_value(
            &text,
            &format!("rt:server:request_latency_ms_count{{{server_labels}}}")
        ),
        8.0
    );
    prometheus_value(
        &text,
        &format!("rt:server:request_latency_ms{{{server_labels},quantile=\"0.99\"}}"),
    );
    assert_eq!(
        prometheus_value(
            &text,
            "rt:client:requests{rt=\"web\",client=\"#/io.l5d.fs/flaky\"}"
        ),
        2.0
    );
    assert_eq!(
        prometheus_value(
            &text,
            "rt:client:service:requests{rt=\"web\",client=\"#/io.l5d.fs/flaky\",service=\"svc/flaky\"}"
        ),
        2.0
    );
    assert_eq!(
        prometheus_value(
            &text,
            "rt:service:failures{rt=\"web\",service=\"svc/down\",exception=\"not_sent\"}"
        ),
        2.0
    );
    assert_eq!(
        prometheus_value(
            &text,
            "rt:service:retries:total{rt=\"web\",service=\"svc/flaky\"}"
        ),
        1.0
    );
    let (_, prefixed) = admin(router.admin, "/metrics").await;
    assert_eq!(
        prometheus_value(
            &prefixed,
            &format!("linkerd_rt:server:requests{{{server_labels}}}")
        ),
        9.0
    );

    // InfluxDB line protocol, as Telegraf scrapes it: a line per scope.
    let (status, lines) = admin(router.admin, "/admin/metrics/influxdb").await;
    assert_eq!(status, StatusCode::OK);
    let line = |prefix: &str| {
        lines
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{lines}"))
            .to_string()
    };
    let server = line("rt:server,host=admin,rt=web,server=127.0.0.1/0 ");
    assert!(server.contains(",requests=9,"), "{server}");
    assert!(server.contains("request_latency_ms_count=8"), "{server}");
    let status_line = line("rt:client:status,client=#/io.l5d.fs/flaky,host=admin,rt=web ");
    assert!(
        status_line.contains("200=1") && status_line.contains("503=1"),
        "{status_line}"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_connections_are_counted_open_until_they_close() {
    // A backend that closes each connection after one answer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"x"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let router = start_router(&format!(
        "admin: {{port: 0}}\nrouters:\n- protocol: http\n  label: web\n  \
         dtab: /svc/closing => /$/inet/127.0.0.1/{}\n  servers:\n  - port: 0\n",
        closing.port()
    ))
    .await;
    let http = client();
    for _ in 0..3 {
        let reply = get(&http, router.addr(), "closing", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let scope = format!("rt/web/client/$/inet/127.0.0.1/{}", closing.port());
    let started = Instant::now();
    loop {
        let json = metrics_json(router.admin, "").await;
        assert_eq!(json[format!("{scope}/connects")], 3, "{json:#}");
        if json[format!("{scope}/connections")].as_f64() == Some(0.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "connections never went back to 0: {json:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    router.stop().await;
}

#[tokio::test]
async fn idle_services_and_clients_leave_the_tree_with_their_bindings() {
    let fs = FsDir::new();
    let ok = backend(&[200]).await;
    fs.write("ok", &format!("{} {}\n", ok.ip(), ok.port()));
    fs.write("ok2", &format!("{} {}\n", ok.ip(), ok.port()));
    let yaml = format!(
        "admin: {{port: 0}}
namers:
- kind: io.l5d.fs
  rootDir: {}
routers:
- protocol: http
  label: web
  dtab: /svc => /#/io.l5d.fs;
  bindingCache: {{paths: 1, trees: 1, bounds: 1, clients: 1}}
  servers:
  - port: 0
",
        fs.path().display()
    );
    let router = start_router(&yaml).await;
    let http = client();
    assert_eq!(
        get(&http, router.addr(), "ok", "/", &[]).await.status,
        StatusCode::OK
    );
    let json = metrics_json(router.admin, "").await;
    assert_eq!(json["rt/web/service/svc/ok/requests"], 1);
    // Another name takes the only cache places: the first name's scopes go.
    let reply = get(&http, router.addr(), "ok2", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let json = metrics_json(router.admin, "").await;
    assert!(
        json.get("rt/web/service/svc/ok/requests").is_none(),
        "{json:#}"
    );
    assert!(
        json.get("rt/web/client/#/io.l5d.fs/ok/requests").is_none(),
        "{json:#}"
    );
    assert_eq!(json["rt/web/service/svc/ok2/requests"], 1);
    assert_eq!(json["rt/web/client/#/io.l5d.fs/ok2/requests"], 1);
    // A name that does not bind still counts as a request of its service.
    let reply = get(&http, router.addr(), "missing", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let json = metrics_json(router.admin, "").await;
    assert_eq!(json["rt/web/service/svc/missing/requests"], 1, "{json:#}");
    assert_eq!(json["rt/web/service/svc/missing/failures"], 1, "{json:#}");
    router.stop().await;
}

/// Prometheus's own tool reads the text: Linkerd's names break its style
/// rules (colons, no help text), which it reports with status 3, but a
/// line it cannot parse would be status 1.
#[tokio::test]
async fn the_prometheus_text_parses_with_promtool() {
    if !integration::promtool::available() {
        return;
    }
    let fs = FsDir::new();
    let ok = backend(&[200, 503]).await;
    fs.write("ok", &format!("{} {}\n", ok.ip(), ok.port()));
    let yaml = format!(
        "admin: {{port: 0, histogramSnapshotIntervalMs: 100}}
namers:
- kind: io.l5d.fs
  rootDir: {}
routers:
- protocol: http
  label: web
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
",
        fs.path().display()
    );
    let router = start_router(&yaml).await;
    let http = client();
    get(&http, router.addr(), "missing", "/", &[]).await;
    // Traffic until an interval with some has ended.
    let started = Instant::now();
    let text = loop {
        get(&http, router.addr(), "ok", "/", &[]).await;
        let (_, text) = admin(router.admin, "/admin/metrics/prometheus").await;
        if text.contains("quantile=\"0.99\"") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no summaries:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    integration::promtool::check_metrics(&text);
    router.stop().await;
}

/// `io.l5d.statsd` pushes to a statsd server: a UDP listener here reads
/// every datagram, and the counters' increases add up to the traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_receives_counters_gauges_and_weighted_timings() {
    let statsd = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let statsd_port = statsd.local_addr().unwrap().port();
    let fs = FsDir::new();
    let ok = backend(&[200]).await;
    fs.write("ok", &format!("{} {}\n", ok.ip(), ok.port()));
    let yaml = format!(
        "admin: {{port: 0}}
namers:
- kind: io.l5d.fs
  rootDir: {}
telemetry:
- kind: io.l5d.statsd
  experimental: true
  prefix: l5d
  port: {statsd_port}
  gaugeIntervalMs: 100
routers:
- protocol: http
  label: web
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
",
        fs.path().display()
    );
    let router = start_router(&yaml).await;
    let http = client();
    for _ in 0..7 {
        let reply = get(&http, router.addr(), "ok", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // Read datagrams until the counter's increases add up to the seven
    // requests and a timing line has come.
    let requests = "l5d.rt.web.server.127_0_0_1.0.requests";
    let latency = "l5d.rt.web.service.svc.ok.request_latency_ms";
    let (mut counted, mut timings, mut gauges) = (0u64, 0.0f64, 0);
    let mut buf = vec![0u8; 2048];
    let started = Instant::now();
    while counted < 7 || timings < 7.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "counted {counted} requests and {timings} timings"
        );
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), statsd.recv(&mut buf)).await
        else {
            continue;
        };
        assert!(n <= 1400, "a datagram of {n} bytes");
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            let (name, rest) = line.split_once(':').unwrap_or_else(|| panic!("{line}"));
            let mut parts = rest.split('|');
            let value = parts.next().unwrap();
            let kind = parts.next().unwrap_or_else(|| panic!("{line}"));
            match kind {
                "c" => {
                    if name == requests {
                        counted += value.parse::<u64>().unwrap();
                    }
                }
                "ms" => {
                    if name == latency {
                        let weight = parts
                            .next()
                            .map_or(1.0, |w| w.trim_start_matches('@').parse::<f64>().unwrap());
                        timings += 1.0 / weight;
                    }
                }
                "g" => {
                    value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
                    gauges += 1;
                }
                other => panic!("unknown statsd type {other} in {line}"),
            }
        }
    }
    assert_eq!(counted, 7);
    assert!((timings - 7.0).abs() < 1e-6, "{timings}");
    assert!(gauges > 0, "no gauge lines");
    router.stop().await;
}

/// An `h2` router's `h2AccessLog`: Linkerd's h2 line, the authority first
/// and `HTTP/2` in the request line, for a request sent over HTTP/2.
#[tokio::test]
async fn an_h2_router_writes_linkerds_h2_access_log_line() {
    let fs = FsDir::new();
    let backend = support::Backend::start("web").await;
    fs.write(
        "web",
        &format!("{} {}\n", backend.addr.ip(), backend.addr.port()),
    );
    let log = fs.path().join("logs/h2-access.log");
    let yaml = format!(
        "admin: {{port: 0}}
namers:
- kind: io.l5d.fs
  rootDir: {}
routers:
- protocol: h2
  dtab: /svc => /#/io.l5d.fs;
  h2AccessLog: {}
  servers:
  - port: 0
",
        fs.path().display(),
        log.display()
    );
    let router = start_router(&yaml).await;
    let stream = tokio::net::TcpStream::connect(router.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("http://web/hello?x=1")
        .header("user-agent", "h2-test")
        .body(support::empty())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break line.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (before, after) = line.split_once(" [").unwrap();
    assert_eq!(before, "web 127.0.0.1 - -", "{line}");
    let (time, rest) = after.split_once("] ").unwrap();
    assert!(time.ends_with(" +0000"), "{line}");
    assert_eq!(
        rest, "\"GET /hello?x=1 HTTP/2\" 200 - \"-\" \"h2-test\"",
        "{line}"
    );
    // Two more requests share the client's one h2 connection.
    for _ in 0..2 {
        let request = http::Request::get("http://web/again")
            .body(support::empty())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let json = metrics_json(router.admin, "").await;
    let client = "rt/h2/client/#/io.l5d.fs/web";
    assert_eq!(json[format!("{client}/requests")], 3, "{json:#}");
    assert_eq!(json[format!("{client}/connects")], 1, "{json:#}");
    assert_eq!(json[format!("{client}/connections")].as_f64(), Some(1.0));
    router.stop().await;
}
