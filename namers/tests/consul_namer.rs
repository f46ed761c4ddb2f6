//! The `io.l5d.consul` namer, bound live through the interpreter, against an
//! in-process fake of Consul's HTTP API (`integration::consul`), not a real
//! Consul agent: no agent can be installed where these tests run. The fake
//! follows Consul's documented catalog, health and agent endpoints
//! (blocking queries with `X-Consul-Index`, `dc`, `tag`, `passing`, tokens)
//! and can simulate outages and index resets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, Path};
use integration::consul::{FakeConsul, FakeConsulConfig, Health, Instance};
use namers::consul::{ConsulConfig, ConsulNamer, Timing};
use namers::resolve::{Resolved, choose};
use namers::system::{SystemNamers, inet::InetResolver};
use namers::{Activity, Addr, Binding, Bound, Interpreter, NameInterpreter, Namer};
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(5);

/// Short pauses so that recoveries happen within a test's patience; the
/// wait stays long, so a watch that only sees a change when its wait runs
/// out is caught.
fn timing() -> Timing {
    Timing {
        wait: Duration::from_secs(30),
        request_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        min_query_interval: Duration::from_millis(10),
    }
}

fn namer(fake: &FakeConsul, extra: serde_json::Value) -> Arc<ConsulNamer> {
    let mut config = serde_json::json!({"host": "127.0.0.1", "port": fake.addr().port()});
    if let (Some(config), serde_json::Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    serde_json::from_value::<ConsulConfig>(config)
        .unwrap()
        .build_with(Path::read("/#/io.l5d.consul").unwrap(), timing())
        .unwrap()
}

fn interpreter(namer: &Arc<ConsulNamer>) -> Interpreter {
    let system = SystemNamers::new(Arc::new(InetResolver::system().unwrap()));
    Interpreter::new(
        vec![(
            Path::read("/#/io.l5d.consul").unwrap(),
            namer.clone() as Arc<dyn Namer>,
        )],
        system,
    )
}

fn bind(interpreter: &Interpreter, dtab: &str, path: &str) -> Binding {
    interpreter.bind(&Dtab::read(dtab).unwrap(), &Path::read(path).unwrap())
}

/// What a request would be sent to: the bound name an alternative or
/// union resolves to, or `~`, `pending`, `failed: ...`.
fn chosen(binding: &Binding) -> Result<Bound, String> {
    match &*binding.load() {
        Activity::Ok(tree) => match choose(tree, &mut |_| 0) {
            Resolved::Leaf(bound) => Ok(bound.clone()),
            Resolved::Empty => Err("$".into()),
            Resolved::Neg => Err("~".into()),
        },
        Activity::Pending => Err("pending".into()),
        Activity::Failed(e) => Err(format!("failed: {e}")),
    }
}

/// The id of the chosen bound name, or why there is none.
fn chosen_id(binding: &Binding) -> String {
    chosen(binding).map_or_else(|why| why, |b| b.id.show())
}

/// The endpoints of an address, sorted, as `ip:port`; or its state.
fn endpoints(addr: &Addr) -> Vec<String> {
    match addr {
        Addr::Bound(set) => set.endpoints().iter().map(|e| e.addr.to_string()).collect(),
        Addr::Neg => vec!["neg".into()],
        Addr::Pending => vec!["pending".into()],
        Addr::Failed(why) => vec![format!("failed: {why}")],
    }
}

/// The endpoints behind the binding's chosen name.
fn bound_endpoints(binding: &Binding) -> Vec<String> {
    match chosen(binding) {
        Ok(bound) => endpoints(&bound.addr.load()),
        Err(why) => vec![why],
    }
}

/// Polls `done` every 5 ms for up to [`LIMIT`].
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {LIMIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for_endpoints(binding: &Binding, expected: &[&str]) {
    let deadline = Instant::now() + LIMIT;
    while bound_endpoints(binding) != expected {
        assert!(
            Instant::now() < deadline,
            "expected {expected:?}, still {:?}",
            bound_endpoints(binding)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for_id(binding: &Binding, expected: &str) {
    let deadline = Instant::now() + LIMIT;
    while chosen_id(binding) != expected {
        assert!(
            Instant::now() < deadline,
            "expected {expected}, still {}",
            chosen_id(binding)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const DTAB: &str = "/svc => /#/io.l5d.consul/dc1";

#[tokio::test]
async fn a_binding_follows_instances_as_they_come_and_go() {
    let fake = FakeConsul::start().await.unwrap();
    let a = Instance::new("web", "10.0.0.1", 8080);
    let b = Instance::new("web", "10.0.0.2", 8080);
    fake.register(&a);
    fake.register(&b);
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let mut binding = bind(&interpreter, DTAB, "/svc/web/api/v1");
    wait_for_endpoints(&binding, &["10.0.0.1:8080", "10.0.0.2:8080"]).await;
    let bound = chosen(&binding).unwrap();
    assert_eq!(bound.id.show(), "/#/io.l5d.consul/dc1/web");
    assert_eq!(bound.residual.show(), "/api/v1");
    let Addr::Bound(set) = &*bound.addr.load() else {
        panic!("not bound")
    };
    assert_eq!(set.endpoints()[0].weight, 1.0);
    assert_eq!(set.endpoints()[0].meta["endpoint_addr_weight"], 1.0);
    assert!(!set.meta.contains_key("authority"), "setHost is off");

    // A new instance changes the address, not the tree.
    binding.mark_seen();
    let c = Instance::new("web", "10.0.0.3", 9090);
    fake.register(&c);
    wait_for_endpoints(
        &binding,
        &["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:9090"],
    )
    .await;
    let waited = tokio::time::timeout(Duration::from_millis(200), binding.changed()).await;
    assert!(
        waited.is_err(),
        "the tree was republished for an address change"
    );

    fake.deregister(&a);
    wait_for_endpoints(&binding, &["10.0.0.2:8080", "10.0.0.3:9090"]).await;
    // A moved instance (same id, new port) replaces the old one.
    fake.register(&Instance::new("web", "10.0.0.2", 8081).with_id(&b.id));
    wait_for_endpoints(&binding, &["10.0.0.2:8081", "10.0.0.3:9090"]).await;

    // With no instance left, the service is gone: `~`, and the address
    // handed out says so too.
    fake.deregister(&b);
    fake.deregister(&c);
    wait_for_id(&binding, "~").await;
    assert_eq!(endpoints(&bound.addr.load()), ["neg"]);
    fake.register(&a);
    wait_for_endpoints(&binding, &["10.0.0.1:8080"]).await;
    assert!(
        namer
            .stats()
            .queries
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 6
    );
}

#[tokio::test]
async fn health_checks_choose_the_instances() {
    let fake = FakeConsul::start().await.unwrap();
    let a = Instance::new("web", "10.0.0.1", 80);
    let b = Instance::new("web", "10.0.0.2", 80).with_health(Health::Critical);
    fake.register(&a);
    fake.register(&b);

    let catalog = namer(&fake, serde_json::json!({}));
    let all = bind(&interpreter(&catalog), DTAB, "/svc/web");
    wait_for_endpoints(&all, &["10.0.0.1:80", "10.0.0.2:80"]).await;

    let healthy = namer(&fake, serde_json::json!({"useHealthCheck": true}));
    let binding = bind(&interpreter(&healthy), DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:80"]).await;
    fake.set_health(&b, Health::Passing);
    wait_for_endpoints(&binding, &["10.0.0.1:80", "10.0.0.2:80"]).await;
    fake.set_health(&a, Health::Maintenance);
    wait_for_endpoints(&binding, &["10.0.0.2:80"]).await;
    fake.set_node_health(None, &b.node, Health::Warning);
    // Nothing healthy: `~`, as for a service that does not exist.
    wait_for_id(&binding, "~").await;
    fake.set_node_health(None, &b.node, Health::Passing);
    wait_for_endpoints(&binding, &["10.0.0.2:80"]).await;
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path == "/v1/health/service/web" && r.query.contains("passing"))
    );

    let lenient = namer(
        &fake,
        serde_json::json!({"useHealthCheck": true, "healthStatuses": ["passing", "warning"]}),
    );
    let binding = bind(&interpreter(&lenient), DTAB, "/svc/web");
    fake.set_health(&a, Health::Warning);
    wait_for_endpoints(&binding, &["10.0.0.1:80", "10.0.0.2:80"]).await;
    fake.set_health(&a, Health::Critical);
    wait_for_endpoints(&binding, &["10.0.0.2:80"]).await;
    assert_eq!(bound_endpoints(&all), ["10.0.0.1:80", "10.0.0.2:80"]);
}

#[tokio::test]
async fn tags_name_instances_and_weigh_them() {
    let fake = FakeConsul::start().await.unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80).with_tags(&["v1", "primary"]));
    fake.register(&Instance::new("web", "10.0.0.2", 80).with_tags(&["v2", "canary"]));
    fake.register(&Instance::new("web", "10.0.0.3", 80).with_tags(&["v2"]));
    let namer = namer(
        &fake,
        serde_json::json!({
            "includeTag": true,
            "weights": [{"tag": "primary", "weight": 5.0}, {"tag": "canary", "weight": 0.5}, {"tag": "v2", "weight": 2.0}],
        }),
    );
    let interpreter = interpreter(&namer);
    let v2 = bind(&interpreter, DTAB, "/svc/v2/web/x");
    wait_for_endpoints(&v2, &["10.0.0.2:80", "10.0.0.3:80"]).await;
    let bound = chosen(&v2).unwrap();
    assert_eq!(bound.id.show(), "/#/io.l5d.consul/dc1/v2/web");
    assert_eq!(bound.residual.show(), "/x");
    let Addr::Bound(set) = &*bound.addr.load() else {
        panic!("not bound")
    };
    let weights: Vec<f64> = set.endpoints().iter().map(|e| e.weight).collect();
    assert_eq!(weights, [2.0, 2.0], "the heaviest listed tag wins");

    let v1 = bind(&interpreter, DTAB, "/svc/v1/web");
    wait_for_endpoints(&v1, &["10.0.0.1:80"]).await;
    let Addr::Bound(set) = &*chosen(&v1).unwrap().addr.load() else {
        panic!("not bound")
    };
    assert_eq!(set.endpoints()[0].weight, 5.0);
    assert_eq!(set.endpoints()[0].meta["endpoint_addr_weight"], 5.0);

    let none = bind(&interpreter, DTAB, "/svc/v3/web");
    wait_for_id(&none, "~").await;
    // Two labels are not enough with includeTag.
    let short = bind(&interpreter, DTAB, "/svc/web");
    wait_for_id(&short, "~").await;
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path == "/v1/catalog/service/web" && r.query.contains("tag=v2"))
    );
}

#[tokio::test]
async fn local_is_the_agents_datacenter_and_set_host_names_the_service() {
    let fake = FakeConsul::start_with(FakeConsulConfig {
        datacenter: "east".to_string(),
        ..FakeConsulConfig::default()
    })
    .await
    .unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80).with_tags(&["v2"]));
    fake.register(&Instance::new("web", "10.1.0.1", 80).in_datacenter("west"));

    let consul = namer(&fake, serde_json::json!({"setHost": true}));
    let interpreter = interpreter(&consul);
    let local = bind(&interpreter, "/svc => /#/io.l5d.consul/.local", "/svc/web");
    wait_for_endpoints(&local, &["10.0.0.1:80"]).await;
    let bound = chosen(&local).unwrap();
    assert_eq!(bound.id.show(), "/#/io.l5d.consul/.local/web");
    let Addr::Bound(set) = &*bound.addr.load() else {
        panic!("not bound")
    };
    assert_eq!(set.meta["authority"], "web.service.east.consul");

    let west = bind(&interpreter, "/svc => /#/io.l5d.consul/west", "/svc/web");
    wait_for_endpoints(&west, &["10.1.0.1:80"]).await;
    let Addr::Bound(set) = &*chosen(&west).unwrap().addr.load() else {
        panic!("not bound")
    };
    assert_eq!(set.meta["authority"], "web.service.west.consul");
    let agent_calls = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/agent/self")
        .count();
    assert_eq!(agent_calls, 1, "the agent is asked once");

    let tagged = namer(
        &fake,
        serde_json::json!({"setHost": true, "includeTag": true}),
    );
    let binding = bind(
        &self::interpreter(&tagged),
        "/svc => /#/io.l5d.consul/.local",
        "/svc/v2/web",
    );
    wait_for_endpoints(&binding, &["10.0.0.1:80"]).await;
    let Addr::Bound(set) = &*chosen(&binding).unwrap().addr.load() else {
        panic!("not bound")
    };
    assert_eq!(set.meta["authority"], "v2.web.service.east.consul");
}

#[tokio::test]
async fn service_addresses_are_preferred_unless_configured_otherwise() {
    let fake = FakeConsul::start().await.unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80).with_address("192.168.0.1"));
    fake.register(&Instance::new("web", "10.0.0.2", 81));
    let preferred = namer(&fake, serde_json::json!({}));
    let binding = bind(&interpreter(&preferred), DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.2:81", "192.168.0.1:80"]).await;
    let nodes = namer(&fake, serde_json::json!({"preferServiceAddress": false}));
    let binding = bind(&interpreter(&nodes), DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:80", "10.0.0.2:81"]).await;
}

#[tokio::test]
async fn a_missing_service_is_neg_so_that_dtab_fallbacks_work() {
    let fake = FakeConsul::start().await.unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80));
    let namer = namer(&fake, serde_json::json!({"useHealthCheck": true}));
    let interpreter = interpreter(&namer);
    let dtab = "/svc/web => /#/io.l5d.consul/dc1/web-canary | /#/io.l5d.consul/dc1/web";
    let binding = bind(&interpreter, dtab, "/svc/web");
    wait_for_id(&binding, "/#/io.l5d.consul/dc1/web").await;

    let canary = Instance::new("web-canary", "10.0.0.9", 80);
    fake.register(&canary);
    wait_for_id(&binding, "/#/io.l5d.consul/dc1/web-canary").await;
    assert_eq!(bound_endpoints(&binding), ["10.0.0.9:80"]);
    // A canary with no healthy instance falls back too.
    fake.set_health(&canary, Health::Critical);
    wait_for_id(&binding, "/#/io.l5d.consul/dc1/web").await;
    fake.set_health(&canary, Health::Passing);
    wait_for_id(&binding, "/#/io.l5d.consul/dc1/web-canary").await;
    fake.deregister(&canary);
    wait_for_id(&binding, "/#/io.l5d.consul/dc1/web").await;

    // So does a datacenter Consul does not know.
    let dcs = "/svc/web => /#/io.l5d.consul/nowhere/web | /#/io.l5d.consul/dc1/web";
    let binding = bind(&interpreter, dcs, "/svc/web");
    wait_for_id(&binding, "/#/io.l5d.consul/dc1/web").await;

    let nothing = bind(&interpreter, DTAB, "/svc/nothing");
    wait_for_id(&nothing, "~").await;
    let no_service = bind(&interpreter, DTAB, "/svc");
    wait_for_id(&no_service, "~").await;
}

