//! `io.l5d.zk` against a real ZooKeeper started for each test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use dtab::Dtab;
use integration::servers::ZooKeeper;
use namerd::Namespace;
use namerd::store::contract::{check_store, wait_for};
use namerd::store::zk::{ZkConfig, ZkStore};
use namerd::store::{DtabStore, StoreError, Version};
use namers::Activity;
use zookeeper_client as zk;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

fn zk_store(server: &ZooKeeper, prefix: &str, session_timeout_ms: u64) -> ZkStore {
    let config: ZkConfig = serde_json::from_value(serde_json::json!({
        "zkAddrs": [{"host": "127.0.0.1", "port": server.port()}],
        "pathPrefix": prefix,
        "sessionTimeoutMs": session_timeout_ms,
    }))
    .unwrap();
    let mut settings = config.validate().unwrap();
    settings.call_timeout = CALL_TIMEOUT;
    ZkStore::new(settings)
}

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn dtab(text: &str) -> Dtab {
    Dtab::read(text).unwrap()
}

/// Retries `put` until the store can write again (the client reconnects
/// on its own schedule after an outage).
async fn put_when_back(store: &ZkStore, ns: &Namespace, dtab: &Dtab) -> Version {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.put(ns, dtab).await {
            Ok(version) => return version,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not back yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_the_store_contract() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let store = zk_store(&server, "/contract/dtabs", 10_000);
    check_store(&store, "").await;

    // Linkerd's versions: stat.version as 4 bytes, 0 for a new znode.
    let v0 = store.create(&ns("v"), &dtab("/a=>/b")).await.unwrap();
    assert_eq!(v0, Version(vec![0, 0, 0, 0]));
    let v1 = store.update(&ns("v"), &dtab("/a=>/c"), &v0).await.unwrap();
    assert_eq!(v1, Version(vec![0, 0, 0, 1]));
    assert_eq!(
        store
            .update(&ns("v"), &dtab("/a=>/d"), &Version(vec![1]))
            .await,
        Err(StoreError::VersionMismatch(ns("v"))),
        "a version of the wrong size"
    );

    // The znode holds the dtab text, where Linkerd puts it.
    let client = zk::Client::connect(&server.connect_string()).await.unwrap();
    let (data, _) = client.get_data("/contract/dtabs/v").await.unwrap();
    assert_eq!(data, b"/a=>/c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_reaches_the_others_watch_within_a_second() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let a = zk_store(&server, "/replicas", 10_000);
    let b = zk_store(&server, "/replicas", 10_000);
    let watch = b.watch(&ns("web"));
    let list = b.watch_list();
    wait_for(&watch, Duration::from_secs(10), "the first answer", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;

    let started = Instant::now();
    let version = a
        .put(&ns("web"), &dtab("/svc=>/#/io.l5d.fs"))
        .await
        .unwrap();
    wait_for(
        &watch,
        Duration::from_secs(1),
        "the write in the other replica",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == version),
    )
    .await;
    wait_for(
        &list,
        Duration::from_secs(1),
        "the namespace in the other list",
        |s| matches!(s, Activity::Ok(names) if names.contains(&ns("web"))),
    )
    .await;
    eprintln!("seen by the other replica after {:?}", started.elapsed());

    // And back: a compare-and-set through b is seen by a's watch.
    let watch_a = a.watch(&ns("web"));
    let v2 = b
        .update(&ns("web"), &dtab("/svc=>/$/nil"), &version)
        .await
        .unwrap();
    wait_for(
        &watch_a,
        Duration::from_secs(1),
        "b's update in a",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == v2),
    )
    .await;
}

/// Stops ZooKeeper for `outage`, then checks that watches kept their
/// values, calls failed promptly, and everything resumed afterwards.
async fn survive_an_outage(prefix: &str, session_timeout_ms: u64, outage: Duration) {
    let Some(mut server) = ZooKeeper::start() else {
        return;
    };
    let store = zk_store(&server, prefix, session_timeout_ms);
    // A second replica, which writes after the outage.
    let writer = zk_store(&server, prefix, session_timeout_ms);
    let v1 = store.put(&ns("a"), &dtab("/a=>/b")).await.unwrap();
    let watch = store.watch(&ns("a"));
    let list = store.watch_list();
    wait_for(
        &watch,
        Duration::from_secs(10),
        "the first value",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == v1),
    )
    .await;
    wait_for(
        &list,
        Duration::from_secs(10),
        "the first list",
        |s| matches!(s, Activity::Ok(names) if names.contains(&ns("a"))),
    )
    .await;

    tokio::task::block_in_place(|| server.stop());
    let down = Instant::now();
    for _ in 0..2 {
        let started = Instant::now();
        let result = store.get(&ns("a")).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "a get during the outage: {result:?}"
        );
        assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_secs(1));
        let started = Instant::now();
        let result = store.put(&ns("a"), &dtab("/lost=>/write")).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "a put during the outage: {result:?}"
        );
        assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_secs(1));
    }
    if let Some(rest) = outage.checked_sub(down.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    assert!(
        matches!(&*watch.load(), Activity::Ok(Some(d)) if d.version == v1),
        "the watch lost its last good value: {:?}",
        watch.load()
    );
    assert!(
        matches!(&*list.load(), Activity::Ok(names) if names.contains(&ns("a"))),
        "the list lost its last good value: {:?}",
        list.load()
    );

    tokio::task::block_in_place(|| server.restart());
    let v2 = put_when_back(&writer, &ns("a"), &dtab("/a=>/after")).await;
    put_when_back(&writer, &ns("b"), &dtab("/b=>/after")).await;
    wait_for(
        &watch,
        Duration::from_secs(10),
        "a write after the outage",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == v2 && d.dtab.show() == "/a=>/after"),
    )
    .await;
    wait_for(
        &list,
        Duration::from_secs(10),
        "a new namespace after the outage",
        |s| matches!(s, Activity::Ok(names) if names.contains(&ns("b"))),
    )
    .await;
    // The write attempted during the outage never happened.
    assert_eq!(
        store.get(&ns("a")).await.unwrap().unwrap().dtab.show(),
        "/a=>/after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_outage_keeps_the_session_and_the_watches() {
    survive_an_outage("/outage/short", 30_000, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_session_expires_watches_are_set_up_again() {
    // ZooKeeper (ours has a 500 ms tick) grants 2 s; the outage outlasts it.
    survive_an_outage("/outage/expired", 2_000, Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_znode_is_not_served_as_a_dtab() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let store = zk_store(&server, "/corrupt", 10_000);
    let client = zk::Client::connect(&server.connect_string()).await.unwrap();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.mkdir("/corrupt", &open).await.unwrap();
    client
        .create("/corrupt/bad", b"/svc=>>/nope", &open)
        .await
        .unwrap();

    // Never good: reported as a failure, not as a dtab.
    let result = store.get(&ns("bad")).await;
    assert!(
        matches!(&result, Err(StoreError::Backend(m)) if m.contains("valid dtab")),
        "{result:?}"
    );
    let watch = store.watch(&ns("bad"));
    wait_for(&watch, Duration::from_secs(10), "a failed watch", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;
    // Still listed: it exists, and can be repaired through the store.
    assert!(store.list().await.unwrap().contains(&ns("bad")));
    let good = store.put(&ns("bad"), &dtab("/svc=>/good")).await.unwrap();
    wait_for(
        &watch,
        Duration::from_secs(5),
        "the repaired dtab",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == good),
    )
    .await;

    // Good, then corrupt: the last good dtab stays.
    client
        .set_data("/corrupt/bad", &[0xff, 0xfe], None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get(&ns("bad")).await.is_ok() {
        assert!(Instant::now() < deadline, "the corrupt write never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        matches!(&*watch.load(), Activity::Ok(Some(d)) if d.version == good && d.dtab.show() == "/svc=>/good"),
        "{:?}",
        watch.load()
    );
    // And the watch still follows later writes.
    let fixed = store.put(&ns("bad"), &dtab("/svc=>/fixed")).await.unwrap();
    wait_for(
        &watch,
        Duration::from_secs(5),
        "a write after the corrupt one",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == fixed),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_and_auth_are_applied_to_created_znodes() {
    let Some(server) = ZooKeeper::start() else {
        return;
    };
    let config: ZkConfig = serde_json::from_value(serde_json::json!({
        "zkAddrs": [{"host": "127.0.0.1", "port": server.port()}],
        "pathPrefix": "/secured",
        "authInfo": {"scheme": "digest", "auth": "namerd:secret"},
        "acls": [
            {"scheme": "auth", "id": "", "perms": "crwda"},
            {"scheme": "world", "id": "anyone", "perms": "r"}
        ],
    }))
    .unwrap();
    let store = config.connect().await.unwrap();
    store.create(&ns("x"), &dtab("/a=>/b")).await.unwrap();

    let anonymous = zk::Client::connect(&server.connect_string()).await.unwrap();
    let (acls, _) = anonymous.get_acl("/secured/x").await.unwrap();
    assert_eq!(acls.len(), 2, "{acls:?}");
    assert!(acls.iter().any(|acl| acl.scheme() == "digest"
        && acl.id().starts_with("namerd:")
        && acl.permission() == zk::Permission::ALL));
    // Others may read but not write.
    assert_eq!(anonymous.get_data("/secured/x").await.unwrap().0, b"/a=>/b");
    assert!(matches!(
        anonymous.set_data("/secured/x", b"/x=>/y", None).await,
        Err(zk::Error::NoAuth)
    ));
    // The store, authenticated, may.
    store.put(&ns("x"), &dtab("/a=>/c")).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_fails_connect_promptly() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config: ZkConfig = serde_json::from_value(serde_json::json!({
        "zkAddrs": [{"host": "127.0.0.1", "port": port}],
    }))
    .unwrap();
    let started = Instant::now();
    let err = config.connect().await.err().unwrap();
    assert!(err.contains("ZooKeeper"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(6));
    // And a lazily connecting store fails its calls the same way.
    let store = config.build().unwrap();
    assert!(matches!(store.list().await, Err(StoreError::Backend(_))));
    let watch = store.watch(&ns("a"));
    wait_for(
        &watch,
        Duration::from_secs(10),
        "a failed first answer",
        |s| matches!(s, Activity::Failed(_)),
    )
    .await;
}
