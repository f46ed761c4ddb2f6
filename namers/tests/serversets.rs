//! `io.l5d.serversets` and `io.l5d.zkLeader` against a real ZooKeeper:
//! members written the way Finagle's announcers write them are seen live
//! through the interpreter, through outages and session expiry, and the
//! watches end with the last binding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use futures_util::future::BoxFuture;
use integration::servers::ZooKeeper;
use namers::config::{NamerContext, build_namers};
use namers::serversets::{HostPort, SHARD_KEY, ServersetsNamer, ServiceInstance, Status};
use namers::system::SystemNamers;
use namers::system::inet::{DnsAnswer, DnsResolve, InetResolver};
use namers::zk_leader::ZkLeaderNamer;
use namers::{Activity, Addr, Binding, Bound, Interpreter, Live, NameInterpreter, Namer};
use zookeeper_client as zk;

const WAIT: Duration = Duration::from_secs(20);

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn inet() -> Arc<InetResolver> {
    Arc::new(InetResolver::system().unwrap())
}

/// DNS for tests: `<name>.test` hosts resolve to 127.0.0.5.
struct TestDns;

impl DnsResolve for TestDns {
    fn resolve(&self, host: &str) -> BoxFuture<'static, Result<DnsAnswer, String>> {
        let ips = if host.ends_with(".test") {
            vec![std::net::Ipv4Addr::new(127, 0, 0, 5).into()]
        } else {
            Vec::new()
        };
        let valid_until = tokio::time::Instant::now() + Duration::from_secs(60);
        Box::pin(async move { Ok(DnsAnswer { ips, valid_until }) })
    }
}

fn serversets(server: &ZooKeeper, session_timeout: Duration) -> Arc<ServersetsNamer> {
    ServersetsNamer::new(
        path("/#/io.l5d.serversets"),
        server.connect_string(),
        session_timeout,
        Arc::new(InetResolver::new(Arc::new(TestDns))),
    )
}

fn interpreter(prefix: &str, namer: Arc<dyn Namer>) -> Interpreter {
    Interpreter::new(vec![(path(prefix), namer)], SystemNamers::new(inet()))
}

fn bind(interpreter: &Interpreter, dtab: &str, name: &str) -> Binding {
    interpreter.bind(&Dtab::read(dtab).unwrap(), &path(name))
}

/// Waits until the live value satisfies `ok`.
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
            "timed out waiting for {what}; the value is still {:?}",
            live.load()
        ),
    }
}

fn leaf(tree: &Activity<NameTree<Bound>>) -> Option<&Bound> {
    match tree {
        Activity::Ok(NameTree::Leaf(bound)) => Some(bound),
        _ => None,
    }
}

/// Waits until the binding is one bound name with this id, and returns it.
async fn bound(binding: &mut Binding, id: &str) -> Bound {
    let tree = until(binding, &format!("a leaf {id}"), |t| {
        leaf(t).is_some_and(|b| b.id.show() == id)
    })
    .await;
    leaf(&tree).cloned().unwrap()
}

fn sockets(addr: &Addr) -> Option<Vec<String>> {
    match addr {
        Addr::Bound(set) => Some(set.endpoints().iter().map(|e| e.addr.to_string()).collect()),
        _ => None,
    }
}

/// Waits until the address is bound to exactly these `ip:port`s.
async fn until_sockets(addr: &mut Live<Addr>, expected: &[&str]) -> Arc<Addr> {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    until(addr, &format!("{expected:?}"), |a| {
        sockets(a).is_some_and(|mut s| {
            s.sort();
            s == expected
        })
    })
    .await
}

fn instance(host: &str, port: u16, status: Status, shard: Option<i32>) -> ServiceInstance {
    let mut additional = BTreeMap::new();
    additional.insert(
        "http".to_string(),
        HostPort {
            host: host.to_string(),
            port: port + 1000,
        },
    );
    ServiceInstance {
        service_endpoint: Some(HostPort {
            host: host.to_string(),
            port,
        }),
        additional_endpoints: additional,
        status,
        shard,
    }
}

fn alive(host: &str, port: u16) -> String {
    instance(host, port, Status::Alive, None).to_json()
}

