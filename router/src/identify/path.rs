//! `io.l5d.path`: the first `segments` segments of the URI path, so
//! `GET /users/42` names `/svc/users`. With `consume`, those segments are
//! also removed from the request sent on (`/42`), the query kept.

use dtab::{Label, Path};
use http::request::Parts;
use http::uri::PathAndQuery;
use serde_json::{Map, Value};

use super::{BuildContext, Identified, Identifier, Unidentified};

pub(super) const KIND: &str = "io.l5d.path";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "one")]
    segments: usize,
    #[serde(default)]
    consume: bool,
}

fn one() -> usize {
    1
}

pub(super) fn build(
    params: &Map<String, Value>,
    context: &BuildContext<'_>,
) -> Result<Box<dyn Identifier>, String> {
    let config: Config = namers::config::kind_params(params)?;
    if config.segments < 1 {
        return Err("segments: must be at least 1".to_string());
    }
    Ok(Box::new(PathSegments {
        prefix: context.dst_prefix.clone(),
        segments: config.segments,
        consume: config.consume,
    }))
}

struct PathSegments {
    prefix: Path,
    segments: usize,
    consume: bool,
}

impl Identifier for PathSegments {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn identify(&self, request: &Parts) -> Result<Identified, Unidentified> {
        let (labels, rest) = leading_segments(request.uri.path(), self.segments)?;
        let name = self.prefix.concat_labels(&labels);
        if !self.consume {
            return Ok(Identified::name(name));
        }
        Ok(Identified {
            name,
            rewritten_uri: Some(without_segments(&request.uri, rest)?),
        })
    }
}

/// The first `n` segments of `path` as labels, and what follows them
/// (empty, or starting with `/`). Segments are taken as sent, not
/// percent-decoded, as Linkerd does.
fn leading_segments(path: &str, n: usize) -> Result<(Vec<Label>, &str), Unidentified> {
    let mut labels = Vec::with_capacity(n);
    let mut rest = path;
    while labels.len() < n {
        let Some(after_slash) = rest.strip_prefix('/') else {
            return Err(too_few(n));
        };
        let len = after_slash.find('/').unwrap_or(after_slash.len());
        let (segment, after) = after_slash.split_at(len);
        match Label::new(segment) {
            Some(label) => labels.push(label),
            // `/a/` has one segment, `/a//b` an empty one.
            None if after.is_empty() => return Err(too_few(n)),
            None => return Err(Unidentified("empty segment in path".to_string())),
        }
        rest = after;
    }
    Ok((labels, rest))
}

fn too_few(n: usize) -> Unidentified {
    Unidentified(format!("not enough segments in path (need {n})"))
}

/// `uri` with its path replaced by `rest` (`/` when empty), query kept.
fn without_segments(uri: &http::Uri, rest: &str) -> Result<http::Uri, Unidentified> {
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        PathAndQuery::try_from(path_and_query)
            .map_err(|e| Unidentified(format!("cannot rewrite the request path: {e}")))?,
    );
    http::Uri::from_parts(parts)
        .map_err(|e| Unidentified(format!("cannot rewrite the request path: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::Protocol;
    use super::super::tests::{build_one, parts, path};
    use super::*;

    fn identifier(segments: usize, consume: bool) -> Box<dyn Identifier> {
        build_one(
            &format!(r#"{{"kind": "io.l5d.path", "segments": {segments}, "consume": {consume}}}"#),
            Protocol::Http,
        )
    }

    fn identify(id: &dyn Identifier, uri: &str) -> Result<Identified, Unidentified> {
        id.identify(&parts("GET", uri, &[("host", "ignored")]))
    }

    #[test]
    fn default_is_one_segment_without_consuming() {
        let id = build_one(r#"{"kind": "io.l5d.path"}"#, Protocol::Http);
        let named = identify(&*id, "/users/42?x=1").unwrap();
        assert_eq!(named.name, path("/svc/users"));
        assert_eq!(named.rewritten_uri, None);
    }

    #[test]
    fn takes_n_segments() {
        let id = identifier(2, false);
        assert_eq!(
            identify(&*id, "/users/v2/42").unwrap().name,
            path("/svc/users/v2")
        );
        assert_eq!(
            identify(&*id, "/users/v2").unwrap().name,
            path("/svc/users/v2")
        );
        assert_eq!(
            identify(&*id, "/users/v2/").unwrap().name,
            path("/svc/users/v2")
        );
    }

    #[test]
    fn too_few_segments_is_unidentified() {
        let id = identifier(2, false);
        for uri in ["/users", "/users/", "/", "/?a=b/c"] {
            let err = identify(&*id, uri).unwrap_err();
            assert_eq!(err.0, "not enough segments in path (need 2)", "{uri}");
        }
        assert_eq!(
            identify(&*id, "/a//b").unwrap_err().0,
            "empty segment in path"
        );
    }

    #[test]
    fn consume_strips_the_segments_and_keeps_the_query() {
        let id = identifier(1, true);
        let cases = [
            ("/users/42?full=1&x=y", "/42?full=1&x=y"),
            ("/users/42/", "/42/"),
            ("/users/a/b", "/a/b"),
            ("/users", "/"),
            ("/users/", "/"),
            ("/users?q=1", "/?q=1"),
        ];
        for (uri, rewritten) in cases {
            let named = identify(&*id, uri).unwrap();
            assert_eq!(named.name, path("/svc/users"), "{uri}");
            assert_eq!(named.rewritten_uri.unwrap().to_string(), rewritten, "{uri}");
        }
    }

    #[test]
    fn consume_keeps_an_absolute_uri_absolute() {
        let id = identifier(2, true);
        let named = identify(&*id, "http://web:8080/a/b/c?d").unwrap();
        assert_eq!(named.name, path("/svc/a/b"));
        assert_eq!(
            named.rewritten_uri.unwrap().to_string(),
            "http://web:8080/c?d"
        );
    }

    #[test]
    fn segments_are_not_decoded() {
        let id = identifier(1, false);
        let name = identify(&*id, "/a%2Fb/c").unwrap().name;
        assert_eq!(name.elems()[1].as_bytes(), b"a%2Fb");
    }

    #[test]
    fn zero_segments_is_a_config_error() {
        let err = super::super::build_identifiers(
            &[super::super::tests::config(
                r#"{"kind": "io.l5d.path", "segments": 0}"#,
            )],
            &path("/svc"),
            Protocol::Http,
        )
        .err()
        .unwrap();
        assert_eq!(
            err,
            "identifier[0] (io.l5d.path): segments: must be at least 1"
        );
    }
}
