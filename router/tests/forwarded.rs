//! `addForwardedHeader`: the RFC 7239 `Forwarded` header a server adds to
//! each request, as the backend sees it, on `http` and `h2` routers, with
//! every labeler kind, after a client's own `Forwarded`, and over TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::Command;

use http::StatusCode;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use integration::pki::Pki;
use support::{
    Backend, FsDir, Reply, STEP, client, collect, config, empty, full, get, request, send,
    start_router, within,
};
use tokio::net::TcpStream;

/// A backend `web` that every `/svc/<name>` reaches.
async fn web() -> (FsDir, Backend) {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    (fs, backend)
}

/// An `http` router whose first server has `addForwardedHeader: <block>`
/// (YAML indented for the server) and whose second has none.
fn http_router(block: &str) -> String {
    format!(
        "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n    \
         addForwardedHeader:\n{block}  - port: 0\n"
    )
}

/// `_` then six letters or digits: an obfuscated random label.
fn is_random(label: &str) -> bool {
    label.len() == 7
        && label.starts_with('_')
        && label[1..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The `by` and `for` values of a `Forwarded` value.
fn by_for(value: &str) -> (String, String) {
    let mut params = value.split(';');
    let by = params.next().unwrap().strip_prefix("by=").unwrap();
    let for_ = params.next().unwrap().strip_prefix("for=").unwrap();
    (by.to_string(), for_.to_string())
}

fn forwarded(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply
        .seen_header("forwarded")
        .unwrap_or_else(|| panic!("no Forwarded header reached the backend: {}", reply.text()))
}

#[tokio::test]
async fn http_router_adds_ip_labels_and_host_on_both_of_its_http1_paths() {
    let (fs, _backend) = web().await;
    let block = "      by: {kind: \"ip:port\"}\n      for: {kind: ip}\n";
    let router = start_router(&config(&fs, &http_router(block))).await;
    let port = router.addr().port();
    let client = client();
    let expected = format!("by=\"127.0.0.1:{port}\";for=127.0.0.1;host=web");

    // A bodiless GET: the router's own HTTP/1.1 server.
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(forwarded(&reply), expected);
    assert_eq!(reply.seen_headers("forwarded").len(), 1);
    // A request with a body: hyper's server.
    let post = request(router.addr(), "web", "/upload")
        .method("POST")
        .body(full("hello"))
        .unwrap();
    let reply = send(&client, post).await;
    assert_eq!(forwarded(&reply), expected);
    // A server without the key adds nothing.
    let reply = get(&client, router.servers[1], "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.seen_header("forwarded"), None, "{}", reply.text());
    router.stop().await;
}

#[tokio::test]
async fn a_wildcard_server_labels_the_address_the_client_reached() {
    let (fs, _backend) = web().await;
    let routers = "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n    \
                   ip: 0.0.0.0\n    addForwardedHeader:\n      by: {kind: \"ip:port\"}\n      \
                   for: {kind: \"ip:port\"}\n  - port: 0\n    ip: 0.0.0.0\n    \
                   addForwardedHeader: {}\n";
    let router = start_router(&config(&fs, routers)).await;
    let reached = |server: SocketAddr| SocketAddr::from(([127, 0, 0, 1], server.port()));
    let port = router.servers[0].port();
    let reply = get(&client(), reached(router.servers[0]), "web", "/", &[]).await;
    let (by, for_) = by_for(&forwarded(&reply));
    assert_eq!(by, format!("\"127.0.0.1:{port}\""));
    assert!(for_.starts_with("\"127.0.0.1:"), "{for_}");
    assert!(for_.ends_with('"') && for_ != by, "{for_}");
    // Random labels too: a wildcard is never `unknown`.
    let reply = get(&client(), reached(router.servers[1]), "web", "/", &[]).await;
    let (by, for_) = by_for(&forwarded(&reply));
    assert!(is_random(&by) && is_random(&for_), "{by} {for_}");
    router.stop().await;
}

#[tokio::test]
async fn by_default_both_labels_are_random_and_drawn_per_request() {
    let (fs, _backend) = web().await;
    let routers = "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n    \
                   addForwardedHeader: {}\n";
    let router = start_router(&config(&fs, routers)).await;
    let client = client();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        let value = forwarded(&reply);
        let (by, for_) = by_for(&value);
        assert!(is_random(&by) && is_random(&for_), "{value}");
        assert!(value.ends_with(";host=web"), "{value}");
        seen.push(by);
        seen.push(for_);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "a new label for each: {seen:?}");
    router.stop().await;
}

#[tokio::test]
async fn connection_random_labels_last_as_long_as_the_connection() {
    let (fs, _backend) = web().await;
    let block = "      by: {kind: connectionRandom}\n      for: {kind: connectionRandom}\n";
    let router = start_router(&config(&fs, &http_router(block))).await;
    // One pooled connection carries both requests.
    let client = client();
    let first = by_for(&forwarded(
        &get(&client, router.addr(), "web", "/", &[]).await,
    ));
    let second = by_for(&forwarded(
        &get(&client, router.addr(), "web", "/", &[]).await,
    ));
    assert!(is_random(&first.0) && is_random(&first.1), "{first:?}");
    assert_ne!(first.0, first.1, "by and for are drawn apart");
    assert_eq!(first, second, "the same connection keeps its labels");
    // Another connection draws its own.
    let other = by_for(&forwarded(
        &get(&support::client(), router.addr(), "web", "/", &[]).await,
    ));
    assert!(is_random(&other.0) && is_random(&other.1), "{other:?}");
    assert_ne!(other, first);
    router.stop().await;
}

#[tokio::test]
async fn router_and_static_labels_are_obfuscated() {
    let (fs, _backend) = web().await;
    let block = "      by: {kind: router}\n      for:\n        kind: static\n        label: edge\n";
    let router = start_router(&config(&fs, &http_router(block))).await;
    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    // The router's label is its protocol unless it has one.
    assert_eq!(forwarded(&reply), "by=_http;for=_edge;host=web");
    router.stop().await;

    let routers = "- protocol: http\n  label: _in.bound-1\n  dtab: /svc => /#/io.l5d.fs;\n  \
                   servers:\n  - port: 0\n    addForwardedHeader:\n      by: {kind: static, \
                   label: _lb}\n      for: {kind: router}\n";
    let router = start_router(&config(&fs, routers)).await;
    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    assert_eq!(forwarded(&reply), "by=_lb;for=_in.bound-1;host=web");
    router.stop().await;
}

#[tokio::test]
async fn a_client_s_forwarded_header_stays_and_ours_follows_it() {
    let (fs, _backend) = web().await;
    let block = "      by: {kind: static, label: l5d}\n      for: {kind: ip}\n";
    let router = start_router(&config(&fs, &http_router(block))).await;
    let client = client();
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("forwarded", "for=192.0.2.60;proto=https")],
    )
    .await;
    assert_eq!(
        reply.seen_headers("forwarded"),
        [
            "for=192.0.2.60;proto=https",
            "by=_l5d;for=127.0.0.1;host=web"
        ]
    );
    router.stop().await;
}

