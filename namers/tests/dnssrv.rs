//! `io.l5d.dnssrv` against a real DNS server (dnsmasq): a name bound
//! through the interpreter follows the SRV records and their weights, keeps
//! its endpoints while the server is down, and becomes negative (so the
//! dtab's alternative applies) when the name is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use integration::servers::Dnsmasq;
use namers::config::{NamerContext, build_namers};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Activity, Addr, Binding, Bound, Interpreter, Live, NameInterpreter, NamerList};

const WAIT: Duration = Duration::from_secs(20);

const WEB: &str = "srv-host=_http._tcp.web.test,web-a.test,8080,0,10\n\
                   srv-host=_http._tcp.web.test,web-b.test,8081,0,30\n\
                   host-record=web-a.test,127.0.0.11\n\
                   host-record=web-b.test,127.0.0.12\n\
                   srv-host=_http._tcp.half.test,web-a.test,8080\n\
                   srv-host=_http._tcp.half.test,ghost.test,8081\n";

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn namers(dns: &Dnsmasq) -> NamerList {
    let yaml = format!(
        "- kind: io.l5d.dnssrv\n  experimental: true\n  refreshIntervalSeconds: 1\n  dnsHosts:\n  - {}\n",
        dns.addr()
    );
    let configs: Vec<namers::config::NamerConfig> =
        namers::config::parse("namers.yaml", &yaml).unwrap();
    let inet = Arc::new(InetResolver::system().unwrap());
    build_namers(&configs, &NamerContext { inet }).unwrap()
}

fn interpreter(namers: NamerList) -> Interpreter {
    let inet = Arc::new(InetResolver::system().unwrap());
    Interpreter::new(namers, SystemNamers::new(inet))
}

fn bind(interpreter: &Interpreter, dtab: &str, name: &str) -> Binding {
    interpreter.bind(&Dtab::read(dtab).unwrap(), &path(name))
}

/// Waits until the live value satisfies `ok`.
async fn until<T: Debug>(live: &mut Live<T>, what: &str, ok: impl Fn(&T) -> bool) -> Arc<T> {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            live.mark_seen();
            let value = live.load();
            if ok(&value) {
                return value;
            }
            live.changed().await;
        }
    })
    .await;
    match waited {
        Ok(value) => value,
        Err(_) => panic!(
            "timed out waiting for {what}; the value is {:?}",
            live.load()
        ),
    }
}

fn leaf(tree: &Activity<NameTree<Bound>>) -> Option<&Bound> {
    match tree {
        Activity::Ok(NameTree::Leaf(bound)) => Some(bound),
        _ => None,
    }
}

/// Waits until the binding is one bound name with this id.
async fn bound(binding: &mut Binding, id: &str) -> Bound {
    let tree = until(binding, &format!("a leaf {id}"), |t| {
        leaf(t).is_some_and(|b| b.id.show() == id)
    })
    .await;
    leaf(&tree).cloned().unwrap()
}

/// The endpoints as `ip:port*weight`, sorted.
fn weighted(addr: &Addr) -> Option<Vec<String>> {
    match addr {
        Addr::Bound(set) => Some(
            set.endpoints()
                .iter()
                .map(|e| format!("{}*{}", e.addr, e.weight))
                .collect(),
        ),
        _ => None,
    }
}

async fn until_endpoints(addr: &mut Live<Addr>, expected: &[&str]) {
    until(addr, &format!("{expected:?}"), |a| {
        weighted(a).is_some_and(|found| found == expected)
    })
    .await;
}

fn counter(namers: &NamerList, name: &str) -> u64 {
    let counters = namers[0].1.counters();
    counters.iter().find(|c| c.name == name).unwrap().value
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_follows_the_srv_records_through_an_outage() {
    let Some(mut dns) = Dnsmasq::start(WEB) else {
        return;
    };
    let namers = namers(&dns);
    let interpreter = interpreter(namers.clone());
    let dtab = "/svc/web => /#/io.l5d.dnssrv/_http._tcp.web.test | /$/inet/127.0.0.1/9999";
    let mut binding = bind(&interpreter, dtab, "/svc/web/api");
    let found = bound(&mut binding, "/#/io.l5d.dnssrv/_http._tcp.web.test").await;
    assert_eq!(found.residual.show(), "/api");
    let mut addr = found.addr.clone();
    until_endpoints(&mut addr, &["127.0.0.11:8080*10", "127.0.0.12:8081*30"]).await;
    assert!(counter(&namers, "lookup_successes_total") >= 1);

    // New records reach the address; the tree is not bound again.
    blocking(|| {
        dns.set_records(
            "srv-host=_http._tcp.web.test,web-c.test,9090,0,0\n\
             host-record=web-c.test,127.0.0.13\n",
        )
    });
    until_endpoints(&mut addr, &["127.0.0.13:9090*1"]).await;

    // The server goes away: the last endpoints stay.
    blocking(|| dns.stop());
    let failing = tokio::time::timeout(WAIT, async {
        while counter(&namers, "unexpected_code_total") == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    failing
        .await
        .expect("the lookups should fail while dnsmasq is down");
    assert_eq!(
        weighted(&addr.load()),
        Some(vec!["127.0.0.13:9090*1".to_string()])
    );
    assert!(counter(&namers, "state_changes") >= 1);

    // It comes back without the name: NXDOMAIN is negative, and the dtab's
    // alternative is used.
    blocking(|| dns.set_records("host-record=other.test,127.0.0.14\n"));
    let fallback = bound(&mut binding, "/$/inet/127.0.0.1/9999").await;
    assert_eq!(fallback.residual.show(), "/api");
    assert!(counter(&namers, "lookup_failures_total") >= 1);
    drop(binding);
    drop(addr);
    drop(fallback);
    drop(found);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_negative_and_refused_ones_fail() {
    let Some(dns) = Dnsmasq::start(WEB) else {
        return;
    };
    let interpreter = interpreter(namers(&dns));
    let mut missing = bind(
        &interpreter,
        "/svc => /#/io.l5d.dnssrv",
        "/svc/_http._tcp.nothing.test",
    );
    until(&mut missing, "a negative tree", |t| {
        matches!(t, Activity::Ok(NameTree::Neg))
    })
    .await;
    // dnsmasq refuses names outside `test.`: the name never had an answer,
    // so it fails, saying why.
    let mut refused = bind(
        &interpreter,
        "/svc => /#/io.l5d.dnssrv",
        "/svc/_http._tcp.web.example",
    );
    let tree = until(&mut refused, "a failure", |t| {
        matches!(t, Activity::Failed(_))
    })
    .await;
    let Activity::Failed(why) = &*tree else {
        unreachable!()
    };
    assert!(why.to_string().contains("_http._tcp.web.example"), "{why}");
    // A target without an address is left out.
    let namers = namers(&dns);
    let interpreter = self::interpreter(namers.clone());
    let mut half = bind(
        &interpreter,
        "/svc => /#/io.l5d.dnssrv",
        "/svc/_http._tcp.half.test",
    );
    let mut addr = bound(&mut half, "/#/io.l5d.dnssrv/_http._tcp.half.test")
        .await
        .addr;
    until_endpoints(&mut addr, &["127.0.0.11:8080*1"]).await;
    assert!(counter(&namers, "unknown_srv_hosts_results_total") >= 1);
}
