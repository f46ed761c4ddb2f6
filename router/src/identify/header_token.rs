//! `io.l5d.header.token`: the value of one header, as one path element.
//! The default identifier: `Host` on HTTP routers, `:authority` on h2
//! routers, so `Host: web:8080` names `/svc/web:8080`.

use dtab::{Label, Path};
use http::request::Parts;
use serde_json::{Map, Value};

use super::source::HeaderSource;
use super::{BuildContext, Identified, Identifier, Protocol, Unidentified};

pub(super) const KIND: &str = "io.l5d.header.token";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Default: `Host` (http) or `:authority` (h2).
    header: Option<String>,
}

pub(super) fn build(
    params: &Map<String, Value>,
    context: &BuildContext<'_>,
) -> Result<Box<dyn Identifier>, String> {
    let config: Config = namers::config::kind_params(params)?;
    let header = config.header.unwrap_or_else(|| {
        match context.protocol {
            Protocol::Http => "Host",
            Protocol::H2 => ":authority",
        }
        .to_string()
    });
    Ok(Box::new(HeaderToken {
        prefix: context.dst_prefix.clone(),
        source: HeaderSource::new(&header, context.protocol)?,
    }))
}

/// Names a request `<dstPrefix>/<header value>`.
struct HeaderToken {
    prefix: Path,
    source: HeaderSource,
}

impl Identifier for HeaderToken {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn identify(&self, request: &Parts) -> Result<Identified, Unidentified> {
        // The whole value, port and all, is one label: a label may hold any
        // bytes, and `show` escapes those that need it.
        let header = self.source.name();
        let value = self
            .source
            .read(request)
            .ok_or_else(|| Unidentified(format!("{header} header is absent")))?;
        let token =
            Label::new(value).ok_or_else(|| Unidentified(format!("{header} header is empty")))?;
        Ok(Identified::name(
            self.prefix.concat_labels(std::slice::from_ref(&token)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Version};

    use super::super::tests::{build_one, parts, path};
    use super::*;

    #[test]
    fn http_default_names_by_host_including_port_as_one_element() {
        let id = build_one(r#"{"kind": "io.l5d.header.token"}"#, Protocol::Http);
        let named = id
            .identify(&parts("GET", "/a/b", &[("host", "Web.example:8080")]))
            .unwrap();
        assert_eq!(named.name.len(), 2);
        assert_eq!(named.name.elems()[1].as_bytes(), b"Web.example:8080");
        assert_eq!(named.name, path("/svc/Web.example:8080"));
        assert_eq!(named.rewritten_uri, None);
    }

    #[test]
    fn http_absent_or_empty_host_is_unidentified() {
        let id = build_one(r#"{"kind": "io.l5d.header.token"}"#, Protocol::Http);
        let err = id.identify(&parts("GET", "/", &[])).unwrap_err();
        assert_eq!(err.0, "Host header is absent");
        let err = id
            .identify(&parts("GET", "/", &[("host", "")]))
            .unwrap_err();
        assert_eq!(err.0, "Host header is empty");
    }

    #[test]
    fn http_falls_back_to_an_absolute_uri_authority() {
        let id = build_one(r#"{"kind": "io.l5d.header.token"}"#, Protocol::Http);
        let named = id.identify(&parts("GET", "http://web:81/x", &[])).unwrap();
        assert_eq!(named.name, path("/svc/web:81"));
        // The Host header is what HTTP/1 routes on when both are present.
        let named = id
            .identify(&parts("GET", "http://other/x", &[("host", "web")]))
            .unwrap();
        assert_eq!(named.name, path("/svc/web"));
    }

    #[test]
    fn http_uses_the_first_of_several_values() {
        let id = build_one(
            r#"{"kind": "io.l5d.header.token", "header": "X-Svc"}"#,
            Protocol::Http,
        );
        let named = id
            .identify(&parts("GET", "/", &[("x-svc", "one"), ("x-svc", "two")]))
            .unwrap();
        assert_eq!(named.name, path("/svc/one"));
    }

    #[test]
    fn h2_default_names_by_authority() {
        let id = build_one(r#"{"kind": "io.l5d.header.token"}"#, Protocol::H2);
        let (parts, ()) = Request::builder()
            .version(Version::HTTP_2)
            .uri("http://grpc.svc:50051/pkg.Svc/Call")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            id.identify(&parts).unwrap().name,
            path("/svc/grpc.svc:50051")
        );
        let (no_authority, ()) = Request::builder()
            .version(Version::HTTP_2)
            .uri("/pkg.Svc/Call")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            id.identify(&no_authority).unwrap_err().0,
            ":authority header is absent"
        );
    }

    #[test]
    fn h2_uses_the_last_of_several_values() {
        let id = build_one(
            r#"{"kind": "io.l5d.header.token", "header": "x-svc"}"#,
            Protocol::H2,
        );
        let named = id
            .identify(&parts("GET", "/", &[("x-svc", "one"), ("x-svc", "two")]))
            .unwrap();
        assert_eq!(named.name, path("/svc/two"));
    }

    #[test]
    fn unshowable_bytes_stay_in_one_label_and_print_escaped() {
        let id = build_one(
            r#"{"kind": "io.l5d.header.token", "header": "x-svc"}"#,
            Protocol::Http,
        );
        let (mut p, ()) = Request::builder().uri("/").body(()).unwrap().into_parts();
        p.headers
            .insert("x-svc", http::HeaderValue::from_bytes(b"a/b \xff").unwrap());
        let name = id.identify(&p).unwrap().name;
        assert_eq!(name.len(), 2);
        assert_eq!(name.elems()[1].as_bytes(), b"a/b \xff");
        assert_eq!(name.show(), "/svc/\\x61\\x2f\\x62\\x20\\xff");
        assert_eq!(Path::read(&name.show()).unwrap(), name);
    }

    #[test]
    fn pseudo_headers_can_be_the_token() {
        let id = build_one(
            r#"{"kind": "io.l5d.header.token", "header": ":method"}"#,
            Protocol::H2,
        );
        let named = id.identify(&parts("DELETE", "/", &[])).unwrap();
        assert_eq!(named.name, path("/svc/DELETE"));
    }
}
