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

    // Closing our side ends the tunnel: the backend closes, we read EOF.
    io.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(STEP, "the end of the tunnel", io.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(backend.requests(), 1);
    router.stop().await;
}
