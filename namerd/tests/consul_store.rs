//! The `io.l5d.consul` dtab store against an in-process fake of Consul's
//! HTTP API (`integration::consul`), not a real Consul agent: no agent can
//! be installed where these tests run. The fake follows Consul's documented
//! KV API (blocking queries, `X-Consul-Index`, compare-and-set, tokens,
//! datacenters) and can simulate outages and index resets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dtab::Dtab;
use integration::consul::{FakeConsul, FakeConsulConfig};
use namerd::Namespace;
use namerd::store::consul::{ConsulConfig, ConsulStore, Timing};
use namerd::store::contract::{check_store, wait_for};
use namerd::store::{DtabStore, DtabWatch, StoreError, Version};
use namers::Activity;
use tokio::time::Instant;

const SOON: Duration = Duration::from_secs(1);
const LIMIT: Duration = Duration::from_secs(5);

/// Short pauses so that recoveries happen within a test's patience; the
/// wait stays long, so a watch that needs a wait to elapse is caught.
fn timing() -> Timing {
    Timing {
        wait: Duration::from_secs(30),
        request_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
    }
}

fn store_with(fake: &FakeConsul, extra: serde_json::Value) -> ConsulStore {
    let mut config = serde_json::json!({"host": "127.0.0.1", "port": fake.addr().port()});
    if let (Some(config), serde_json::Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    serde_json::from_value::<ConsulConfig>(config)
        .unwrap()
        .build_with(timing())
        .unwrap()
}

fn store(fake: &FakeConsul) -> ConsulStore {
    store_with(fake, serde_json::json!({}))
}

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn dtab(text: &str) -> Dtab {
    Dtab::read(text).unwrap()
}

fn shows(watch: &DtabWatch) -> Option<String> {
    watch.load().ok()?.as_ref().map(|d| d.dtab.show())
}

async fn wait_for_dtab(watch: &DtabWatch, limit: Duration, text: &str) {
    wait_for(
        watch,
        limit,
        text,
        |s| matches!(s, Activity::Ok(Some(d)) if d.dtab.show() == text),
    )
    .await;
}

/// Polls `done` every 10 ms for up to `limit`.
async fn eventually(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records every state a watch goes through, until aborted.
fn record(watch: &DtabWatch) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut watch = watch.clone();
    watch.mark_seen();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            watch.changed().await;
            let state = match &*watch.load() {
                Activity::Ok(Some(d)) => format!("ok {}", d.dtab.show()),
                Activity::Ok(None) => "absent".to_string(),
                Activity::Pending => "pending".to_string(),
                Activity::Failed(e) => format!("failed {e}"),
            };
            log.lock().unwrap().push(state);
        }
    });
    (seen, task)
}

#[tokio::test]
async fn keeps_the_store_contract() {
    let fake = FakeConsul::start().await.unwrap();
    let store = store(&fake);
    check_store(&store, "").await;
    // What it stored is where Linkerd keeps it, as plain dtab text.
    store
        .put(&ns("web"), &dtab("/svc => /#/io.l5d.fs"))
        .await
        .unwrap();
    let entry = fake.kv_get("namerd/dtabs/web").unwrap();
    assert_eq!(&entry.value[..], b"/svc=>/#/io.l5d.fs");
    let got = store.get(&ns("web")).await.unwrap().unwrap();
    assert_eq!(got.version, Version::from_u64(entry.modify_index));
}

#[tokio::test]
async fn a_custom_prefix_keeps_namespaces_apart_from_other_keys() {
    let fake = FakeConsul::start().await.unwrap();
    fake.kv_put("dtabs/prod/old", "/a=>/b");
    fake.kv_put("dtabs/prod/nested/deeper", "/a=>/b");
    fake.kv_put("dtabs/production", "/a=>/b");
    let store = store_with(&fake, serde_json::json!({"pathPrefix": "/dtabs/prod"}));
    let names = store.list().await.unwrap();
    assert_eq!(names, [ns("old")].into_iter().collect());
    check_store(&store, "p-").await;
}

