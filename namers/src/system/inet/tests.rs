//! Tests of the inet resolver, with scripted DNS answers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// One scripted DNS reply: addresses and TTL, or an error, or no reply.
#[derive(Clone)]
enum Reply {
    Ips(Vec<&'static str>, u64),
    Error(&'static str),
    Hang,
}

/// Answers from a script; the last reply repeats.
#[derive(Default)]
struct ScriptedDns {
    script: Mutex<VecDeque<Reply>>,
    calls: AtomicUsize,
}

impl ScriptedDns {
    fn new(replies: Vec<Reply>) -> Arc<ScriptedDns> {
        Arc::new(ScriptedDns {
            script: Mutex::new(replies.into()),
            calls: AtomicUsize::new(0),
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl DnsResolve for ScriptedDns {
    fn resolve(&self, _host: &str) -> BoxFuture<'static, Result<DnsAnswer, String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut script = self.script.lock().unwrap();
        let reply = if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        };
        Box::pin(async move {
            match reply {
                Some(Reply::Ips(ips, ttl)) => Ok(DnsAnswer {
                    ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                    valid_until: Instant::now() + Duration::from_secs(ttl),
                }),
                Some(Reply::Error(e)) => Err(e.to_string()),
                Some(Reply::Hang) | None => std::future::pending().await,
            }
        })
    }
}

fn addr(ips: &[&str], port: u16) -> Addr {
    let ips: Vec<IpAddr> = ips.iter().map(|ip| ip.parse().unwrap()).collect();
    bound(&ips, port)
}

/// Lets spawned tasks run without moving the clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_answer_after_the_ttl_updates_the_address() {
    let dns = ScriptedDns::new(vec![
        Reply::Ips(vec!["10.0.0.1"], 10),
        Reply::Ips(vec!["10.0.0.2", "10.0.0.1"], 10),
    ]);
    let resolver = InetResolver::new(dns.clone());
    let mut live = resolver.resolve("web.example", 8080);
    assert_eq!(*live.load(), Addr::Pending);
    live.changed().await;
    assert_eq!(*live.load(), addr(&["10.0.0.1"], 8080));

    tokio::time::advance(Duration::from_secs(9)).await;
    settle().await;
    assert_eq!(dns.calls(), 1, "asked again before the TTL ran out");

    tokio::time::advance(Duration::from_secs(1)).await;
    live.changed().await;
    assert_eq!(*live.load(), addr(&["10.0.0.1", "10.0.0.2"], 8080));
    assert_eq!(dns.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn ttls_are_clamped() {
    let dns = ScriptedDns::new(vec![Reply::Ips(vec!["10.0.0.1"], 0)]);
    let resolver = InetResolver::new(dns.clone());
    let _live = resolver.resolve("zero.example", 80);
    settle().await;
    assert_eq!(dns.calls(), 1);
    tokio::time::advance(Duration::from_millis(999)).await;
    settle().await;
    assert_eq!(dns.calls(), 1, "a TTL of 0 must not cause a busy loop");
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(dns.calls(), 2);

    let dns = ScriptedDns::new(vec![Reply::Ips(vec!["10.0.0.1"], 86_400)]);
    let resolver = InetResolver::new(dns.clone());
    let _live = resolver.resolve("long.example", 80);
    settle().await;
    tokio::time::advance(MAX_REFRESH).await;
    settle().await;
    assert_eq!(
        dns.calls(),
        2,
        "a day-long TTL is refreshed after MAX_REFRESH"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_keep_the_last_good_addresses_and_retry_with_backoff() {
    let dns = ScriptedDns::new(vec![
        Reply::Ips(vec!["10.0.0.1"], 5),
        Reply::Error("SERVFAIL"),
        Reply::Error("SERVFAIL"),
        Reply::Ips(vec![], 5),
        Reply::Ips(vec!["10.0.0.3"], 5),
    ]);
    let resolver = InetResolver::new(dns.clone());
    let mut live = resolver.resolve("api.example", 80);
    live.changed().await;
    assert_eq!(*live.load(), addr(&["10.0.0.1"], 80));

    // TTL expires: the first error.
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(dns.calls(), 2);
    assert_eq!(*live.load(), addr(&["10.0.0.1"], 80));
    // Retry after 1 s: the second error.
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(dns.calls(), 3);
    assert_eq!(*live.load(), addr(&["10.0.0.1"], 80));
    // Backoff doubled: nothing after 1 s more, the retry after 2 s.
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(dns.calls(), 3);
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(dns.calls(), 4);
    // That answer says "no such name": still the last good addresses.
    assert_eq!(*live.load(), addr(&["10.0.0.1"], 80));

    tokio::time::advance(Duration::from_secs(5)).await;
    live.changed().await;
    assert_eq!(*live.load(), addr(&["10.0.0.3"], 80));
}

#[tokio::test(start_paused = true)]
async fn before_any_addresses_errors_fail_and_missing_names_are_neg() {
    let dns = ScriptedDns::new(vec![Reply::Error("timed out"), Reply::Ips(vec![], 30)]);
    let resolver = InetResolver::new(dns.clone());
    let mut live = resolver.resolve("flaky.example", 80);
    live.changed().await;
    assert_eq!(*live.load(), Addr::Failed("timed out".into()));
    live.changed().await;
    assert_eq!(*live.load(), Addr::Neg);

    let dns = ScriptedDns::new(vec![Reply::Ips(vec![], 30)]);
    let resolver = InetResolver::new(dns);
    let mut live = resolver.resolve("nxdomain.example", 80);
    live.changed().await;
    assert_eq!(*live.load(), Addr::Neg);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_lookup_times_out() {
    let dns = ScriptedDns::new(vec![Reply::Hang]);
    let resolver = InetResolver::new(dns);
    let mut live = resolver.resolve("slow.example", 80);
    live.changed().await;
    assert!(matches!(&*live.load(), Addr::Failed(m) if m.contains("timed out")));
}

#[tokio::test(start_paused = true)]
async fn lookups_share_one_entry_which_ends_with_its_last_user() {
    let dns = ScriptedDns::new(vec![Reply::Ips(vec!["10.0.0.1"], 10)]);
    let resolver = InetResolver::new(dns.clone());
    let a = resolver.resolve("shared.example", 80);
    let b = resolver.resolve("shared.example", 80);
    let other_port = resolver.resolve("shared.example", 81);
    let fixed = resolver.resolve_fixed("shared.example", 80);
    assert!(a.same_source(&b));
    assert!(!a.same_source(&other_port));
    assert!(!a.same_source(&fixed));
    assert_eq!(resolver.active_count(), 3);
    settle().await;
    assert_eq!(dns.calls(), 3);

    drop((other_port, fixed));
    settle().await;
    assert_eq!(resolver.active_count(), 1);
    let a2 = a.clone();
    drop((a, b));
    settle().await;
    assert_eq!(resolver.active_count(), 1, "a clone still watches");
    drop(a2);
    settle().await;
    assert_eq!(resolver.active_count(), 0);

    // No task is left to ask DNS again.
    let calls = dns.calls();
    tokio::time::advance(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(dns.calls(), calls);

    // A later lookup starts afresh.
    let mut again = resolver.resolve("shared.example", 80);
    assert_eq!(resolver.active_count(), 1);
    again.changed().await;
    assert_eq!(*again.load(), addr(&["10.0.0.1"], 80));
}

#[tokio::test(start_paused = true)]
async fn the_entry_ends_even_while_a_lookup_hangs() {
    let dns = ScriptedDns::new(vec![Reply::Hang]);
    let resolver = InetResolver::new(dns);
    let live = resolver.resolve("stuck.example", 80);
    settle().await;
    assert_eq!(resolver.active_count(), 1);
    drop(live);
    settle().await;
    assert_eq!(resolver.active_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn fixed_addresses_are_not_refreshed() {
    let dns = ScriptedDns::new(vec![
        Reply::Error("refused"),
        Reply::Ips(vec!["10.0.0.1"], 1),
        Reply::Ips(vec!["10.0.0.2"], 1),
    ]);
    let resolver = InetResolver::new(dns.clone());
    let mut live = resolver.resolve_fixed("fixed.example", 80);
    live.changed().await;
    assert!(matches!(*live.load(), Addr::Failed(_)));
    live.changed().await;
    assert_eq!(*live.load(), addr(&["10.0.0.1"], 80));
    tokio::time::advance(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(dns.calls(), 2);
    assert_eq!(*live.load(), addr(&["10.0.0.1"], 80));
    assert_eq!(resolver.active_count(), 1);
    drop(live);
    settle().await;
    assert_eq!(resolver.active_count(), 0);
}

#[tokio::test]
async fn literals_and_localhost_need_no_dns() {
    let dns = ScriptedDns::new(vec![Reply::Hang]);
    let resolver = InetResolver::new(dns.clone());
    let cases = [
        ("10.1.2.3", "10.1.2.3"),
        ("127.1", "127.0.0.1"),
        ("10.256", "10.0.1.0"),
        ("1.2.65535", "1.2.255.255"),
        ("::1", "::1"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
    ];
    for (host, ip) in cases {
        assert_eq!(
            *resolver.resolve(host, 8080).load(),
            addr(&[ip], 8080),
            "{host:?}"
        );
    }
    assert_eq!(resolver.active_count(), 0);
    assert_eq!(dns.calls(), 0);
}

#[test]
fn ipv4_literal_forms_follow_java() {
    assert_eq!(
        ipv4_literal("3232235777"),
        Some(Ipv4Addr::new(192, 168, 1, 1))
    );
    for not_literal in [
        "1.2.3.256",
        "1.2.3.4.5",
        "01.2.3.4",
        "1..2",
        "1.2.3.",
        "a.b",
        "4294967296",
        "-1",
        "+1",
    ] {
        assert_eq!(ipv4_literal(not_literal), None, "{not_literal}");
    }
}

#[tokio::test]
async fn hosts_finagle_cannot_parse_fail() {
    let dns = ScriptedDns::new(vec![Reply::Hang]);
    let resolver = InetResolver::new(dns.clone());
    for host in ["a:b", "a b", "a,b"] {
        assert!(
            matches!(*resolver.resolve(host, 80).load(), Addr::Failed(_)),
            "{host}"
        );
    }
    assert_eq!(dns.calls(), 0);
}

#[test]
fn a_lookup_outside_a_runtime_fails_instead_of_panicking() {
    let resolver = InetResolver::new(ScriptedDns::new(vec![Reply::Hang]));
    assert!(matches!(
        *resolver.resolve("web.example", 80).load(),
        Addr::Failed(_)
    ));
    assert_eq!(
        *resolver.resolve("127.0.0.1", 80).load(),
        addr(&["127.0.0.1"], 80)
    );
}

#[test]
fn ports_parse_like_java() {
    assert_eq!(parse_java_int("+80"), Some(80));
    assert_eq!(parse_java_int("-1"), Some(-1));
    assert_eq!(parse_java_int("99999999999"), None);
    assert_eq!(parse_java_int("http"), None);
    assert_eq!(parse_java_int("+"), None);
    assert_eq!(parse_java_int(" 80"), None);
    assert_eq!(parse_port("8080"), Ok(8080));
    assert_eq!(
        parse_port("65536"),
        Err("port out of range:65536".to_string())
    );
    assert_eq!(parse_port("-1"), Err("port out of range:-1".to_string()));
    assert_eq!(
        parse_port("http"),
        Err("For input string: \"http\"".to_string())
    );
}

#[tokio::test]
async fn the_system_resolver_finds_localhost_in_etc_hosts() {
    let dns = HickoryDns::from_system_conf().unwrap();
    let answer = dns.resolve("localhost").await.unwrap();
    assert!(!answer.ips.is_empty());
    assert!(
        answer.ips.iter().all(IpAddr::is_loopback),
        "{:?}",
        answer.ips
    );
    assert!(answer.valid_until > Instant::now());
}
