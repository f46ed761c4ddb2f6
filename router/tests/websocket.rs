//! `Upgrade` requests (WebSocket-style): the `101` and then raw bytes both
//! ways through the router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use http::header::{CONNECTION, HOST, UPGRADE};
use hyper_util::rt::TokioIo;
use support::{Backend, FsDir, STEP, config, empty, start_router, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The router's flat metrics.
async fn metrics(router: &support::RunningRouter) -> serde_json::Value {
    let reply = support::get(
        &support::client(),
        router.admin,
        "admin",
        "/admin/metrics.json",
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    serde_json::from_slice(&reply.body).unwrap()
}

#[tokio::test]
async fn upgrade_gets_101_and_bytes_flow_both_ways() {
    let backend = Backend::start("ws").await;
    let fs = FsDir::new();
    fs.point("chat", &[&backend]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
",
    ))
    .await;

    let stream = TcpStream::connect(router.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection.with_upgrades());
    let upgrade = http::Request::get("/socket")
        .header(HOST, "chat")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(empty())
        .unwrap();
    let mut response = within(STEP, "the 101", sender.send_request(upgrade))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()[UPGRADE], "websocket");
    assert_eq!(response.headers()["x-backend"], "ws");
    let upgraded = within(STEP, "the upgrade", hyper::upgrade::on(&mut response))
        .await
        .unwrap();
    let mut io = TokioIo::new(upgraded);

    // Server to client first, unprompted.
    let greeting = b"hello from ws\n";
    let mut buf = vec![0u8; greeting.len()];
    within(STEP, "the greeting", io.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(buf, greeting);

    // Then echoes, small and large.
    for message in [b"ping".to_vec(), vec![7u8; 256 * 1024]] {
        io.write_all(&message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        within(STEP, "the echo", io.read_exact(&mut echoed))
            .await
            .unwrap();
        assert_eq!(echoed, message);
    }
    // The tunnel is the client's one connection, open.
    let client = "rt/http/client/#/io.l5d.fs/chat";
    let figures = metrics(&router).await;
    assert_eq!(figures[format!("{client}/connects")], 1, "{figures:#}");
    assert_eq!(figures[format!("{client}/connections")].as_f64(), Some(1.0));

    // Closing our side ends the tunnel: the backend closes, we read EOF.
    io.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(STEP, "the end of the tunnel", io.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(backend.requests(), 1);
    // Then the connection is counted closed.
    let mut open = None;
    for _ in 0..100 {
        open = metrics(&router).await[format!("{client}/connections")].as_f64();
        if open == Some(0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(open, Some(0.0));
    router.stop().await;
}
