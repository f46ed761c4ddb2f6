//! The client against an in-process namerd stand-in.

use std::time::Duration;

use dtab::{Dtab, Path};
use serde_json::json;

use super::fake::FakeNamerd;
use super::*;

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

#[tokio::test]
async fn dtab_crud_round_trip() {
    let fake = FakeNamerd::start(&[("default", "/svc=>/#/io.l5d.fs")]).await;
    let client = Client::new(fake.base.clone());

    assert_eq!(client.list_dtabs().await.unwrap(), vec!["default"]);
    let got = client.get_dtab(&ns("default")).await.unwrap();
    assert_eq!(got.dtab.show(), "/svc=>/#/io.l5d.fs");
    assert_eq!(got.version.to_etag(), "AAAAAAAAAAE=");

    let new = Dtab::read("/svc=>/srv;/srv=>/#/io.l5d.fs").unwrap();
    client.create_dtab(&ns("other"), &new).await.unwrap();
    assert_eq!(fake.dtab("other").unwrap(), new.show());
    assert_eq!(client.list_dtabs().await.unwrap(), vec!["default", "other"]);

    client
        .update_dtab(&ns("default"), &new, Some(&got.version))
        .await
        .unwrap();
    assert_eq!(fake.dtab("default").unwrap(), new.show());

    client.delete_dtab(&ns("other")).await.unwrap();
    assert_eq!(fake.dtab("other"), None);

    let log = fake.log();
    assert!(
        log.contains(&"POST /api/1/dtabs/other Content-Type: application/json".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(
            &"PUT /api/1/dtabs/default If-Match: AAAAAAAAAAE= Content-Type: application/json"
                .to_string()
        ),
        "{log:?}"
    );
}

#[tokio::test]
async fn errors_are_classified_and_name_the_server() {
    let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
    let client = Client::new(fake.base.clone());
    let server = fake.base.to_string();

    let e = client.get_dtab(&ns("missing")).await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("namerd at {server}: 404 Not Found: GET /api/1/dtabs/missing")
    );

    let e = client
        .create_dtab(&ns("default"), &Dtab::empty())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::CONFLICT), "{e:?}");

    let stale = Version::from_u64(99);
    let e = client
        .update_dtab(&ns("default"), &Dtab::empty(), Some(&stale))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Conflict { status, .. } if status == 412),
        "{e:?}"
    );

    let e = client
        .update_dtab(&ns("missing"), &Dtab::empty(), Some(&stale))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");

    // Without a version, update creates.
    client
        .update_dtab(&ns("fresh"), &Dtab::empty(), None)
        .await
        .unwrap();
    assert_eq!(fake.dtab("fresh").as_deref(), Some(""));

    let e = client.delete_dtab(&ns("missing")).await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn name_queries_send_path_and_dtab() {
    let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
    let client = Client::new(fake.base.clone());
    let path = Path::read("/yeezy").unwrap();
    let extra = Dtab::read("/yeezy=>/bar").unwrap();

    let tree = client
        .delegate(&ns("default"), &path, &extra)
        .await
        .unwrap();
    assert_eq!(tree["type"], "alt");
    assert_eq!(tree["alt"][0]["dentry"]["dst"], "/bar");

    let addr = client
        .resolve(&ns("default"), &path, &Dtab::empty())
        .await
        .unwrap();
    assert_eq!(addr["type"], "bound");
    let bound = client.bind(&ns("default"), &path, &extra).await.unwrap();
    assert_eq!(bound["type"], "bound");

    let log = fake.log();
    assert!(
        log.contains(&"GET /api/1/delegate/default?path=/yeezy&dtab=/yeezy%3D%3E/bar".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"GET /api/1/resolve/default?path=/yeezy".to_string()),
        "{log:?}"
    );

    let e = client
        .resolve(&ns("missing"), &path, &Dtab::empty())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn watch_dtab_follows_changes() {
    let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
    let client = Client::new(fake.base.clone());
    let mut watch = client.watch_dtab(&ns("default")).await.unwrap();

    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.dtab.show(), "/a=>/b");
    assert_eq!(first.version, None);

    fake.set_dtab("default", "/a=>/c");
    let second = watch.next().await.unwrap().unwrap();
    assert_eq!(second.dtab.show(), "/a=>/c");
    assert!(
        fake.log()
            .contains(&"GET /api/1/dtabs/default?watch=true".to_string())
    );
}

