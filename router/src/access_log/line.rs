//! One access-log line, in Linkerd 1.x's format:
//!
//! ```text
//! host remoteHost - - [dd/MM/yyyy:HH:mm:ss UTC] "METHOD uri HTTP/1.1" status length "Referer" "User-Agent"
//! ```
//!
//! `h2` routers write Linkerd's h2 variant: the zone as `+0000`, the
//! resource as `"METHOD path HTTP/2"` and `-` for the length.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{CONTENT_LENGTH, HOST, REFERER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};

use super::time::{Civil, push_padded};
use crate::identify::Protocol;

/// What one line says about a request and its response. Borrowed, so that
/// building one costs nothing; [`RequestHead`] keeps what a request needs
/// past its dispatch.
#[derive(Debug, Clone, Copy)]
pub struct AccessEntry<'a> {
    /// `http`: the `Host` header; `h2`: the `:authority`. `-` when `None`.
    pub host: Option<&'a [u8]>,
    /// The downstream peer's address; `0.0.0.0` (`http`) or `-` (`h2`)
    /// when `None`, as Linkerd writes it.
    pub remote: Option<IpAddr>,
    /// The request method, written in upper case.
    pub method: &'a Method,
    /// The request-target as received, query included; `h2` lines write
    /// only its path and query (the `:path`).
    pub uri: &'a Uri,
    /// The request's version (`http` lines only; `h2` lines say `HTTP/2`).
    pub version: Version,
    /// The response status code.
    pub status: u16,
    /// The response's `Content-Length`, not counted bytes: `-` when
    /// `None`, as for a chunked response (`http` lines only).
    pub content_length: Option<u64>,
    /// The `Referer` header; `-` when `None`.
    pub referer: Option<&'a [u8]>,
    /// The `User-Agent` header; `-` when `None`.
    pub user_agent: Option<&'a [u8]>,
}

/// The parts of a request a line needs, kept (cheap clones: reference
/// counts, no copies) from before the request is dispatched until its
/// response head arrives.
#[derive(Debug, Clone)]
pub struct RequestHead {
    host: Option<HeaderValue>,
    remote: Option<IpAddr>,
    method: Method,
    uri: Uri,
    version: Version,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl RequestHead {
    /// Keeps what a line needs from `request`, received from `remote`.
    /// An HTTP/2 request's host is its `:authority` (the `Host` header if
    /// it has none); an HTTP/1 request's is its `Host` header.
    pub fn capture<B>(request: &http::Request<B>, remote: Option<IpAddr>) -> RequestHead {
        let (parts, ()) = {
            let mut copy = http::Request::new(());
            *copy.method_mut() = request.method().clone();
            *copy.uri_mut() = request.uri().clone();
            *copy.version_mut() = request.version();
            *copy.headers_mut() = request.headers().clone();
            copy.into_parts()
        };
        RequestHead::from_parts(&parts, remote)
    }

    /// [`RequestHead::capture`] from a request's head.
    pub fn from_parts(request: &http::request::Parts, remote: Option<IpAddr>) -> RequestHead {
        let headers = &request.headers;
        let uri = &request.uri;
        let authority = || {
            uri.authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        };
        let host = if request.version == Version::HTTP_2 {
            authority().or_else(|| headers.get(HOST).cloned())
        } else {
            headers.get(HOST).cloned()
        };
        RequestHead {
            host,
            remote,
            method: request.method.clone(),
            uri: uri.clone(),
            version: request.version,
            referer: headers.get(REFERER).cloned(),
            user_agent: headers.get(USER_AGENT).cloned(),
        }
    }

    /// The line for this request answered with `status` and a
    /// `Content-Length` of `content_length` (see [`content_length`]).
    pub fn entry(&self, status: u16, content_length: Option<u64>) -> AccessEntry<'_> {
        AccessEntry {
            host: self.host.as_ref().map(HeaderValue::as_bytes),
            remote: self.remote,
            method: &self.method,
            uri: &self.uri,
            version: self.version,
            status,
            content_length,
            referer: self.referer.as_ref().map(HeaderValue::as_bytes),
            user_agent: self.user_agent.as_ref().map(HeaderValue::as_bytes),
        }
    }
}

