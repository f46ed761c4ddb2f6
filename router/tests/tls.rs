//! TLS on the router's servers and to its endpoints: ALPN, h2 over TLS,
//! mutual TLS between two routers with the client's identity forwarded,
//! per-service certificates through `io.l5d.static` captures, certificates
//! reloaded, and what bad certificates and bad clients get.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use integration::pki::{Leaf, Pki};
use support::{Backend, FsDir, client, config, get, start_router};

/// Runs a command off the runtime's threads; its status, stdout, stderr.
async fn run(command: &str, args: Vec<String>) -> (bool, String, String) {
    let command = command.to_string();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(&command)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{command} runs: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `curl` to `https://web:<port>/` resolved to the router (`Host: web`),
/// trusting `pki`'s CA; extra arguments first. Gives status, body (with
/// the HTTP version on its last line), stderr.
async fn curl(pki: &Pki, addr: SocketAddr, extra: &[&str]) -> (bool, String, String) {
    curl_to(pki, "web", addr, extra).await
}

/// As [`curl`], to `https://<server>:<port>/`.
async fn curl_to(
    pki: &Pki,
    server: &str,
    addr: SocketAddr,
    extra: &[&str],
) -> (bool, String, String) {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend([
        "-sS".into(),
        "--max-time".into(),
        "10".into(),
        "--cacert".into(),
        pki.ca().display().to_string(),
        "--resolve".into(),
        format!("{server}:{}:127.0.0.1", addr.port()),
        "-H".into(),
        "Host: web".into(),
        "-w".into(),
        "\n%{http_version}".into(),
        format!("https://{server}:{}/", addr.port()),
    ]);
    run("curl", args).await
}

fn server_tls(leaf: &Leaf) -> String {
    format!(
        "    tls:\n      certPath: {}\n      keyPath: {}\n",
        leaf.cert.display(),
        leaf.key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_h2_routers_terminate_tls_with_alpn() {
    if !integration::tls_clients::curl_available() {
        return;
    }
    let pki = Pki::new("edge");
    let leaf = pki.leaf("router", &["web", "127.0.0.1"]);
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let routers = format!(
        "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n{tls}\
         - protocol: h2\n  label: h2\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n{tls}",
        tls = server_tls(&leaf)
    );
    let router = start_router(&config(&fs, &routers)).await;
    let (http, h2) = (router.servers[0], router.servers[1]);

    let (ok, out, err) = curl(&pki, http, &[]).await;
    assert!(ok, "{err}");
    assert!(out.contains("\"uri\""), "the backend's echo: {out}");
    assert!(out.ends_with("\n1.1"), "{out}");

    let (ok, out, err) = curl(&pki, h2, &["--http2"]).await;
    assert!(ok, "{err}");
    assert!(out.ends_with("\n2"), "h2 over TLS: {out}");

    // openssl sees the certificate verified and the protocol agreed.
    if integration::tls_clients::openssl_available() {
        let (_, out, _) = run(
            "sh",
            vec![
                "-c".into(),
                format!(
                    "echo | openssl s_client -connect 127.0.0.1:{} -servername web -alpn h2,http/1.1 -CAfile {} 2>&1",
                    h2.port(),
                    pki.ca().display()
                ),
            ],
        )
        .await;
        assert!(out.contains("ALPN protocol: h2"), "{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        assert!(out.contains("CN=web") || out.contains("CN = web"), "{out}");
    }

    // Plain HTTP to a TLS port gets no answer: the connection closes.
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(http).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    // Counted under the server's figures.
    let metrics = metrics(&router).await;
    let key = "rt/http/server/127.0.0.1/0/tls/handshake_failures";
    assert_eq!(metrics[key], 1, "{metrics}");
    let key = "rt/http/server/127.0.0.1/0/tls/expires_in_s";
    assert!(metrics[key].as_f64().unwrap() > 3600.0, "{metrics}");
    router.stop().await;
}

/// An outgoing router (plain server, mutual TLS to its endpoints) in front
/// of an incoming router (TLS server requiring client certificates) in
/// front of a plain backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_speak_mutual_tls_and_forward_the_client_identity() {
    if !integration::tls_clients::curl_available() {
        return;
    }
    let pki = Pki::new("mesh");
    let incoming_leaf = pki.leaf("incoming", &["incoming.mesh"]);
    let outgoing_leaf = pki.leaf_with_uri("outgoing", &["outgoing.mesh"], "spiffe://mesh/books");
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let incoming = start_router(&config(
        &fs,
        &format!(
            "- protocol: http\n  label: incoming\n  dtab: /svc => /#/io.l5d.fs;\n  client:\n    forwardClientCert: true\n  servers:\n  - port: 0\n{}      caCertPath: {}\n      requireClientAuth: true\n",
            server_tls(&incoming_leaf),
            pki.ca().display()
        ),
    ))
    .await;
    let outgoing = start_router(&config(
        &fs,
        &format!(
            "- protocol: http\n  label: outgoing\n  dtab: /svc => /$/inet/127.1/{port};\n  servers:\n  - port: 0\n  client:\n    tls:\n      commonName: incoming.mesh\n      trustCertsBundle: {ca}\n      clientAuth:\n        certPath: {cert}\n        keyPath: {key}\n",
            port = incoming.addr().port(),
            ca = pki.ca().display(),
            cert = outgoing_leaf.cert.display(),
            key = outgoing_leaf.key.display(),
        ),
    ))
    .await;

    // A client's own claim of a certificate does not get through.
    let reply = get(
        &client(),
        outgoing.addr(),
        "web",
        "/",
        &[("x-forwarded-client-cert", "Hash=forged")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.backend(), "web");
    let forwarded = reply.seen_header("x-forwarded-client-cert").unwrap();
    assert!(forwarded.starts_with("Hash="), "{forwarded}");
    assert!(!forwarded.contains("forged"), "{forwarded}");
    assert!(
        forwarded.contains(";SAN=spiffe://mesh/books;DNS=outgoing.mesh;Subject=\""),
        "{forwarded}"
    );

    // The client certificate's figures.
    let figures = metrics(&outgoing).await;
    assert_eq!(
        figures["rt/outgoing/client_tls/0/reload_failures"], 0,
        "{figures}"
    );
    assert!(
        figures["rt/outgoing/client_tls/0/expires_in_s"]
            .as_f64()
            .unwrap()
            > 3600.0,
        "{figures}"
    );

    // Without a client certificate the incoming router refuses the
    // handshake.
    let (ok, _, err) = curl_to(&pki, "incoming.mesh", incoming.addr(), &[]).await;
    assert!(!ok, "answered without a client certificate");
    assert!(!err.is_empty());
    // With one, curl gets through.
    let (ok, out, err) = curl_to(
        &pki,
        "incoming.mesh",
        incoming.addr(),
        &[
            "--cert",
            &outgoing_leaf.cert.display().to_string(),
            "--key",
            &outgoing_leaf.key.display().to_string(),
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("x-forwarded-client-cert"), "{out}");
    outgoing.stop().await;
    incoming.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_clients_check_per_service_certificates() {
    let pki = Pki::new("services");
    let books = Backend::start_tls(
        "books",
        server_tls_config(&pki.leaf("books", &["books.default.svc"])),
    )
    .await;
    let authors = Backend::start_tls(
        "authors",
        server_tls_config(&pki.leaf("authors", &["authors.default.svc"])),
    )
    .await;
    let fs = FsDir::new();
    fs.point("books", &[&books]);
    fs.point("authors", &[&authors]);
    // `impostor` is served by the books backend, whose certificate does not
    // carry impostor.default.svc.
    fs.point("impostor", &[&books]);
    let router = start_router(&config(
        &fs,
        &format!(
            "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n  client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /#/io.l5d.fs/{{service}}\n      tls:\n        commonName: \"{{service}}.default.svc\"\n        trustCertsBundle: {}\n",
            pki.ca().display()
        ),
    ))
    .await;
    let client = client();
    for name in ["books", "authors", "books"] {
        let reply = get(&client, router.addr(), name, "/", &[]).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        assert_eq!(reply.backend(), name);
    }
    // Connections are kept: two requests to books, one connection.
    assert_eq!(books.connections(), 1);

    let reply = get(&client, router.addr(), "impostor", "/", &[]).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    let err = reply.l5d_err();
    assert!(
        err.contains("TLS handshake with impostor.default.svc failed"),
        "{err}"
    );
    assert!(err.contains("not valid for name"), "{err}");
    // Other clients go on.
    let reply = get(&client, router.addr(), "authors", "/", &[]).await;
    assert_eq!(reply.status, 200);
    router.stop().await;
}

fn server_tls_config(leaf: &Leaf) -> namers::tls::ServerTls {
    serde_json::from_value::<namers::tls::ServerTlsConfig>(serde_json::json!({
        "certPath": leaf.cert,
        "keyPath": leaf.key,
    }))
    .unwrap()
    .build(&[b"http/1.1", b"h2"])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    if !integration::tls_clients::curl_available() {
        return;
    }
    let pki = Pki::new("edge");
    let first = pki.leaf("first", &["old.example"]);
    let second = pki.leaf("second", &["web"]);
    let dir = tempfile::tempdir().unwrap();
    let live = Leaf {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(
        &fs,
        &format!(
            "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n{}",
            server_tls(&live)
        ),
    ))
    .await;
    let (ok, _, err) = curl(&pki, router.addr(), &[]).await;
    assert!(!ok, "the first certificate is not for `web`");
    assert!(err.contains("web"), "{err}");

    // A broken certificate file is not taken.
    std::fs::write(&live.cert, "garbage").unwrap();
    let metrics_key = "rt/http/server/127.0.0.1/0/tls/reload_failures";
    wait_for_metric(&router, metrics_key, 1).await;
    let (ok, _, err) = curl(&pki, router.addr(), &["-k"]).await;
    assert!(ok, "the old certificate still serves: {err}");

    // The new pair is.
    std::fs::copy(&second.key, &live.key).unwrap();
    std::fs::copy(&second.cert, &live.cert).unwrap();
    wait_for_metric(&router, "rt/http/server/127.0.0.1/0/tls/reloads", 1).await;
    let (ok, out, err) = curl(&pki, router.addr(), &[]).await;
    assert!(ok, "{err}");
    assert!(out.ends_with("\n1.1"), "{out}");
    router.stop().await;
}

async fn metrics(router: &support::RunningRouter) -> serde_json::Value {
    let reply = get(&client(), router.admin, "admin", "/admin/metrics.json", &[]).await;
    serde_json::from_slice(&reply.body).unwrap()
}

async fn wait_for_metric(router: &support::RunningRouter, key: &str, value: u64) {
    for _ in 0..100 {
        if metrics(router).await[key].as_u64() == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} never reached {value}");
}

#[tokio::test]
async fn bad_certificates_stop_the_router_from_starting_and_say_why() {
    let pki = Pki::new("edge");
    let expired = pki.expired("old", &["web"]);
    let good = pki.leaf("good", &["web"]);
    let other = pki.leaf("other", &["web"]);
    let fs = FsDir::new();
    let start = |servers: String| {
        let yaml = config(
            &fs,
            &format!(
                "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n{servers}"
            ),
        );
        async move {
            let config: router::config::Config = namers::config::parse("test.yaml", &yaml).unwrap();
            let specs = match config.validate() {
                Ok(specs) => specs,
                Err(e) => return e.to_string(),
            };
            match router::server::start(&config, specs).await {
                Ok(_) => panic!("started"),
                Err(e) => e,
            }
        }
    };
    let err = start(server_tls(&expired)).await;
    assert!(
        err.starts_with(&format!(
            "routers[0].servers[0].tls: {}: the certificate expired on ",
            expired.cert.display()
        )),
        "{err}"
    );
    let mismatched = Leaf {
        cert: good.cert.clone(),
        key: other.key.clone(),
    };
    let err = start(server_tls(&mismatched)).await;
    assert!(
        err.contains("the key does not match the certificate"),
        "{err}"
    );

    let client_tls = format!(
        "  client:\n    tls:\n      commonName: web\n      trustCertsBundle: {}\n",
        good.key.display()
    );
    let err = start(client_tls).await;
    assert!(
        err.starts_with(&format!(
            "routers[0].client.tls: {}: not PEM",
            good.key.display()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_routers_speak_h2_over_tls_to_their_endpoints() {
    if !integration::tls_clients::curl_available() {
        return;
    }
    let pki = Pki::new("services");
    let books = Backend::start_tls(
        "books",
        server_tls_config(&pki.leaf("books", &["books.default.svc"])),
    )
    .await;
    let fs = FsDir::new();
    fs.point("books", &[&books]);
    let router = start_router(&config(
        &fs,
        &format!(
            "- protocol: h2\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n  client:\n    tls:\n      commonName: books.default.svc\n      trustCertsBundle: {}\n",
            pki.ca().display()
        ),
    ))
    .await;
    let (ok, out, err) = run(
        "curl",
        vec![
            "-sS".into(),
            "--http2-prior-knowledge".into(),
            "-H".into(),
            "Host: books".into(),
            "-D".into(),
            "-".into(),
            format!("http://127.0.0.1:{}/shelf", router.addr().port()),
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.contains("x-backend: books"), "{out}");
    // The backend got HTTP/2 (over TLS, by ALPN), with the client's
    // authority.
    assert!(out.contains("\"version\":\"HTTP/2.0\""), "{out}");
    assert!(out.contains("\"authority\":\"books\""), "{out}");
    assert_eq!(books.connections(), 1);
    router.stop().await;
}

/// Reads from `stream` until what has come contains `wanted`, for at most
/// 5 s; gives everything read.
async fn read_until<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    seen: &mut Vec<u8>,
    wanted: &str,
) -> String {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(seen).contains(wanted) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {wanted:?} within 5 s; got {:?}",
                    String::from_utf8_lossy(seen)
                )
            })
            .unwrap();
        assert!(
            n > 0,
            "closed before {wanted:?}: {:?}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(seen).into_owned();
    seen.clear();
    text
}

/// One TLS connection carries bodiless requests (the router's own HTTP/1
/// server), a streamed answer whose first part arrives before the rest
/// exists, and then a request with a body (handed to hyper mid-connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tls_connection_carries_every_kind_of_http1_request() {
    use tokio::io::AsyncWriteExt;
    let pki = Pki::new("edge");
    let leaf = pki.leaf("router", &["web"]);
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(
        &fs,
        &format!(
            "- protocol: http\n  dtab: /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n{}",
            server_tls(&leaf)
        ),
    ))
    .await;
    let client = client_config_for(&pki, "web");
    let tcp = tokio::net::TcpStream::connect(router.addr()).await.unwrap();
    let name = namers::tls::client::server_name(Some("web"), router.addr().ip()).unwrap();
    let mut tls = client.connect(name, tcp).await.unwrap();
    let mut seen = Vec::new();

    for i in 0..3 {
        tls.write_all(format!("GET /n{i} HTTP/1.1\r\nHost: web\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let answer = read_until(&mut tls, &mut seen, &format!("\"uri\":\"/n{i}\"")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    tls.write_all(b"GET /s HTTP/1.1\r\nHost: web\r\nx-test-mode: stream\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut tls, &mut seen, "first\n").await;
    backend.release();
    read_until(&mut tls, &mut seen, "rest\n\r\n0\r\n\r\n").await;

    tls.write_all(b"POST /p HTTP/1.1\r\nHost: web\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let answer = read_until(&mut tls, &mut seen, "\"body\":\"hello\"").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(backend.requests(), 5);
    router.stop().await;
}

fn client_config_for(pki: &Pki, name: &str) -> namers::tls::ClientTls {
    namers::tls::ClientTlsConfig {
        common_name: Some(name.into()),
        trust_certs_bundle: Some(pki.ca().to_path_buf()),
        ..Default::default()
    }
    .build(&[b"http/1.1"])
    .unwrap()
}