#[tokio::test]
async fn watch_resolve_yields_each_address_as_json() {
    let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
    let client = Client::new(fake.base.clone());
    let path = Path::read("/svc/web").unwrap();
    let mut watch = client
        .watch_resolve(&ns("default"), &path, &Dtab::empty())
        .await
        .unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap()["type"], "bound");
    fake.set_addr(json!({"type": "neg"}));
    assert_eq!(watch.next().await.unwrap().unwrap(), json!({"type": "neg"}));
}

#[tokio::test]
async fn end_of_stream_and_failure_are_distinct() {
    let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
    let client = Client::new(fake.base.clone());

    let end = Path::read("/end").unwrap();
    let mut watch = client
        .watch_resolve(&ns("default"), &end, &Dtab::empty())
        .await
        .unwrap();
    assert!(watch.next().await.unwrap().is_ok());
    assert!(watch.next().await.is_none());

    let error = Path::read("/error").unwrap();
    let mut watch = client
        .watch_bind(&ns("default"), &error, &Dtab::empty())
        .await
        .unwrap();
    assert!(watch.next().await.unwrap().is_ok());
    let e = watch.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&e, ClientError::WatchFailed { message, .. } if message == "boom: the namer failed"),
        "{e:?}"
    );
    assert!(watch.next().await.is_none());

    // A watch that cannot start fails at once, with the status.
    let e = client.watch_dtab(&ns("missing")).await;
    assert!(
        e.is_ok(),
        "Linkerd suppresses missing namespaces in watches"
    );
    let e = client
        .watch_addr(&ns("missing"), &Path::read("/x").unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn watch_as_a_stream() {
    use futures_util::StreamExt as _;
    let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
    let client = Client::new(fake.base.clone());
    let end = Path::read("/end").unwrap();
    let watch = client
        .watch_resolve(&ns("default"), &end, &Dtab::empty())
        .await
        .unwrap();
    let items: Vec<_> = watch.into_stream().collect().await;
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept connections and never answer.
    let _hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let client = Client::new(BaseUrl::parse(&format!("http://{addr}")).unwrap())
        .with_timeout(Duration::from_millis(200));
    let e = client.list_dtabs().await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("no answer within 200ms"), "{e}");
    let e = client.watch_list().await.err().unwrap();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::new(BaseUrl::parse(&format!("http://{addr}")).unwrap());
    let e = client.list_dtabs().await.unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
    assert!(e.is_transient());
    assert!(
        e.to_string().starts_with(&format!(
            "namerd at http://{addr}: unreachable: GET /api/1/dtabs"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn a_path_prefix_is_kept() {
    let fake = FakeNamerd::start(&[]).await;
    let base = BaseUrl::parse(&format!("{}/namerd/", fake.base)).unwrap();
    let e = Client::new(base).list_dtabs().await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
    assert_eq!(fake.log(), vec!["GET /namerd/api/1/dtabs".to_string()]);
}

#[test]
fn dtab_updates_read_bare_and_versioned_forms() {
    let bare: DtabUpdate = serde_json::from_str(r#"[{"prefix":"/a","dst":"/b"}]"#).unwrap();
    assert_eq!(bare.dtab.show(), "/a=>/b");
    assert_eq!(bare.version, None);
    let versioned: DtabUpdate =
        serde_json::from_str(r#"{"version":"AAAAAAAAAAI=","dtab":[{"prefix":"/a","dst":"/b"}]}"#)
            .unwrap();
    assert_eq!(versioned.version, Some(Version::from_u64(2)));
}

#[tokio::test]
async fn the_write_token_goes_with_writes_only() {
    let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
    let client = Client::new(fake.base.clone())
        .with_bearer_token("s3cret")
        .unwrap();
    client.get_dtab(&ns("default")).await.unwrap();
    client.delete_dtab(&ns("default")).await.unwrap();
    assert_eq!(
        fake.log(),
        vec![
            "GET /api/1/dtabs/default".to_string(),
            "DELETE /api/1/dtabs/default Authorization: Bearer s3cret".to_string(),
        ]
    );
    assert!(
        Client::new(fake.base.clone())
            .with_bearer_token("a\nb")
            .is_err()
    );
}

#[tokio::test]
async fn https_without_tls_settings_says_so() {
    let fake = FakeNamerd::start(&[("default", "/svc=>/a")]).await;
    let https = fake.base.to_string().replace("http://", "https://");
    let client = Client::new(BaseUrl::parse(&https).unwrap());
    let e = client.list_dtabs().await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Tls {
                failure: TlsFailure::Other,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_transient());
    assert!(e.to_string().contains("needs TLS settings"), "{e}");
}
