//! Connections over time: keep-alive on both sides, and a graceful stop
//! that lets in-flight requests finish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::HOST;
use hyper_util::rt::TokioIo;
use support::{
    Backend, FsDir, STEP, client, collect, config, empty, get, mode, start_router, within,
};
use tokio::net::TcpStream;

const ROUTER: &str = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

#[tokio::test]
async fn many_requests_share_one_client_connection() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;

    let stream = TcpStream::connect(router.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    for i in 0..200 {
        within(STEP, "the connection to be ready", sender.ready())
            .await
            .unwrap_or_else(|e| panic!("the router closed the connection after {i} requests: {e}"));
        let request = http::Request::get(format!("/n/{i}"))
            .header(HOST, "web")
            .body(empty())
            .unwrap();
        let response = within(STEP, "a response", sender.send_request(request))
            .await
            .unwrap();
        let reply = collect(response).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.seen_uri(), format!("/n/{i}"));
    }
    assert!(!connection.is_finished());
    assert_eq!(backend.requests(), 200);
    // The router keeps its own connections to the backend alive too.
    assert!(
        backend.connections() <= 10,
        "{} backend connections for 200 sequential requests",
        backend.connections()
    );
    router.stop().await;
}

#[tokio::test]
async fn stop_lets_an_in_flight_request_finish_and_refuses_new_connections() {
    let backend = Backend::start("slow").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let addr = router.addr();
    let client = client();

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { get(&client, addr, "web", "/slow", &[(mode::HEADER, mode::GATE)]).await }
    });
    backend.wait_received().await;

    let mut stopping = tokio::spawn(router.stop());
    // The stop waits for the request (the grace period is 5 s) ...
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut stopping)
            .await
            .is_err(),
        "stop() returned with a request in flight"
    );
    // ... while no longer taking connections.
    within(
        Duration::from_secs(5),
        "connections to be refused while stopping",
        async {
            while TcpStream::connect(addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await;

    backend.release();
    let reply = within(STEP, "the in-flight request", in_flight)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "slow");
    within(
        Duration::from_secs(3),
        "stop() once the request is done",
        stopping,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn stop_right_after_start_returns_at_once() {
    let fs = FsDir::new();
    let router = start_router(&config(&fs, ROUTER)).await;
    let addr = router.addr();
    // Nothing is in flight, so nothing should wait for the 5 s grace period.
    let started = Instant::now();
    within(STEP, "stop()", router.stop()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop() with nothing in flight took {:?}",
        started.elapsed()
    );
    assert!(TcpStream::connect(addr).await.is_err());
}
