//! The router's control plane over TLS, in-process: its admin server with
//! `admin.tls`, and an `io.l5d.namerd.http` interpreter that reaches namerd
//! over mutual TLS and routes requests with what namerd binds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use integration::pki::{Leaf, Pki};
use namers::tls::{ALPN_HTTP11, ClientTlsConfig};
use support::{Backend, FsDir, client, get, start_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// namerd with an `io.l5d.fs` namer on `fs`, `dtab` as its `default`
/// namespace, and its API on mutual TLS with `server`'s certificate.
async fn namerd(pki: &Pki, server: &Leaf, fs: &FsDir, dtab: &str) -> namerd::server::Running {
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: {dtab:?}\n\
         namers:\n- kind: io.l5d.fs\n  rootDir: {}\n\
         interfaces:\n- kind: io.l5d.httpController\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\n    caCertPath: {}\n    requireClientAuth: true\n",
        fs.path().display(),
        server.cert.display(),
        server.key.display(),
        pki.ca().display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    namerd::server::start(&config).await.unwrap()
}

/// `GET path` on a TLS connection to `addr`, checked against `ca` and
/// `name`: the whole answer, or why the handshake failed.
async fn https_get(addr: SocketAddr, ca: &Path, name: &str, path: &str) -> Result<String, String> {
    let tls = ClientTlsConfig {
        common_name: Some(name.to_string()),
        trust_certs_bundle: Some(ca.to_path_buf()),
        ..ClientTlsConfig::default()
    }
    .build(&[ALPN_HTTP11])
    .unwrap();
    let server_name = namers::tls::client::server_name(Some(name), addr.ip()).unwrap();
    let mut stream = tls
        .connect(server_name, TcpStream::connect(addr).await.unwrap())
        .await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_routes_with_bindings_from_namerd_over_mutual_tls() {
    let pki = Pki::new("control");
    let namerd_cert = pki.leaf("namerd", &["namerd.test"]);
    let router_cert = pki.leaf("router", &["router.test"]);
    let admin_cert = pki.leaf("admin", &["admin.test"]);
    let web = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&web]);
    let namerd = namerd(&pki, &namerd_cert, &fs, "/svc => /#/io.l5d.fs").await;

    let yaml = format!(
        "admin:\n  port: 0\n  tls:\n    certPath: {admin_cert}\n    keyPath: {admin_key}\n\
         routers:\n- protocol: http\n  interpreter:\n    kind: io.l5d.namerd.http\n    experimental: true\n    dst: /$/inet/127.0.0.1/{port}\n    tls:\n      commonName: namerd.test\n      trustCertsBundle: {ca}\n      clientAuth:\n        certPath: {cert}\n        keyPath: {key}\n  servers:\n  - port: 0\n",
        admin_cert = admin_cert.cert.display(),
        admin_key = admin_cert.key.display(),
        port = namerd.api_addrs[0].port(),
        ca = pki.ca().display(),
        cert = router_cert.cert.display(),
        key = router_cert.key.display(),
    );
    let router = start_router(&yaml).await;

    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "web");

    // The admin server: TLS with its own certificate, readiness through
    // namerd over TLS.
    let ready = https_get(router.admin, pki.ca(), "admin.test", "/admin/ready")
        .await
        .unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let e = https_get(router.admin, pki.ca(), "namerd.test", "/admin/ping")
        .await
        .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
    // Plaintext to it: closed, unanswered.
    let mut plain = TcpStream::connect(router.admin).await.unwrap();
    plain
        .write_all(b"GET /admin/ping HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut reply))
        .await
        .expect("closed");
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));

    router.stop().await;
    namerd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_common_name_fails_requests_with_the_verification_failure() {
    let pki = Pki::new("control");
    let namerd_cert = pki.leaf("namerd", &["namerd.test"]);
    let router_cert = pki.leaf("router", &["router.test"]);
    let fs = FsDir::new();
    let namerd = namerd(&pki, &namerd_cert, &fs, "/svc => /#/io.l5d.fs").await;
    let yaml = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  interpreter:\n    kind: io.l5d.namerd.http\n    dst: /$/inet/127.0.0.1/{port}\n    retry:\n      baseSeconds: 1\n    tls:\n      commonName: elsewhere.test\n      trustCertsBundle: {ca}\n      clientAuth:\n        certPath: {cert}\n        keyPath: {key}\n  servers:\n  - port: 0\n",
        port = namerd.api_addrs[0].port(),
        ca = pki.ca().display(),
        cert = router_cert.cert.display(),
        key = router_cert.key.display(),
    );
    let router = start_router(&yaml).await;
    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{reply:?}");
    let err = reply.l5d_err();
    assert!(err.contains("not valid for the name"), "{err}");
    assert!(err.contains("elsewhere.test"), "{err}");
    router.stop().await;
    namerd.stop().await;
}
