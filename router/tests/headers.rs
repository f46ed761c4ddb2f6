//! Per-request dtabs (`l5d-dtab`, `l5d-ctx-dtab`), `clearContext`, the
//! headers the router adds for the next hop, and `maxCallDepth`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use support::{Backend, FsDir, client, config, get, start_router};

/// Backends `a`, `b` and `c`; `/svc/web` goes to `a` unless a request says
/// otherwise.
async fn three_backends() -> (FsDir, [Backend; 3]) {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let fs = FsDir::new();
    for backend in &backends {
        fs.point(&backend.name, &[backend]);
    }
    (fs, backends)
}

const ROUTER: &str = "- protocol: http
  dtab: |
    /svc => /#/io.l5d.fs;
    /svc/web => /#/io.l5d.fs/a;
  servers:
  - port: 0
  - port: 0
    clearContext: true
";

#[tokio::test]
async fn l5d_dtab_sends_one_request_elsewhere() {
    let (fs, _backends) = three_backends().await;
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.backend(), "a");
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-dtab", "/svc/web => /#/io.l5d.fs/b")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "b");
    assert_eq!(
        reply.seen_header("l5d-dst-client").unwrap(),
        "/#/io.l5d.fs/b"
    );
    // Only that request.
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.backend(), "a");
    router.stop().await;
}

#[tokio::test]
async fn user_dtab_comes_after_ctx_dtab_and_travels_on_as_ctx_dtab() {
    let (fs, _backends) = three_backends().await;
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    // l5d-ctx-dtab alone overrides the base dtab and is passed on as is.
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-ctx-dtab", "/svc/web => /#/io.l5d.fs/b")],
    )
    .await;
    assert_eq!(reply.backend(), "b");
    assert_eq!(
        reply.seen_headers("l5d-ctx-dtab"),
        ["/svc/web=>/#/io.l5d.fs/b"]
    );

    // User entries come after context entries, whatever the header order,
    // and the later entry wins.
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[
            ("l5d-dtab", "/svc/web => /#/io.l5d.fs/c"),
            ("l5d-ctx-dtab", "/svc/web => /#/io.l5d.fs/b"),
        ],
    )
    .await;
    assert_eq!(reply.backend(), "c");
    // The backend sees the combined local dtab (not the base dtab) as
    // l5d-ctx-dtab, and no l5d-dtab.
    assert_eq!(
        reply.seen_headers("l5d-ctx-dtab"),
        ["/svc/web=>/#/io.l5d.fs/b;/svc/web=>/#/io.l5d.fs/c"]
    );
    assert!(reply.seen_headers("l5d-dtab").is_empty());

    // Several l5d-dtab values apply in order.
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[
            ("l5d-dtab", "/svc/web => /#/io.l5d.fs/c"),
            ("l5d-dtab", "/svc/web => /#/io.l5d.fs/b"),
        ],
    )
    .await;
    assert_eq!(reply.backend(), "b");

    // An entry that does not bind falls back to the earlier ones.
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-dtab", "/svc/web => /#/io.l5d.fs/missing")],
    )
    .await;
    assert_eq!(reply.backend(), "a");

    // Without dtab headers nothing is added.
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert!(reply.seen_headers("l5d-ctx-dtab").is_empty());
    // dtab-local is deprecated: ignored for routing, passed on untouched.
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("dtab-local", "/svc/web => /#/io.l5d.fs/b")],
    )
    .await;
    assert_eq!(reply.backend(), "a");
    assert_eq!(
        reply.seen_header("dtab-local").unwrap(),
        "/svc/web => /#/io.l5d.fs/b"
    );
    router.stop().await;
}

#[tokio::test]
async fn malformed_dtab_header_is_a_400_that_says_where() {
    let (fs, backends) = three_backends().await;
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-dtab", "/svc =>> /#/io.l5d.fs/b")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let err = reply.l5d_err();
    assert!(err.contains("l5d-dtab"), "{err}");
    assert!(err.contains("/svc =>> /#/io.l5d.fs/b"), "{err}");
    assert!(err.contains("1:8"), "the position is missing: {err}");
    assert!(reply.text().contains("1:8"), "{}", reply.text());

    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-ctx-dtab", "nope")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.l5d_err().contains("l5d-ctx-dtab"),
        "{}",
        reply.l5d_err()
    );

    assert_eq!(backends.iter().map(Backend::requests).sum::<usize>(), 0);
    router.stop().await;
}

