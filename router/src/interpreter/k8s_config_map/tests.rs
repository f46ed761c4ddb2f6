use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use integration::k8s::{FakeKube, Resource};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Activity, Binding, Live};

use super::*;
use crate::config::KindConfig;
use crate::interpreter::RouterNaming;
use crate::interpreter::watched::SourceDtab;

const WAIT: Duration = Duration::from_secs(5);
const WEB: &str = "/svc/web";

fn default() -> Interpreter {
    let inet = Arc::new(InetResolver::system().unwrap());
    Interpreter::new(Vec::new(), SystemNamers::with_linkerd_namers(inet))
}

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn fast() -> Timing {
    Timing {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..Timing::default()
    }
}

fn interpreter_for(kube: &FakeKube, namespace: Option<&str>) -> ConfigMapInterpreter {
    let config = ConfigMapConfig {
        name: "dtabs".into(),
        filename: "dtab".into(),
        host: Some("127.0.0.1".into()),
        port: Some(kube.addr().port()),
        namespace: namespace.map(str::to_string),
    };
    WatchedDtab::with_source(config.source_in(fast(), false).unwrap(), default())
}

fn leaf(binding: &Binding) -> String {
    match &*binding.load() {
        Activity::Ok(NameTree::Leaf(b)) => b.id.show(),
        other => format!("{other:?}"),
    }
}

