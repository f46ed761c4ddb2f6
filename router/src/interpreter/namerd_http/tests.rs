//! Against a real namerd (in-memory store, `io.l5d.fs` namer), run on a
//! runtime of its own so that stopping it cuts every connection, as a
//! namerd process exiting would.

use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::time::Duration;

use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use serde_json::json;
use tokio::sync::oneshot;

use super::*;
use crate::config::KindConfig;
use crate::interpreter::RouterNaming;
use namers::{Activity, Binding, Live, NamingError};

/// How long an update may take to reach the router.
const UPDATE: Duration = Duration::from_secs(1);
/// How long reconnecting after a restart may take.
const RECONNECT: Duration = Duration::from_secs(5);

fn default() -> Interpreter {
    let inet = Arc::new(InetResolver::system().unwrap());
    Interpreter::new(Vec::new(), SystemNamers::with_linkerd_namers(inet))
}

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A namerd on its own runtime and thread.
struct NamerdProcess {
    api: SocketAddr,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl NamerdProcess {
    /// Starts namerd on `port` (0 for any) with `dtab` as the `default`
    /// namespace and an `io.l5d.fs` namer over `disco`.
    async fn start(port: u16, dtab: &str, disco: &FsPath) -> NamerdProcess {
        NamerdProcess::start_with(port, dtab, disco, "").await
    }

    /// As [`NamerdProcess::start`], with `controller` added to the
    /// `io.l5d.httpController` interface's keys.
    async fn start_with(port: u16, dtab: &str, disco: &FsPath, controller: &str) -> NamerdProcess {
        let yaml = format!(
            "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: {dtab:?}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: {port}\n{controller}",
            disco.display()
        );
        let config: namerd::config::NamerdConfig =
            namers::config::parse("namerd.yaml", &yaml).unwrap();
        let (started_tx, started) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let running = match namerd::server::start(&config).await {
                    Ok(running) => running,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(running.api_addrs[0]));
                let _ = stop_rx.await;
            });
            // Dropping the runtime drops every task on it, open watch
            // connections included.
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        let api = started.await.unwrap().unwrap();
        NamerdProcess { api, stop, thread }
    }

    async fn kill(self) {
        let _ = self.stop.send(());
        tokio::task::spawn_blocking(move || self.thread.join().unwrap())
            .await
            .unwrap();
    }
}

fn interpreter(api: SocketAddr, namespace: &str) -> NamerdHttpInterpreter {
    interpreter_keeping(api, namespace, 600)
}

/// An interpreter that keeps unused names' watches `inactive_secs`.
fn interpreter_keeping(
    api: SocketAddr,
    namespace: &str,
    inactive_secs: u64,
) -> NamerdHttpInterpreter {
    let params = object(json!({
        "dst": format!("/$/inet/127.0.0.1/{}", api.port()),
        "namespace": namespace,
        "experimental": true,
        "retry": {"baseSeconds": 0.05, "maxSeconds": 0.2},
    }));
    NamerdHttpInterpreter::from_params(&params, &default(), Duration::from_secs(inactive_secs))
        .unwrap()
}

/// `id residual` of a single-leaf binding, or what it is instead.
fn leaf(binding: &Binding) -> String {
    match &*binding.load() {
        Activity::Ok(NameTree::Leaf(b)) => format!("{} {}", b.id.show(), b.residual.show()),
        other => format!("{other:?}"),
    }
}

fn leaf_addr(binding: &Binding) -> Live<Addr> {
    match &*binding.load() {
        Activity::Ok(NameTree::Leaf(b)) => b.addr.clone(),
        other => panic!("not a leaf: {other:?}"),
    }
}

/// `port*weight` of each endpoint, or what the address is instead.
fn endpoints(addr: &Live<Addr>) -> String {
    match &*addr.load() {
        Addr::Bound(set) => set
            .endpoints()
            .iter()
            .map(|e| format!("{}*{}", e.addr.port(), e.weight))
            .collect::<Vec<_>>()
            .join(","),
        other => format!("{other:?}"),
    }
}

