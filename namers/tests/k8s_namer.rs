//! The `io.l5d.k8s` namer, bound live through the interpreter, against an
//! in-process fake of the Kubernetes API server's list + watch protocol
//! (`integration::k8s`), not a real cluster: no API server can be installed
//! where these tests run. The fake serves Services and Endpoints with
//! resource versions, bookmarks and `410 Gone`, and can cut watches and
//! fail like an API server that is down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dtab::{Dtab, Path};
use integration::k8s::{Endpoints, FakeKube, Resource, Service, TargetPort};
use namers::k8s::{K8sConfig, K8sNamer, NODE_NAME_KEY, Timing};
use namers::resolve::{Resolved, choose};
use namers::system::{SystemNamers, inet::InetResolver};
use namers::{Activity, Addr, Binding, Bound, Interpreter, NameInterpreter, Namer};
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(5);
const DTAB: &str = "/svc => /#/io.l5d.k8s/default/http";

fn timing() -> Timing {
    Timing {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        watch_timeout: Duration::from_secs(60),
    }
}

fn namer(fake: &FakeKube, extra: serde_json::Value) -> Arc<K8sNamer> {
    let mut config = serde_json::json!({"host": "127.0.0.1", "port": fake.addr().port()});
    if let (Some(config), serde_json::Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    serde_json::from_value::<K8sConfig>(config)
        .unwrap()
        .build_with(Path::read("/#/io.l5d.k8s").unwrap(), timing())
        .unwrap()
}

fn interpreter(namer: &Arc<K8sNamer>) -> Interpreter {
    let system = SystemNamers::new(Arc::new(InetResolver::system().unwrap()));
    Interpreter::new(
        vec![(
            Path::read("/#/io.l5d.k8s").unwrap(),
            namer.clone() as Arc<dyn Namer>,
        )],
        system,
    )
}

fn bind(interpreter: &Interpreter, dtab: &str, path: &str) -> Binding {
    interpreter.bind(&Dtab::read(dtab).unwrap(), &Path::read(path).unwrap())
}

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

fn chosen_id(binding: &Binding) -> String {
    chosen(binding).map_or_else(|why| why, |b| b.id.show())
}

fn endpoints(addr: &Addr) -> Vec<String> {
    match addr {
        Addr::Bound(set) => set.endpoints().iter().map(|e| e.addr.to_string()).collect(),
        Addr::Neg => vec!["neg".into()],
        Addr::Pending => vec!["pending".into()],
        Addr::Failed(why) => vec![format!("failed: {why}")],
    }
}

fn bound_endpoints(binding: &Binding) -> Vec<String> {
    match chosen(binding) {
        Ok(bound) => endpoints(&bound.addr.load()),
        Err(why) => vec![why],
    }
}

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

/// A Service `web` with ports `http` (80 -> 8080) and `admin` (9990).
fn web_service() -> Service {
    Service::new("default", "web")
        .port(Some("http"), 80, TargetPort::Number(8080))
        .port(Some("admin"), 9990, TargetPort::Number(9990))
}

/// Ready pods of `web` at these (ip, node).
fn web_endpoints(pods: &[(&str, &str)]) -> Endpoints {
    let mut eps = Endpoints::new("default", "web");
    for (ip, node) in pods {
        eps = eps.ready(ip, Some(node));
    }
    eps.port(Some("http"), 8080).port(Some("admin"), 9990)
}

#[tokio::test]
async fn a_binding_follows_endpoints_as_pods_come_and_go() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[
        ("10.0.0.1", "node-a"),
        ("10.0.0.2", "node-b"),
    ]));
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let mut binding = bind(&interpreter, DTAB, "/svc/web/api/v1");
    wait_for_endpoints(&binding, &["10.0.0.1:8080", "10.0.0.2:8080"]).await;
    let bound = chosen(&binding).unwrap();
    assert_eq!(bound.id.show(), "/#/io.l5d.k8s/default/http/web");
    assert_eq!(bound.residual.show(), "/api/v1");
    let Addr::Bound(set) = &*bound.addr.load() else {
        panic!("not bound")
    };
    assert_eq!(set.endpoints()[0].meta[NODE_NAME_KEY], "node-a");
    assert_eq!(set.endpoints()[1].meta[NODE_NAME_KEY], "node-b");

    // A new pod changes the address, not the tree.
    binding.mark_seen();
    fake.apply_endpoints(&web_endpoints(&[
        ("10.0.0.1", "node-a"),
        ("10.0.0.2", "node-b"),
        ("10.0.0.3", "node-a"),
    ]));
    wait_for_endpoints(
        &binding,
        &["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"],
    )
    .await;
    let waited = tokio::time::timeout(Duration::from_millis(200), binding.changed()).await;
    assert!(
        waited.is_err(),
        "the tree was republished for an address change"
    );

    // No ready pod: the service still exists, with no endpoints.
    fake.apply_endpoints(
        &Endpoints::new("default", "web")
            .not_ready("10.0.0.1", Some("node-a"))
            .port(Some("http"), 8080),
    );
    wait_for_endpoints(&binding, &[]).await;
    assert_eq!(chosen_id(&binding), "/#/io.l5d.k8s/default/http/web");

    // Deleted: `~`, and the address handed out says so too.
    fake.delete(Resource::Endpoints, "default", "web");
    fake.delete(Resource::Services, "default", "web");
    wait_for_id(&binding, "~").await;
    assert_eq!(endpoints(&bound.addr.load()), ["neg"]);
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.4", "node-c")]));
    wait_for_endpoints(&binding, &["10.0.0.4:8080"]).await;
}

