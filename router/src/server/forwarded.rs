//! `addForwardedHeader`: an RFC 7239 `Forwarded` header added to every
//! request a server receives, written as Linkerd 1.x writes it
//! (`AddForwardedHeader.scala`, `H2AddForwardedHeader.scala`,
//! `ForwardedHeaderLabeler.scala`).
//!
//! The value is `by=<label>;for=<label>`, then `;host=<Host>` on an `http`
//! router or `;authority=<:authority>` on an `h2` one when the request
//! names one, then `;proto=<scheme>` when the request carries a scheme
//! (always over HTTP/2, an absolute URI over HTTP/1.1). It is appended as
//! a field of its own: a `Forwarded` field from the client stays first and
//! untouched. `by` labels the router's end of the connection, `for` the
//! client's, each with a labeler kind:
//!
//! | kind | label |
//! |---|---|
//! | `ip` | `192.0.2.43`, `"[2001:db8:cafe::17]"` |
//! | `ip:port` | `"192.0.2.43:4140"`, `"[2001:db8:cafe::17]:4140"` |
//! | `connectionRandom` | `_` and 6 letters or digits, drawn once per connection |
//! | `requestRandom` (default) | the same, drawn for each request |
//! | `router` | the router's label, obfuscated: `_http` |
//! | `static` | its `label`, obfuscated: `_edge` (a `_` is added unless it starts with one) |
//!
//! Where we differ from Linkerd, on purpose: `proto` is the scheme of the
//! connection (`https` on a TLS server, `http` otherwise), not the one the
//! client claims; IPv6 addresses are written compressed (RFC 5952), where
//! the JVM writes every group (`2001:db8:cafe:0:0:0:0:17`); and a `host` or
//! `authority` that is not a token (other than for `:`, `[` and `]`, as in
//! `web:8080`) is written as a quoted string, so a client's `Host` cannot
//! add parameters of its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::identify::Protocol;

/// Letters and digits in a random label, after its `_` (Linkerd's length).
const RANDOM_LEN: usize = 6;

/// The labeler kinds, Linkerd's.
pub const KINDS: &[&str] = &[
    "ip",
    "ip:port",
    "connectionRandom",
    "requestRandom",
    "router",
    "static",
];

/// `addForwardedHeader:` of one server, as written.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddForwardedConfig {
    /// How the router's end of a connection is labelled (default
    /// `requestRandom`).
    #[serde(default)]
    pub by: Option<Labeler>,
    /// How the client is labelled (default `requestRandom`).
    #[serde(default, rename = "for")]
    pub for_: Option<Labeler>,
}

/// How one end of a connection is labelled: a labeler's `kind` (and a
/// `static` one's `label`), checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "LabelerConfig")]
pub enum Labeler {
    /// `ip`: the address, IPv6 quoted and in brackets.
    Ip,
    /// `ip:port`: the address and port, quoted.
    IpPort,
    /// `connectionRandom`: a random obfuscated label per connection.
    ConnectionRandom,
    /// `requestRandom`: a random obfuscated label per request.
    RequestRandom,
    /// `router`: the router's label, obfuscated (checked when the server
    /// is built, where the label is known).
    Router,
    /// `static`: this label.
    Static(Obfuscated),
}

/// A labeler as written: `{kind: static, label: edge}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelerConfig {
    kind: String,
    #[serde(default)]
    label: Option<String>,
}

impl TryFrom<LabelerConfig> for Labeler {
    type Error = String;

    fn try_from(config: LabelerConfig) -> Result<Labeler, String> {
        let labeler = match config.kind.as_str() {
            "ip" => Labeler::Ip,
            "ip:port" => Labeler::IpPort,
            "connectionRandom" => Labeler::ConnectionRandom,
            "requestRandom" => Labeler::RequestRandom,
            "router" => Labeler::Router,
            "static" => {
                let Some(label) = config.label else {
                    return Err("labeler kind \"static\" needs a `label`".into());
                };
                return Obfuscated::new(&label).map(Labeler::Static);
            }
            other => {
                return Err(format!(
                    "unknown labeler kind {other:?}; kinds: {}",
                    KINDS.join(", ")
                ));
            }
        };
        if config.label.is_some() {
            return Err(format!(
                "labeler kind {:?} takes no `label` (only \"static\" does)",
                config.kind
            ));
        }
        Ok(labeler)
    }
}

/// An RFC 7239 obfuscated identifier: `_` then one or more letters,
/// digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obfuscated(Arc<str>);