#[tokio::test]
async fn an_outage_keeps_the_last_good_endpoints_then_recovers() {
    let fake = FakeConsul::start().await.unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80));
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let binding = bind(&interpreter, DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:80"]).await;
    let errors = || {
        namer
            .stats()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(namer.state_changes(), 0);

    // No leader: every query answers 500.
    fake.set_down(true);
    eventually("several failed queries", || errors() >= 3).await;
    assert_eq!(namer.state_changes(), 1, "one change, however many retries");
    assert_eq!(bound_endpoints(&binding), ["10.0.0.1:80"]);
    fake.register(&Instance::new("web", "10.0.0.2", 80));
    fake.set_down(false);
    wait_for_endpoints(&binding, &["10.0.0.1:80", "10.0.0.2:80"]).await;
    assert_eq!(namer.state_changes(), 2);

    // The agent stops: connections are refused.
    fake.set_refusing(true).await;
    let before = errors();
    eventually("failed connections", || errors() >= before + 3).await;
    assert_eq!(namer.state_changes(), 3);
    assert_eq!(bound_endpoints(&binding), ["10.0.0.1:80", "10.0.0.2:80"]);
    fake.register(&Instance::new("web", "10.0.0.3", 80));
    fake.set_refusing(false).await;
    wait_for_endpoints(&binding, &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]).await;
    assert_eq!(namer.state_changes(), 4);
    assert_eq!(interpreter.stats().active_bindings(), 1);
}