async fn until<T>(
    live: &mut Live<T>,
    within: Duration,
    show: impl Fn(&Live<T>) -> String,
    want: &str,
) {
    let waited = tokio::time::timeout(within, async {
        while show(live) != want {
            live.changed().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "still {} instead of {want}", show(live));
}

async fn until_status(status: &mut Live<WatchStatus>, ok: impl Fn(&WatchStatus) -> bool) {
    let waited = tokio::time::timeout(RECONNECT, async {
        while !ok(&status.load()) {
            status.changed().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "status still {:?}", status.load());
}

fn disco() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web"), "127.0.0.1 8080\n").unwrap();
    std::fs::write(dir.path().join("web2"), "127.0.0.1 9090\n").unwrap();
    dir
}

const STORED: &str = "/svc => /#/io.l5d.fs";

#[tokio::test]
async fn bindings_follow_dtab_and_endpoint_changes_in_namerd() {
    let disco = disco();
    let namerd = NamerdProcess::start(0, STORED, disco.path()).await;
    let interpreter = interpreter(namerd.api, "default");

    // The router's dtab goes to namerd (its `=>` and `;` encoded).
    let local = Dtab::read("/svc/x => /svc/nope; /svc/x => /svc/web").unwrap();
    let mut binding = interpreter.bind(&local, &path("/svc/x/extra"));
    until(&mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /extra").await;
    let shared = interpreter.bind(&local, &path("/svc/x/extra"));
    assert!(shared.same_source(&binding), "one watch per (dtab, path)");
    let mut web = leaf_addr(&binding);
    until(&mut web, UPDATE, endpoints, "8080*1").await;

    // A dtab change in namerd reaches the binding.
    let client = Client::new(BaseUrl::parse(&format!("http://{}", namerd.api)).unwrap());
    let changed = Dtab::read("/svc => /#/io.l5d.fs; /svc/web => /#/io.l5d.fs/web2").unwrap();
    let ns = Namespace::new("default").unwrap();
    client.update_dtab(&ns, &changed, None).await.unwrap();
    until(&mut binding, UPDATE, leaf, "/#/io.l5d.fs/web2 /extra").await;
    let mut web2 = leaf_addr(&binding);
    until(&mut web2, UPDATE, endpoints, "9090*1").await;
    assert!(
        interpreter
            .addr(&path("/#/io.l5d.fs/web2"))
            .same_source(&web2),
        "one address watch per id"
    );

    // An endpoint change reaches the address, weight and all.
    std::fs::write(disco.path().join("web2"), "127.0.0.1 9091 * 3\n").unwrap();
    until(&mut web2, UPDATE, endpoints, "9091*3").await;

    // Delegation is namerd's.
    let tree = interpreter
        .delegate(&Dtab::empty(), &path("/svc/web"))
        .await
        .unwrap();
    let text = tree.to_string();
    assert!(text.contains("\"dst\":\"/#/io.l5d.fs/web2\""), "{text}");
    namerd.kill().await;
}

#[tokio::test]
async fn last_good_values_survive_a_namerd_restart_and_updates_resume() {
    let disco = disco();
    let first = NamerdProcess::start(0, STORED, disco.path()).await;
    let port = first.api.port();
    let interpreter = interpreter(first.api, "default");
    let mut binding = interpreter.bind(&Dtab::empty(), &path("/svc/web"));
    until(&mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
    let mut web = leaf_addr(&binding);
    until(&mut web, UPDATE, endpoints, "8080*1").await;
    let mut status = interpreter.status();
    until_status(&mut status, |s| s.open == 2).await;
    let failures = status.load().failures;

    first.kill().await;
    // Both streams end, and reopening each fails at least once.
    until_status(&mut status, |s| s.open == 0 && s.failures >= failures + 4).await;
    assert_eq!(leaf(&binding), "/#/io.l5d.fs/web /");
    assert_eq!(endpoints(&web), "8080*1");
    // A name namerd never answered for is pending, not failed.
    let mut unanswered = interpreter.bind(&Dtab::empty(), &path("/svc/other"));
    assert!(unanswered.load().is_pending());

    // A new namerd on the same port, with another dtab.
    let second = NamerdProcess::start(
        port,
        "/svc => /#/io.l5d.fs; /svc/web => /#/io.l5d.fs/web2",
        disco.path(),
    )
    .await;
    until(&mut binding, RECONNECT, leaf, "/#/io.l5d.fs/web2 /").await;
    until(
        &mut unanswered,
        RECONNECT,
        |b| format!("{:?}", b.load()),
        "Ok(Neg)",
    )
    .await;
    // The old id's address stream reconnected too.
    std::fs::write(disco.path().join("web"), "127.0.0.1 8081\n").unwrap();
    until(&mut web, RECONNECT, endpoints, "8081*1").await;
    second.kill().await;
}

#[tokio::test]
async fn unanswered_names_are_pending_or_failed_as_namerd_says() {
    // Nothing listens: pending, however often reconnecting fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let unreachable = interpreter(nowhere, "default");
    let binding = unreachable.bind(&Dtab::empty(), &path("/svc/web"));
    let mut status = unreachable.status();
    until_status(&mut status, |s| s.failures >= 3).await;
    assert!(binding.load().is_pending(), "{:?}", binding.load());
    assert!(
        status
            .load()
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("unreachable"),
        "{:?}",
        status.load()
    );
    let error = unreachable
        .delegate(&Dtab::empty(), &path("/svc/web"))
        .await
        .unwrap_err();
    assert!(error.contains("unreachable"), "{error}");

    // namerd answers that the namespace does not exist: failed.
    let disco = disco();
    let namerd = NamerdProcess::start(0, STORED, disco.path()).await;
    let missing = interpreter(namerd.api, "nope");
    let mut binding = missing.bind(&Dtab::empty(), &path("/svc/web"));
    let waited = tokio::time::timeout(UPDATE, async {
        while binding.load().is_pending() {
            binding.changed().await;
        }
    })
    .await;
    assert!(waited.is_ok());
    match &*binding.load() {
        Activity::Failed(e) => assert!(e.to_string().contains("404"), "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    namerd.kill().await;
}

#[tokio::test]
async fn watches_end_when_nobody_holds_them() {
    let disco = disco();
    let namerd = NamerdProcess::start(0, STORED, disco.path()).await;
    let interpreter = interpreter_keeping(namerd.api, "default", 1);
    let mut binding = interpreter.bind(&Dtab::empty(), &path("/svc/web"));
    until(&mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
    let mut status = interpreter.status();
    until_status(&mut status, |s| s.open == 2).await;
    assert_eq!(interpreter.watch_count(), 2);
    drop(binding);
    // Kept for the inactive TTL (a second here), then let go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        interpreter.watch_count(),
        2,
        "let go before the inactive TTL"
    );
    until_status(&mut status, |s| s.open == 0).await;
    let ended = tokio::time::timeout(UPDATE, async {
        while interpreter.watch_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "{} watches left", interpreter.watch_count());
    namerd.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_asked_again_while_namerd_is_down_gets_the_last_good_answer() {
    let disco = disco();
    let namerd = NamerdProcess::start(0, STORED, disco.path()).await;
    let interpreter = interpreter(namerd.api, "default");
    let mut binding = interpreter.bind(&Dtab::empty(), &path("/svc/web"));
    until(&mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
    let mut addr = leaf_addr(&binding);
    until(&mut addr, UPDATE, endpoints, "8080*1").await;
    // The router's cache lets go of the name; then namerd goes away.
    drop((binding, addr));
    namerd.kill().await;
    let again = interpreter.bind(&Dtab::empty(), &path("/svc/web"));
    assert_eq!(leaf(&again), "/#/io.l5d.fs/web /");
    assert_eq!(endpoints(&leaf_addr(&again)), "8080*1");
}

/// namerd's 400 for a request's dtab (over its binding limits) is a
/// refusal the router answers as the client's mistake, and is not asked
/// again while the binding is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtab_namerd_refuses_fails_once_as_refused() {
    let disco = disco();
    let namerd = NamerdProcess::start(0, STORED, disco.path()).await;
    let interpreter = interpreter(namerd.api, "default");
    let mut hostile = String::from("/svc/web=>/a0");
    for i in 0..22 {
        hostile.push_str(&format!(";/a{i}=>/a{n}&/a{n}", n = i + 1));
    }
    hostile.push_str(";/a22=>/$/inet/127.0.0.1/8080");
    let mut binding = interpreter.bind(&Dtab::read(&hostile).unwrap(), &path("/svc/web"));
    let refused = |b: &Binding| match &*b.load() {
        Activity::Failed(NamingError::Refused(why)) => why.to_string(),
        other => format!("not refused: {other:?}"),
    };
    let waited = tokio::time::timeout(UPDATE, async {
        while refused(&binding).starts_with("not refused") {
            binding.changed().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{}", refused(&binding));
    assert!(
        refused(&binding).contains("bindingLimits"),
        "{}",
        refused(&binding)
    );
    // No reconnection follows the refusal.
    let failures = interpreter.status().load().failures;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(interpreter.status().load().failures, failures);
}

#[test]
fn config_keys_are_checked() {
    let default = default();
    let build = |params: Value| {
        crate::interpreter::build(
            Some(&KindConfig {
                experimental: false,
                kind: KIND.to_string(),
                params: object(params),
            }),
            &default,
            Duration::from_secs(600),
            1000,
        )
        .map(drop)
    };
    let e = build(json!({})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): dst: missing field"),
        "{e}"
    );
    let e = build(json!({"dst": "/$/inet/127.1/4180", "interval": 1})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): interval: unknown field"),
        "{e}"
    );
    let e = build(json!({"dst": "/$/inet/127.1/4180", "tls": {}})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): tls: commonName: required"),
        "{e}"
    );
    let e = build(
        json!({"dst": "/$/inet/127.1/4180", "tls": {"commonName": "namerd", "caCert": "/ca.pem"}}),
    )
    .unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): tls.caCert: unknown field"),
        "{e}"
    );
    let e = build(json!({"dst": "/$/inet/127.1/4180", "tls": {"commonName": "namerd", "trustCertsBundle": "/nonexistent/ca.pem"}}))
        .unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): tls: /nonexistent/ca.pem: cannot read"),
        "{e}"
    );
    let tls = json!({"commonName": "namerd", "disableValidation": false, "enabled": true});
    let e = build(json!({"dst": "http://namerd:4180", "tls": tls.clone()})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): dst: ") && e.contains("write https://"),
        "{e}"
    );
    let e = build(json!({"dst": "https://namerd:4180"})).unwrap_err();
    assert!(e.contains("has no tls block"), "{e}");
    for ok in [
        json!({"dst": "https://namerd:4180", "tls": {"disableValidation": true}}),
        json!({"dst": "namerd:4180", "tls": {"commonName": "namerd", "enabled": false}}),
    ] {
        build(ok.clone()).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let e = build(json!({"dst": "/$/inet/127.1/4180", "namespace": "a/b"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): namespace: "),
        "{e}"
    );
    let e = build(json!({"dst": "/$/inet/127.1/4180", "retry": {"baseSeconds": 0}})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): retry.baseSeconds: "),
        "{e}"
    );
    let e =
        build(json!({"dst": "/$/inet/127.1/4180", "retry": {"baseSeconds": 10, "maxSeconds": 5}}))
            .unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): retry.maxSeconds: "),
        "{e}"
    );
    let e = build(json!({"dst": "/$/inet/127.1/4180", "retry": {"base": 1}})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): retry.base: unknown field"),
        "{e}"
    );
    let e = build(json!({"dst": "/$/inet/127.1/4180/ x"})).unwrap_err();
    assert!(
        e.starts_with("interpreter (io.l5d.namerd.http): dst: "),
        "{e}"
    );

    for ok in [
        json!({"dst": "/$/inet/127.1/4180", "experimental": true}),
        json!({"dst": "namerd.example:4180", "namespace": "web"}),
        json!({"dst": "http://127.0.0.1:4180/namerd", "retry": {"baseSeconds": 1}}),
    ] {
        build(ok.clone()).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let parsed: NamerdHttpConfig =
        params::parse(KIND, &object(json!({"dst": "/$/inet/127.1/4180"}))).unwrap();
    assert_eq!(parsed.namespace, "default");
    assert_eq!(retry_of(&parsed.retry).unwrap(), Retry::default());
}

/// A namerd stand-in: each bind (or addr) watch gets these lines; a stream
/// whose last line is not JSON (namerd's error message) is then closed,
/// any other is held open.
async fn scripted_namerd(bind: Vec<&'static str>, addr: Vec<&'static str>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (bind, addr) = (bind.clone(), addr.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let lines = if head.starts_with(b"GET /api/1/bind/") {
                    bind
                } else {
                    addr
                };
                let mut out = String::from(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                for line in &lines {
                    out.push_str(&format!("{:x}\r\n{line}\n\r\n", line.len() + 1));
                }
                let ends = lines.last().is_some_and(|l| !l.starts_with('{'));
                if ends {
                    out.push_str("0\r\n\r\n");
                }
                let _ = socket.write_all(out.as_bytes()).await;
                if !ends {
                    // Held open until the client goes.
                    let _ = socket.read(&mut byte).await;
                }
            });
        }
    });
    at
}