impl Obfuscated {
    /// `label` as Linkerd obfuscates it (a `_` in front unless it starts
    /// with one), if that is an obfuscated identifier.
    pub fn new(label: &str) -> Result<Obfuscated, String> {
        let obfuscated = if label.starts_with('_') {
            label.to_string()
        } else {
            format!("_{label}")
        };
        let rest = &obfuscated.as_bytes()[1..];
        let valid = !rest.is_empty()
            && rest
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(format!(
                "label {label:?} does not make an obfuscated identifier (RFC 7239: \"_\" then \
                 letters, digits, \".\", \"_\" or \"-\")"
            ));
        }
        Ok(Obfuscated(obfuscated.into()))
    }

    /// The identifier, `_` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which request parameter names the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `host=`, from `Host` (`http` routers).
    Host,
    /// `authority=`, from `:authority` (`h2` routers).
    Authority,
}

/// A server's `addForwardedHeader`, checked, for its connections.
#[derive(Debug, Clone)]
pub struct AddForwarded {
    /// Never [`Labeler::Router`]: that is resolved to a static label.
    by: Labeler,
    for_: Labeler,
    target: Target,
    proto: &'static str,
}

impl AddForwarded {
    /// Checks `config` for a server of a `protocol` router labelled
    /// `router`, with TLS or not. Errors start with the key path from
    /// `addForwardedHeader`.
    pub fn new(
        config: &AddForwardedConfig,
        protocol: Protocol,
        router: &str,
        tls: bool,
    ) -> Result<AddForwarded, String> {
        let resolve = |key: &str, labeler: &Option<Labeler>| match labeler {
            None => Ok(Labeler::RequestRandom),
            Some(Labeler::Router) => Obfuscated::new(router)
                .map(Labeler::Static)
                .map_err(|e| format!("addForwardedHeader.{key}: kind router: the router's {e}")),
            Some(labeler) => Ok(labeler.clone()),
        };
        Ok(AddForwarded {
            by: resolve("by", &config.by)?,
            for_: resolve("for", &config.for_)?,
            target: match protocol {
                Protocol::Http => Target::Host,
                Protocol::H2 => Target::Authority,
            },
            proto: if tls { "https" } else { "http" },
        })
    }

    /// The labels of a connection from `remote` accepted by a server
    /// listening on `listening`. On a wildcard address, the connection's
    /// own address is asked of `stream` unless `by` is static: Linkerd
    /// labels the address the client reached, never `unknown`.
    pub fn hop(
        &self,
        listening: SocketAddr,
        stream: &tokio::net::TcpStream,
        remote: SocketAddr,
    ) -> Arc<Hop> {
        let local = if listening.ip().is_unspecified() && !matches!(self.by, Labeler::Static(_)) {
            stream.local_addr().unwrap_or(listening)
        } else {
            listening
        };
        Arc::new(self.hop_at(local, remote))
    }

    /// The labels of a connection between `local` and `remote`.
    fn hop_at(&self, local: SocketAddr, remote: SocketAddr) -> Hop {
        Hop {
            by: self.by.label(local),
            for_: self.for_.label(remote),
            target: self.target,
            proto: self.proto,
        }
    }
}

impl Labeler {
    /// This labeler's label for an end of a connection at `addr`. As in
    /// Linkerd, a wildcard address is `unknown` but to a static label (an
    /// accepted connection's addresses never are one).
    fn label(&self, addr: SocketAddr) -> Label {
        let ip = addr.ip().to_canonical();
        let fixed = |label: String| Label::Fixed(label.into());
        match self {
            Labeler::Static(label) => Label::Fixed(label.0.clone()),
            _ if ip.is_unspecified() => fixed("unknown".into()),
            Labeler::Ip => fixed(match ip {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("\"[{ip}]\""),
            }),
            Labeler::IpPort => fixed(match ip {
                IpAddr::V4(ip) => format!("\"{ip}:{}\"", addr.port()),
                IpAddr::V6(ip) => format!("\"[{ip}]:{}\"", addr.port()),
            }),
            Labeler::ConnectionRandom => {
                let mut label = Vec::with_capacity(1 + RANDOM_LEN);
                push_random(&mut label);
                fixed(String::from_utf8_lossy(&label).into_owned())
            }
            // `Router` is resolved before connections are labelled; were
            // it not, a fresh label per request hides the least.
            Labeler::RequestRandom | Labeler::Router => Label::PerRequest,
        }
    }
}

/// One end's label on a connection.
#[derive(Debug, Clone)]
enum Label {
    /// The same for every request.
    Fixed(Arc<str>),
    /// Drawn for each request.
    PerRequest,
}