#[tokio::test]
async fn a_first_answer_that_fails_is_a_failure() {
    let fake = FakeConsul::start().await.unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80));
    fake.set_down(true);
    let namer = namer(&fake, serde_json::json!({}));
    let binding = bind(&interpreter(&namer), DTAB, "/svc/web");
    eventually("a failure", || chosen_id(&binding).starts_with("failed: ")).await;
    let why = chosen_id(&binding);
    assert!(
        why.contains("500") && why.contains("No cluster leader"),
        "{why}"
    );
    fake.set_down(false);
    wait_for_endpoints(&binding, &["10.0.0.1:80"]).await;
}

#[tokio::test]
async fn an_index_that_goes_backwards_starts_the_watch_over() {
    let fake = FakeConsul::start().await.unwrap();
    for i in 1..=5 {
        fake.register(&Instance::new("web", &format!("10.0.0.{i}"), 80));
    }
    let namer = namer(&fake, serde_json::json!({}));
    let binding = bind(&interpreter(&namer), DTAB, "/svc/web");
    wait_for_endpoints(
        &binding,
        &[
            "10.0.0.1:80",
            "10.0.0.2:80",
            "10.0.0.3:80",
            "10.0.0.4:80",
            "10.0.0.5:80",
        ],
    )
    .await;
    eventually("the watch to block", || {
        fake.blocking_queries_in_flight() == 1
    })
    .await;
    let before = fake.index();
    fake.reset_index();
    assert!(fake.index() < before);
    // Were the watch still waiting for an index above `before`, it would
    // not see this change before its wait (30 s) runs out.
    let d = Instance::new("web", "10.0.0.1", 80);
    fake.deregister(&d);
    assert!(fake.index() < before);
    wait_for_endpoints(
        &binding,
        &["10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80"],
    )
    .await;
    assert_eq!(namer.state_changes(), 0, "a reset is not a failure");
}