async fn until_leaf(binding: &mut Binding, id: &str) {
    let waited = tokio::time::timeout(WAIT, async {
        while leaf(binding) != id {
            binding.changed().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "still {} instead of {id}", leaf(binding));
}

async fn until_source(
    source: &mut Live<SourceDtab>,
    ok: impl Fn(&SourceDtab) -> bool,
) -> Arc<SourceDtab> {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            let state = source.load();
            if ok(&state) {
                return state;
            }
            source.changed().await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("source state still {:?}", source.load()))
}

fn error_of(state: &SourceDtab) -> &str {
    state.error.as_deref().unwrap_or("")
}

#[tokio::test]
async fn binds_through_the_config_map_and_follows_edits_within_milliseconds() {
    let kube = FakeKube::start().await.unwrap();
    kube.apply_config_map(
        "default",
        "dtabs",
        &[
            (
                "dtab",
                "/svc => /$/inet/127.0.0.1/1;\n/svc/web => /$/inet/127.0.0.1/8080;\n",
            ),
            ("other", "/svc/web => /$/inet/127.0.0.1/1"),
        ],
    );
    let interpreter = interpreter_for(&kube, None);
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    // The router's dtab comes after the ConfigMap's, so it wins.
    let local = Dtab::read("/svc/web => /$/inet/127.0.0.1/7070").unwrap();
    let mut overridden = interpreter.bind(&local, &path(WEB));
    until_leaf(&mut overridden, "/$/inet/127.0.0.1/7070").await;
    let mut other = interpreter.bind(&local, &path("/svc/api"));
    until_leaf(&mut other, "/$/inet/127.0.0.1/1").await;

    let edited = tokio::time::Instant::now();
    kube.apply_config_map(
        "default",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/9090")],
    );
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    assert!(
        edited.elapsed() < Duration::from_millis(500),
        "the edit took {:?}",
        edited.elapsed()
    );
    assert_eq!(leaf(&overridden), "/$/inet/127.0.0.1/7070");

    // One object is watched, selected by name, in its namespace.
    let watches: Vec<_> = kube.requests().into_iter().filter(|r| r.watch).collect();
    assert!(!watches.is_empty());
    for request in watches {
        assert_eq!(request.path, "/api/v1/namespaces/default/configmaps");
        assert!(
            request.query.contains("fieldSelector=metadata.name=dtabs"),
            "{}",
            request.query
        );
    }

    // The explanation shows both dtabs.
    let tree = interpreter.delegate(&local, &path(WEB)).await.unwrap();
    let text = tree.to_string();
    assert!(text.contains("/$/inet/127.0.0.1/7070"), "{text}");
    assert!(text.contains("/$/inet/127.0.0.1/9090"), "{text}");
    interpreter.ready().await.unwrap();
}

#[tokio::test]
async fn a_bad_edit_or_a_deletion_keeps_the_last_good_dtab() {
    let kube = FakeKube::start().await.unwrap();
    kube.apply_config_map(
        "prod",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/8080")],
    );
    let interpreter = interpreter_for(&kube, Some("prod"));
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    let mut source = interpreter.source_dtab();

    kube.apply_config_map(
        "prod",
        "dtabs",
        &[(
            "dtab",
            "/svc/x => /$/inet/127.0.0.1/1;\n/svc/web =>> /oops\n",
        )],
    );
    let state = until_source(&mut source, |s| s.error.is_some()).await;
    assert!(
        error_of(&state).starts_with("ConfigMap prod/dtabs key dtab:2:12: expected"),
        "{}",
        error_of(&state)
    );
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");

    // The key goes: the last good dtab stays.
    kube.apply_config_map("prod", "dtabs", &[("unrelated", "x")]);
    let state = until_source(&mut source, |s| error_of(s).contains("has no key")).await;
    assert_eq!(error_of(&state), "ConfigMap prod/dtabs has no key dtab");
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");

    // The ConfigMap goes: the last good dtab stays.
    assert!(kube.delete(Resource::ConfigMaps, "prod", "dtabs"));
    let state = until_source(&mut source, |s| error_of(s).contains("does not exist")).await;
    assert_eq!(error_of(&state), "ConfigMap prod/dtabs does not exist");
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");
    interpreter.ready().await.unwrap();

    // It comes back: its dtab is followed again.
    kube.apply_config_map(
        "prod",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/9090")],
    );
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    assert_eq!(source.load().error, None);
}

#[tokio::test]
async fn a_config_map_missing_from_the_start_is_the_empty_dtab() {
    let kube = FakeKube::start().await.unwrap();
    let interpreter = interpreter_for(&kube, None);
    let local = Dtab::read("/svc/web => /$/inet/127.0.0.1/7070").unwrap();
    let mut routed = interpreter.bind(&local, &path(WEB));
    until_leaf(&mut routed, "/$/inet/127.0.0.1/7070").await;
    let mut unrouted = interpreter.bind(&Dtab::empty(), &path(WEB));
    let waited = tokio::time::timeout(WAIT, async {
        while !matches!(*unrouted.load(), Activity::Ok(NameTree::Neg)) {
            unrouted.changed().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{:?}", unrouted.load());
    let state = interpreter.source_dtab().load();
    assert_eq!(error_of(&state), "ConfigMap default/dtabs does not exist");
    interpreter.ready().await.unwrap();

    kube.apply_config_map(
        "default",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/8080")],
    );
    until_leaf(&mut unrouted, "/$/inet/127.0.0.1/8080").await;
    assert_eq!(leaf(&routed), "/$/inet/127.0.0.1/7070");
}

#[tokio::test]
async fn an_outage_keeps_the_last_good_dtab_and_the_next_edit_arrives_after_it() {
    let kube = FakeKube::start().await.unwrap();
    kube.apply_config_map(
        "default",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/8080")],
    );
    let interpreter = interpreter_for(&kube, None);
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    let mut source = interpreter.source_dtab();

    kube.set_down(true);
    let state = until_source(&mut source, |s| s.error.is_some()).await;
    assert!(
        error_of(&state).starts_with("ConfigMap default/dtabs: "),
        "{}",
        error_of(&state)
    );
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");
    // Edited while the client cannot see it.
    kube.apply_config_map(
        "default",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/9090")],
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");

    kube.set_down(false);
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    until_source(&mut source, |s| s.error.is_none()).await;

    // A compaction makes the watch list again; edits still arrive.
    kube.expire_watches();
    kube.apply_config_map(
        "default",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/9191")],
    );
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9191").await;
}

#[tokio::test]
async fn a_server_that_never_answered_fails_bindings_with_why() {
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = ConfigMapConfig {
        name: "dtabs".into(),
        filename: "dtab".into(),
        host: Some("127.0.0.1".into()),
        port: Some(port),
        namespace: None,
    };
    let interpreter = WatchedDtab::with_source(config.source_in(fast(), false).unwrap(), default());
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            if let Activity::Failed(e) = &*binding.load() {
                return e.to_string();
            }
            binding.changed().await;
        }
    })
    .await
    .expect("the binding still waits");
    assert!(failed.contains("ConfigMap default/dtabs"), "{failed}");
    let not_ready = interpreter.ready().await.unwrap_err();
    assert!(
        not_ready.starts_with(
            "io.l5d.k8s.configMap interpreter: no usable dtab from key dtab of ConfigMap default/dtabs yet: ConfigMap default/dtabs: "
        ),
        "{not_ready}"
    );
}

#[tokio::test]
async fn the_watch_ends_with_the_last_binding() {
    let kube = FakeKube::start().await.unwrap();
    kube.apply_config_map(
        "default",
        "dtabs",
        &[("dtab", "/svc/web => /$/inet/127.0.0.1/8080")],
    );
    let interpreter = interpreter_for(&kube, None);
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    let opened = tokio::time::timeout(WAIT, async {
        while kube.open_watches() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(opened.is_ok(), "no watch opened");
    drop(binding);
    let ended = tokio::time::timeout(WAIT, async {
        while interpreter.is_watching() || kube.open_watches() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the ConfigMap watch outlived its bindings");
}

#[tokio::test]
async fn config_keys_are_checked() {
    let params = |json: serde_json::Value| match json {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    };
    let build = |json| {
        crate::interpreter::build(
            Some(&KindConfig {
                experimental: true,
                kind: KIND.to_string(),
                params: params(json),
            }),
            &default(),
            Duration::from_secs(600),
            1000,
        )
        .map(drop)
    };
    let e = build(serde_json::json!({"filename": "dtab"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.k8s.configMap): name: missing field"),
        "{e}"
    );
    let e = build(serde_json::json!({"name": "dtabs"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.k8s.configMap): filename: missing field"),
        "{e}"
    );
    let e =
        build(serde_json::json!({"name": "dtabs", "filename": "d", "dtabFile": "x"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.k8s.configMap): dtabFile: unknown field"),
        "{e}"
    );
    let e = build(serde_json::json!({"name": "Dtabs", "filename": "d"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.k8s.configMap): name: \"Dtabs\" is not"),
        "{e}"
    );
    let e = build(serde_json::json!({"name": "dtabs", "filename": "a/b"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.k8s.configMap): filename: \"a/b\" is not"),
        "{e}"
    );
    let e =
        build(serde_json::json!({"name": "dtabs", "filename": "d", "namespace": ""})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.k8s.configMap): namespace: \"\" is not"),
        "{e}"
    );
    let e = build(serde_json::json!({"name": "dtabs", "filename": "d", "port": 0})).unwrap_err();
    assert_eq!(
        e,
        "interpreter (io.l5d.k8s.configMap): port: must be 1 to 65535"
    );
    build(serde_json::json!({
        "name": "dtabs", "filename": "dtab.txt", "namespace": "kube-system",
        "host": "10.0.0.1", "port": 6443,
    }))
    .unwrap();
}

#[test]
fn the_in_cluster_server_is_used_only_without_host_and_port() {
    let config = |host: Option<&str>, port: Option<u16>| ConfigMapConfig {
        name: "dtabs".into(),
        filename: "dtab".into(),
        host: host.map(str::to_string),
        port,
        namespace: None,
    };
    let api =
        |c: ConfigMapConfig, in_cluster| c.source_in(fast(), in_cluster).unwrap().api().clone();
    assert_eq!(api(config(None, None), true), ApiServer::InCluster);
    assert_eq!(
        api(config(None, None), false),
        ApiServer::Proxy {
            authority: "localhost:8001".into()
        }
    );
    assert_eq!(
        api(config(None, Some(9000)), true),
        ApiServer::Proxy {
            authority: "localhost:9000".into()
        }
    );
}
