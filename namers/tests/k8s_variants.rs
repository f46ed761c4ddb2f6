//! The `io.l5d.k8s.external` and `io.l5d.k8s.ns` namers, bound live through
//! the interpreter, against the in-process fake of the Kubernetes API
//! server (`integration::k8s`), not a real cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dtab::{Dtab, Path};
use futures_util::future::BoxFuture;
use integration::k8s::{Endpoints, FakeKube, Resource, Service, TargetPort};
use namers::config::{NamerConfig, NamerContext, build_namers};
use namers::k8s::{K8sExternalConfig, K8sNamer, K8sNsConfig, Timing};
use namers::resolve::{Resolved, choose};
use namers::system::SystemNamers;
use namers::system::inet::{DnsAnswer, DnsResolve, InetResolver};
use namers::{Activity, Addr, Binding, Interpreter, NameInterpreter, Namer};
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(5);

fn timing() -> Timing {
    Timing {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        watch_timeout: Duration::from_secs(60),
    }
}

/// DNS answers the test sets, for load balancers named by host.
#[derive(Default)]
struct TestDns {
    hosts: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl TestDns {
    fn set(&self, host: &str, ips: &[&str]) {
        let ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        self.hosts.lock().unwrap().insert(host.into(), ips);
    }
}

impl DnsResolve for TestDns {
    fn resolve(&self, host: &str) -> BoxFuture<'static, Result<DnsAnswer, String>> {
        let ips = self.hosts.lock().unwrap().get(host).cloned();
        Box::pin(async move {
            Ok(DnsAnswer {
                ips: ips.unwrap_or_default(),
                // Short-lived, so that a changed answer is seen soon.
                valid_until: Instant::now() + Duration::from_millis(50),
            })
        })
    }
}

fn interpreter(prefix: &str, namer: &Arc<K8sNamer>, inet: Arc<InetResolver>) -> Interpreter {
    Interpreter::new(
        vec![(Path::read(prefix).unwrap(), namer.clone() as Arc<dyn Namer>)],
        SystemNamers::new(inet),
    )
}

fn bind(interpreter: &Interpreter, dtab: &str, path: &str) -> Binding {
    interpreter.bind(&Dtab::read(dtab).unwrap(), &Path::read(path).unwrap())
}

/// The bound id and endpoints of a binding, or why there are none.
fn bound(binding: &Binding) -> String {
    let bound = match &*binding.load() {
        Activity::Ok(tree) => match choose(tree, &mut |_| 0) {
            Resolved::Leaf(bound) => bound.clone(),
            Resolved::Empty => return "$".into(),
            Resolved::Neg => return "~".into(),
        },
        Activity::Pending => return "pending".into(),
        Activity::Failed(e) => return format!("failed: {e}"),
    };
    let addrs = match &*bound.addr.load() {
        Addr::Bound(set) => {
            let mut addrs: Vec<String> =
                set.endpoints().iter().map(|e| e.addr.to_string()).collect();
            addrs.sort();
            addrs.join(",")
        }
        Addr::Neg => "neg".into(),
        Addr::Pending => "pending".into(),
        Addr::Failed(why) => format!("failed: {why}"),
    };
    format!("{} {addrs}", bound.id.show())
}

async fn wait_for(binding: &Binding, expected: &str) {
    let deadline = Instant::now() + LIMIT;
    while bound(binding) != expected {
        assert!(
            Instant::now() < deadline,
            "expected {expected:?}, still {:?}",
            bound(binding)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn external(fake: &FakeKube, dns: Arc<TestDns>) -> (Interpreter, Arc<K8sNamer>) {
    let config: K8sExternalConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": fake.addr().port(),
    }))
    .unwrap();
    let inet = Arc::new(InetResolver::new(dns));
    let prefix = "/#/io.l5d.k8s.external";
    let namer = config
        .build_with(Path::read(prefix).unwrap(), inet.clone(), timing())
        .unwrap();
    (interpreter(prefix, &namer, inet), namer)
}

fn web_service() -> Service {
    Service::new("prod", "web")
        .port(Some("http"), 80, TargetPort::Number(8080))
        .port(Some("admin"), 9990, TargetPort::Number(9990))
}

