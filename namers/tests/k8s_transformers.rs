//! The transformers, over live bindings of the `io.l5d.k8s` namer against
//! the in-process fake API server (`integration::k8s`): no real cluster
//! can run where these tests run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, Path};
use integration::k8s::{Endpoints, FakeKube, Service, TargetPort};
use namers::config::{NamerConfig, NamerContext, build_namers, parse};
use namers::k8s::K8sConfig;
use namers::resolve::{Resolved, choose};
use namers::system::{SystemNamers, inet::InetResolver};
use namers::transform::{
    DaemonSetTransformer, LocalNodeTransformer, NodeRule, Transformer, TransformingNamer,
    transform_binding,
};
use namers::{Activity, Addr, Binding, Bound, Interpreter, NameInterpreter, Namer, NamerList};
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(5);
const DTAB: &str = "/svc => /#/io.l5d.k8s/default/http";

fn k8s(fake: &FakeKube) -> Arc<dyn Namer> {
    K8sConfig {
        host: Some("127.0.0.1".into()),
        port: Some(fake.addr().port()),
        label_selector: None,
    }
    .build(Path::read("/#/io.l5d.k8s").unwrap())
    .unwrap()
}

fn interpreter(namers: NamerList) -> Interpreter {
    Interpreter::new(
        namers,
        SystemNamers::new(Arc::new(InetResolver::system().unwrap())),
    )
}

fn with_transformers(
    namer: Arc<dyn Namer>,
    transformers: Vec<Arc<dyn Transformer>>,
) -> Interpreter {
    let namer = Arc::new(TransformingNamer::new(namer, transformers));
    interpreter(vec![(Path::read("/#/io.l5d.k8s").unwrap(), namer)])
}

