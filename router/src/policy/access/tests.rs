use super::*;

fn policy(json: &str) -> Result<AccessPolicy, String> {
    let config: AccessControlConfig = serde_json::from_str(json).unwrap();
    AccessPolicy::from_config("accessControl", &config)
}

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn cert(uris: &[&str], dns: &[&str], cn: Option<&str>) -> PeerIdentity {
    PeerIdentity {
        hash: "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12".to_string(),
        uris: uris.iter().map(|s| s.to_string()).collect(),
        dns: dns.iter().map(|s| s.to_string()).collect(),
        common_name: cn.map(str::to_string),
        subject: cn.map(|cn| format!("CN={cn}")).unwrap_or_default(),
    }
}

/// Whether the policy lets the request through.
fn decide(p: &AccessPolicy, dst: &str, source: &str, id: Option<&PeerIdentity>) -> bool {
    p.check(&path(dst), ip(source), id).is_ok()
}

fn stats(p: &AccessPolicy) -> Vec<(String, u64, u64)> {
    p.stats()
        .map(|s| (s.label.to_string(), s.allowed, s.denied))
        .collect()
}

#[test]
fn the_default_is_allow_and_can_be_deny() {
    let p = policy("{}").unwrap();
    assert!(p.allows_everything());
    assert!(decide(&p, "/svc/web", "10.0.0.1", None));

    let p = policy(r#"{"default": "deny"}"#).unwrap();
    assert!(!p.allows_everything());
    let denied = p
        .check(&path("/svc/web"), ip("10.0.0.1"), None)
        .unwrap_err();
    assert_eq!(denied.rule, None);
    assert_eq!(
        denied.reason(),
        "access denied to /svc/web by accessControl.default (unauthenticated client from 10.0.0.1)"
    );
    assert_eq!(stats(&p), vec![("default".to_string(), 0, 1)]);
}

#[test]
fn the_first_matching_rule_decides() {
    let p = policy(
        r#"{"default": "deny", "rules": [
            {"prefix": "/svc/payments", "action": "deny", "sources": ["10.1.0.0/16"]},
            {"prefix": "/svc/payments", "action": "allow", "sources": ["10.0.0.0/8"]},
            {"prefix": "/svc", "action": "deny"},
            {"action": "allow"}
        ]}"#,
    )
    .unwrap();
    // Rule 0 before the wider rule 1.
    assert!(!decide(&p, "/svc/payments/refunds", "10.1.2.3", None));
    assert!(decide(&p, "/svc/payments", "10.2.0.1", None));
    // Rule 2 shadows rule 3 under /svc; rule 3 (prefix `/`) takes the rest,
    // so the default is never reached.
    assert!(!decide(&p, "/svc/payments", "192.168.0.1", None));
    assert!(decide(&p, "/other", "192.168.0.1", None));
    let denied = p
        .check(&path("/svc/web"), ip("192.168.0.1"), None)
        .unwrap_err();
    assert_eq!(denied.rule, Some(2));
    assert_eq!(
        stats(&p),
        vec![
            ("rules/0".to_string(), 0, 1),
            ("rules/1".to_string(), 1, 0),
            ("rules/2".to_string(), 0, 2),
            ("rules/3".to_string(), 1, 0),
            ("default".to_string(), 0, 0),
        ]
    );
}

#[test]
fn prefixes_take_stars_and_captures() {
    let p = policy(
        r#"{"rules": [
            {"prefix": "/svc/*/admin", "action": "deny"},
            {"prefix": "/svc/{env}-internal", "action": "deny"}
        ]}"#,
    )
    .unwrap();
    assert!(!decide(&p, "/svc/web/admin", "10.0.0.1", None));
    assert!(!decide(&p, "/svc/books/admin/users", "10.0.0.1", None));
    assert!(decide(&p, "/svc/web/public", "10.0.0.1", None));
    assert!(decide(&p, "/svc/admin", "10.0.0.1", None));
    assert!(!decide(&p, "/svc/prod-internal/x", "10.0.0.1", None));
    assert!(decide(&p, "/svc/prod-external", "10.0.0.1", None));
}

