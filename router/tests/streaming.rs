//! Bodies stream through the router in both directions, with back-pressure
//! instead of buffering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use support::{
    Backend, FsDir, STEP, channel_body, client, config, mode, request, start_router, within,
};

const ROUTER: &str = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

const CHUNK: usize = 256 * 1024;
const TOTAL: usize = 50 * 1024 * 1024;

/// What the client has handed to the request body so far.
#[derive(Default)]
struct Sent {
    bytes: usize,
    sum: u64,
}

impl Sent {
    fn add(&mut self, data: &Bytes) {
        self.bytes += data.len();
        self.sum = data
            .iter()
            .fold(self.sum, |s, b| s.wrapping_add(u64::from(*b)));
    }
}

fn chunk(i: usize) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; CHUNK])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_upload_streams_through_with_back_pressure() {
    let backend = Backend::start("sink").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let (tx, body) = channel_body(1);
    let upload = request(router.addr(), "web", "/upload")
        .method(Method::POST)
        .header(mode::HEADER, mode::UPLOAD)
        .body(body)
        .unwrap();
    let response = tokio::spawn(client.request(upload));

    // The backend answers once it has the first chunk; the client sees that
    // answer with 50 MB still to send, so nothing waited for the whole body.
    let mut sent = Sent::default();
    tx.send(Frame::data(chunk(0))).await.unwrap();
    sent.add(&chunk(0));
    let response = within(STEP, "the response head while still sending", response)
        .await
        .unwrap()
        .expect("response head");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sent.bytes, CHUNK);

    // The backend now holds the rest of the body: the client must soon be
    // held back by flow control. Buffering the body would let all 50 MB in.
    let mut i = 1;
    let stalled = loop {
        if sent.bytes >= TOTAL {
            break false;
        }
        let data = chunk(i);
        // A send that times out is dropped unsent; it is retried below.
        match tokio::time::timeout(Duration::from_secs(1), tx.send(Frame::data(data.clone()))).await
        {
            Ok(result) => result.unwrap(),
            Err(_) => break true,
        }
        sent.add(&data);
        i += 1;
    };
    assert!(
        stalled,
        "the router accepted all {TOTAL} bytes while the backend read none"
    );

    // Let the backend read on, and send the rest.
    backend.release();
    within(STEP, "the rest of the upload", async {
        while sent.bytes < TOTAL {
            let data = chunk(i);
            tx.send(Frame::data(data.clone())).await.unwrap();
            sent.add(&data);
            i += 1;
        }
    })
    .await;
    drop(tx);

    let body = within(STEP, "the upload report", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("received {TOTAL} {}\n", sent.sum)
    );
    router.stop().await;
}

#[tokio::test]
async fn a_chunked_response_streams_before_it_is_complete() {
    let backend = Backend::start("streamer").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let streaming = request(router.addr(), "web", "/events")
        .header(mode::HEADER, mode::STREAM)
        .body(support::empty())
        .unwrap();
    let response = within(STEP, "the response head", client.request(streaming))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-length").is_none());
    let mut body = response.into_body();

    // The backend holds the rest until released: the first chunk must
    // arrive on its own.
    let first = within(STEP, "the first chunk", body.frame())
        .await
        .expect("a frame")
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");

    backend.release();
    let rest = within(STEP, "the rest", body.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "rest\n");
    router.stop().await;
}