#[tokio::test]
async fn port_numbers_go_through_the_service_to_its_target_port() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.1", "node-a")]));
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let by_number = bind(&interpreter, "/svc => /#/io.l5d.k8s/default/80", "/svc/web");
    wait_for_endpoints(&by_number, &["10.0.0.1:8080"]).await;
    assert_eq!(chosen_id(&by_number), "/#/io.l5d.k8s/default/80/web");
    let admin = bind(
        &interpreter,
        "/svc => /#/io.l5d.k8s/default/9990",
        "/svc/web",
    );
    wait_for_endpoints(&admin, &["10.0.0.1:9990"]).await;
    let target = bind(
        &interpreter,
        "/svc => /#/io.l5d.k8s/default/8080",
        "/svc/web",
    );
    wait_for_id(&target, "~").await;

    // The Service now sends port 80 to the pods' admin port.
    fake.apply_service(&Service::new("default", "web").port(
        Some("admin"),
        80,
        TargetPort::Name("admin".into()),
    ));
    wait_for_endpoints(&by_number, &["10.0.0.1:9990"]).await;
    wait_for_id(&admin, "~").await;
}

#[tokio::test]
async fn missing_names_are_neg_so_that_dtab_fallbacks_work() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.1", "node-a")]));
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let dtab = "/svc/web => /#/io.l5d.k8s/default/http/web-canary | /#/io.l5d.k8s/default/http/web";
    let binding = bind(&interpreter, dtab, "/svc/web");
    wait_for_id(&binding, "/#/io.l5d.k8s/default/http/web").await;
    fake.apply_service(&Service::new("default", "web-canary").port(
        Some("http"),
        80,
        TargetPort::Number(8080),
    ));
    fake.apply_endpoints(
        &Endpoints::new("default", "web-canary")
            .ready("10.0.0.9", None)
            .port(Some("http"), 8080),
    );
    wait_for_id(&binding, "/#/io.l5d.k8s/default/http/web-canary").await;
    assert_eq!(bound_endpoints(&binding), ["10.0.0.9:8080"]);
    fake.delete(Resource::Services, "default", "web-canary");
    fake.delete(Resource::Endpoints, "default", "web-canary");
    wait_for_id(&binding, "/#/io.l5d.k8s/default/http/web").await;

    for (dtab, what) in [
        ("/svc => /#/io.l5d.k8s/nowhere/http", "namespace"),
        ("/svc => /#/io.l5d.k8s/default/grpc", "port name"),
        ("/svc => /#/io.l5d.k8s/default/81", "port number"),
    ] {
        let missing = bind(&interpreter, dtab, "/svc/web");
        wait_for_id(&missing, "~").await;
        let _ = what;
    }
    let no_service = bind(&interpreter, DTAB, "/svc/nothing");
    wait_for_id(&no_service, "~").await;
    let too_short = bind(&interpreter, DTAB, "/svc");
    wait_for_id(&too_short, "~").await;
}

