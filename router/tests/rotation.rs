//! Upstreams that rotate their connections cost no request: a real nginx
//! closing its connections after a few requests (HTTP/2 with `GOAWAY`,
//! HTTP/1.1 with `Connection: close`), under h2load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use integration::h2load::{self, H2loadReport};
use integration::servers::{Nginx, NginxServer};
use support::{RunningRouter, start_router};

/// Requests per run: enough for 2,000 rotations at 100 requests each.
const REQUESTS: &str = "200000";

/// A router of `protocol` sending every name to `upstream`.
async fn router_to(protocol: &str, upstream: SocketAddr) -> RunningRouter {
    start_router(&format!(
        "admin:\n  port: 0\nrouters:\n- protocol: {protocol}\n  \
         dtab: /svc => /$/inet/127.0.0.1/{}\n  servers:\n  - port: 0\n",
        upstream.port()
    ))
    .await
}

/// Runs h2load through `router` off the runtime's threads (the router runs
/// on them): [`REQUESTS`] requests over 10 connections, with `flags` saying
/// how each connection sends (`-m 10` streams over h2c, or `--h1`).
async fn h2load(router: &RunningRouter, flags: &[&str]) -> Option<H2loadReport> {
    let url = format!("http://{}/", router.addr());
    let mut args: Vec<String> = ["-n", REQUESTS, "-c", "10", "-H", ":authority: web"]
        .map(String::from)
        .to_vec();
    args.extend(flags.iter().map(|f| f.to_string()));
    args.push(url);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        h2load::run(&args)
    })
    .await
    .unwrap()
}

/// A figure of the router's metrics tree.
fn metric(router: &RunningRouter, name: &str) -> f64 {
    let (_, body) =
        integration::process::http(router.admin, "GET", "/admin/metrics.json", "a", &[], "");
    let tree: serde_json::Value = serde_json::from_str(&body).unwrap();
    tree[name].as_f64().unwrap_or(0.0)
}

