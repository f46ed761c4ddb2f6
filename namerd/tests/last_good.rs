//! A binding outlives its last watcher: a one-off `/api/1/resolve` during a
//! Consul outage answers the last good endpoints, as long as the name was
//! resolved within `bindingCache.idleTtlSecs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use integration::consul::{FakeConsul, Instance};
use integration::k8s::{Endpoints, FakeKube, Service, TargetPort};
use integration::servers::ZooKeeper;
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

/// namerd over `consul`, with `default: /svc => /#/io.l5d.consul/dc1`.
async fn namerd(consul: &FakeConsul, extra: &str) -> namerd::server::Running {
    let namers = format!(
        "- kind: io.l5d.consul\n  host: 127.0.0.1\n  port: {}\n",
        consul.addr().port()
    );
    namerd_with("/svc => /#/io.l5d.consul/dc1", &namers, extra).await
}

/// namerd with `default: <dtab>` and these `namers:` entries.
async fn namerd_with(dtab: &str, namers: &str, extra: &str) -> namerd::server::Running {
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: {dtab}\n\
         namers:\n{namers}interfaces:\n- kind: io.l5d.httpController\n  port: 0\n{extra}"
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    namerd::server::start(&config).await.unwrap()
}

/// Resolves /svc/web once, waiting for Consul's first answer.
async fn resolve_web(api: SocketAddr) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(api, "/api/1/resolve/default?path=/svc/web").await;
        if status == 200 && body.contains("\"bound\"") || tokio::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resolves web, stops Consul (port closed, connections dropped), waits two
/// seconds, and resolves web again: what the second answer says.
async fn resolve_across_an_outage(extra: &str) -> (String, String) {
    let consul = FakeConsul::start().await.unwrap();
    consul.register(&Instance::new("web", "127.0.0.1", 8080));
    let running = namerd(&consul, extra).await;
    let api = running.api_addrs[0];
    let before = resolve_web(api).await;
    consul.set_refusing(true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = get(api, "/api/1/resolve/default?path=/svc/web").await;
    running.stop().await;
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_resolve_during_a_consul_outage_gets_the_last_good_endpoints() {
    let (before, after) = resolve_across_an_outage("").await;
    assert!(before.contains("\"port\":8080"), "{before}");
    assert!(
        after.contains("\"bound\"") && after.contains("\"port\":8080"),
        "the last good endpoints, not: {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_inactive_ttl_the_binding_goes_with_its_last_watcher() {
    let (before, after) = resolve_across_an_outage("bindingCache:\n  idleTtlSecs: 0\n").await;
    assert!(before.contains("\"port\":8080"), "{before}");
    assert!(!after.contains("\"port\":8080"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_resolve_during_a_kubernetes_outage_gets_the_last_good_endpoints() {
    let kube = FakeKube::start().await.unwrap();
    kube.apply_service(&Service::new("default", "web").port(
        Some("http"),
        80,
        TargetPort::Number(8080),
    ));
    kube.apply_endpoints(
        &Endpoints::new("default", "web")
            .ready("127.0.0.1", Some("node-a"))
            .port(Some("http"), 8080),
    );
    let namers = format!(
        "- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {}\n",
        kube.addr().port()
    );
    let running = namerd_with("/svc => /#/io.l5d.k8s/default/http", &namers, "").await;
    let api = running.api_addrs[0];
    let before = resolve_web(api).await;
    assert!(before.contains("\"port\":8080"), "{before}");
    // Every request answered 503 and the open watches cut.
    kube.set_down(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = get(api, "/api/1/resolve/default?path=/svc/web").await;
    assert!(
        after.contains("\"bound\"") && after.contains("\"port\":8080"),
        "the last good endpoints, not: {after}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_resolve_with_zookeeper_killed_gets_the_last_good_endpoints() {
    let Some(mut zk) = ZooKeeper::start() else {
        return;
    };
    announce(&zk.connect_string(), "/discovery/web", 8080).await;
    let namers = format!(
        "- kind: io.l5d.serversets\n  zkAddrs:\n  - host: 127.0.0.1\n    port: {}\n",
        zk.port()
    );
    let running = namerd_with("/svc => /#/io.l5d.serversets/discovery", &namers, "").await;
    let api = running.api_addrs[0];
    let before = resolve_web(api).await;
    assert!(before.contains("\"port\":8080"), "{before}");
    // The server process is killed: its connections drop.
    tokio::task::block_in_place(|| zk.stop());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = get(api, "/api/1/resolve/default?path=/svc/web").await;
    assert!(
        after.contains("\"bound\"") && after.contains("\"port\":8080"),
        "the last good endpoints, not: {after}"
    );
    running.stop().await;
}

/// Announces a serverset member at 127.0.0.1:`port` under `set`, as
/// Finagle's announcer writes it.
async fn announce(connect: &str, set: &str, port: u16) {
    use zookeeper_client as zk;
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(connect)
        .await
        .unwrap();
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.mkdir(set, &persistent).await.unwrap();
    let member = format!(
        r#"{{"serviceEndpoint":{{"host":"127.0.0.1","port":{port}}},"additionalEndpoints":{{}},"status":"ALIVE"}}"#
    );
    let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    client
        .create(&format!("{set}/member_"), member.as_bytes(), &ephemeral)
        .await
        .unwrap();
    // The member lives as long as the session: keep it open.
    std::mem::forget(client);
}
