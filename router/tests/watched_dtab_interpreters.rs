//! Routers whose dtab is kept in a ConfigMap (`io.l5d.k8s.configMap`) or
//! in Consul's KV store (`io.l5d.consul.interpreter`), end to end: requests
//! follow an edit of the remote dtab, the router's own dtab is appended
//! after it, and an edit that does not parse leaves the routes as they
//! were. Against the in-process fakes of the API server and of Consul.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use integration::consul::FakeConsul;
use integration::k8s::FakeKube;
use support::{Backend, Client, STEP, client, get, start_router, within};

/// The router config: `interpreter` is the indented body of the
/// `interpreter:` block; the router's own dtab routes `api` to `api_port`.
fn router_yaml(interpreter: &str, api_port: u16) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  \
         dtab: /svc/api => /$/inet/127.0.0.1/{api_port}\n  \
         interpreter:\n{interpreter}  servers:\n  - port: 0\n"
    )
}

/// Asks for `host` until the answer comes from `backend`.
async fn until_routed_to(client: &Client, router: SocketAddr, host: &str, backend: &str) {
    within(STEP, &format!("{host} to reach {backend}"), async {
        loop {
            let reply = get(client, router, host, "/", &[]).await;
            if reply.status == StatusCode::OK && reply.backend() == backend {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Routes `web` through the remote dtab, follows `edit` to `v2`, keeps
/// routing after `break_it`, and routes `api` with the router's dtab all
/// along.
async fn routes_follow_the_remote_dtab(
    yaml: &str,
    edit: impl Fn(&str),
    break_it: impl Fn(),
    v2: &Backend,
) {
    let router = start_router(yaml).await;
    let client = client();
    until_routed_to(&client, router.addr(), "web", "v1").await;
    until_routed_to(&client, router.addr(), "api", "api").await;

    edit(&format!("/svc/web => /$/inet/127.0.0.1/{}", v2.port()));
    until_routed_to(&client, router.addr(), "web", "v2").await;

    break_it();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for host in ["web", "api"] {
        let reply = get(&client, router.addr(), host, "/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text());
    }
    assert_eq!(
        get(&client, router.addr(), "web", "/", &[]).await.backend(),
        "v2"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_follows_its_config_map_dtab() {
    let (v1, v2, api) = (
        Backend::start("v1").await,
        Backend::start("v2").await,
        Backend::start("api").await,
    );
    let kube = FakeKube::start().await.unwrap();
    let dtab = format!("/svc/web => /$/inet/127.0.0.1/{}", v1.port());
    kube.apply_config_map("edge", "dtabs", &[("router", &dtab)]);
    let interpreter = format!(
        "    kind: io.l5d.k8s.configMap\n    experimental: true\n    host: 127.0.0.1\n    \
         port: {}\n    namespace: edge\n    name: dtabs\n    filename: router\n",
        kube.addr().port()
    );
    routes_follow_the_remote_dtab(
        &router_yaml(&interpreter, api.port()),
        |dtab| {
            kube.apply_config_map("edge", "dtabs", &[("router", dtab)]);
        },
        || {
            kube.apply_config_map("edge", "dtabs", &[("router", "/svc/web =>")]);
        },
        &v2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_follows_its_consul_dtab() {
    let (v1, v2, api) = (
        Backend::start("v1").await,
        Backend::start("v2").await,
        Backend::start("api").await,
    );
    let consul = FakeConsul::start().await.unwrap();
    let key = "namerd/dtabs/edge";
    consul.kv_put(key, format!("/svc/web => /$/inet/127.0.0.1/{}", v1.port()));
    let interpreter = format!(
        "    kind: io.l5d.consul.interpreter\n    host: 127.0.0.1\n    port: {}\n    \
         namespace: edge\n",
        consul.addr().port()
    );
    routes_follow_the_remote_dtab(
        &router_yaml(&interpreter, api.port()),
        |dtab| {
            consul.kv_put(key, dtab.to_string());
        },
        || {
            consul.kv_put(key, "/svc/web =>");
        },
        &v2,
    )
    .await;
}
