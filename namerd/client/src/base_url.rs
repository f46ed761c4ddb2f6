//! Where namerd is: `http://host:port` with an optional path prefix, and
//! how request URIs are built under it.

use std::fmt;

use http::Uri;

/// The address of a namerd HTTP interface, such as `http://127.0.0.1:4180`,
/// `https://namerd.example:4180` or `http://gateway:80/namerd` (requests
/// then go to `/namerd/api/1/...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    /// `scheme://authority`, without a trailing `/`.
    origin: String,
    /// The path prefix without a trailing `/`; empty for none.
    prefix: String,
}

/// Why a base URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// Not a URL at all.
    #[error("invalid base URL {url:?}: {reason}")]
    Invalid {
        /// The text given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A scheme other than `http` and `https`.
    #[error("unsupported scheme in base URL {0:?}: write http:// or https://")]
    Scheme(String),
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]` (or `https://`). A query or
    /// fragment is refused.
    pub fn parse(url: &str) -> Result<BaseUrl, BaseUrlError> {
        let invalid = |reason: &str| BaseUrlError::Invalid {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        let uri: Uri =
            trimmed
                .parse()
                .map_err(|e: http::uri::InvalidUri| BaseUrlError::Invalid {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| invalid("it has no scheme (write http://host:port)"))?;
        let scheme = if scheme.eq_ignore_ascii_case("http") {
            "http"
        } else if scheme.eq_ignore_ascii_case("https") {
            "https"
        } else {
            return Err(BaseUrlError::Scheme(url.to_string()));
        };
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("it has no host"))?
            .as_str();
        if authority.contains('@') {
            return Err(invalid("user info is not supported"));
        }
        if uri.query().is_some() || trimmed.contains('#') {
            return Err(invalid("it may not have a query or fragment"));
        }
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(BaseUrl {
            origin: format!("{scheme}://{authority}"),
            prefix,
        })
    }

    /// Whether requests go over TLS (`https://`).
    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// The host, without its port (and without the brackets of an IPv6
    /// address): the name a server's certificate is checked against.
    pub fn host(&self) -> &str {
        let authority = self
            .origin
            .split_once("://")
            .map_or(self.origin.as_str(), |(_, a)| a);
        if let Some(v6) = authority.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    }

    /// The URI of `path` (which starts with `/`) under this base, with an
    /// already encoded query string appended when not empty.
    pub(crate) fn uri(&self, path: &str, query: &str) -> Result<Uri, http::Error> {
        let mut text = format!("{}{}{}", self.origin, self.prefix, path);
        if !query.is_empty() {
            text.push('?');
            text.push_str(query);
        }
        Ok(Uri::try_from(text)?)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin, self.prefix)
    }
}

impl std::str::FromStr for BaseUrl {
    type Err = BaseUrlError;
    fn from_str(s: &str) -> Result<BaseUrl, BaseUrlError> {
        BaseUrl::parse(s)
    }
}

/// Builds a query string from `(name, value)` pairs, percent-encoding
/// everything but unreserved characters and `/` (so paths stay readable).
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(name, &mut out);
        out.push('=');
        encode_into(value, &mut out);
    }
    out
}

fn encode_into(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_prefix() {
        let b = BaseUrl::parse("http://127.0.0.1:4180").unwrap();
        assert_eq!(b.to_string(), "http://127.0.0.1:4180");
        assert_eq!(
            b.uri("/api/1/dtabs", "").unwrap().to_string(),
            "http://127.0.0.1:4180/api/1/dtabs"
        );
        let b = BaseUrl::parse("http://gw:80/namerd/").unwrap();
        assert_eq!(b.to_string(), "http://gw:80/namerd");
        assert_eq!(
            b.uri("/api/1/bind/default", "path=/svc/web")
                .unwrap()
                .to_string(),
            "http://gw:80/namerd/api/1/bind/default?path=/svc/web"
        );
    }

    #[test]
    fn https_is_taken_and_the_host_is_the_name_to_check() {
        let b = BaseUrl::parse("HTTPS://namerd.example:4180/ns").unwrap();
        assert!(b.is_https());
        assert_eq!(b.to_string(), "https://namerd.example:4180/ns");
        assert_eq!(b.host(), "namerd.example");
        assert_eq!(BaseUrl::parse("https://[::1]:4180").unwrap().host(), "::1");
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1").unwrap().host(),
            "127.0.0.1"
        );
        assert!(!BaseUrl::parse("http://n:1").unwrap().is_https());
    }

    #[test]
    fn refuses_what_it_cannot_talk_to() {
        assert!(matches!(
            BaseUrl::parse("ftp://namerd:4180"),
            Err(BaseUrlError::Scheme(_))
        ));
        assert!(matches!(
            BaseUrl::parse("namerd:4180"),
            Err(BaseUrlError::Invalid { .. })
        ));
        assert!(matches!(
            BaseUrl::parse("http://namerd:4180/?x=1"),
            Err(BaseUrlError::Invalid { .. })
        ));
        assert!(matches!(
            BaseUrl::parse(""),
            Err(BaseUrlError::Invalid { .. })
        ));
        assert!(matches!(
            BaseUrl::parse("http://"),
            Err(BaseUrlError::Invalid { .. })
        ));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query(&[("path", "/svc/web"), ("dtab", "/a=>/b & 2*/c;/#=>$")]),
            "path=/svc/web&dtab=%2Fa%3D%3E%2Fb%20%26%202%2A%2Fc%3B%2F%23%3D%3E%24"
                .replace("%2F", "/")
        );
    }
}