#[tokio::test]
async fn watches_resume_after_drops_bookmarks_and_410_gone() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.1", "node-a")]));
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let binding = bind(&interpreter, DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:8080"]).await;
    eventually("two watches", || fake.open_watches() == 2).await;
    let lists = || fake.requests().iter().filter(|r| !r.watch).count();
    assert_eq!(lists(), 2, "one list per resource");

    // A watch that ends mid-stream resumes from its resource version,
    // without listing again.
    fake.end_watches();
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.2", "node-a")]));
    wait_for_endpoints(&binding, &["10.0.0.2:8080"]).await;
    eventually("the watches to be back", || fake.open_watches() == 2).await;
    assert_eq!(lists(), 2);

    // A bookmark moves the version a resumed watch starts from: the last
    // change of an endpoints object is older than the bookmark.
    fake.apply_service(&Service::new("default", "other"));
    fake.send_bookmarks();
    let bookmark = fake.resource_version();
    tokio::time::sleep(Duration::from_millis(50)).await;
    fake.end_watches();
    eventually("a watch resumed from the bookmark", || {
        fake.requests().iter().any(|r| {
            r.watch
                && r.path.ends_with("/endpoints")
                && r.query
                    .split('&')
                    .any(|p| p == format!("resourceVersion={bookmark}"))
        })
    })
    .await;

    // 410 Gone: the history is compacted; the namer lists again and sees
    // what changed meanwhile.
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.3", "node-a")]));
    fake.expire_watches();
    wait_for_endpoints(&binding, &["10.0.0.3:8080"]).await;
    eventually("a fresh list of each resource", || lists() == 4).await;
    assert!(namer.stats().relists.load(Ordering::Relaxed) >= 2);
    assert_eq!(namer.state_changes(), 0, "none of this is an outage");
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.4", "node-a")]));
    wait_for_endpoints(&binding, &["10.0.0.4:8080"]).await;
}

#[tokio::test]
async fn an_outage_keeps_the_last_good_endpoints_then_recovers() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.1", "node-a")]));
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let binding = bind(&interpreter, DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:8080"]).await;
    let errors = || namer.stats().errors.load(Ordering::Relaxed);

    fake.set_down(true);
    eventually("several failed attempts", || errors() >= 4).await;
    assert_eq!(namer.state_changes(), 1, "one change, however many retries");
    assert_eq!(bound_endpoints(&binding), ["10.0.0.1:8080"]);
    // Nothing changed meanwhile: the recovery is noticed all the same.
    fake.set_down(false);
    eventually("the recovery to be counted", || namer.state_changes() == 2).await;
    let settled = errors();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(errors(), settled, "no more failures once recovered");

    // Changes made during an outage arrive once it ends.
    fake.set_down(true);
    eventually("failing again", || namer.state_changes() == 3).await;
    fake.apply_endpoints(&web_endpoints(&[
        ("10.0.0.1", "node-a"),
        ("10.0.0.2", "node-b"),
    ]));
    assert_eq!(bound_endpoints(&binding), ["10.0.0.1:8080"]);
    fake.set_down(false);
    wait_for_endpoints(&binding, &["10.0.0.1:8080", "10.0.0.2:8080"]).await;
    eventually("the second recovery", || namer.state_changes() == 4).await;
    assert_eq!(interpreter.stats().active_bindings(), 1);
}

#[tokio::test]
async fn a_first_answer_that_fails_is_a_failure() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.1", "node-a")]));
    fake.set_down(true);
    let namer = namer(&fake, serde_json::json!({}));
    let binding = bind(&interpreter(&namer), DTAB, "/svc/web");
    eventually("a failure", || chosen_id(&binding).starts_with("failed: ")).await;
    assert!(
        chosen_id(&binding).contains("io.l5d.k8s"),
        "{}",
        chosen_id(&binding)
    );
    fake.set_down(false);
    wait_for_endpoints(&binding, &["10.0.0.1:8080"]).await;
}

