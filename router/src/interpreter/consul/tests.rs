use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use integration::consul::{FakeConsul, FakeConsulConfig};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Activity, Binding, Live};

use super::*;
use crate::config::KindConfig;
use crate::interpreter::RouterNaming;
use crate::interpreter::watched::SourceDtab;

const WAIT: Duration = Duration::from_secs(5);
const WEB: &str = "/svc/web";
const KEY: &str = "namerd/dtabs/default";

fn default() -> Interpreter {
    let inet = Arc::new(InetResolver::system().unwrap());
    Interpreter::new(Vec::new(), SystemNamers::with_linkerd_namers(inet))
}

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn config(port: u16, extra: serde_json::Value) -> ConsulInterpreterConfig {
    let mut json = serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "backoff": {"kind": "jittered", "minMs": 10, "maxMs": 100},
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (json.as_object_mut(), extra) {
        map.extend(extra);
    }
    serde_json::from_value(json).unwrap()
}

fn interpreter_for(consul: &FakeConsul, extra: serde_json::Value) -> ConsulInterpreter {
    let source = config(consul.addr().port(), extra)
        .source(Timing::default())
        .unwrap();
    WatchedDtab::with_source(source, default())
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
async fn binds_through_the_consul_key_and_follows_edits_within_milliseconds() {
    let consul = FakeConsul::start().await.unwrap();
    consul.kv_put(
        KEY,
        "/svc => /$/inet/127.0.0.1/1;\n/svc/web => /$/inet/127.0.0.1/8080;\n",
    );
    consul.kv_put("namerd/dtabs/other", "/svc/web => /$/inet/127.0.0.1/1");
    let interpreter = interpreter_for(&consul, serde_json::json!({}));
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    // The router's dtab comes after Consul's, so it wins.
    let local = Dtab::read("/svc/web => /$/inet/127.0.0.1/7070").unwrap();
    let mut overridden = interpreter.bind(&local, &path(WEB));
    until_leaf(&mut overridden, "/$/inet/127.0.0.1/7070").await;
    let mut other = interpreter.bind(&local, &path("/svc/api"));
    until_leaf(&mut other, "/$/inet/127.0.0.1/1").await;

    let edited = tokio::time::Instant::now();
    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/9090");
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    assert!(
        edited.elapsed() < Duration::from_millis(500),
        "the edit took {:?}",
        edited.elapsed()
    );
    assert_eq!(leaf(&overridden), "/$/inet/127.0.0.1/7070");
    // An edit of another namespace's key changes nothing.
    consul.kv_put("namerd/dtabs/other", "/svc/web => /$/inet/127.0.0.1/2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/9090");

    // The key was read with blocking queries on the last index.
    let requests = consul.requests();
    let reads: Vec<_> = requests
        .iter()
        .filter(|r| r.path == format!("/v1/kv/{KEY}"))
        .collect();
    assert!(reads.len() >= 2, "{reads:?}");
    assert!(
        reads.iter().skip(1).all(|r| r.query.contains("index=")),
        "{reads:?}"
    );

    let tree = interpreter.delegate(&local, &path(WEB)).await.unwrap();
    let text = tree.to_string();
    assert!(text.contains("/$/inet/127.0.0.1/7070"), "{text}");
    assert!(text.contains("/$/inet/127.0.0.1/9090"), "{text}");
    interpreter.ready().await.unwrap();
}

#[tokio::test]
async fn a_bad_edit_or_a_deletion_keeps_the_last_good_dtab() {
    let consul = FakeConsul::start().await.unwrap();
    let key = "dtabs/prod/web";
    consul.kv_put(key, "/svc/web => /$/inet/127.0.0.1/8080");
    let interpreter = interpreter_for(
        &consul,
        serde_json::json!({"pathPrefix": "/dtabs/prod/", "namespace": "web"}),
    );
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    let mut source = interpreter.source_dtab();

    consul.kv_put(key, "/svc/x => /$/inet/127.0.0.1/1;\n/svc/web =>> /oops\n");
    let state = until_source(&mut source, |s| s.error.is_some()).await;
    assert!(
        error_of(&state).starts_with("Consul key dtabs/prod/web:2:12: expected"),
        "{}",
        error_of(&state)
    );
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");

    consul.kv_put(key, vec![0xff, 0xfe]);
    let state = until_source(&mut source, |s| error_of(s).contains("UTF-8")).await;
    assert_eq!(
        error_of(&state),
        "Consul key dtabs/prod/web: the value is not UTF-8 text"
    );

    assert!(consul.kv_delete(key));
    let state = until_source(&mut source, |s| error_of(s).contains("does not exist")).await;
    assert_eq!(error_of(&state), "Consul key dtabs/prod/web does not exist");
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");
    interpreter.ready().await.unwrap();

    consul.kv_put(key, "/svc/web => /$/inet/127.0.0.1/9090");
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    assert_eq!(source.load().error, None);
}

#[tokio::test]
async fn a_key_missing_from_the_start_is_the_empty_dtab() {
    let consul = FakeConsul::start().await.unwrap();
    let interpreter = interpreter_for(&consul, serde_json::json!({}));
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
    assert_eq!(error_of(&state), format!("Consul key {KEY} does not exist"));

    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/8080");
    until_leaf(&mut unrouted, "/$/inet/127.0.0.1/8080").await;
    assert_eq!(leaf(&routed), "/$/inet/127.0.0.1/7070");
}

#[tokio::test]
async fn outages_and_index_resets_keep_the_last_good_dtab_and_later_edits_arrive() {
    let consul = FakeConsul::start().await.unwrap();
    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/8080");
    let interpreter = interpreter_for(&consul, serde_json::json!({}));
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    let mut source = interpreter.source_dtab();

    // No leader: 500s, blocking queries included.
    consul.set_down(true);
    let state = until_source(&mut source, |s| s.error.is_some()).await;
    assert!(error_of(&state).contains(KEY), "{}", error_of(&state));
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");
    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/9090");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/8080");
    consul.set_down(false);
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9090").await;
    until_source(&mut source, |s| s.error.is_none()).await;

    // The agent stops: connections are refused.
    consul.set_refusing(true).await;
    until_source(&mut source, |s| s.error.is_some()).await;
    assert_eq!(leaf(&binding), "/$/inet/127.0.0.1/9090");
    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/9191");
    consul.set_refusing(false).await;
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9191").await;

    // A restore from a snapshot makes the index go backwards: the key is
    // read afresh and later edits still arrive.
    // (Once the router waits on the current index: a query sent after the
    // restore with a higher index waits out its `wait`, as with Consul.)
    let waiting = tokio::time::timeout(WAIT, async {
        while consul.blocking_queries_in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waiting.is_ok(), "no blocking query");
    consul.reset_index();
    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/9292");
    until_leaf(&mut binding, "/$/inet/127.0.0.1/9292").await;
}

#[tokio::test]
async fn tokens_and_datacenters_are_sent() {
    let consul = FakeConsul::start_with(FakeConsulConfig {
        token: Some("secret".into()),
        other_datacenters: vec!["east".into()],
        ..FakeConsulConfig::default()
    })
    .await
    .unwrap();
    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/8080");
    let good = interpreter_for(
        &consul,
        serde_json::json!({"token": "secret", "datacenter": "east",
                           "readConsistencyMode": "consistent"}),
    );
    let mut binding = good.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    let read = consul
        .requests()
        .into_iter()
        .find(|r| r.path == format!("/v1/kv/{KEY}"))
        .unwrap();
    assert!(read.query.contains("dc=east"), "{}", read.query);
    assert!(read.query.contains("consistent"), "{}", read.query);

    // A wrong token never gives a dtab: bindings fail with Consul's 403.
    let refused = interpreter_for(&consul, serde_json::json!({"token": "wrong"}));
    let mut binding = refused.bind(&Dtab::empty(), &path(WEB));
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
    assert!(failed.contains("403"), "{failed}");
    assert!(failed.contains(KEY), "{failed}");
}

#[tokio::test]
async fn the_queries_end_with_the_last_binding() {
    let consul = FakeConsul::start().await.unwrap();
    consul.kv_put(KEY, "/svc/web => /$/inet/127.0.0.1/8080");
    let interpreter = interpreter_for(&consul, serde_json::json!({}));
    let mut binding = interpreter.bind(&Dtab::empty(), &path(WEB));
    until_leaf(&mut binding, "/$/inet/127.0.0.1/8080").await;
    drop(binding);
    let ended = tokio::time::timeout(WAIT, async {
        while interpreter.is_watching() || consul.blocking_queries_in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the Consul queries outlived their bindings");
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
                experimental: false,
                kind: KIND.to_string(),
                params: params(json),
            }),
            &default(),
            Duration::from_secs(600),
            1000,
        )
        .map(drop)
    };
    let refused = [
        (serde_json::json!({"hots": "x"}), "hots: unknown field"),
        (serde_json::json!({"port": 0}), "port: must be 1 to 65535"),
        (serde_json::json!({"host": "a/b"}), "host: "),
        (serde_json::json!({"pathPrefix": "namerd"}), "pathPrefix: "),
        (serde_json::json!({"namespace": "a b"}), "namespace: "),
        (serde_json::json!({"datacenter": "dc 1"}), "datacenter: "),
        (serde_json::json!({"token": ""}), "token: "),
        (
            serde_json::json!({"readConsistencyMode": "eventual"}),
            "readConsistencyMode: unknown variant",
        ),
        (
            serde_json::json!({"backoff": {"kind": "jittered", "minMs": 5, "maxMs": 1}}),
            "backoff: minMs: must not exceed maxMs",
        ),
        (
            serde_json::json!({"tls": {"disableValidation": true}}),
            "tls: TLS to Consul is not supported yet",
        ),
    ];
    for (json, expected) in refused {
        let e = build(json.clone()).unwrap_err();
        let expected = format!("interpreter (io.l5d.consul.interpreter): {expected}");
        assert!(e.starts_with(&expected), "{json}: {e}");
    }
    build(serde_json::json!({
        "host": "consul.local", "port": 8501, "pathPrefix": "/dtabs", "namespace": "web",
        "token": "t", "datacenter": "east", "readConsistencyMode": "stale",
        "writeConsistencyMode": "consistent", "failFast": true,
        "backoff": {"kind": "constant", "ms": 500},
    }))
    .unwrap();
    let source = ConsulInterpreterConfig::default()
        .source(Timing::default())
        .unwrap();
    assert_eq!(source.key(), "namerd/dtabs/default");
    let root: ConsulInterpreterConfig =
        serde_json::from_value(serde_json::json!({"pathPrefix": "/", "namespace": "x"})).unwrap();
    assert_eq!(root.source(Timing::default()).unwrap().key(), "x");
}
