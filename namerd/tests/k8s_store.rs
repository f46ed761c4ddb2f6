//! The `io.l5d.k8s` dtab store against an in-process fake of the
//! Kubernetes API server (`integration::k8s`), not a real cluster: no API
//! server can run where these tests run. The fake serves the
//! `dtabs.l5d.io/v1alpha1` custom resource with list + watch (resource
//! versions, bookmarks, `410 Gone`), get, create, replace (`409 Conflict`
//! on a stale resource version) and delete, and can simulate outages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dtab::Dtab;
use integration::k8s::{FakeKube, Resource, dtab_object};
use namerd::Namespace;
use namerd::store::contract::{check_store, wait_for};
use namerd::store::k8s::{K8sStore, K8sStoreConfig, Timing};
use namerd::store::{DtabStore, DtabWatch, StoreError, Version};
use namers::Activity;
use serde_json::json;
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(5);

/// Short pauses so that recoveries happen within a test's patience.
fn timing() -> Timing {
    Timing {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        watch_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(2),
    }
}

fn store_in(fake: &FakeKube, namespace: Option<&str>) -> K8sStore {
    let mut config = json!({"host": "127.0.0.1", "port": fake.addr().port()});
    if let Some(namespace) = namespace {
        config["namespace"] = json!(namespace);
    }
    serde_json::from_value::<K8sStoreConfig>(config)
        .unwrap()
        .build_with(timing())
        .unwrap()
}

fn store(fake: &FakeKube) -> K8sStore {
    store_in(fake, None)
}

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn dtab(text: &str) -> Dtab {
    Dtab::read(text).unwrap()
}

fn rv(version: &Version) -> String {
    String::from_utf8(version.0.clone()).unwrap()
}

async fn wait_for_dtab(watch: &DtabWatch, text: &str) {
    wait_for(
        watch,
        LIMIT,
        text,
        |s| matches!(s, Activity::Ok(Some(d)) if d.dtab.show() == text),
    )
    .await;
}

/// Polls `done` every 10 ms for up to `limit`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {LIMIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many plain (not watch) lists of the dtabs of `namespace` the fake
/// has answered.
fn lists(fake: &FakeKube, namespace: &str) -> usize {
    let path = format!("/apis/l5d.io/v1alpha1/namespaces/{namespace}/dtabs");
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path && !r.watch)
        .count()
}

#[tokio::test]
async fn keeps_the_store_contract() {
    let fake = FakeKube::start().await.unwrap();
    let store = store(&fake);
    check_store(&store, "").await;
    // What it stored is a DTab in Linkerd's shape, versioned by its
    // resource version.
    let version = store
        .put(&ns("web"), &dtab("/svc=>/#/io.l5d.fs;/svc/a=>/b | /c"))
        .await
        .unwrap();
    let object = fake.object(Resource::Dtabs, "default", "web").unwrap();
    assert_eq!(object["apiVersion"], "l5d.io/v1alpha1");
    assert_eq!(object["kind"], "DTab");
    assert_eq!(object["metadata"]["resourceVersion"], json!(rv(&version)));
    assert_eq!(
        object["dentries"],
        json!([{"prefix": "/svc", "dst": "/#/io.l5d.fs"}, {"prefix": "/svc/a", "dst": "/b | /c"}])
    );
}

#[tokio::test]
async fn the_contract_holds_in_another_kubernetes_namespace_and_stays_there() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_dtab("default", "elsewhere", &[("/a", "/b")]);
    let store = store_in(&fake, Some("linkerd"));
    check_store(&store, "l-").await;
    assert_eq!(store.list().await.unwrap(), Default::default());
    assert!(
        fake.object(Resource::Dtabs, "default", "elsewhere")
            .is_some()
    );
}