#[tokio::test]
async fn two_stores_see_each_others_writes_within_a_second() {
    let fake = FakeConsul::start().await.unwrap();
    let (a, b) = (store(&fake), store(&fake));
    let on_b = b.watch(&ns("web"));
    let list_on_b = b.watch_list();
    wait_for(&on_b, LIMIT, "absent", |s| matches!(s, Activity::Ok(None))).await;

    let v1 = a.create(&ns("web"), &dtab("/svc=>/one")).await.unwrap();
    wait_for_dtab(&on_b, SOON, "/svc=>/one").await;
    wait_for(
        &list_on_b,
        SOON,
        "web listed",
        |s| matches!(s, Activity::Ok(names) if names.contains(&ns("web"))),
    )
    .await;
    assert_eq!(on_b.load().ok().unwrap().as_ref().unwrap().version, v1);

    // A compare-and-set race between the two: exactly one wins.
    let (web, to_a, to_b) = (ns("web"), dtab("/svc=>/a"), dtab("/svc=>/b"));
    let (ra, rb) = tokio::join!(a.update(&web, &to_a, &v1), b.update(&web, &to_b, &v1));
    let winner = match (&ra, &rb) {
        (Ok(_), Err(StoreError::VersionMismatch(_))) => "/svc=>/a",
        (Err(StoreError::VersionMismatch(_)), Ok(_)) => "/svc=>/b",
        other => panic!("expected one winner, got {other:?}"),
    };
    wait_for_dtab(&on_b, SOON, winner).await;

    let on_a = a.watch(&ns("web"));
    wait_for_dtab(&on_a, SOON, winner).await;
    b.delete(&ns("web")).await.unwrap();
    wait_for(&on_a, SOON, "the delete", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
    wait_for(
        &list_on_b,
        SOON,
        "web unlisted",
        |s| matches!(s, Activity::Ok(names) if names.is_empty()),
    )
    .await;
}

#[tokio::test]
async fn an_outage_keeps_the_last_good_dtab_and_recovers() {
    let fake = FakeConsul::start().await.unwrap();
    let (writer, reader) = (store(&fake), store(&fake));
    writer
        .create(&ns("web"), &dtab("/svc=>/one"))
        .await
        .unwrap();
    let watch = reader.watch(&ns("web"));
    wait_for_dtab(&watch, LIMIT, "/svc=>/one").await;
    let (seen, recorder) = record(&watch);

    // Consul answers 500s (no leader).
    fake.set_down(true);
    let err = writer.get(&ns("web")).await.unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shows(&watch).as_deref(), Some("/svc=>/one"));
    fake.set_down(false);
    writer.put(&ns("web"), &dtab("/svc=>/two")).await.unwrap();
    wait_for_dtab(&watch, LIMIT, "/svc=>/two").await;

    // The agent is gone: connections are refused.
    fake.set_refusing(true).await;
    let err = writer.get(&ns("web")).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shows(&watch).as_deref(), Some("/svc=>/two"));
    fake.set_refusing(false).await;
    writer.put(&ns("web"), &dtab("/svc=>/three")).await.unwrap();
    wait_for_dtab(&watch, LIMIT, "/svc=>/three").await;

    recorder.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, ["ok /svc=>/two", "ok /svc=>/three"], "states seen");
}

