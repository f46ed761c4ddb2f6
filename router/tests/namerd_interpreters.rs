//! The three interpreters that ask namerd (`io.l5d.namerd.http`,
//! `io.l5d.namerd` over thrift, `io.l5d.mesh` over gRPC) against one real
//! namerd serving all three interfaces: each must follow dtab and endpoint
//! changes, keep its last answers while namerd is away, and pick up again
//! when it is back. The same scenario runs for every kind, so the three
//! cannot drift apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use namerd_client::{BaseUrl, Client, Namespace};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Activity, Addr, Binding, Interpreter, Live};
use router::config::KindConfig;
use router::interpreter::RouterNaming;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// How long an update may take to reach the router.
const UPDATE: Duration = Duration::from_secs(3);
/// How long reconnecting after a restart may take.
const RECONNECT: Duration = Duration::from_secs(10);

const KINDS: [&str; 3] = ["io.l5d.namerd.http", "io.l5d.namerd", "io.l5d.mesh"];

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

/// A namerd on its own runtime and thread, so that stopping it cuts every
/// connection as a namerd process exiting would.
struct NamerdProcess {
    /// Where each interface listens, by kind.
    interfaces: Vec<(&'static str, SocketAddr)>,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl NamerdProcess {
    /// Starts namerd with `dtab` as the `default` namespace, an `io.l5d.fs`
    /// namer over `disco`, and the three router interfaces on `ports`
    /// (HTTP, thrift, mesh; 0 for any).
    async fn start(ports: [u16; 3], dtab: &str, disco: &FsPath) -> NamerdProcess {
        let yaml = format!(
            "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: {dtab:?}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: {}\n- kind: io.l5d.thriftNameInterpreter\n  port: {}\n- kind: io.l5d.mesh\n  port: {}\n",
            disco.display(),
            ports[0],
            ports[1],
            ports[2],
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
                let _ = started_tx.send(Ok(running.interface_addrs.clone()));
                let _ = stop_rx.await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        let interfaces = started.await.unwrap().unwrap();
        NamerdProcess {
            interfaces,
            stop,
            thread,
        }
    }

    fn addr(&self, kind: &str) -> SocketAddr {
        self.interfaces
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {kind} interface"))
    }

    fn ports(&self) -> [u16; 3] {
        [
            self.addr("io.l5d.httpController").port(),
            self.addr("io.l5d.thriftNameInterpreter").port(),
            self.addr("io.l5d.mesh").port(),
        ]
    }

    /// The interface an interpreter of `kind` talks to.
    fn for_interpreter(&self, kind: &str) -> SocketAddr {
        match kind {
            "io.l5d.namerd.http" => self.addr("io.l5d.httpController"),
            "io.l5d.namerd" => self.addr("io.l5d.thriftNameInterpreter"),
            "io.l5d.mesh" => self.addr("io.l5d.mesh"),
            other => panic!("no interface for {other}"),
        }
    }

    async fn update_dtab(&self, dtab: &str) {
        let api = self.addr("io.l5d.httpController");
        let client = Client::new(BaseUrl::parse(&format!("http://{api}")).unwrap());
        let ns = Namespace::new("default").unwrap();
        client
            .update_dtab(&ns, &Dtab::read(dtab).unwrap(), None)
            .await
            .unwrap();
    }

    async fn kill(self) {
        let _ = self.stop.send(());
        tokio::task::spawn_blocking(move || self.thread.join().unwrap())
            .await
            .unwrap();
    }
}

fn default_interpreter() -> Interpreter {
    let inet = Arc::new(InetResolver::system().unwrap());
    Interpreter::new(Vec::new(), SystemNamers::with_linkerd_namers(inet))
}

/// An interpreter of `kind` asking namerd at `at`, retrying fast.
fn interpreter(kind: &str, at: SocketAddr) -> Arc<dyn RouterNaming> {
    let mut params = json!({
        "dst": format!("/$/inet/127.0.0.1/{}", at.port()),
        "retry": {"baseSeconds": 0.05, "maxSeconds": 0.2},
    });
    if kind == "io.l5d.mesh" {
        params["root"] = json!("/default");
    } else {
        params["namespace"] = json!("default");
    }
    let Value::Object(params) = params else {
        unreachable!()
    };
    let config = KindConfig {
        experimental: false,
        kind: kind.to_string(),
        params,
    };
    router::interpreter::build(
        Some(&config),
        &default_interpreter(),
        Duration::from_secs(600),
        1000,
    )
    .unwrap_or_else(|e| panic!("{kind}: {e}"))
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
    kind: &str,
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
    assert!(
        waited.is_ok(),
        "{kind}: still {} instead of {want}",
        show(live)
    );
}

fn disco() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web"), "127.0.0.1 8080\n").unwrap();
    std::fs::write(dir.path().join("web2"), "127.0.0.1 9090\n").unwrap();
    dir
}

const STORED: &str = "/svc => /#/io.l5d.fs";

#[tokio::test]
async fn every_kind_follows_dtab_and_endpoint_changes() {
    let disco = disco();
    let namerd = NamerdProcess::start([0, 0, 0], STORED, disco.path()).await;
    let local = Dtab::read("/svc/x => /svc/web").unwrap();
    let mut bindings = Vec::new();
    for kind in KINDS {
        let naming = interpreter(kind, namerd.for_interpreter(kind));
        let mut binding = naming.bind(&local, &path("/svc/x/extra"));
        until(kind, &mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /extra").await;
        let mut web = leaf_addr(&binding);
        until(kind, &mut web, UPDATE, endpoints, "8080*1").await;
        bindings.push((kind, naming, binding));
    }

    // A dtab change in namerd reaches every binding.
    namerd
        .update_dtab("/svc => /#/io.l5d.fs; /svc/web => /#/io.l5d.fs/web2")
        .await;
    let mut addrs = Vec::new();
    for (kind, _, binding) in &mut bindings {
        until(kind, binding, UPDATE, leaf, "/#/io.l5d.fs/web2 /extra").await;
        let mut web2 = leaf_addr(binding);
        until(kind, &mut web2, UPDATE, endpoints, "9090*1").await;
        addrs.push((*kind, web2));
    }

    // An endpoint change reaches every address, weight and all.
    std::fs::write(disco.path().join("web2"), "127.0.0.1 9091 * 3\n").unwrap();
    for (kind, web2) in &mut addrs {
        until(kind, web2, UPDATE, endpoints, "9091*3").await;
    }

    // The delegator explains the name through namerd, whichever protocol.
    for (kind, naming, _) in &bindings {
        let tree = naming
            .delegate(&Dtab::empty(), &path("/svc/web"))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"))
            .to_string();
        assert!(tree.contains("/#/io.l5d.fs/web2"), "{kind}: {tree}");
        naming
            .ready()
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    namerd.kill().await;
}

#[tokio::test]
async fn every_kind_keeps_its_last_answers_while_namerd_is_away() {
    let disco = disco();
    let namerd = NamerdProcess::start([0, 0, 0], STORED, disco.path()).await;
    let ports = namerd.ports();
    let mut held = Vec::new();
    for kind in KINDS {
        let naming = interpreter(kind, namerd.for_interpreter(kind));
        let mut binding = naming.bind(&Dtab::empty(), &path("/svc/web"));
        until(kind, &mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
        let mut web = leaf_addr(&binding);
        until(kind, &mut web, UPDATE, endpoints, "8080*1").await;
        held.push((kind, naming, binding, web));
    }

    namerd.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (kind, naming, binding, web) in &held {
        assert_eq!(leaf(binding), "/#/io.l5d.fs/web /", "{kind}");
        assert_eq!(endpoints(web), "8080*1", "{kind}");
        // Asking again while namerd is away gets the last answer.
        let again = naming.bind(&Dtab::empty(), &path("/svc/web"));
        assert_eq!(leaf(&again), "/#/io.l5d.fs/web /", "{kind}");
    }

    // Changed while namerd was down; seen once it is back on its ports.
    std::fs::write(disco.path().join("web"), "127.0.0.1 8081\n").unwrap();
    let namerd = NamerdProcess::start(ports, STORED, disco.path()).await;
    for (kind, _, _, web) in &mut held {
        until(kind, web, RECONNECT, endpoints, "8081*1").await;
    }
    namerd
        .update_dtab("/svc => /#/io.l5d.fs; /svc/web => /#/io.l5d.fs/web2")
        .await;
    for (kind, _, binding, _) in &mut held {
        until(kind, binding, UPDATE, leaf, "/#/io.l5d.fs/web2 /").await;
    }
    namerd.kill().await;
}

#[tokio::test]
async fn every_kind_fails_a_name_namerd_cannot_bind_and_keeps_routing_others() {
    let disco = disco();
    let namerd = NamerdProcess::start([0, 0, 0], STORED, disco.path()).await;
    for kind in KINDS {
        let naming = interpreter(kind, namerd.for_interpreter(kind));
        // No such file: a negative tree, not a failure.
        let mut missing = naming.bind(&Dtab::empty(), &path("/svc/nothing"));
        let waited = tokio::time::timeout(UPDATE, async {
            while !matches!(&*missing.load(), Activity::Ok(NameTree::Neg)) {
                missing.changed().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{kind}: {:?}", missing.load());
        let mut web = naming.bind(&Dtab::empty(), &path("/svc/web"));
        until(kind, &mut web, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
    }
    namerd.kill().await;
}

/// A leaf of the HTTP API's bound-tree JSON.
fn leaf_json(id: &str) -> Value {
    json!({"type": "leaf", "bound": {"id": id, "path": "/"}})
}

/// The HTTP API's address JSON for endpoints on 127.0.0.1.
fn addr_json(ports: &[u16]) -> Value {
    let addrs: Vec<Value> = ports
        .iter()
        .map(|p| json!({"ip": "127.0.0.1", "port": p, "meta": {}}))
        .collect();
    json!({"type": "bound", "addrs": addrs, "meta": {}})
}

/// A server written from an IDL alone, serving a tree for `/svc/web` in
/// namespace `default`, the endpoints of `/#/io.l5d.fs/web` and `web2`.
trait IndependentServer {
    fn addr(&self) -> SocketAddr;
    /// Serves `tree` (a bound id) for `/svc/web`, and `ports` as `web`'s
    /// endpoints (`web2` is always on 9090).
    fn serve(&mut self, tree: &str, ports: &[u16]);
}

struct Mesh(integration::mesh::MinimalMeshServer);

impl Mesh {
    fn state(tree: &str, ports: &[u16]) -> Value {
        json!({
            "dtabs": {"default": {"version": "1", "dtab": "/svc=>/#/io.l5d.fs"}},
            "trees": {"default /svc/web": leaf_json(tree)},
            "replicas": {
                "/#/io.l5d.fs/web": addr_json(ports),
                "/#/io.l5d.fs/web2": addr_json(&[9090]),
            },
        })
    }
}

impl IndependentServer for Mesh {
    fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    fn serve(&mut self, tree: &str, ports: &[u16]) {
        self.0.set_state(&Mesh::state(tree, ports));
    }
}

struct Thrift(integration::thrift_namer::MinimalServer);

impl Thrift {
    fn state(tree: &str, ports: &[u16]) -> Value {
        let addrs: Vec<Value> = ports.iter().map(|p| json!(["127.0.0.1", p])).collect();
        json!({
            "trees": {"default /svc/web": {"type": "leaf", "id": tree, "residual": "/"}},
            "addrs": {"/#/io.l5d.fs/web": addrs, "/#/io.l5d.fs/web2": [["127.0.0.1", 9090]]},
            "dtabs": {"default": "/svc=>/#/io.l5d.fs"},
        })
    }
}

impl IndependentServer for Thrift {
    fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    fn serve(&mut self, tree: &str, ports: &[u16]) {
        self.0.update(&Thrift::state(tree, ports));
    }
}

/// An interpreter of `kind` against `server`, which starts out serving
/// `web` on 8080: it follows endpoint and tree changes, and keeps the last
/// answers once the server is gone.
async fn follows_an_independent_server(kind: &str, mut server: impl IndependentServer) {
    let naming = interpreter(kind, server.addr());
    let mut binding = naming.bind(&Dtab::empty(), &path("/svc/web"));
    until(kind, &mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
    let mut web = leaf_addr(&binding);
    until(kind, &mut web, UPDATE, endpoints, "8080*1").await;
    naming.ready().await.unwrap();

    server.serve("/#/io.l5d.fs/web", &[8080, 8081]);
    until(kind, &mut web, UPDATE, endpoints, "8080*1,8081*1").await;
    server.serve("/#/io.l5d.fs/web2", &[8080, 8081]);
    until(kind, &mut binding, UPDATE, leaf, "/#/io.l5d.fs/web2 /").await;
    let mut web2 = leaf_addr(&binding);
    until(kind, &mut web2, UPDATE, endpoints, "9090*1").await;

    // The server goes away: the last answers stay.
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(leaf(&binding), "/#/io.l5d.fs/web2 /", "{kind}");
    assert_eq!(endpoints(&web2), "9090*1", "{kind}");
}

#[tokio::test]
async fn the_mesh_interpreter_follows_a_server_written_from_the_protos_alone() {
    let state = Mesh::state("/#/io.l5d.fs/web", &[8080]);
    let Some(server) = integration::mesh::MinimalMeshServer::start(&state) else {
        return;
    };
    follows_an_independent_server("io.l5d.mesh", Mesh(server)).await;
}

#[tokio::test]
async fn the_thrift_interpreter_follows_a_server_written_from_the_idl_alone() {
    let state = Thrift::state("/#/io.l5d.fs/web", &[8080]);
    let Some(server) = integration::thrift_namer::MinimalServer::start(&state) else {
        return;
    };
    follows_an_independent_server("io.l5d.namerd", Thrift(server)).await;
}

/// The thrift and mesh interpreters reach namerd over TLS: thrift with
/// Linkerd's `{commonName, caCert}`, mesh with the client TLS block and a
/// client certificate namerd requires. A certificate that is not valid
/// for `commonName` fails the name with why, instead of leaving it pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrift_and_mesh_reach_namerd_over_tls() {
    let pki = integration::pki::Pki::new("interpreters");
    let server = pki.leaf("namerd", &["namerd.test"]);
    let client = pki.leaf("router", &["router.test"]);
    let disco = disco();
    let tls = format!(
        "  tls:\n    certPath: {}\n    keyPath: {}\n",
        server.cert.display(),
        server.key.display()
    );
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: {STORED:?}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.thriftNameInterpreter\n  port: 0\n{tls}- kind: io.l5d.mesh\n  port: 0\n{tls}    caCertPath: {}\n    requireClientAuth: true\n",
        disco.path().display(),
        pki.ca().display(),
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    let namerd = namerd::server::start(&config).await.unwrap();
    let port = |kind: &str| {
        namerd
            .interface_addrs
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap()
            .1
            .port()
    };
    let build = |kind: &str, params: Value| {
        let Value::Object(params) = params else {
            unreachable!()
        };
        let config = KindConfig {
            experimental: false,
            kind: kind.to_string(),
            params,
        };
        router::interpreter::build(
            Some(&config),
            &default_interpreter(),
            Duration::from_secs(600),
            1000,
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
    };
    let thrift = |name: &str| {
        build(
            "io.l5d.namerd",
            json!({
                "dst": format!("/$/inet/127.0.0.1/{}", port("io.l5d.thriftNameInterpreter")),
                "retry": {"baseSeconds": 0.05, "maxSeconds": 0.2},
                "tls": {"commonName": name, "caCert": pki.ca()},
            }),
        )
    };
    let mesh = |name: &str| {
        build(
            "io.l5d.mesh",
            json!({
                "dst": format!("/$/inet/127.0.0.1/{}", port("io.l5d.mesh")),
                "retry": {"baseSeconds": 0.05, "maxSeconds": 0.2},
                "tls": {
                    "commonName": name,
                    "trustCerts": [pki.ca()],
                    "clientAuth": {"certPath": client.cert, "keyPath": client.key},
                },
            }),
        )
    };
    for (kind, naming) in [
        ("io.l5d.namerd", thrift("namerd.test")),
        ("io.l5d.mesh", mesh("namerd.test")),
    ] {
        let mut binding = naming.bind(&Dtab::empty(), &path("/svc/web"));
        until(kind, &mut binding, UPDATE, leaf, "/#/io.l5d.fs/web /").await;
        let mut web = leaf_addr(&binding);
        until(kind, &mut web, UPDATE, endpoints, "8080*1").await;
    }
    // With the wrong name the handshake fails, and the name fails saying
    // so.
    for (kind, wrong) in [
        ("io.l5d.namerd", thrift("impostor.test")),
        ("io.l5d.mesh", mesh("impostor.test")),
    ] {
        let mut binding = wrong.bind(&Dtab::empty(), &path("/svc/web"));
        let waited = tokio::time::timeout(UPDATE, async {
            while !matches!(&*binding.load(), Activity::Failed(_)) {
                binding.changed().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{kind}: still {:?}", binding.load());
        let Activity::Failed(why) = &*binding.load() else {
            unreachable!()
        };
        assert!(why.to_string().contains("impostor.test"), "{kind}: {why}");
    }
    namerd.stop().await;
}
