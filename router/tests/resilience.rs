//! How a router routes around endpoints that fail: requeues after
//! connection failures, retries of answers its response classifier calls
//! retryable (never of a request the endpoint saw unless it may be
//! repeated), retry budgets, failure accrual with probation, deadlines and
//! `l5d-success-class`. Real backends on loopback fail in each way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{
    Backend, FsDir, client, closed_port, config, full, get, request, send, start_router,
};
use tokio::net::TcpListener;

/// A backend answering every request with a status that can be changed,
/// counting the requests it gets by method.
struct StatusBackend {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// How long it waits before answering, in ms.
    delay_ms: Arc<AtomicU64>,
    gets: Arc<AtomicUsize>,
    posts: Arc<AtomicUsize>,
    /// Request body bytes received.
    body_bytes: Arc<AtomicUsize>,
}

impl StatusBackend {
    /// A backend answering `status`, with `extra` headers on every answer.
    async fn start(status: u16, extra: &'static [(&'static str, &'static str)]) -> StatusBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = StatusBackend {
            addr,
            status: Arc::new(AtomicU16::new(status)),
            delay_ms: Arc::default(),
            gets: Arc::default(),
            posts: Arc::default(),
            body_bytes: Arc::default(),
        };
        let delay = backend.delay_ms.clone();
        let body_bytes = backend.body_bytes.clone();
        let (status, gets, posts) = (
            backend.status.clone(),
            backend.gets.clone(),
            backend.posts.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (status, gets, posts) = (status.clone(), gets.clone(), posts.clone());
                let delay = delay.clone();
                let body_bytes = body_bytes.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (status, gets, posts) =
                                (status.clone(), gets.clone(), posts.clone());
                            let delay = Duration::from_millis(delay.load(Ordering::SeqCst));
                            let body_bytes = body_bytes.clone();
                            async move {
                                let counter = if request.method() == Method::POST {
                                    &posts
                                } else {
                                    &gets
                                };
                                counter.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(delay).await;
                                if let Ok(body) = request.into_body().collect().await {
                                    body_bytes.fetch_add(body.to_bytes().len(), Ordering::SeqCst);
                                }
                                let mut response =
                                    http::Response::new(Full::new(Bytes::from_static(b"answer")));
                                *response.status_mut() =
                                    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                                for (name, value) in extra {
                                    response.headers_mut().insert(*name, value.parse().unwrap());
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        backend
    }

    fn requests(&self) -> usize {
        self.gets.load(Ordering::SeqCst) + self.posts.load(Ordering::SeqCst)
    }
}

/// Points `web` at these addresses.
fn point(fs: &FsDir, addrs: &[SocketAddr]) {
    let lines: String = addrs
        .iter()
        .map(|a| format!("127.0.0.1 {}\n", a.port()))
        .collect();
    fs.write("web", &lines);
}

/// A router whose `web` is `addrs`, with `extra` keys in its entry; the
/// directory must live as long as the router.
async fn web_router(addrs: &[SocketAddr], extra: &str) -> (FsDir, support::RunningRouter) {
    let fs = FsDir::new();
    point(&fs, addrs);
    let running = start_router(&config(&fs, &router(extra))).await;
    (fs, running)
}

fn router(extra: &str) -> String {
    format!("- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n{extra}")
}

async fn post(addr: SocketAddr, client: &support::Client) -> support::Reply {
    post_with(addr, client, &[]).await
}

/// `POST /` for `web` with a small body and `headers`.
async fn post_with(
    addr: SocketAddr,
    client: &support::Client,
    headers: &[(&str, &str)],
) -> support::Reply {
    let mut request = request(addr, "web", "/").method(Method::POST);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(client, request.body(full("hello")).unwrap()).await
}

#[tokio::test]
async fn a_refusing_endpoint_costs_no_failed_request_with_the_default_config() {
    let good = [Backend::start("a").await, Backend::start("b").await];
    let refusing = closed_port().await;
    let (_fs, router) = web_router(&[good[0].addr, refusing, good[1].addr], "").await;
    let client = client();
    for i in 0..150 {
        let reply = if i % 3 == 0 {
            post(router.addr(), &client).await
        } else {
            get(&client, router.addr(), "web", "/", &[]).await
        };
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn reads_are_retried_elsewhere_and_posts_never_after_the_endpoint_saw_them() {
    let good = StatusBackend::start(200, &[]).await;
    let bad = StatusBackend::start(500, &[]).await;
    let (_fs, router) = web_router(&[good.addr, bad.addr], "  client:\n    failureAccrual:\n      kind: none\n  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n").await;
    let client = client();
    for i in 0..100 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {i}: {}", reply.text());
        assert_eq!(reply.header("l5d-success-class").as_deref(), Some("1.0"));
    }
    assert!(
        bad.gets.load(Ordering::SeqCst) > 0,
        "the failing endpoint got no GET"
    );

    let mut failed = 0;
    for _ in 0..100 {
        let reply = post(router.addr(), &client).await;
        if reply.status == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
            assert_eq!(reply.header("l5d-success-class").as_deref(), Some("0.0"));
        }
    }
    // Each POST that reached the failing endpoint came back as its answer.
    assert!(failed > 0);
    assert_eq!(bad.posts.load(Ordering::SeqCst), failed);
    assert_eq!(good.posts.load(Ordering::SeqCst), 100 - failed);
}

#[tokio::test]
async fn retries_stay_within_the_budget_when_every_endpoint_fails() {
    let backends = [
        StatusBackend::start(503, &[]).await,
        StatusBackend::start(503, &[]).await,
    ];
    let (_fs, router) = web_router(&[backends[0].addr, backends[1].addr], "  client:\n    failureAccrual:\n      kind: none\n  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n    retries:\n      budget:\n        minRetriesPerSec: 0\n        percentCanRetry: 0.5\n        ttlSecs: 10\n").await;
    let client = client();
    for _ in 0..200 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let sent: usize = backends.iter().map(StatusBackend::requests).sum();
    let metrics = admin_text(&client, router.admin, "/admin/metrics/prometheus").await;
    let web = "rt=\"http\",service=\"svc/web\"";
    let retries = metric(&metrics, &format!("rt:service:retries:total{{{web}}}"));
    assert_eq!(retries as usize, sent - 200, "{metrics}");
    assert!(
        metric(
            &metrics,
            &format!("rt:service:retries:budget_exhausted{{{web}}}")
        ) > 0.0
    );
    // 200 requests and at most half as many retries; no storm.
    assert!(
        (200..=300).contains(&sent),
        "{sent} requests reached the backends"
    );
    assert!(
        sent >= 280,
        "the budget allowed retries that were not made: {sent}"
    );
}

#[tokio::test]
async fn failure_accrual_takes_a_failing_endpoint_out_then_probes_it_once() {
    let good = StatusBackend::start(200, &[]).await;
    let bad = StatusBackend::start(500, &[]).await;
    let (_fs, router) = web_router(&[good.addr, bad.addr], "  client:\n    failureAccrual:\n      kind: io.l5d.consecutiveFailures\n      failures: 3\n      backoff:\n        kind: constant\n        ms: 1500\n").await;
    let client = client();
    let started = Instant::now();
    for _ in 0..100 {
        get(&client, router.addr(), "web", "/", &[]).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "too slow to judge: {:?}",
        started.elapsed()
    );
    // Three failures in a row, and it was out.
    assert_eq!(bad.requests(), 3);
    let states = admin_json(&client, router.admin, "/client_state.json").await;
    let web = states
        .as_object()
        .unwrap()
        .values()
        .next()
        .expect("no client in /client_state.json");
    assert_eq!(web["state"], "bound");
    assert_eq!(web["removals"], 1);
    let bad_state = web["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == bad.addr.to_string().as_str())
        .unwrap();
    assert_eq!(bad_state["state"], "dead", "{web}");
    assert!(bad_state["deadForMs"].as_u64().unwrap() <= 1500);
    let metrics = admin_text(&client, router.admin, "/admin/metrics/prometheus").await;
    let web = "rt=\"http\",client=\"#/io.l5d.fs/web\"";
    assert_eq!(
        metric(
            &metrics,
            &format!("rt:client:failure_accrual:removals{{{web}}}")
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, &format!("rt:client:loadbalancer:size{{{web}}}")),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            &format!("rt:client:loadbalancer:available{{{web}}}")
        ),
        1.0
    );

    tokio::time::sleep(Duration::from_millis(1700)).await;
    let probing = Instant::now();
    for _ in 0..100 {
        get(&client, router.addr(), "web", "/", &[]).await;
    }
    assert!(probing.elapsed() < Duration::from_millis(1500));
    // One probe after the backoff; it failed, so the endpoint is out again.
    assert_eq!(bad.requests(), 4);

    // Healed, it comes back after the next probe.
    bad.status.store(200, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    for _ in 0..100 {
        get(&client, router.addr(), "web", "/", &[]).await;
    }
    assert!(
        bad.requests() > 20,
        "revived endpoint got {} requests",
        bad.requests()
    );
}

#[tokio::test]
async fn an_upstream_success_class_overrides_the_classifier() {
    // A 500 that the next hop called a success is not retried.
    let marked = StatusBackend::start(500, &[("l5d-success-class", "1.0")]).await;
    let fs = FsDir::new();
    point(&fs, &[marked.addr]);
    let yaml =
        router("  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n");
    let router = start_router(&config(&fs, &yaml)).await;
    let client = client();
    for _ in 0..10 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.header("l5d-success-class").as_deref(), Some("1.0"));
    }
    assert_eq!(marked.requests(), 10);
}

#[tokio::test]
async fn a_slow_attempt_times_out_and_the_read_is_retried_elsewhere() {
    let slow = StatusBackend::start(200, &[]).await;
    slow.delay_ms.store(5000, Ordering::SeqCst);
    let fast = StatusBackend::start(200, &[]).await;
    let (_fs, router) = web_router(&[slow.addr, fast.addr], "  client:\n    requestAttemptTimeoutMs: 200\n    failureAccrual:\n      kind: none\n  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n").await;
    let client = client();
    for _ in 0..10 {
        let started = Instant::now();
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    assert!(slow.requests() > 0, "the slow endpoint was never tried");
    assert_eq!(fast.requests(), 10);
}

#[tokio::test]
async fn deadlines_bound_requests_and_travel_to_the_next_hop() {
    let backend = Backend::start("web").await;
    let (_fs, router) = web_router(&[backend.addr], "  service:\n    totalTimeoutMs: 300\n").await;
    let client = client();

    // The backend sees a deadline about 300 ms after it was set.
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = reply
        .seen_header("l5d-ctx-deadline")
        .expect("no deadline reached the backend");
    assert_eq!(deadline_span(&seen), 300_000_000);
    // The timestamp is the wall clock when the request arrived.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let (timestamp, _) = seen.split_once(' ').unwrap();
    let age = now_ns - timestamp.parse::<i64>().unwrap();
    assert!((0..5_000_000_000).contains(&age), "set {age} ns ago");

    // A later deadline the caller carries gives way to the service's, and
    // the next hop sees one value; a request with a body (another path
    // through the router) carries it as well.
    let carried = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-ctx-deadline", "1 9000000000000000000")],
    )
    .await;
    let seen = carried.seen_headers("l5d-ctx-deadline");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(deadline_span(&seen[0]), 300_000_000, "{seen:?}");
    let posted = post_with(
        router.addr(),
        &client,
        &[("l5d-ctx-deadline", "1 9000000000000000000")],
    )
    .await;
    let seen = posted.seen_headers("l5d-ctx-deadline");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(deadline_span(&seen[0]), 300_000_000, "{seen:?}");

    // A slow answer is cut off at the total timeout.
    let started = Instant::now();
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("x-test-delay-ms", "3000")],
    )
    .await;
    assert_cut_off(&reply, started);

    // The same for a request with a body, twice on one connection (whose
    // requests share a timer).
    for _ in 0..2 {
        let started = Instant::now();
        let reply = post_with(router.addr(), &client, &[("x-test-delay-ms", "3000")]).await;
        assert_cut_off(&reply, started);
    }

    // A deadline the caller set earlier wins; one already past fails at once.
    let past = "1 2";
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-ctx-deadline", past)],
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(reply.l5d_err().contains("deadline"), "{}", reply.l5d_err());
}