fn bind(interpreter: &Interpreter, path: &str) -> Binding {
    interpreter.bind(&Dtab::read(DTAB).unwrap(), &Path::read(path).unwrap())
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

fn bound_endpoints(binding: &Binding) -> Vec<String> {
    match chosen(binding) {
        Ok(bound) => match &*bound.addr.load() {
            Addr::Bound(set) => set.endpoints().iter().map(|e| e.addr.to_string()).collect(),
            Addr::Neg => vec!["neg".into()],
            Addr::Pending => vec!["pending".into()],
            Addr::Failed(why) => vec![format!("failed: {why}")],
        },
        Err(why) => vec![why],
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

fn service(namespace: &str, name: &str, port_name: &str, port: u16) -> Service {
    Service::new(namespace, name).port(Some(port_name), port, TargetPort::Number(port))
}

fn pods(namespace: &str, name: &str, port_name: &str, port: u16, at: &[(&str, &str)]) -> Endpoints {
    let mut eps = Endpoints::new(namespace, name);
    for (ip, node) in at {
        eps = eps.ready(ip, Some(node));
    }
    eps.port(Some(port_name), port)
}

/// `web` in `default` on three nodes, each node its own /24.
async fn web_on_three_nodes() -> FakeKube {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_service(&service("default", "web", "http", 8080));
    fake.apply_endpoints(&pods(
        "default",
        "web",
        "http",
        8080,
        &[
            ("10.0.1.5", "node-a"),
            ("10.0.2.5", "node-b"),
            ("10.0.2.6", "node-b"),
        ],
    ));
    fake
}

#[tokio::test]
async fn localnode_keeps_the_endpoints_on_this_node() {
    let fake = web_on_three_nodes().await;
    let by_name = LocalNodeTransformer::new(NodeRule::NodeName("node-b".into()));
    let interpreter = with_transformers(k8s(&fake), vec![Arc::new(by_name)]);
    let binding = bind(&interpreter, "/svc/web/x");
    wait_for_endpoints(&binding, &["10.0.2.5:8080", "10.0.2.6:8080"]).await;
    let bound = chosen(&binding).unwrap();
    assert_eq!(
        bound.id.show(),
        "/%/io.l5d.k8s.localnode/node-b/#/io.l5d.k8s/default/http/web"
    );
    assert_eq!(bound.residual.show(), "/x");

    // It follows the pods; with none left on this node, the address is `~`.
    fake.apply_endpoints(&pods(
        "default",
        "web",
        "http",
        8080,
        &[("10.0.2.7", "node-b")],
    ));
    wait_for_endpoints(&binding, &["10.0.2.7:8080"]).await;
    fake.apply_endpoints(&pods(
        "default",
        "web",
        "http",
        8080,
        &[("10.0.1.5", "node-a")],
    ));
    wait_for_endpoints(&binding, &["neg"]).await;

    // Without hostNetwork, Linkerd goes by the pod's /24.
    let by_subnet = LocalNodeTransformer::new(NodeRule::Subnet("10.0.1.99".parse().unwrap()));
    let interpreter = with_transformers(k8s(&fake), vec![Arc::new(by_subnet)]);
    let binding = bind(&interpreter, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.1.5:8080"]).await;
    assert!(
        chosen(&binding)
            .unwrap()
            .id
            .show()
            .starts_with("/%/io.l5d.k8s.localnode/10.0.1.99/")
    );
}

#[tokio::test]
async fn daemonset_sends_each_endpoint_to_the_daemon_on_its_node() {
    let fake = web_on_three_nodes().await;
    fake.apply_service(&service("linkerd", "l5d", "incoming", 4141));
    fake.apply_endpoints(&pods(
        "linkerd",
        "l5d",
        "incoming",
        4141,
        &[
            ("10.0.1.2", "node-a"),
            ("10.0.2.2", "node-b"),
            ("10.0.3.2", "node-c"),
        ],
    ));
    let daemonset = DaemonSetTransformer::new(
        k8s(&fake),
        Path::read("/linkerd/incoming/l5d").unwrap(),
        true,
    );
    let interpreter = with_transformers(k8s(&fake), vec![Arc::new(daemonset)]);
    let binding = bind(&interpreter, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.1.2:4141", "10.0.2.2:4141"]).await;
    assert_eq!(
        chosen(&binding).unwrap().id.show(),
        "/%/io.l5d.k8s.daemonset/linkerd/incoming/l5d/#/io.l5d.k8s/default/http/web"
    );

    // A pod on a third node brings in that node's daemon...
    fake.apply_endpoints(&pods(
        "default",
        "web",
        "http",
        8080,
        &[("10.0.1.5", "node-a"), ("10.0.3.5", "node-c")],
    ));
    wait_for_endpoints(&binding, &["10.0.1.2:4141", "10.0.3.2:4141"]).await;
    // ...and daemons that move are followed too.
    fake.apply_endpoints(&pods(
        "linkerd",
        "l5d",
        "incoming",
        4141,
        &[("10.0.1.3", "node-a"), ("10.0.3.2", "node-c")],
    ));
    wait_for_endpoints(&binding, &["10.0.1.3:4141", "10.0.3.2:4141"]).await;
}

#[tokio::test]
async fn namer_transformers_are_configured_in_yaml() {
    let fake = web_on_three_nodes().await;
    fake.apply_service(&service("linkerd", "l5d", "incoming", 4141));
    fake.apply_endpoints(&pods(
        "linkerd",
        "l5d",
        "incoming",
        4141,
        &[("10.0.1.2", "node-a"), ("10.0.2.2", "node-b")],
    ));
    let port = fake.addr().port();
    let yaml = format!(
        "- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {port}\n  transformers:\n\
         \x20 - kind: io.l5d.k8s.daemonset\n    k8sHost: 127.0.0.1\n    k8sPort: {port}\n\
         \x20   namespace: linkerd\n    service: l5d\n    port: incoming\n\
         \x20 - kind: io.l5d.port\n    port: 4140\n"
    );
    let configs: Vec<NamerConfig> = parse("test.yaml", &yaml).unwrap();
    let context = NamerContext {
        inet: Arc::new(InetResolver::system().unwrap()),
    };
    let interpreter = interpreter(build_namers(&configs, &context).unwrap());
    let binding = bind(&interpreter, "/svc/web");
    // By /24 (no hostNetwork), then moved to port 4140.
    wait_for_endpoints(&binding, &["10.0.1.2:4140", "10.0.2.2:4140"]).await;
    assert_eq!(
        chosen(&binding).unwrap().id.show(),
        "/%/io.l5d.port/4140/%/io.l5d.k8s.daemonset/linkerd/incoming/l5d/#/io.l5d.k8s/default/http/web"
    );

    let bad: Vec<NamerConfig> = parse(
        "t.yaml",
        "- kind: io.l5d.k8s\n  transformers:\n  - kind: io.l5d.nope\n    path: /x\n",
    )
    .unwrap();
    let err = build_namers(&bad, &context).err().unwrap();
    assert!(
        err.starts_with("namers[0] (io.l5d.k8s): transformers[0]: "),
        "{err}"
    );
    assert!(
        err.contains("io.l5d.nope") && err.contains("io.l5d.k8s.localnode"),
        "{err}"
    );
    let bad: Vec<NamerConfig> = parse(
        "t.yaml",
        "- kind: io.l5d.k8s\n  transformers:\n  - kind: io.l5d.k8s.daemonset\n    namespace: x\n",
    )
    .unwrap();
    let err = build_namers(&bad, &context).err().unwrap();
    assert!(err.contains("missing field"), "{err}");
}

#[tokio::test]
async fn host_transformers_keep_one_hosts_endpoints_under_any_prefix() {
    let fake = web_on_three_nodes().await;
    let port = fake.addr().port();
    let namer = |transformer: &str| {
        let yaml = format!(
            "- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {port}\n  transformers:\n{transformer}"
        );
        let configs: Vec<NamerConfig> = parse("test.yaml", &yaml).unwrap();
        let context = NamerContext {
            inet: Arc::new(InetResolver::system().unwrap()),
        };
        interpreter(build_namers(&configs, &context).unwrap())
    };
    let specific = namer("  - kind: io.l5d.specificHost\n    host: 10.0.2.6\n");
    let binding = bind(&specific, "/svc/web");
    wait_for_endpoints(&binding, &["10.0.2.6:8080"]).await;
    assert_eq!(
        chosen(&binding).unwrap().id.show(),
        "/%/io.l5d.specificHost/#/io.l5d.k8s/default/http/web"
    );

    let local = namer("  - kind: io.l5d.localhost\n    prefix: /here\n");
    let binding = bind(&local, "/svc/web");
    wait_for_endpoints(&binding, &["neg"]).await;
    assert_eq!(
        chosen(&binding).unwrap().id.show(),
        "/%/here/#/io.l5d.k8s/default/http/web"
    );
    fake.apply_endpoints(&pods(
        "default",
        "web",
        "http",
        8080,
        &[("127.0.0.1", "node-a"), ("10.0.1.5", "node-a")],
    ));
    wait_for_endpoints(&binding, &["127.0.0.1:8080"]).await;
}

#[tokio::test]
async fn interpreter_transformers_apply_to_whole_bindings() {
    let fake = web_on_three_nodes().await;
    let interpreter = interpreter(vec![(Path::read("/#/io.l5d.k8s").unwrap(), k8s(&fake))]);
    let local: Arc<dyn Transformer> = Arc::new(LocalNodeTransformer::new(NodeRule::NodeName(
        "node-a".into(),
    )));
    let binding = transform_binding(bind(&interpreter, "/svc/web"), &[local]);
    wait_for_endpoints(&binding, &["10.0.1.5:8080"]).await;
    fake.apply_endpoints(&pods(
        "default",
        "web",
        "http",
        8080,
        &[("10.0.1.5", "node-a"), ("10.0.1.6", "node-a")],
    ));
    wait_for_endpoints(&binding, &["10.0.1.5:8080", "10.0.1.6:8080"]).await;
}
