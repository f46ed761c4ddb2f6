//! The h2 router: a gRPC-style bidirectional stream with `te: trailers` and
//! response trailers, over HTTP/2 with prior knowledge on both sides.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{Backend, Body, FsDir, STEP, channel_body, config, start_router, within};
use tokio::net::TcpStream;

const ROUTER: &str = "- protocol: h2
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

async fn h2_connect(addr: SocketAddr) -> http2::SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

fn grpc_request(authority: &str, body: Body) -> http::Request<Body> {
    http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{authority}/echo.Echo/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap()
}

async fn next_data(body: &mut Incoming) -> Bytes {
    let frame = within(STEP, "a response data frame", body.frame())
        .await
        .expect("a frame, not the end")
        .unwrap();
    frame.into_data().expect("data, not trailers")
}

#[tokio::test]
async fn grpc_bidi_stream_with_trailers_passes_through() {
    let backend = Backend::start("grpc").await;
    let fs = FsDir::new();
    fs.point("echo.svc", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let mut sender = h2_connect(router.addr()).await;

    let (tx, body) = channel_body(1);
    let call = sender.send_request(grpc_request("echo.svc", body));
    tx.send(Frame::data(Bytes::from_static(b"\0\0\0\0\x05one!!")))
        .await
        .unwrap();
    let response = within(STEP, "the response head", call).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let headers = response.headers().clone();
    assert_eq!(headers["x-backend"], "grpc");
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["x-seen-te"], "trailers");
    assert_eq!(headers["x-seen-l5d-dst-service"], "/svc/echo.svc");
    assert_eq!(headers["x-seen-l5d-dst-client"], "/#/io.l5d.fs/echo.svc");
    let mut body = response.into_body();

    // Each message comes back while the request is still open.
    assert_eq!(next_data(&mut body).await, "\0\0\0\0\x05one!!");
    tx.send(Frame::data(Bytes::from_static(b"\0\0\0\0\x03two")))
        .await
        .unwrap();
    assert_eq!(next_data(&mut body).await, "\0\0\0\0\x03two");
    let big = Bytes::from(vec![9u8; 200 * 1024]);
    tx.send(Frame::data(big.clone())).await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < big.len() {
        echoed.extend_from_slice(&next_data(&mut body).await);
    }
    assert_eq!(echoed, big);

    // Half-close: the backend ends with trailers.
    drop(tx);
    let mut trailers = None;
    within(STEP, "the trailers", async {
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            assert!(frame.is_trailers(), "data after the echo: {frame:?}");
            trailers = frame.into_trailers().ok();
        }
    })
    .await;
    let trailers = trailers.expect("response trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "echoed");
    router.stop().await;
}

#[tokio::test]
async fn h2_keeps_the_authority_and_carries_dtab_headers() {
    let backend = Backend::start("grpc").await;
    let other = Backend::start("other").await;
    let fs = FsDir::new();
    fs.point("echo.svc", &[&backend]);
    fs.point("other", &[&other]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let mut sender = h2_connect(router.addr()).await;

    let mut request = grpc_request("echo.svc", support::full(Bytes::from_static(b"x")));
    request.headers_mut().insert(
        "l5d-dtab",
        "/svc/echo.svc => /#/io.l5d.fs/other".parse().unwrap(),
    );
    let response = within(STEP, "the response", sender.send_request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-backend"], "other");
    assert_eq!(
        response.headers()["x-seen-l5d-ctx-dtab"],
        "/svc/echo.svc=>/#/io.l5d.fs/other"
    );
    assert!(response.headers().get("x-seen-l5d-dtab").is_none());
    // The service is named by :authority and the backend gets the same
    // :authority, not the address the router picked.
    assert_eq!(
        response
            .headers()
            .get("x-seen-authority")
            .map(|v| v.to_str().unwrap()),
        Some("echo.svc"),
        "the h2 :authority was rewritten on the way to the backend"
    );
    router.stop().await;
}

#[tokio::test]
async fn h2_unknown_name_is_a_502_with_l5d_err() {
    let fs = FsDir::new();
    let router = start_router(&config(&fs, ROUTER)).await;
    let mut sender = h2_connect(router.addr()).await;
    let response = within(
        STEP,
        "the response",
        sender.send_request(grpc_request("nope.svc", support::empty())),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let err = support::url_decode(response.headers()["l5d-err"].to_str().unwrap());
    assert!(err.contains("/svc/nope.svc"), "{err}");
    router.stop().await;
}

/// A burst of requests to an endpoint the router has no connection to yet
/// opens one connection, which they all share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_a_new_endpoint_opens_one_connection() {
    let backend = Backend::start("grpc").await;
    let fs = FsDir::new();
    fs.point("echo.svc", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let sender = h2_connect(router.addr()).await;
    let burst = (0..50).map(|_| {
        let mut sender = sender.clone();
        async move {
            let request = grpc_request("echo.svc", support::full(Bytes::from_static(b"x")));
            sender.send_request(request).await.unwrap().status()
        }
    });
    let statuses = within(STEP, "the burst", futures_util::future::join_all(burst)).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(backend.connections(), 1);
    router.stop().await;
}
