//! Reading an interpreter's own keys from its `interpreter:` block.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Deserializes the keys of an `interpreter:` block (everything but
/// `kind`) into `T`, naming the offending key on failure:
/// `interpreter (io.l5d.fs): dtabFile: missing field `dtabFile``.
pub(crate) fn parse<T: DeserializeOwned>(
    kind: &str,
    params: &Map<String, Value>,
) -> Result<T, String> {
    serde_path_to_error::deserialize(Value::Object(params.clone())).map_err(|error| {
        let path = error.path().to_string();
        let why = error.into_inner().to_string();
        format!("interpreter ({kind}): {}: {why}", key_of(&path, &why))
    })
}

/// The key an error is about: the path serde reports, extended by the
/// field an "unknown field" or "missing field" message names.
fn key_of(path: &str, why: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|start| why.strip_prefix(start))
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(field)) => field.to_string(),
        (".", None) => "(top level)".to_string(),
        (path, Some(field)) if !path.ends_with(field) => format!("{path}.{field}"),
        (path, _) => path.to_string(),
    }
}

/// An error about one key, in the same form as [`parse`]'s.
pub(crate) fn invalid(kind: &str, key: &str, why: impl std::fmt::Display) -> String {
    format!("interpreter ({kind}): {key}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Outer {
        #[allow(dead_code)]
        dtab_file: String,
        #[serde(default)]
        #[allow(dead_code)]
        retry: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Inner {
        #[allow(dead_code)]
        base_seconds: f64,
    }

    fn err(json: Value) -> String {
        let Value::Object(map) = json else {
            panic!("not an object")
        };
        parse::<Outer>("k", &map).unwrap_err()
    }

    #[test]
    fn errors_name_the_key() {
        let e = err(serde_json::json!({}));
        assert!(
            e.starts_with("interpreter (k): dtabFile: missing field"),
            "{e}"
        );
        let e = err(serde_json::json!({"dtabFile": "x", "extra": 1}));
        assert!(
            e.starts_with("interpreter (k): extra: unknown field `extra`"),
            "{e}"
        );
        let e = err(serde_json::json!({"dtabFile": 3}));
        assert!(
            e.starts_with("interpreter (k): dtabFile: invalid type"),
            "{e}"
        );
        let e = err(serde_json::json!({"dtabFile": "x", "retry": {"baseSeconds": "a"}}));
        assert!(
            e.starts_with("interpreter (k): retry.baseSeconds: invalid type"),
            "{e}"
        );
        let e = err(serde_json::json!({"dtabFile": "x", "retry": {"nope": 1}}));
        assert!(
            e.starts_with("interpreter (k): retry.nope: unknown field"),
            "{e}"
        );
    }
}
