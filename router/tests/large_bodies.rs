//! Large `Content-Length` answers, which the router moves from the upstream
//! socket to the client's with `splice(2)` when both are plain TCP: every
//! byte arrives in order, the upstream connection is reused afterwards, a
//! body cut short upstream is cut short for the client, and a client that
//! hangs up mid-body closes the upstream connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use support::{
    FsDir, STEP, client, config, empty, get, raw_backend, read_head, request, start_router, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUTER: &str = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

const LARGE: usize = 3 * 1024 * 1024;
const PIECE: usize = 64 * 1024;

/// The body's byte at `at`: a pattern that shows any byte lost, repeated
/// or out of place.
fn byte_at(at: usize) -> u8 {
    ((at * 7 + at / 251) % 251) as u8
}

fn large_body(len: usize) -> Vec<u8> {
    (0..len).map(byte_at).collect()
}

/// A backend with large answers. `/large` is written in pieces with
/// pauses, so that the router also waits on the upstream midway;
/// `/truncated` promises 1 MiB and closes after 300 KiB; `/held` sends
/// 100 KiB of 1 MiB and waits for the router to close the connection,
/// counted in the second counter.
async fn large_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let closed_by_router = Arc::new(AtomicUsize::new(0));
    let closed = closed_by_router.clone();
    let (addr, connections) = raw_backend(move |mut stream| {
        let closed = closed.clone();
        async move {
            let mut pending = Vec::new();
            while let Some(head) = read_head(&mut stream, &mut pending).await {
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let (promised, sent) = match path.as_str() {
                    "/large" => (LARGE, LARGE),
                    "/truncated" => (1024 * 1024, 300 * 1024),
                    "/held" => (1024 * 1024, 100 * 1024),
                    _ => (0, 0),
                };
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {promised}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let body = large_body(sent);
                for (i, piece) in body.chunks(PIECE).enumerate() {
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    if i % 8 == 7 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                match path.as_str() {
                    "/truncated" => return,
                    "/held" => {
                        let mut probe = [0u8; 1];
                        if let Ok(0) = stream.read(&mut probe).await {
                            closed.fetch_add(1, Ordering::SeqCst);
                        }
                        return;
                    }
                    _ => {}
                }
            }
        }
    })
    .await;
    (addr, connections, closed_by_router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_arrive_whole_and_their_connection_is_reused() {
    let (backend, connections, _) = large_backend().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let expected = large_body(LARGE);
    for round in 0..3 {
        let reply = get(&client, router.addr(), "web", "/large", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "round {round}");
        assert_eq!(reply.body.len(), LARGE, "round {round}");
        let first_wrong = reply.body.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first_wrong, None, "round {round}: the body differs");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_cut_short_upstream_is_cut_short_for_the_client() {
    let (backend, _, _) = large_backend().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let truncated = request(router.addr(), "web", "/truncated")
        .body(empty())
        .unwrap();
    let outcome = within(STEP, "the truncated answer", async {
        let response = client.request(truncated).await.map_err(|e| e.to_string())?;
        response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes().len())
            .map_err(|e| e.to_string())
    })
    .await;
    assert!(outcome.is_err(), "a cut body looked complete: {outcome:?}");

    let reply = get(&client, router.addr(), "web", "/large", &[]).await;
    assert_eq!(reply.body.len(), LARGE);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_body_closes_the_upstream_connection() {
    let (backend, _, closed_by_router) = large_backend().await;
    let fs = FsDir::new();
    fs.write("web", &format!("127.0.0.1 {}\n", backend.port()));
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let held = request(router.addr(), "web", "/held")
        .body(empty())
        .unwrap();
    let response = within(STEP, "the held answer's head", client.request(held))
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut got = 0;
    while got < 100 * 1024 {
        let frame = within(STEP, "the first 100 KiB", body.frame())
            .await
            .unwrap()
            .unwrap();
        got += frame.into_data().map_or(0, |d| d.len());
    }
    drop(body);
    drop(client);

    within(STEP, "the router closing the upstream connection", async {
        while closed_by_router.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    router.stop().await;
}
