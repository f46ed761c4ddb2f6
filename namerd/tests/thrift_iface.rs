//! namerd's `io.l5d.thriftNameInterpreter`, in process: thriftpy2 as an
//! independent client (the same trees, addresses, dtabs and delegations as
//! the HTTP API, long polls that follow changes), ThriftMux frames built by
//! hand, our own client, and the minimal thriftpy2 server for the router's
//! tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use integration::thrift_namer::{MinimalServer, ThriftPy};
use namerd_client::thrift::convert::path_to_thrift;
use namerd_client::thrift::framed::read_frame;
use namerd_client::thrift::mux::{self, Message, status};
use namerd_client::thrift::service::{Call, Method, decode_reply, encode_call};
use namerd_client::thrift::types::*;
use namerd_client::thrift::{NamerClient, ThriftError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Namerd {
    api: SocketAddr,
    thrift: SocketAddr,
    disco: tempfile::TempDir,
    running: namerd::server::Running,
}

async fn start() -> Namerd {
    let disco = tempfile::tempdir().unwrap();
    std::fs::write(disco.path().join("web"), "127.0.0.1 8080\n").unwrap();
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /#/io.l5d.fs\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n- kind: io.l5d.thriftNameInterpreter\n  port: 0\n",
        disco.path().display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    let running = namerd::server::start(&config).await.unwrap();
    let thrift = running
        .interface_addrs
        .iter()
        .find(|(kind, _)| *kind == "io.l5d.thriftNameInterpreter")
        .unwrap()
        .1;
    Namerd {
        api: running.api_addrs[0],
        thrift,
        disco,
        running,
    }
}

async fn http(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: namerd\r\nConnection: close\r\nContent-Type: application/dtab\r\nAccept: application/dtab\r\nContent-Length: {}\r\n\r\n{body}",
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
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The HTTP API's bound tree without the addresses (which thrift sends
/// apart).
fn without_addrs(mut tree: Value) -> Value {
    if let Some(map) = tree.as_object_mut() {
        if let Some(bound) = map.get_mut("bound").and_then(Value::as_object_mut) {
            bound.remove("addr");
        }
        for (_, v) in map.iter_mut() {
            if v.is_object() || v.is_array() {
                *v = without_addrs(v.take());
            }
        }
    } else if let Some(items) = tree.as_array_mut() {
        for v in items.iter_mut() {
            *v = without_addrs(v.take());
        }
    }
    tree
}

/// The HTTP API's delegation tree as `[type, path, leaf]` in pre-order,
/// as `client.py` prints the thrift one.
fn delegate_preorder(node: &Value, out: &mut Vec<Value>) {
    let kind = node["type"].as_str().unwrap();
    let path = node["path"].clone();
    let leaf = match kind {
        "leaf" => node["bound"]["id"].clone().max(node["name"].clone()),
        "exception" => node["message"].clone(),
        _ => Value::Null,
    };
    out.push(json!([kind, path, leaf]));
    match kind {
        "delegate" => delegate_preorder(&node["delegate"], out),
        "alt" => node["alt"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(|n| delegate_preorder(n, out)),
        "union" => node["union"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(|b| delegate_preorder(&b["tree"], out)),
        _ => {}
    }
}

trait MaxValue {
    fn max(self, other: Value) -> Value;
}

impl MaxValue for Value {
    /// The one of the two that is set.
    fn max(self, other: Value) -> Value {
        if self.is_null() { other } else { self }
    }
}

async fn py(py: &std::sync::Arc<ThriftPy>, addr: SocketAddr, method: &str, args: Value) -> Value {
    let (py, method) = (py.clone(), method.to_string());
    tokio::task::spawn_blocking(move || py.call(addr, &method, &args))
        .await
        .unwrap()
}

fn ok(answer: &Value) -> &Value {
    answer
        .get("ok")
        .unwrap_or_else(|| panic!("not an answer: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thriftpy2_sees_what_the_http_api_serves() {
    let Some(client) = ThriftPy::new() else {
        return;
    };
    let client = std::sync::Arc::new(client);
    let n = start().await;

    // bind: the same tree.
    let bound = py(
        &client,
        n.thrift,
        "bind",
        json!({"ns": "default", "path": "/svc/web/api"}),
    )
    .await;
    let http_tree = http_json(n.api, "/api/1/bind/default?path=/svc/web/api").await;
    assert_eq!(ok(&bound)["tree"], without_addrs(http_tree), "{bound}");
    assert_eq!(ok(&bound)["ns"], "default");
    let bind_stamp = ok(&bound)["stamp"].as_str().unwrap().to_string();
    assert!(!bind_stamp.is_empty());

    // addr: the same endpoints.
    let addr = py(&client, n.thrift, "addr", json!({"id": "/#/io.l5d.fs/web"})).await;
    let http_addr = http_json(n.api, "/api/1/addr/default?path=/%23/io.l5d.fs/web").await;
    assert_eq!(http_addr["addrs"][0]["port"], 8080);
    assert_eq!(
        ok(&addr)["value"],
        json!({"type": "bound", "addrs": [{"ip": "127.0.0.1", "port": 8080}]}),
        "{addr}"
    );
    let addr_stamp = ok(&addr)["stamp"].as_str().unwrap().to_string();

    // dtab: the same dtab.
    let dtab = py(&client, n.thrift, "dtab", json!({"ns": "default"})).await;
    let (_, http_dtab) = http(n.api, "GET", "/api/1/dtabs/default", "").await;
    assert_eq!(ok(&dtab)["dtab"].as_str().unwrap(), http_dtab.trim());
    let dtab_stamp = ok(&dtab)["stamp"].as_str().unwrap().to_string();

    // delegate: the same explanation.
    let delegated = py(
        &client,
        n.thrift,
        "delegate",
        json!({"ns": "default", "path": "/svc/web"}),
    )
    .await;
    let http_delegated = http_json(n.api, "/api/1/delegate/default?path=/svc/web").await;
    let mut expected = Vec::new();
    delegate_preorder(&http_delegated, &mut expected);
    assert_eq!(
        ok(&delegated)["tree"],
        Value::Array(expected),
        "{delegated}"
    );

    // A poll with a stamp that is not the current one is answered at once.
    let again = py(
        &client,
        n.thrift,
        "bind",
        json!({"ns": "default", "path": "/svc/web/api", "stamp": "00"}),
    )
    .await;
    assert_eq!(ok(&again)["stamp"].as_str().unwrap(), bind_stamp);

    // Long polls wait for a change: a dtab update moves the binding and
    // the dtab; a file rewrite moves the address.
    let bind_poll = client.start_call(
        n.thrift,
        "bind",
        &json!({"ns": "default", "path": "/svc/web/api", "stamp": bind_stamp}),
    );
    let dtab_poll = client.start_call(
        n.thrift,
        "dtab",
        &json!({"ns": "default", "stamp": dtab_stamp}),
    );
    let mut addr_poll = client.start_call(
        n.thrift,
        "addr",
        &json!({"id": "/#/io.l5d.fs/web", "stamp": addr_stamp}),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut bind_poll, mut dtab_poll) = (bind_poll, dtab_poll);
    assert!(
        !bind_poll.is_done() && !dtab_poll.is_done() && !addr_poll.is_done(),
        "long polls wait"
    );
    std::fs::write(n.disco.path().join("web"), "127.0.0.1 8081\n").unwrap();
    let addr = tokio::task::spawn_blocking(move || addr_poll.wait())
        .await
        .unwrap();
    assert_eq!(
        ok(&addr)["value"]["addrs"],
        json!([{"ip": "127.0.0.1", "port": 8081}]),
        "{addr}"
    );
    assert_ne!(ok(&addr)["stamp"].as_str().unwrap(), addr_stamp);
    assert!(!bind_poll.is_done(), "an address change is not a new tree");
    let (status, _) = http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        "/svc => /#/io.l5d.fs; /svc/web => /$/inet/127.0.0.1/9",
    )
    .await;
    assert_eq!(status, 204);
    let bound = tokio::task::spawn_blocking(move || bind_poll.wait())
        .await
        .unwrap();
    assert_eq!(
        ok(&bound)["tree"]["bound"]["id"],
        "/$/inet/127.0.0.1/9",
        "{bound}"
    );
    assert_ne!(ok(&bound)["stamp"].as_str().unwrap(), bind_stamp);
    let http_tree = http_json(n.api, "/api/1/bind/default?path=/svc/web/api").await;
    assert_eq!(ok(&bound)["tree"], without_addrs(http_tree));
    let dtab = tokio::task::spawn_blocking(move || dtab_poll.wait())
        .await
        .unwrap();
    let (_, http_dtab) = http(n.api, "GET", "/api/1/dtabs/default", "").await;
    assert_eq!(ok(&dtab)["dtab"].as_str().unwrap(), http_dtab.trim());

    // An unknown namespace binds through an empty dtab, as in Linkerd.
    let unknown = py(
        &client,
        n.thrift,
        "bind",
        json!({"ns": "nope", "path": "/svc/web"}),
    )
    .await;
    assert_eq!(ok(&unknown)["tree"], json!({"type": "neg"}), "{unknown}");
    let unknown = py(&client, n.thrift, "dtab", json!({"ns": "nope"})).await;
    assert_eq!(ok(&unknown)["dtab"], "", "{unknown}");

    // A malformed dtab is a BindFailure with the parser's message.
    let parse_error = dtab::Dtab::read("/svc =>> /x").unwrap_err().to_string();
    let bad = py(
        &client,
        n.thrift,
        "bind",
        json!({"ns": "default", "path": "/svc/web", "dtab": "/svc =>> /x"}),
    )
    .await;
    assert_eq!(bad["failure"]["type"], "BindFailure", "{bad}");
    assert!(
        bad["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains(&parse_error),
        "{bad}"
    );

    // Garbage on the socket: the connection is closed, namerd goes on.
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0, 0, 0, 5, 1, 2, 3, 4, 5],
    ] {
        let mut raw = TcpStream::connect(n.thrift).await.unwrap();
        raw.write_all(garbage).await.unwrap();
        let mut buf = [0; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    }
    let still = py(&client, n.thrift, "dtab", json!({"ns": "default"})).await;
    assert!(still.get("ok").is_some(), "{still}");

    // The figures count the calls.
    let (_, metrics) = http(n.running.admin_addr, "GET", "/admin/metrics.json", "").await;
    let metrics: Value = serde_json::from_str(&metrics).unwrap();
    let scope = "interface/io.l5d.thriftNameInterpreter";
    assert!(
        metrics[format!("{scope}/bind/requests")].as_u64().unwrap() >= 5,
        "{metrics}"
    );
    assert_eq!(metrics[format!("{scope}/long_polls")], 0.0);
    assert!(
        metrics[format!("{scope}/connects/framed")]
            .as_u64()
            .unwrap()
            >= 10
    );
    n.running.stop().await;
}

/// Reads mux messages off a connection.
async fn next(conn: &mut TcpStream) -> Message {
    let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(conn, 1 << 20, None))
        .await
        .expect("a mux message within 10s")
        .unwrap()
        .expect("the connection is open");
    mux::decode(&frame).unwrap()
}

async fn send(conn: &mut TcpStream, message: Message) {
    conn.write_all(&message.encode()).await.unwrap();
}

fn dispatch(tag: u32, call: &Call) -> Message {
    Message::Tdispatch {
        tag,
        contexts: vec![(b"com.twitter.finagle.Retries".to_vec(), vec![0, 0, 0, 0])],
        dst: String::new(),
        dtab: vec![],
        body: encode_call(i32::try_from(tag).unwrap(), call),
    }
}

fn reply_body(message: Message, tag: u32) -> Vec<u8> {
    match message {
        Message::Rdispatch {
            tag: t,
            status: status::OK,
            body,
            ..
        } if t == tag => body,
        other => panic!("expected Rdispatch OK for tag {tag}, got {other:?}"),
    }
}

fn bind_call(path: &str, stamp: Vec<u8>) -> Call {
    Call::Bind(BindReq {
        dtab: String::new(),
        name: NameRef {
            stamp,
            name: path_to_thrift(&dtab::Path::read(path).unwrap()),
            ns: "default".into(),
        },
        client_id: vec![],
    })
}

fn addr_call(id: &str, stamp: Vec<u8>) -> Call {
    Call::Addr(AddrReq {
        name: NameRef {
            stamp,
            name: path_to_thrift(&dtab::Path::read(id).unwrap()),
            ns: "default".into(),
        },
        client_id: vec![],
    })
}

fn dtab_call(stamp: Vec<u8>) -> Call {
    Call::Dtab(DtabReq {
        stamp,
        ns: "default".into(),
        client_id: vec![],
    })
}

#[tokio::test]
async fn mux_clients_negotiate_multiplex_discard_and_drain() {
    let n = start().await;
    let mut conn = TcpStream::connect(n.thrift).await.unwrap();
    // The handshake: the Rerr probe is echoed, then Tinit gets Rinit.
    let probe = Message::Rerr {
        tag: mux::TINIT_TAG,
        message: mux::CAN_TINIT.into(),
    };
    send(&mut conn, probe.clone()).await;
    assert_eq!(next(&mut conn).await, probe);
    send(
        &mut conn,
        Message::Tinit {
            tag: 1,
            version: 1,
            headers: vec![(b"mux-framer".to_vec(), vec![0, 0, 0, 0])],
        },
    )
    .await;
    assert!(matches!(
        next(&mut conn).await,
        Message::Rinit {
            tag: 1,
            version: 1,
            ..
        }
    ));
    send(&mut conn, Message::Tping { tag: 1 }).await;
    assert_eq!(next(&mut conn).await, Message::Rping { tag: 1 });

    // A bind in a Tdispatch.
    send(&mut conn, dispatch(2, &bind_call("/svc/web", vec![]))).await;
    let bound: Bound =
        decode_reply::<Bound, BindFailure>(&reply_body(next(&mut conn).await, 2), Method::Bind, 2)
            .unwrap()
            .unwrap();
    assert!(
        matches!(&bound.tree.root, BoundNode::Leaf(b) if b.id == path_to_thrift(&dtab::Path::read("/#/io.l5d.fs/web").unwrap()))
    );

    // Current stamps of the dtab and the address.
    send(&mut conn, dispatch(3, &dtab_call(vec![]))).await;
    let dtab = decode_reply::<DtabRef, DtabFailure>(
        &reply_body(next(&mut conn).await, 3),
        Method::Dtab,
        3,
    )
    .unwrap()
    .unwrap();
    send(
        &mut conn,
        dispatch(4, &addr_call("/#/io.l5d.fs/web", vec![])),
    )
    .await;
    let addr =
        decode_reply::<Addr, AddrFailure>(&reply_body(next(&mut conn).await, 4), Method::Addr, 4)
            .unwrap()
            .unwrap();

    // Two long polls on one connection, answered out of order: the later
    // one (the address) first.
    send(&mut conn, dispatch(5, &dtab_call(dtab.stamp.clone()))).await;
    send(
        &mut conn,
        dispatch(6, &addr_call("/#/io.l5d.fs/web", addr.stamp.clone())),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(n.disco.path().join("web"), "127.0.0.1 8082\n").unwrap();
    let moved =
        decode_reply::<Addr, AddrFailure>(&reply_body(next(&mut conn).await, 6), Method::Addr, 6)
            .unwrap()
            .unwrap();
    let AddrVal::Bound(set) = &moved.value else {
        panic!("{moved:?}")
    };
    assert_eq!(set.addresses[0].port, 8082);
    let (status, _) = http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        "/svc => /#/io.l5d.fs; /x => /y",
    )
    .await;
    assert_eq!(status, 204);
    let changed = decode_reply::<DtabRef, DtabFailure>(
        &reply_body(next(&mut conn).await, 5),
        Method::Dtab,
        5,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        dtab::Dtab::read(&changed.dtab).unwrap(),
        dtab::Dtab::read("/svc=>/#/io.l5d.fs;/x=>/y").unwrap()
    );
    assert_ne!(changed.stamp, dtab.stamp);

    // A discarded long poll is dropped and acknowledged.
    send(
        &mut conn,
        dispatch(7, &addr_call("/#/io.l5d.fs/web", moved.stamp.clone())),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(
        &mut conn,
        Message::Tdiscarded {
            which: 7,
            why: "gave up".into(),
        },
    )
    .await;
    assert_eq!(next(&mut conn).await, Message::Rdiscarded { tag: 7 });

    // An unknown method (Finagle's upgrade probe) is a
    // TApplicationException.
    let mut probe = namerd_client::thrift::protocol::Writer::new();
    probe.message_begin("__can__finagle__trace__v3__", 1, 8);
    probe.field_stop();
    send(
        &mut conn,
        Message::Tdispatch {
            tag: 8,
            contexts: vec![],
            dst: String::new(),
            dtab: vec![],
            body: probe.into_bytes(),
        },
    )
    .await;
    let e = decode_reply::<DtabRef, DtabFailure>(
        &reply_body(next(&mut conn).await, 8),
        Method::Dtab,
        8,
    );
    assert!(e.is_err());

    // namerd stops: Tdrain, and the waiting long poll is nacked.
    send(&mut conn, dispatch(9, &dtab_call(changed.stamp.clone()))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(n.running.stop());
    let mut saw = Vec::new();
    for _ in 0..2 {
        saw.push(next(&mut conn).await);
    }
    assert!(saw.contains(&Message::Tdrain { tag: 1 }), "{saw:?}");
    assert!(
        saw.iter().any(|m| matches!(
            m,
            Message::Rdispatch {
                tag: 9,
                status: status::NACK,
                ..
            }
        )),
        "{saw:?}"
    );
    send(&mut conn, Message::Rdrain { tag: 1 }).await;
    let mut buf = [0; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn our_client_binds_polls_and_reports_failures() {
    let n = start().await;
    let client = NamerClient::new(n.thrift.to_string()).with_timeout(Duration::from_secs(5));
    let Call::Bind(req) = bind_call("/svc/web", vec![]) else {
        unreachable!()
    };
    let first = client.bind(req.clone()).await.unwrap();
    let tree = first.tree.to_name_tree().unwrap();
    let dtab::NameTree::Leaf(leaf) = tree else {
        panic!("{tree:?}")
    };
    assert_eq!(leaf.id_path().unwrap().show(), "/#/io.l5d.fs/web");
    let mut poll = req.clone();
    poll.name.stamp = first.stamp.clone();
    let waiting = tokio::spawn(async move {
        let client = NamerClient::new(n.thrift.to_string());
        client.bind(poll).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    let (status, _) = http(
        n.api,
        "PUT",
        "/api/1/dtabs/default",
        "/svc => /$/inet/127.0.0.1/7",
    )
    .await;
    assert_eq!(status, 204);
    let next = waiting.await.unwrap().unwrap();
    assert_ne!(next.stamp, first.stamp);
    let dtab::NameTree::Leaf(leaf) = next.tree.to_name_tree().unwrap() else {
        panic!()
    };
    assert_eq!(leaf.id_path().unwrap().show(), "/$/inet/127.0.0.1/7");

    let mut bad = req.clone();
    bad.dtab = "/a => ".into();
    let e = client.bind(bad).await.unwrap_err();
    assert!(
        matches!(&e, ThriftError::Failed { method: "bind", reason, .. } if reason.contains("invalid dtab")),
        "{e}"
    );
    let mut empty = req;
    empty.name.name = vec![];
    let e = client.bind(empty).await.unwrap_err();
    assert!(e.to_string().contains("empty path"), "{e}");
    n.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimal_server_serves_our_client() {
    let state = json!({
        "trees": {"default /svc/web": {"type": "alt", "alt": [
            {"type": "leaf", "id": "/#/io.l5d.fs/web", "residual": "/api"},
            {"type": "neg"}
        ]}},
        "addrs": {"/#/io.l5d.fs/web": [["127.0.0.1", 8080]]},
        "dtabs": {"default": "/svc=>/#/io.l5d.fs"}
    });
    let Some(server) = MinimalServer::start(&state) else {
        return;
    };
    let client = NamerClient::new(server.addr.to_string());
    let dtab = client
        .dtab(DtabReq {
            ns: "default".into(),
            ..DtabReq::default()
        })
        .await
        .unwrap();
    assert_eq!(dtab.dtab, "/svc=>/#/io.l5d.fs");
    let Call::Bind(req) = bind_call("/svc/web", vec![]) else {
        unreachable!()
    };
    let bound = client.bind(req).await.unwrap();
    let tree = bound.tree.to_name_tree().unwrap();
    let dtab::NameTree::Alt(alts) = tree else {
        panic!("{tree:?}")
    };
    assert_eq!(alts.len(), 2);
    let Call::Addr(areq) = addr_call("/#/io.l5d.fs/web", vec![]) else {
        unreachable!()
    };
    let addr = client.addr(areq.clone()).await.unwrap();
    let mut poll = areq;
    poll.name.stamp = addr.stamp.clone();
    let addr_server = server.addr;
    let waiting =
        tokio::spawn(async move { NamerClient::new(addr_server.to_string()).addr(poll).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    let mut moved = state.clone();
    moved["addrs"]["/#/io.l5d.fs/web"] = json!([["127.0.0.1", 9090]]);
    server.update(&moved);
    let next = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let AddrVal::Bound(set) = next.value else {
        panic!()
    };
    assert_eq!(set.addresses[0].socket_addr().unwrap().port(), 9090);
    let Call::Bind(unknown) = bind_call("/svc/other", vec![]) else {
        unreachable!()
    };
    let e = client.bind(unknown).await.unwrap_err();
    assert!(
        matches!(&e, ThriftError::Failed { reason, .. } if reason.contains("unknown name")),
        "{e}"
    );
}