#[tokio::test]
async fn clear_context_strips_every_l5d_header() {
    let (fs, _backends) = three_backends().await;
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();
    let context = [
        ("l5d-dtab", "/svc/web => /#/io.l5d.fs/b"),
        (
            "l5d-ctx-trace",
            "AAAAAAAAAAEAAAAAAAAAAQAAAAAAAAABAAAAAAAAAAA=",
        ),
        ("l5d-ctx-deadline", "1 9000000000000000000"),
        ("l5d-sample", "1.0"),
        ("l5d-reqid", "from-the-client"),
        ("x-other", "kept"),
    ];

    // A trusting server honours them ...
    let trusted = get(&client, router.servers[0], "web", "/", &context).await;
    assert_eq!(trusted.backend(), "b");
    assert_eq!(trusted.seen_header("l5d-sample").unwrap(), "1.0");

    // ... an edge server drops them all, so the l5d-dtab is not applied.
    let edge = get(&client, router.servers[1], "web", "/", &context).await;
    assert_eq!(edge.status, StatusCode::OK, "{}", edge.text());
    assert_eq!(edge.backend(), "a");
    for name in [
        "l5d-dtab",
        "l5d-ctx-dtab",
        "l5d-ctx-trace",
        "l5d-ctx-deadline",
        "l5d-sample",
    ] {
        assert!(
            edge.seen_headers(name).is_empty(),
            "{name} reached the backend: {:?}",
            edge.seen_headers(name)
        );
    }
    assert_ne!(edge.seen_header("l5d-reqid").unwrap(), "from-the-client");
    assert_eq!(edge.seen_header("x-other").unwrap(), "kept");
    // The router's own headers for the backend are still there.
    assert_eq!(edge.seen_header("l5d-dst-service").unwrap(), "/svc/web");

    // A malformed l5d-dtab is dropped too, not rejected.
    let edge = get(
        &client,
        router.servers[1],
        "web",
        "/",
        &[("l5d-dtab", "/svc =>> nope")],
    )
    .await;
    assert_eq!(edge.status, StatusCode::OK, "{}", edge.text());
    router.stop().await;
}

#[tokio::test]
async fn backend_sees_dst_headers_reqid_and_via() {
    let (fs, _backends) = three_backends().await;
    let router = start_router(&config(&fs, ROUTER)).await;
    let client = client();

    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[
            ("via", "1.1 edge-proxy"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "private to this hop"),
            ("keep-alive", "timeout=5"),
        ],
    )
    .await;
    assert_eq!(reply.seen_header("l5d-dst-service").unwrap(), "/svc/web");
    assert_eq!(
        reply.seen_header("l5d-dst-client").unwrap(),
        "/#/io.l5d.fs/a"
    );
    assert!(reply.seen_headers("l5d-dst-residual").is_empty());
    let first_id = reply.seen_header("l5d-reqid").expect("l5d-reqid");
    assert!(!first_id.is_empty());
    // The client's Via entry is kept and the router adds its own.
    let via = reply.seen_headers("via").join(", ");
    let hops: Vec<&str> = via.split(',').map(str::trim).collect();
    assert_eq!(hops.len(), 2, "{via}");
    assert_eq!(hops[0], "1.1 edge-proxy");
    assert!(hops[1].starts_with("1.1 "), "{via}");
    // Hop-by-hop headers stop at the router.
    assert!(reply.seen_headers("x-hop").is_empty());
    assert!(reply.seen_headers("keep-alive").is_empty());

    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_ne!(reply.seen_header("l5d-reqid").unwrap(), first_id);

    // The router's l5d-dst-* replace a client's; a client's request id is
    // kept.
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[
            ("l5d-dst-service", "/forged"),
            ("l5d-dst-client", "/forged"),
            ("l5d-reqid", "from-the-client"),
        ],
    )
    .await;
    assert_eq!(reply.seen_headers("l5d-dst-service"), ["/svc/web"]);
    assert_eq!(reply.seen_headers("l5d-dst-client"), ["/#/io.l5d.fs/a"]);
    assert_eq!(reply.seen_headers("l5d-reqid"), ["from-the-client"]);

    // A residual left after binding is passed on.
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-dtab", "/svc/web => /#/io.l5d.fs/b/extra/more")],
    )
    .await;
    assert_eq!(reply.backend(), "b");
    assert_eq!(
        reply.seen_header("l5d-dst-client").unwrap(),
        "/#/io.l5d.fs/b"
    );
    assert_eq!(
        reply.seen_header("l5d-dst-residual").unwrap(),
        "/extra/more"
    );
    router.stop().await;
}

#[tokio::test]
async fn max_call_depth_stops_a_routing_loop() {
    let (fs, backends) = three_backends().await;
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
    maxCallDepth: 3
",
    ))
    .await;
    let client = client();

    // Under the limit: passes, with one more Via entry.
    let reply = get(
        &client,
        router.addr(),
        "a",
        "/",
        &[("via", "1.1 one, 1.1 two")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.seen_headers("via").join(",").split(',').count(), 3);

    // At the limit: refused.
    let reply = get(
        &client,
        router.addr(),
        "a",
        "/",
        &[("via", "1.1 one, 1.1 two, 1.1 three")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.l5d_err().contains("maximum call depth"),
        "{}",
        reply.l5d_err()
    );

    // A name that routes back to the router itself: the dtab travels on
    // as l5d-ctx-dtab, so every hop loops again until the limit.
    let to_self = format!("/svc/loop => /$/inet/127.0.0.1/{}", router.addr().port());
    let reply = get(
        &client,
        router.addr(),
        "loop",
        "/",
        &[("l5d-dtab", &to_self)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let err = reply.l5d_err();
    assert!(err.contains("maximum call depth 3"), "{err}");
    assert_eq!(backends.iter().map(Backend::requests).sum::<usize>(), 1);
    router.stop().await;
}
