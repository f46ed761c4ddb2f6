//! Traces across routers: each router records a server span per request
//! and a client span per attempt, carries the trace downstream in its
//! `tracePropagator`'s headers, and sends the spans to a collector
//! (Zipkin v2 JSON and OTLP JSON, decoded here with serde_json).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use integration::span_collector::SpanCollector as Collector;
use serde_json::Value;
use support::{Backend, client, closed_port, get};
use support::{RunningRouter, start_router};

fn router_yaml(label: &str, upstream: u16, telemetry: &str, extra: &str) -> String {
    format!(
        "admin:\n  port: 0\ntelemetry:\n{telemetry}\nrouters:\n- protocol: http\n  label: {label}\n{extra}  \
         dtab: /svc => /$/inet/127.0.0.1/{upstream}\n  servers:\n  - port: 0\n"
    )
}

fn zipkin(collector: SocketAddr, rate: f64) -> String {
    format!(
        "- kind: io.zipkin.http\n  host: 127.0.0.1:{}\n  initialSampleRate: {rate}\n",
        collector.port()
    )
}

/// The span of `kind` whose local service is `service`.
fn zipkin_span<'a>(spans: &'a [Value], kind: &str, service: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["kind"] == kind && s["localEndpoint"]["serviceName"] == service)
        .unwrap_or_else(|| panic!("no {kind} span of {service} in {spans:#?}"))
}

/// `l5d-ctx-trace` as (span id, parent id, trace id, flags).
fn l5d_ctx_trace(value: &str) -> (u64, u64, u64, u64) {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap();
    let word = |i: usize| u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    (word(0), word(1), word(2), word(3))
}

fn hex(id: u64) -> String {
    format!("{id:016x}")
}