/// Writes members as Finagle's announcers do: persistent parents, and an
/// ephemeral sequential `member_` znode per member.
struct Announcer {
    client: zk::Client,
}

impl Announcer {
    async fn connect(server: &ZooKeeper) -> Announcer {
        let client = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .connect(&server.connect_string())
            .await
            .unwrap();
        Announcer { client }
    }

    async fn mkdir(&self, dir: &str) {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        retry(|| self.client.mkdir(dir, &options)).await;
    }

    /// Announces a member of `set`; returns its znode path.
    async fn announce(&self, set: &str, data: &str) -> String {
        self.mkdir(set).await;
        let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let prefix = format!("{set}/member_");
        let (_, sequence) = retry(|| self.client.create(&prefix, data.as_bytes(), &options)).await;
        format!("{prefix}{sequence}")
    }

    async fn update(&self, member: &str, data: &str) {
        retry(|| self.client.set_data(member, data.as_bytes(), None)).await;
    }

    async fn remove(&self, member: &str) {
        retry(|| self.client.delete(member, None)).await;
    }
}

/// Retries a call that may meet a reconnecting session.
async fn retry<T, F: std::future::Future<Output = Result<T, zk::Error>>>(
    mut call: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("retrying a ZooKeeper call: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("ZooKeeper call failed: {e}"),
        }
    }
}