#[test]
fn identities_match_uris_dns_names_and_the_common_name() {
    let p = policy(
        r#"{"default": "deny", "rules": [
            {"action": "allow", "identities": ["spiffe://mesh/books", "*.default.svc", "spiffe://tenants/*", "ops-team"]}
        ]}"#,
    )
    .unwrap();
    let allowed = |id: &PeerIdentity| decide(&p, "/svc/web", "10.0.0.1", Some(id));
    // Exact URI, byte for byte.
    assert!(allowed(&cert(&["spiffe://mesh/books"], &[], None)));
    assert!(!allowed(&cert(&["spiffe://mesh/Books"], &[], None)));
    assert!(!allowed(&cert(&["spiffe://mesh/books/x"], &[], None)));
    // `*.` is one or more whole labels, in DNS names ignoring case.
    assert!(allowed(&cert(&[], &["web.default.svc"], None)));
    assert!(allowed(&cert(&[], &["a.b.default.svc"], None)));
    assert!(allowed(&cert(&[], &["WEB.Default.SVC"], None)));
    assert!(!allowed(&cert(&[], &["default.svc"], None)));
    assert!(!allowed(&cert(&[], &[".default.svc"], None)));
    assert!(!allowed(&cert(&[], &["a..default.svc"], None)));
    assert!(!allowed(&cert(&[], &["webdefault.svc"], None)));
    // ...and never in URIs.
    assert!(!allowed(&cert(&["spiffe://web.default.svc"], &[], None)));
    // A trailing `*` is any suffix.
    assert!(allowed(&cert(&["spiffe://tenants/"], &[], None)));
    assert!(allowed(&cert(&["spiffe://tenants/acme/web"], &[], None)));
    assert!(!allowed(&cert(&["spiffe://tenant/acme"], &[], None)));
    // The common name, exactly.
    assert!(allowed(&cert(&[], &[], Some("ops-team"))));
    assert!(!allowed(&cert(&[], &[], Some("OPS-TEAM"))));
    // Any one of several names will do.
    assert!(allowed(&cert(
        &["spiffe://other/x"],
        &["x.example.com", "web.default.svc"],
        Some("nobody")
    )));
    // A certificate without names, and no certificate, match nothing.
    assert!(!allowed(&cert(&[], &[], None)));
    assert!(!decide(&p, "/svc/web", "10.0.0.1", None));
}

#[test]
fn a_lone_star_matches_any_certificate_name() {
    let p = policy(r#"{"default": "deny", "rules": [{"action": "allow", "identities": ["*"]}]}"#)
        .unwrap();
    assert!(decide(
        &p,
        "/svc/web",
        "10.0.0.1",
        Some(&cert(&[], &["anything"], None))
    ));
    assert!(!decide(&p, "/svc/web", "10.0.0.1", None));
}

#[test]
fn sources_are_ranges_of_v4_and_v6_addresses() {
    let p = policy(
        r#"{"default": "deny", "rules": [
            {"action": "allow", "sources": ["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1/128", "0.0.0.0/0"]}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        p.rules[0].sources,
        Some(vec![
            IpRange {
                network: ip("10.0.0.0"),
                bits: 8
            },
            IpRange {
                network: ip("127.0.0.1"),
                bits: 32
            },
            IpRange {
                network: ip("2001:db8::"),
                bits: 32
            },
            IpRange {
                network: ip("::1"),
                bits: 128
            },
            IpRange {
                network: ip("0.0.0.0"),
                bits: 0
            },
        ])
    );

    let p = policy(
        r#"{"default": "deny", "rules": [
            {"action": "allow", "sources": ["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1/128"]}
        ]}"#,
    )
    .unwrap();
    assert!(decide(&p, "/a", "10.255.0.1", None));
    assert!(!decide(&p, "/a", "11.0.0.1", None));
    assert!(decide(&p, "/a", "127.0.0.1", None));
    assert!(!decide(&p, "/a", "127.0.0.2", None));
    assert!(decide(&p, "/a", "2001:db8:ffff::1", None));
    assert!(!decide(&p, "/a", "2001:db9::1", None));
    assert!(decide(&p, "/a", "::1", None));
    assert!(!decide(&p, "/a", "::2", None));
    // A v4 range never holds a v6 address that merely shares the bits.
    assert!(!decide(&p, "/a", "a00::1", None));
}

