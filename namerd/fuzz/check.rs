//! Checks shared by namerd's fuzz targets and by `tests/fuzz_corpus.rs`,
//! which replays the committed corpora through them under `cargo test`.
//! Each check takes the raw fuzz input and panics when something is wrong.

#![allow(dead_code)]

use axum::http::{HeaderMap, HeaderValue, header};
use dtab::{Dtab, NameTree, Path};
use namerd::api::body::{BodyError, dtab_from_body};
use namerd::api::names::DelegateRequest;

/// The name config errors must give: what `namerd::config::load` would
/// give for a file of that name.
pub(crate) const CONFIG_FILE: &str = "namerd.yaml";

/// Parses the input as a namerd config file and validates it, as
/// `namerd::config::load` does. An error must name the file.
pub(crate) fn check_namerd_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let source = namers::config::Source::new(CONFIG_FILE, text.as_ref());
    let result = source
        .parse::<namerd::config::NamerdConfig>()
        .and_then(|config| config.validate().map_err(|e| source.error(&e)));
    if let Err(e) = result {
        assert_eq!(e.file, CONFIG_FILE, "{e}");
        assert!(!e.message.trim().is_empty(), "an error says why: {e:?}");
        assert!(e.to_string().starts_with("namerd.yaml: "), "{e}");
    }
}

/// Input layout: the first line is the `Content-Type` (an empty first line
/// or no `\n` at all: no such header), the rest is the body. The body goes
/// to the dtab parser of `PUT`/`POST /api/1/dtabs/{ns}`, and, when the
/// content type is one `POST /api/1/delegate` takes, to the delegation
/// request parser too.
pub(crate) fn check_api_body(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let mut headers = HeaderMap::new();
    if !content_type.is_empty() {
        // A value no request can carry is not tried.
        let Ok(value) = HeaderValue::from_bytes(content_type) else {
            return;
        };
        headers.insert(header::CONTENT_TYPE, value);
    }
    check_dtab_body(&headers, body);
    // As `names::delegate_body` decides.
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        check_delegate_body(body);
    }
}

/// A dtab namerd accepts is one it can serve back: its JSON and its text
/// form (what `GET /api/1/dtabs/{ns}` answers) both read back.
fn check_dtab_body(headers: &HeaderMap, body: &[u8]) {
    match dtab_from_body(headers, body) {
        Ok(dtab) => {
            if !dtab.iter().all(|d| finite_weights(&d.dst)) {
                return;
            }
            let json = match serde_json::to_string(&dtab) {
                Ok(json) => json,
                Err(e) => panic!("an accepted dtab does not serialise: {e}"),
            };
            if let Err(e) = serde_json::from_str::<Dtab>(&json) {
                panic!("the JSON served back does not read: {json:?}: {e}");
            }
            let text = dtab.show();
            if let Err(e) = Dtab::read(&text) {
                panic!("the text served back does not read: {text:?}: {e}");
            }
        }
        Err(e) => {
            let message = e.message();
            assert!(message.ends_with('\n'), "{message:?}");
            assert!(message.trim().len() > 1, "{message:?}");
            let missing = matches!(e, BodyError::MissingContentType);
            assert_eq!(missing, !headers.contains_key(header::CONTENT_TYPE));
        }
    }
}

/// The body of `POST /api/1/delegate`, read as `names::delegate_body` and
/// `delegate_in` do, up to the point where namerd is asked.
fn check_delegate_body(body: &[u8]) {
    let Ok(request) = serde_json::from_slice::<DelegateRequest>(body) else {
        return;
    };
    let ns = request.namespace.as_deref().unwrap_or("default");
    if let Err(e) = namerd::Namespace::new(ns) {
        assert!(!e.to_string().is_empty());
    }
    if let Some(path) = request.path.as_deref()
        && let Ok(p) = Path::read(path)
    {
        assert_eq!(Path::read(&p.show()).ok(), Some(p), "{path:?}");
    }
    if let Some(dtab) = request.dtab.as_deref() {
        let _ = Dtab::read(dtab);
    }
}

/// Whether every union weight is finite. A weight of 309 or more digits
/// reads as infinity and prints as `Infinity`, which does not read back, as
/// in Finagle (see `dtab/fuzz/README.md`): that known case is skipped.
fn finite_weights(tree: &NameTree<Path>) -> bool {
    match tree {
        NameTree::Alt(ts) => ts.iter().all(finite_weights),
        NameTree::Union(ws) => ws
            .iter()
            .all(|w| w.weight.is_finite() && finite_weights(&w.tree)),
        _ => true,
    }
}
