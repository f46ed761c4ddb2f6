//! Bounded binding: a request whose own dtab asks for more binding work
//! than allowed is answered `400` at once, and other names keep working
//! meanwhile; oversized dtab headers are refused before they are parsed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use support::{Backend, FsDir, client, config, get, start_router};

/// The header of the exponential-binding report: `/svc/web` goes to `/a0`,
/// each `/a<i>` to the union `/a<i+1> & /a<i+1>`, and `/a22` to the
/// backend, so a bind without bounds builds 2^22 leaves.
fn doubling_dtab(port: u16) -> String {
    let mut text = String::from("/svc/web=>/a0;");
    for i in 0..22 {
        text.push_str(&format!("/a{i}=>/a{}&/a{};", i + 1, i + 1));
    }
    text.push_str(&format!("/a22=>/$/inet/127.0.0.1/{port}"));
    text
}

/// The report's router: one line of dtab.
fn one_line_router(port: u16) -> String {
    format!("- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/{port}\n  servers:\n  - port: 0\n")
}

// Time is paused: a request that waited for any timer (the 10 s binding
// timeout, say) would show it in the elapsed time; one that is answered
// from the work done shows none.
#[tokio::test(start_paused = true)]
async fn a_doubling_l5d_dtab_is_a_400_at_once_and_other_names_keep_working() {
    let backend = Backend::start("b").await;
    let fs = FsDir::new();
    let router = start_router(&config(&fs, &one_line_router(backend.port()))).await;
    let hostile = doubling_dtab(backend.port());
    let client = client();

    let headers = [("l5d-dtab", hostile.as_str())];
    let started = tokio::time::Instant::now();
    let (refused, other) = tokio::join!(
        get(&client, router.addr(), "web", "/", &headers),
        get(&client, router.addr(), "other", "/", &[]),
    );
    let elapsed = started.elapsed();
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert_eq!(
        refused.l5d_err(),
        "binding /svc/web built more than 1000 leaves (limit bindingLimits.maxLeaves), \
         with the request's l5d-dtab / l5d-ctx-dtab"
    );
    assert!(refused.header("l5d-retryable").is_none());
    assert!(elapsed < Duration::from_millis(100), "{elapsed:?}");
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());
    assert_eq!(other.backend(), "b");

    // Again, and from an upstream router's context header: the same.
    for header in ["l5d-dtab", "l5d-ctx-dtab"] {
        let started = tokio::time::Instant::now();
        let reply = get(&client, router.addr(), "web", "/", &[(header, &hostile)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{header}");
        assert!(
            reply.l5d_err().contains("bindingLimits.maxLeaves"),
            "{header}: {}",
            reply.l5d_err()
        );
        assert!(started.elapsed() < Duration::from_millis(100));
    }
    // The name itself, without the header, still goes to the backend.
    let reply = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(backend.requests(), 2);
    router.stop().await;
}

const LIMITED: &str = "- protocol: http
  dtab: |
    /svc => /#/io.l5d.fs;
    /svc/loop => /x;
    /x => /x;
  bindingLimits:
    maxLookups: 50
  dtabHeaderLimits:
    maxBytes: 100
    maxDentries: 3
  servers:
  - port: 0
";

#[tokio::test]
async fn the_configured_limits_apply_and_name_their_keys() {
    let backend = Backend::start("web").await;
    let fs = FsDir::new();
    fs.point("web", &[&backend]);
    let router = start_router(&config(&fs, LIMITED)).await;
    let client = client();
    let refused = |reply: &support::Reply, key: &str| {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        let err = reply.l5d_err();
        assert!(err.contains(key), "{err}");
    };

    let long = format!("/svc/web=>/#/io.l5d.fs/{}", "w".repeat(100));
    let reply = get(&client, router.addr(), "web", "/", &[("l5d-dtab", &long)]).await;
    refused(&reply, "dtabHeaderLimits.maxBytes");
    let four = "/a=>/b;/c=>/d;/e=>/f;/g=>/h";
    let reply = get(&client, router.addr(), "web", "/", &[("l5d-dtab", four)]).await;
    refused(&reply, "dtabHeaderLimits.maxDentries");
    let reply = get(
        &client,
        router.addr(),
        "web",
        "/",
        &[("l5d-dtab", "/svc/web=>/x")],
    )
    .await;
    refused(
        &reply,
        "took more than 50 lookups (limit bindingLimits.maxLookups)",
    );

    // The router's own dtab going over is the router's fault: 502.
    let reply = get(&client, router.addr(), "loop", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert!(reply.l5d_err().contains("bindingLimits.maxLookups"));

    // Within the limits, a local dtab is used as before.
    let reply = get(
        &client,
        router.addr(),
        "x",
        "/",
        &[("l5d-dtab", "/svc/x=>/svc/web")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.backend(), "web");
    router.stop().await;
}

/// Binds every name to `backend`, counting the bindings made through the
/// router's dtab alone (no request dtab).
struct CountingNaming {
    backend: std::net::SocketAddr,
    base_binds: std::sync::atomic::AtomicUsize,
    base_dtab: dtab::Dtab,
}

impl ::router::interpreter::RouterNaming for CountingNaming {
    fn bind(&self, dtab: &dtab::Dtab, path: &dtab::Path) -> namers::Binding {
        if *dtab == self.base_dtab {
            self.base_binds
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let addr = namers::Live::constant(namers::Addr::bound(vec![namers::Endpoint::new(
            self.backend,
        )]));
        let bound = namers::Bound::new(path.clone(), dtab::Path::empty(), addr);
        namers::Live::constant(namers::Activity::Ok(dtab::NameTree::Leaf(bound)))
    }

    fn delegate<'a>(
        &'a self,
        _: &'a dtab::Dtab,
        _: &'a dtab::Path,
    ) -> futures_util::future::BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async { Err("not here".to_string()) })
    }
}

#[tokio::test]
async fn requests_with_their_own_dtabs_never_push_the_routers_names_out_of_the_cache() {
    let backend = Backend::start("b").await;
    let yaml = "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/9\n  \
                bindingCache:\n    paths: 2\n  servers:\n  - port: 0\n";
    let naming = std::sync::Arc::new(CountingNaming {
        backend: ([127, 0, 0, 1], backend.port()).into(),
        base_binds: Default::default(),
        base_dtab: dtab::Dtab::read("/svc => /$/inet/127.0.0.1/9").unwrap(),
    });
    let router = support::start_scripted_router(yaml, naming.clone()).await;
    let client = client();
    let base_binds = || naming.base_binds.load(std::sync::atomic::Ordering::SeqCst);

    let first = get(&client, router.addr, "web", "/", &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(base_binds(), 1);
    // Fifty overrides, each new, as a client cycling through dtabs sends.
    for i in 0..50 {
        let dtab = format!("/svc/x{i} => /$/inet/127.0.0.1/{i}");
        let answer = get(
            &client,
            router.addr,
            &format!("x{i}"),
            "/",
            &[("l5d-dtab", &dtab)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let again = get(&client, router.addr, "web", "/", &[]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(base_binds(), 1, "web was still cached: not bound again");
}