#[tokio::test]
async fn watches_are_shared_and_end_when_nothing_uses_them() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.1", "node-a")]));
    fake.apply_service(&Service::new("prod", "api").port(Some("http"), 80, TargetPort::Number(80)));
    fake.apply_endpoints(
        &Endpoints::new("prod", "api")
            .ready("10.1.0.1", None)
            .port(Some("http"), 80),
    );
    let namer = namer(&fake, serde_json::json!({}));
    let interpreter = interpreter(&namer);
    let web = bind(&interpreter, DTAB, "/svc/web");
    let web_admin = bind(
        &interpreter,
        "/svc => /#/io.l5d.k8s/default/admin",
        "/svc/web/x",
    );
    let missing = bind(&interpreter, DTAB, "/svc/missing");
    let api = bind(&interpreter, "/svc => /#/io.l5d.k8s/prod/http", "/svc/api");
    wait_for_endpoints(&web, &["10.0.0.1:8080"]).await;
    wait_for_endpoints(&web_admin, &["10.0.0.1:9990"]).await;
    wait_for_id(&missing, "~").await;
    wait_for_endpoints(&api, &["10.1.0.1:80"]).await;
    assert_eq!(namer.active_watches(), 2, "one watch per namespace");
    eventually("two streams per namespace", || fake.open_watches() == 4).await;

    drop(web);
    drop(missing);
    drop(web_admin);
    eventually("the default namespace's watch to end", || {
        namer.active_watches() == 1
    })
    .await;
    eventually("its streams to close", || fake.open_watches() == 2).await;

    // An address held after its binding is gone keeps its watch alive.
    let addr = chosen(&api).unwrap().addr.clone();
    drop(api);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(namer.active_watches(), 1);
    fake.apply_endpoints(
        &Endpoints::new("prod", "api")
            .ready("10.1.0.2", None)
            .port(Some("http"), 80),
    );
    eventually("the held address to follow", || {
        endpoints(&addr.load()) == ["10.1.0.2:80"]
    })
    .await;
    drop(addr);
    eventually("every watch to end", || {
        namer.active_watches() == 0 && namer.watched_count() == 0
    })
    .await;
    eventually("no watch stream left open", || fake.open_watches() == 0).await;

    let web = bind(&interpreter, DTAB, "/svc/web");
    wait_for_endpoints(&web, &["10.0.0.1:8080"]).await;
    assert_eq!(namer.active_watches(), 1);
}

#[tokio::test]
async fn a_label_selector_names_objects_by_label_value() {
    let fake = FakeKube::start().await.unwrap();
    for (name, version, ip) in [("web-v1", "v1", "10.0.0.1"), ("web-v2", "v2", "10.0.0.2")] {
        fake.apply_service(
            &Service::new("default", name)
                .label("version", version)
                .port(Some("http"), 80, TargetPort::Number(8080)),
        );
        fake.apply_endpoints(
            &Endpoints::new("default", name)
                .label("version", version)
                .ready(ip, None)
                .port(Some("http"), 8080),
        );
    }
    let namer = namer(&fake, serde_json::json!({"labelSelector": "version"}));
    let interpreter = interpreter(&namer);
    let v2 = bind(&interpreter, DTAB, "/svc/web-v2/v2/rest");
    wait_for_endpoints(&v2, &["10.0.0.2:8080"]).await;
    let bound = chosen(&v2).unwrap();
    assert_eq!(bound.id.show(), "/#/io.l5d.k8s/default/http/web-v2/v2");
    assert_eq!(bound.residual.show(), "/rest");
    // The label must match, and the label value is required.
    let mismatch = bind(&interpreter, DTAB, "/svc/web-v2/v1");
    wait_for_id(&mismatch, "~").await;
    let short = bind(&interpreter, DTAB, "/svc/web-v2");
    wait_for_id(&short, "~").await;
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.query.contains("labelSelector=version=v2"))
    );
}

#[tokio::test]
async fn the_registry_builds_it_from_yaml() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&web_service());
    fake.apply_endpoints(&web_endpoints(&[("10.0.0.1", "node-a")]));
    let yaml = format!(
        "- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {}\n",
        fake.addr().port()
    );
    let configs: Vec<namers::config::NamerConfig> =
        namers::config::parse("test.yaml", &yaml).unwrap();
    let context = namers::config::NamerContext {
        inet: Arc::new(InetResolver::system().unwrap()),
    };
    let namers = namers::config::build_namers(&configs, &context).unwrap();
    assert_eq!(namers[0].0.show(), "/#/io.l5d.k8s");
    let interpreter = Interpreter::new(
        namers,
        SystemNamers::new(Arc::new(InetResolver::system().unwrap())),
    );
    let binding = bind(&interpreter, DTAB, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.0.1:8080"]).await;

    let bad = namers::config::parse::<Vec<namers::config::NamerConfig>>(
        "t.yaml",
        "- kind: io.l5d.k8s\n  labelselector: version\n",
    )
    .unwrap();
    let err = namers::config::build_namers(&bad, &context).err().unwrap();
    assert!(err.starts_with("namers[0] (io.l5d.k8s): "), "{err}");
    assert!(err.contains("unknown field `labelselector`"), "{err}");
}