/// An HTTP/2 (prior knowledge) connection to `addr`.
async fn h2_connect(addr: SocketAddr) -> http2::SendRequest<support::Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn h2_get(sender: &mut http2::SendRequest<support::Body>, uri: &str) -> Reply {
    let request = http::Request::builder().uri(uri).body(empty()).unwrap();
    let response = within(STEP, "the h2 answer", sender.send_request(request))
        .await
        .unwrap();
    collect(response).await
}

#[tokio::test]
async fn h2_router_adds_authority_and_proto() {
    let (fs, _backend) = web().await;
    let routers = "- protocol: h2\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n    \
                   addForwardedHeader:\n      by: {kind: router}\n      for: {kind: \
                   \"ip:port\"}\n";
    let router = start_router(&config(&fs, routers)).await;
    let mut sender = h2_connect(router.addr()).await;
    let reply = h2_get(&mut sender, "http://web/").await;
    let value = forwarded(&reply);
    let (by, for_) = by_for(&value);
    assert_eq!(by, "_h2");
    assert!(for_.starts_with("\"127.0.0.1:"), "{value}");
    assert!(value.ends_with("\";authority=web;proto=http"), "{value}");
    // The same connection, the same client port.
    let again = forwarded(&h2_get(&mut sender, "http://web/again").await);
    assert_eq!(again, value);
    router.stop().await;
}

#[tokio::test]
async fn h2_request_labels_are_drawn_per_stream() {
    let (fs, _backend) = web().await;
    let routers = "- protocol: h2\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n    \
                   addForwardedHeader:\n      for: {kind: requestRandom}\n";
    let router = start_router(&config(&fs, routers)).await;
    let mut sender = h2_connect(router.addr()).await;
    let first = forwarded(&h2_get(&mut sender, "http://web/").await);
    let second = forwarded(&h2_get(&mut sender, "http://web/").await);
    let (a, b) = (by_for(&first), by_for(&second));
    assert!(is_random(&a.0) && is_random(&a.1), "{first}");
    assert!(a.0 != b.0 && a.1 != b.1, "{first} / {second}");
    assert!(first.ends_with(";authority=web;proto=http"), "{first}");
    router.stop().await;
}