#[tokio::test]
async fn failures_after_an_answer_never_replace_it() {
    const TREE: &str =
        r#"{"type":"leaf","bound":{"addr":{"type":"pending"},"id":"/#/io.l5d.fs/web","path":"/"}}"#;
    const BOUND: &str =
        r#"{"type":"bound","addrs":[{"ip":"127.0.0.1","port":8080,"meta":{}}],"meta":{}}"#;
    const FAILED: &str = r#"{"type":"failed","cause":"backend down"}"#;

    // The tree stream answers, then namerd reports an error; the address
    // stream answers and stays open.
    let namerd = scripted_namerd(vec![TREE, "binding exploded"], vec![BOUND]).await;
    let binder = interpreter(namerd, "default");
    let mut binding = binder.bind(&Dtab::empty(), &path("/svc/web"));
    until(&mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
    let mut status = binder.status();
    until_status(&mut status, |s| {
        s.failures >= 2
            && s.last_error
                .as_deref()
                .unwrap_or("")
                .contains("binding exploded")
    })
    .await;
    assert_eq!(leaf(&binding), "/#/io.l5d.fs/web /");

    // The address stream answers, then says the address failed, then
    // namerd reports an error.
    let namerd = scripted_namerd(vec![], vec![BOUND, FAILED, "addr exploded"]).await;
    let watcher = interpreter(namerd, "default");
    let mut addr = watcher.addr(&path("/#/io.l5d.fs/web"));
    until(&mut addr, UPDATE, endpoints, "8080*1").await;
    let mut status = watcher.status();
    until_status(&mut status, |s| {
        s.failures >= 2
            && s.last_error
                .as_deref()
                .unwrap_or("")
                .contains("addr exploded")
    })
    .await;
    assert_eq!(endpoints(&addr), "8080*1");

    // Never answered: namerd's failure is the address's state.
    let namerd = scripted_namerd(vec![], vec![FAILED]).await;
    let fresh = interpreter(namerd, "default");
    let mut addr = fresh.addr(&path("/#/io.l5d.fs/web"));
    until(&mut addr, UPDATE, endpoints, "Failed(\"backend down\")").await;
}

/// An interpreter reaching namerd over TLS with `tls` (the interpreter's
/// `tls:` block).
fn interpreter_with_tls(api: SocketAddr, tls: Value) -> NamerdHttpInterpreter {
    let params = object(json!({
        "dst": format!("/$/inet/127.0.0.1/{}", api.port()),
        "retry": {"baseSeconds": 0.05, "maxSeconds": 0.2},
        "tls": tls,
    }));
    NamerdHttpInterpreter::from_params(&params, &default(), Duration::from_secs(600)).unwrap()
}

/// What a binding failed with, once it fails.
async fn failure(binding: &mut Binding) -> String {
    tokio::time::timeout(RECONNECT, async {
        loop {
            if let Activity::Failed(e) = &*binding.load() {
                return e.to_string();
            }
            binding.changed().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not failed: {:?}", binding.load()))
}

#[tokio::test]
async fn namerd_over_mutual_tls_binds_and_a_failed_handshake_says_why() {
    let pki = integration::pki::Pki::new("control");
    let server = pki.leaf("namerd", &["namerd.test"]);
    let router = pki.leaf("router", &["router.test"]);
    let disco = disco();
    let controller = format!(
        "  tls:\n    certPath: {}\n    keyPath: {}\n    caCertPath: {}\n    requireClientAuth: true\n",
        server.cert.display(),
        server.key.display(),
        pki.ca().display()
    );
    let namerd = NamerdProcess::start_with(0, STORED, disco.path(), &controller).await;
    let client_auth = json!({"certPath": router.cert, "keyPath": router.key});

    let interpreter = interpreter_with_tls(
        namerd.api,
        json!({"commonName": "namerd.test", "trustCertsBundle": pki.ca(), "clientAuth": client_auth}),
    );
    let mut binding = interpreter.bind(&Dtab::empty(), &path("/svc/web"));
    until(&mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
    let mut web = leaf_addr(&binding);
    until(&mut web, UPDATE, endpoints, "8080*1").await;
    interpreter.ready().await.unwrap();

    // namerd's certificate is not for the name the interpreter checks.
    let wrong = interpreter_with_tls(
        namerd.api,
        json!({"commonName": "other.test", "trustCertsBundle": pki.ca(), "clientAuth": client_auth}),
    );
    let mut binding = wrong.bind(&Dtab::empty(), &path("/svc/web"));
    let why = failure(&mut binding).await;
    assert!(why.contains("not valid for the name"), "{why}");
    assert!(why.contains("other.test"), "{why}");
    let not_ready = wrong.ready().await.unwrap_err();
    assert!(not_ready.contains("not valid for the name"), "{not_ready}");

    // No client certificate: namerd refuses the handshake.
    let anonymous = interpreter_with_tls(
        namerd.api,
        json!({"commonName": "namerd.test", "trustCertsBundle": pki.ca()}),
    );
    let mut binding = anonymous.bind(&Dtab::empty(), &path("/svc/web"));
    let why = failure(&mut binding).await;
    assert!(why.contains("refused the client certificate"), "{why}");

    // A CA the interpreter does not know.
    let other = integration::pki::Pki::new("other");
    let stranger = interpreter_with_tls(
        namerd.api,
        json!({"commonName": "namerd.test", "trustCertsBundle": other.ca(), "clientAuth": client_auth}),
    );
    let mut binding = stranger.bind(&Dtab::empty(), &path("/svc/web"));
    let why = failure(&mut binding).await;
    assert!(why.contains("not signed by a trusted CA"), "{why}");
    namerd.kill().await;
}
