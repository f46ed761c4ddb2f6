//! The `io.l5d.mesh` interface driven by an independent gRPC client
//! (Python's grpcio, `integration::mesh`): it must see the same trees,
//! replicas, dtabs and delegate trees as the `/api/1` HTTP API of the same
//! in-process namerd, streams must follow dtab and endpoint changes, and
//! bad requests must be refused with a status that says what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use integration::mesh::{Answer, Event, PyMeshClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Namerd {
    api: SocketAddr,
    mesh: SocketAddr,
    admin: SocketAddr,
    disco: tempfile::TempDir,
    running: namerd::server::Running,
}

async fn start(extra: &str) -> Namerd {
    let disco = tempfile::tempdir().unwrap();
    std::fs::write(disco.path().join("web"), "127.0.0.1 8080\n").unwrap();
    std::fs::write(disco.path().join("web2"), "127.0.0.1 9090\n").unwrap();
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /#/io.l5d.fs\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n- kind: io.l5d.mesh\n  port: 0\n{extra}",
        disco.path().display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    let mesh = running
        .interface_addrs
        .iter()
        .find(|(kind, _)| *kind == "io.l5d.mesh")
        .map(|(_, addr)| *addr)
        .unwrap();
    Namerd {
        api: running.api_addrs[0],
        mesh,
        admin: running.admin_addr,
        disco,
        running,
    }
}

