//! `io.l5d.curator` against a real ZooKeeper: instances registered the way
//! Curator's service discovery writes them are seen live through the
//! interpreter, the SSL port is preferred, a missing service is negative,
//! and an outage keeps the last instances.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use integration::servers::ZooKeeper;
use namers::config::{NamerConfig, NamerContext, build_namers};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Activity, Addr, Binding, Bound, Interpreter, Live, NameInterpreter, NamerList};
use zookeeper_client as zk;

const WAIT: Duration = Duration::from_secs(20);

fn inet() -> Arc<InetResolver> {
    Arc::new(InetResolver::system().unwrap())
}

fn namers(server: &ZooKeeper) -> NamerList {
    let yaml = format!(
        "- kind: io.l5d.curator\n  experimental: true\n  zkAddrs:\n  - host: 127.0.0.1\n    port: {}\n  basePath: /curator\n",
        server.port()
    );
    let configs: Vec<NamerConfig> = namers::config::parse("namers.yaml", &yaml).unwrap();
    build_namers(&configs, &NamerContext { inet: inet() }).unwrap()
}

fn bind(interpreter: &Interpreter, dtab: &str, name: &str) -> Binding {
    interpreter.bind(&Dtab::read(dtab).unwrap(), &Path::read(name).unwrap())
}

async fn until<T: Debug>(live: &mut Live<T>, what: &str, ok: impl Fn(&T) -> bool) -> Arc<T> {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            live.mark_seen();
            let value = live.load();
            if ok(&value) {
                return value;
            }
            live.changed().await;
        }
    })
    .await;
    match waited {
        Ok(value) => value,
        Err(_) => panic!(
            "timed out waiting for {what}; the value is {:?}",
            live.load()
        ),
    }
}

async fn bound(binding: &mut Binding, id: &str) -> Bound {
    let tree = until(
        binding,
        &format!("a leaf {id}"),
        |t| matches!(t, Activity::Ok(NameTree::Leaf(b)) if b.id.show() == id),
    )
    .await;
    match &*tree {
        Activity::Ok(NameTree::Leaf(b)) => b.clone(),
        _ => unreachable!(),
    }
}

/// The endpoints as `ip:port` plus ` ssl` for the SSL ones, sorted.
fn shown(addr: &Addr) -> Option<Vec<String>> {
    let Addr::Bound(set) = addr else {
        return None;
    };
    Some(
        set.endpoints()
            .iter()
            .map(|e| {
                let ssl = e.meta.get("ssl") == Some(&serde_json::Value::Bool(true));
                format!("{}{}", e.addr, if ssl { " ssl" } else { "" })
            })
            .collect(),
    )
}

async fn until_endpoints(addr: &mut Live<Addr>, expected: &[&str]) {
    until(addr, &format!("{expected:?}"), |a| {
        shown(a).is_some_and(|found| found == expected)
    })
    .await;
}

/// A service instance as Curator's `JsonInstanceSerializer` writes it.
fn instance(id: &str, address: &str, port: u16, ssl_port: Option<u16>) -> String {
    serde_json::json!({
        "name": "web", "id": id, "address": address, "port": port, "sslPort": ssl_port,
        "payload": null, "registrationTimeUTC": 1_700_000_000_000_u64,
        "serviceType": "DYNAMIC",
        "uriSpec": {"parts": [{"value": "scheme", "variable": true}, {"value": "://", "variable": false}]}
    })
    .to_string()
}

/// Registers instances as Curator does: the service's znode persistent,
/// each instance an ephemeral znode named by its id.
struct Registry {
    client: zk::Client,
}

impl Registry {
    async fn connect(server: &ZooKeeper) -> Registry {
        let client = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .connect(&server.connect_string())
            .await
            .unwrap();
        Registry { client }
    }

