//! `io.l5d.header.path` (h2): a path read from a header (default `:path`),
//! without its query and trailing `/`, under dstPrefix. With `segments`,
//! only that many leading segments, so gRPC's `/pkg.Greeter/SayHello` names
//! `/svc/pkg.Greeter` with `segments: 1`; without it, the whole path.

use dtab::Path;
use http::request::Parts;
use serde_json::{Map, Value};

use super::source::HeaderSource;
use super::{BuildContext, Identified, Identifier, Unidentified};

pub(super) const KIND: &str = "io.l5d.header.path";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_header")]
    header: String,
    /// Absent: the whole path, as in Linkerd.
    segments: Option<usize>,
}

fn default_header() -> String {
    ":path".to_string()
}

pub(super) fn build(
    params: &Map<String, Value>,
    context: &BuildContext<'_>,
) -> Result<Box<dyn Identifier>, String> {
    let config: Config = namers::config::kind_params(params)?;
    if config.segments == Some(0) {
        return Err("segments: must be at least 1".to_string());
    }
    Ok(Box::new(HeaderPath {
        prefix: context.dst_prefix.clone(),
        source: HeaderSource::new(&config.header, context.protocol)?,
        segments: config.segments,
    }))
}

struct HeaderPath {
    prefix: Path,
    source: HeaderSource,
    segments: Option<usize>,
}

impl HeaderPath {
    /// The header's path: query and one trailing `/` dropped.
    fn read(&self, request: &Parts) -> Result<Path, Unidentified> {
        let Some(value) = self.source.read(request) else {
            return Ok(Path::empty());
        };
        let text = std::str::from_utf8(value)
            .map_err(|_| Unidentified(format!("{} header is not UTF-8", self.source.name())))?;
        let path = text.split_once('?').map_or(text, |(path, _)| path);
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.is_empty() {
            return Ok(Path::empty());
        }
        Path::read(path)
            .map_err(|e| Unidentified(format!("{} header is not a path: {e}", self.source.name())))
    }
}

impl Identifier for HeaderPath {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn identify(&self, request: &Parts) -> Result<Identified, Unidentified> {
        let path = self.read(request)?;
        match self.segments {
            Some(n) if path.len() < n => Err(Unidentified(format!(
                "path must have at least {n} segment(s)"
            ))),
            Some(n) => Ok(Identified::name(
                self.prefix.concat_labels(&path.elems()[..n]),
            )),
            None if path.is_empty() => Err(Unidentified("missing destination path".to_string())),
            None => Ok(Identified::name(self.prefix.concat(&path))),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Version};

    use super::super::Protocol;
    use super::super::tests::{build_one, path};
    use super::*;

    fn h2(uri: &str) -> Parts {
        Request::builder()
            .version(Version::HTTP_2)
            .method("POST")
            .uri(uri)
            .header("x-path", "/from/header?q")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn grpc_service_with_one_segment() {
        let id = build_one(
            r#"{"kind": "io.l5d.header.path", "segments": 1}"#,
            Protocol::H2,
        );
        let named = id
            .identify(&h2("http://10.0.0.1:4142/helloworld.Greeter/SayHello"))
            .unwrap();
        assert_eq!(named.name, path("/svc/helloworld.Greeter"));
        assert_eq!(named.rewritten_uri, None);
    }

    #[test]
    fn without_segments_the_whole_path_minus_query_and_trailing_slash() {
        let id = build_one(r#"{"kind": "io.l5d.header.path"}"#, Protocol::H2);
        assert_eq!(
            id.identify(&h2("/true/love/waits.php?thing=1"))
                .unwrap()
                .name,
            path("/svc/true/love/waits.php")
        );
        assert_eq!(id.identify(&h2("/a/b/")).unwrap().name, path("/svc/a/b"));
        assert_eq!(
            id.identify(&h2("/?x")).unwrap_err().0,
            "missing destination path"
        );
    }

    #[test]
    fn too_short_is_unidentified() {
        let id = build_one(
            r#"{"kind": "io.l5d.header.path", "segments": 2}"#,
            Protocol::H2,
        );
        assert_eq!(
            id.identify(&h2("/only")).unwrap_err().0,
            "path must have at least 2 segment(s)"
        );
        assert_eq!(
            id.identify(&h2("/true/love/waits.php?thing=1"))
                .unwrap()
                .name,
            path("/svc/true/love")
        );
    }

    #[test]
    fn reads_a_configured_header() {
        let id = build_one(
            r#"{"kind": "io.l5d.header.path", "header": "X-Path"}"#,
            Protocol::H2,
        );
        assert_eq!(
            id.identify(&h2("/ignored")).unwrap().name,
            path("/svc/from/header")
        );
    }

    #[test]
    fn a_path_that_is_not_a_dtab_path_is_unidentified() {
        let id = build_one(r#"{"kind": "io.l5d.header.path"}"#, Protocol::H2);
        let err = id.identify(&h2("/a//b")).unwrap_err();
        assert!(
            err.0.starts_with(":path header is not a path: expected"),
            "{}",
            err.0
        );
    }
}