impl Label {
    fn push(&self, out: &mut Vec<u8>) {
        match self {
            Label::Fixed(label) => out.extend_from_slice(label.as_bytes()),
            Label::PerRequest => push_random(out),
        }
    }
}

/// `_` and [`RANDOM_LEN`] random letters and digits.
fn push_random(out: &mut Vec<u8>) {
    let mut rng = rand::rng();
    out.push(b'_');
    out.extend((0..RANDOM_LEN).map(|_| rng.sample(Alphanumeric)));
}

/// What one connection's `Forwarded` headers say, fixed when it was
/// accepted.
#[derive(Debug)]
pub struct Hop {
    by: Label,
    for_: Label,
    target: Target,
    proto: &'static str,
}

impl Hop {
    /// Appends this hop's `Forwarded` field to a request's headers.
    pub fn add_to(&self, parts: &mut http::request::Parts) {
        let host = || parts.headers.get(header::HOST).map(HeaderValue::as_bytes);
        let authority = || parts.uri.authority().map(|a| a.as_str().as_bytes());
        // Each falls back on the other: an `http` router's hyper server
        // also takes HTTP/2, and an `h2` one HTTP/1.1.
        let (name, target): (&[u8], _) = match self.target {
            Target::Host => (b";host=", host().or_else(authority)),
            Target::Authority => (b";authority=", authority().or_else(host)),
        };
        let target = target.filter(|t| !t.is_empty());
        let mut value = Vec::with_capacity(64 + target.map_or(0, <[u8]>::len));
        value.extend_from_slice(b"by=");
        self.by.push(&mut value);
        value.extend_from_slice(b";for=");
        self.for_.push(&mut value);
        if let Some(target) = target {
            value.extend_from_slice(name);
            push_value(&mut value, target);
        }
        if parts.uri.scheme().is_some() {
            value.extend_from_slice(b";proto=");
            value.extend_from_slice(self.proto.as_bytes());
        }
        // Every byte comes from a header value or is ASCII we chose.
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
            parts.headers.append(header::FORWARDED, value);
        }
    }
}