#[tokio::test]
async fn watches_are_shared_and_end_when_nothing_uses_them() {
    let fake = FakeConsul::start().await.unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80));
    fake.register(&Instance::new("api", "10.0.0.2", 80));
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let web = bind(&interpreter, DTAB, "/svc/web");
    let web_again = bind(&interpreter, DTAB, "/svc/web/other/residual");
    let api = bind(&interpreter, DTAB, "/svc/api");
    let missing = bind(&interpreter, DTAB, "/svc/missing");
    wait_for_endpoints(&web, &["10.0.0.1:80"]).await;
    wait_for_endpoints(&web_again, &["10.0.0.1:80"]).await;
    wait_for_endpoints(&api, &["10.0.0.2:80"]).await;
    wait_for_id(&missing, "~").await;
    assert_eq!(namer.active_watches(), 3, "one watch per service");
    eventually("one blocking query per watch", || {
        fake.blocking_queries_in_flight() == 3
    })
    .await;

    drop(web);
    drop(missing);
    eventually("the missing service's watch to end", || {
        namer.active_watches() == 2
    })
    .await;
    assert_eq!(namer.watched_count(), 2, "web_again still holds web");

    // An address held after its binding is gone keeps its watch alive.
    let addr = chosen(&api).unwrap().addr.clone();
    drop(api);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(namer.active_watches(), 2);
    fake.register(&Instance::new("api", "10.0.0.3", 80));
    eventually("the held address to follow", || {
        endpoints(&addr.load()) == ["10.0.0.2:80", "10.0.0.3:80"]
    })
    .await;
    drop(addr);
    drop(web_again);
    eventually("every watch to end", || {
        namer.active_watches() == 0 && namer.watched_count() == 0
    })
    .await;
    eventually("no blocking query left", || {
        fake.blocking_queries_in_flight() == 0
    })
    .await;
    eventually("no binding left", || {
        interpreter.stats().active_bindings() == 0
    })
    .await;

    // Looking up again starts a new watch.
    let web = bind(&interpreter, DTAB, "/svc/web");
    wait_for_endpoints(&web, &["10.0.0.1:80"]).await;
    assert_eq!(namer.active_watches(), 1);
}

