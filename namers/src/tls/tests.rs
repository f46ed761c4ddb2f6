#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use integration::pki::{Leaf, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn server_config(leaf: &Leaf) -> ServerTlsConfig {
    ServerTlsConfig {
        enabled: None,
        cert_path: leaf.cert.clone(),
        intermediate_certs_path: None,
        key_path: leaf.key.clone(),
        ca_cert_path: None,
        ciphers: None,
        require_client_auth: None,
        protocols: None,
    }
}

fn client_config(pki: &Pki, name: &str) -> ClientTlsConfig {
    ClientTlsConfig {
        common_name: Some(name.into()),
        trust_certs_bundle: Some(pki.ca().to_path_buf()),
        ..ClientTlsConfig::default()
    }
}

/// Serves one TLS connection at a time: answers each with the peer's
/// identity (or `anonymous`) and the ALPN protocol agreed.
async fn echo_server(tls: std::sync::Arc<ServerTls>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = tls.acceptor();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut stream = Stream::Server(Box::new(tls));
                let who = stream
                    .peer_identity()
                    .map_or("anonymous".to_string(), |id| id.forwarded_client_cert());
                let alpn = String::from_utf8_lossy(stream.alpn().unwrap_or(b"none")).to_string();
                let _ = stream.write_all(format!("{who}|{alpn}").as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

async fn ask(tls: &ClientTls, name: &str, addr: std::net::SocketAddr) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server_name = client::server_name(Some(name), addr.ip())?;
    let mut stream = Stream::Client(Box::new(tls.connect(server_name, tcp).await?));
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer)
}