#[tokio::test]
async fn bad_labelers_are_refused_naming_the_key() {
    let fs = FsDir::new();
    let parse = |block: &str| {
        let yaml = config(&fs, &http_router(block));
        namers::config::parse::<::router::config::Config>("linkerd.yaml", &yaml)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let at = "linkerd.yaml: routers[0].servers[0].addForwardedHeader";
    let err = parse("      by: {kind: hostname}\n");
    assert!(err.starts_with(&format!("{at}.by: ")), "{err}");
    assert!(err.contains("unknown labeler kind \"hostname\""), "{err}");
    let err = parse("      for: {kind: static}\n");
    assert!(err.starts_with(&format!("{at}.for: ")), "{err}");
    assert!(err.contains("needs a `label`"), "{err}");
    let err = parse("      for: {kind: static, label: \"a b\"}\n");
    assert!(err.starts_with(&format!("{at}.for: ")), "{err}");
    assert!(err.contains("obfuscated identifier"), "{err}");

    // The router's label is checked when the server is built.
    let yaml = config(
        &fs,
        "- protocol: http\n  label: my/router\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - \
         port: 0\n    addForwardedHeader:\n      by: {kind: router}\n",
    );
    let config: ::router::config::Config = namers::config::parse("linkerd.yaml", &yaml).unwrap();
    let specs = config.validate().unwrap();
    let err = ::router::server::check(&config, &specs).unwrap_err();
    assert!(
        err.starts_with(
            "routers[0].servers[0].addForwardedHeader.by: kind router: the router's label \
             \"my/router\""
        ),
        "{err}"
    );
    let err = ::router::server::start(&config, specs)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(err.contains("obfuscated identifier"), "{err}");
}

/// `curl` over TLS to `https://web:<port>/` (resolved to the router,
/// `Host: web`), with `extra` arguments; the backend's echo.
async fn curl(pki: &Pki, addr: SocketAddr, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend([
        "-sS".into(),
        "--max-time".into(),
        "10".into(),
        "--cacert".into(),
        pki.ca().display().to_string(),
        "--resolve".into(),
        format!("web:{}:127.0.0.1", addr.port()),
        "-H".into(),
        "Host: web".into(),
        format!("https://web:{}/", addr.port()),
    ]);
    let out = tokio::task::spawn_blocking(move || Command::new("curl").args(&args).output())
        .await
        .unwrap()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not the echo ({e}): {stdout}"))
}

fn seen_forwarded(echo: &serde_json::Value) -> Vec<String> {
    echo["headers"]["forwarded"]
        .as_array()
        .unwrap_or_else(|| panic!("no Forwarded header: {echo}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_proto_is_https() {
    if !integration::tls_clients::curl_available() {
        return;
    }
    let pki = Pki::new("edge");
    let leaf = pki.leaf("router", &["web", "127.0.0.1"]);
    let (fs, _backend) = web().await;
    let server = |protocol: &str| {
        format!(
            "- protocol: {protocol}\n  dtab: /svc => /#/io.l5d.fs;\n  \
             servers:\n  - port: 0\n    tls:\n      certPath: {}\n      keyPath: {}\n    \
             addForwardedHeader:\n      by: {{kind: \"ip:port\"}}\n      for: {{kind: ip}}\n",
            leaf.cert.display(),
            leaf.key.display()
        )
    };
    let routers = format!("{}{}", server("http"), server("h2"));
    let router = start_router(&config(&fs, &routers)).await;
    let (http, h2) = (router.servers[0], router.servers[1]);

    // HTTP/2 always names its scheme: proto is the connection's, https.
    let echo = curl(&pki, h2, &["--http2"]).await;
    assert_eq!(
        seen_forwarded(&echo),
        [format!(
            "by=\"127.0.0.1:{}\";for=127.0.0.1;authority=web;proto=https",
            h2.port()
        )]
    );
    // HTTP/1.1 names one only in an absolute URI, as with Linkerd.
    let by = format!("by=\"127.0.0.1:{}\";for=127.0.0.1;host=web", http.port());
    let echo = curl(&pki, http, &["--http1.1"]).await;
    assert_eq!(seen_forwarded(&echo), std::slice::from_ref(&by));
    let target = format!("http://web:{}/", http.port());
    let echo = curl(&pki, http, &["--http1.1", "--request-target", &target]).await;
    assert_eq!(seen_forwarded(&echo), [format!("{by};proto=https")]);
    router.stop().await;
}
