//! Naming requests: by Host, by path, by method and host, by a header, and
//! with a list of identifiers tried in order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::{Method, StatusCode, Version};
use support::{Backend, FsDir, client, config, empty, get, request, send, start_router};

#[tokio::test]
async fn host_header_names_the_service_and_the_request_passes_unchanged() {
    let web = Backend::start("web").await;
    let api = Backend::start("api").await;
    let fs = FsDir::new();
    fs.point("web", &[&web]);
    fs.point("api", &[&api]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: |
    /svc => /#/io.l5d.fs;
    /svc/web:8080 => /#/io.l5d.fs/api;
  servers:
  - port: 0
",
    ))
    .await;
    let client = client();

    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "web");
    assert_eq!(reply.seen_header("l5d-dst-service").unwrap(), "/svc/web");

    let reply = get(&client, router.addr(), "api", "/", &[]).await;
    assert_eq!(reply.backend(), "api");

    // The port is part of the one name segment.
    let reply = get(&client, router.addr(), "web:8080", "/", &[]).await;
    assert_eq!(reply.backend(), "api");
    assert_eq!(
        reply.seen_header("l5d-dst-service").unwrap(),
        "/svc/web:8080"
    );

    // Method, path, query, Host and body reach the backend as sent.
    let post = request(router.addr(), "web", "/a/b%20c?x=1&y=two")
        .method(Method::POST)
        .header("x-custom", "kept")
        .body(support::full("payload"))
        .unwrap();
    let reply = send(&client, post).await;
    assert_eq!(reply.backend(), "web");
    assert_eq!(reply.seen_method(), "POST");
    assert_eq!(reply.seen_uri(), "/a/b%20c?x=1&y=two");
    assert_eq!(reply.seen_header("host").unwrap(), "web");
    assert_eq!(reply.seen_header("x-custom").unwrap(), "kept");
    assert_eq!(reply.echo()["body"], "payload");
    router.stop().await;
}

#[tokio::test]
async fn path_identifier_takes_segments_and_consumes_them_keeping_the_query() {
    let users = Backend::start("users").await;
    let fs = FsDir::new();
    fs.point("users", &[&users]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  label: consume
  identifier:
    kind: io.l5d.path
    segments: 2
    consume: true
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
- protocol: http
  label: keep
  identifier:
    kind: io.l5d.path
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
",
    ))
    .await;
    let (consume, keep) = (router.servers[0], router.servers[1]);
    let client = client();

    let reply = get(
        &client,
        consume,
        "ignored",
        "/users/v2/42/x?full=1&q=a%2Fb",
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "users");
    assert_eq!(reply.seen_uri(), "/42/x?full=1&q=a%2Fb");
    assert_eq!(
        reply.seen_header("l5d-dst-service").unwrap(),
        "/svc/users/v2"
    );
    assert_eq!(
        reply.seen_header("l5d-dst-client").unwrap(),
        "/#/io.l5d.fs/users"
    );
    assert_eq!(reply.seen_header("l5d-dst-residual").unwrap(), "/v2");

    // Consuming every segment leaves `/`, still with the query.
    let reply = get(&client, consume, "ignored", "/users/v2?x=1", &[]).await;
    assert_eq!(reply.seen_uri(), "/?x=1");

    let reply = get(&client, keep, "ignored", "/users/v2/42?x=1", &[]).await;
    assert_eq!(reply.backend(), "users");
    assert_eq!(reply.seen_uri(), "/users/v2/42?x=1");
    assert_eq!(reply.seen_header("l5d-dst-service").unwrap(), "/svc/users");
    assert_eq!(reply.seen_header("l5d-dst-residual"), None);

    // Too few segments: the client's fault.
    let reply = get(&client, consume, "ignored", "/users", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.l5d_err().contains("not enough segments"),
        "{}",
        reply.l5d_err()
    );
    assert_eq!(users.requests(), 3);
    router.stop().await;
}

