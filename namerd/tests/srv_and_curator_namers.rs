//! namerd serving names bound through `io.l5d.dnssrv` (against dnsmasq)
//! and `io.l5d.curator` (against ZooKeeper), configured as Linkerd's docs
//! configure them: what `/api/1/resolve` and `/api/1/bind` answer.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use integration::servers::{Dnsmasq, ZooKeeper};
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

/// namerd with `default: <dtab>` and these `namers:` entries.
async fn namerd_with(dtab: &str, namers: &str) -> namerd::server::Running {
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: {dtab}\n\
         namers:\n{namers}interfaces:\n- kind: io.l5d.httpController\n  port: 0\n"
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    namerd::server::start(&config).await.unwrap()
}

/// Asks `target` until the body contains `want` (or 10 s pass).
async fn until(api: SocketAddr, target: &str, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(api, target).await;
        if status == 200 && body.contains(want) || tokio::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namerd_resolves_srv_records() {
    let Some(dns) = Dnsmasq::start(
        "srv-host=_http._tcp.web.test,web-a.test,8080,0,10\n\
         srv-host=_http._tcp.web.test,web-b.test,8081,0,30\n\
         host-record=web-a.test,127.0.0.11\n\
         host-record=web-b.test,127.0.0.12\n",
    ) else {
        return;
    };
    let namers = format!(
        "- kind: io.l5d.dnssrv\n  experimental: true\n  refreshIntervalSeconds: 5\n  dnsHosts:\n  - {}\n",
        dns.addr()
    );
    let running = namerd_with("/srv => /#/io.l5d.dnssrv;/svc => /srv", &namers).await;
    let api = running.api_addrs[0];
    let resolved = until(
        api,
        "/api/1/resolve/default?path=/svc/_http._tcp.web.test",
        "\"bound\"",
    )
    .await;
    assert!(
        resolved.contains(r#""ip":"127.0.0.11","port":8080,"meta":{"endpoint_addr_weight":10.0}"#)
            && resolved
                .contains(r#""ip":"127.0.0.12","port":8081,"meta":{"endpoint_addr_weight":30.0}"#),
        "{resolved}"
    );
    let (_, bound) = get(api, "/api/1/bind/default?path=/svc/_http._tcp.web.test/api").await;
    assert!(
        bound.contains(r#""id":"/#/io.l5d.dnssrv/_http._tcp.web.test""#)
            && bound.contains(r#""path":"/api""#),
        "{bound}"
    );
    let missing = until(
        api,
        "/api/1/bind/default?path=/svc/_http._tcp.nothing.test",
        "neg",
    )
    .await;
    assert!(missing.contains(r#""type":"neg""#), "{missing}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namerd_resolves_curator_services() {
    use zookeeper_client as zk;
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&server.connect_string())
        .await
        .unwrap();
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.mkdir("/curator/web", &persistent).await.unwrap();
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let data = r#"{"name":"web","id":"i1","address":"127.0.0.1","port":8080,"sslPort":8443,"payload":null,"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null}"#;
    client
        .create("/curator/web/i1", data.as_bytes(), &ephemeral)
        .await
        .unwrap();
    let namers = format!(
        "- kind: io.l5d.curator\n  experimental: true\n  zkAddrs:\n  - host: 127.0.0.1\n    port: {}\n  basePath: /curator\n",
        server.port()
    );
    let running = namerd_with("/svc => /#/io.l5d.curator", &namers).await;
    let api = running.api_addrs[0];
    let resolved = until(api, "/api/1/resolve/default?path=/svc/web", "\"bound\"").await;
    assert!(
        resolved.contains(r#""ip":"127.0.0.1","port":8443,"meta":{"ssl":true}"#),
        "{resolved}"
    );
    client.delete("/curator/web/i1", None).await.unwrap();
    let gone = until(api, "/api/1/resolve/default?path=/svc/web", "neg").await;
    assert!(gone.contains(r#""type":"neg""#), "{gone}");
    running.stop().await;
}