/// A response's `Content-Length` header as a number, as Linkerd logs it;
/// `None` when it is missing or not a number.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Appends the line for `entry`, logged `unix_secs` after the epoch by a
/// `protocol` router, newline included.
pub fn format_line(out: &mut Vec<u8>, protocol: Protocol, entry: &AccessEntry<'_>, unix_secs: u64) {
    let h2 = protocol == Protocol::H2;
    push_field(out, entry.host);
    out.push(b' ');
    match entry.remote {
        Some(ip) => push_ip(out, ip),
        None if h2 => out.push(b'-'),
        None => out.extend_from_slice(b"0.0.0.0"),
    }
    out.extend_from_slice(b" - - [");
    push_time(out, unix_secs);
    out.extend_from_slice(if h2 { b" +0000] \"" } else { b" UTC] \"" });
    push_method(out, entry.method);
    out.push(b' ');
    if h2 {
        match entry.uri.path_and_query() {
            Some(pq) => push_field(out, Some(pq.as_str().as_bytes())),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" HTTP/2\" ");
    } else {
        push_target(out, entry.uri);
        out.push(b' ');
        out.extend_from_slice(version(entry.version).as_bytes());
        out.extend_from_slice(b"\" ");
    }
    push_padded(out, u64::from(entry.status), 1);
    out.push(b' ');
    match entry.content_length {
        Some(n) if !h2 => push_padded(out, n, 1),
        _ => out.push(b'-'),
    }
    out.extend_from_slice(b" \"");
    push_field(out, entry.referer);
    out.extend_from_slice(b"\" \"");
    push_field(out, entry.user_agent);
    out.extend_from_slice(b"\"\n");
}

/// `dd/MM/yyyy:HH:mm:ss`, the month numeric as in Linkerd.
fn push_time(out: &mut Vec<u8>, unix_secs: u64) {
    let t = Civil::from_unix(unix_secs);
    push_padded(out, t.day, 2);
    out.push(b'/');
    push_padded(out, t.month, 2);
    out.push(b'/');
    push_padded(out, t.year, 4);
    out.push(b':');
    push_padded(out, t.hour, 2);
    out.push(b':');
    push_padded(out, t.minute, 2);
    out.push(b':');
    push_padded(out, t.second, 2);
}

fn push_method(out: &mut Vec<u8>, method: &Method) {
    out.extend(method.as_str().bytes().map(|b| b.to_ascii_uppercase()));
}

/// The request-target as `http::Uri` prints it (origin, absolute or
/// authority form), without going through `fmt`.
fn push_target(out: &mut Vec<u8>, uri: &Uri) {
    if let Some(scheme) = uri.scheme_str() {
        out.extend_from_slice(scheme.as_bytes());
        out.extend_from_slice(b"://");
    }
    if let Some(authority) = uri.authority() {
        push_field(out, Some(authority.as_str().as_bytes()));
    }
    push_field(out, Some(uri.path().as_bytes()));
    if let Some(query) = uri.query() {
        out.push(b'?');
        push_field(out, Some(query.as_bytes()));
    }
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "-",
    }
}

/// A value as received, `-` when missing. Control bytes become `?` so
/// that one entry is always one line, whatever a client sends.
fn push_field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let Some(value) = value else {
        out.push(b'-');
        return;
    };
    let control = |b: &u8| *b < 0x20 || *b == 0x7f;
    if value.iter().any(control) {
        out.extend(value.iter().map(|b| if control(b) { b'?' } else { *b }));
    } else {
        out.extend_from_slice(value);
    }
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    // Printed on the stack: an address is at most 45 bytes.
    let mut text = StackText::default();
    let _ = write!(text, "{ip}");
    out.extend_from_slice(&text.bytes[..text.len]);
}

/// A small `fmt::Write` buffer that needs no allocation.
struct StackText {
    bytes: [u8; 64],
    len: usize,
}

