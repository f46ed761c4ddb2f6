//! `io.l5d.methodAndHost`: `<dstPrefix>/1.1/<METHOD>/<host>` for HTTP/1.1
//! (the Host value lowercased, port kept), `<dstPrefix>/1.0/<METHOD>` for
//! HTTP/1.0 (which has no Host to rely on), and with `httpUriInDst` the URI
//! path appended.

use dtab::{Label, Path};
use http::Version;
use http::request::Parts;
use serde_json::{Map, Value};

use super::source::HeaderSource;
use super::{BuildContext, Identified, Identifier, Unidentified};

pub(super) const KIND: &str = "io.l5d.methodAndHost";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    http_uri_in_dst: bool,
}

pub(super) fn build(
    params: &Map<String, Value>,
    context: &BuildContext<'_>,
) -> Result<Box<dyn Identifier>, String> {
    let config: Config = namers::config::kind_params(params)?;
    Ok(Box::new(MethodAndHost {
        prefix: context.dst_prefix.clone(),
        host: HeaderSource::new("Host", context.protocol)?,
        uri_in_dst: config.http_uri_in_dst,
    }))
}

struct MethodAndHost {
    prefix: Path,
    host: HeaderSource,
    uri_in_dst: bool,
}

impl Identifier for MethodAndHost {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn identify(&self, request: &Parts) -> Result<Identified, Unidentified> {
        let method = label(request.method.as_str().as_bytes())?;
        let mut name = self.prefix.clone();
        if matches!(request.version, Version::HTTP_09 | Version::HTTP_10) {
            name.push(label(b"1.0")?);
            name.push(method);
        } else {
            let host = self
                .host
                .read(request)
                .and_then(|h| Label::new(h.to_ascii_lowercase()))
                .ok_or_else(|| Unidentified("HTTP/1.1 request missing hostname".to_string()))?;
            name.push(label(b"1.1")?);
            name.push(method);
            name.push(host);
        }
        if self.uri_in_dst {
            let uri_path = Path::read(request.uri.path())
                .map_err(|e| Unidentified(format!("request path is not a dtab path: {e}")))?;
            name = name.concat(&uri_path);
        }
        Ok(Identified::name(name))
    }
}

fn label(bytes: &[u8]) -> Result<Label, Unidentified> {
    Label::new(bytes).ok_or_else(|| Unidentified("empty method".to_string()))
}

#[cfg(test)]
mod tests {
    use http::{Request, Version};

    use super::super::Protocol;
    use super::super::tests::{build_one, parts, path};
    use super::*;

    fn identifier(uri_in_dst: bool) -> Box<dyn Identifier> {
        build_one(
            &format!(r#"{{"kind": "io.l5d.methodAndHost", "httpUriInDst": {uri_in_dst}}}"#),
            Protocol::Http,
        )
    }

    fn http10(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut p = parts(method, uri, headers);
        p.version = Version::HTTP_10;
        p
    }

    #[test]
    fn http11_names_version_method_and_lowercased_host_with_port() {
        let named = identifier(false)
            .identify(&parts(
                "POST",
                "/users/1?x=2",
                &[("host", "Web.Example:8080")],
            ))
            .unwrap();
        assert_eq!(named.name, path("/svc/1.1/POST/web.example:8080"));
    }

    #[test]
    fn http11_without_host_is_unidentified() {
        let err = identifier(false)
            .identify(&parts("GET", "/", &[]))
            .unwrap_err();
        assert_eq!(err.0, "HTTP/1.1 request missing hostname");
        assert!(
            identifier(false)
                .identify(&parts("GET", "/", &[("host", "")]))
                .is_err()
        );
    }

    #[test]
    fn http10_names_version_and_method_only() {
        let id = identifier(false);
        assert_eq!(
            id.identify(&http10("GET", "/", &[])).unwrap().name,
            path("/svc/1.0/GET")
        );
        // Like Linkerd, a Host sent with HTTP/1.0 is not part of the name.
        assert_eq!(
            id.identify(&http10("GET", "/", &[("host", "web")]))
                .unwrap()
                .name,
            path("/svc/1.0/GET")
        );
    }

    #[test]
    fn uri_in_dst_appends_the_path_without_the_query() {
        let id = identifier(true);
        let named = id
            .identify(&parts("GET", "/users/42?full=1", &[("host", "WEB")]))
            .unwrap();
        assert_eq!(named.name, path("/svc/1.1/GET/web/users/42"));
        let named = id.identify(&http10("HEAD", "/a/b", &[])).unwrap();
        assert_eq!(named.name, path("/svc/1.0/HEAD/a/b"));
        let named = id.identify(&parts("GET", "/", &[("host", "web")])).unwrap();
        assert_eq!(named.name, path("/svc/1.1/GET/web"));
    }

    #[test]
    fn uri_in_dst_rejects_paths_that_are_not_dtab_paths() {
        let err = identifier(true)
            .identify(&parts("GET", "/a//b", &[("host", "web")]))
            .unwrap_err();
        assert!(
            err.0.starts_with("request path is not a dtab path"),
            "{}",
            err.0
        );
    }

    #[test]
    fn extension_methods_are_kept_as_sent() {
        let (p, ()) = Request::builder()
            .method("PURGE")
            .uri("/")
            .header("host", "cache")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            identifier(false).identify(&p).unwrap().name,
            path("/svc/1.1/PURGE/cache")
        );
    }
}
