//! namerd's API requests as server spans: the caller's trace is read from
//! `l5d-ctx-trace` or B3 headers, the spans go to the tracing telemeters
//! of namerd's `telemetry:` list (a Zipkin v2 collector here), and
//! `io.l5d.recentRequests` shows them on the admin port. Requests are
//! sent with curl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use integration::span_collector::SpanCollector;
use serde_json::Value;

async fn start(collector: SocketAddr) -> namerd::server::Running {
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /a\n\
         interfaces:\n- kind: io.l5d.httpController\n  port: 0\ntelemetry:\n\
         - kind: io.zipkin.http\n  host: 127.0.0.1:{}\n  initialSampleRate: 1.0\n\
         - kind: io.l5d.recentRequests\n  sampleRate: 1.0\n",
        collector.port()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    namerd::server::start(&config).await.unwrap()
}

/// `curl` against `url` with `headers`: (status, body).
async fn curl(url: String, headers: &[(&str, String)]) -> (u16, String) {
    let mut command = std::process::Command::new("curl");
    command.args(["-sS", "-o", "-", "-w", "\n%{http_code}"]);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(url);
    let output = tokio::task::spawn_blocking(move || command.output().expect("curl runs"))
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

fn hex(id: u64) -> String {
    format!("{id:016x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_spans_in_their_callers_traces() {
    if !integration::tls_clients::curl_available() {
        return;
    }
    let (collector_addr, collector) = SpanCollector::start().await;
    let namerd = start(collector_addr).await;
    let api = namerd.api_addrs[0];

    // A caller's context in Linkerd's header: span, parent, trace, flags
    // (sampled and known).
    let (caller_span, caller_trace) = (0x1111_2222_3333_4444_u64, 0x0a0b_0c0d_0e0f_0102_u64);
    let mut context = Vec::new();
    for word in [caller_span, 0, caller_trace, 6] {
        context.extend_from_slice(&word.to_be_bytes());
    }
    let l5d = base64::engine::general_purpose::STANDARD.encode(context);
    let (status, body) = curl(
        format!("http://{api}/api/1/dtabs/default"),
        &[("l5d-ctx-trace", l5d)],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // And one in B3 headers, to a namespace that is not there.
    let (b3_span, b3_trace) = (0x5555_6666_7777_8888_u64, 0x0102_0304_0506_0708_u64);
    let (status, _) = curl(
        format!("http://{api}/api/1/dtabs/missing"),
        &[
            ("X-B3-TraceId", hex(b3_trace)),
            ("X-B3-SpanId", hex(b3_span)),
            ("X-B3-Sampled", "1".into()),
        ],
    )
    .await;
    assert_eq!(status, 404);

    let spans = collector.wait_for(2, SpanCollector::zipkin_spans).await;
    let span_of = |trace: u64| {
        spans
            .iter()
            .find(|s| s["traceId"] == hex(trace).as_str())
            .unwrap_or_else(|| panic!("no span of trace {trace:x} in {spans:#?}"))
    };
    let found = span_of(caller_trace);
    assert_eq!(found["kind"], "SERVER");
    assert_eq!(found["parentId"], hex(caller_span).as_str());
    assert_eq!(found["localEndpoint"]["serviceName"], "namerd");
    assert_eq!(found["localEndpoint"]["port"], api.port());
    assert_eq!(found["name"], "GET /api/1/dtabs/default");
    assert_eq!(found["tags"]["http.status_code"], "200");
    let missing = span_of(b3_trace);
    assert_eq!(missing["parentId"], hex(b3_span).as_str());
    assert_eq!(missing["tags"]["http.status_code"], "404");

    // The admin port lists both, newest first.
    let admin = namerd.admin_addr;
    let mut rows = Vec::new();
    for _ in 0..100 {
        let (status, body) = curl(format!("http://{admin}/requests.json"), &[]).await;
        assert_eq!(status, 200, "{body}");
        rows = serde_json::from_str::<Vec<Value>>(&body).unwrap();
        if rows.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests: Vec<&str> = rows
        .iter()
        .map(|r| r["request"].as_str().unwrap())
        .collect();
    assert_eq!(
        requests,
        ["GET /api/1/dtabs/missing", "GET /api/1/dtabs/default"]
    );
    assert_eq!(rows[0]["router"], "namerd");
    assert_eq!(rows[0]["status"], "404");
    assert_eq!(rows[1]["server"], api.to_string());
    namerd.stop().await;
}
