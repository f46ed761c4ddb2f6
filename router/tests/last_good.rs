//! A router that binds with its own namers keeps a name's last good
//! endpoints after its binding cache lets go of the name: asked for again
//! during an outage of the namer's backend, the name is still routed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use integration::consul::{FakeConsul, Instance};
use support::{Backend, client, get, start_router};

/// A router binding `/svc` through Consul, whose binding cache holds one
/// name, so that asking for a second name evicts the first.
fn consul_router(consul: &FakeConsul, idle_ttl_secs: u64) -> String {
    format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.consul\n  host: 127.0.0.1\n  port: {}\n\
         routers:\n- protocol: http\n  dtab: /svc => /#/io.l5d.consul/dc1\n  \
         bindingCache:\n    paths: 1\n    idleTtlSecs: {idle_ttl_secs}\n  \
         servers:\n  - port: 0\n",
        consul.addr().port()
    )
}

/// Routes `web`, evicts it by routing `api`, stops Consul (port closed,
/// connections dropped), waits two seconds, and routes `web` again: the
/// status of that last request.
async fn web_across_an_outage(idle_ttl_secs: u64) -> StatusCode {
    let (web, api) = (Backend::start("web").await, Backend::start("api").await);
    let consul = FakeConsul::start().await.unwrap();
    consul.register(&Instance::new("web", "127.0.0.1", web.port()));
    consul.register(&Instance::new("api", "127.0.0.1", api.port()));
    let router = start_router(&consul_router(&consul, idle_ttl_secs)).await;
    let client = client();

    let first = get(&client, router.addr(), "web", "/", &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.backend(), "web");
    let other = get(&client, router.addr(), "api", "/", &[]).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());

    consul.set_refusing(true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = get(&client, router.addr(), "web", "/", &[]).await;
    router.stop().await;
    if again.status == StatusCode::OK {
        assert_eq!(again.backend(), "web");
    }
    again.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_name_asked_for_during_a_consul_outage_gets_its_last_endpoints() {
    assert_eq!(web_across_an_outage(600).await, StatusCode::OK);
}

/// The same without an idle TTL fails: the test above is not passing for
/// some other reason (the eviction not happening, say).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_idle_ttl_the_evicted_name_is_lost_in_the_outage() {
    let status = web_across_an_outage(0).await;
    assert_ne!(status, StatusCode::OK);
}