#[tokio::test]
async fn linkerd_shaped_resources_are_read_as_is() {
    let fake = FakeKube::start().await.unwrap();
    // As Linkerd's namerd wrote them (and `kubectl get dtab -o json` shows
    // them), with the labels and fields people add.
    let mut object = dtab_object(
        "linkerd",
        "internal",
        &[
            ("/srv", "/#/io.l5d.k8s/default/http"),
            ("/host", "/srv"),
            ("/svc/*", "/host | /$/inet/127.1/8080"),
        ],
    );
    object["metadata"]["labels"] = json!({"app": "namerd"});
    object["metadata"]["annotations"] = json!({"owner": "platform"});
    let version = fake.apply_object(Resource::Dtabs, object).unwrap();
    fake.apply_dtab("linkerd", "empty", &[]);
    let store = store_in(&fake, Some("linkerd"));

    let text = "/srv=>/#/io.l5d.k8s/default/http;/host=>/srv;/svc/*=>/host | /$/inet/127.1/8080";
    let got = store.get(&ns("internal")).await.unwrap().unwrap();
    assert_eq!(got.dtab.show(), text);
    assert_eq!(rv(&got.version), version.to_string());
    // The ETag Linkerd gave: the base64 of the resource version's text.
    assert_eq!(
        got.version.to_etag(),
        Version(version.to_string().into_bytes()).to_etag()
    );
    assert_eq!(
        store.list().await.unwrap(),
        [ns("empty"), ns("internal")].into_iter().collect()
    );
    let watch = store.watch(&ns("internal"));
    wait_for_dtab(&watch, text).await;

    // A write keeps what namerd does not own: labels, annotations.
    store
        .update(&ns("internal"), &dtab("/srv=>/#/io.l5d.fs"), &got.version)
        .await
        .unwrap();
    let stored = fake.object(Resource::Dtabs, "linkerd", "internal").unwrap();
    assert_eq!(stored["metadata"]["labels"]["app"], "namerd");
    assert_eq!(stored["metadata"]["annotations"]["owner"], "platform");
    assert_eq!(
        stored["dentries"],
        json!([{"prefix": "/srv", "dst": "/#/io.l5d.fs"}])
    );
}

#[tokio::test]
async fn a_conflicting_update_is_refused_and_leaves_the_stored_dtab_untouched() {
    let fake = FakeKube::start().await.unwrap();
    let store = store(&fake);
    let v1 = store.create(&ns("web"), &dtab("/svc=>/a")).await.unwrap();

    // Someone edits the object between namerd's read and its write: the
    // API server answers the replace `409 Conflict`.
    let theirs = dtab_object("default", "web", &[("/svc", "/theirs")]);
    fake.race_next_replace(theirs);
    let puts_before = fake.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(
        store.update(&ns("web"), &dtab("/svc=>/ours"), &v1).await,
        Err(StoreError::VersionMismatch(ns("web")))
    );
    let puts = fake.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(
        puts,
        puts_before + 1,
        "the refusal came from the API server"
    );
    let stored = fake.object(Resource::Dtabs, "default", "web").unwrap();
    assert_eq!(
        stored["dentries"],
        json!([{"prefix": "/svc", "dst": "/theirs"}])
    );
    let got = store.get(&ns("web")).await.unwrap().unwrap();
    assert_eq!(got.dtab.show(), "/svc=>/theirs");

    // A stale version is refused before any write, and a current one wins.
    assert_eq!(
        store.update(&ns("web"), &dtab("/svc=>/ours"), &v1).await,
        Err(StoreError::VersionMismatch(ns("web")))
    );
    assert_eq!(
        fake.requests().iter().filter(|r| r.method == "PUT").count(),
        puts
    );
    let v3 = store
        .update(&ns("web"), &dtab("/svc=>/ours"), &got.version)
        .await
        .unwrap();
    assert_eq!(store.get(&ns("web")).await.unwrap().unwrap().version, v3);

    // A version that cannot be a resource version only mismatches.
    assert_eq!(
        store
            .update(&ns("web"), &dtab("/x=>/y"), &Version(vec![0xff, 0]))
            .await,
        Err(StoreError::VersionMismatch(ns("web")))
    );
    // A put writes whatever the version, past a racing writer too.
    fake.race_next_replace(dtab_object("default", "web", &[("/svc", "/race")]));
    store.put(&ns("web"), &dtab("/svc=>/put")).await.unwrap();
    assert_eq!(
        store.get(&ns("web")).await.unwrap().unwrap().dtab.show(),
        "/svc=>/put"
    );
}