    async fn register(&self, service: &str, id: &str, data: &str) {
        let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        self.client
            .mkdir(&format!("/curator/{service}"), &persistent)
            .await
            .unwrap();
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        self.client
            .create(
                &format!("/curator/{service}/{id}"),
                data.as_bytes(),
                &ephemeral,
            )
            .await
            .unwrap();
    }

    async fn update(&self, service: &str, id: &str, data: &str) {
        let path = format!("/curator/{service}/{id}");
        self.client
            .set_data(&path, data.as_bytes(), None)
            .await
            .unwrap();
    }

    async fn unregister(&self, service: &str, id: &str) {
        let path = format!("/curator/{service}/{id}");
        self.client.delete(&path, None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_follows_the_registered_instances() {
    let Some(mut server) = ZooKeeper::start() else {
        return;
    };
    let registry = Registry::connect(&server).await;
    registry
        .register("web", "a1", &instance("a1", "127.0.0.1", 8080, None))
        .await;
    let namers = namers(&server);
    let interpreter = Interpreter::new(namers.clone(), SystemNamers::new(inet()));
    let dtab = "/svc => /#/io.l5d.curator | /$/inet/127.0.0.1/9999";
    let mut binding = bind(&interpreter, dtab, "/svc/web/api");
    let found = bound(&mut binding, "/#/io.l5d.curator/web").await;
    assert_eq!(found.residual.show(), "/api");
    let mut addr = found.addr.clone();
    until_endpoints(&mut addr, &["127.0.0.1:8080"]).await;

    // A new instance with an SSL port is reached on it; a changed port and
    // an unregistered instance are seen too.
    registry
        .register("web", "b2", &instance("b2", "127.0.0.2", 8080, Some(8443)))
        .await;
    until_endpoints(&mut addr, &["127.0.0.1:8080", "127.0.0.2:8443 ssl"]).await;
    registry
        .update("web", "a1", &instance("a1", "127.0.0.1", 8081, None))
        .await;
    until_endpoints(&mut addr, &["127.0.0.1:8081", "127.0.0.2:8443 ssl"]).await;
    registry.unregister("web", "b2").await;
    until_endpoints(&mut addr, &["127.0.0.1:8081"]).await;

    // ZooKeeper goes away: the last instances stay.
    tokio::task::block_in_place(|| server.stop());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        shown(&addr.load()),
        Some(vec!["127.0.0.1:8081".to_string()])
    );
    let changes = namers[0].1.counters()[0].clone();
    assert_eq!(changes.name, "state_changes");
    assert!(changes.value >= 1, "{changes:?}");

    // It comes back; the session (30 s) survived, so the registry's
    // instance is still there, and new changes arrive.
    tokio::task::block_in_place(|| server.restart());
    let registry = Registry::connect(&server).await;
    registry
        .register("web", "c3", &instance("c3", "127.0.0.3", 8080, None))
        .await;
    until_endpoints(&mut addr, &["127.0.0.1:8081", "127.0.0.3:8080"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_services_are_negative_and_the_dtab_falls_back() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let interpreter = Interpreter::new(namers(&server), SystemNamers::new(inet()));
    let dtab = "/svc => /#/io.l5d.curator | /$/inet/127.0.0.1/9999";
    let mut binding = bind(&interpreter, dtab, "/svc/api/v1");
    let fallback = bound(&mut binding, "/$/inet/127.0.0.1/9999").await;
    assert_eq!(fallback.residual.show(), "/api/v1");

    // Registering the service makes the namer's answer win.
    let registry = Registry::connect(&server).await;
    registry
        .register("api", "x", &instance("x", "127.0.0.4", 7070, None))
        .await;
    let found = bound(&mut binding, "/#/io.l5d.curator/api").await;
    assert_eq!(found.residual.show(), "/v1");

    // Its last instance goes: negative again (an answer, not an outage).
    registry.unregister("api", "x").await;
    bound(&mut binding, "/$/inet/127.0.0.1/9999").await;
}
