//! `io.l5d.static`: every request gets the same name, `path` under
//! dstPrefix (`path: /web` names `/svc/web`), as Linkerd does.

use dtab::Path;
use http::request::Parts;
use serde_json::{Map, Value};

use super::{BuildContext, Identified, Identifier, Unidentified};

pub(super) const KIND: &str = "io.l5d.static";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: Path,
}

pub(super) fn build(
    params: &Map<String, Value>,
    context: &BuildContext<'_>,
) -> Result<Box<dyn Identifier>, String> {
    let config: Config = namers::config::kind_params(params)?;
    Ok(Box::new(StaticName {
        name: context.dst_prefix.concat(&config.path),
    }))
}

struct StaticName {
    name: Path,
}

impl Identifier for StaticName {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn identify(&self, _: &Parts) -> Result<Identified, Unidentified> {
        Ok(Identified::name(self.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{build_one, config, parts, path};
    use super::super::{Protocol, build_identifiers};

    #[test]
    fn names_every_request_path_under_dst_prefix() {
        let id = build_one(
            r#"{"kind": "io.l5d.static", "path": "/web/v1"}"#,
            Protocol::Http,
        );
        for p in [
            parts("GET", "/", &[]),
            parts("POST", "/x/y", &[("host", "h")]),
        ] {
            assert_eq!(id.identify(&p).unwrap().name, path("/svc/web/v1"));
        }
    }

    #[test]
    fn path_is_required_and_must_parse() {
        let build = |json: &str| {
            build_identifiers(&[config(json)], &path("/svc"), Protocol::Http)
                .err()
                .unwrap()
        };
        let missing = build(r#"{"kind": "io.l5d.static"}"#);
        assert!(
            missing.starts_with("identifier[0] (io.l5d.static): missing field `path`"),
            "{missing}"
        );
        let bad = build(r#"{"kind": "io.l5d.static", "path": "web"}"#);
        assert!(
            bad.starts_with("identifier[0] (io.l5d.static): path: expected"),
            "{bad}"
        );
    }
}