#[tokio::test]
async fn a_watch_follows_edits_made_directly_in_the_cluster() {
    let fake = FakeKube::start().await.unwrap();
    let store = store(&fake);
    let watch = store.watch(&ns("web"));
    let list = store.watch_list();
    wait_for(&watch, LIMIT, "absent", |s| matches!(s, Activity::Ok(None))).await;

    // `kubectl apply` of a new DTab, then `kubectl edit` of it.
    fake.apply_dtab("default", "web", &[("/svc", "/#/io.l5d.fs")]);
    wait_for_dtab(&watch, "/svc=>/#/io.l5d.fs").await;
    wait_for(
        &list,
        LIMIT,
        "web listed",
        |s| matches!(s, Activity::Ok(names) if names.contains(&ns("web"))),
    )
    .await;
    let version = fake.resource_version();
    fake.apply_dtab(
        "default",
        "web",
        &[("/svc", "/#/io.l5d.fs"), ("/svc/web", "/a")],
    );
    wait_for_dtab(&watch, "/svc=>/#/io.l5d.fs;/svc/web=>/a").await;
    let seen = watch.load().ok().cloned().flatten().unwrap();
    assert_eq!(rv(&seen.version), (version + 1).to_string());

    // An edit into something that is not a dtab is not served: the last
    // good dtab stays, and a read says what is wrong and where.
    fake.apply_dtab("default", "web", &[("/svc", "/a |")]);
    fake.apply_dtab("default", "other", &[("/x", "/y")]);
    wait_for(
        &list,
        LIMIT,
        "other listed",
        |s| matches!(s, Activity::Ok(names) if names.contains(&ns("other"))),
    )
    .await;
    assert_eq!(
        watch.load().ok().cloned().flatten().unwrap().dtab.show(),
        "/svc=>/#/io.l5d.fs;/svc/web=>/a"
    );
    let err = store.get(&ns("web")).await.unwrap_err().to_string();
    assert!(
        err.contains("DTab default/web: dentries[0].dst \"/a |\""),
        "{err}"
    );
    fake.apply_dtab("default", "web", &[("/svc", "/fixed")]);
    wait_for_dtab(&watch, "/svc=>/fixed").await;

    // `kubectl delete dtab web`.
    assert!(fake.delete(Resource::Dtabs, "default", "web"));
    wait_for(&watch, LIMIT, "deleted", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
    wait_for(
        &list,
        LIMIT,
        "web unlisted",
        |s| matches!(s, Activity::Ok(names) if !names.contains(&ns("web"))),
    )
    .await;

    // One watch stream serves every watch of the store, and it ends with
    // the last of them.
    let second = store.watch(&ns("other"));
    wait_for_dtab(&second, "/x=>/y").await;
    assert_eq!(fake.open_watches(), 1);
    drop((watch, list, second));
    eventually("the watch stream closed", || fake.open_watches() == 0).await;
}

#[tokio::test]
async fn a_watch_lists_again_after_410_gone_and_resumes_after_a_cut() {
    let fake = FakeKube::start().await.unwrap();
    let store = store(&fake);
    fake.apply_dtab("default", "web", &[("/svc", "/a")]);
    fake.apply_dtab("default", "old", &[("/svc", "/old")]);
    let watch = store.watch(&ns("web"));
    let old = store.watch(&ns("old"));
    wait_for_dtab(&watch, "/svc=>/a").await;
    wait_for_dtab(&old, "/svc=>/old").await;
    let listed = lists(&fake, "default");
    // A compaction: the open watch is told `410 Gone`, and the changes
    // made meanwhile are only seen through a fresh list, which replaces
    // what was known (a deletion included).
    // The changes are made while the watch is cut, and compacted away
    // before it comes back, so only a list can show them.
    fake.set_down(true);
    fake.apply_dtab("default", "web", &[("/svc", "/b")]);
    assert!(fake.delete(Resource::Dtabs, "default", "old"));
    fake.expire_watches();
    fake.set_down(false);
    wait_for_dtab(&watch, "/svc=>/b").await;
    wait_for(&old, LIMIT, "old deleted", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
    eventually("a second list", || lists(&fake, "default") > listed).await;

    // Bookmarks move the watch on without changing anything.
    eventually("a watch open", || fake.open_watches() == 1).await;
    fake.send_bookmarks();
    // A watch the server ends resumes from where it was, without a list.
    let listed = lists(&fake, "default");
    fake.end_watches();
    fake.apply_dtab("default", "web", &[("/svc", "/c")]);
    wait_for_dtab(&watch, "/svc=>/c").await;
    assert_eq!(lists(&fake, "default"), listed, "a cut watch listed again");
    let resumed = fake.requests().into_iter().rev().find(|r| r.watch).unwrap();
    assert!(
        resumed.query.contains("resourceVersion=")
            && resumed.query.contains("allowWatchBookmarks=true"),
        "{resumed:?}"
    );
}

#[tokio::test]
async fn the_last_good_dtabs_are_kept_while_the_api_server_is_down() {
    let fake = FakeKube::start().await.unwrap();
    let store = store(&fake);
    let v1 = store.create(&ns("web"), &dtab("/svc=>/a")).await.unwrap();
    let watch = store.watch(&ns("web"));
    let list = store.watch_list();
    wait_for_dtab(&watch, "/svc=>/a").await;
    wait_for(
        &list,
        LIMIT,
        "listed",
        |s| matches!(s, Activity::Ok(n) if n.len() == 1),
    )
    .await;

    fake.set_down(true);
    // Writes and reads fail, saying what and where.
    let err = store
        .update(&ns("web"), &dtab("/svc=>/b"), &v1)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(
        text.contains(
            "io.l5d.k8s: reading dtabs.l5d.io default/web at API server http://127.0.0.1:"
        ) && text.contains("503"),
        "{text}"
    );
    assert!(store.list().await.is_err());
    // Several retries later, the watches still serve what they had.
    let retries_before = fake.requests().len();
    eventually("retries while down", || {
        fake.requests().len() >= retries_before + 3
    })
    .await;
    assert_eq!(
        watch.load().ok().cloned().flatten().unwrap().version,
        v1,
        "the watch lost its last good dtab"
    );
    assert!(matches!(&*list.load(), Activity::Ok(n) if n.contains(&ns("web"))));

    // An edit made while namerd could not see it arrives once it can.
    fake.apply_dtab("default", "web", &[("/svc", "/edited")]);
    fake.set_down(false);
    wait_for_dtab(&watch, "/svc=>/edited").await;

    // A store whose first list fails reports the failure, then recovers.
    fake.set_down(true);
    let fresh = store_in(&fake, Some("other"));
    let first = fresh.watch(&ns("web"));
    wait_for(&first, LIMIT, "a failure", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;
    match &*first.load() {
        Activity::Failed(e) => assert!(
            e.to_string().contains("dtabs.l5d.io in namespace other"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    fake.set_down(false);
    wait_for(&first, LIMIT, "absent", |s| matches!(s, Activity::Ok(None))).await;
}

#[tokio::test]
async fn an_unreachable_api_server_fails_calls_and_first_watches() {
    // A port nothing listens on any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let store =
        serde_json::from_value::<K8sStoreConfig>(json!({"host": "127.0.0.1", "port": port}))
            .unwrap()
            .build_with(timing())
            .unwrap();
    let err = store.get(&ns("web")).await.unwrap_err().to_string();
    assert!(err.contains(&format!("http://127.0.0.1:{port}")), "{err}");
    let watch = store.watch(&ns("web"));
    wait_for(&watch, LIMIT, "a failure", |s| {
        matches!(s, Activity::Failed(_))
    })
    .await;
}

#[test]
fn the_crd_manifest_describes_the_resource_the_store_reads() {
    use namerd::store::k8s::{GROUP, PLURAL, RESOURCE_KIND, VERSION};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/deploy/kubernetes/dtab-crd.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let crd: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], format!("{PLURAL}.{GROUP}"));
    let spec = &crd["spec"];
    assert_eq!(spec["group"], GROUP);
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], RESOURCE_KIND);
    assert_eq!(spec["names"]["plural"], PLURAL);
    let version = &spec["versions"][0];
    assert_eq!(version["name"], VERSION);
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    // Linkerd's shape: a list of {prefix, dst} strings, both required.
    let dentries = &version["schema"]["openAPIV3Schema"]["properties"]["dentries"];
    assert_eq!(dentries["type"], "array");
    let entry = &dentries["items"];
    assert_eq!(entry["required"], json!(["prefix", "dst"]));
    assert_eq!(entry["properties"]["prefix"]["type"], "string");
    assert_eq!(entry["properties"]["dst"]["type"], "string");
}