/// One HTTP/1.1 request: the status and the body.
async fn http(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: namerd\r\nConnection: close\r\nAccept: application/dtab\r\nContent-Type: application/dtab\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

async fn http_json(addr: SocketAddr, target: &str) -> Value {
    let (status, body) = http(addr, "GET", target, "").await;
    assert_eq!(status, 200, "GET {target}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The HTTP API's JSON without the addresses inside bound names, which the
/// mesh API carries separately (Resolver).
fn without_addrs(mut doc: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(bound)) = map.get_mut("bound") {
                    bound.remove("addr");
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut doc);
    doc
}

fn ok(answer: Answer) -> Value {
    match answer {
        Answer::Ok(v) => v,
        Answer::Err { code, details } => panic!("the call failed: {code}: {details}"),
    }
}

fn refused(answer: Answer, want_code: &str, want: &str) {
    match answer {
        Answer::Err { code, details } => {
            assert_eq!(code, want_code, "{details}");
            assert!(details.contains(want), "{details:?} should say {want:?}");
        }
        Answer::Ok(v) => panic!("answered {v} where {want_code} was due"),
    }
}

async fn msg(py: &mut PyMeshClient, tag: &str) -> Value {
    match py.next(tag).await {
        Event::Msg(v) => v,
        Event::End { code, details } => panic!("{tag} ended: {code}: {details}"),
    }
}

#[tokio::test]
async fn answers_match_the_http_api() {
    let n = start("").await;
    let Some(mut py) = PyMeshClient::start(n.mesh) else {
        return;
    };
    // Bound trees, with and without a request's own dtab.
    let tree = ok(py
        .call(
            "Interpreter/GetBoundTree",
            json!({"root": "/default", "name": "/svc/web/api"}),
        )
        .await);
    assert_eq!(
        tree,
        json!({"type": "leaf", "bound": {"id": "/#/io.l5d.fs/web", "path": "/api"}})
    );
    let http_tree = http_json(n.api, "/api/1/bind/default?path=/svc/web/api").await;
    assert_eq!(tree, without_addrs(http_tree));
    let local = "/svc/web=>/#/io.l5d.fs/web2 | /#/io.l5d.fs/web";
    let tree = ok(py
        .call(
            "Interpreter/GetBoundTree",
            json!({"root": "/default", "name": "/svc/web", "dtab": local}),
        )
        .await);
    let http_tree = http_json(
        n.api,
        "/api/1/bind/default?path=/svc/web&dtab=/svc/web=%3E/%23/io.l5d.fs/web2%7C/%23/io.l5d.fs/web",
    )
    .await;
    assert_eq!(tree, without_addrs(http_tree));
    assert_eq!(tree["bound"]["id"], "/#/io.l5d.fs/web2", "{tree}");

    // Replicas of a bound id, as /api/1/addr.
    let replicas = ok(py
        .call("Resolver/GetReplicas", json!({"id": "/#/io.l5d.fs/web"}))
        .await);
    assert_eq!(
        replicas,
        json!({"type": "bound", "addrs": [{"ip": "127.0.0.1", "port": 8080, "meta": {}}], "meta": {}})
    );
    let http_addr = http_json(n.api, "/api/1/addr/default?path=/%23/io.l5d.fs/web").await;
    assert_eq!(replicas, http_addr);
    let missing = ok(py
        .call(
            "Resolver/GetReplicas",
            json!({"id": "/#/io.l5d.fs/missing"}),
        )
        .await);
    assert_eq!(missing, json!({"type": "neg"}));

    // The stored dtab, with its version as the HTTP API's ETag.
    let dtab = ok(py
        .call("Delegator/GetDtab", json!({"root": "/default"}))
        .await);
    let (_, text) = http(n.api, "GET", "/api/1/dtabs/default", "").await;
    assert_eq!(dtab["dtab"], text.trim());
    assert!(!dtab["version"].as_str().unwrap().is_empty(), "{dtab}");

    // Delegate trees, found and not.
    for name in ["/svc/web", "/svc/missing"] {
        let tree = ok(py
            .call(
                "Delegator/GetDelegateTree",
                json!({"root": "/default", "tree": name}),
            )
            .await);
        let http_tree = http_json(n.api, &format!("/api/1/delegate/default?path={name}")).await;
        assert_eq!(tree, without_addrs(http_tree), "{name}");
    }
    // The deprecated stream gives one tree, then ends.
    let tag = py.stream(
        "Delegator/StreamDelegateTree",
        json!({"root": "/default", "tree": "/svc/web"}),
    );
    assert_eq!(msg(&mut py, &tag).await["type"], "delegate");
    assert!(matches!(py.next(&tag).await, Event::End { code, .. } if code == "OK"));

    // An unknown namespace: no dtab, and names bind as through an empty
    // dtab (to a negative tree), as in Linkerd's namerd.
    refused(
        py.call("Delegator/GetDtab", json!({"root": "/nope"})).await,
        "NOT_FOUND",
        "namespace nope does not exist",
    );
    let tag = py.stream("Delegator/StreamDtab", json!({"root": "/nope"}));
    assert!(
        matches!(py.next(&tag).await, Event::End { code, .. } if code == "NOT_FOUND"),
        "a stream of a missing dtab ends with NOT_FOUND"
    );
    let neg = ok(py
        .call(
            "Interpreter/GetBoundTree",
            json!({"root": "/nope", "name": "/svc/web"}),
        )
        .await);
    assert_eq!(neg, json!({"type": "neg"}));

    // Calls are counted by method in the metrics tree.
    let metrics = http_json(n.admin, "/admin/metrics.json").await;
    assert_eq!(
        metrics["interface/io.l5d.mesh/rpc/Interpreter/GetBoundTree/requests"], 3,
        "{metrics}"
    );
    assert_eq!(
        metrics["interface/io.l5d.mesh/rpc/Delegator/GetDtab/failures"],
        1
    );
    n.running.stop().await;
}

#[tokio::test]
async fn streams_follow_dtab_updates_endpoint_changes_and_stop() {
    let n = start("").await;
    let Some(mut py) = PyMeshClient::start(n.mesh) else {
        return;
    };
    let trees = py.stream(
        "Interpreter/StreamBoundTree",
        json!({"root": "/default", "name": "/svc/web"}),
    );
    let dtabs = py.stream("Delegator/StreamDtab", json!({"root": "/default"}));
    let replicas = py.stream("Resolver/StreamReplicas", json!({"id": "/#/io.l5d.fs/web"}));
    let first = msg(&mut py, &trees).await;
    assert_eq!(first["bound"]["id"], "/#/io.l5d.fs/web", "{first}");
    let first_dtab = msg(&mut py, &dtabs).await;
    assert_eq!(first_dtab["dtab"], "/svc=>/#/io.l5d.fs");
    let first_replicas = msg(&mut py, &replicas).await;
    assert_eq!(first_replicas["addrs"][0]["port"], 8080);
    let metrics = http_json(n.admin, "/admin/metrics.json").await;
    assert_eq!(
        metrics["interface/io.l5d.mesh/streams/open"], 3.0,
        "{metrics}"
    );

    // A dtab update through the HTTP API reaches both streams.
    let (status, body) = http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        "/svc => /#/io.l5d.fs; /svc/web => /#/io.l5d.fs/web2",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let updated = msg(&mut py, &trees).await;
    assert_eq!(
        updated,
        without_addrs(http_json(n.api, "/api/1/bind/default?path=/svc/web").await)
    );
    assert_eq!(updated["bound"]["id"], "/#/io.l5d.fs/web2");
    let updated_dtab = msg(&mut py, &dtabs).await;
    assert_eq!(
        updated_dtab["dtab"],
        "/svc=>/#/io.l5d.fs;/svc/web=>/#/io.l5d.fs/web2"
    );
    assert_ne!(updated_dtab["version"], first_dtab["version"]);

    // An endpoint change in the io.l5d.fs file reaches the replica stream.
    std::fs::write(
        n.disco.path().join("web"),
        "127.0.0.1 8081\n127.0.0.1 8082\n",
    )
    .unwrap();
    let changed = msg(&mut py, &replicas).await;
    assert_eq!(
        changed,
        http_json(n.api, "/api/1/addr/default?path=/%23/io.l5d.fs/web").await
    );
    assert_eq!(changed["addrs"].as_array().unwrap().len(), 2, "{changed}");

    // A cancelled stream is closed on the server.
    py.cancel(&replicas);
    let closed = async {
        loop {
            let metrics = http_json(n.admin, "/admin/metrics.json").await;
            if metrics["interface/io.l5d.mesh/streams/open"] == 2.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), closed)
        .await
        .expect("the cancelled stream was not closed on the server");

    // Stopping namerd ends the open streams so that routers reconnect.
    n.running.stop().await;
    for tag in [&trees, &dtabs] {
        match py.next(tag).await {
            Event::End { code, details } => {
                assert_eq!(code, "UNAVAILABLE", "{details}");
                assert!(details.contains("stopping"), "{details}");
            }
            Event::Msg(m) => panic!("{tag} sent {m} instead of ending"),
        }
    }
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong_and_the_codec_reads_and_shows() {
    let n = start("localDtabLimits:\n  maxDentries: 2\n").await;
    let Some(mut py) = PyMeshClient::start(n.mesh) else {
        return;
    };
    let bind = "Interpreter/GetBoundTree";
    refused(
        py.call(bind, json!({"name": "/svc/web"})).await,
        "INVALID_ARGUMENT",
        "BindReq.root: missing",
    );
    refused(
        py.call(bind, json!({"root": "/a/b", "name": "/svc/web"}))
            .await,
        "INVALID_ARGUMENT",
        "root: `/a/b` must have exactly one element",
    );
    // A root that is not UTF-8 (0xff), written as proto JSON.
    refused(
        py.call(
            bind,
            json!({"root": {"elems": ["/w=="]}, "name": "/svc/web"}),
        )
        .await,
        "INVALID_ARGUMENT",
        "the namespace is not UTF-8",
    );
    refused(
        py.call(bind, json!({"root": "/default"})).await,
        "INVALID_ARGUMENT",
        "BindReq.name: missing or empty",
    );
    // A dentry without a destination.
    let no_dst = json!({"dentries": [
        {"prefix": {"elems": [{"label": "c3Zj"}]}, "dst": {"leaf": {"id": {"elems": ["YQ=="]}}}},
        {"prefix": {"elems": [{"label": "c3Zj"}]}}
    ]});
    refused(
        py.call(
            bind,
            json!({"root": "/default", "name": "/svc/web", "dtab": no_dst}),
        )
        .await,
        "INVALID_ARGUMENT",
        "BindReq.dtab.dentries[1]: dst is missing",
    );
    // An empty label inside a path.
    refused(
        py.call(
            bind,
            json!({"root": "/default", "name": {"elems": ["c3Zj", ""]}}),
        )
        .await,
        "INVALID_ARGUMENT",
        "BindReq.name: elems[1] is empty",
    );
    // Over localDtabLimits, as the HTTP API's dtab parameter.
    refused(
        py.call(
            bind,
            json!({"root": "/default", "name": "/svc/web", "dtab": "/a=>/b;/c=>/d;/e=>/f"}),
        )
        .await,
        "INVALID_ARGUMENT",
        "over the limit of 2 (localDtabLimits.maxDentries)",
    );
    // A stream refuses the same way.
    let tag = py.stream("Interpreter/StreamBoundTree", json!({"root": "/default"}));
    assert!(matches!(py.next(&tag).await, Event::End { code, .. } if code == "INVALID_ARGUMENT"));
    refused(
        py.call("Resolver/GetReplicas", json!({})).await,
        "INVALID_ARGUMENT",
        "ReplicasReq.id: missing or empty",
    );
    refused(
        py.call(
            "Delegator/GetDelegateTree",
            json!({"root": "/default", "tree": "/a | /b"}),
        )
        .await,
        "INVALID_ARGUMENT",
        "only a single name",
    );

    // The Codec service.
    let text = "/svc=>/#/io.l5d.fs;/svc/*/web=>/a | /b";
    let read = ok(py.call("Codec/ReadDtab", json!({"text": text})).await);
    assert_eq!(read, "/svc=>/#/io.l5d.fs;/svc/*/web=>/a | /b");
    let shown = ok(py.call("Codec/ShowDtab", json!({"dtab": text})).await);
    let (_, http_shown) = {
        // The same dtab, stored and read back as text through the HTTP API.
        let (status, body) = http(n.api, "PUT", "/api/1/dtabs/codec", text).await;
        assert_eq!(status, 204, "{body}");
        http(n.api, "GET", "/api/1/dtabs/codec", "").await
    };
    assert_eq!(shown, http_shown.trim());
    refused(
        py.call("Codec/ReadDtab", json!({"text": "/svc =>> /x"}))
            .await,
        "INVALID_ARGUMENT",
        "ReadDtabReq.text: not a dtab",
    );
    assert_eq!(
        ok(py.call("Codec/ReadPath", json!({"text": "/a/b.c"})).await),
        "/a/b.c"
    );
    refused(
        py.call("Codec/ReadPath", json!({"text": "a/b"})).await,
        "INVALID_ARGUMENT",
        "ReadPathReq.text: not a path",
    );
    assert_eq!(
        ok(py.call("Codec/ShowPath", json!({"path": "/x/y"})).await),
        "/x/y"
    );
    n.running.stop().await;
}

#[tokio::test]
async fn tls_serves_h2_by_alpn() {
    let pki = integration::pki::Pki::new("mesh");
    let server = pki.leaf("namerd", &["namerd.test"]);
    let disco = tempfile::tempdir().unwrap();
    std::fs::write(disco.path().join("web"), "127.0.0.1 8080\n").unwrap();
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /#/io.l5d.fs\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.mesh\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\n",
        disco.path().display(),
        server.cert.display(),
        server.key.display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    let (kind, mesh) = running.interface_addrs[0];
    assert_eq!(kind, "io.l5d.mesh");
    let Some(mut py) = PyMeshClient::start_tls(mesh, pki.ca(), "namerd.test") else {
        return;
    };
    let tree = ok(py
        .call(
            "Interpreter/GetBoundTree",
            json!({"root": "/default", "name": "/svc/web"}),
        )
        .await);
    assert_eq!(tree["bound"]["id"], "/#/io.l5d.fs/web");
    // A client that speaks plain h2 to the TLS port gets nowhere.
    let Some(mut plain) = PyMeshClient::start(mesh) else {
        return;
    };
    let answer = plain
        .call("Delegator/GetDtab", json!({"root": "/default"}))
        .await;
    assert!(
        matches!(&answer, Answer::Err { code, .. } if code == "UNAVAILABLE"),
        "{answer:?}"
    );
    running.stop().await;
}
