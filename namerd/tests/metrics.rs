//! namerd's metrics tree after known traffic to its HTTP API, checked
//! value by value in `/admin/metrics.json` (flat, tree and subtree), in the
//! Prometheus text of the default path and of an `io.l5d.prometheus`
//! telemeter, and in InfluxDB lines, with Linkerd's scopes and names; and
//! the Prometheus text read by promtool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The HTTP interface's server scope: Linkerd's `interface/<kind>`, then
/// Finagle's server label, which is the kind again.
const SERVER: &str = "interface/io.l5d.httpController/io.l5d.httpController";

/// The same scope as a Prometheus name.
const SERVER_NAME: &str = "interface:io_l5d_httpController:io_l5d_httpController";

/// One HTTP/1.1 request on a fresh connection: status and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

struct Namerd {
    api: SocketAddr,
    admin: SocketAddr,
    _disco: tempfile::TempDir,
    running: namerd::server::Running,
}

async fn start(telemetry: &str, snapshot_ms: u64) -> Namerd {
    let disco = tempfile::tempdir().unwrap();
    std::fs::write(disco.path().join("web"), "127.0.0.1 8080\n").unwrap();
    let yaml = format!(
        "admin:
  port: 0
  histogramSnapshotIntervalMs: {snapshot_ms}
storage:
  kind: io.l5d.inMemory
  namespaces:
    default: /svc => /#/io.l5d.fs
namers:
- kind: io.l5d.fs
  rootDir: {}
interfaces:
- kind: io.l5d.httpController
  port: 0
{telemetry}",
        disco.path().display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    config.validate().unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    Namerd {
        api: running.api_addrs[0],
        admin: running.admin_addr,
        _disco: disco,
        running,
    }
}

async fn metrics_json(admin: SocketAddr, query: &str) -> Value {
    let (status, body) = http(
        admin,
        "GET",
        &format!("/admin/metrics.json{query}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls the flat JSON until `key` is `want`.
async fn wait_for(admin: SocketAddr, key: &str, want: Value) -> Value {
    let started = Instant::now();
    loop {
        let json = metrics_json(admin, "").await;
        if json[key] == want {
            return json;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{key} never became {want}: {json:#}"
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

const DTAB: (&str, &str) = ("Content-Type", "application/dtab");

/// `/api/1/bind` with a local dtab whose leaf is an unknown system namer:
/// the binding fails, which namerd answers with a 500.
const FAILING_BIND: &str = "/api/1/bind/default?path=/svc/web&dtab=%2Fsvc%3D%3E%2F%24%2Fnope";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_traffic_gives_exact_figures_in_every_format() {
    let n = start(
        "telemetry:
- kind: io.l5d.prometheus
- kind: io.l5d.prometheus
  path: /metrics
  prefix: namerd_
- kind: io.l5d.influxdb
",
        1000,
    )
    .await;
    let (api, admin) = (n.api, n.admin);

    // One request first: when its interval ends, the next one begins, and
    // the traffic below fits in it.
    assert_eq!(http(api, "GET", "/api/1/dtabs", &[], "").await.0, 200);
    wait_for(
        admin,
        &format!("{SERVER}/request_latency_ms.count"),
        1.into(),
    )
    .await;

    let answers = [
        (
            http(api, "GET", "/api/1/dtabs/default", &[], "").await.0,
            200,
        ),
        (
            http(api, "HEAD", "/api/1/dtabs/default", &[], "").await.0,
            200,
        ),
        (http(api, "GET", "/api/1/dtabs/nope", &[], "").await.0, 404),
        (
            http(
                api,
                "PUT",
                "/api/1/dtabs/default",
                &[DTAB],
                "/svc=>/#/io.l5d.fs",
            )
            .await
            .0,
            204,
        ),
        (
            http(api, "POST", "/api/1/dtabs/default", &[DTAB], "/a=>/b")
                .await
                .0,
            409,
        ),
        (
            // The seeded version, replaced by the `PUT` above.
            http(
                api,
                "PUT",
                "/api/1/dtabs/default",
                &[DTAB, ("If-Match", "AAAAAAAAAAE=")],
                "/a=>/b",
            )
            .await
            .0,
            412,
        ),
        (
            http(api, "DELETE", "/api/1/dtabs/nope", &[], "").await.0,
            404,
        ),
        (http(api, "GET", "/api/1/nothing", &[], "").await.0, 404),
        (
            http(api, "GET", "/api/1/bind/default?path=/svc/web", &[], "")
                .await
                .0,
            200,
        ),
        (http(api, "GET", FAILING_BIND, &[], "").await.0, 500),
        (
            http(api, "GET", "/api/1/resolve/default?path=/svc/web", &[], "")
                .await
                .0,
            200,
        ),
        (
            http(
                api,
                "GET",
                "/api/1/addr/default?path=/%23/io.l5d.fs/web",
                &[],
                "",
            )
            .await
            .0,
            200,
        ),
    ];
    for (i, (got, want)) in answers.iter().enumerate() {
        assert_eq!(got, want, "request {i}");
    }
    // A watch: its request is answered at once, its stream stays open.
    let mut watch = TcpStream::connect(api).await.unwrap();
    watch
        .write_all(b"GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHost: n\r\n\r\n")
        .await
        .unwrap();
    let mut watch = BufReader::new(watch);
    let mut line = String::new();
    watch.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let json = wait_for(
        admin,
        &format!("{SERVER}/http/stream/response/opened"),
        1.into(),
    )
    .await;
    assert_eq!(
        json[format!("{SERVER}/http/stream/response/pending")].to_string(),
        "1.0"
    );
    drop(watch);
    wait_for(
        admin,
        &format!("{SERVER}/http/stream/response/closed"),
        1.into(),
    )
    .await;
    wait_for(admin, &format!("{SERVER}/connections"), 0.0.into()).await;
    // The interval with the twelve requests and the watch's ends.
    let json = wait_for(
        admin,
        &format!("{SERVER}/request_latency_ms.count"),
        13.into(),
    )
    .await;

    // The server: every answer, by status, and the connections.
    for (key, value) in [
        ("requests", 14),
        ("success", 13),
        ("failures", 1),
        (
            "failures/com.twitter.finagle.service.ResponseClassificationSyntheticException",
            1,
        ),
        ("status/200", 7),
        ("status/204", 1),
        ("status/404", 3),
        ("status/409", 1),
        ("status/412", 1),
        ("status/500", 1),
        ("status/1XX", 0),
        ("status/2XX", 8),
        ("status/3XX", 0),
        ("status/4XX", 5),
        ("status/5XX", 1),
        ("connects", 14),
        ("http/stream/response/opened", 1),
        ("http/stream/response/closed", 1),
        // Each route and method that was asked for.
        ("route/api/1/dtabs/GET/requests", 1),
        ("route/api/1/dtabs/{ns}/GET/requests", 3),
        ("route/api/1/dtabs/{ns}/GET/status/200", 2),
        ("route/api/1/dtabs/{ns}/GET/status/404", 1),
        ("route/api/1/dtabs/{ns}/HEAD/requests", 1),
        ("route/api/1/dtabs/{ns}/PUT/requests", 2),
        ("route/api/1/dtabs/{ns}/PUT/status/204", 1),
        ("route/api/1/dtabs/{ns}/PUT/status/412", 1),
        ("route/api/1/dtabs/{ns}/POST/status/409", 1),
        ("route/api/1/dtabs/{ns}/DELETE/status/404", 1),
        ("route/api/1/bind/{ns}/GET/requests", 2),
        ("route/api/1/bind/{ns}/GET/status/500", 1),
        ("route/api/1/resolve/{ns}/GET/requests", 1),
        ("route/api/1/addr/{ns}/GET/requests", 1),
        ("route/other/requests", 1),
        ("route/other/status/404", 1),
    ] {
        assert_eq!(json[format!("{SERVER}/{key}")], value, "{key}: {json:#}");
    }
    for (key, value) in [
        ("pending", "0.0"),
        ("connections", "0.0"),
        ("http/stream/response/pending", "0.0"),
    ] {
        assert_eq!(json[format!("{SERVER}/{key}")].to_string(), value, "{key}");
    }
    assert!(json[format!("{SERVER}/request_latency_ms.p99")].is_u64());
    assert!(json[format!("{SERVER}/request_latency_ms.avg")].is_f64());
    assert_eq!(
        json[format!("{SERVER}/http/stream/response/duration_ms.count")],
        1
    );
    assert!(
        json.get(format!("{SERVER}/route/api/1/delegate/GET/requests"))
            .is_none(),
        "a route nobody asked for is not listed"
    );

    // The store: every call, whoever made it.
    for (key, value) in [
        ("list/requests", 1),
        ("get/requests", 6),
        ("get/success", 6),
        ("put/success", 1),
        ("create/requests", 1),
        ("create/failures", 1),
        ("create/failures/already_exists", 1),
        ("update/failures/version_mismatch", 1),
        ("delete/failures/not_found", 1),
    ] {
        assert_eq!(json[format!("dtabstore/{key}")], value, "dtabstore/{key}");
    }
    assert_eq!(json["dtabstore/get/request_latency_ms.count"], 6);

    // What namerd keeps live: two bindings (one with a local dtab), one
    // resolution, one address; and the interpreter's own figures.
    for (key, value) in [
        ("bindingcache/size", "2.0"),
        ("resolvecache/size", "1.0"),
        ("addrcache/size", "1.0"),
    ] {
        let key = format!("interface/io.l5d.httpController/{key}");
        assert_eq!(json[key.as_str()].to_string(), value, "{key}");
    }
    assert!(json["interpreter/bindings/active"].as_f64() >= Some(1.0));
    assert!(json["interpreter/bindings/started"].as_u64() >= Some(1));

    // The tree, and one subtree by key prefix.
    let tree = metrics_json(admin, "?tree=1").await;
    assert_eq!(
        tree["interface"]["io.l5d.httpController"]["io.l5d.httpController"]["requests"]["counter"],
        14
    );
    assert_eq!(
        tree["interface"]["io.l5d.httpController"]["io.l5d.httpController"]["route"]["api/1/dtabs/{ns}"]
            ["PUT"]["status"]["412"]["counter"],
        1
    );
    assert_eq!(
        tree["dtabstore"]["get"]["request_latency_ms"]["stat.count"],
        6
    );
    let put = metrics_json(
        admin,
        &format!("?q={SERVER}/route/api/1/dtabs/%7Bns%7D/PUT&pretty=true"),
    )
    .await;
    assert_eq!(put["requests"], 2);
    assert_eq!(put["status/412"], 1);
    assert!(
        put.get("status/4XX").is_none(),
        "a route lists codes only: {put:#}"
    );
    let (status, missing) = http(
        admin,
        "GET",
        "/admin/metrics.json?q=interface/nothing",
        &[],
        "",
    )
    .await;
    assert_eq!(
        (status, missing.as_str()),
        (404, r#"{"error":"No such subtree: interface/nothing"}"#)
    );

    // Prometheus: no labels outside `rt`, so scopes are the name.
    let (status, text) = http(admin, "GET", "/admin/metrics/prometheus", &[], "").await;
    assert_eq!(status, 200);
    for (series, value) in [
        (format!("{SERVER_NAME}:requests"), 14.0),
        (format!("{SERVER_NAME}:status:5XX"), 1.0),
        (format!("{SERVER_NAME}:request_latency_ms_count"), 13.0),
        (
            format!("{SERVER_NAME}:route:api_1_dtabs__ns_:PUT:status:412"),
            1.0,
        ),
        (format!("{SERVER_NAME}:http:stream:response:closed"), 1.0),
        ("dtabstore:get:requests".to_string(), 6.0),
        (
            "interface:io_l5d_httpController:bindingcache:size".to_string(),
            2.0,
        ),
    ] {
        assert_eq!(prometheus_value(&text, &series), value, "{series}");
    }
    prometheus_value(
        &text,
        &format!("{SERVER_NAME}:request_latency_ms{{quantile=\"0.99\"}}"),
    );
    let (_, prefixed) = http(admin, "GET", "/metrics", &[], "").await;
    assert_eq!(
        prometheus_value(&prefixed, &format!("namerd_{SERVER_NAME}:requests")),
        14.0
    );

    // InfluxDB: a line per scope, the scraper's Host as a tag.
    let (status, lines) = http(admin, "GET", "/admin/metrics/influxdb", &[], "").await;
    assert_eq!(status, 200);
    let line = |prefix: &str| {
        lines
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{lines}"))
            .to_string()
    };
    let server = line(&format!("{SERVER_NAME},host=admin "));
    assert!(server.contains(",requests=14,"), "{server}");
    assert!(server.contains("request_latency_ms_count=13"), "{server}");
    let statuses = line("dtabstore:delete:failures,host=admin ");
    assert!(statuses.ends_with(" not_found=1"), "{statuses}");
    n.running.stop().await;
}

/// The routes the test above leaves out: each is counted under its own
/// scope, none under `route/other`.
#[tokio::test]
async fn every_route_of_the_api_has_its_scope() {
    let n = start("", 60_000).await;
    let json_body = ("Content-Type", "application/json");
    for (method, target, headers, body) in [
        ("GET", "/api/1/delegate/default?path=/svc/web", &[][..], ""),
        (
            "GET",
            "/api/1/delegate?namespace=default&path=/svc/web",
            &[],
            "",
        ),
        (
            "POST",
            "/api/1/delegate",
            &[json_body],
            r#"{"namespace":"default","path":"/svc/web"}"#,
        ),
        ("GET", "/api/1/bound-names", &[], ""),
    ] {
        let (status, body) = http(n.api, method, target, headers, body).await;
        assert_eq!(status, 200, "{method} {target}: {body}");
    }
    let json = metrics_json(n.admin, "").await;
    for route in [
        "api/1/delegate/{ns}/GET",
        "api/1/delegate/GET",
        "api/1/delegate/POST",
        "api/1/bound-names/GET",
    ] {
        assert_eq!(
            json[format!("{SERVER}/route/{route}/requests")],
            1,
            "{route}: {json:#}"
        );
    }
    assert!(json.get(format!("{SERVER}/route/other/requests")).is_none());
    n.running.stop().await;
}

#[tokio::test]
async fn without_telemeters_prometheus_is_served_and_influxdb_is_not() {
    let n = start("", 60_000).await;
    http(n.api, "GET", "/api/1/dtabs", &[], "").await;
    let (status, text) = http(n.admin, "GET", "/admin/metrics/prometheus", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(
        prometheus_value(&text, &format!("{SERVER_NAME}:requests")),
        1.0
    );
    // No stat is shown before its first interval ends.
    assert!(!text.contains("request_latency_ms"), "{text}");
    let (status, _) = http(n.admin, "GET", "/admin/metrics/influxdb", &[], "").await;
    assert_eq!(status, 404);
    n.running.stop().await;
}

/// Prometheus's own tool reads the text: Linkerd's names break its style
/// rules (colons, no help text, camelCase kinds), which it reports with
/// status 3, but a line it cannot parse would be status 1.
#[tokio::test]
async fn the_prometheus_text_parses_with_promtool() {
    if !integration::promtool::available() {
        return;
    }
    let n = start("", 100).await;
    // Traffic of every kind until an interval with some has ended.
    let started = Instant::now();
    let text = loop {
        http(n.api, "PUT", "/api/1/dtabs/default", &[DTAB], "/a=>/b").await;
        http(n.api, "GET", FAILING_BIND, &[], "").await;
        http(n.api, "GET", "/api/1/bind/default?path=/svc/web", &[], "").await;
        let (_, text) = http(n.admin, "GET", "/admin/metrics/prometheus", &[], "").await;
        if text.contains("quantile=\"0.99\"")
            && text.contains("dtabstore:put:request_latency_ms_count")
        {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no summaries:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    integration::promtool::check_metrics(&text);
    n.running.stop().await;
}

/// `io.l5d.statsd` pushes namerd's tree too: a UDP listener here sees the
/// HTTP interface's requests counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_receives_namerds_figures() {
    let statsd = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = statsd.local_addr().unwrap().port();
    let telemetry =
        format!("telemetry:\n- kind: io.l5d.statsd\n  port: {port}\n  gaugeIntervalMs: 100\n");
    let namerd = start(&telemetry, 60_000).await;
    for _ in 0..3 {
        let (status, _) = http(namerd.api, "GET", "/api/1/dtabs", &[], "").await;
        assert_eq!(status, 200);
    }
    let name = "linkerd.interface.io_l5d_httpController.io_l5d_httpController.requests";
    let mut counted = 0u64;
    let mut buf = vec![0u8; 2048];
    let started = Instant::now();
    while counted < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "counted {counted}"
        );
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), statsd.recv(&mut buf)).await
        else {
            continue;
        };
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            if let Some(value) = line.strip_prefix(&format!("{name}:")) {
                counted += value.trim_end_matches("|c").parse::<u64>().unwrap();
            }
        }
    }
    assert_eq!(counted, 3);
    namerd.running.stop().await;
}