#[test]
fn ipv4_mapped_addresses_count_as_ipv4() {
    let p = policy(
        r#"{"default": "deny", "rules": [
            {"action": "allow", "sources": ["10.0.0.0/8"]},
            {"action": "allow", "sources": ["::ffff:192.168.0.0/112"]}
        ]}"#,
    )
    .unwrap();
    assert!(decide(&p, "/a", "::ffff:10.1.2.3", None));
    assert!(!decide(&p, "/a", "::ffff:11.1.2.3", None));
    // A mapped range is kept as the IPv4 range it maps.
    assert_eq!(
        p.rules[1].sources,
        Some(vec![IpRange {
            network: ip("192.168.0.0"),
            bits: 16
        }])
    );
    assert!(decide(&p, "/a", "192.168.7.7", None));
    assert!(decide(&p, "/a", "::ffff:192.168.7.7", None));
    // The reason names the IPv4 address.
    let p = policy(r#"{"default": "deny"}"#).unwrap();
    let denied = p
        .check(&path("/a"), ip("::ffff:10.1.2.3"), None)
        .unwrap_err();
    assert!(
        denied.reason.ends_with("from 10.1.2.3)"),
        "{}",
        denied.reason
    );
}

#[test]
fn unauthenticated_matches_only_clients_without_a_certificate() {
    let p = policy(
        r#"{"rules": [
            {"prefix": "/svc/payments", "action": "deny", "unauthenticated": true}
        ]}"#,
    )
    .unwrap();
    let books = cert(&["spiffe://mesh/books"], &[], None);
    assert!(!decide(&p, "/svc/payments", "10.0.0.1", None));
    assert!(decide(&p, "/svc/payments", "10.0.0.1", Some(&books)));
    assert!(decide(&p, "/svc/web", "10.0.0.1", None));
    // `false` is the same as leaving it out.
    let p = policy(r#"{"rules": [{"action": "deny", "unauthenticated": false}]}"#).unwrap();
    assert!(!decide(&p, "/a", "10.0.0.1", Some(&books)));
    assert!(!decide(&p, "/a", "10.0.0.1", None));
}

#[test]
fn all_conditions_of_a_rule_must_hold() {
    let p = policy(
        r#"{"default": "deny", "rules": [
            {"prefix": "/svc/web", "action": "allow", "identities": ["*.mesh"], "sources": ["10.0.0.0/8"]}
        ]}"#,
    )
    .unwrap();
    let web = cert(&[], &["web.mesh"], None);
    let other = cert(&[], &["web.other"], None);
    assert!(decide(&p, "/svc/web", "10.0.0.1", Some(&web)));
    assert!(!decide(&p, "/svc/web", "11.0.0.1", Some(&web)));
    assert!(!decide(&p, "/svc/web", "10.0.0.1", Some(&other)));
    assert!(!decide(&p, "/svc/books", "10.0.0.1", Some(&web)));
}

#[test]
fn reasons_name_the_destination_the_rule_and_the_client() {
    let p = policy(
        r#"{"rules": [
            {"prefix": "/svc/payments", "action": "deny", "identities": ["spiffe://mesh/*"]},
            {"prefix": "/svc/payments", "action": "deny"}
        ]}"#,
    )
    .unwrap();
    let books = cert(
        &["spiffe://other/x", "spiffe://mesh/books"],
        &["books.mesh"],
        None,
    );
    let denied = p
        .check(&path("/svc/payments"), ip("10.1.2.3"), Some(&books))
        .unwrap_err();
    assert_eq!(denied.rule, Some(0));
    // The name that matched, not merely the first.
    assert_eq!(
        denied.to_string(),
        "access denied to /svc/payments by accessControl.rules[0] (client spiffe://mesh/books from 10.1.2.3)"
    );
    let other = cert(&[], &["web.default.svc"], None);
    let denied = p
        .check(&path("/svc/payments"), ip("::1"), Some(&other))
        .unwrap_err();
    assert_eq!(
        denied.reason(),
        "access denied to /svc/payments by accessControl.rules[1] (client web.default.svc from ::1)"
    );
    let nameless = cert(&[], &[], None);
    let denied = p
        .check(&path("/svc/payments"), ip("10.1.2.3"), Some(&nameless))
        .unwrap_err();
    assert_eq!(
        denied.reason(),
        "access denied to /svc/payments by accessControl.rules[1] (client with certificate AB12CD34EF56AB12… from 10.1.2.3)"
    );
}

