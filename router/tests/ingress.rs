//! A router acting as a Kubernetes ingress controller (`io.l5d.ingress`),
//! end to end: requests are named after the Ingress rule they match and
//! routed through `io.l5d.k8s` to the Service's pods, and follow Ingresses
//! as they are applied and deleted. Against the in-process fake of the API
//! server (`integration::k8s`), not a real cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use dtab::Path;
use http::StatusCode;
use integration::k8s::{Endpoints, FakeKube, Ingress, Resource, Service, TargetPort};
use router::identify::{IdentifierConfig, Protocol, build_identifiers, identify_with};
use support::{Backend, Client, STEP, client, get, start_router, within};

/// A Service `name` in `prod` whose port `http` (80) is `backend`'s.
fn serve(fake: &FakeKube, name: &str, backend: &Backend) {
    fake.apply_service(&Service::new("prod", name).port(
        Some("http"),
        80,
        TargetPort::Number(backend.port()),
    ));
    fake.apply_endpoints(
        &Endpoints::new("prod", name)
            .subset()
            .ready("127.0.0.1", None)
            .port(Some("http"), backend.port()),
    );
}

/// Asks until `host` + `path` is answered by `backend` (a backend's name),
/// or with `l5d-err` containing `backend`.
async fn until(client: &Client, router: SocketAddr, host: &str, path: &str, backend: &str) {
    within(STEP, &format!("{host}{path} to reach {backend}"), async {
        loop {
            let reply = get(client, router, host, path, &[]).await;
            let ok = reply.status == StatusCode::OK && reply.backend() == backend;
            let err = match reply.header("l5d-err") {
                Some(_) => reply.l5d_err(),
                None => String::new(),
            };
            if ok || err.contains(backend) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_follow_the_ingress_rules() {
    let fake = FakeKube::start().await.unwrap();
    let (web, api, fallback) = (
        Backend::start("web").await,
        Backend::start("api").await,
        Backend::start("fallback").await,
    );
    serve(&fake, "web", &web);
    serve(&fake, "api", &api);
    serve(&fake, "fallback", &fallback);
    fake.apply_ingress(
        &Ingress::new("prod", "shop")
            .class_annotation("linkerd")
            .rule(Some("shop.example"))
            .path("/api", "Prefix", "api", "http")
            .path("/", "Prefix", "web", "80"),
    );
    // Another controller's Ingress is left alone.
    fake.apply_ingress(
        &Ingress::new("prod", "theirs")
            .class_name("nginx")
            .rule(Some("theirs.example"))
            .path("/", "Prefix", "web", "http"),
    );
    let port = fake.addr().port();
    let yaml = format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {port}\n\
         routers:\n- protocol: http\n  dtab: /svc => /#/io.l5d.k8s\n  \
         identifier:\n    kind: io.l5d.ingress\n    host: 127.0.0.1\n    port: {port}\n    \
         namespace: prod\n  servers:\n  - port: 0\n"
    );
    let router = start_router(&yaml).await;
    let (client, addr) = (client(), router.addr());

    until(&client, addr, "shop.example:4140", "/api/v1/items", "api").await;
    until(&client, addr, "shop.example", "/", "web").await;
    until(&client, addr, "Shop.Example", "/apis", "web").await;
    let reply = get(&client, addr, "theirs.example", "/", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.l5d_err().contains("no ingress rule matches"),
        "{}",
        reply.l5d_err()
    );

    // A default backend catches what no rule matches.
    fake.apply_ingress(&Ingress::new("prod", "catch-all").default_backend("fallback", "http"));
    until(&client, addr, "theirs.example", "/", "fallback").await;
    until(&client, addr, "shop.example", "/api", "api").await;

    // A changed Ingress changes the routes; a deleted one takes its own.
    fake.apply_ingress(
        &Ingress::new("prod", "shop")
            .rule(Some("shop.example"))
            .path("/", "Prefix", "web", "http"),
    );
    until(&client, addr, "shop.example", "/api/v1/items", "web").await;
    fake.delete(Resource::Ingresses, "prod", "catch-all");
    until(
        &client,
        addr,
        "theirs.example",
        "/",
        "no ingress rule matches",
    )
    .await;

    // It listed and watched Ingresses of its namespace only.
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.path.contains("ingresses"))
            .all(|r| r.path == "/apis/networking.k8s.io/v1/namespaces/prod/ingresses"),
        "{:?}",
        fake.requests()
    );
}

fn parts(protocol: Protocol, uri: &str, host: Option<&str>) -> http::request::Parts {
    let mut builder = http::Request::get(uri);
    if let Some(host) = host {
        builder = builder.header("host", host);
    }
    if protocol == Protocol::H2 {
        builder = builder.version(http::Version::HTTP_2);
    }
    builder.body(()).unwrap().into_parts().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_by_default_and_h2_matches_the_authority() {
    let fake = FakeKube::start().await.unwrap();
    fake.apply_ingress(
        &Ingress::new("a", "one")
            .rule(Some("one.example"))
            .path("/", "Prefix", "svc-one", "grpc"),
    );
    fake.apply_ingress(
        &Ingress::new("b", "two")
            .rule(None)
            .path("/two", "Exact", "svc-two", "8080")
            .path("/re/[a-z]+", "ImplementationSpecific", "svc-re", "http")
            .default_backend("ignored", "http"),
    );
    let config: IdentifierConfig = serde_json::from_value(serde_json::json!({
        "kind": "io.l5d.ingress", "host": "127.0.0.1", "port": fake.addr().port(),
        "ignoreDefaultBackends": true,
    }))
    .unwrap();
    let prefix = Path::read("/svc").unwrap();
    let h2 = build_identifiers(std::slice::from_ref(&config), &prefix, Protocol::H2).unwrap();
    let http = build_identifiers(&[config], &prefix, Protocol::Http).unwrap();
    let name = |ids: &[Box<dyn router::identify::Identifier>], parts| {
        identify_with(ids, &parts).map_or_else(|e| e.0, |named| named.name.show())
    };
    // Each identifier has a watch of its own: wait for both lists.
    within(STEP, "the Ingresses to be listed", async {
        while name(&h2, parts(Protocol::H2, "http://one.example/x", None)) != "/svc/a/grpc/svc-one"
            || name(&http, parts(Protocol::Http, "/x", Some("one.example")))
                != "/svc/a/grpc/svc-one"
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        name(&http, parts(Protocol::Http, "/two", Some("any"))),
        "/svc/b/8080/svc-two"
    );
    assert_eq!(
        name(&http, parts(Protocol::Http, "/re/abc", None)),
        "/svc/b/http/svc-re"
    );
    // Linkerd's regular expressions match the whole path; Exact is exact;
    // default backends are ignored as configured.
    for path in ["/re/abc/d", "/two/x", "/else"] {
        assert_eq!(
            name(&http, parts(Protocol::Http, path, Some("any"))),
            "no ingress rule matches",
            "{path}"
        );
    }
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.path.contains("ingresses"))
            .all(|r| r.path == "/apis/networking.k8s.io/v1/ingresses"),
        "{:?}",
        fake.requests()
    );
}