/// A request the router answered with 503 well before the backend's
/// 3-second delay.
fn assert_cut_off(reply: &support::Reply, started: Instant) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Deadline less timestamp of an `l5d-ctx-deadline` value, in ns.
fn deadline_span(value: &str) -> i64 {
    let (timestamp, deadline) = value.split_once(' ').unwrap();
    deadline.parse::<i64>().unwrap() - timestamp.parse::<i64>().unwrap()
}

async fn admin_text(client: &support::Client, admin: SocketAddr, path: &str) -> String {
    let request = http::Request::get(format!("http://{admin}{path}"))
        .body(support::empty())
        .unwrap();
    let reply = send(client, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    reply.text()
}

async fn admin_json(client: &support::Client, admin: SocketAddr, path: &str) -> serde_json::Value {
    serde_json::from_str(&admin_text(client, admin, path).await).unwrap()
}

/// The value of the sample `name` (with its labels) in a Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn grpc_answers_are_classified_by_their_trailers() {
    let backend = Backend::start("grpc").await;
    let fs = FsDir::new();
    point(&fs, &[backend.addr]);
    let yaml = "- protocol: h2\n  dtab: /svc => /#/io.l5d.fs;\n  client:\n    failureAccrual:\n      kind: io.l5d.consecutiveFailures\n      failures: 2\n      backoff: {kind: constant, ms: 60000}\n  service:\n    responseClassifier:\n      kind: io.l5d.h2.grpc.default\n  servers:\n  - port: 0\n";
    let router = start_router(&config(&fs, yaml)).await;
    let stream = tokio::net::TcpStream::connect(router.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut call = async |status: &str| {
        let request = http::Request::post("http://web/echo.Echo/Say")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-test-grpc-status", status)
            .body(full(&b"\0\0\0\0\x02hi"[..]))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let collected = response.into_body().collect().await.unwrap();
        collected.trailers().cloned().expect("trailers")
    };
    let ok = call("0").await;
    assert_eq!(ok["grpc-status"], "0");
    assert_eq!(ok["l5d-success-class"], "1.0");
    let failed = call("14").await;
    assert_eq!(failed["l5d-success-class"], "0.0");
    call("2").await;
    // Two failures in a row, told by the trailers: the endpoint is out.
    let client = client();
    let states = admin_json(&client, router.admin, "/client_state.json").await;
    let web = states.as_object().unwrap().values().next().unwrap();
    assert_eq!(web["removals"], 1, "{web}");
    assert_eq!(web["endpoints"][0]["state"], "dead", "{web}");
}

/// An h2 backend that refuses every other stream with `REFUSED_STREAM`
/// (as a server shedding load does) and answers the rest 200.
async fn refusing_h2_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let counted = streams.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    if counted.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    } else {
                        let response = http::Response::new(());
                        let _ = respond.send_response(response, true);
                    }
                }
            });
        }
    });
    (addr, streams)
}

