//! `io.l5d.header`: the value of a header (default `l5d-name`) read as a
//! dtab path and appended to dstPrefix, so `l5d-name: /web/v2` names
//! `/svc/web/v2`.

use dtab::Path;
use http::request::Parts;
use serde_json::{Map, Value};

use super::source::HeaderSource;
use super::{BuildContext, Identified, Identifier, Unidentified};

pub(super) const KIND: &str = "io.l5d.header";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_header")]
    header: String,
}

fn default_header() -> String {
    "l5d-name".to_string()
}

pub(super) fn build(
    params: &Map<String, Value>,
    context: &BuildContext<'_>,
) -> Result<Box<dyn Identifier>, String> {
    let config: Config = namers::config::kind_params(params)?;
    Ok(Box::new(HeaderPath {
        prefix: context.dst_prefix.clone(),
        source: HeaderSource::new(&config.header, context.protocol)?,
    }))
}

struct HeaderPath {
    prefix: Path,
    source: HeaderSource,
}

impl Identifier for HeaderPath {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn identify(&self, request: &Parts) -> Result<Identified, Unidentified> {
        let header = self.source.name();
        let value = match self.source.read(request) {
            Some(v) if !v.is_empty() => v,
            _ => return Err(Unidentified(format!("{header} header is absent"))),
        };
        let text = std::str::from_utf8(value)
            .map_err(|_| Unidentified(format!("{header} header is not UTF-8")))?;
        let path = Path::read(text)
            .map_err(|e| Unidentified(format!("{header} header is not a path: {e}")))?;
        Ok(Identified::name(self.prefix.concat(&path)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Protocol;
    use super::super::tests::{build_one, parts, path};

    #[test]
    fn reads_l5d_name_as_a_path_under_dst_prefix() {
        let id = build_one(r#"{"kind": "io.l5d.header"}"#, Protocol::Http);
        let named = id
            .identify(&parts(
                "GET",
                "/x",
                &[("l5d-name", "/web/v2"), ("host", "h")],
            ))
            .unwrap();
        assert_eq!(named.name, path("/svc/web/v2"));
    }

    #[test]
    fn configured_header_and_escapes() {
        let id = build_one(
            r#"{"kind": "io.l5d.header", "header": "X-Dst"}"#,
            Protocol::Http,
        );
        let named = id
            .identify(&parts("GET", "/", &[("x-dst", r"/a\x2fb")]))
            .unwrap();
        assert_eq!(named.name.elems()[1].as_bytes(), b"a/b");
    }

    #[test]
    fn absent_or_empty_header_is_unidentified() {
        let id = build_one(r#"{"kind": "io.l5d.header"}"#, Protocol::Http);
        assert_eq!(
            id.identify(&parts("GET", "/", &[])).unwrap_err().0,
            "l5d-name header is absent"
        );
        assert!(
            id.identify(&parts("GET", "/", &[("l5d-name", "")]))
                .is_err()
        );
    }

    #[test]
    fn invalid_path_is_unidentified_with_the_position() {
        let id = build_one(r#"{"kind": "io.l5d.header"}"#, Protocol::Http);
        let err = id
            .identify(&parts("GET", "/", &[("l5d-name", "web")]))
            .unwrap_err();
        assert!(
            err.0.starts_with("l5d-name header is not a path: expected"),
            "{}",
            err.0
        );
        assert!(err.0.contains("1:1"), "{}", err.0);
        let err = id
            .identify(&parts("GET", "/", &[("l5d-name", "/a b")]))
            .unwrap_err();
        assert!(err.0.contains("1:4"), "{}", err.0);
    }

    #[test]
    fn non_utf8_value_is_unidentified() {
        let id = build_one(r#"{"kind": "io.l5d.header"}"#, Protocol::Http);
        let mut p = parts("GET", "/", &[]);
        p.headers.insert(
            "l5d-name",
            http::HeaderValue::from_bytes(b"/a\xff").unwrap(),
        );
        assert_eq!(
            id.identify(&p).unwrap_err().0,
            "l5d-name header is not UTF-8"
        );
    }
}
