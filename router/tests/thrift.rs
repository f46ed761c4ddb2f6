//! `protocol: thrift` routers end to end, against Thrift implementations
//! other than ours: backends and clients written with Python's thriftpy2
//! (`thrift_py/`), in both protocols (binary, compact) and both
//! transports (framed, buffered), a router started in-process from YAML
//! between them.
//!
//! Without python3 and thriftpy2 the tests say so loudly and pass (they
//! fail under `CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{FsDir, STEP, client, closed_port, config, get, start_router, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDL: &str = include_str!("thrift_py/echo.thrift");
const SERVER: &str = include_str!("thrift_py/server.py");
const CLIENT: &str = include_str!("thrift_py/client.py");

/// The thriftpy2 scripts, written out.
struct Py {
    dir: tempfile::TempDir,
}

impl Py {
    fn new() -> Option<Py> {
        if !integration::python::has_modules(
            &["thriftpy2"],
            "python3 python3-pip, then pip install thriftpy2",
            "it is the independent Thrift client and server of the thrift router's tests",
        ) {
            return None;
        }
        let dir = integration::python::scripts([
            ("echo.thrift", IDL),
            ("server.py", SERVER),
            ("client.py", CLIENT),
        ]);
        Some(Py { dir })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A backend answering as `name`.
    fn backend(&self, name: &str, protocol: &str, transport: &str) -> Backend {
        let (server, idl) = (self.path("server.py"), self.path("echo.thrift"));
        let (child, port, _) = integration::python::start_listening(
            &[
                server.as_os_str(),
                idl.as_os_str(),
                name.as_ref(),
                protocol.as_ref(),
                transport.as_ref(),
            ],
            &format!("the thriftpy2 backend {name}"),
        );
        Backend {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// A client with one connection to `addr`.
    fn client(&self, addr: SocketAddr, protocol: &str, transport: &str) -> Client {
        let mut child = Command::new("python3")
            .arg(self.path("client.py"))
            .arg(self.path("echo.thrift"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args([protocol, transport])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the thriftpy2 client");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, answers) = tokio::sync::mpsc::channel(16);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin: Some(stdin),
            answers,
        }
    }
}

/// A thriftpy2 backend; stopped when dropped.
struct Backend {
    child: Child,
    addr: SocketAddr,
}

impl Backend {
    fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A thriftpy2 client making calls on one connection; stopped when
/// dropped.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: tokio::sync::mpsc::Receiver<String>,
}

impl Client {
    /// Calls `method` with `args`; the answer as `client.py` prints it.
    async fn call(&mut self, method: &str, args: Value) -> Value {
        let line = json!({"method": method, "args": args}).to_string();
        let stdin = self.stdin.as_mut().expect("the client's stdin");
        writeln!(stdin, "{line}").expect("writing to the client");
        stdin.flush().expect("writing to the client");
        let answer = within(STEP, &format!("an answer to {line}"), self.answers.recv())
            .await
            .unwrap_or_else(|| panic!("the client ended before answering {line}"));
        serde_json::from_str(&answer).unwrap()
    }

    /// `echo(text)`'s answer, which must be a result.
    async fn echo(&mut self, text: &str) -> String {
        let answer = self.call("echo", json!([text])).await;
        answer["ok"]
            .as_str()
            .unwrap_or_else(|| panic!("echo({text:?}) gave {answer}"))
            .to_string()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn metrics(admin: SocketAddr) -> Value {
    let reply = get(&client(), admin, "admin", "/admin/metrics.json", &[]).await;
    serde_json::from_slice(&reply.body).unwrap()
}

fn figure(metrics: &Value, name: &str) -> f64 {
    metrics[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {metrics:#}"))
}

/// The metrics once `ready` holds of them.
async fn metrics_when(admin: SocketAddr, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    within(STEP, what, async {
        loop {
            let m = metrics(admin).await;
            if ready(&m) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// A thrift router on port 0 with `keys` (YAML lines of the router, two
/// spaces in) and one server with `server` (lines four spaces in).
fn thrift_router(keys: &str, server: &str) -> String {
    format!("- protocol: thrift\n{keys}  servers:\n  - port: 0\n{server}")
}

/// Calls through a router of `protocol` whose server speaks
/// `server_transport` and whose client speaks `client_transport`, to a
/// backend of the client's transport: results, a struct of every type
/// and a declared exception come back, in order, on one connection.
async fn round_trips(protocol: &str, server_transport: &str, client_transport: &str) {
    let Some(py) = Py::new() else { return };
    let backend = py.backend("a", protocol, client_transport);
    let fs = FsDir::new();
    let yaml = thrift_router(
        &format!(
            "  thriftProtocol: {protocol}\n  dtab: /svc => /$/inet/127.0.0.1/{}\n  client:\n    thriftFramed: {}\n",
            backend.port(),
            client_transport == "framed"
        ),
        &format!("    thriftFramed: {}\n", server_transport == "framed"),
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut client = py.client(router.addr(), protocol, server_transport);
    for i in 0..5 {
        assert_eq!(client.echo(&format!("hi {i}")).await, format!("a:hi {i}"));
    }
    assert_eq!(
        client.call("roundtrip", json!([])).await,
        json!({"ok": true})
    );
    assert_eq!(
        client.call("fail", json!(["on purpose"])).await,
        json!({"oops": "on purpose"})
    );
    assert_eq!(client.call("whoami", json!([])).await, json!({"ok": "a"}));
    let m = metrics(router.admin).await;
    let server = "rt/thrift/server/127.0.0.1/0";
    assert_eq!(figure(&m, &format!("{server}/requests")), 8.0);
    assert_eq!(figure(&m, &format!("{server}/success")), 8.0);
    assert_eq!(figure(&m, &format!("{server}/connections")), 1.0);
    assert_eq!(figure(&m, &format!("{server}/malformed")), 0.0);
    let client_scope = format!("rt/thrift/client/$/inet/127.0.0.1/{}", backend.port());
    assert_eq!(figure(&m, &format!("{client_scope}/requests")), 8.0);
    assert_eq!(figure(&m, &format!("{client_scope}/success")), 8.0);
    assert_eq!(
        figure(&m, &format!("{client_scope}/connects")),
        1.0,
        "one connection to the backend, kept between requests"
    );
    assert_eq!(figure(&m, "rt/thrift/service/svc/requests"), 8.0);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_binary_calls_round_trip() {
    round_trips("binary", "framed", "framed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_binary_calls_round_trip() {
    round_trips("binary", "buffered", "buffered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_compact_calls_round_trip() {
    round_trips("compact", "framed", "framed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_compact_calls_round_trip() {
    round_trips("compact", "buffered", "buffered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_calls_go_on_to_a_buffered_backend_and_back() {
    round_trips("binary", "framed", "buffered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_compact_calls_go_on_to_a_framed_backend_and_back() {
    round_trips("compact", "buffered", "framed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_method_in_the_name_routes_two_methods_to_two_backends() {
    let Some(py) = Py::new() else { return };
    let (a, b) = (
        py.backend("a", "binary", "framed"),
        py.backend("b", "binary", "framed"),
    );
    let fs = FsDir::new();
    fs.write("echoes", &format!("127.0.0.1 {}\n", a.port()));
    fs.write("names", &format!("127.0.0.1 {}\n", b.port()));
    let yaml = thrift_router(
        "  label: methods\n  thriftMethodInDst: true\n  dtab: /svc/echo => /#/io.l5d.fs/echoes;/svc/whoami => /#/io.l5d.fs/names\n",
        "",
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut client = py.client(router.addr(), "binary", "framed");
    for _ in 0..3 {
        assert_eq!(client.echo("x").await, "a:x");
        assert_eq!(client.call("whoami", json!([])).await, json!({"ok": "b"}));
    }
    let m = metrics(router.admin).await;
    assert_eq!(figure(&m, "rt/methods/service/svc/echo/requests"), 3.0);
    assert_eq!(figure(&m, "rt/methods/service/svc/whoami/requests"), 3.0);
    assert_eq!(
        figure(&m, "rt/methods/client/#/io.l5d.fs/echoes/success"),
        3.0
    );
    assert_eq!(
        figure(&m, "rt/methods/client/#/io.l5d.fs/names/success"),
        3.0
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_calls_are_forwarded_and_not_answered() {
    let Some(py) = Py::new() else { return };
    let backend = py.backend("a", "compact", "buffered");
    let fs = FsDir::new();
    let yaml = thrift_router(
        &format!(
            "  thriftProtocol: compact\n  dtab: /svc => /$/inet/127.0.0.1/{}\n  client:\n    thriftFramed: false\n",
            backend.port()
        ),
        "",
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut client = py.client(router.addr(), "compact", "framed");
    assert_eq!(
        client.call("note", json!(["one"])).await,
        json!({"ok": null})
    );
    assert_eq!(
        client.call("note", json!(["two"])).await,
        json!({"ok": null})
    );
    // Had the router answered a oneway call, this call would read that
    // answer as its own.
    assert_eq!(
        client.call("notes", json!([])).await,
        json!({"ok": ["one", "two"]})
    );
    assert_eq!(client.echo("after").await, "a:after");

    // A client that sends a oneway call and closes at once: the call
    // still arrives.
    let mut leaving = py.client(router.addr(), "compact", "framed");
    assert_eq!(
        leaving.call("note", json!(["last words"])).await,
        json!({"ok": null})
    );
    drop(leaving);
    within(STEP, "the last oneway call to arrive", async {
        loop {
            let notes = client.call("notes", json!([])).await;
            if notes["ok"].as_array().unwrap().len() == 3 {
                assert_eq!(notes, json!({"ok": ["one", "two", "last words"]}));
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_router_cannot_complete_is_an_application_exception() {
    let Some(py) = Py::new() else { return };
    let backend = py.backend("a", "binary", "framed");
    let refusing = closed_port().await;
    let fs = FsDir::new();
    fs.write("echo", &format!("127.0.0.1 {}\n", backend.port()));
    fs.write("down", &format!("127.0.0.1 {}\n", refusing.port()));
    let yaml = thrift_router(
        "  thriftMethodInDst: true\n  dtab: /svc/echo => /#/io.l5d.fs/echo;/svc/whoami => /#/io.l5d.fs/nowhere;/svc/notes => /#/io.l5d.fs/down\n",
        "",
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut client = py.client(router.addr(), "binary", "framed");
    assert_eq!(client.echo("before").await, "a:before");

    // No endpoints: the name binds to nothing.
    let answer = client.call("whoami", json!([])).await;
    assert_eq!(answer["app_error"]["type"], 6, "INTERNAL_ERROR: {answer}");
    let message = answer["app_error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("no endpoints for /svc/whoami"),
        "{message}"
    );
    // The connection goes on.
    assert_eq!(client.echo("after").await, "a:after");

    // An endpoint that refuses connections.
    let answer = client.call("notes", json!([])).await;
    assert_eq!(answer["app_error"]["type"], 6, "{answer}");
    let message = answer["app_error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("connecting to {refusing} for /svc/notes failed")),
        "{message}"
    );
    assert_eq!(client.echo("still").await, "a:still");

    let m = metrics(router.admin).await;
    let server = "rt/thrift/server/127.0.0.1/0";
    assert_eq!(figure(&m, &format!("{server}/requests")), 5.0);
    assert_eq!(figure(&m, &format!("{server}/success")), 3.0);
    assert_eq!(figure(&m, &format!("{server}/failures/no_endpoints")), 1.0);
    assert_eq!(figure(&m, &format!("{server}/failures/not_sent")), 1.0);
    // Three tries in all, the last two from the requeue budget.
    let down = "rt/thrift/client/#/io.l5d.fs/down";
    assert_eq!(figure(&m, &format!("{down}/connect_failures")), 3.0);
    assert_eq!(figure(&m, &format!("{down}/retries/requeues")), 2.0);
    assert_eq!(figure(&m, &format!("{down}/failures/not_sent")), 1.0);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtab_change_reroutes_the_next_call_on_an_open_connection() {
    let Some(py) = Py::new() else { return };
    let (a, b) = (
        py.backend("a", "binary", "framed"),
        py.backend("b", "binary", "framed"),
    );
    let fs = FsDir::new();
    let dtab_file = fs.path().join("dtab");
    let write_dtab = |port: u16| {
        let tmp = fs.path().join(".dtab.tmp");
        std::fs::write(&tmp, format!("/svc => /$/inet/127.0.0.1/{port}\n")).unwrap();
        std::fs::rename(&tmp, &dtab_file).unwrap();
    };
    write_dtab(a.port());
    let yaml = thrift_router(
        &format!(
            "  interpreter:\n    kind: io.l5d.fs\n    dtabFile: {}\n",
            dtab_file.display()
        ),
        "",
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut client = py.client(router.addr(), "binary", "framed");
    assert_eq!(client.echo("x").await, "a:x");
    write_dtab(b.port());
    within(STEP, "calls on the same connection to reach b", async {
        while client.echo("x").await != "b:x" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_that_is_not_a_call_closes_the_connection_and_is_counted() {
    let fs = FsDir::new();
    let router = start_router(&config(
        &fs,
        &thrift_router("  dtab: /svc => /$/inet/127.0.0.1/1\n", ""),
    ))
    .await;
    let addr = router.addr();
    let closed_after = |bytes: Vec<u8>| async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut rest = Vec::new();
        within(STEP, "the router to close the connection", async {
            let _ = stream.read_to_end(&mut rest).await;
        })
        .await;
        rest
    };
    // HTTP: a frame of 1.2 GB, over the limit.
    assert!(
        closed_after(b"GET / HTTP/1.1\r\n\r\n".to_vec())
            .await
            .is_empty()
    );
    // A frame of garbage.
    assert!(
        closed_after(vec![0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff])
            .await
            .is_empty()
    );
    // A reply where a call should be.
    let mut reply = vec![0x80, 0x01, 0x00, 0x02, 0, 0, 0, 1, b'x', 0, 0, 0, 1, 0];
    let mut frame = u32::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
    frame.append(&mut reply);
    assert!(closed_after(frame).await.is_empty());
    let server = "rt/thrift/server/127.0.0.1/0";
    let m = metrics_when(router.admin, "the connections to be counted closed", |m| {
        m[format!("{server}/closes")] == 3
    })
    .await;
    assert_eq!(figure(&m, &format!("{server}/too_large")), 1.0);
    assert_eq!(figure(&m, &format!("{server}/malformed")), 2.0);
    assert_eq!(figure(&m, &format!("{server}/requests")), 0.0);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_connections_waiting_between_calls() {
    let Some(py) = Py::new() else { return };
    let backend = py.backend("a", "binary", "framed");
    let fs = FsDir::new();
    let yaml = thrift_router(
        &format!("  dtab: /svc => /$/inet/127.0.0.1/{}\n", backend.port()),
        "",
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let addr = router.addr();
    let mut client = py.client(addr, "binary", "framed");
    assert_eq!(client.echo("x").await, "a:x");
    // The grace period is 5 s; an idle connection does not hold it up.
    let began = std::time::Instant::now();
    router.stop().await;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let answer = client.call("echo", json!(["y"])).await;
    assert!(answer["error"].is_string(), "{answer}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections"
    );
}

/// The file, key path and line of each refused config, as `router
/// --check` prints them.
fn check(routers: &str) -> Result<Vec<router::config::RouterSpec>, String> {
    let yaml = format!("routers:\n{routers}");
    let source = namers::config::Source::new("linkerd.yaml", yaml);
    let config: router::config::Config = source.parse().map_err(|e| e.to_string())?;
    config.validate().map_err(|e| source.error(&e).to_string())
}

#[test]
fn linkerd_s_thrift_keys_are_read_with_linkerd_s_defaults() {
    use router::thrift::{ThriftProtocol, ThriftSpec, config::ThriftClients};
    let spec = |routers: &str| -> ThriftSpec { check(routers).unwrap().remove(0).thrift.unwrap() };
    let defaults = spec("- protocol: thrift\n  servers:\n  - {}\n");
    assert_eq!(
        defaults.servers[0].addr,
        SocketAddr::from(([127, 0, 0, 1], 4114))
    );
    assert!(defaults.servers[0].framed);
    assert!(!defaults.method_in_dst);
    assert_eq!(defaults.protocol, ThriftProtocol::Binary);
    assert_eq!(defaults.clients, ThriftClients::Global { framed: true });
    // Linkerd's documented example.
    let example = spec(
        "- protocol: thrift\n  label: port-shifter\n  dtab: |\n    /svc => /$/inet/127.1/5005;\n  thriftProtocol: compact\n  servers:\n  - port: 4004\n    ip: 0.0.0.0\n    thriftFramed: false\n  client:\n    thriftFramed: false\n    attemptTTwitterUpgrade: false\n",
    );
    assert_eq!(example.protocol, ThriftProtocol::Compact);
    assert_eq!(
        example.servers[0].addr,
        SocketAddr::from(([0, 0, 0, 0], 4004))
    );
    assert!(!example.servers[0].framed);
    assert_eq!(example.clients, ThriftClients::Global { framed: false });
    // Per prefix, later entries over earlier ones.
    let per_prefix = spec(
        "- protocol: thrift\n  thriftMethodInDst: true\n  client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /#/io.l5d.fs\n      thriftFramed: false\n    - prefix: /#/io.l5d.fs/framed\n      thriftFramed: true\n      failFast: true\n  servers:\n  - port: 0\n",
    );
    assert!(per_prefix.method_in_dst);
    let id = |text: &str| dtab::Path::read(text).unwrap();
    assert!(!per_prefix.clients.framed(&id("/#/io.l5d.fs/buffered")));
    assert!(per_prefix.clients.framed(&id("/#/io.l5d.fs/framed/x")));
    assert!(per_prefix.clients.framed(&id("/$/inet/127.1/80")));
}

#[test]
fn unsupported_and_http_keys_on_a_thrift_router_are_refused_by_name() {
    let server = "  servers:\n  - port: 7474\n";
    let err = check(&format!(
        "- protocol: thrift\n  client:\n    attemptTTwitterUpgrade: true\n{server}"
    ))
    .unwrap_err();
    assert!(
        err.starts_with("linkerd.yaml: routers[0].client.attemptTTwitterUpgrade: line 4: "),
        "{err}"
    );
    assert!(err.contains("not supported yet"), "{err}");
    let err = check(&format!(
        "- protocol: thrift\n  client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /\n      attemptTTwitterUpgrade: true\n{server}"
    ))
    .unwrap_err();
    assert!(
        err.contains("routers[0].client.configs[0].attemptTTwitterUpgrade: line 7: "),
        "{err}"
    );
    assert!(err.contains("not supported yet"), "{err}");

    let refused = [
        (
            "  identifier:\n    kind: io.l5d.header\n",
            "routers[0].identifier: line 3: an HTTP key; thrift routers do not take it",
        ),
        (
            "  responseClassifier:\n    kind: io.l5d.http.retryableRead5XX\n",
            "routers[0].responseClassifier: line 3: an HTTP key; thrift routers do not take it",
        ),
        (
            "  httpAccessLog: a.log\n",
            "routers[0].httpAccessLog: line 3: an HTTP key",
        ),
        (
            "  client:\n    forwardClientCert: true\n",
            "routers[0].client.forwardClientCert: line 4: an HTTP key",
        ),
        (
            "  client:\n    tls:\n      commonName: a\n",
            "routers[0].client.tls: line 4: TLS to thrift endpoints is not supported yet",
        ),
        (
            "  service:\n    totalTimeoutMs: 5\n",
            "routers[0].service: line 3: not supported yet on thrift routers",
        ),
        (
            "  thriftProtocol: json\n",
            "routers[0].thriftProtocol: line 3: \"json\" is not a thrift protocol",
        ),
        (
            "  client:\n    thriftFramed: yes please\n",
            "routers[0].client.thriftFramed: line 4: expected true or false",
        ),
    ];
    for (keys, expected) in refused {
        let err = check(&format!("- protocol: thrift\n{keys}{server}")).unwrap_err();
        assert!(err.contains(expected), "{expected}: {err}");
    }
    for (server_keys, expected) in [
        (
            "    maxConcurrentRequests: 5\n",
            "routers[0].servers[0].maxConcurrentRequests: line 5: an HTTP key; thrift routers do not take it",
        ),
        (
            "    clearContext: true\n",
            "routers[0].servers[0].clearContext: line 5: an HTTP key",
        ),
        (
            "    dstName: /svc/a\n",
            "routers[0].servers[0].dstName: line 5: only tcp routers take it",
        ),
    ] {
        let err = check(&format!("- protocol: thrift\n{server}{server_keys}")).unwrap_err();
        assert!(err.contains(expected), "{expected}: {err}");
    }

    // The thrift keys on other routers.
    for (keys, expected) in [
        (
            "  thriftMethodInDst: true\n",
            "routers[0].thriftMethodInDst: line 3: only thrift routers take it",
        ),
        (
            "  client:\n    thriftFramed: false\n",
            "routers[0].client.thriftFramed: line 4: only thrift routers take it",
        ),
    ] {
        let err = check(&format!("- protocol: http\n{keys}{server}")).unwrap_err();
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let err = check(&format!(
        "- protocol: tcp\n{server}    dstName: /a\n    thriftFramed: true\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("routers[0].servers[0].thriftFramed: line 6: only thrift routers take it"),
        "{err}"
    );
    // thriftmux is still Linkerd's and not ours.
    let err = check(&format!("- protocol: thriftmux\n{server}")).unwrap_err();
    assert!(err.contains("not supported yet"), "{err}");
}

/// A framed binary call of `method` with sequence id `seq_id`, written
/// with our own codec (for tests that need no thriftpy2).
fn framed_call(method: &str, seq_id: i32) -> Vec<u8> {
    use namerd_client::thrift::protocol::{Writer, message_type};
    let mut w = Writer::new();
    w.message_begin(method, message_type::CALL, seq_id);
    w.field_stop();
    let message = w.into_bytes();
    let mut frame = u32::try_from(message.len()).unwrap().to_be_bytes().to_vec();
    frame.extend(message);
    frame
}

/// Reads one framed binary message: its header.
async fn read_framed(stream: &mut TcpStream) -> namerd_client::thrift::protocol::MessageHeader {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.unwrap();
    let mut message = vec![0; usize::try_from(u32::from_be_bytes(size)).unwrap()];
    stream.read_exact(&mut message).await.unwrap();
    namerd_client::thrift::protocol::Reader::new(&message)
        .message_begin()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_does_not_answer_in_time_is_a_timeout() {
    // A backend that reads and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = silent.accept().await {
            tokio::spawn(async move {
                let mut sink = vec![0u8; 1024];
                while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    let fs = FsDir::new();
    let yaml = thrift_router(
        &format!(
            "  dtab: /svc => /$/inet/127.0.0.1/{port}\n  client:\n    requestAttemptTimeoutMs: 200\n"
        ),
        "",
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    for seq_id in [1, 2] {
        stream
            .write_all(&framed_call("slow", seq_id))
            .await
            .unwrap();
        let began = std::time::Instant::now();
        let header = within(STEP, "the timeout's answer", read_framed(&mut stream)).await;
        assert!(
            began.elapsed() >= Duration::from_millis(190),
            "{:?}",
            began.elapsed()
        );
        assert_eq!(
            (header.name.as_str(), header.kind, header.seq_id),
            ("slow", 3, seq_id)
        );
    }
    let m = metrics(router.admin).await;
    assert_eq!(
        figure(&m, "rt/thrift/server/127.0.0.1/0/failures/timeout"),
        2.0
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_idle_between_calls_is_closed() {
    let fs = FsDir::new();
    let yaml = thrift_router(
        "  dtab: /svc => /$/inet/127.0.0.1/1\n",
        "    serverSession:\n      idleTimeMs: 300\n",
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let mut stream = TcpStream::connect(router.addr()).await.unwrap();
    // A call answered (an exception: nothing listens on port 1) restarts
    // the idle time.
    stream.write_all(&framed_call("ping", 1)).await.unwrap();
    let header = within(STEP, "an answer", read_framed(&mut stream)).await;
    assert_eq!(header.seq_id, 1);
    let answered = std::time::Instant::now();
    let mut rest = Vec::new();
    within(STEP, "the idle connection to be closed", async {
        let _ = stream.read_to_end(&mut rest).await;
    })
    .await;
    assert!(rest.is_empty());
    assert!(
        answered.elapsed() >= Duration::from_millis(290),
        "{:?}",
        answered.elapsed()
    );
    router.stop().await;
}

/// Reads one framed binary `TApplicationException`: its method name,
/// sequence id and message.
async fn read_exception(stream: &mut TcpStream) -> (String, i32, String) {
    use namerd_client::thrift::protocol::{Reader, message_type, ttype};
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.unwrap();
    let mut bytes = vec![0; usize::try_from(u32::from_be_bytes(size)).unwrap()];
    stream.read_exact(&mut bytes).await.unwrap();
    let mut r = Reader::new(&bytes);
    let header = r.message_begin().unwrap();
    assert_eq!(header.kind, message_type::EXCEPTION);
    let mut message = String::new();
    r.read_struct(|r, id, kind| {
        if (id, kind) != (1, ttype::STRING) {
            return Ok(false);
        }
        message = r.string()?;
        Ok(true)
    })
    .unwrap();
    (header.name, header.seq_id, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_calls_are_named_by_service_and_method() {
    // Nothing listens on port 1: each answer is an exception that names
    // what the call was named.
    let fs = FsDir::new();
    let yaml = format!(
        "{}{}",
        thrift_router("  label: plain\n  dtab: /svc => /$/inet/127.0.0.1/1\n", ""),
        thrift_router(
            "  label: methods\n  thriftMethodInDst: true\n  dtab: /svc => /$/inet/127.0.0.1/1\n",
            ""
        )
    );
    let router = start_router(&config(&fs, &yaml)).await;
    let cases = [
        (router.servers[0], "echo", "/svc"),
        (router.servers[0], "Echo:echo", "/svc/Echo"),
        (router.servers[1], "echo", "/svc/echo"),
        (router.servers[1], "Echo:echo", "/svc/Echo/echo"),
    ];
    for (addr, method, name) in cases {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&framed_call(method, 41)).await.unwrap();
        let (answered, seq_id, message) =
            within(STEP, "an exception", read_exception(&mut stream)).await;
        assert_eq!((answered.as_str(), seq_id), (method, 41));
        assert!(
            message.contains(&format!("for {name} failed")),
            "{method}: {message}"
        );
    }
    // A method name that cannot be a path segment (an empty one; any
    // other text can, escaped where it must be).
    let mut stream = TcpStream::connect(router.servers[1]).await.unwrap();
    stream.write_all(&framed_call("", 7)).await.unwrap();
    let (_, seq_id, message) = within(STEP, "an exception", read_exception(&mut stream)).await;
    assert_eq!(seq_id, 7);
    assert!(message.contains("cannot be named"), "{message}");
    let m = metrics(router.admin).await;
    assert_eq!(
        figure(&m, "rt/methods/server/127.0.0.1/0/failures/refused"),
        1.0
    );
    router.stop().await;
}