#[tokio::test]
async fn streams_the_upstream_refused_are_sent_again() {
    let (backend, streams) = refusing_h2_backend().await;
    let fs = FsDir::new();
    point(&fs, &[backend]);
    let yaml = "- protocol: h2\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n";
    let router = start_router(&config(&fs, yaml)).await;
    let stream = tokio::net::TcpStream::connect(router.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    for i in 0..20 {
        let request = http::Request::get("http://web/")
            .body(support::empty())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
    }
    // Each request was refused once, then answered.
    assert_eq!(streams.load(Ordering::SeqCst), 40);
}

#[tokio::test]
async fn an_upgrade_request_is_never_sent_twice() {
    // A 503 that says it may be retried, to a request that asks to switch
    // protocols: its head went to the first attempt, so no retry.
    let backend = StatusBackend::start(503, &[("l5d-retryable", "true")]).await;
    let (_fs, router) = web_router(&[backend.addr], "  client:\n    failureAccrual:\n      kind: none\n  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n").await;
    let mut stream = tokio::net::TcpStream::connect(router.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert_eq!(backend.requests(), 1);
}

#[tokio::test]
async fn the_configured_balancer_is_the_one_used() {
    // heap sends every request to the least loaded endpoint, ties to the
    // first: one at a time, they all go to one backend (p2c would spread).
    let backends = [
        StatusBackend::start(200, &[]).await,
        StatusBackend::start(200, &[]).await,
    ];
    let (_fs, router) = web_router(
        &[backends[0].addr, backends[1].addr],
        "  client:\n    loadBalancer:\n      kind: heap\n",
    )
    .await;
    let client = client();
    for _ in 0..100 {
        get(&client, router.addr(), "web", "/", &[]).await;
    }
    let mut counts = [backends[0].requests(), backends[1].requests()];
    counts.sort_unstable();
    assert_eq!(counts, [0, 100]);
}

#[tokio::test]
async fn fail_fast_takes_an_endpoint_out_on_its_first_connection_failure() {
    let good = StatusBackend::start(200, &[]).await;
    let refusing = closed_port().await;
    // No failure accrual: only failFast can take the endpoint out.
    let (_fs, router) = web_router(
        &[good.addr, refusing],
        "  client:\n    failFast: true\n    failureAccrual:\n      kind: none\n",
    )
    .await;
    let client = client();
    for _ in 0..30 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let states = admin_json(&client, router.admin, "/client_state.json").await;
    let web = states.as_object().unwrap().values().next().unwrap();
    assert_eq!(web["removals"], 1, "{web}");
    let refused = web["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == refusing.to_string().as_str())
        .unwrap();
    assert_eq!(refused["state"], "dead", "{web}");
}

#[tokio::test]
async fn an_empty_requeue_budget_lets_connection_failures_through() {
    let good = StatusBackend::start(200, &[]).await;
    let refusing = closed_port().await;
    let (_fs, router) = web_router(
        &[good.addr, refusing],
        "  client:\n    failureAccrual:\n      kind: none\n    requeueBudget:\n      minRetriesPerSec: 0\n      percentCanRetry: 0\n",
    )
    .await;
    let client = client();
    let mut unsent = 0;
    for _ in 0..60 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        if reply.status == StatusCode::BAD_GATEWAY {
            unsent += 1;
            assert_eq!(reply.header("l5d-retryable").as_deref(), Some("true"));
        }
    }
    assert!(unsent > 0, "every connection failure was requeued");
}

#[tokio::test]
async fn bodies_within_the_retry_buffer_are_sent_again_whole() {
    let good = StatusBackend::start(200, &[]).await;
    let bad = StatusBackend::start(500, &[]).await;
    let retry_all = "  client:\n    failureAccrual:\n      kind: none\n  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableAll5XX\n";
    let (_fs, router) = web_router(&[good.addr, bad.addr], retry_all).await;
    let client = client();
    for i in 0..60 {
        let reply = post(router.addr(), &client).await;
        assert_eq!(reply.status, StatusCode::OK, "POST {i}: {}", reply.text());
    }
    // Every POST reached the good backend with its 5-byte body.
    assert_eq!(good.posts.load(Ordering::SeqCst), 60);
    assert_eq!(good.body_bytes.load(Ordering::SeqCst), 300);
    assert!(bad.posts.load(Ordering::SeqCst) > 0);

    // A buffer smaller than the body: the body streams once, no retry.
    let small = format!("{retry_all}    retryBufferSize:\n      requestBytes: 4\n");
    let (_fs, router) = web_router(&[good.addr, bad.addr], &small).await;
    let bad_before = bad.posts.load(Ordering::SeqCst);
    let mut failed = 0;
    for _ in 0..60 {
        if post(router.addr(), &client).await.status == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
        }
    }
    assert!(failed > 0);
    assert_eq!(bad.posts.load(Ordering::SeqCst) - bad_before, failed);
}

#[tokio::test]
async fn retries_pause_for_their_backoff_and_stop_at_the_deadline() {
    let backend = StatusBackend::start(503, &[]).await;
    let (_fs, router) = web_router(
        &[backend.addr],
        "  client:\n    failureAccrual:\n      kind: none\n  service:\n    totalTimeoutMs: 500\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n    retries:\n      budget:\n        percentCanRetry: 10\n      backoff:\n        kind: constant\n        ms: 200\n",
    )
    .await;
    let client = client();
    let started = Instant::now();
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    // Two pauses of 200 ms fit before the deadline; a third would not.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(backend.requests(), 3);
    let metrics = admin_text(&client, router.admin, "/admin/metrics/prometheus").await;
    assert_eq!(
        metric(
            &metrics,
            "rt:service:retries:past_deadline{rt=\"http\",service=\"svc/web\"}"
        ),
        1.0
    );
}
