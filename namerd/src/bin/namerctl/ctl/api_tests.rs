//! The client and namerctl's commands against namerd's real `/api/1`
//! (in-process: in-memory store, an `io.l5d.fs` namer).

use std::time::Duration;

use dtab::{Dtab, Path};

use serde::de::DeserializeOwned;

use crate::ctl::{self, Exit};
use namerd::client::*;

struct Running {
    client: Client,
    disco: tempfile::TempDir,
    _namerd: namerd::server::Running,
}

/// namerd with `default: /svc => /#/io.l5d.fs` and `web` at 127.0.0.1:8080;
/// `controller` adds keys to the `io.l5d.httpController` interface.
async fn start(controller: &str) -> Running {
    let disco = tempfile::tempdir().unwrap();
    std::fs::write(disco.path().join("web"), "127.0.0.1 8080\n").unwrap();
    let yaml = format!(
        "admin:\n  port: 0\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /#/io.l5d.fs\n\
         namers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: 0\n{controller}",
        disco.path().display()
    );
    let config: namerd::config::NamerdConfig = namers::config::parse("test.yaml", &yaml).unwrap();
    let namerd = namerd::server::start(&config).await.unwrap();
    let base = BaseUrl::parse(&format!("http://{}", namerd.api_addrs[0])).unwrap();
    Running {
        client: Client::new(base).with_timeout(Duration::from_secs(5)),
        disco,
        _namerd: namerd,
    }
}

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn path(p: &str) -> Path {
    Path::read(p).unwrap()
}

/// The next watch value, failing the test after 5 s.
async fn next<T: DeserializeOwned>(watch: &mut Watch<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("no watch update within 5 s")
        .expect("the watch ended")
        .expect("the watch failed")
}

#[tokio::test]
async fn dtab_crud_against_namerd() {
    let n = start("").await;
    let c = &n.client;
    assert_eq!(c.list_dtabs().await.unwrap(), vec!["default"]);

    let got = c.get_dtab(&ns("default")).await.unwrap();
    assert_eq!(got.dtab.show(), "/svc=>/#/io.l5d.fs");
    assert_eq!(got.version.to_etag(), "AAAAAAAAAAE=");

    let new = Dtab::read("/svc=>/srv;/srv=>/#/io.l5d.fs").unwrap();
    c.create_dtab(&ns("other"), &new).await.unwrap();
    assert_eq!(c.get_dtab(&ns("other")).await.unwrap().dtab, new);
    let e = c.create_dtab(&ns("other"), &new).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Conflict { status, .. } if status == 409),
        "{e:?}"
    );

    c.update_dtab(&ns("default"), &new, Some(&got.version))
        .await
        .unwrap();
    let e = c
        .update_dtab(&ns("default"), &new, Some(&got.version))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Conflict { status, .. } if status == 412),
        "{e:?}"
    );
    let e = c
        .update_dtab(&ns("missing"), &new, Some(&got.version))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
    c.update_dtab(&ns("upserted"), &new, None).await.unwrap();

    c.delete_dtab(&ns("other")).await.unwrap();
    let e = c.get_dtab(&ns("other")).await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
    assert_eq!(c.list_dtabs().await.unwrap(), vec!["default", "upserted"]);
}

#[tokio::test]
async fn names_against_namerd() {
    let n = start("").await;
    let c = &n.client;
    let web = path("/svc/web");

    let addr = c
        .resolve(&ns("default"), &web, &Dtab::empty())
        .await
        .unwrap();
    assert_eq!(addr["type"], "bound");
    assert_eq!(addr["addrs"][0]["port"], 8080);

    let bound = c.bind(&ns("default"), &web, &Dtab::empty()).await.unwrap();
    assert_eq!(bound["type"], "leaf");
    assert_eq!(bound["bound"]["id"], "/#/io.l5d.fs/web");

    let id = c
        .addr(&ns("default"), &path("/#/io.l5d.fs/web"))
        .await
        .unwrap();
    assert_eq!(id, addr);

    let extra = Dtab::read("/svc/web=>/#/io.l5d.fs/missing").unwrap();
    let tree = c.delegate(&ns("default"), &web, &extra).await.unwrap();
    let text = ctl::names::render_delegate(&tree);
    assert!(text.starts_with("/svc/web"), "{text}");
    assert!(
        text.contains("via /svc/web => /#/io.l5d.fs/missing  -> neg"),
        "{text}"
    );
    assert!(
        text.contains("via /svc => /#/io.l5d.fs  -> bound 127.0.0.1:8080"),
        "{text}"
    );

    let missing = c
        .resolve(&ns("default"), &path("/svc/nope"), &Dtab::empty())
        .await
        .unwrap();
    assert_eq!(ctl::names::addr_exit(&missing), Exit::NotFound);
}

