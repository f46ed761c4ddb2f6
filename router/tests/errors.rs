//! What a client sees when a request cannot be forwarded: the status code,
//! `l5d-err`, and for an unknown name, where to ask why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{NameTree, Path};
use http::StatusCode;
use namers::{Activity, Addr, Bound, Publisher};
use support::{
    Backend, FsDir, ScriptedNaming, client, config, get, mode, start_router, start_scripted_router,
};
use tokio::sync::Notify;

#[tokio::test]
async fn unknown_name_is_a_502_that_points_at_the_delegator() {
    let fs = FsDir::new();
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: |
    /svc => /#/io.l5d.fs;
    /svc/other => /#/io.l5d.fs/other;
  servers:
  - port: 0
",
    ))
    .await;
    let client = client();

    let reply = get(&client, router.addr(), "nope", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    let err = reply.l5d_err();
    assert!(err.contains("/svc/nope"), "the name is missing: {err}");
    assert!(
        err.contains("/svc=>/#/io.l5d.fs"),
        "the dentry tried is missing: {err}"
    );
    assert!(
        !err.contains("/svc/other"),
        "a dentry that does not match is listed: {err}"
    );
    assert!(reply.text().contains("/svc/nope"), "{}", reply.text());

    // The explanation URL is on the admin server: the playground for a
    // browser, JSON for anything else.
    let url = delegator_url(&err);
    assert!(
        url.starts_with(&format!("http://{}/delegator?", router.admin)),
        "{url}"
    );
    let json = delegate(&client, &url).await;
    assert_eq!(json["path"], "/svc/nope", "{json}");

    // With a request dtab, the URL carries it and the explanation uses it.
    let reply = get(
        &client,
        router.addr(),
        "nope",
        "/",
        &[("l5d-dtab", "/svc/nope => /#/io.l5d.fs/gone")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let err = reply.l5d_err();
    assert!(err.contains("/svc/nope=>/#/io.l5d.fs/gone"), "{err}");
    let url = delegator_url(&err);
    assert!(url.contains("&dtab="), "{url}");
    let json = delegate(&client, &url).await;
    assert!(json.to_string().contains("/#/io.l5d.fs/gone"), "{json}");
    router.stop().await;
}

fn delegator_url(err: &str) -> String {
    let start = err
        .find("http://")
        .unwrap_or_else(|| panic!("no URL in l5d-err: {err}"));
    err[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches([')', ';', ','])
        .to_string()
}

async fn delegate(client: &support::Client, url: &str) -> serde_json::Value {
    let request = http::Request::get(url).body(support::empty()).unwrap();
    let reply = support::send(client, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.text());
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{:?}",
        reply.headers
    );
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("{url} is not JSON ({e}): {}", reply.text()))
}

#[tokio::test]
async fn backend_down_is_a_502() {
    let fs = FsDir::new();
    let down = support::closed_port().await;
    fs.write("web", &format!("127.0.0.1 {}\n", down.port()));
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
",
    ))
    .await;
    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    let err = reply.l5d_err();
    assert!(err.contains(&down.to_string()), "{err}");
    assert!(err.contains("/svc/web"), "{err}");
    router.stop().await;
}

#[tokio::test]
async fn empty_service_file_is_a_502() {
    let fs = FsDir::new();
    fs.write("web", "# nobody home\n");
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
",
    ))
    .await;
    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert!(reply.l5d_err().contains("/svc/web"), "{}", reply.l5d_err());
    router.stop().await;
}

#[tokio::test]
async fn total_timeout_with_a_slow_backend_is_a_503() {
    let slow = Backend::start("slow").await;
    let fs = FsDir::new();
    fs.point("web", &[&slow]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  service:
    totalTimeoutMs: 300
  servers:
  - port: 0
",
    ))
    .await;
    let client = client();
    // Warm up (bind the name, connect) so the timing below is the timeout's.
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);

    let started = Instant::now();
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[(mode::DELAY_MS, "5000")],
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(reply.l5d_err().contains("/svc/web"), "{}", reply.l5d_err());
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    router.stop().await;
}

