//! The identifier table, lists and config errors; each kind tests itself.

use http::Request;

use super::*;

pub(super) fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

pub(super) fn config(json: &str) -> IdentifierConfig {
    serde_json::from_str(json).unwrap()
}

/// One identifier built from JSON config, with dstPrefix `/svc`.
pub(super) fn build_one(json: &str, protocol: Protocol) -> Box<dyn Identifier> {
    let mut built = build_identifiers(&[config(json)], &path("/svc"), protocol).unwrap();
    assert_eq!(built.len(), 1);
    built.remove(0)
}

/// An HTTP/1.1 request head.
pub(super) fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap().into_parts().0
}

fn build(json: &str, protocol: Protocol) -> Result<Vec<Box<dyn Identifier>>, String> {
    let configs: Vec<IdentifierConfig> = serde_json::from_str(json).unwrap();
    build_identifiers(&configs, &path("/svc"), protocol)
}

#[test]
fn no_config_is_the_default_header_token_per_protocol() {
    let http = build_identifiers(&[], &path("/svc"), Protocol::Http).unwrap();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0].kind(), "io.l5d.header.token");
    let request = parts("GET", "http://authority/", &[("host", "web")]);
    assert_eq!(http[0].identify(&request).unwrap().name, path("/svc/web"));

    let h2 = build_identifiers(&[], &path("/svc"), Protocol::H2).unwrap();
    assert_eq!(
        h2[0].identify(&request).unwrap().name,
        path("/svc/authority")
    );
}

#[test]
fn dst_prefix_is_prepended() {
    let ids = build_identifiers(&[], &path("/http/1.1"), Protocol::Http).unwrap();
    let named = ids[0]
        .identify(&parts("GET", "/", &[("host", "web")]))
        .unwrap();
    assert_eq!(named.name, path("/http/1.1/web"));
}

#[test]
fn list_is_tried_in_order_and_first_success_wins() {
    let ids = build(
        r#"[{"kind": "io.l5d.header"}, {"kind": "io.l5d.path"}, {"kind": "io.l5d.header.token"}]"#,
        Protocol::Http,
    )
    .unwrap();
    let both = parts("GET", "/users/1", &[("l5d-name", "/named"), ("host", "h")]);
    assert_eq!(identify_with(&ids, &both).unwrap().name, path("/svc/named"));
    let no_name = parts("GET", "/users/1", &[("host", "h")]);
    assert_eq!(
        identify_with(&ids, &no_name).unwrap().name,
        path("/svc/users")
    );
    let host_only = parts("GET", "/", &[("host", "h")]);
    assert_eq!(
        identify_with(&ids, &host_only).unwrap().name,
        path("/svc/h")
    );
}

#[test]
fn when_all_fail_the_error_says_what_each_tried() {
    let ids = build(
        r#"[{"kind": "io.l5d.header"}, {"kind": "io.l5d.path", "segments": 2}]"#,
        Protocol::Http,
    )
    .unwrap();
    let err = identify_with(&ids, &parts("GET", "/a", &[])).unwrap_err();
    assert_eq!(
        err.0,
        "no identifier named the request: io.l5d.header: l5d-name header is absent; \
         io.l5d.path: not enough segments in path (need 2)"
    );
}

#[test]
fn a_single_failure_is_reported_as_is() {
    let ids = build(r#"[{"kind": "io.l5d.header.token"}]"#, Protocol::Http).unwrap();
    let err = identify_with(&ids, &parts("GET", "/", &[])).unwrap_err();
    assert_eq!(err.0, "Host header is absent");
    assert!(identify_with(&[], &parts("GET", "/", &[])).is_err());
}

#[test]
fn unknown_kind_lists_the_kinds_of_that_protocol() {
    // A kind Linkerd has for the protocol, which this build has not.
    let err = build(r#"[{"kind": "io.l5d.k8s.istio-ingress"}]"#, Protocol::H2)
        .err()
        .unwrap();
    assert!(
        err.starts_with(
            "identifier[0]: h2 identifier kind \"io.l5d.k8s.istio-ingress\" is not supported yet"
        ),
        "{err}"
    );
    let err = build(r#"[{"kind": "io.l5d.nope"}]"#, Protocol::Http)
        .err()
        .unwrap();
    assert_eq!(
        err,
        "identifier[0]: unknown http identifier kind \"io.l5d.nope\"; \
         supported kinds: io.l5d.header.token, io.l5d.methodAndHost, io.l5d.path, \
         io.l5d.header, io.l5d.static, io.l5d.ingress"
    );
    // An HTTP-only kind on an h2 router.
    let err = build(
        r#"[{"kind": "io.l5d.header.token"}, {"kind": "io.l5d.path"}]"#,
        Protocol::H2,
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        "identifier[1]: unknown h2 identifier kind \"io.l5d.path\"; \
         supported kinds: io.l5d.header.token, io.l5d.header.path, io.l5d.ingress"
    );
}

#[test]
fn unknown_or_mistyped_key_names_the_entry_and_key() {
    let err = build(
        r#"[{"kind": "io.l5d.path"}, {"kind": "io.l5d.path", "segmnets": 2}]"#,
        Protocol::Http,
    )
    .err()
    .unwrap();
    assert!(
        err.starts_with("identifier[1] (io.l5d.path): segmnets: unknown field `segmnets`"),
        "{err}"
    );
    let err = build(
        r#"[{"kind": "io.l5d.methodAndHost", "httpUriInDst": "yes"}]"#,
        Protocol::Http,
    )
    .err()
    .unwrap();
    assert!(
        err.starts_with("identifier[0] (io.l5d.methodAndHost): httpUriInDst: invalid type"),
        "{err}"
    );
}

#[test]
fn bad_header_names_are_config_errors() {
    let err = build(
        r#"[{"kind": "io.l5d.header.token", "header": "bad header"}]"#,
        Protocol::Http,
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        "identifier[0] (io.l5d.header.token): header: \"bad header\" is not a valid header name"
    );
    let err = build(
        r#"[{"kind": "io.l5d.header.path", "header": ":status"}]"#,
        Protocol::H2,
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        "identifier[0] (io.l5d.header.path): header: unknown pseudo-header \":status\""
    );
}

#[test]
fn kinds_per_protocol() {
    assert_eq!(
        identifier_kinds(Protocol::H2),
        [
            "io.l5d.header.token",
            "io.l5d.header.path",
            "io.l5d.ingress"
        ]
    );
    assert!(identifier_kinds(Protocol::Http).contains(&DEFAULT_KIND));
    assert!(identifier_kinds(Protocol::H2).contains(&DEFAULT_KIND));
}

#[test]
fn protocol_reads_and_prints_its_config_name() {
    let p: Protocol = serde_json::from_str(r#""h2""#).unwrap();
    assert_eq!(p, Protocol::H2);
    assert_eq!(Protocol::Http.to_string(), "http");
    assert!(serde_json::from_str::<Protocol>(r#""thrift""#).is_err());
}