#[test]
fn config_errors_name_the_key_path() {
    let error = |json: &str| policy(json).unwrap_err();
    assert_eq!(
        error(
            r#"{"rules": [{"action": "allow"}, {"action": "deny"},
                {"action": "deny", "sources": ["10.0.0/8"]}]}"#
        ),
        "accessControl.rules[2].sources[0]: `10.0.0/8` is not an address range (`10.0.0.0/8`, `fd00::/8` or an address)"
    );
    assert_eq!(
        error(r#"{"rules": [{"action": "deny", "sources": ["10.0.0.0/8", "10.1.0.0/8"]}]}"#),
        "accessControl.rules[0].sources[1]: `10.1.0.0/8` has bits set past the /8 prefix; did you mean `10.0.0.0/8`?"
    );
    assert_eq!(
        error(r#"{"rules": [{"action": "deny", "sources": ["10.0.0.0/33"]}]}"#),
        "accessControl.rules[0].sources[0]: `10.0.0.0/33`: the prefix length must be at most 32"
    );
    assert_eq!(
        error(r#"{"rules": [{"action": "deny", "sources": ["::/129"]}]}"#),
        "accessControl.rules[0].sources[0]: `::/129`: the prefix length must be at most 128"
    );
    for bad in [
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/8/8",
        "web",
        "",
        "fe80::1%eth0",
    ] {
        let json = format!(r#"{{"rules": [{{"action": "deny", "sources": ["{bad}"]}}]}}"#);
        assert!(
            error(&json).contains("is not an address range"),
            "{bad}: {}",
            error(&json)
        );
    }
    assert_eq!(
        error(r#"{"rules": [{"action": "deny", "identities": ["a*b"]}]}"#),
        "accessControl.rules[0].identities[0]: `a*b`: `*` may only begin a pattern as `*.` (`*.default.svc`) or end one (`spiffe://mesh/*`), once"
    );
    for bad in ["*.", "*..x", "*.a*", "**", "*x"] {
        let json = format!(r#"{{"rules": [{{"action": "deny", "identities": ["{bad}"]}}]}}"#);
        assert!(error(&json).contains("`*` may only"), "{bad}");
    }
    assert_eq!(
        error(r#"{"rules": [{"action": "deny", "identities": [""]}]}"#),
        "accessControl.rules[0].identities[0]: an empty name matches no client"
    );
    assert_eq!(
        error(r#"{"rules": [{"action": "deny", "identities": []}]}"#),
        "accessControl.rules[0].identities: an empty list would match no client; leave the key out to match any"
    );
    assert_eq!(
        error(r#"{"rules": [{"action": "deny", "sources": []}]}"#),
        "accessControl.rules[0].sources: an empty list would match no client; leave the key out to match any"
    );
    assert!(
        error(r#"{"rules": [{"action": "deny", "prefix": "svc"}]}"#)
            .starts_with("accessControl.rules[0].prefix: ")
    );
    assert!(
        error(r#"{"rules": [{"action": "deny", "identities": ["x"], "unauthenticated": true}]}"#)
            .starts_with("accessControl.rules[0].unauthenticated: ")
    );
}

#[test]
fn the_config_is_strict() {
    let parse = |json: &str| serde_json::from_str::<AccessControlConfig>(json);
    assert!(parse(r#"{"rules": [{"action": "deny", "identity": ["x"]}]}"#).is_err());
    assert!(parse(r#"{"rules": [{"prefix": "/a"}]}"#).is_err());
    assert!(parse(r#"{"rules": [{"action": "block"}]}"#).is_err());
    assert!(parse(r#"{"default": "Deny"}"#).is_err());
    assert!(parse(r#"{"defaults": "deny"}"#).is_err());
}
