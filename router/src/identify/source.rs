//! Where an identifier reads a header from. hyper keeps HTTP/2's
//! pseudo-headers in the request line (`:authority` in the URI, `:path` in
//! the URI, `:method` as the method), and HTTP/1's authority in `Host`, so a
//! configured header name is resolved once, at build time, to one of these.

use http::header::{HOST, HeaderName};
use http::request::Parts;

use super::Protocol;

/// A header an identifier reads, resolved from its configured name.
#[derive(Debug, Clone)]
pub(super) struct HeaderSource {
    /// The name as configured, for messages (`Host`, `:authority`).
    display: String,
    at: Location,
    /// Which of several values counts: Linkerd's HTTP router takes the
    /// first, its h2 router the last.
    last: bool,
}

#[derive(Debug, Clone)]
enum Location {
    /// `Host`: the Host header, else the URI's authority (absolute-form or
    /// HTTP/2 requests).
    Host,
    /// `:authority`: the URI's authority, else the Host header (HTTP/1
    /// requests).
    Authority,
    /// `:path`: the URI's path and query.
    Path,
    /// `:method`.
    Method,
    /// `:scheme`.
    Scheme,
    /// Any other header.
    Header(HeaderName),
}

impl HeaderSource {
    /// Resolves a configured header name (case-insensitive).
    pub(super) fn new(name: &str, protocol: Protocol) -> Result<HeaderSource, String> {
        let lower = name.to_ascii_lowercase();
        let at = match lower.as_str() {
            "host" => Location::Host,
            ":authority" => Location::Authority,
            ":path" => Location::Path,
            ":method" => Location::Method,
            ":scheme" => Location::Scheme,
            other if other.starts_with(':') => {
                return Err(format!("header: unknown pseudo-header {name:?}"));
            }
            other => Location::Header(
                HeaderName::from_bytes(other.as_bytes())
                    .map_err(|_| format!("header: {name:?} is not a valid header name"))?,
            ),
        };
        Ok(HeaderSource {
            display: name.to_string(),
            at,
            last: protocol == Protocol::H2,
        })
    }

    /// The name as configured.
    pub(super) fn name(&self) -> &str {
        &self.display
    }

    /// The header's value in `request`, if present (it may be empty).
    pub(super) fn read<'a>(&self, request: &'a Parts) -> Option<&'a [u8]> {
        let authority = || request.uri.authority().map(|a| a.as_str().as_bytes());
        match &self.at {
            Location::Host => self.header(request, &HOST).or_else(authority),
            Location::Authority => authority().or_else(|| self.header(request, &HOST)),
            Location::Path => request.uri.path_and_query().map(|p| p.as_str().as_bytes()),
            Location::Method => Some(request.method.as_str().as_bytes()),
            Location::Scheme => request.uri.scheme_str().map(str::as_bytes),
            Location::Header(name) => self.header(request, name),
        }
    }

    fn header<'a>(&self, request: &'a Parts, name: &HeaderName) -> Option<&'a [u8]> {
        let mut values = request.headers.get_all(name).iter();
        let value = if self.last {
            values.next_back()
        } else {
            values.next()
        };
        value.map(http::HeaderValue::as_bytes)
    }
}