#[tokio::test]
async fn watches_against_namerd() {
    let n = start("").await;
    let c = &n.client;

    let mut dtabs = c.watch_dtab(&ns("default")).await.unwrap();
    let first = next(&mut dtabs).await;
    assert_eq!(first.dtab.show(), "/svc=>/#/io.l5d.fs");
    let mut resolved = c
        .watch_resolve(&ns("default"), &path("/svc/web"), &Dtab::empty())
        .await
        .unwrap();
    assert_eq!(next(&mut resolved).await["addrs"][0]["port"], 8080);
    let mut names = c.watch_list().await.unwrap();
    assert_eq!(next(&mut names).await, vec!["default".to_string()]);

    let moved = Dtab::read("/svc=>/$/inet/127.0.0.1/9999").unwrap();
    c.update_dtab(&ns("default"), &moved, None).await.unwrap();
    assert_eq!(next(&mut dtabs).await.dtab, moved);
    let addr = next(&mut resolved).await;
    assert_eq!(addr["addrs"][0]["port"], 9999, "{addr}");

    c.create_dtab(&ns("second"), &Dtab::empty()).await.unwrap();
    assert_eq!(next(&mut names).await, vec!["default", "second"]);

    // The fs namer follows its files too.
    let mut id = c
        .watch_addr(&ns("default"), &path("/#/io.l5d.fs/web"))
        .await
        .unwrap();
    assert_eq!(next(&mut id).await["addrs"][0]["port"], 8080);
    std::fs::write(n.disco.path().join("web"), "127.0.0.1 8081\n").unwrap();
    assert_eq!(next(&mut id).await["addrs"][0]["port"], 8081);
}

#[tokio::test]
async fn the_write_token_is_sent() {
    let n = start("  writeToken: s3cret\n").await;
    let empty = Dtab::empty();
    let e = n.client.create_dtab(&ns("x"), &empty).await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
    assert_eq!(ctl::CtlError::from(e).exit, Exit::Unauthorized);
    let authorized = n.client.clone().with_bearer_token("s3cret").unwrap();
    authorized.create_dtab(&ns("x"), &empty).await.unwrap();
}

#[tokio::test]
async fn namerctl_commands_against_namerd() {
    let n = start("").await;
    let c = &n.client;
    let mut out = Vec::new();
    ctl::dtab::get(c, &ns("default"), ctl::format::DtabFormat::Pretty, &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "# version AAAAAAAAAAE=\n/svc  => /#/io.l5d.fs ;\n"
    );

    // The JSON form reads back, and its version makes the update safe.
    let mut json_out = Vec::new();
    ctl::dtab::get(
        c,
        &ns("default"),
        ctl::format::DtabFormat::Json,
        &mut json_out,
    )
    .await
    .unwrap();
    let doc = String::from_utf8(json_out).unwrap();
    let edited = doc.replace("io.l5d.fs", "io.l5d.fs2");
    ctl::dtab::update(c, &ns("default"), "doc", &edited, None, &mut Vec::new())
        .await
        .unwrap();
    let e = ctl::dtab::update(c, &ns("default"), "doc", &edited, None, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.exit, Exit::Conflict);

    let mut out = Vec::new();
    let exit = ctl::dtab::diff(c, &ns("default"), "f", "/svc => /#/io.l5d.fs", &mut out)
        .await
        .unwrap();
    assert_eq!(exit, Exit::Differ);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("- /svc => /#/io.l5d.fs2\n+ /svc => /#/io.l5d.fs\n")
    );

    let mut out = Vec::new();
    let exit = ctl::names::resolve(
        c,
        &ns("default"),
        &path("/svc/web"),
        &Dtab::read("/svc=>/#/io.l5d.fs").unwrap(),
        false,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(
        (exit, String::from_utf8(out).unwrap()),
        (Exit::Ok, "bound 127.0.0.1:8080\n".to_string())
    );

    let e = ctl::dtab::delete(c, &ns("nope"), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.exit, Exit::NotFound);
    assert!(
        e.message.starts_with(ctl::NOT_FOUND_MESSAGE),
        "{}",
        e.message
    );
}
