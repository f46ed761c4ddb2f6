//! Weighted unions in the dtab split traffic by weight, and a changed
//! weight applies from the next request on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use http::StatusCode;
use http::header::HOST;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use support::{Backend, FsDir, STEP, collect, config, empty, mode, start_router, within};
use tokio::net::TcpStream;

const SPLIT: &str = "- protocol: http
  dtab: |
    /svc => /#/io.l5d.fs;
    /svc/web => 9 * /#/io.l5d.fs/v1 & 1 * /#/io.l5d.fs/v2;
  servers:
  - port: 0
";

async fn two_versions() -> (FsDir, Backend, Backend) {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let fs = FsDir::new();
    fs.point("v1", &[&v1]);
    fs.point("v2", &[&v2]);
    (fs, v1, v2)
}

/// Sends `total` requests from `workers` concurrent keep-alive connections
/// and counts the answers from `v1` and `v2`.
async fn count(
    addr: SocketAddr,
    total: usize,
    workers: usize,
    headers: &'static [(&'static str, &'static str)],
) -> (usize, usize) {
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let share = total / workers + usize::from(worker < total % workers);
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(connection);
            let (mut v1, mut v2) = (0, 0);
            for _ in 0..share {
                let mut request = http::Request::get("/")
                    .header(HOST, "web")
                    .header(mode::HEADER, mode::NAME);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let response = within(STEP, "a response", async {
                    sender.ready().await.unwrap();
                    sender.send_request(request.body(empty()).unwrap()).await
                })
                .await
                .unwrap();
                let reply = collect(response).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
                match reply.backend().as_str() {
                    "v1" => v1 += 1,
                    "v2" => v2 += 1,
                    other => panic!("answered by {other}"),
                }
            }
            (v1, v2)
        }));
    }
    let mut totals = (0, 0);
    for task in tasks {
        let (v1, v2) = task.await.unwrap();
        totals.0 += v1;
        totals.1 += v2;
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn union_weights_split_ten_thousand_requests_90_10() {
    let (fs, v1, v2) = two_versions().await;
    let router = start_router(&config(&fs, SPLIT)).await;
    let (to_v1, to_v2) = count(router.addr(), 10_000, 8, &[]).await;
    assert_eq!(to_v1 + to_v2, 10_000);
    let share = to_v1 as f64 / 100.0;
    // 2 points is more than six standard deviations at n = 10,000.
    assert!(
        (88.0..=92.0).contains(&share),
        "v1 got {share}% ({to_v1} vs {to_v2})"
    );
    assert_eq!(v1.requests(), to_v1);
    assert_eq!(v2.requests(), to_v2);
    // Keep-alive on both sides: far fewer connections than requests.
    assert!(
        v1.connections() + v2.connections() < 200,
        "{} + {} connections",
        v1.connections(),
        v2.connections()
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l5d_dtab_weights_apply_to_that_request() {
    let (fs, _v1, _v2) = two_versions().await;
    let router = start_router(&config(&fs, SPLIT)).await;
    let addr = router.addr();
    // Both versions looked up once. (A union whose branches are still
    // being looked up for the first time binds to those that answered,
    // as Finagle's does, so a cold start may briefly send everything to
    // the first to answer, whatever its weight.)
    count(addr, 20, 1, &[]).await;

    // Weight 0 takes v1 out for these requests only.
    const ONLY_V2: &[(&str, &str)] = &[(
        "l5d-dtab",
        "/svc/web => 0 * /#/io.l5d.fs/v1 & 1 * /#/io.l5d.fs/v2",
    )];
    let (to_v1, to_v2) = count(addr, 200, 4, ONLY_V2).await;
    assert_eq!((to_v1, to_v2), (0, 200));

    // The very next request without the header is back on the base split.
    // (P(no v1 in 200 at 90%) is 10^-200.)
    let (to_v1, _) = count(addr, 200, 4, &[]).await;
    assert!(to_v1 > 100, "{to_v1}");

    // An even split by header.
    const EVEN: &[(&str, &str)] = &[(
        "l5d-dtab",
        "/svc/web => 1 * /#/io.l5d.fs/v1 & 1 * /#/io.l5d.fs/v2",
    )];
    let (to_v1, to_v2) = count(addr, 1_000, 4, EVEN).await;
    let share = to_v1 as f64 / 10.0;
    // 8 points is five standard deviations at n = 1,000.
    assert!((42.0..=58.0).contains(&share), "{to_v1} vs {to_v2}");
    router.stop().await;
}
