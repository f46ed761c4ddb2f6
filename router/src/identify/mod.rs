//! Identifiers: how a request is given a logical name such as `/svc/web`.
//!
//! Each kind (`io.l5d.header.token`, `io.l5d.path`, ...) is one module with
//! its config, validation and builder, registered in [`KINDS`]. A router may
//! list several identifiers; they are tried in order and the first that
//! names the request wins.

mod header;
mod header_path;
mod header_token;
mod ingress;
mod method_and_host;
mod path;
mod source;
mod static_name;

use std::fmt;

use dtab::Path;
use http::request::Parts;
use serde_json::{Map, Value};

/// A request's logical name.
#[derive(Debug, Clone, PartialEq)]
pub struct Identified {
    /// The full name to bind, dstPrefix included (e.g. `/svc/web`).
    pub name: Path,
    /// A new request URI (path and query) when the identifier consumes part
    /// of the path (`io.l5d.path` with `consume: true`).
    pub rewritten_uri: Option<http::Uri>,
}

impl Identified {
    /// A name with the request URI left as it is.
    pub fn name(name: Path) -> Identified {
        Identified {
            name,
            rewritten_uri: None,
        }
    }
}

/// Why a request could not be named; answered with 400 and `l5d-err`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unidentified(pub String);

/// Gives requests a logical name.
pub trait Identifier: Send + Sync + 'static {
    /// The config kind, e.g. `io.l5d.header.token`, for error messages.
    fn kind(&self) -> &'static str;

    /// Names `request`, or says why it cannot.
    fn identify(&self, request: &Parts) -> Result<Identified, Unidentified>;
}

/// The protocol a router speaks; identifiers and defaults differ by protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 (and 1.0).
    Http,
    /// HTTP/2, including gRPC.
    H2,
}

impl Protocol {
    /// The name used in configs: `http` or `h2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::H2 => "h2",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a router's `identifier:`: the kind and its own keys.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct IdentifierConfig {
    /// Which identifier, e.g. `io.l5d.path`.
    pub kind: String,
    /// The kind's own keys, checked strictly by the kind.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

/// What every identifier is built with.
struct BuildContext<'a> {
    /// The router's `dstPrefix` (default `/svc`).
    dst_prefix: &'a Path,
    protocol: Protocol,
}

/// Builds an identifier from the kind's own keys.
type Build = fn(&Map<String, Value>, &BuildContext<'_>) -> Result<Box<dyn Identifier>, String>;

/// How one kind of identifier is built, and which routers may use it.
struct IdentifierKind {
    kind: &'static str,
    protocols: &'static [Protocol],
    build: Build,
}

/// The identifier used when a router configures none.
pub const DEFAULT_KIND: &str = header_token::KIND;

/// Every identifier kind this build knows.
const KINDS: &[IdentifierKind] = &[
    IdentifierKind {
        kind: header_token::KIND,
        protocols: &[Protocol::Http, Protocol::H2],
        build: header_token::build,
    },
    IdentifierKind {
        kind: method_and_host::KIND,
        protocols: &[Protocol::Http],
        build: method_and_host::build,
    },
    IdentifierKind {
        kind: path::KIND,
        protocols: &[Protocol::Http],
        build: path::build,
    },
    IdentifierKind {
        kind: header::KIND,
        protocols: &[Protocol::Http],
        build: header::build,
    },
    IdentifierKind {
        kind: static_name::KIND,
        protocols: &[Protocol::Http],
        build: static_name::build,
    },
    IdentifierKind {
        kind: header_path::KIND,
        protocols: &[Protocol::H2],
        build: header_path::build,
    },
    IdentifierKind {
        kind: ingress::KIND,
        protocols: &[Protocol::Http, Protocol::H2],
        build: ingress::build,
    },
];

/// The identifier kinds a router of `protocol` can configure.
pub fn identifier_kinds(protocol: Protocol) -> Vec<&'static str> {
    KINDS
        .iter()
        .filter(|k| k.protocols.contains(&protocol))
        .map(|k| k.kind)
        .collect()
}

/// Builds a router's identifiers, in config order. An empty list gives the
/// default identifier ([`DEFAULT_KIND`] with its default keys). Errors name
/// the entry, e.g. `identifier[1] (io.l5d.path): segments: ...`.
pub fn build_identifiers(
    configs: &[IdentifierConfig],
    dst_prefix: &Path,
    protocol: Protocol,
) -> Result<Vec<Box<dyn Identifier>>, String> {
    let context = BuildContext {
        dst_prefix,
        protocol,
    };
    if configs.is_empty() {
        let default = header_token::build(&Map::new(), &context)
            .map_err(|e| format!("default identifier ({DEFAULT_KIND}): {e}"))?;
        return Ok(vec![default]);
    }
    let mut identifiers = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let kind = KINDS
            .iter()
            .find(|k| k.kind == config.kind && k.protocols.contains(&protocol))
            .ok_or_else(|| {
                namers::config::linkerd::unknown_kind(
                    &format!("identifier[{i}]"),
                    &format!("{protocol} identifier"),
                    &config.kind,
                    &identifier_kinds(protocol),
                )
            })?;
        let identifier = (kind.build)(&config.params, &context)
            .map_err(|e| format!("identifier[{i}] ({}): {e}", kind.kind))?;
        identifiers.push(identifier);
    }
    Ok(identifiers)
}

/// Tries each identifier in order; the first that names the request wins.
/// When all fail, the error says what each one tried.
pub fn identify_with(
    identifiers: &[Box<dyn Identifier>],
    request: &Parts,
) -> Result<Identified, Unidentified> {
    let mut failures = Vec::new();
    for identifier in identifiers {
        match identifier.identify(request) {
            Ok(identified) => return Ok(identified),
            Err(Unidentified(why)) => failures.push((identifier.kind(), why)),
        }
    }
    Err(match failures.as_slice() {
        [] => Unidentified("no identifier is configured".to_string()),
        [(_, why)] => Unidentified(why.clone()),
        many => Unidentified(format!(
            "no identifier named the request: {}",
            many.iter()
                .map(|(kind, why)| format!("{kind}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    })
}

#[cfg(test)]
mod tests;