#[tokio::test]
async fn external_binds_the_load_balancer_at_the_service_port_and_follows_it() {
    let fake = FakeKube::start().await.unwrap();
    let dns = Arc::new(TestDns::default());
    dns.set("lb.example.test", &["192.0.2.10", "192.0.2.11"]);
    let (interpreter, namer) = external(&fake, dns.clone());
    let dtab = "/svc => /#/io.l5d.k8s.external/prod/http";
    let web = bind(&interpreter, dtab, "/svc/web/rest");

    // No such service yet, then one without a load balancer: nothing to bind.
    wait_for(&web, "~").await;
    fake.apply_service(&web_service());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(bound(&web), "~");

    // The load balancer gets an address: bound at the Service port.
    fake.apply_service(&web_service().load_balancer(Some("203.0.113.7"), None));
    wait_for(&web, "/#/io.l5d.k8s.external/prod/http/web 203.0.113.7:80").await;

    // Numbers are Service ports; target ports are not.
    let admin = bind(
        &interpreter,
        "/svc => /#/io.l5d.k8s.external/prod/9990",
        "/svc/web",
    );
    wait_for(
        &admin,
        "/#/io.l5d.k8s.external/prod/9990/web 203.0.113.7:9990",
    )
    .await;
    let target = bind(
        &interpreter,
        "/svc => /#/io.l5d.k8s.external/prod/8080",
        "/svc/web",
    );
    wait_for(&target, "~").await;

    // A load balancer named by host is looked up; its hostname is preferred
    // to its IP address, as Linkerd did.
    fake.apply_service(&web_service().load_balancer(Some("203.0.113.8"), Some("lb.example.test")));
    wait_for(
        &web,
        "/#/io.l5d.k8s.external/prod/http/web 192.0.2.10:80,192.0.2.11:80",
    )
    .await;
    // ... and followed when DNS changes its answer.
    dns.set("lb.example.test", &["192.0.2.12"]);
    wait_for(&web, "/#/io.l5d.k8s.external/prod/http/web 192.0.2.12:80").await;

    // Deleting the Service unbinds it.
    fake.delete(Resource::Services, "prod", "web");
    wait_for(&web, "~").await;
    drop((web, admin, target));
    let deadline = Instant::now() + LIMIT;
    while namer.active_watches() > 0 {
        assert!(Instant::now() < deadline, "the watch outlived its users");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // It never needed Endpoints.
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.contains("endpoints")),
        "{:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn ns_serves_one_namespace_and_paths_leave_it_out() {
    let fake = FakeKube::start().await.unwrap();
    for (ns, ip) in [("prod", "10.0.0.1"), ("dev", "10.0.0.2")] {
        let service = Service::new(ns, "web").port(Some("http"), 80, TargetPort::Number(8080));
        fake.apply_service(&service);
        fake.apply_endpoints(
            &Endpoints::new(ns, "web")
                .subset()
                .ready(ip, None)
                .port(Some("http"), 8080),
        );
    }
    let config: K8sNsConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": fake.addr().port(), "envVar": "MY_POD_NAMESPACE",
    }))
    .unwrap();
    let prefix = "/#/io.l5d.k8s.ns";
    let namer = config
        .build_in(Path::read(prefix).unwrap(), "Prod", timing())
        .unwrap();
    let inet = Arc::new(InetResolver::new(Arc::new(TestDns::default())));
    let interpreter = interpreter(prefix, &namer, inet);
    let dtab = "/svc => /#/io.l5d.k8s.ns/http";
    let web = bind(&interpreter, dtab, "/svc/web/x");
    wait_for(&web, "/#/io.l5d.k8s.ns/http/web 10.0.0.1:8080").await;
    let by_number = bind(&interpreter, "/svc => /#/io.l5d.k8s.ns/80", "/svc/web");
    wait_for(&by_number, "/#/io.l5d.k8s.ns/80/web 10.0.0.1:8080").await;
    // Another namespace's name is a service name here, not a namespace.
    let other = bind(&interpreter, dtab, "/svc/dev/web");
    wait_for(&other, "~").await;

    fake.apply_endpoints(
        &Endpoints::new("prod", "web")
            .subset()
            .ready("10.0.0.3", None)
            .port(Some("http"), 8080),
    );
    wait_for(&web, "/#/io.l5d.k8s.ns/http/web 10.0.0.3:8080").await;
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path.contains("/namespaces/prod/")),
        "{:?}",
        fake.requests()
    );
}

fn namers_config(yaml: serde_json::Value) -> Vec<NamerConfig> {
    serde_json::from_value(yaml).unwrap()
}

#[test]
fn ns_needs_its_environment_variable_and_both_kinds_are_registered() {
    let context = NamerContext {
        inet: Arc::new(InetResolver::new(Arc::new(TestDns::default()))),
    };
    let err = build_namers(
        &namers_config(serde_json::json!([{
            "kind": "io.l5d.k8s.ns", "envVar": "SWITCHBOARD_TEST_NO_SUCH_VARIABLE",
        }])),
        &context,
    )
    .err()
    .unwrap();
    assert!(
        err.contains("namers[0] (io.l5d.k8s.ns): envVar:")
            && err.contains("SWITCHBOARD_TEST_NO_SUCH_VARIABLE"),
        "{err}"
    );
    let built = build_namers(
        &namers_config(serde_json::json!([{
            "kind": "io.l5d.k8s.external", "experimental": true, "host": "localhost",
            "port": 8001, "labelSelector": "version",
        }])),
        &context,
    )
    .unwrap();
    assert_eq!(built[0].0.show(), "/#/io.l5d.k8s.external");
    let err = build_namers(
        &namers_config(serde_json::json!([{"kind": "io.l5d.k8s.external", "envVar": "X"}])),
        &context,
    )
    .err()
    .unwrap();
    assert!(err.contains("envVar"), "{err}");
}