#[tokio::test]
async fn mutual_tls_carries_the_client_identity_and_alpn() {
    let pki = Pki::new("mesh");
    let server = pki.leaf("server", &["web.default.svc"]);
    let client = pki.leaf_with_uri("client", &["books"], "spiffe://mesh/books");
    let mut config = server_config(&server);
    config.ca_cert_path = Some(pki.ca().to_path_buf());
    config.require_client_auth = Some(true);
    let addr = echo_server(std::sync::Arc::new(
        config.build(&[ALPN_H2, ALPN_HTTP11]).unwrap(),
    ))
    .await;

    let mut with_cert = client_config(&pki, "web.default.svc");
    with_cert.client_auth = Some(client::ClientAuthConfig {
        cert_path: client.cert.clone(),
        key_path: client.key.clone(),
        intermediate_certs_path: None,
    });
    let answer = ask(
        &with_cert.build(&[ALPN_H2]).unwrap(),
        "web.default.svc",
        addr,
    )
    .await
    .unwrap();
    let (who, alpn) = answer.split_once('|').unwrap();
    assert_eq!(alpn, "h2");
    assert!(who.starts_with("Hash="), "{who}");
    assert!(
        who.ends_with(
            ";SAN=spiffe://mesh/books;DNS=books;Subject=\"O=Switchboard tests,CN=books\""
        ),
        "{who}"
    );

    // Without a certificate the handshake is refused.
    let without = client_config(&pki, "web.default.svc").build(&[]).unwrap();
    let refused = ask(&without, "web.default.svc", addr).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn a_wrong_server_name_or_an_unknown_ca_fails_the_handshake_and_says_why() {
    let pki = Pki::new("mesh");
    let server = pki.leaf("server", &["web.default.svc"]);
    let addr = echo_server(std::sync::Arc::new(
        server_config(&server).build(&[]).unwrap(),
    ))
    .await;

    let tls = client_config(&pki, "books.default.svc").build(&[]).unwrap();
    let err = ask(&tls, "books.default.svc", addr).await.unwrap_err();
    assert!(
        err.starts_with("TLS handshake with books.default.svc failed: "),
        "{err}"
    );
    assert!(err.contains("not valid for name"), "{err}");

    let other = Pki::new("other");
    let tls = client_config(&other, "web.default.svc").build(&[]).unwrap();
    let err = ask(&tls, "web.default.svc", addr).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    // disableValidation takes any certificate.
    let unchecked = ClientTlsConfig {
        disable_validation: Some(true),
        ..ClientTlsConfig::default()
    };
    let answer = ask(&unchecked.build(&[]).unwrap(), "anything", addr)
        .await
        .unwrap();
    assert_eq!(answer, "anonymous|none");
}

#[test]
fn bad_files_are_errors_that_name_the_file_and_the_problem() {
    let pki = Pki::new("mesh");
    let good = pki.leaf("good", &["web"]);
    let other = pki.leaf("other", &["web"]);
    let expired = pki.expired("old", &["web"]);
    let not_pem = pki.dir().join("garbage.pem");
    std::fs::write(&not_pem, "hello").unwrap();

    let err = |config: ServerTlsConfig| config.build(&[]).unwrap_err();
    let mut config = server_config(&good);
    config.cert_path = not_pem.clone();
    let e = err(config);
    assert!(
        e.starts_with(&format!("{}: not PEM", not_pem.display())),
        "{e}"
    );

    let mut config = server_config(&good);
    config.key_path = not_pem.clone();
    let e = err(config);
    assert!(
        e.starts_with(&format!("{}: not PEM", not_pem.display())),
        "{e}"
    );

    let unclosed = pki.dir().join("unclosed.pem");
    std::fs::write(&unclosed, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let mut config = server_config(&good);
    config.cert_path = unclosed.clone();
    assert_eq!(
        err(config),
        format!(
            "{}: not a PEM certificate file: a PEM block is not closed (no `-----END CERTIFICATE-----` line)",
            unclosed.display()
        )
    );

    let e = err(server_config(&expired));
    assert!(
        e.starts_with(&format!(
            "{}: the certificate expired on ",
            expired.cert.display()
        )),
        "{e}"
    );

    let mut config = server_config(&good);
    config.key_path = other.key.clone();
    let e = err(config);
    assert_eq!(
        e,
        format!(
            "{}: the key does not match the certificate in {}",
            other.key.display(),
            good.cert.display()
        )
    );

    let mut config = server_config(&good);
    config.cert_path = PathBuf::from("/nonexistent/cert.pem");
    assert!(err(config).starts_with("/nonexistent/cert.pem: cannot read: "));

    let mut config = server_config(&good);
    config.require_client_auth = Some(true);
    assert!(err(config).starts_with("requireClientAuth: needs caCertPath"));

    let mut config = server_config(&good);
    config.protocols = Some(vec!["TLSv1.1".into()]);
    assert!(err(config).starts_with("protocols: `TLSv1.1` is not offered"));

    let mut config = server_config(&good);
    config.ciphers = Some(vec!["RC4-MD5".into()]);
    let e = err(config);
    assert!(
        e.starts_with("ciphers: unknown or unsupported cipher suite `RC4-MD5`"),
        "{e}"
    );
    assert!(e.contains("TLS_AES_128_GCM_SHA256"), "{e}");

    let client = |config: ClientTlsConfig| config.build(&[]).unwrap_err();
    assert!(client(ClientTlsConfig::default()).starts_with("commonName: required"));
    let both = ClientTlsConfig {
        common_name: Some("web".into()),
        trust_certs: Some(vec![pki.ca().to_path_buf()]),
        trust_certs_bundle: Some(pki.ca().to_path_buf()),
        ..ClientTlsConfig::default()
    };
    assert!(client(both).starts_with("trustCerts: both"));
    let unchecked_auth = ClientTlsConfig {
        disable_validation: Some(true),
        client_auth: Some(client::ClientAuthConfig {
            cert_path: good.cert.clone(),
            key_path: good.key.clone(),
            intermediate_certs_path: None,
        }),
        ..ClientTlsConfig::default()
    };
    assert!(client(unchecked_auth).starts_with("disableValidation: true is incompatible"));
}

#[test]
fn ciphers_and_protocols_take_iana_names() {
    let suites = cipher_suites(Some(&[
        "TLS_AES_256_GCM_SHA384".to_string(),
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string(),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(suites.len(), 2);
    assert_eq!(
        protocol_versions(Some(&["TLSv1.3".to_string()]))
            .unwrap()
            .len(),
        1
    );
    assert!(protocol_versions(Some(&[])).is_err());
}

#[tokio::test]
async fn new_files_are_taken_and_bad_ones_leave_the_old_certificate() {
    let pki = Pki::new("mesh");
    let first = pki.leaf("first", &["web"]);
    let second = pki.leaf("second", &["web", "books"]);
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let tls = std::sync::Arc::new(
        server_config(&Leaf {
            cert: cert.clone(),
            key: key.clone(),
        })
        .build(&[])
        .unwrap(),
    );
    let addr = echo_server(tls.clone()).await;
    let client = client_config(&pki, "books").build(&[]).unwrap();
    assert!(ask(&client, "books", addr).await.is_err());

    // A bad certificate keeps the old one.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(tls.reload_if_changed());
    assert_eq!(tls.stats().failures.load(Ordering::Relaxed), 1);
    assert!(
        ask(&client_config(&pki, "web").build(&[]).unwrap(), "web", addr)
            .await
            .is_ok()
    );

    // The new pair is taken; the connection opened after it sees it.
    std::fs::copy(&second.key, &key).unwrap();
    std::fs::copy(&second.cert, &cert).unwrap();
    // (Sizes may match and the clock may be coarse: make sure it looks
    // changed.)
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&cert)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert!(tls.reload_if_changed());
    assert_eq!(tls.stats().reloads.load(Ordering::Relaxed), 1);
    assert!(ask(&client, "books", addr).await.is_ok());
    assert!(!tls.reload_if_changed());
}

/// `protocols`, `ciphers`, `intermediateCertsPath` and `trustCerts` do what
/// they say in a real handshake.
#[tokio::test]
async fn protocols_ciphers_chains_and_trust_lists_shape_the_handshake() {
    let pki = Pki::new("mesh");
    let leaf = pki.leaf("server", &["web"]);
    let mut config = server_config(&leaf);
    config.protocols = Some(vec!["TLSv1.2".into()]);
    config.ciphers = Some(vec!["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".into()]);
    // The CA's certificate stands in for an intermediate: it is sent after
    // the leaf.
    config.intermediate_certs_path = Some(pki.ca().to_path_buf());
    let server = std::sync::Arc::new(config.build(&[]).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = server.acceptor().accept(tcp).await.unwrap();
        let _ = tls.write_all(b"ok").await;
        let _ = tls.shutdown().await;
    });

    let client = ClientTlsConfig {
        common_name: Some("web".into()),
        trust_certs: Some(vec![pki.ca().to_path_buf()]),
        ..ClientTlsConfig::default()
    }
    .build(&[])
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = client::server_name(Some("web"), addr.ip()).unwrap();
    let mut tls = client.connect(name, tcp).await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "ok");
    let (_, session) = tls.get_ref();
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        session.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
    );
    assert_eq!(session.peer_certificates().map(<[_]>::len), Some(2));

    // A client that offers only TLS 1.3 does not get through.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut only12 = server_config(&leaf);
    only12.protocols = Some(vec!["TLSv1.2".into()]);
    let server = only12.build(&[]).unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = server.acceptor().accept(tcp).await;
    });
    let only13 = ClientTlsConfig {
        protocols: Some(vec!["TLSv1.3".into()]),
        ..client_config(&pki, "web")
    }
    .build(&[])
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = client::server_name(Some("web"), addr.ip()).unwrap();
    let err = only13.connect(name, tcp).await.unwrap_err();
    assert!(err.starts_with("TLS handshake with web failed"), "{err}");
}