/// Asserts every request of `report` was answered 2xx; `upstream_log` is
/// shown when not.
fn assert_all_answered(report: &H2loadReport, upstream_log: &str) {
    assert!(
        report.failed == 0 && report.errored == 0 && report.status[0] == report.total,
        "{} of {} failed ({} not answered; statuses {:?}):\n{}\nupstream: {}",
        report.failed,
        report.total,
        report.errored,
        report.status,
        report.output,
        upstream_log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upstream_saying_goaway_every_100_streams_costs_no_request() {
    let Some(nginx) = Nginx::start(&[NginxServer::ok_h2c(100)]) else {
        return;
    };
    let router = router_to("h2", nginx.addr(0)).await;
    let Some(report) = h2load(&router, &["-m", "10"]).await else {
        return;
    };
    assert_all_answered(&report, &nginx.log());
    // The rotations happened, and the streams they refused went again.
    let requeues = metric(
        &router,
        "rt/h2/client/$/inet/127.0.0.1/{port}/retries/requeues"
            .replace("{port}", &nginx.addr(0).port().to_string())
            .as_str(),
    );
    assert!(
        requeues > 0.0,
        "no stream was refused: the test did not rotate"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_upstream_closing_every_100_requests_costs_no_request() {
    let Some(nginx) = Nginx::start(&[NginxServer::ok_http1(100)]) else {
        return;
    };
    let router = router_to("http", nginx.addr(0)).await;
    let Some(report) = h2load(&router, &["--h1"]).await else {
        return;
    };
    assert_all_answered(&report, &nginx.log());
    router.stop().await;
}

/// What the scripted upstream does with the streams of each connection.
#[derive(Clone, Copy)]
struct Script {
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` it advertises.
    max_streams: u32,
    /// Refuse (`REFUSED_STREAM`) every stream whose number on its
    /// connection leaves this remainder mod 7 (none if over 6).
    refuse_mod_7: u64,
    /// Say `GOAWAY` after processing this many streams of a connection.
    goaway_after: u64,
}

/// An h2c upstream that answers `200 ok` to each stream it processes,
/// refuses and rotates as `script` says, and counts what it processed.
async fn scripted_upstream(script: Script) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let processed = Arc::new(AtomicU64::new(0));
    let counted = processed.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let processed = counted.clone();
            tokio::spawn(async move {
                let handshake = h2::server::Builder::new()
                    .max_concurrent_streams(script.max_streams)
                    .handshake(socket);
                let Ok(mut connection) = handshake.await else {
                    return;
                };
                let (mut streams, mut served) = (0u64, 0u64);
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    streams += 1;
                    // Once it has said GOAWAY, it refuses what still comes:
                    // the h2 crate's server may hand out a stream above the
                    // last id its GOAWAY announced, which a client rightly
                    // sends again elsewhere.
                    if streams % 7 == script.refuse_mod_7 || served >= script.goaway_after {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    drop(request);
                    processed.fetch_add(1, Ordering::SeqCst);
                    // Answered a moment later, so that streams overlap.
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        let response = http::Response::new(());
                        if let Ok(mut body) = respond.send_response(response, false) {
                            let _ = body.send_data(bytes::Bytes::from_static(b"ok\n"), true);
                        }
                    });
                    served += 1;
                    if served == script.goaway_after {
                        connection.graceful_shutdown();
                    }
                }
            });
        }
    });
    (addr, processed)
}

/// Sends `total` GETs through `router` on one h2 connection, `concurrent`
/// at a time: their statuses (0: no answer).
async fn h2_gets(router: SocketAddr, total: usize, concurrent: usize) -> Vec<u16> {
    let stream = tokio::net::TcpStream::connect(router).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrent {
        let mut sender: hyper::client::conn::http2::SendRequest<support::Body> = sender.clone();
        let count = total / concurrent + usize::from(worker < total % concurrent);
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..count {
                let request = http::Request::get(format!("http://web/{worker}/{i}"))
                    .body(support::empty())
                    .unwrap();
                let status = match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if status != 200 {
                            eprintln!("l5d-err: {:?}", response.headers().get("l5d-err"));
                        }
                        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                        status
                    }
                    Err(_) => 0,
                };
                statuses.push(status);
            }
            statuses
        });
    }
    let mut all = Vec::new();
    while let Some(statuses) = tasks.join_next().await {
        all.extend(statuses.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_and_goaways_are_sent_again_and_each_request_is_processed_once() {
    let script = Script {
        max_streams: 100,
        refuse_mod_7: 3,
        goaway_after: 25,
    };
    let (upstream, processed) = scripted_upstream(script).await;
    let router = router_to("h2", upstream).await;
    let statuses = h2_gets(router.addr(), 5_000, 20).await;
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of 5000 failed: {failed:?}; the upstream processed {}",
        failed.len(),
        processed.load(Ordering::SeqCst)
    );

    assert_eq!(
        processed.load(Ordering::SeqCst),
        5_000,
        "each request processed once: none lost, none repeated"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_requests_through_refusals_and_goaways_all_succeed_once() {
    let script = Script {
        max_streams: 100,
        refuse_mod_7: 3,
        goaway_after: 100,
    };
    let (upstream, processed) = scripted_upstream(script).await;
    let router = router_to("h2", upstream).await;
    let Some(report) = h2load(&router, &["-m", "10"]).await else {
        return;
    };
    assert_all_answered(&report, "the scripted upstream");
    assert_eq!(
        processed.load(Ordering::SeqCst),
        report.total,
        "each request processed once by the upstream"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_allowing_two_streams_at_once_gets_them_queued_not_failed() {
    let script = Script {
        max_streams: 2,
        refuse_mod_7: 7,
        goaway_after: u64::MAX,
    };
    let (upstream, processed) = scripted_upstream(script).await;
    let router = router_to("h2", upstream).await;
    let statuses = h2_gets(router.addr(), 1_000, 50).await;
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of 1000 failed: {failed:?}",
        failed.len()
    );
    assert_eq!(processed.load(Ordering::SeqCst), 1_000);
    router.stop().await;
}

/// An h2c upstream that processes each stream (counts it) and then resets
/// it with `INTERNAL_ERROR` instead of answering.
async fn failing_upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let processed = Arc::new(AtomicU64::new(0));
    let counted = processed.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let processed = counted.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    processed.fetch_add(1, Ordering::SeqCst);
                    respond.send_reset(h2::Reason::INTERNAL_ERROR);
                }
            });
        }
    });
    (addr, processed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_upstream_processed_is_not_sent_again() {
    let (upstream, processed) = failing_upstream().await;
    let router = router_to("h2", upstream).await;
    let statuses = h2_gets(router.addr(), 10, 1).await;
    assert!(statuses.iter().all(|s| *s == 502), "{statuses:?}");
    assert_eq!(
        processed.load(Ordering::SeqCst),
        10,
        "each failed request reached the upstream once (no retry rules configured)"
    );
    router.stop().await;
}