#[tokio::test]
async fn a_watch_that_never_had_a_dtab_fails_while_consul_is_down() {
    let fake = FakeConsul::start().await.unwrap();
    fake.set_down(true);
    let store = store(&fake);
    let watch = store.watch(&ns("web"));
    wait_for(&watch, LIMIT, "a failure", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;
    let list = store.watch_list();
    wait_for(&list, LIMIT, "a failure", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;
    fake.set_down(false);
    wait_for(&watch, LIMIT, "absent", |s| matches!(s, Activity::Ok(None))).await;
    wait_for(
        &list,
        LIMIT,
        "empty",
        |s| matches!(s, Activity::Ok(n) if n.is_empty()),
    )
    .await;
}

#[tokio::test]
async fn an_index_reset_is_followed() {
    let fake = FakeConsul::start().await.unwrap();
    let (writer, reader) = (store(&fake), store(&fake));
    for i in 0..20 {
        writer
            .put(&ns("other"), &dtab(&format!("/n=>/{i}")))
            .await
            .unwrap();
    }
    writer
        .create(&ns("web"), &dtab("/svc=>/one"))
        .await
        .unwrap();
    let watch = reader.watch(&ns("web"));
    let list = reader.watch_list();
    wait_for_dtab(&watch, LIMIT, "/svc=>/one").await;
    wait_for(
        &list,
        LIMIT,
        "two namespaces",
        |s| matches!(s, Activity::Ok(n) if n.len() == 2),
    )
    .await;

    // Reset while both watches wait in a blocking query, as a restore does
    // to a running cluster. (A query sent after the reset with the old,
    // higher index blocks for its whole wait, in Consul as in the fake.)
    eventually(LIMIT, "2 blocking queries", || {
        fake.blocking_queries_in_flight() == 2
    })
    .await;
    let before = fake.index();
    fake.reset_index();
    assert!(
        fake.index() < before,
        "the fake's index did not go backwards"
    );
    let renumbered = Version::from_u64(fake.kv_get("namerd/dtabs/web").unwrap().modify_index);
    wait_for(
        &watch,
        SOON,
        "the renumbered version",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == renumbered),
    )
    .await;

    // Changes after the reset carry indexes below the old ones, and are seen.
    writer
        .update(&ns("web"), &dtab("/svc=>/two"), &renumbered)
        .await
        .unwrap();
    assert!(fake.index() < before);
    wait_for_dtab(&watch, SOON, "/svc=>/two").await;
    writer.create(&ns("new"), &dtab("/a=>/b")).await.unwrap();
    wait_for(
        &list,
        SOON,
        "the new namespace",
        |s| matches!(s, Activity::Ok(n) if n.contains(&ns("new"))),
    )
    .await;
}

#[tokio::test]
async fn a_token_is_required_when_set() {
    let fake = FakeConsul::start_with(FakeConsulConfig {
        token: Some("s3cret".to_string()),
        ..FakeConsulConfig::default()
    })
    .await
    .unwrap();

    let without = store(&fake);
    let err = without
        .create(&ns("web"), &dtab("/a=>/b"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(without.list().await.is_err());
    let watch = without.watch(&ns("web"));
    wait_for(&watch, LIMIT, "a failure", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;

    let wrong = store_with(&fake, serde_json::json!({"token": "guess"}));
    assert!(wrong.get(&ns("web")).await.is_err());

    let with = store_with(&fake, serde_json::json!({"token": "s3cret"}));
    check_store(&with, "t-").await;
    // The token travels in a header, never in the URL.
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.token.as_deref() == Some("s3cret"))
    );
    assert!(requests.iter().all(|r| !r.query.contains("token")));
}

#[tokio::test]
async fn watches_are_shared_and_end_when_dropped() {
    let fake = FakeConsul::start().await.unwrap();
    let store = store(&fake);
    store.create(&ns("a"), &dtab("/a=>/b")).await.unwrap();
    let a1 = store.watch(&ns("a"));
    let a2 = store.watch(&ns("a"));
    let b = store.watch(&ns("b"));
    let list = store.watch_list();
    let list2 = store.watch_list();
    assert!(a1.same_source(&a2) && list.same_source(&list2));
    wait_for_dtab(&a1, LIMIT, "/a=>/b").await;
    // One blocking query per namespace and one for the list.
    eventually(LIMIT, "3 blocking queries", || {
        fake.blocking_queries_in_flight() == 3
    })
    .await;

    drop(a1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.blocking_queries_in_flight(), 3, "a2 still watches a");

    drop((a2, b, list, list2));
    eventually(SOON, "no blocking query left", || {
        fake.blocking_queries_in_flight() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.blocking_queries_in_flight(), 0, "a watch came back");

    // A new watcher starts a new watch.
    let again = store.watch(&ns("a"));
    wait_for_dtab(&again, LIMIT, "/a=>/b").await;
    eventually(LIMIT, "1 blocking query", || {
        fake.blocking_queries_in_flight() == 1
    })
    .await;
}

#[tokio::test]
async fn stored_text_that_is_not_a_dtab_is_never_served() {
    let fake = FakeConsul::start().await.unwrap();
    let store = store(&fake);
    fake.kv_put("namerd/dtabs/web", "/svc =>");
    let watch = store.watch(&ns("web"));
    wait_for(&watch, LIMIT, "a failure", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;
    let err = store.get(&ns("web")).await.unwrap_err();
    assert!(err.to_string().contains("not a valid dtab"), "{err}");

    store.put(&ns("web"), &dtab("/svc=>/good")).await.unwrap();
    wait_for_dtab(&watch, LIMIT, "/svc=>/good").await;
    let (seen, recorder) = record(&watch);
    fake.kv_put("namerd/dtabs/web", "garbage");
    fake.kv_put("namerd/dtabs/web", vec![0xff, 0xfe]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shows(&watch).as_deref(), Some("/svc=>/good"));
    assert!(store.get(&ns("web")).await.is_err());
    store.put(&ns("web"), &dtab("/svc=>/better")).await.unwrap();
    wait_for_dtab(&watch, LIMIT, "/svc=>/better").await;
    recorder.abort();
    assert_eq!(*seen.lock().unwrap(), ["ok /svc=>/better"]);
}

#[tokio::test]
async fn datacenter_and_consistency_modes_are_sent() {
    let fake = FakeConsul::start_with(FakeConsulConfig {
        other_datacenters: vec!["east".to_string()],
        ..FakeConsulConfig::default()
    })
    .await
    .unwrap();
    let store = store_with(
        &fake,
        serde_json::json!({
            "datacenter": "east",
            "readConsistencyMode": "stale",
            "writeConsistencyMode": "consistent",
        }),
    );
    store.create(&ns("web"), &dtab("/a=>/b")).await.unwrap();
    store.get(&ns("web")).await.unwrap();
    store.delete(&ns("web")).await.unwrap();
    let watch = store.watch(&ns("web"));
    wait_for(&watch, LIMIT, "absent", |s| matches!(s, Activity::Ok(None))).await;
    eventually(LIMIT, "a blocking query", || {
        fake.blocking_queries_in_flight() == 1
    })
    .await;

    let requests = fake.requests();
    let has = |query: &str, flag: &str| query.split('&').any(|p| p == flag);
    assert!(
        requests.iter().all(|r| has(&r.query, "dc=east")),
        "{requests:?}"
    );
    let blocking: Vec<_> = requests
        .iter()
        .filter(|r| r.query.contains("index="))
        .collect();
    assert!(!blocking.is_empty());
    assert!(
        blocking
            .iter()
            .all(|r| has(&r.query, "stale") && r.query.contains("wait="))
    );
    // The reads made by writes (before the delete, after the create) are consistent.
    let write_reads = requests
        .iter()
        .filter(|r| r.method == "GET" && has(&r.query, "consistent"))
        .count();
    assert!(write_reads >= 2, "{requests:?}");

    let elsewhere = store_with(&fake, serde_json::json!({"datacenter": "west"}));
    let err = elsewhere.get(&ns("web")).await.unwrap_err();
    assert!(err.to_string().contains("No path to datacenter"), "{err}");
}

#[tokio::test]
async fn every_call_has_a_timeout() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let store = serde_json::from_value::<ConsulConfig>(
        serde_json::json!({"host": "127.0.0.1", "port": port}),
    )
    .unwrap()
    .build_with(Timing {
        request_timeout: Duration::from_millis(200),
        ..timing()
    })
    .unwrap();
    let started = Instant::now();
    let err = store.get(&ns("web")).await.unwrap_err();
    assert!(started.elapsed() < SOON, "took {:?}", started.elapsed());
    assert!(err.to_string().contains("no answer within"), "{err}");
    let started = Instant::now();
    assert!(store.delete(&ns("web")).await.is_err());
    assert!(started.elapsed() < SOON);
    let watch = store.watch(&ns("web"));
    wait_for(&watch, SOON, "a failure", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;
    silent.abort();
}