impl Default for StackText {
    fn default() -> StackText {
        StackText {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// 06/01/2016:21:21:26 UTC, the time of Linkerd's AccessLoggerTest.
    const LINKERD_TEST_TIME: u64 = 1_452_115_286;

    fn line(protocol: Protocol, entry: &AccessEntry<'_>) -> String {
        let mut out = Vec::new();
        format_line(&mut out, protocol, entry, LINKERD_TEST_TIME);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn http_line_matches_linkerd_s_test_line() {
        // AccessLoggerTest.scala: Host monkeys, HEAD /foo?bar=bah, 402,
        // Content-Length 304374, no remote address (written 0.0.0.0); the
        // JVM's zone there was GMT, ours is always UTC.
        let uri: Uri = "/foo?bar=bah".parse().unwrap();
        let entry = AccessEntry {
            host: Some(b"monkeys"),
            remote: None,
            method: &Method::HEAD,
            uri: &uri,
            version: Version::HTTP_11,
            status: 402,
            content_length: Some(304_374),
            referer: None,
            user_agent: None,
        };
        assert_eq!(
            line(Protocol::Http, &entry),
            "monkeys 0.0.0.0 - - [06/01/2016:21:21:26 UTC] \"HEAD /foo?bar=bah HTTP/1.1\" 402 304374 \"-\" \"-\"\n"
        );
    }

    #[test]
    fn http_line_with_every_field() {
        let uri: Uri = "http://web.example/a/b?c=d&e".parse().unwrap();
        let entry = AccessEntry {
            host: Some(b"web.example"),
            remote: Some("10.1.2.3".parse().unwrap()),
            method: &Method::POST,
            uri: &uri,
            version: Version::HTTP_10,
            status: 200,
            content_length: None,
            referer: Some(b"http://from.example/"),
            user_agent: Some(b"curl/8.5.0"),
        };
        assert_eq!(
            line(Protocol::Http, &entry),
            "web.example 10.1.2.3 - - [06/01/2016:21:21:26 UTC] \"POST http://web.example/a/b?c=d&e HTTP/1.0\" 200 - \"http://from.example/\" \"curl/8.5.0\"\n"
        );
    }

    #[test]
    fn h2_line_follows_linkerd_s_h2_logger() {
        // h2: the zone as +0000, the :path only, HTTP/2, and `-` for bytes
        // even when the response says how long it is.
        let uri: Uri = "https://grpc.example:8443/pkg.Svc/Call?x=1"
            .parse()
            .unwrap();
        let entry = AccessEntry {
            host: Some(b"grpc.example:8443"),
            remote: Some("::1".parse().unwrap()),
            method: &Method::POST,
            uri: &uri,
            version: Version::HTTP_2,
            status: 200,
            content_length: Some(12),
            referer: None,
            user_agent: Some(b"grpc-go/1.60"),
        };
        assert_eq!(
            line(Protocol::H2, &entry),
            "grpc.example:8443 ::1 - - [06/01/2016:21:21:26 +0000] \"POST /pkg.Svc/Call?x=1 HTTP/2\" 200 - \"-\" \"grpc-go/1.60\"\n"
        );
        let unknown = AccessEntry {
            remote: None,
            host: None,
            ..entry
        };
        assert!(line(Protocol::H2, &unknown).starts_with("- - - - ["));
    }

    #[test]
    fn extension_methods_are_upper_cased_and_control_bytes_cannot_split_a_line() {
        let uri: Uri = "/".parse().unwrap();
        let method = Method::from_bytes(b"purge").unwrap();
        let entry = AccessEntry {
            host: Some(b"a\nb"),
            remote: None,
            method: &method,
            uri: &uri,
            version: Version::HTTP_11,
            status: 204,
            content_length: Some(0),
            referer: Some(b"x\ry"),
            user_agent: Some(b"\x7f"),
        };
        let text = line(Protocol::Http, &entry);
        assert_eq!(
            text,
            "a?b 0.0.0.0 - - [06/01/2016:21:21:26 UTC] \"PURGE / HTTP/1.1\" 204 0 \"x?y\" \"?\"\n"
        );
    }

    #[test]
    fn a_request_head_keeps_what_the_line_needs() {
        let request = http::Request::get("/p?q=1")
            .header(HOST, "web")
            .header(REFERER, "r")
            .header(USER_AGENT, "ua")
            .body(())
            .unwrap();
        let head = RequestHead::capture(&request, Some("127.0.0.1".parse().unwrap()));
        drop(request);
        assert_eq!(
            line(Protocol::Http, &head.entry(404, Some(9))),
            "web 127.0.0.1 - - [06/01/2016:21:21:26 UTC] \"GET /p?q=1 HTTP/1.1\" 404 9 \"r\" \"ua\"\n"
        );

        let request = http::Request::get("http://authority.example/p")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        let head = RequestHead::capture(&request, None);
        assert!(line(Protocol::H2, &head.entry(200, None)).starts_with(
            "authority.example - - - [06/01/2016:21:21:26 +0000] \"GET /p HTTP/2\" 200 -"
        ));
    }

    #[test]
    fn content_length_is_the_header_s_number() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_length(&headers), None);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("304374"));
        assert_eq!(content_length(&headers), Some(304_374));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("lots"));
        assert_eq!(content_length(&headers), None);
    }
}
