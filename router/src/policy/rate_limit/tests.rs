use super::*;

fn limits(json: &str) -> Result<RateLimits, String> {
    let config: RateLimitsConfig = serde_json::from_str(json).unwrap();
    RateLimits::from_config("rateLimits", &config)
}

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn cert(uri: &str) -> PeerIdentity {
    PeerIdentity {
        hash: "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF".to_string(),
        uris: vec![uri.to_string()],
        dns: vec![],
        common_name: None,
        subject: String::new(),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sends `n` requests at `now`; how many were admitted.
fn admitted(
    l: &RateLimits,
    dst: &str,
    source: &str,
    id: Option<&PeerIdentity>,
    now: Instant,
    n: usize,
) -> usize {
    (0..n)
        .filter(|_| l.check(&path(dst), ip(source), id, now).is_ok())
        .count()
}

fn refused(l: &RateLimits, dst: &str, now: Instant) -> Limited {
    l.check(&path(dst), ip("10.0.0.1"), None, now).unwrap_err()
}

#[test]
fn a_bucket_admits_its_burst_then_refills_at_the_rate() {
    let l = limits(r#"[{"prefix": "/svc", "requestsPerSecond": 10, "burst": 5}]"#).unwrap();
    let t0 = Instant::now();
    assert_eq!(admitted(&l, "/svc/web", "10.0.0.1", None, t0, 10), 5);
    let limited = refused(&l, "/svc/web", t0);
    assert_eq!(limited.retry_after, ms(100));
    assert_eq!(limited.rule, 0);
    // Partway to the next token: still refused, for the rest of the wait.
    assert_eq!(refused(&l, "/svc/web", t0 + ms(40)).retry_after, ms(60));
    // One token per 100 ms.
    assert_eq!(
        admitted(&l, "/svc/web", "10.0.0.1", None, t0 + ms(100), 10),
        1
    );
    assert_eq!(
        admitted(&l, "/svc/web", "10.0.0.1", None, t0 + ms(350), 10),
        2
    );
    // A long pause fills the bucket to its burst, no further.
    assert_eq!(
        admitted(&l, "/svc/web", "10.0.0.1", None, t0 + ms(60_000), 100),
        5
    );
}

#[test]
fn burst_defaults_to_the_rate_rounded_up() {
    let burst = |rate: &str| {
        let l = limits(&format!(
            r#"[{{"prefix": "/", "requestsPerSecond": {rate}}}]"#
        ))
        .unwrap();
        admitted(&l, "/a", "10.0.0.1", None, Instant::now(), 1000)
    };
    assert_eq!(burst("100"), 100);
    assert_eq!(burst("2.5"), 3);
    assert_eq!(burst("0.5"), 1);
    assert_eq!(burst("0.001"), 1);
}

#[test]
fn fractional_rates_refill_slower_than_one_a_second() {
    let l = limits(r#"[{"prefix": "/", "requestsPerSecond": 0.5}]"#).unwrap();
    let t0 = Instant::now();
    assert_eq!(admitted(&l, "/a", "10.0.0.1", None, t0, 5), 1);
    let limited = refused(&l, "/a", t0 + ms(100));
    assert_eq!(limited.retry_after, ms(1900));
    assert_eq!(limited.retry_after_secs(), 2);
    assert_eq!(refused(&l, "/a", t0 + ms(1000)).retry_after, ms(1000));
    assert_eq!(admitted(&l, "/a", "10.0.0.1", None, t0 + ms(2000), 5), 1);
    assert_eq!(admitted(&l, "/a", "10.0.0.1", None, t0 + ms(3999), 5), 0);
    assert_eq!(admitted(&l, "/a", "10.0.0.1", None, t0 + ms(4000), 5), 1);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
    let secs = |retry_after: Duration| {
        Limited {
            rule: 0,
            retry_after,
            reason: String::new(),
        }
        .retry_after_secs()
    };
    assert_eq!(secs(Duration::ZERO), 1);
    assert_eq!(secs(Duration::from_nanos(1)), 1);
    assert_eq!(secs(ms(100)), 1);
    assert_eq!(secs(ms(1000)), 1);
    assert_eq!(secs(ms(1001)), 2);
    assert_eq!(secs(ms(2000)), 2);
    assert_eq!(secs(Duration::MAX), u64::MAX);
    let l = limits(r#"[{"prefix": "/", "requestsPerSecond": 100, "burst": 1}]"#).unwrap();
    let t0 = Instant::now();
    assert_eq!(admitted(&l, "/a", "10.0.0.1", None, t0, 2), 1);
    assert_eq!(refused(&l, "/a", t0).retry_after_secs(), 1);
}

#[test]
fn each_destination_the_prefix_covers_has_its_own_bucket() {
    let l = limits(
        r#"[{"prefix": "/svc/*", "requestsPerSecond": 1, "burst": 2},
            {"prefix": "/one", "requestsPerSecond": 1, "burst": 2}]"#,
    )
    .unwrap();
    let t0 = Instant::now();
    assert_eq!(admitted(&l, "/svc/web", "10.0.0.1", None, t0, 5), 2);
    assert_eq!(admitted(&l, "/svc/books", "10.0.0.1", None, t0, 5), 2);
    // Deeper paths count against the destination the prefix covers.
    assert_eq!(admitted(&l, "/svc/web/api/v1", "10.0.0.1", None, t0, 5), 0);
    assert_eq!(
        admitted(&l, "/svc/users/api/v1", "10.0.0.1", None, t0, 5),
        2
    );
    // A literal prefix is one bucket for everything under it.
    assert_eq!(admitted(&l, "/one/a", "10.0.0.1", None, t0, 5), 2);
    assert_eq!(admitted(&l, "/one/b", "10.0.0.1", None, t0, 5), 0);
    // Paths no prefix matches are not limited.
    assert_eq!(admitted(&l, "/svc", "10.0.0.1", None, t0, 5), 5);
    assert_eq!(admitted(&l, "/two", "10.0.0.1", None, t0, 5), 5);
    let stats: Vec<_> = l.stats().map(|s| (s.index, s.prefix, s.buckets)).collect();
    assert_eq!(stats, vec![(0, "/svc/*", 3), (1, "/one", 1)]);
}

#[test]
fn captures_are_matched_like_stars() {
    let l = limits(r#"[{"prefix": "/svc/{env}-{service}", "requestsPerSecond": 1, "burst": 1}]"#)
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(admitted(&l, "/svc/prod-web", "10.0.0.1", None, t0, 3), 1);
    assert_eq!(
        admitted(&l, "/svc/prod-books/x", "10.0.0.1", None, t0, 3),
        1
    );
    assert_eq!(admitted(&l, "/svc/web", "10.0.0.1", None, t0, 3), 3);
}

#[test]
fn per_identity_buckets_fall_back_to_the_address() {
    let l = limits(
        r#"[{"prefix": "/svc", "requestsPerSecond": 1, "burst": 2, "perClient": "identity"}]"#,
    )
    .unwrap();
    let t0 = Instant::now();
    let books = cert("spiffe://mesh/books");
    let web = cert("spiffe://mesh/web");
    assert_eq!(admitted(&l, "/svc/a", "10.0.0.1", Some(&books), t0, 5), 2);
    // Same identity from elsewhere: same bucket.
    assert_eq!(admitted(&l, "/svc/a", "10.0.0.2", Some(&books), t0, 5), 0);
    assert_eq!(admitted(&l, "/svc/a", "10.0.0.1", Some(&web), t0, 5), 2);
    // No certificate: by address, and apart from certificates.
    assert_eq!(admitted(&l, "/svc/a", "10.0.0.1", None, t0, 5), 2);
    assert_eq!(admitted(&l, "/svc/a", "10.0.0.2", None, t0, 5), 2);
    // A certificate without names: by its hash.
    let nameless = PeerIdentity {
        uris: vec![],
        ..cert("x")
    };
    assert_eq!(
        admitted(&l, "/svc/a", "10.0.0.1", Some(&nameless), t0, 5),
        2
    );
    let limited = l
        .check(&path("/svc/a"), ip("10.0.0.9"), Some(&nameless), t0)
        .unwrap_err();
    assert_eq!(
        limited.reason(),
        "rate limited by rateLimits[0] (1/s, burst 2) on /svc for client with certificate 0123456789ABCDEF…"
    );
    let limited = l
        .check(&path("/svc/a"), ip("10.0.0.1"), Some(&books), t0)
        .unwrap_err();
    assert_eq!(
        limited.to_string(),
        "rate limited by rateLimits[0] (1/s, burst 2) on /svc for client spiffe://mesh/books"
    );
}

#[test]
fn per_source_buckets_treat_mapped_addresses_as_ipv4() {
    let l = limits(
        r#"[{"prefix": "/svc", "requestsPerSecond": 0.5, "burst": 3, "perClient": "source"}]"#,
    )
    .unwrap();
    let t0 = Instant::now();
    let books = cert("spiffe://mesh/books");
    assert_eq!(admitted(&l, "/svc/a", "10.0.0.1", Some(&books), t0, 5), 3);
    assert_eq!(admitted(&l, "/svc/a", "::ffff:10.0.0.1", None, t0, 5), 0);
    assert_eq!(admitted(&l, "/svc/a", "10.0.0.2", Some(&books), t0, 5), 3);
    assert_eq!(admitted(&l, "/svc/a", "::1", None, t0, 5), 3);
    let limited = l
        .check(&path("/svc/a"), ip("::ffff:10.0.0.1"), None, t0)
        .unwrap_err();
    assert_eq!(
        limited.reason(),
        "rate limited by rateLimits[0] (0.5/s, burst 3) on /svc for 10.0.0.1"
    );
    assert_eq!(limited.retry_after, ms(2000));
}

#[test]
fn every_matching_rule_must_admit_and_a_refusal_takes_nothing() {
    let l = limits(
        r#"[{"prefix": "/svc", "requestsPerSecond": 1, "burst": 10},
            {"prefix": "/svc/web", "requestsPerSecond": 1, "burst": 1}]"#,
    )
    .unwrap();
    let t0 = Instant::now();
    assert_eq!(admitted(&l, "/svc/web", "10.0.0.1", None, t0, 5), 1);
    assert_eq!(refused(&l, "/svc/web", t0).rule, 1);
    // The four refused requests gave back what rule 0 took: 9 are left.
    assert_eq!(admitted(&l, "/svc/books", "10.0.0.1", None, t0, 20), 9);
    let limited = refused(&l, "/svc/web", t0);
    assert_eq!(limited.rule, 0);
    assert_eq!(
        limited.reason(),
        "rate limited by rateLimits[0] (1/s, burst 10) on /svc"
    );
    let stats: Vec<_> = l.stats().map(|s| (s.index, s.limited)).collect();
    assert_eq!(stats, vec![(0, 12), (1, 5)]);
}

#[test]
fn a_clock_read_before_the_last_one_does_not_run_a_bucket_backwards() {
    let l = limits(r#"[{"prefix": "/", "requestsPerSecond": 1, "burst": 1}]"#).unwrap();
    let t0 = Instant::now();
    let t1 = t0 + ms(5000);
    assert_eq!(admitted(&l, "/a", "10.0.0.1", None, t1, 1), 1);
    // Another task read the clock earlier but arrives later.
    assert_eq!(refused(&l, "/a", t0).retry_after, ms(6000));
    assert_eq!(admitted(&l, "/a", "10.0.0.1", None, t1 + ms(1000), 2), 1);
}

#[test]
fn buckets_stay_bounded_under_many_distinct_destinations() {
    let l = limits(r#"[{"prefix": "/svc/*", "requestsPerSecond": 1, "burst": 1}]"#).unwrap();
    let t0 = Instant::now();
    let mut most = 0;
    for i in 0..100_000u64 {
        let now = t0 + Duration::from_micros(i);
        let dst = path(&format!("/svc/s{i}"));
        assert!(l.check(&dst, ip("10.0.0.1"), None, now).is_ok());
        if i % 1000 == 0 {
            most = most.max(l.stats().map(|s| s.buckets).sum::<usize>());
        }
    }
    let held: usize = l.stats().map(|s| s.buckets).sum();
    assert!(held <= MAX_BUCKETS_PER_RULE, "{held}");
    assert!(most <= MAX_BUCKETS_PER_RULE, "{most}");
    // It keeps most of what fits, not a handful.
    assert!(held > MAX_BUCKETS_PER_RULE / 2, "{held}");
    // The buckets dropped were the oldest: the latest is still drained.
    let now = t0 + Duration::from_micros(100_000);
    assert!(
        l.check(&path("/svc/s99999"), ip("10.0.0.1"), None, now)
            .is_err()
    );
    // Once the rate has refilled them, the old buckets make room for new
    // ones before any busy bucket is dropped: every new one is kept.
    let later = now + Duration::from_secs(2);
    for i in 0..5000 {
        let dst = path(&format!("/svc/new{i}"));
        assert!(l.check(&dst, ip("10.0.0.1"), None, later).is_ok());
    }
    for i in 0..5000 {
        let dst = path(&format!("/svc/new{i}"));
        assert!(l.check(&dst, ip("10.0.0.1"), None, later).is_err(), "{i}");
    }
    assert!(l.stats().map(|s| s.buckets).sum::<usize>() <= MAX_BUCKETS_PER_RULE);
}

#[test]
fn making_room_drops_refilled_buckets_then_those_closest_to_full() {
    let t0 = Instant::now();
    let key = |i: u8| BucketKey {
        dst: Box::new([]),
        client: ClientKey::Addr(IpAddr::from([10, 0, 0, i])),
    };
    let addrs = |map: &HashMap<BucketKey, Tat>| {
        let mut left: Vec<_> = map
            .keys()
            .map(|k| match k.client {
                ClientKey::Addr(IpAddr::V4(a)) => a.octets()[3],
                _ => 0,
            })
            .collect();
        left.sort();
        left
    };
    // Refilled (tat at or before now) buckets go, busy ones stay.
    let mut map: HashMap<BucketKey, Tat> = (0..8u8)
        .map(|i| (key(i), t0 + ms(u64::from(i) * 100)))
        .collect();
    make_room(&mut map, t0 + ms(250), 8);
    assert_eq!(addrs(&map), vec![3, 4, 5, 6, 7]);
    // All busy: an eighth go, the closest to full first.
    let mut map: HashMap<BucketKey, Tat> = (0..16u8)
        .map(|i| (key(i), t0 + ms(1000 + u64::from(15 - i) * 100)))
        .collect();
    make_room(&mut map, t0, 16);
    assert_eq!(addrs(&map), (0..14).collect::<Vec<u8>>());
    // Ties: exactly an eighth, no more.
    let mut map: HashMap<BucketKey, Tat> = (0..16u8).map(|i| (key(i), t0 + ms(1000))).collect();
    make_room(&mut map, t0, 16);
    assert_eq!(map.len(), 14);
}

#[test]
fn small_capacities_still_hold_a_bucket_per_shard() {
    let config: RateLimitsConfig =
        serde_json::from_str(r#"[{"prefix": "/svc/*", "requestsPerSecond": 1}]"#).unwrap();
    let l = RateLimits::with_capacity("rateLimits", &config, 1).unwrap();
    let t0 = Instant::now();
    for i in 0..1000 {
        assert!(
            l.check(&path(&format!("/svc/s{i}")), ip("10.0.0.1"), None, t0)
                .is_ok()
        );
    }
    assert!(l.stats().map(|s| s.buckets).sum::<usize>() <= SHARDS);
}

#[test]
fn concurrent_checks_share_buckets_exactly() {
    let l = limits(
        r#"[{"prefix": "/svc", "requestsPerSecond": 1, "burst": 100},
            {"prefix": "/per", "requestsPerSecond": 1, "burst": 50, "perClient": "source"}]"#,
    )
    .unwrap();
    let t0 = Instant::now();
    let threads = 8;
    let (shared, own): (Vec<usize>, Vec<usize>) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let l = &l;
                scope.spawn(move || {
                    let source = format!("10.0.0.{t}");
                    let mut shared = 0;
                    let mut own = 0;
                    for _ in 0..1000 {
                        shared += admitted(l, "/svc/web", &source, None, t0, 1);
                        own += admitted(l, "/per/web", &source, None, t0, 1);
                    }
                    (shared, own)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).unzip()
    });
    assert_eq!(shared.iter().sum::<usize>(), 100);
    assert_eq!(own, vec![50; threads]);
    let stats: Vec<_> = l.stats().map(|s| (s.limited, s.buckets)).collect();
    assert_eq!(stats, vec![(8000 - 100, 1), (8 * (1000 - 50), 8)]);
}

#[test]
fn config_errors_name_the_key_path() {
    let error = |json: &str| limits(json).unwrap_err();
    assert_eq!(
        error(
            r#"[{"prefix": "/", "requestsPerSecond": 1}, {"prefix": "/", "requestsPerSecond": 0}]"#
        ),
        "rateLimits[1].requestsPerSecond: must be between 0.001 and 1000000, not 0"
    );
    assert_eq!(
        error(r#"[{"prefix": "/", "requestsPerSecond": -5}]"#),
        "rateLimits[0].requestsPerSecond: must be between 0.001 and 1000000, not -5"
    );
    assert_eq!(
        error(r#"[{"prefix": "/", "requestsPerSecond": 2000000}]"#),
        "rateLimits[0].requestsPerSecond: must be between 0.001 and 1000000, not 2000000"
    );
    assert_eq!(
        error(r#"[{"prefix": "/", "requestsPerSecond": 1, "burst": 0}]"#),
        "rateLimits[0].burst: must be between 1 and 1000000, not 0"
    );
    assert_eq!(
        error(r#"[{"prefix": "/", "requestsPerSecond": 1, "burst": 1000001}]"#),
        "rateLimits[0].burst: must be between 1 and 1000000, not 1000001"
    );
    assert!(
        error(r#"[{"prefix": "svc", "requestsPerSecond": 1}]"#)
            .starts_with("rateLimits[0].prefix: ")
    );
    // The extremes are accepted.
    assert!(limits(r#"[{"prefix": "/", "requestsPerSecond": 0.001, "burst": 1000000}]"#).is_ok());
    assert!(limits(r#"[{"prefix": "/", "requestsPerSecond": 1000000}]"#).is_ok());
}

#[test]
fn the_config_is_strict() {
    let parse = |json: &str| serde_json::from_str::<RateLimitsConfig>(json);
    assert!(parse(r#"[{"prefix": "/"}]"#).is_err());
    assert!(parse(r#"[{"requestsPerSecond": 1}]"#).is_err());
    assert!(parse(r#"[{"prefix": "/", "requestsPerSecond": 1, "perClient": "user"}]"#).is_err());
    assert!(parse(r#"[{"prefix": "/", "requestsPerSecond": 1, "burst": 1.5}]"#).is_err());
    assert!(parse(r#"[{"prefix": "/", "requestsPerSecond": 1, "rate": 1}]"#).is_err());
    let config = parse(
        r#"[{"prefix": "/svc/*", "requestsPerSecond": 0.5, "burst": 3, "perClient": "identity"}]"#,
    )
    .unwrap();
    assert_eq!(
        config,
        vec![RateLimitConfig {
            prefix: "/svc/*".to_string(),
            requests_per_second: 0.5,
            burst: Some(3),
            per_client: PerClient::Identity,
        }]
    );
}
