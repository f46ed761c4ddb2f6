//! `accessControl` and `rateLimits`: who may reach which names (by client
//! certificate and source address), how fast, what a refused client gets
//! (403, 429 with `Retry-After`), and new rules taken on SIGHUP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration::pki::Pki;
use support::{Backend, FsDir, client, config, get, start_router};

async fn metrics(admin: SocketAddr) -> serde_json::Value {
    let reply = get(&client(), admin, "admin", "/admin/metrics.json", &[]).await;
    serde_json::from_slice(&reply.body).unwrap()
}

/// `curl` over mutual TLS to the router at `addr` (certificate for
/// `router.mesh`), asking for `host`, showing `cert`'s certificate (or
/// none). Gives the status code and `l5d-err`.
async fn curl_as(
    pki: &Pki,
    addr: SocketAddr,
    host: &str,
    cert: Option<&integration::pki::Leaf>,
) -> (u16, String) {
    let mut args = vec![
        "-sS".to_string(),
        "-o".into(),
        "/dev/null".into(),
        "-D".into(),
        "-".into(),
        "--cacert".into(),
        pki.ca().display().to_string(),
        "--resolve".into(),
        format!("router.mesh:{}:127.0.0.1", addr.port()),
        "-H".into(),
        format!("Host: {host}"),
    ];
    if let Some(cert) = cert {
        args.extend([
            "--cert".into(),
            cert.cert.display().to_string(),
            "--key".into(),
            cert.key.display().to_string(),
        ]);
    }
    args.push(format!("https://router.mesh:{}/", addr.port()));
    let out = tokio::task::spawn_blocking(move || Command::new("curl").args(&args).output())
        .await
        .unwrap()
        .expect("curl runs");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {head} {}", String::from_utf8_lossy(&out.stderr)));
    let err = head
        .lines()
        .find_map(|l| l.strip_prefix("l5d-err: "))
        .map(|v| support::url_decode(v.trim()))
        .unwrap_or_default();
    (status, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_follows_client_certificates_and_source_addresses() {
    if !integration::tls_clients::curl_available() {
        return;
    }
    let pki = Pki::new("mesh");
    let router_leaf = pki.leaf("router", &["router.mesh"]);
    let books = pki.leaf_with_uri("books", &["books.mesh"], "spiffe://mesh/books");
    let stranger = pki.leaf_with_uri("stranger", &["stranger.mesh"], "spiffe://mesh/stranger");
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    for name in ["web", "payments", "public"] {
        fs.point(name, &[&backend]);
    }
    let router = start_router(&config(
        &fs,
        &format!(
            "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  accessControl:
    default: deny
    rules:
    - prefix: /svc/public
      action: allow
    - prefix: /svc/payments
      action: allow
      identities: [spiffe://mesh/books]
    - prefix: /svc/web
      action: allow
      identities: ['*.mesh']
  servers:
  - port: 0
    tls:
      certPath: {}
      keyPath: {}
      caCertPath: {}
",
            router_leaf.cert.display(),
            router_leaf.key.display(),
            pki.ca().display()
        ),
    ))
    .await;
    let addr = router.addr();
    assert_eq!(curl_as(&pki, addr, "payments", Some(&books)).await.0, 200);
    let (status, err) = curl_as(&pki, addr, "payments", Some(&stranger)).await;
    assert_eq!(status, 403);
    assert!(
        err.starts_with("access denied to /svc/payments by accessControl.default"),
        "{err}"
    );
    assert!(err.contains("spiffe://mesh/stranger"), "{err}");
    assert_eq!(curl_as(&pki, addr, "web", Some(&stranger)).await.0, 200);
    // Without a certificate only the public name is open.
    assert_eq!(curl_as(&pki, addr, "public", None).await.0, 200);
    let (status, err) = curl_as(&pki, addr, "web", None).await;
    assert_eq!(status, 403);
    assert!(err.contains("unauthenticated client"), "{err}");

    let metrics = metrics(router.admin).await;
    assert_eq!(metrics["rt/http/access/rules/1/allowed"], 1, "{metrics}");
    assert_eq!(metrics["rt/http/access/default/denied"], 2, "{metrics}");
    router.stop().await;
}

#[tokio::test]
async fn source_ranges_deny_and_other_names_go_on() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    fs.point("admin-api", &[&backend]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  accessControl:
    rules:
    - prefix: /svc/admin-api
      action: deny
      sources: [127.0.0.0/8, '::1']
  servers:
  - port: 0
",
    ))
    .await;
    let reply = get(&client(), router.addr(), "admin-api", "/", &[]).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.l5d_err().contains("accessControl.rules[0]"),
        "{}",
        reply.l5d_err()
    );
    let reply = get(&client(), router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, 200);
    router.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_service() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    fs.point("books", &[&backend]);
    let router = start_router(&config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  rateLimits:
  - prefix: /svc/*
    requestsPerSecond: 0.1
    burst: 2
  servers:
  - port: 0
",
    ))
    .await;
    let client = client();
    for _ in 0..2 {
        let reply = get(&client, router.addr(), "web", "/", &[]).await;
        assert_eq!(reply.status, 200);
    }
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, 429);
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert!(
        reply.l5d_err().starts_with("rate limited by rateLimits[0]"),
        "{}",
        reply.l5d_err()
    );
    // Another service has its own bucket.
    let reply = get(&client, router.addr(), "books", "/", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(backend.requests(), 3, "the refused request never left");
    let metrics = metrics(router.admin).await;
    assert_eq!(metrics["rt/http/rate_limits/0/limited"], 1, "{metrics}");
    router.stop().await;
}

#[test]
fn bad_rules_are_config_errors_with_their_key() {
    let fs = FsDir::new();
    let yaml = config(
        &fs,
        "- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  accessControl:
    rules:
    - action: deny
      sources: [10.0.0/8]
  servers:
  - port: 0
",
    );
    let config: router::config::Config = namers::config::parse("test.yaml", &yaml).unwrap();
    let err = config.validate().unwrap_err();
    assert!(
        err.starts_with("routers[0].accessControl.rules[0].sources[0]: "),
        "{err}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary: rules edited in the config file take effect on
/// SIGHUP; a broken edit keeps the running rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_takes_new_rules_and_keeps_the_old_ones_on_a_bad_edit() {
    let backend = Backend::start("web").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let path = dir.path().join("router.yaml");
    let write = |action: &str| {
        std::fs::write(
            &path,
            format!(
                "admin: {{ip: 127.0.0.1, port: {admin}}}
routers:
- protocol: http
  dtab: /svc => /$/inet/127.0.0.1/{web};
  accessControl:
    rules:
    - prefix: /svc/web
      action: {action}
  servers:
  - ip: 127.0.0.1
    port: {port}
",
                web = backend.addr.port()
            ),
        )
        .unwrap();
    };
    write("allow");
    let stderr_path = dir.path().join("router.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_router"))
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let status = || async { get(&client(), addr, "web", "/", &[]).await.status.as_u16() };
    let mut up = false;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the router did not listen:\n{}", log());
    assert_eq!(status().await, 200);

    let hup = |n: usize| {
        let pid = child.id().to_string();
        async move {
            Command::new("kill").args(["-HUP", &pid]).status().unwrap();
            for _ in 0..100 {
                let lines = log();
                if lines.matches("reopening access logs").count() >= n
                    && (lines.matches("access control and rate limits").count() >= n)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("SIGHUP {n} not handled:\n{}", log());
        }
    };
    write("deny");
    hup(1).await;
    assert_eq!(status().await, 403);

    // A broken edit: the deny rule stays, and the log says why.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("action: deny", "action: maybe"),
    )
    .unwrap();
    hup(2).await;
    assert!(log().contains("not reloaded"), "{}", log());
    assert_eq!(status().await, 403);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
