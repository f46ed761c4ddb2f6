//! namerd serving names bound through `io.l5d.k8s.external` and
//! `io.l5d.k8s.ns`, configured as Linkerd's docs configure them, against the
//! in-process fake of the Kubernetes API server (`integration::k8s`), not a
//! real cluster: what `/api/1/resolve` and `/api/1/bind` answer, and how
//! they follow a change.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use integration::k8s::{Endpoints, FakeKube, Service, TargetPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One GET on a fresh connection: the status and the body.
async fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: namerd\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Asks `target` until the body contains `want` (or 10 s pass).
async fn until(api: SocketAddr, target: &str, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(api, target).await;
        if status == 200 && body.contains(want) || tokio::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namerd_binds_load_balancers_and_one_namespaces_services() {
    let fake = FakeKube::start().await.unwrap();
    let port = fake.addr().port();
    fake.apply_service(
        &Service::new("prod", "web")
            .port(Some("http"), 80, TargetPort::Number(8080))
            .load_balancer(Some("203.0.113.7"), None),
    );
    // `io.l5d.k8s.ns` reads its namespace from an environment variable;
    // the test process cannot set one (that is unsafe with threads), so it
    // names one cargo sets for every test: CARGO_PKG_NAME, here `namerd`.
    let ns = env!("CARGO_PKG_NAME");
    fake.apply_service(&Service::new(ns, "api").port(Some("grpc"), 90, TargetPort::Number(9000)));
    fake.apply_endpoints(
        &Endpoints::new(ns, "api")
            .subset()
            .ready("10.1.0.1", None)
            .port(Some("grpc"), 9000),
    );
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    \
         default: /ext => /#/io.l5d.k8s.external/prod/http;/local => /#/io.l5d.k8s.ns/grpc\n\
         namers:\n\
         - kind: io.l5d.k8s.external\n  experimental: true\n  host: 127.0.0.1\n  port: {port}\n\
         - kind: io.l5d.k8s.ns\n  host: 127.0.0.1\n  port: {port}\n  envVar: CARGO_PKG_NAME\n\
         interfaces:\n- kind: io.l5d.httpController\n  port: 0\n"
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    let api = running.api_addrs[0];

    let ext = "/api/1/resolve/default?path=/ext/web";
    let resolved = until(api, ext, "\"bound\"").await;
    assert!(
        resolved.contains(r#""ip":"203.0.113.7","port":80"#),
        "{resolved}"
    );
    let (_, bound) = get(api, "/api/1/bind/default?path=/ext/web/a").await;
    assert!(
        bound.contains(r#""id":"/#/io.l5d.k8s.external/prod/http/web""#)
            && bound.contains(r#""path":"/a""#),
        "{bound}"
    );
    fake.apply_service(
        &Service::new("prod", "web")
            .port(Some("http"), 80, TargetPort::Number(8080))
            .load_balancer(Some("203.0.113.9"), None),
    );
    let resolved = until(api, ext, "203.0.113.9").await;
    assert!(
        resolved.contains(r#""ip":"203.0.113.9","port":80"#),
        "{resolved}"
    );

    let local = "/api/1/resolve/default?path=/local/api";
    let resolved = until(api, local, "\"bound\"").await;
    assert!(
        resolved.contains(r#""ip":"10.1.0.1","port":9000"#),
        "{resolved}"
    );
    let (_, bound) = get(api, "/api/1/bind/default?path=/local/api").await;
    assert!(
        bound.contains(r#""id":"/#/io.l5d.k8s.ns/grpc/api""#),
        "{bound}"
    );
}
