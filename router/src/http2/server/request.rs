//! A request's header block, decoded, made into an `http` request head,
//! with the checks RFC 9113 (section 8) puts on a request.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Uri, Version};

use crate::http2::hpack::{Field, Name, Pseudo};
use crate::http2::send::is_connection_specific;

/// Why a request is malformed: the stream is reset with PROTOCOL_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed HTTP/2 request: {0}")]
pub struct Malformed(pub &'static str);

/// The fields of one header block, gathered as they are decoded.
#[derive(Debug, Default)]
pub(super) struct Gathered {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    /// The first thing wrong, if any.
    malformed: Option<&'static str>,
    /// What SETTINGS_MAX_HEADER_LIST_SIZE counts.
    size: usize,
    regular_seen: bool,
}

impl Gathered {
    /// Takes one decoded field. Past `max_size`, fields are only counted.
    pub(super) fn field(&mut self, field: Field, max_size: usize) {
        self.size += field.size();
        if self.size > max_size || self.malformed.is_some() {
            return;
        }
        let Field {
            name,
            value,
            sensitive,
        } = field;
        match name {
            Name::Pseudo(pseudo) => {
                if self.regular_seen {
                    return self.malformed("pseudo-header after a regular field");
                }
                let slot = match pseudo {
                    Pseudo::Method => &mut self.method,
                    Pseudo::Scheme => &mut self.scheme,
                    Pseudo::Authority => &mut self.authority,
                    Pseudo::Path => &mut self.path,
                    Pseudo::Status => return self.malformed(":status in a request"),
                    Pseudo::Protocol => {
                        return self.malformed(":protocol without extended CONNECT");
                    }
                };
                if slot.replace(value).is_some() {
                    self.malformed("a pseudo-header twice");
                }
            }
            Name::Header(name) => {
                self.regular_seen = true;
                if is_connection_specific(&name, &value) {
                    return self.malformed("connection-specific header field");
                }
                match HeaderValue::from_maybe_shared(value) {
                    Ok(mut value) => {
                        value.set_sensitive(sensitive);
                        self.headers.append(name, value);
                    }
                    Err(_) => self.malformed("invalid header field value"),
                }
            }
            Name::Malformed(_) => self.malformed("invalid header field name"),
        }
    }

    fn malformed(&mut self, what: &'static str) {
        self.malformed.get_or_insert(what);
    }

    /// Whether the block went past `max_size`.
    pub(super) fn too_large(&self, max_size: usize) -> bool {
        self.size > max_size
    }

    /// The request head, and the length its `content-length` announces.
    pub(super) fn request(self) -> Result<(http::request::Parts, Option<u64>), Malformed> {
        if let Some(what) = self.malformed {
            return Err(Malformed(what));
        }
        let method = self.method.ok_or(Malformed("no :method"))?;
        let method = Method::from_bytes(&method).map_err(|_| Malformed("invalid :method"))?;
        let uri = if method == Method::CONNECT {
            if self.scheme.is_some() || self.path.is_some() {
                return Err(Malformed("CONNECT with :scheme or :path"));
            }
            let authority = self
                .authority
                .ok_or(Malformed("CONNECT without :authority"))?;
            let authority = Authority::from_maybe_shared(authority)
                .map_err(|_| Malformed("invalid :authority"))?;
            Uri::from(authority)
        } else {
            let scheme = self.scheme.ok_or(Malformed("no :scheme"))?;
            let path = self.path.ok_or(Malformed("no :path"))?;
            if path.is_empty() {
                return Err(Malformed("empty :path"));
            }
            uri(&scheme, self.authority, path)?
        };
        let content_length = match self.headers.get(header::CONTENT_LENGTH) {
            None => None,
            Some(value) => Some(
                crate::server::limits::digits(value.as_bytes())
                    .filter(|_| self.headers.get_all(header::CONTENT_LENGTH).iter().count() == 1)
                    .ok_or(Malformed("invalid content-length"))?,
            ),
        };
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = Version::HTTP_2;
        parts.headers = self.headers;
        Ok((parts, content_length))
    }

    /// The fields of a trailer block.
    pub(super) fn trailers(self) -> Result<HeaderMap, Malformed> {
        if let Some(what) = self.malformed {
            return Err(Malformed(what));
        }
        if self.method.is_some()
            || self.scheme.is_some()
            || self.authority.is_some()
            || self.path.is_some()
        {
            return Err(Malformed("pseudo-header in trailers"));
        }
        Ok(self.headers)
    }
}

fn uri(scheme: &[u8], authority: Option<Bytes>, path: Bytes) -> Result<Uri, Malformed> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match scheme {
        b"http" => Scheme::HTTP,
        b"https" => Scheme::HTTPS,
        other => Scheme::try_from(other).map_err(|_| Malformed("invalid :scheme"))?,
    });
    if let Some(authority) = authority {
        parts.authority = Some(
            Authority::from_maybe_shared(authority).map_err(|_| Malformed("invalid :authority"))?,
        );
    }
    // `OPTIONS *` and the like are not routed anywhere but are well-formed.
    parts.path_and_query =
        Some(PathAndQuery::from_maybe_shared(path).map_err(|_| Malformed("invalid :path"))?);
    if parts.authority.is_none() {
        // `http::Uri` wants an authority with a scheme; a request without
        // one keeps only its path.
        return Ok(Uri::from(
            parts.path_and_query.take().ok_or(Malformed("no :path"))?,
        ));
    }
    Uri::from_parts(parts).map_err(|_| Malformed("invalid request target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: Name, value: &str) -> Field {
        Field {
            name,
            value: Bytes::copy_from_slice(value.as_bytes()),
            sensitive: false,
        }
    }

    fn pseudo(pseudo: Pseudo, value: &str) -> Field {
        field(Name::Pseudo(pseudo), value)
    }

    fn header(name: &str, value: &str) -> Field {
        field(
            Name::Header(http::HeaderName::from_bytes(name.as_bytes()).unwrap()),
            value,
        )
    }

    fn gather(fields: Vec<Field>) -> Result<(http::request::Parts, Option<u64>), Malformed> {
        let mut gathered = Gathered::default();
        for f in fields {
            gathered.field(f, 16 * 1024);
        }
        gathered.request()
    }

    fn get() -> Vec<Field> {
        vec![
            pseudo(Pseudo::Method, "GET"),
            pseudo(Pseudo::Scheme, "http"),
            pseudo(Pseudo::Authority, "web:8080"),
            pseudo(Pseudo::Path, "/a?b=c"),
        ]
    }

    #[test]
    fn a_request_head() {
        let mut fields = get();
        fields.push(header("content-length", "12"));
        fields.push(header("te", "trailers"));
        fields.push(header("x-a", "1"));
        fields.push(header("x-a", "2"));
        let (parts, length) = gather(fields).unwrap();
        assert_eq!(parts.method, Method::GET);
        assert_eq!(parts.uri, "http://web:8080/a?b=c");
        assert_eq!(parts.version, Version::HTTP_2);
        assert_eq!(length, Some(12));
        assert_eq!(parts.headers.get_all("x-a").iter().count(), 2);
    }

    #[test]
    fn connect_names_only_an_authority() {
        let (parts, _) = gather(vec![
            pseudo(Pseudo::Method, "CONNECT"),
            pseudo(Pseudo::Authority, "db:5432"),
        ])
        .unwrap();
        assert_eq!(parts.uri, "db:5432");
        let with_path = vec![
            pseudo(Pseudo::Method, "CONNECT"),
            pseudo(Pseudo::Authority, "db:5432"),
            pseudo(Pseudo::Path, "/"),
        ];
        assert!(gather(with_path).is_err());
    }

    #[test]
    fn malformed_requests() {
        let cases: Vec<(Vec<Field>, &str)> = vec![
            (get()[1..].to_vec(), "no :method"),
            (
                vec![get()[0].clone(), get()[2].clone(), get()[3].clone()],
                "no :scheme",
            ),
            (get()[..3].to_vec(), "no :path"),
            (
                [get(), vec![pseudo(Pseudo::Path, "/x")]].concat(),
                "a pseudo-header twice",
            ),
            (
                [get(), vec![pseudo(Pseudo::Status, "200")]].concat(),
                ":status in a request",
            ),
            (
                [vec![header("x-a", "1")], get()].concat(),
                "pseudo-header after a regular field",
            ),
            (
                [get(), vec![header("connection", "close")]].concat(),
                "connection-specific header field",
            ),
            (
                [get(), vec![header("te", "gzip")]].concat(),
                "connection-specific header field",
            ),
            (
                [get(), vec![header("x-a", "a\nb")]].concat(),
                "invalid header field value",
            ),
            (
                [
                    get(),
                    vec![field(Name::Malformed(Bytes::from_static(b"X-A")), "1")],
                ]
                .concat(),
                "invalid header field name",
            ),
            (
                [get(), vec![header("content-length", "1x")]].concat(),
                "invalid content-length",
            ),
            (
                [
                    get(),
                    vec![header("content-length", "1"), header("content-length", "1")],
                ]
                .concat(),
                "invalid content-length",
            ),
            (
                vec![
                    pseudo(Pseudo::Method, "GET"),
                    pseudo(Pseudo::Scheme, "http"),
                    pseudo(Pseudo::Path, ""),
                ],
                "empty :path",
            ),
        ];
        for (fields, why) in cases {
            assert_eq!(gather(fields).unwrap_err(), Malformed(why));
        }
    }

    #[test]
    fn a_block_past_the_limit_is_counted_not_kept() {
        let mut gathered = Gathered::default();
        for f in get() {
            gathered.field(f, 100);
        }
        gathered.field(header("x-big", &"v".repeat(200)), 100);
        assert!(gathered.too_large(100));
    }

    #[test]
    fn trailers_take_no_pseudo_headers() {
        let mut gathered = Gathered::default();
        gathered.field(header("grpc-status", "0"), 1000);
        assert_eq!(gathered.trailers().unwrap()["grpc-status"], "0");
        let mut gathered = Gathered::default();
        gathered.field(pseudo(Pseudo::Path, "/"), 1000);
        assert!(gathered.trailers().is_err());
    }
}
