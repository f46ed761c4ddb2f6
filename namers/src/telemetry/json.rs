//! `/admin/metrics.json`: flat keys joined with `/` (a stat as `.count`,
//! `.max`, ..., `.avg`), or with `tree=1` nested objects whose own figure
//! is `counter`, `gauge` or `stat.<figure>`; `q=<key prefix>` keeps one
//! subtree, with keys relative to it.

use serde_json::{Map, Number, Value as Json};

use super::{Entry, Summary, Value};

/// The flat form: `{"rt/web/server/0.0.0.0/4140/requests": 3, ...}`.
pub fn flat(entries: &[Entry]) -> Json {
    let mut out = Map::new();
    for entry in entries {
        let key = entry.path.join("/");
        match entry.value {
            Value::Counter(n) => {
                out.insert(key, Json::from(n));
            }
            Value::Gauge(g) => {
                out.insert(key, float(g));
            }
            Value::Stat(summary) => {
                for (suffix, figure) in stat_figures(&summary) {
                    out.insert(format!("{key}.{suffix}"), figure);
                }
            }
            // Only push walks give samples.
            Value::Samples(_) => {}
        }
    }
    Json::Object(out)
}

/// The tree form: `{"rt": {"web": {"server": {"0.0.0.0/4140": {"requests":
/// {"counter": 3}}}}}}`.
pub fn tree(entries: &[Entry]) -> Json {
    let mut root = Map::new();
    for entry in entries {
        let mut node = &mut root;
        for segment in &entry.path {
            let child = node
                .entry(segment.to_string())
                .or_insert_with(|| Json::Object(Map::new()));
            if !child.is_object() {
                *child = Json::Object(Map::new());
            }
            let Json::Object(map) = child else {
                unreachable!("made an object above")
            };
            node = map;
        }
        match entry.value {
            Value::Counter(n) => {
                node.insert("counter".into(), Json::from(n));
            }
            Value::Gauge(g) => {
                node.insert("gauge".into(), float(g));
            }
            Value::Stat(summary) => {
                for (suffix, figure) in stat_figures(&summary) {
                    node.insert(format!("stat.{suffix}"), figure);
                }
            }
            Value::Samples(_) => {}
        }
    }
    Json::Object(root)
}

/// The entries under the key prefix `query` (`rt/web/client`), with paths
/// relative to it; `None` when nothing is there. The prefix is matched on
/// whole segments of the joined key, so `rt/web/client/$/inet/127.1/8080`
/// reaches into an id with slashes.
pub fn subtree(entries: &[Entry], query: &str) -> Option<Vec<Entry>> {
    let query = query.trim_matches('/');
    if query.is_empty() {
        return Some(entries.to_vec());
    }
    let wanted: Vec<&str> = query.split('/').collect();
    let found: Vec<Entry> = entries
        .iter()
        .filter_map(|entry| {
            // The entry's key split at every slash, with where each of its
            // segments starts in that split.
            let mut pieces: Vec<&str> = Vec::new();
            let mut starts = Vec::new();
            for segment in &entry.path {
                starts.push(pieces.len());
                pieces.extend(segment.split('/'));
            }
            if pieces.len() <= wanted.len() || pieces[..wanted.len()] != wanted[..] {
                return None;
            }
            // Only a cut between segments leaves whole segments behind.
            let cut = starts.iter().position(|&s| s == wanted.len())?;
            Some(Entry {
                path: entry.path[cut..].to_vec(),
                value: entry.value.clone(),
            })
        })
        .collect();
    (!found.is_empty()).then_some(found)
}

/// A stat's figures in Linkerd's order; only `count` for an empty one.
fn stat_figures(s: &Summary) -> Vec<(&'static str, Json)> {
    let mut figures = vec![("count", Json::from(s.count))];
    if s.count > 0 {
        figures.extend([
            ("max", Json::from(s.max)),
            ("min", Json::from(s.min)),
            ("p50", Json::from(s.p50)),
            ("p90", Json::from(s.p90)),
            ("p95", Json::from(s.p95)),
            ("p99", Json::from(s.p99)),
            ("p9990", Json::from(s.p9990)),
            ("p9999", Json::from(s.p9999)),
            ("sum", Json::from(s.sum)),
            ("avg", float(s.avg)),
        ]);
    }
    figures
}

fn float(value: f64) -> Json {
    Number::from_f64(value).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &[&str], value: Value) -> Entry {
        Entry {
            path: path.iter().map(|s| (*s).into()).collect(),
            value,
        }
    }

    fn sample() -> Vec<Entry> {
        vec![
            entry(
                &["rt", "web", "client", "$/inet/127.1/8080", "requests"],
                Value::Counter(7),
            ),
            entry(
                &[
                    "rt",
                    "web",
                    "client",
                    "$/inet/127.1/8080",
                    "loadbalancer",
                    "size",
                ],
                Value::Gauge(1.0),
            ),
            entry(
                &["rt", "web", "service", "svc/web", "request_latency_ms"],
                Value::Stat(Summary {
                    count: 2,
                    sum: 3,
                    min: 1,
                    max: 2,
                    avg: 1.5,
                    p50: 1,
                    p90: 2,
                    p95: 2,
                    p99: 2,
                    p9990: 2,
                    p9999: 2,
                }),
            ),
        ]
    }

    #[test]
    fn flat_keys_join_segments_and_expand_stats() {
        let json = flat(&sample());
        assert_eq!(json["rt/web/client/$/inet/127.1/8080/requests"], 7);
        assert_eq!(
            json["rt/web/client/$/inet/127.1/8080/loadbalancer/size"].to_string(),
            "1.0"
        );
        assert_eq!(json["rt/web/service/svc/web/request_latency_ms.count"], 2);
        assert_eq!(json["rt/web/service/svc/web/request_latency_ms.p9990"], 2);
        assert_eq!(
            json["rt/web/service/svc/web/request_latency_ms.avg"].to_string(),
            "1.5"
        );
    }

    #[test]
    fn an_empty_stat_shows_only_its_count() {
        let json = flat(&[entry(&["s"], Value::Stat(Summary::default()))]);
        assert_eq!(json, serde_json::json!({"s.count": 0}));
    }

    #[test]
    fn the_tree_nests_by_segment() {
        let json = tree(&sample());
        assert_eq!(
            json["rt"]["web"]["client"]["$/inet/127.1/8080"]["requests"]["counter"],
            7
        );
        assert_eq!(
            json["rt"]["web"]["service"]["svc/web"]["request_latency_ms"]["stat.max"],
            2
        );
    }

    #[test]
    fn a_subtree_is_found_by_key_prefix_on_segment_bounds() {
        let entries = sample();
        let client = subtree(&entries, "rt/web/client/$/inet/127.1/8080").unwrap();
        assert_eq!(flat(&client)["requests"], 7);
        assert_eq!(flat(&client)["loadbalancer/size"].to_string(), "1.0");
        // Cutting inside a segment finds nothing.
        assert!(subtree(&entries, "rt/web/client/$/inet").is_none());
        assert!(subtree(&entries, "rt/nothing").is_none());
        assert_eq!(subtree(&entries, "").unwrap().len(), 3);
    }
}
