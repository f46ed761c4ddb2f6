//! `/admin/dashboard.json`: what the dashboard page draws, one document
//! per poll. The figures come from the same tree as `/admin/metrics.json`,
//! grouped by router and by server, service and client (whose names may
//! hold slashes and are single scopes there, so nothing is guessed from
//! flat keys); each client carries its endpoints as `/client_state.json`
//! shows them.

use std::collections::BTreeMap;

use namers::telemetry::{Entry, Value as Figure};
use serde_json::{Map, Value, json};

use super::AdminState;

/// A router's figures: by scope kind, then scope name, then figure.
type RouterFigures<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Map<String, Value>>>;

/// The scopes of a router the page shows.
const KINDS: [&str; 3] = ["server", "service", "client"];

/// The dashboard's document: `{"routers": [{"label", "protocol", "dtab",
/// "server": {name: figures}, "service": {...}, "client": {id: figures +
/// "state"}}], "recentRequests": bool}`.
pub(super) fn document(state: &AdminState) -> Value {
    let entries = state.metrics.entries();
    let mut by_router: BTreeMap<&str, RouterFigures<'_>> = BTreeMap::new();
    for entry in &entries {
        let Some((label, kind, name, figure)) = place(entry) else {
            continue;
        };
        let scopes = by_router.entry(label).or_default();
        let figures = scopes.entry(kind).or_default().entry(name).or_default();
        figures.insert(figure, value(&entry.value));
    }
    let routers: Vec<Value> = state
        .routers
        .iter()
        .map(|router| {
            let mut scopes = by_router.remove(router.label()).unwrap_or_default();
            let mut doc = Map::new();
            doc.insert("label".into(), router.label().into());
            let spec = router.spec();
            let protocol = if spec.tcp.is_some() {
                "tcp"
            } else if spec.thrift.is_some() {
                "thrift"
            } else {
                spec.protocol.as_str()
            };
            doc.insert("protocol".into(), protocol.into());
            doc.insert("dtab".into(), router.dtab().show().into());
            for kind in KINDS {
                let mut listed = Map::new();
                for (name, figures) in scopes.remove(kind).unwrap_or_default() {
                    listed.insert(name.to_string(), Value::Object(figures));
                }
                if kind == "client" {
                    for (id, client_state) in router.client_states() {
                        let figures = listed
                            .entry(id.show().trim_start_matches('/').to_string())
                            .or_insert_with(|| Value::Object(Map::new()));
                        figures["state"] = client_state;
                    }
                }
                doc.insert(kind.into(), Value::Object(listed));
            }
            Value::Object(doc)
        })
        .collect();
    json!({
        "routers": routers,
        "recentRequests": state.recent_requests.is_some(),
    })
}

/// `rt/<label>/<kind>/<name>/<figure...>` split up; `None` for anything
/// else, and for a client's per-service figures (the page shows services
/// on their own).
fn place(entry: &Entry) -> Option<(&str, &str, &str, String)> {
    let path = &entry.path;
    if path.len() < 5 || &*path[0] != "rt" || !KINDS.contains(&&*path[2]) {
        return None;
    }
    if &*path[2] == "client" && path.len() > 5 && &*path[4] == "service" {
        return None;
    }
    let figure = path[4..]
        .iter()
        .map(|s| &**s)
        .collect::<Vec<&str>>()
        .join("/");
    Some((&path[1], &path[2], &path[3], figure))
}

fn value(figure: &Figure) -> Value {
    match figure {
        Figure::Counter(n) => (*n).into(),
        Figure::Gauge(g) => (*g).into(),
        Figure::Stat(s) => json!({"count": s.count, "p50": s.p50, "p99": s.p99, "max": s.max}),
        Figure::Samples(_) => Value::Null,
    }
}