#[tokio::test]
async fn tokens_and_consistency_modes_are_sent() {
    let fake = FakeConsul::start_with(FakeConsulConfig {
        token: Some("s3cret".to_string()),
        ..FakeConsulConfig::default()
    })
    .await
    .unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80));

    // Without a token, Consul hides every instance: the service looks absent.
    let anonymous = namer(&fake, serde_json::json!({}));
    let binding = bind(&interpreter(&anonymous), DTAB, "/svc/web");
    wait_for_id(&binding, "~").await;

    let consul = namer(
        &fake,
        serde_json::json!({"token": "s3cret", "consistencyMode": "stale"}),
    );
    let binding = bind(&interpreter(&consul), DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:80"]).await;
    let requests = fake.requests();
    let ours: Vec<_> = requests
        .iter()
        .filter(|r| r.token.as_deref() == Some("s3cret"))
        .collect();
    assert!(!ours.is_empty());
    assert!(ours.iter().all(|r| r.query.contains("stale")));
    assert!(ours.iter().all(|r| r.query.contains("dc=dc1")));
    assert!(requests.iter().all(|r| !r.query.contains("token")));

    let wrong = namer(&fake, serde_json::json!({"token": "guess"}));
    let binding = bind(&interpreter(&wrong), DTAB, "/svc/web");
    eventually("a failure", || chosen_id(&binding).contains("403")).await;
}