#[tokio::test]
async fn method_and_host_identifier_names_version_method_and_lowercased_host() {
    let reader = Backend::start("reader").await;
    let writer = Backend::start("writer").await;
    let old = Backend::start("old").await;
    let fs = FsDir::new();
    fs.point("reader", &[&reader]);
    fs.point("writer", &[&writer]);
    fs.point("old", &[&old]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  identifier:
    kind: io.l5d.methodAndHost
  dtab: |
    /svc/1.1/GET/web => /#/io.l5d.fs/reader;
    /svc/1.1/POST/web => /#/io.l5d.fs/writer;
    /svc/1.0 => /#/io.l5d.fs/old;
  servers:
  - port: 0
",
    ))
    .await;
    let client = client();

    let reply = get(&client, router.addr(), "WEB", "/items", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "reader");
    assert_eq!(
        reply.seen_header("l5d-dst-service").unwrap(),
        "/svc/1.1/GET/web"
    );

    let post = request(router.addr(), "web", "/items")
        .method(Method::POST)
        .body(empty())
        .unwrap();
    let reply = send(&client, post).await;
    assert_eq!(reply.backend(), "writer");

    // HTTP/1.0 requests are named by version and method only.
    let old_style = request(router.addr(), "web", "/items")
        .version(Version::HTTP_10)
        .body(empty())
        .unwrap();
    let reply = send(&client, old_style).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "old");
    assert_eq!(
        reply.seen_header("l5d-dst-service").unwrap(),
        "/svc/1.0/GET"
    );
    assert_eq!(reply.seen_header("l5d-dst-residual").unwrap(), "/GET");

    // No dentry for DELETE.
    let delete = request(router.addr(), "web", "/items")
        .method(Method::DELETE)
        .body(empty())
        .unwrap();
    let reply = send(&client, delete).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(reply.l5d_err().contains("/svc/1.1/DELETE/web"));
    router.stop().await;
}

#[tokio::test]
async fn header_identifier_reads_a_path_with_a_residual() {
    let web = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&web]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  label: default-header
  identifier:
    kind: io.l5d.header
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
- protocol: http
  label: custom-header
  dstPrefix: /http
  identifier:
    kind: io.l5d.header
    header: X-Dst
  dtab: /http => /#/io.l5d.fs;
  servers:
  - port: 0
",
    ))
    .await;
    let client = client();

    let reply = get(
        &client,
        router.servers[0],
        "h",
        "/p",
        &[("l5d-name", "/web/v2/extra")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "web");
    assert_eq!(
        reply.seen_header("l5d-dst-service").unwrap(),
        "/svc/web/v2/extra"
    );
    assert_eq!(reply.seen_header("l5d-dst-residual").unwrap(), "/v2/extra");
    assert_eq!(reply.seen_uri(), "/p");

    let reply = get(&client, router.servers[1], "h", "/", &[("x-dst", "/web")]).await;
    assert_eq!(reply.backend(), "web");
    assert_eq!(reply.seen_header("l5d-dst-service").unwrap(), "/http/web");

    // Absent, and not a path.
    let reply = get(&client, router.servers[1], "h", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.l5d_err().contains("absent"), "{}", reply.l5d_err());
    let reply = get(&client, router.servers[1], "h", "/", &[("x-dst", "web")]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.l5d_err().contains("not a path"),
        "{}",
        reply.l5d_err()
    );
    router.stop().await;
}

#[tokio::test]
async fn identifier_list_falls_through_to_the_next_identifier() {
    let web = Backend::start("web").await;
    let api = Backend::start("api").await;
    let fs = FsDir::new();
    fs.point("web", &[&web]);
    fs.point("api", &[&api]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  label: header-then-host
  identifier:
  - kind: io.l5d.header
    header: x-dst
  - kind: io.l5d.header.token
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
- protocol: http
  label: header-then-path
  identifier:
  - kind: io.l5d.header
    header: x-dst
  - kind: io.l5d.path
    segments: 2
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
",
    ))
    .await;
    let client = client();

    let reply = get(&client, router.servers[0], "web", "/", &[("x-dst", "/api")]).await;
    assert_eq!(reply.backend(), "api");
    let reply = get(&client, router.servers[0], "web", "/", &[]).await;
    assert_eq!(reply.backend(), "web");

    let reply = get(&client, router.servers[1], "web", "/api/v1", &[]).await;
    assert_eq!(reply.backend(), "api");
    assert_eq!(reply.seen_header("l5d-dst-service").unwrap(), "/svc/api/v1");

    // When every identifier fails, the error says what each one tried.
    let reply = get(&client, router.servers[1], "web", "/only-one", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let err = reply.l5d_err();
    assert!(err.contains("io.l5d.header"), "{err}");
    assert!(err.contains("io.l5d.path"), "{err}");
    assert!(
        reply.text().contains("not enough segments"),
        "{}",
        reply.text()
    );
    assert_eq!(web.requests() + api.requests(), 3);
    router.stop().await;
}
