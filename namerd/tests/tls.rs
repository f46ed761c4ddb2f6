//! namerd's API (`io.l5d.httpController` `tls`) and admin server
//! (`admin.tls`) over TLS, in-process, with certificates from a test CA:
//! the namerd client reads, writes and watches over mutual TLS; each way a
//! handshake can fail is reported as what it is; plaintext to a TLS port
//! is closed unanswered; new certificate files are taken without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use integration::pki::{Leaf, Pki};
use namerd::client::{BaseUrl, Client, ClientError, Namespace, TlsFailure, TlsSettings};
use namers::tls::{ALPN_HTTP11, ClientTlsConfig, client::ClientAuthConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The name in namerd's certificate.
const NAMERD: &str = "namerd.test";

/// namerd with its API on mutual TLS (client certificates from `pki`'s
/// CA required) and its admin server on TLS with `admin`'s certificate.
async fn start(pki: &Pki, api: &Leaf, admin: &Leaf) -> namerd::server::Running {
    let yaml = format!(
        "admin:\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\n\
         storage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /a\n\
         interfaces:\n- kind: io.l5d.httpController\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\n    caCertPath: {}\n    requireClientAuth: true\n",
        admin.cert.display(),
        admin.key.display(),
        api.cert.display(),
        api.key.display(),
        pki.ca().display(),
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("namerd.yaml", &yaml).unwrap();
    namerd::server::start(&config).await.unwrap()
}

/// A client of the namerd at `addr` that trusts `ca`, checks `name` and
/// shows `cert` when given one.
fn client(addr: SocketAddr, ca: &Path, name: &str, cert: Option<&Leaf>) -> Client {
    let tls = ClientTlsConfig {
        common_name: Some(name.to_string()),
        trust_certs_bundle: Some(ca.to_path_buf()),
        client_auth: cert.map(|leaf| ClientAuthConfig {
            cert_path: leaf.cert.clone(),
            key_path: leaf.key.clone(),
            intermediate_certs_path: None,
        }),
        ..ClientTlsConfig::default()
    }
    .build(&[ALPN_HTTP11])
    .unwrap();
    let tls = Arc::new(tls);
    let server_name = namers::tls::client::server_name(Some(name), addr.ip()).unwrap();
    let settings = TlsSettings::new(move || tls.rustls_config(), Some(server_name));
    Client::with_tls(
        BaseUrl::parse(&format!("https://{addr}")).unwrap(),
        settings,
    )
    .with_timeout(Duration::from_secs(5))
}

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn dtab(text: &str) -> dtab::Dtab {
    dtab::Dtab::read(text).unwrap()
}

fn tls_failure(e: &ClientError) -> TlsFailure {
    match e {
        ClientError::Tls { failure, .. } => *failure,
        other => panic!("not a TLS failure: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_mutual_tls_reads_writes_and_watches() {
    let pki = Pki::new("control");
    let server = pki.leaf("namerd", &[NAMERD]);
    let operator = pki.leaf("operator", &["operator"]);
    let namerd = start(&pki, &server, &server).await;
    let client = client(namerd.api_addrs[0], pki.ca(), NAMERD, Some(&operator));

    client
        .create_dtab(&ns("web"), &dtab("/svc=>/#/io.l5d.fs"))
        .await
        .unwrap();
    let got = client.get_dtab(&ns("web")).await.unwrap();
    assert_eq!(got.dtab.show(), "/svc=>/#/io.l5d.fs");

    // A watch is served by namerd's own watch path: its updates must
    // leave the TLS session as they happen.
    let mut watch = client.watch_dtab(&ns("web")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.dtab.show(), "/svc=>/#/io.l5d.fs");
    client
        .update_dtab(
            &ns("web"),
            &dtab("/svc=>/#/io.l5d.fs/v2"),
            Some(&got.version),
        )
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the update reaches the watcher")
        .unwrap()
        .unwrap();
    assert_eq!(next.dtab.show(), "/svc=>/#/io.l5d.fs/v2");
    assert_eq!(
        client.list_dtabs().await.unwrap(),
        vec!["default".to_string(), "web".to_string()]
    );
    namerd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_say_what_failed() {
    let pki = Pki::new("control");
    let server = pki.leaf("namerd", &[NAMERD]);
    let operator = pki.leaf("operator", &["operator"]);
    let namerd = start(&pki, &server, &server).await;
    let api = namerd.api_addrs[0];

    // No client certificate where one is required.
    let e = client(api, pki.ca(), NAMERD, None)
        .list_dtabs()
        .await
        .unwrap_err();
    assert_eq!(tls_failure(&e), TlsFailure::ClientCertRefused, "{e}");
    assert!(
        e.to_string().contains("refused the client certificate"),
        "{e}"
    );

    // A client certificate from a CA namerd does not trust.
    let stranger = Pki::new("stranger");
    let outsider = stranger.leaf("outsider", &["outsider"]);
    let e = client(api, pki.ca(), NAMERD, Some(&outsider))
        .list_dtabs()
        .await
        .unwrap_err();
    assert_eq!(tls_failure(&e), TlsFailure::ClientCertRefused, "{e}");

    // The wrong name for namerd: the message names the verification
    // failure and both names.
    let e = client(api, pki.ca(), "other.test", Some(&operator))
        .list_dtabs()
        .await
        .unwrap_err();
    assert_eq!(tls_failure(&e), TlsFailure::NameMismatch, "{e}");
    let text = e.to_string();
    assert!(text.contains("not valid for the name"), "{text}");
    assert!(
        text.contains("other.test") && text.contains(NAMERD),
        "{text}"
    );

    // namerd's certificate from a CA the client does not trust.
    let e = client(api, stranger.ca(), NAMERD, Some(&operator))
        .list_dtabs()
        .await
        .unwrap_err();
    assert_eq!(tls_failure(&e), TlsFailure::UnknownCa, "{e}");
    assert!(e.to_string().contains("not signed by a trusted CA"), "{e}");

    // HTTPS to a plain HTTP port.
    let plain: namerd::config::NamerdConfig = namers::config::parse(
        "namerd.yaml",
        "admin:\n  port: 0\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n",
    )
    .unwrap();
    let plain = namerd::server::start(&plain).await.unwrap();
    let e = client(plain.api_addrs[0], pki.ca(), NAMERD, Some(&operator))
        .list_dtabs()
        .await
        .unwrap_err();
    assert_eq!(tls_failure(&e), TlsFailure::NotTls, "{e}");
    plain.stop().await;

    // Plain HTTP to the TLS port: closed, unanswered.
    for addr in [api, namerd.admin_addr] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /api/1/dtabs HTTP/1.1\r\nHost: n\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply))
            .await
            .expect("closed");
        assert!(
            reply.is_empty(),
            "{addr}: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    namerd.stop().await;
}

/// One request on a TLS connection to the admin server, answered whole.
async fn admin_get(addr: SocketAddr, ca: &Path, name: &str, path: &str) -> Result<String, String> {
    let tls = ClientTlsConfig {
        common_name: Some(name.to_string()),
        trust_certs_bundle: Some(ca.to_path_buf()),
        ..ClientTlsConfig::default()
    }
    .build(&[ALPN_HTTP11])
    .unwrap();
    let server_name = namers::tls::client::server_name(Some(name), addr.ip()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = tls.connect(server_name, tcp).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_server_serves_tls_and_takes_new_certificates() {
    let pki = Pki::new("control");
    let api = pki.leaf("namerd", &[NAMERD]);
    let first = pki.leaf("admin-a", &["admin-a.test"]);
    let second = pki.leaf("admin-b", &["admin-b.test"]);
    // The admin server reads copies, replaced below.
    let dir = tempfile::tempdir().unwrap();
    let live = Leaf {
        cert: dir.path().join("admin.pem"),
        key: dir.path().join("admin-key.pem"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let namerd = start(&pki, &api, &live).await;
    let admin = namerd.admin_addr;

    let pong = admin_get(admin, pki.ca(), "admin-a.test", "/admin/ping")
        .await
        .unwrap();
    assert!(pong.starts_with("HTTP/1.1 200"), "{pong}");
    assert!(pong.ends_with("pong"), "{pong}");
    let e = admin_get(admin, pki.ca(), "admin-b.test", "/admin/ping")
        .await
        .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");

    // New files, each put in place whole (as a secret volume does), the
    // certificate dated later so that the change shows even on a coarse
    // clock.
    for (from, to) in [(&second.key, &live.key), (&second.cert, &live.cert)] {
        let staged = dir.path().join("staged.pem");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(&live.cert)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match admin_get(admin, pki.ca(), "admin-b.test", "/admin/ping").await {
            Ok(pong) => {
                assert!(pong.ends_with("pong"), "{pong}");
                break;
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the new certificate was not taken: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The figures say so, for the admin server and the API.
    let metrics = admin_get(admin, pki.ca(), "admin-b.test", "/admin/metrics.json")
        .await
        .unwrap();
    let json = &metrics[metrics.find("\r\n\r\n").unwrap() + 4..];
    let metrics: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(metrics["admin/tls/reloads"], 1, "{metrics}");
    assert_eq!(metrics["admin/tls/reload_failures"], 0, "{metrics}");
    assert!(metrics["admin/tls/expires_in_s"].as_f64().unwrap() > 3600.0);
    assert_eq!(
        metrics["interface/io.l5d.httpController/tls/reloads"], 0,
        "{metrics}"
    );
    namerd.stop().await;
}

#[tokio::test]
async fn bad_certificate_files_fail_the_start_and_name_the_file() {
    let pki = Pki::new("control");
    let good = pki.leaf("namerd", &[NAMERD]);
    let expired = pki.expired("old", &[NAMERD]);
    let garbage = pki.dir().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();

    let start = |yaml: String| async move {
        let source = namers::config::Source::new("namerd.yaml", yaml);
        let config: namerd::config::NamerdConfig = source.parse().unwrap();
        match namerd::server::start(&config).await {
            Ok(_) => panic!("started"),
            Err(e) => source.error(&e).to_string(),
        }
    };
    let api_tls = |cert: &Path, key: &Path| {
        format!(
            "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\n",
            cert.display(),
            key.display()
        )
    };
    let e = start(api_tls(&expired.cert, &expired.key)).await;
    assert!(
        e.starts_with(&format!(
            "namerd.yaml: interfaces[0] (io.l5d.httpController): tls: line 8: {}: the certificate expired on ",
            expired.cert.display()
        )),
        "{e}"
    );
    let e = start(api_tls(&good.cert, &garbage)).await;
    assert!(
        e.contains(&format!("{}: not PEM", garbage.display())),
        "{e}"
    );

    let admin_tls = format!(
        "admin:\n  port: 0\n  tls:\n    certPath: {}\n    keyPath: {}\nstorage:\n  kind: io.l5d.inMemory\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n",
        garbage.display(),
        good.key.display()
    );
    let e = start(admin_tls).await;
    assert!(
        e.starts_with(&format!(
            "namerd.yaml: admin.tls: line 3: {}: not PEM",
            garbage.display()
        )),
        "{e}"
    );
}