#[tokio::test]
async fn max_concurrent_requests_turns_the_extra_request_away() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    maxConcurrentRequests: 1
",
    ))
    .await;
    let client = client();
    let addr = router.addr();
    let held = tokio::spawn({
        let client = client.clone();
        async move { get(&client, addr, "web", "/", &[(mode::HEADER, mode::GATE)]).await }
    });
    backend.wait_received().await;
    let reply = get(&client, addr, "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        reply.l5d_err().contains("concurrent"),
        "{}",
        reply.l5d_err()
    );
    // Turned away too, and its answer has no body (the connection it came
    // on stays usable).
    let head = support::request(addr, "web", "/")
        .method("HEAD")
        .body(support::empty())
        .unwrap();
    let reply = support::send(&client, head).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.is_empty());
    backend.release();
    let reply = support::within(support::STEP, "the held request", held)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    // The slot is free again.
    let reply = get(&client, addr, "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    router.stop().await;
}

const SCRIPTED: &str = "routers:
- protocol: http
  bindingTimeoutMs: 400
  servers:
  - port: 0
";

/// A router whose names bind to `binding`, kept live by the returned
/// publisher.
async fn scripted(
    binding: Activity<NameTree<Bound>>,
) -> (
    support::ScriptedRouter,
    Publisher<Activity<NameTree<Bound>>>,
    Arc<Notify>,
) {
    let publisher = Publisher::new(binding);
    let bound = Arc::new(Notify::new());
    let naming = Arc::new(ScriptedNaming {
        binding: publisher.subscribe(),
        bound: bound.clone(),
    });
    (
        start_scripted_router(SCRIPTED, naming).await,
        publisher,
        bound,
    )
}

#[tokio::test]
async fn binding_that_never_completes_is_a_503_after_the_binding_timeout() {
    let (router, _publisher, _) = scripted(Activity::Pending).await;
    let started = Instant::now();
    let reply = get(&client(), router.addr, "web", "/", &[]).await;
    let elapsed = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let err = reply.l5d_err();
    assert!(err.contains("/svc/web"), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

fn pending_address_tree(addr: &Publisher<Addr>) -> Activity<NameTree<Bound>> {
    Activity::Ok(NameTree::Leaf(Bound::new(
        Path::read("/#/test/web").unwrap(),
        Path::empty(),
        addr.subscribe(),
    )))
}

#[tokio::test]
async fn address_that_never_arrives_is_a_503_after_the_binding_timeout() {
    // A name that binds but whose address is still pending (a DNS lookup
    // in progress, a namer that has not answered yet) is waited for up to
    // bindingTimeoutMs, as Linkerd does; it is not "no endpoints".
    let addr = Publisher::new(Addr::Pending);
    let (router, _publisher, _) = scripted(pending_address_tree(&addr)).await;
    let started = Instant::now();
    let reply = get(&client(), router.addr, "web", "/", &[]).await;
    let elapsed = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a pending address must be waited for, then time out; got {} after {elapsed:?}: {}",
        reply.status,
        reply.text()
    );
    assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn address_that_arrives_within_the_binding_timeout_is_used() {
    let backend = Backend::start("late").await;
    let addr = Publisher::new(Addr::Pending);
    let (router, _publisher, bound) = scripted(pending_address_tree(&addr)).await;
    let client = client();
    let target = router.addr;
    let request = tokio::spawn(async move { get(&client, target, "web", "/", &[]).await });
    support::within(support::STEP, "the name to be bound", bound.notified()).await;
    // Well inside the 400 ms binding timeout; the request is waiting by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    addr.publish(Addr::bound(vec![namers::Endpoint::new(backend.addr)]));
    let reply = support::within(support::STEP, "the request", request)
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "an address that arrives within bindingTimeoutMs must be used: {}",
        reply.text()
    );
    assert_eq!(reply.backend(), "late");
}
