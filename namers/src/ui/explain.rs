//! What the dtab editors and the playground ask of the parser and the
//! matcher, so that the pages never reimplement either: whether a dtab
//! reads (and where it does not), and for each path in a delegation tree,
//! every dentry in the order it is tried and why it matched or did not.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dtab::{Dentry, Dtab, Path, PrefixElem};
use serde_json::{Value, json};

/// The most paths one explanation covers (a tree is rarely over a few
/// dozen nodes).
const MAX_PATHS: usize = 1000;

/// `POST /admin/dtab/check` with a dtab as the body: `{"ok": true,
/// "dentries": [...]}`, or `{"ok": false, "message", "line", "column",
/// "expected"}` from the same parser namerd and the router use. Always
/// 200: the answer is the verdict.
pub async fn check(body: String) -> Response {
    Json(verdict(&body)).into_response()
}

fn verdict(text: &str) -> Value {
    match Dtab::read(text) {
        Ok(dtab) => {
            let dentries: Vec<String> = dtab.iter().map(Dentry::show).collect();
            json!({"ok": true, "dentries": dentries})
        }
        Err(e) => json!({
            "ok": false,
            "message": e.to_string(),
            "line": e.line,
            "column": e.column,
            "expected": e.expected,
        }),
    }
}

/// The body of `POST /admin/dtab/explain`.
#[derive(serde::Deserialize)]
pub struct ExplainRequest {
    /// The whole dtab the tree was delegated with.
    dtab: String,
    /// The paths of the tree's nodes.
    paths: Vec<String>,
}

/// `POST /admin/dtab/explain`: `{"dentries": [shown...], "tried": {path:
/// [{"index", "matched", "why"}...]}}`, dentries tried last to first as
/// Finagle tries them.
pub async fn explain(Json(request): Json<ExplainRequest>) -> Response {
    let dtab = match Dtab::read(&request.dtab) {
        Ok(dtab) => dtab,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("Invalid dtab: {e}\n")).into_response(),
    };
    if request.paths.len() > MAX_PATHS {
        return (
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_PATHS} paths are explained at once\n"),
        )
            .into_response();
    }
    let mut tried = serde_json::Map::new();
    for shown in &request.paths {
        let entry = match Path::read(shown) {
            Ok(path) => Value::Array(tries(&dtab, &path)),
            Err(e) => json!({"error": format!("Invalid path: {e}")}),
        };
        tried.insert(shown.clone(), entry);
    }
    let dentries: Vec<String> = dtab.iter().map(Dentry::show).collect();
    Json(json!({"dentries": dentries, "tried": tried})).into_response()
}

/// Every dentry of `dtab` against `path`, last first.
fn tries(dtab: &Dtab, path: &Path) -> Vec<Value> {
    dtab.iter()
        .enumerate()
        .rev()
        .map(|(index, dentry)| match mismatch(dentry, path) {
            None => {
                let rest = Path::from_labels(path.elems()[dentry.prefix.len()..].to_vec());
                let why = if rest.is_empty() {
                    "the prefix is the whole path".to_string()
                } else {
                    format!(
                        "the prefix matches; {} is appended to the destination",
                        rest.show()
                    )
                };
                json!({"index": index, "matched": true, "why": why})
            }
            Some(why) => json!({"index": index, "matched": false, "why": why}),
        })
        .collect()
}

/// Why `dentry`'s prefix does not match `path`, or `None` when it does.
fn mismatch(dentry: &Dentry, path: &Path) -> Option<String> {
    let labels = path.elems();
    for (i, elem) in dentry.prefix.elems().iter().enumerate() {
        let Some(label) = labels.get(i) else {
            return Some(format!(
                "the prefix has {} labels, the path only {}",
                dentry.prefix.len(),
                labels.len()
            ));
        };
        if let PrefixElem::Label(wanted) = elem
            && wanted != label
        {
            return Some(format!(
                "label {} is {}, the prefix wants {}",
                i + 1,
                show_label(label),
                show_label(wanted)
            ));
        }
    }
    None
}

fn show_label(label: &dtab::Label) -> String {
    let mut out = String::new();
    label.write_show(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_dtab_is_placed_by_line_and_column() {
        let v = verdict("/svc => /#/io.l5d.fs;\n/svc/web => <script>");
        assert_eq!(v["ok"], false);
        assert_eq!(v["line"], 2);
        assert_eq!(v["column"], 13);
        assert_eq!(
            verdict("/a=>/b;/c=>/d")["dentries"],
            json!(["/a=>/b", "/c=>/d"])
        );
    }

    #[test]
    fn dentries_are_tried_last_first_with_reasons() {
        let dtab = Dtab::read("/svc=>/#/io.l5d.fs;/svc/api=>/x;/svc/*/v1=>/y").unwrap();
        let tried = tries(&dtab, &Path::read("/svc/web").unwrap());
        assert_eq!(tried[0]["index"], 2);
        assert_eq!(tried[0]["why"], "the prefix has 3 labels, the path only 2");
        assert_eq!(tried[1]["why"], "label 2 is web, the prefix wants api");
        assert_eq!(tried[2]["matched"], true);
        assert_eq!(
            tried[2]["why"],
            "the prefix matches; /web is appended to the destination"
        );
    }
}