async fn stop(routers: Vec<RunningRouter>) {
    for router in routers {
        router.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_record_one_trace_with_parents_across_the_hop() {
    let backend = Backend::start("web").await;
    let (collector_addr, collector) = Collector::start().await;
    let downstream = start_router(&router_yaml(
        "inner",
        backend.port(),
        &zipkin(collector_addr, 1.0),
        "",
    ))
    .await;
    let upstream = start_router(&router_yaml(
        "outer",
        downstream.addr().port(),
        &zipkin(collector_addr, 1.0),
        "",
    ))
    .await;

    let reply = get(&client(), upstream.addr(), "web", "/hello", &[]).await;
    assert_eq!(reply.status, 200);
    let seen = reply
        .seen_header("l5d-ctx-trace")
        .expect("the app sees the trace");
    let (app_span, app_parent, app_trace, flags) = l5d_ctx_trace(&seen);
    assert_eq!(flags & 6, 6, "sampled, and said so: {flags}");

    let spans = collector.wait_for(4, Collector::zipkin_spans).await;
    // Gzipped, as the linkerd-zipkin plugin sent them by default.
    let gzipped = collector.gzipped();
    assert!(
        !gzipped.is_empty() && gzipped.iter().all(|g| *g),
        "{gzipped:?}"
    );
    let outer_server = zipkin_span(&spans, "SERVER", "outer");
    let trace = hex(app_trace);
    for span in &spans {
        assert_eq!(span["traceId"], trace, "one trace: {spans:#?}");
    }
    let clients: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "CLIENT").collect();
    let inner_server = zipkin_span(&spans, "SERVER", "inner");
    // outer server → outer client → inner server → inner client → app.
    assert!(
        outer_server.get("parentId").is_none(),
        "a new trace: {outer_server}"
    );
    let outer_client = clients
        .iter()
        .find(|c| c["parentId"] == outer_server["id"])
        .expect("the outer router's attempt is a child of its server span");
    assert_eq!(inner_server["parentId"], outer_client["id"]);
    let inner_client = clients
        .iter()
        .find(|c| c["parentId"] == inner_server["id"])
        .expect("the inner router's attempt is a child of its server span");
    assert_eq!(hex(app_span), inner_client["id"]);
    assert_eq!(hex(app_parent), inner_server["id"]);

    assert_eq!(outer_server["tags"]["http.method"], "GET");
    assert_eq!(outer_server["tags"]["http.status_code"], "200");
    assert_eq!(outer_server["tags"]["namer.path"], "/svc/web");
    assert_eq!(
        outer_client["tags"]["dst.id"],
        format!("/$/inet/127.0.0.1/{}", downstream.addr().port())
    );
    assert_eq!(
        outer_client["remoteEndpoint"]["port"],
        downstream.addr().port()
    );
    assert_eq!(inner_client["remoteEndpoint"]["port"], backend.port());
    assert_eq!(inner_client["tags"]["http.status_code"], "200");
    // The inner router's server span lies within the outer's client span.
    let start = |s: &Value| s["timestamp"].as_u64().unwrap();
    let end = |s: &Value| start(s) + s["duration"].as_u64().unwrap();
    assert!(start(outer_client) <= start(inner_server) + 1_000);
    assert!(end(inner_server) <= end(outer_client) + 1_000);

    stop(vec![upstream, downstream]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_headers_are_read_and_written_and_otlp_gets_the_spans() {
    let backend = Backend::start("web").await;
    let (collector_addr, collector) = Collector::start().await;
    let telemetry = format!(
        "- kind: io.opentelemetry.otlp\n  endpoint: http://127.0.0.1:{}/v1/traces\n  sampleRate: 0\n",
        collector_addr.port()
    );
    let router = start_router(&router_yaml(
        "edge",
        backend.port(),
        &telemetry,
        "  tracePropagator:\n    kind: io.l5d.zipkin\n",
    ))
    .await;

    let trace = "463ac35c9f6413ad48485a3953bb6124";
    let caller_span = "a2fb4a1d1a96d312";
    let reply = get(
        &client(),
        router.addr(),
        "web",
        "/b3",
        &[
            ("x-b3-traceid", trace),
            ("x-b3-spanid", caller_span),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.seen_header("x-b3-traceid").as_deref(), Some(trace));
    assert_eq!(reply.seen_header("x-b3-sampled").as_deref(), Some("1"));
    assert!(reply.seen_header("l5d-ctx-trace").is_none());

    // The caller decided: sampled, though the rate is 0.
    let spans = collector.wait_for(2, Collector::otlp_spans).await;
    let server = spans.iter().find(|s| s["kind"] == 2).unwrap();
    let client_span = spans.iter().find(|s| s["kind"] == 3).unwrap();
    assert_eq!(server["traceId"], trace);
    assert_eq!(server["parentSpanId"], caller_span);
    assert_eq!(server["service"], "edge");
    assert_eq!(client_span["parentSpanId"], server["spanId"]);
    assert_eq!(
        reply.seen_header("x-b3-spanid").as_deref(),
        client_span["spanId"].as_str()
    );
    assert_eq!(
        reply.seen_header("x-b3-parentspanid").as_deref(),
        server["spanId"].as_str()
    );

    // Undecided, at rate 0: not recorded, but still carried on.
    let reply = get(&client(), router.addr(), "web", "/quiet", &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.seen_header("x-b3-traceid").is_some());
    collector.wait_for(2, Collector::otlp_spans).await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l5d_sample_records_a_trace_the_rate_would_not_and_bad_headers_start_a_new_one() {
    let backend = Backend::start("web").await;
    let (collector_addr, collector) = Collector::start().await;
    let router = start_router(&router_yaml(
        "edge",
        backend.port(),
        &zipkin(collector_addr, 0.0),
        "",
    ))
    .await;
    let client = client();

    let reply = get(&client, router.addr(), "web", "/", &[("l5d-sample", "1.0")]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.seen_header("l5d-sample").is_none(), "not sent on");
    let spans = collector.wait_for(2, Collector::zipkin_spans).await;
    let trace = spans[0]["traceId"].clone();

    // A malformed trace header: answered, and a new trace starts (not
    // recorded at rate 0).
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-ctx-trace", "not base64!")],
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = reply.seen_header("l5d-ctx-trace").unwrap();
    let (_, _, new_trace, _) = l5d_ctx_trace(&seen);
    assert_ne!(Value::String(hex(new_trace)), trace);
    collector.wait_for(2, Collector::zipkin_spans).await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_an_error_span_and_the_answer_a_502() {
    let refused = closed_port().await;
    let (collector_addr, collector) = Collector::start().await;
    let router = start_router(&format!(
        "admin:\n  port: 0\ntelemetry:\n{}routers:\n- protocol: http\n  label: edge\n  \
         dtab: /svc => /$/inet/127.0.0.1/{}\n  client:\n    requeueBudget:\n      minRetriesPerSec: 0\n      percentCanRetry: 0.0\n  servers:\n  - port: 0\n",
        zipkin(collector_addr, 1.0),
        refused.port()
    ))
    .await;
    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, 502, "{}", reply.l5d_err());
    let spans = collector.wait_for(2, Collector::zipkin_spans).await;
    let server = zipkin_span(&spans, "SERVER", "edge");
    let attempt = spans.iter().find(|s| s["kind"] == "CLIENT").unwrap();
    assert_eq!(server["tags"]["http.status_code"], "502");
    assert!(server["tags"]["error"].as_str().is_some(), "{server}");
    assert!(
        attempt["tags"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{attempt}"
    );
    router.stop().await;
}

/// The value of a string binary annotation of a scribe span.
fn annotation<'a>(span: &'a Value, key: &str) -> &'a str {
    span["binary_annotations"][key]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {span:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scribe_spans_are_read_by_thriftpy2_as_zipkin_reads_them() {
    let Some(collector) = integration::scribe::ScribeCollector::start() else {
        return;
    };
    let backend = Backend::start("web").await;
    let telemetry = format!(
        "- kind: io.l5d.zipkin\n  host: 127.0.0.1\n  port: {}\n  sampleRate: 1.0\n",
        collector.port
    );
    let router = start_router(&router_yaml("edge", backend.port(), &telemetry, "")).await;
    let reply = get(&client(), router.addr(), "web", "/scribed", &[]).await;
    assert_eq!(reply.status, 200);
    let (app_span, _, app_trace, _) = l5d_ctx_trace(&reply.seen_header("l5d-ctx-trace").unwrap());

    let spans = tokio::task::spawn_blocking(move || collector.spans(2))
        .await
        .unwrap();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let values = |span: &Value| -> Vec<String> {
        span["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["value"].as_str().unwrap().to_string())
            .collect()
    };
    let server = spans
        .iter()
        .find(|s| values(s).contains(&"sr".into()))
        .unwrap();
    let client_span = spans
        .iter()
        .find(|s| values(s).contains(&"cs".into()))
        .unwrap();
    for span in [server, client_span] {
        assert_eq!(span["category"], "zipkin");
        assert_eq!(span["trace_id"], hex(app_trace));
        assert_eq!(span["name"], "GET /scribed");
    }
    assert_eq!(values(server), ["sr", "ss"]);
    assert_eq!(values(client_span), ["cs", "cr"]);
    assert_eq!(server["annotations"][0]["host"]["service"], "edge");
    assert_eq!(client_span["id"], hex(app_span));
    assert_eq!(client_span["parent_id"], server["id"]);
    assert_eq!(annotation(server, "http.status_code"), "200");
    assert_eq!(annotation(server, "namer.path"), "/svc/web");
    assert_eq!(
        annotation(client_span, "dst.id"),
        format!("/$/inet/127.0.0.1/{}", backend.port())
    );
    // The client span's peer: the endpoint, as Zipkin's `sa`.
    assert_eq!(
        client_span["binary_annotations"]["sa"]["host"]["port"],
        backend.port()
    );
    let cs = client_span["annotations"][0]["timestamp"].as_i64().unwrap();
    let cr = client_span["annotations"][1]["timestamp"].as_i64().unwrap();
    assert_eq!(cr - cs, client_span["duration"].as_i64().unwrap());
    router.stop().await;
}

/// `/requests.json` once it has `count` rows and the newest is for
/// `newest` (rows are recorded when a request's span ends, which may be
/// after its answer reached the client).
async fn recent_rows(admin: SocketAddr, count: usize, newest: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for _ in 0..100 {
        let reply = get(&client(), admin, "admin", "/requests.json", &[]).await;
        assert_eq!(reply.status, 200);
        rows = serde_json::from_slice::<Vec<Value>>(&reply.body).unwrap();
        if rows.len() >= count && rows[0]["request"] == newest {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), count, "{rows:#?}");
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_requests_shows_the_last_sampled_requests_and_where_they_went() {
    let backend = Backend::start("web").await;
    let refused = closed_port().await;
    let router = start_router(&router_yaml(
        "edge",
        backend.addr.port(),
        "- kind: io.l5d.recentRequests\n  sampleRate: 1.0\n  capacity: 2\n",
        "",
    ))
    .await;
    let http = client();
    for path in ["/first", "/second"] {
        let reply = get(&http, router.addr(), "web", path, &[]).await;
        assert_eq!(reply.status, 200);
    }
    let dtab = format!("/svc/gone => /$/inet/127.0.0.1/{}", refused.port());
    let reply = get(
        &http,
        router.addr(),
        "gone",
        "/third",
        &[("l5d-dtab", &dtab)],
    )
    .await;
    assert_eq!(reply.status, 502);

    // Capacity 2: the first request has gone; newest first.
    let rows = recent_rows(router.admin, 2, "GET /third").await;
    let (third, second) = (&rows[0], &rows[1]);
    assert_eq!(second["request"], "GET /second");
    assert_eq!(second["router"], "edge");
    assert_eq!(second["server"], router.addr().to_string());
    let source = second["source"].as_str().unwrap();
    assert!(
        source.starts_with("127.0.0.1:"),
        "the caller with its port: {source}"
    );
    assert_eq!(second["logicalName"], "/svc/web");
    let inet = format!("/$/inet/127.0.0.1/{}", backend.addr.port());
    assert_eq!(second["concreteName"], inet.as_str());
    assert_eq!(second["destination"], backend.addr.to_string());
    assert_eq!(second["status"], "200");
    assert_eq!(second["attempts"], 1);
    assert_eq!(second["error"], Value::Null);
    assert_eq!(third["request"], "GET /third");
    assert_eq!(third["logicalName"], "/svc/gone");
    assert_eq!(third["destination"], refused.to_string());
    assert_eq!(third["status"], "502");
    assert!(third["error"].as_str().is_some(), "{third}");

    // The page, as a browser gets it.
    if integration::tls_clients::curl_available() {
        let page = std::process::Command::new("curl")
            .args(["-sS", "--fail"])
            .arg(format!("http://{}/requests", router.admin))
            .output()
            .expect("curl runs");
        assert!(page.status.success(), "{page:?}");
        let page = String::from_utf8(page.stdout).unwrap();
        assert!(page.contains("<h1>Recent Requests</h1>"), "{page}");
        assert!(page.contains("<td>/svc/web</td>"), "{page}");
        assert!(page.contains(&format!("<td>{inet}</td>")), "{page}");
        assert!(!page.contains("GET /first"), "{page}");
    }
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_recent_requests_the_pages_are_not_there() {
    let backend = Backend::start("web").await;
    let (collector_addr, _collector) = Collector::start().await;
    let router = start_router(&router_yaml(
        "edge",
        backend.addr.port(),
        &zipkin(collector_addr, 1.0),
        "",
    ))
    .await;
    for path in ["/requests", "/requests.json"] {
        let reply = get(&client(), router.admin, "admin", path, &[]).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    router.stop().await;
}
