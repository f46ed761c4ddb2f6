//! `io.l5d.etcd` against a real etcd started for each test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use dtab::Dtab;
use integration::servers::Etcd;
use namerd::Namespace;
use namerd::store::contract::{check_store, wait_for};
use namerd::store::etcd::{EtcdConfig, EtcdStore};
use namerd::store::{DtabStore, StoreError, Version};
use namers::Activity;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

fn etcd_store(server: &Etcd, prefix: &str) -> EtcdStore {
    store_on_port(server.port(), prefix)
}

fn store_on_port(port: u16, prefix: &str) -> EtcdStore {
    let config = EtcdConfig {
        host: "127.0.0.1".to_string(),
        port,
        path_prefix: prefix.to_string(),
    };
    let mut settings = config.validate().unwrap();
    settings.call_timeout = CALL_TIMEOUT;
    EtcdStore::new(settings)
}

/// A client of etcd's own HTTP/JSON gateway, independent of the store's
/// gRPC client, to write and read keys behind the store's back.
struct RawClient {
    port: u16,
}

async fn raw_client(server: &Etcd) -> RawClient {
    RawClient {
        port: server.port(),
    }
}

/// One key as etcd's gateway reports it.
struct RawKey {
    value: Vec<u8>,
    mod_revision: i64,
}

impl RawClient {
    async fn call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.to_string();
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    async fn put(&mut self, key: &str, value: impl AsRef<[u8]>) {
        let body = serde_json::json!({"key": BASE64.encode(key), "value": BASE64.encode(value)});
        self.call("/v3/kv/put", body).await;
    }

    async fn get(&mut self, key: &str) -> Option<RawKey> {
        let body = serde_json::json!({"key": BASE64.encode(key)});
        let answer = self.call("/v3/kv/range", body).await;
        let kv = answer["kvs"].as_array()?.first()?.clone();
        Some(RawKey {
            value: BASE64.decode(kv["value"].as_str().unwrap_or("")).unwrap(),
            mod_revision: kv["mod_revision"].as_str().unwrap().parse().unwrap(),
        })
    }
}

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn dtab(text: &str) -> Dtab {
    Dtab::read(text).unwrap()
}