/// Runs a blocking harness call (stop, restart) without stalling the
/// runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_follows_the_members() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let zk = Announcer::connect(&server).await;
    let set = "/discovery/prod/web";
    let one = zk
        .announce(
            set,
            &instance("127.0.0.1", 8001, Status::Alive, Some(3)).to_json(),
        )
        .await;
    let two = zk.announce(set, &alive("127.0.0.2", 8002)).await;
    assert!(
        one.starts_with("/discovery/prod/web/member_00000000"),
        "{one}"
    );

    let namer = serversets(&server, Duration::from_secs(10));
    let interpreter = interpreter("/#/io.l5d.serversets", namer.clone());
    let dtab = "/svc=>/#/io.l5d.serversets/discovery/prod";
    let mut binding = bind(&interpreter, dtab, "/svc/web");
    let web = bound(&mut binding, "/#/io.l5d.serversets/discovery/prod/web").await;
    assert!(web.residual.is_empty());
    let mut addr = web.addr.clone();
    let found = until_sockets(&mut addr, &["127.0.0.1:8001", "127.0.0.2:8002"]).await;
    let Addr::Bound(set_found) = &*found else {
        unreachable!()
    };
    let shards: Vec<_> = set_found
        .endpoints()
        .iter()
        .map(|e| e.meta.get(SHARD_KEY).cloned())
        .collect();
    assert_eq!(shards, [Some(serde_json::Value::from(3)), None]);

    // Added, removed, and no longer alive.
    let three = zk.announce(set, &alive("127.0.0.3", 8003)).await;
    until_sockets(
        &mut addr,
        &["127.0.0.1:8001", "127.0.0.2:8002", "127.0.0.3:8003"],
    )
    .await;
    zk.remove(&one).await;
    until_sockets(&mut addr, &["127.0.0.2:8002", "127.0.0.3:8003"]).await;
    zk.update(
        &two,
        &instance("127.0.0.2", 8002, Status::Dead, None).to_json(),
    )
    .await;
    until_sockets(&mut addr, &["127.0.0.3:8003"]).await;
    zk.update(&two, &alive("127.0.0.2", 8002)).await;
    until_sockets(&mut addr, &["127.0.0.2:8002", "127.0.0.3:8003"]).await;
    // Data that is not a serverset entry leaves the member out.
    zk.update(&three, "not json").await;
    until_sockets(&mut addr, &["127.0.0.2:8002"]).await;
    // The binding was not recomputed: only the address changed.
    assert!(leaf(&binding.load()).is_some_and(|b| b.id == web.id));

    // A named endpoint, with the rest of the path as the residual.
    let mut http = bind(&interpreter, dtab, "/svc/web:http/api/v1");
    let named = bound(&mut http, "/#/io.l5d.serversets/discovery/prod/web:http").await;
    assert_eq!(named.residual.show(), "/api/v1");
    let mut named_addr = named.addr.clone();
    until_sockets(&mut named_addr, &["127.0.0.2:9002"]).await;

    // Host names are resolved.
    zk.announce(set, &alive("web-5.test", 8005)).await;
    until_sockets(&mut addr, &["127.0.0.2:8002", "127.0.0.5:8005"]).await;
    until_sockets(&mut named_addr, &["127.0.0.2:9002", "127.0.0.5:9005"]).await;

    // The longest prefix that is a serverset wins; the rest is residual.
    let mut deep = bind(&interpreter, dtab, "/svc/web/extra/more");
    let longest = bound(&mut deep, "/#/io.l5d.serversets/discovery/prod/web").await;
    assert_eq!(longest.residual.show(), "/extra/more");
    assert!(
        longest.addr.same_source(&web.addr),
        "one address per serverset"
    );

    // When a longer prefix comes into being, it takes over live.
    zk.announce("/discovery/prod/web/extra", &alive("127.0.0.4", 8004))
        .await;
    let longer = bound(&mut deep, "/#/io.l5d.serversets/discovery/prod/web/extra").await;
    assert_eq!(longer.residual.show(), "/more");
    let mut longer_addr = longer.addr.clone();
    until_sockets(&mut longer_addr, &["127.0.0.4:8004"]).await;

    // An endpoint no member has: /discovery/prod has no members either.
    let mut none = bind(&interpreter, dtab, "/svc/web:thrift");
    until(&mut none, "neg", |t| {
        matches!(t, Activity::Ok(NameTree::Neg))
    })
    .await;

    // Watches end with the last handle.
    assert!(namer.watched_count() >= 3, "{}", namer.watched_count());
    drop((binding, http, deep, none, web, named, longest, longer));
    drop((addr, named_addr, longer_addr));
    let mut watched = namer.watched();
    tokio::time::timeout(WAIT, watched.wait_for(|n| *n == 0))
        .await
        .expect("watches still running")
        .unwrap();
    assert_eq!(namer.lookup_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_serversets_are_negative_and_the_dtab_falls_back() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    // Built from config, through the namer registry.
    let yaml = format!(
        "- kind: io.l5d.serversets\n  zkAddrs:\n  - host: 127.0.0.1\n    port: {}\n",
        server.port()
    );
    let configs: Vec<namers::config::NamerConfig> =
        namers::config::parse("namers.yaml", &yaml).unwrap();
    let context = NamerContext { inet: inet() };
    let namers = build_namers(&configs, &context).unwrap();
    assert_eq!(namers[0].0.show(), "/#/io.l5d.serversets");
    let interpreter = Interpreter::new(namers, SystemNamers::new(inet()));

    let dtab = "/svc=>/$/inet/127.0.0.1/9999;/svc=>/#/io.l5d.serversets/services";
    let mut binding = bind(&interpreter, dtab, "/svc/api");
    let fallback = bound(&mut binding, "/$/inet/127.0.0.1/9999").await;
    assert_eq!(fallback.residual.show(), "/api");

    // Once the serverset has a member, the binding moves to it.
    let zk = Announcer::connect(&server).await;
    let member = zk
        .announce("/services/api", &alive("127.0.0.9", 8009))
        .await;
    let api = bound(&mut binding, "/#/io.l5d.serversets/services/api").await;
    let mut addr = api.addr.clone();
    until_sockets(&mut addr, &["127.0.0.9:8009"]).await;
    // And back when it has none: an empty serverset is negative too.
    zk.remove(&member).await;
    bound(&mut binding, "/$/inet/127.0.0.1/9999").await;

    // Without a fallback, the name is negative.
    let mut alone = bind(
        &interpreter,
        "/svc=>/#/io.l5d.serversets/nowhere",
        "/svc/x/y",
    );
    until(&mut alone, "neg", |t| {
        matches!(t, Activity::Ok(NameTree::Neg))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_last_members_and_recovery_sees_new_changes() {
    let Some(mut server) = ZooKeeper::start() else {
        return;
    };
    let zk = Announcer::connect(&server).await;
    zk.announce("/ss/db", &alive("127.0.0.1", 5432)).await;
    let namer = serversets(&server, Duration::from_secs(10));
    let interpreter = interpreter("/#/io.l5d.serversets", namer.clone());
    let mut binding = bind(&interpreter, "/svc=>/#/io.l5d.serversets/ss", "/svc/db");
    let db = bound(&mut binding, "/#/io.l5d.serversets/ss/db").await;
    let mut addr = db.addr.clone();
    until_sockets(&mut addr, &["127.0.0.1:5432"]).await;
    let session = namer.session_id().await;

    blocking(|| server.stop());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sockets(&addr.load()),
        Some(vec!["127.0.0.1:5432".to_string()])
    );
    assert!(leaf(&binding.load()).is_some_and(|b| b.id == db.id));
    blocking(|| server.restart());

    // The session survived the restart; its watches were re-armed.
    zk.announce("/ss/db", &alive("127.0.0.2", 5432)).await;
    until_sockets(&mut addr, &["127.0.0.1:5432", "127.0.0.2:5432"]).await;
    assert_eq!(namer.session_id().await, session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_replaced_and_everything_read_again() {
    let Some(mut server) = ZooKeeper::start() else {
        return;
    };
    let zk = Announcer::connect(&server).await;
    let first = zk.announce("/ss/cache", &alive("127.0.0.1", 6379)).await;
    // A short session, so that the client gives it up during the outage.
    let namer = serversets(&server, Duration::from_secs(2));
    let interpreter = interpreter("/#/io.l5d.serversets", namer.clone());
    let mut binding = bind(&interpreter, "/svc=>/#/io.l5d.serversets/ss", "/svc/cache");
    let cache = bound(&mut binding, "/#/io.l5d.serversets/ss/cache").await;
    let mut addr = cache.addr.clone();
    until_sockets(&mut addr, &["127.0.0.1:6379"]).await;
    let old_session = namer.session_id().await.expect("a session");

    blocking(|| server.stop());
    // Longer than the session timeout (the client expires it after 1.4x).
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        namer.session_id().await,
        None,
        "the session should have expired"
    );
    assert_eq!(
        sockets(&addr.load()),
        Some(vec!["127.0.0.1:6379".to_string()])
    );
    blocking(|| server.restart());

    // Changes made before the namer is back are read on the new session.
    zk.remove(&first).await;
    zk.announce("/ss/cache", &alive("127.0.0.2", 6379)).await;
    until_sockets(&mut addr, &["127.0.0.2:6379"]).await;
    let new_session = namer.session_id().await.expect("a new session");
    assert_ne!(new_session, old_session);
    // And its watches work.
    zk.announce("/ss/cache", &alive("127.0.0.3", 6379)).await;
    until_sockets(&mut addr, &["127.0.0.2:6379", "127.0.0.3:6379"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_leader_follows_the_lowest_member() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let first = Announcer::connect(&server).await;
    let second = Announcer::connect(&server).await;
    let group = "/election/scheduler";
    first.announce(group, "127.0.0.1:7001").await;
    let runner_up = second.announce(group, "127.0.0.1:7002").await;

    let namer = ZkLeaderNamer::new(
        path("/#/io.l5d.zkLeader"),
        server.connect_string(),
        Duration::from_secs(10),
        inet(),
    );
    let interpreter = interpreter("/#/io.l5d.zkLeader", namer.clone());
    let mut binding = bind(
        &interpreter,
        "/svc=>/#/io.l5d.zkLeader/election",
        "/svc/scheduler/api",
    );
    let leader = bound(&mut binding, "/#/io.l5d.zkLeader/election/scheduler").await;
    assert_eq!(leader.residual.show(), "/api");
    let mut addr = leader.addr.clone();
    until_sockets(&mut addr, &["127.0.0.1:7001"]).await;

    // The leader's session ends: its ephemeral member goes, the next leads.
    drop(first);
    until_sockets(&mut addr, &["127.0.0.1:7002"]).await;
    // A newer member does not take over.
    let third = Announcer::connect(&server).await;
    third.announce(group, "127.0.0.1:7003").await;
    second.remove(&runner_up).await;
    until_sockets(&mut addr, &["127.0.0.1:7003"]).await;

    drop((binding, leader, addr));
    let mut watched = namer.watched();
    tokio::time::timeout(WAIT, watched.wait_for(|n| *n == 0))
        .await
        .expect("watches still running")
        .unwrap();
}