/// `value` as Linkerd writes it when it is a token but for `:`, `[` and
/// `]` (`web:8080`); as a quoted string otherwise.
fn push_value(out: &mut Vec<u8>, value: &[u8]) {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:[]".contains(&b);
    if value.iter().all(|&b| plain(b)) {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if matches!(b, b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn config(yaml: &str) -> Result<AddForwardedConfig, String> {
        namers::config::parse::<AddForwardedConfig>("test.yaml", yaml).map_err(|e| e.to_string())
    }

    fn built(yaml: &str, protocol: Protocol, tls: bool) -> AddForwarded {
        AddForwarded::new(&config(yaml).unwrap(), protocol, "web", tls).unwrap()
    }

    fn request(uri: &str, host: Option<&str>) -> http::request::Parts {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn fields(parts: &http::request::Parts) -> Vec<String> {
        parts
            .headers
            .get_all(header::FORWARDED)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// `_` then six letters or digits.
    fn is_random(label: &str) -> bool {
        label.len() == 1 + RANDOM_LEN
            && label.starts_with('_')
            && label[1..].bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// The `by` and `for` values of a header value.
    fn by_for(value: &str) -> (String, String) {
        let mut params = value.split(';');
        let by = params.next().unwrap().strip_prefix("by=").unwrap();
        let for_ = params.next().unwrap().strip_prefix("for=").unwrap();
        (by.to_string(), for_.to_string())
    }

    #[test]
    fn address_labels_are_written_as_linkerd_writes_them() {
        let v4 = addr("192.0.2.43:4140");
        let v6 = addr("[2001:db8:cafe::17]:4140");
        let mapped = addr("[::ffff:192.0.2.43]:4140");
        let wildcard = addr("0.0.0.0:4140");
        let fixed = |labeler: Labeler, at: SocketAddr| match labeler.label(at) {
            Label::Fixed(label) => label.to_string(),
            Label::PerRequest => panic!("{labeler:?} is drawn per request"),
        };
        assert_eq!(fixed(Labeler::Ip, v4), "192.0.2.43");
        assert_eq!(fixed(Labeler::Ip, v6), "\"[2001:db8:cafe::17]\"");
        assert_eq!(fixed(Labeler::Ip, mapped), "192.0.2.43");
        assert_eq!(fixed(Labeler::Ip, wildcard), "unknown");
        assert_eq!(fixed(Labeler::IpPort, v4), "\"192.0.2.43:4140\"");
        assert_eq!(fixed(Labeler::IpPort, v6), "\"[2001:db8:cafe::17]:4140\"");
        assert_eq!(fixed(Labeler::IpPort, addr("[::]:1")), "unknown");
        assert_eq!(fixed(Labeler::ConnectionRandom, wildcard), "unknown");
        let label = fixed(Labeler::ConnectionRandom, v4);
        assert!(is_random(&label), "{label}");
        let edge = Obfuscated::new("edge").unwrap();
        assert_eq!(fixed(Labeler::Static(edge), wildcard), "_edge");
        assert!(matches!(
            Labeler::RequestRandom.label(v4),
            Label::PerRequest
        ));
    }

    #[test]
    fn static_labels_are_obfuscated_as_linkerd_does_and_checked() {
        assert_eq!(Obfuscated::new("linkerd").unwrap().as_str(), "_linkerd");
        assert_eq!(Obfuscated::new("_a.b-c_9").unwrap().as_str(), "_a.b-c_9");
        for bad in ["", "_", "a b", "a;b", "é", "a:b", "\"a\""] {
            let err = Obfuscated::new(bad).unwrap_err();
            assert!(err.contains("obfuscated identifier"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn every_kind_parses_and_both_default_to_request_random() {
        let parsed =
            config("by: {kind: \"ip:port\"}\nfor:\n  kind: static\n  label: client\n").unwrap();
        assert_eq!(parsed.by, Some(Labeler::IpPort));
        assert_eq!(
            parsed.for_,
            Some(Labeler::Static(Obfuscated::new("client").unwrap()))
        );
        for (kind, labeler) in [
            ("ip", Labeler::Ip),
            ("connectionRandom", Labeler::ConnectionRandom),
            ("requestRandom", Labeler::RequestRandom),
            ("router", Labeler::Router),
        ] {
            let parsed = config(&format!("by: {{kind: {kind}}}\n")).unwrap();
            assert_eq!(parsed.by, Some(labeler));
        }
        let defaults = built("{}", Protocol::Http, false);
        assert_eq!(defaults.by, Labeler::RequestRandom);
        assert_eq!(defaults.for_, Labeler::RequestRandom);
    }

    #[test]
    fn bad_labelers_are_refused_with_their_key() {
        let err = config("by: {kind: hostname}\n").unwrap_err();
        assert!(err.contains("by: "), "{err}");
        assert!(err.contains("unknown labeler kind \"hostname\""), "{err}");
        assert!(err.contains("connectionRandom"), "{err}");
        let err = config("for: {kind: static}\n").unwrap_err();
        assert!(err.contains("for: "), "{err}");
        assert!(err.contains("needs a `label`"), "{err}");
        let err = config("for: {kind: static, label: \"my proxy\"}\n").unwrap_err();
        assert!(
            err.contains("\"my proxy\" does not make an obfuscated"),
            "{err}"
        );
        let err = config("for: {kind: ip, label: x}\n").unwrap_err();
        assert!(err.contains("takes no `label`"), "{err}");
        let err = config("from: {kind: ip}\n").unwrap_err();
        assert!(err.contains("unknown field `from`"), "{err}");
    }

    #[test]
    fn bad_labelers_in_a_router_config_name_the_key_path_and_line() {
        let yaml = "routers:\n- protocol: http\n  servers:\n  - port: 0\n    addForwardedHeader:\n      by: {kind: ip}\n      for: {kind: static}\n";
        let err = namers::config::parse::<crate::config::Config>("linkerd.yaml", yaml)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("linkerd.yaml: routers[0].servers[0].addForwardedHeader.for: "),
            "{err}"
        );
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("needs a `label`"), "{err}");
    }

    #[test]
    fn the_router_kind_is_the_router_s_label_checked_when_built() {
        let parsed = config("by: {kind: router}\nfor: {kind: router}\n").unwrap();
        let forwarded = AddForwarded::new(&parsed, Protocol::Http, "web", false).unwrap();
        assert_eq!(
            forwarded.by,
            Labeler::Static(Obfuscated::new("_web").unwrap())
        );
        let err = AddForwarded::new(&parsed, Protocol::Http, "my router", false).unwrap_err();
        assert!(
            err.starts_with("addForwardedHeader.by: kind router: the router's label \"my router\""),
            "{err}"
        );
    }

    #[test]
    fn http_requests_get_by_for_host_and_proto_for_an_absolute_uri() {
        let forwarded = built(
            "by: {kind: \"ip:port\"}\nfor: {kind: ip}\n",
            Protocol::Http,
            false,
        );
        let hop = forwarded.hop_at(addr("127.0.0.1:4140"), addr("192.0.2.9:50000"));
        let mut parts = request("/a", Some("web"));
        hop.add_to(&mut parts);
        assert_eq!(
            fields(&parts),
            ["by=\"127.0.0.1:4140\";for=192.0.2.9;host=web"]
        );
        let mut parts = request("http://web:8080/a", Some("web:8080"));
        hop.add_to(&mut parts);
        assert_eq!(
            fields(&parts),
            ["by=\"127.0.0.1:4140\";for=192.0.2.9;host=web:8080;proto=http"]
        );
        // No Host at all: no host parameter.
        let mut parts = request("/a", None);
        hop.add_to(&mut parts);
        assert_eq!(fields(&parts), ["by=\"127.0.0.1:4140\";for=192.0.2.9"]);
    }

    #[test]
    fn h2_requests_get_authority_and_the_connection_s_proto() {
        let yaml = "by: {kind: static, label: l5d}\nfor: {kind: ip}\n";
        let plain = built(yaml, Protocol::H2, false)
            .hop_at(addr("127.0.0.1:4142"), addr("[2001:db8::1]:5000"));
        let mut parts = request("http://svc.example:80/Chat", None);
        plain.add_to(&mut parts);
        assert_eq!(
            fields(&parts),
            ["by=_l5d;for=\"[2001:db8::1]\";authority=svc.example:80;proto=http"]
        );
        // Over TLS, https, whatever scheme the client names.
        let tls = built(yaml, Protocol::H2, true)
            .hop_at(addr("127.0.0.1:4142"), addr("[2001:db8::1]:5000"));
        let mut parts = request("http://svc.example/Chat", None);
        tls.add_to(&mut parts);
        assert_eq!(
            fields(&parts),
            ["by=_l5d;for=\"[2001:db8::1]\";authority=svc.example;proto=https"]
        );
    }

    #[test]
    fn a_client_s_forwarded_field_stays_first() {
        let hop = built("by: {kind: ip}\nfor: {kind: ip}\n", Protocol::Http, false)
            .hop_at(addr("127.0.0.1:4140"), addr("10.0.0.1:1"));
        let mut parts = request("/", Some("web"));
        parts.headers.append(
            header::FORWARDED,
            HeaderValue::from_static("for=192.0.2.60"),
        );
        hop.add_to(&mut parts);
        assert_eq!(
            fields(&parts),
            ["for=192.0.2.60", "by=127.0.0.1;for=10.0.0.1;host=web"]
        );
    }

    #[test]
    fn random_labels_are_drawn_per_request_or_per_connection() {
        let forwarded = built(
            "by: {kind: connectionRandom}\nfor: {kind: requestRandom}\n",
            Protocol::Http,
            false,
        );
        let (local, remote) = (addr("127.0.0.1:4140"), addr("127.0.0.1:5000"));
        let hop = forwarded.hop_at(local, remote);
        let seen: Vec<(String, String)> = (0..4)
            .map(|_| {
                let mut parts = request("/", None);
                hop.add_to(&mut parts);
                by_for(&fields(&parts)[0])
            })
            .collect();
        for (by, for_) in &seen {
            assert!(is_random(by) && is_random(for_), "{by} {for_}");
            assert_eq!(*by, seen[0].0, "one by label per connection");
        }
        let fors: std::collections::HashSet<_> = seen.iter().map(|(_, f)| f).collect();
        assert_eq!(fors.len(), seen.len(), "a for label per request: {seen:?}");
        // Another connection, another label.
        let mut parts = request("/", None);
        forwarded.hop_at(local, remote).add_to(&mut parts);
        assert_ne!(by_for(&fields(&parts)[0]).0, seen[0].0);
    }

    #[test]
    fn a_host_that_is_not_a_token_is_quoted() {
        let hop = built("by: {kind: ip}\nfor: {kind: ip}\n", Protocol::Http, false)
            .hop_at(addr("127.0.0.1:4140"), addr("10.0.0.1:1"));
        let mut parts = request("/", Some("a;for=evil,\"b\\"));
        hop.add_to(&mut parts);
        assert_eq!(
            fields(&parts),
            ["by=127.0.0.1;for=10.0.0.1;host=\"a;for=evil,\\\"b\\\\\""]
        );
        let mut parts = request("/", Some("[::1]:8080"));
        hop.add_to(&mut parts);
        assert_eq!(
            fields(&parts),
            ["by=127.0.0.1;for=10.0.0.1;host=[::1]:8080"]
        );
    }
}