#[tokio::test]
async fn the_registry_builds_it_from_yaml() {
    let fake = FakeConsul::start().await.unwrap();
    fake.register(&Instance::new("web", "10.0.0.1", 80));
    let yaml = format!(
        "- kind: io.l5d.consul\n  host: 127.0.0.1\n  port: {}\n  useHealthCheck: true\n",
        fake.addr().port()
    );
    let configs: Vec<namers::config::NamerConfig> =
        namers::config::parse("test.yaml", &yaml).unwrap();
    let context = namers::config::NamerContext {
        inet: Arc::new(InetResolver::system().unwrap()),
    };
    let namers = namers::config::build_namers(&configs, &context).unwrap();
    assert_eq!(namers[0].0.show(), "/#/io.l5d.consul");
    let interpreter = Interpreter::new(
        namers,
        SystemNamers::new(Arc::new(InetResolver::system().unwrap())),
    );
    let binding = bind(&interpreter, DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:80"]).await;

    let bad = namers::config::parse::<Vec<namers::config::NamerConfig>>(
        "t.yaml",
        "- kind: io.l5d.consul\n  includeTags: true\n",
    )
    .unwrap();
    let err = namers::config::build_namers(&bad, &context).err().unwrap();
    assert!(err.starts_with("namers[0] (io.l5d.consul): "), "{err}");
    assert!(err.contains("unknown field `includeTags`"), "{err}");
}