/// Retries `put` until the store can write again.
async fn put_when_back(store: &EtcdStore, ns: &Namespace, dtab: &Dtab) -> Version {
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
    let Some(server) = Etcd::start() else {
        return;
    };
    let store = etcd_store(&server, "/contract/dtabs");
    check_store(&store, "").await;

    // Versions are the key's mod_revision, 8 bytes big-endian.
    let mut client = raw_client(&server).await;
    let version = store.put(&ns("v"), &dtab("/a=>/b")).await.unwrap();
    let kv = client.get("/contract/dtabs/v").await.unwrap();
    assert_eq!(version, Version(kv.mod_revision.to_be_bytes().to_vec()));
    // The key holds the dtab text.
    assert_eq!(kv.value, b"/a=>/b");
    assert_eq!(
        store
            .update(&ns("v"), &dtab("/a=>/d"), &Version(vec![1]))
            .await,
        Err(StoreError::VersionMismatch(ns("v"))),
        "a version of the wrong size"
    );
    // Keys below a namespace, or beside the prefix, are not namespaces.
    client.put("/contract/dtabs/v/x", "/a=>/b").await;
    client.put("/contract/dtabsx", "/a=>/b").await;
    let names = store.list().await.unwrap();
    assert_eq!(names, [ns("v")].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_reaches_the_others_watch_within_a_second() {
    let Some(server) = Etcd::start() else {
        return;
    };
    let a = etcd_store(&server, "/replicas");
    let b = etcd_store(&server, "/replicas");
    let watch = b.watch(&ns("web"));
    let list = b.watch_list();
    wait_for(&watch, Duration::from_secs(10), "the first answer", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
    wait_for(&list, Duration::from_secs(10), "the first list", |s| {
        matches!(s, Activity::Ok(_))
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
    b.delete(&ns("web")).await.unwrap();
    wait_for(&watch_a, Duration::from_secs(1), "b's delete in a", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_last_values_and_watches_resume() {
    let Some(mut server) = Etcd::start() else {
        return;
    };
    let store = etcd_store(&server, "/outage");
    let writer = etcd_store(&server, "/outage");
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
    // Changes reach the watches: their streams are open.
    let v1 = writer.put(&ns("a"), &dtab("/a=>/c")).await.unwrap();
    writer.put(&ns("z"), &dtab("/z=>/z")).await.unwrap();
    wait_for(
        &watch,
        Duration::from_secs(10),
        "a change before the outage",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == v1),
    )
    .await;
    wait_for(&list, Duration::from_secs(10), "the list before the outage", |s| {
        matches!(s, Activity::Ok(names) if names.contains(&ns("a")) && names.contains(&ns("z")))
    })
    .await;

    tokio::task::block_in_place(|| server.stop());
    for _ in 0..2 {
        let started = Instant::now();
        let result = store.get(&ns("a")).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "a get during the outage: {result:?}"
        );
        assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_secs(1));
        let started = Instant::now();
        let result = store.create(&ns("c"), &dtab("/c=>/d")).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "a create during the outage: {result:?}"
        );
        assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_secs(1));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
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
    // And the watches keep following.
    let v3 = writer.put(&ns("a"), &dtab("/a=>/later")).await.unwrap();
    wait_for(
        &watch,
        Duration::from_secs(1),
        "a later write",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == v3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_value_is_not_served_as_a_dtab() {
    let Some(server) = Etcd::start() else {
        return;
    };
    let store = etcd_store(&server, "/corrupt");
    let mut client = raw_client(&server).await;
    client.put("/corrupt/bad", "/svc=>>/nope").await;

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
    assert!(store.list().await.unwrap().contains(&ns("bad")));
    let good = store.put(&ns("bad"), &dtab("/svc=>/good")).await.unwrap();
    wait_for(
        &watch,
        Duration::from_secs(5),
        "the repaired dtab",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == good),
    )
    .await;

    // Good, then corrupt: the last good dtab stays; then a later good
    // write is followed again.
    client.put("/corrupt/bad", vec![0xff, 0xfe]).await;
    assert!(store.get(&ns("bad")).await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        matches!(&*watch.load(), Activity::Ok(Some(d)) if d.version == good && d.dtab.show() == "/svc=>/good"),
        "{:?}",
        watch.load()
    );
    let fixed = store.put(&ns("bad"), &dtab("/svc=>/fixed")).await.unwrap();
    wait_for(
        &watch,
        Duration::from_secs(5),
        "a write after the corrupt one",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == fixed),
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_server_fails_calls_promptly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = EtcdConfig {
        host: "127.0.0.1".to_string(),
        port,
        path_prefix: "/x".to_string(),
    }
    .validate()
    .unwrap();
    settings.call_timeout = CALL_TIMEOUT;
    let store = EtcdStore::new(settings);
    let started = Instant::now();
    assert!(matches!(store.list().await, Err(StoreError::Backend(_))));
    assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_secs(1));
    let watch = store.watch(&ns("a"));
    wait_for(
        &watch,
        Duration::from_secs(10),
        "a failed first answer",
        |s| matches!(s, Activity::Failed(_)),
    )
    .await;
}

/// A TCP proxy in front of etcd whose connections can be cut, so that one
/// client loses etcd while others keep writing to it.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (accepting, tasks) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees a reset
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            open,
            connections,
        }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_watch_resumes_from_its_last_revision() {
    let Some(server) = Etcd::start() else {
        return;
    };
    let proxy = Proxy::start(server.port()).await;
    let store = store_on_port(proxy.port, "/resume");
    let mut direct = raw_client(&server).await;
    let watch = store.watch(&ns("a"));
    let list = store.watch_list();
    wait_for(&watch, Duration::from_secs(10), "the first answer", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
    // A write seen through the watch: its stream is open.
    direct.put("/resume/a", "/a=>/1").await;
    wait_for(
        &watch,
        Duration::from_secs(5),
        "a first write",
        |s| matches!(s, Activity::Ok(Some(d)) if d.dtab.show() == "/a=>/1"),
    )
    .await;

    // This store loses etcd; others write meanwhile.
    proxy.cut();
    assert!(matches!(
        store.get(&ns("a")).await,
        Err(StoreError::Backend(_))
    ));
    direct.put("/resume/a", "/a=>/2").await;
    direct.put("/resume/b", "/b=>/1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        matches!(&*watch.load(), Activity::Ok(Some(d)) if d.dtab.show() == "/a=>/1"),
        "the cut did not cut: {:?}",
        watch.load()
    );

    // Back: the watches catch up with what they missed, without any new
    // write to wake them.
    proxy.heal();
    wait_for(
        &watch,
        Duration::from_secs(10),
        "the write made while cut off",
        |s| matches!(s, Activity::Ok(Some(d)) if d.dtab.show() == "/a=>/2"),
    )
    .await;
    wait_for(
        &list,
        Duration::from_secs(10),
        "the namespace made while cut off",
        |s| matches!(s, Activity::Ok(names) if names.contains(&ns("b"))),
    )
    .await;
}
