//! Edits to `io.l5d.fs` service files reach a running router: endpoints
//! added, removed and re-weighted, and a service file created later.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use support::{Backend, Client, FsDir, STEP, client, config, get, start_router, within};

const ROUTER: &str = "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

/// Sends requests until `done` holds for the backend that answered `streak`
/// times in a row (edits are picked up asynchronously).
async fn until_streak(
    client: &Client,
    addr: SocketAddr,
    host: &str,
    streak: usize,
    what: &str,
    done: impl Fn(&str) -> bool,
) {
    within(STEP, what, async {
        let mut run = 0;
        while run < streak {
            let reply = get(client, addr, host, "/", &[]).await;
            if reply.status == StatusCode::OK && done(&reply.backend()) {
                run += 1;
            } else {
                run = 0;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    })
    .await;
}

/// Which backends answer `n` requests.
async fn answers(client: &Client, addr: SocketAddr, host: &str, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let reply = get(client, addr, host, "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        seen.push(reply.backend());
    }
    seen
}

#[tokio::test]
async fn endpoints_added_and_removed_in_the_file_take_effect_without_a_restart() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let fs = FsDir::new();
    fs.point("web", &[&a]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();
    let addr = router.addr();
    assert!(
        answers(&client, addr, "web", 20)
            .await
            .iter()
            .all(|n| n == "a")
    );

    // Add b: it starts getting traffic.
    fs.point("web", &[&a, &b]);
    until_streak(&client, addr, "web", 1, "b to be added", |n| n == "b").await;

    // Remove a: only b answers from then on.
    fs.point("web", &[&b]);
    until_streak(&client, addr, "web", 20, "a to be removed", |n| n == "b").await;
    let a_before = a.requests();
    assert!(
        answers(&client, addr, "web", 50)
            .await
            .iter()
            .all(|n| n == "b")
    );
    assert_eq!(a.requests(), a_before);

    // Emptying the file leaves no endpoints.
    fs.write("web", "");
    within(STEP, "the emptied file to apply", async {
        loop {
            let reply = get(&client, addr, "web", "/", &[]).await;
            if reply.status == StatusCode::BAD_GATEWAY {
                assert!(reply.l5d_err().contains("/svc/web"), "{}", reply.l5d_err());
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    router.stop().await;
}

#[tokio::test]
async fn a_service_file_created_later_is_found_and_a_deleted_one_is_gone() {
    let a = Backend::start("a").await;
    let fs = FsDir::new();
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();
    let addr = router.addr();
    let reply = get(&client, addr, "late", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);

    fs.point("late", &[&a]);
    until_streak(&client, addr, "late", 1, "the new file", |n| n == "a").await;

    std::fs::remove_file(fs.path().join("late")).unwrap();
    within(STEP, "the deleted file to apply", async {
        while get(&client, addr, "late", "/", &[]).await.status != StatusCode::BAD_GATEWAY {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    router.stop().await;
}

#[tokio::test]
async fn endpoint_weights_in_the_file_steer_traffic_and_changes_apply() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let fs = FsDir::new();
    // A weight ratio of a million makes the light endpoint's share
    // negligible: sequential requests leave both idle, so each pick is a
    // draw by weight.
    fs.point_weighted("web", &[(&a, 1.0), (&b, 1_000_000.0)]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();
    let addr = router.addr();
    assert!(
        answers(&client, addr, "web", 50)
            .await
            .iter()
            .all(|n| n == "b")
    );

    fs.point_weighted("web", &[(&a, 1_000_000.0), (&b, 1.0)]);
    until_streak(&client, addr, "web", 1, "the new weights", |n| n == "a").await;
    assert!(
        answers(&client, addr, "web", 50)
            .await
            .iter()
            .all(|n| n == "a")
    );
    router.stop().await;
}
