//! The `telemetry:` block and the admin endpoints that show the metrics
//! tree, the same for the router and namerd (Linkerd's namerd took the
//! same telemeters as its routers):
//!
//! - `/admin/metrics.json`, always: flat keys, `?tree=1` nested, `?q=` one
//!   subtree (a 404 `{"error": "No such subtree: …"}` when nothing is
//!   there), `?pretty=true` indented;
//! - Prometheus text at `/admin/metrics/prometheus`, always, and at each
//!   `io.l5d.prometheus` telemeter's `path` with its `prefix`;
//! - InfluxDB line protocol at `/admin/metrics/influxdb` with an
//!   `io.l5d.influxdb` telemeter;
//! - and, with `io.l5d.statsd`, the figures pushed to a statsd server
//!   ([`Metrics::start_pushing`]).
//!
//! The tracing telemeters (`io.l5d.zipkin`, `io.zipkin.http`,
//! `io.l5d.tracelog`, `io.opentelemetry.otlp`, `io.l5d.recentRequests`)
//! are checked here too and kept in [`Telemeters::tracers`], for a
//! [`super::trace::Tracer`]: the router records a span per request and
//! attempt, namerd one per API request.
//!
//! [`admin`] answers these paths without knowing the web framework, as
//! [`crate::logging::admin`] does for the log level; an admin server routes
//! every path of [`Telemeters::paths`] to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use super::trace::TracerConfig;
use super::{Entry, Source};
use crate::config::KindConfig;

/// The Prometheus endpoint when no telemeter says otherwise.
pub const DEFAULT_PROMETHEUS_PATH: &str = "/admin/metrics/prometheus";

/// Where an `io.l5d.influxdb` telemeter serves its lines (Linkerd's path).
pub const INFLUXDB_PATH: &str = "/admin/metrics/influxdb";

/// Where the tree is served as JSON.
pub const METRICS_JSON_PATH: &str = "/admin/metrics.json";

/// Where `io.l5d.recentRequests` shows its table, as in Linkerd.
pub const RECENT_REQUESTS_PATH: &str = "/requests";

/// The same table as JSON.
pub const RECENT_REQUESTS_JSON_PATH: &str = "/requests.json";

/// The telemeter kinds a config may list: the metrics kinds, then the
/// tracing kinds.
pub const TELEMETERS: &[&str] = &[
    "io.l5d.prometheus",
    "io.l5d.influxdb",
    "io.l5d.statsd",
    "io.l5d.zipkin",
    "io.zipkin.http",
    "io.l5d.tracelog",
    "io.opentelemetry.otlp",
    "io.l5d.recentRequests",
];

/// The `telemetry:` list, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Telemeters {
    /// Where Prometheus text is served, and the prefix of its names.
    pub prometheus: Vec<PrometheusTelemeter>,
    /// Whether `/admin/metrics/influxdb` is served.
    pub influxdb: bool,
    /// statsd servers the figures are pushed to.
    pub statsd: Vec<super::statsd::StatsdConfig>,
    /// Where spans are sent ([`super::trace::Tracer::new`]).
    pub tracers: Vec<TracerConfig>,
}

/// `{kind: io.l5d.influxdb}`: Linkerd's telemeter had no keys.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InfluxDbTelemeter {
    #[serde(default)]
    experimental: bool,
}

/// `{kind: io.l5d.prometheus, path, prefix}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusTelemeter {
    /// The admin path (default `/admin/metrics/prometheus`).
    #[serde(default = "default_prometheus_path")]
    pub path: String,
    /// Put before every name (default none; Linkerd's docs used
    /// `linkerd_`).
    #[serde(default)]
    pub prefix: String,
    /// Linkerd asked for it on some kinds; accepted.
    #[serde(default)]
    pub experimental: bool,
}

fn default_prometheus_path() -> String {
    DEFAULT_PROMETHEUS_PATH.to_string()
}

impl Telemeters {
    /// Checks `telemetry:`. `taken` are the admin server's other paths,
    /// which a telemeter's `path` may not take over.
    pub fn from_config(list: &[KindConfig], taken: &[&str]) -> Result<Telemeters, String> {
        Telemeters::read(list, taken)
    }

    fn read(list: &[KindConfig], taken: &[&str]) -> Result<Telemeters, String> {
        let mut telemeters = Telemeters::default();
        // Where each Prometheus path was set, for a path given twice.
        let mut set_at: Vec<(String, String)> = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let at = format!("telemetry[{i}]");
            match entry.kind.as_str() {
                "io.l5d.prometheus" => {
                    let params = Json::Object(entry.params.clone());
                    let telemeter: PrometheusTelemeter =
                        serde_path_to_error::deserialize(params)
                            .map_err(|e| format!("{at} (io.l5d.prometheus): {e}"))?;
                    check_prometheus(&at, &telemeter, taken)?;
                    if let Some((_, first)) = set_at.iter().find(|(p, _)| *p == telemeter.path) {
                        return Err(format!(
                            "{at} (io.l5d.prometheus): path: {} is already served by {first}; give each telemeter its own path",
                            telemeter.path
                        ));
                    }
                    set_at.push((telemeter.path.clone(), at));
                    telemeters.prometheus.push(telemeter);
                }
                "io.l5d.influxdb" => {
                    let params = Json::Object(entry.params.clone());
                    let _: InfluxDbTelemeter = serde_path_to_error::deserialize(params)
                        .map_err(|e| format!("{at} (io.l5d.influxdb): {e}"))?;
                    telemeters.influxdb = true;
                }
                "io.l5d.statsd" => {
                    let params = Json::Object(entry.params.clone());
                    let statsd: super::statsd::StatsdConfig =
                        serde_path_to_error::deserialize(params)
                            .map_err(|e| format!("{at} (io.l5d.statsd): {e}"))?;
                    statsd.check(&at)?;
                    telemeters.statsd.push(statsd);
                }
                other => match TracerConfig::from_kind(other, &entry.params, &at) {
                    Some(tracer) => telemeters.tracers.push(tracer?),
                    None => {
                        return Err(crate::config::linkerd::unknown_kind(
                            &at,
                            "telemetry",
                            other,
                            TELEMETERS,
                        ));
                    }
                },
            }
        }
        Ok(telemeters)
    }

    /// Every path Prometheus text is served at, with its prefix: the
    /// default path always (without a prefix unless a telemeter there
    /// sets one).
    pub fn prometheus_paths(&self) -> Vec<(String, String)> {
        let mut paths: Vec<(String, String)> = self
            .prometheus
            .iter()
            .map(|t| (t.path.clone(), t.prefix.clone()))
            .collect();
        if !paths
            .iter()
            .any(|(path, _)| path == DEFAULT_PROMETHEUS_PATH)
        {
            paths.push((DEFAULT_PROMETHEUS_PATH.to_string(), String::new()));
        }
        paths
    }

    /// Every admin path [`admin`] answers: `/admin/metrics.json`, the
    /// Prometheus paths and, when configured, `/admin/metrics/influxdb`.
    /// Each appears once.
    pub fn paths(&self) -> Vec<String> {
        let mut paths = vec![METRICS_JSON_PATH.to_string()];
        paths.extend(self.prometheus_paths().into_iter().map(|(path, _)| path));
        if self.influxdb {
            paths.push(INFLUXDB_PATH.to_string());
        }
        paths
    }
}

/// Whether `path` is one an admin route can be: absolute, and plain
/// characters only (no `{`, `*` or `:` that a router would read as a
/// pattern, no query or fragment).
fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '~' | '-'))
}

fn check_prometheus(
    at: &str,
    telemeter: &PrometheusTelemeter,
    taken: &[&str],
) -> Result<(), String> {
    if !is_plain_path(&telemeter.path) {
        return Err(format!(
            "{at} (io.l5d.prometheus): path: {:?} is not an absolute path such as /admin/metrics/prometheus (letters, digits and / . _ ~ -)",
            telemeter.path
        ));
    }
    let reserved = [
        METRICS_JSON_PATH,
        INFLUXDB_PATH,
        RECENT_REQUESTS_PATH,
        RECENT_REQUESTS_JSON_PATH,
    ];
    if reserved.contains(&telemeter.path.as_str()) || taken.contains(&telemeter.path.as_str()) {
        return Err(format!(
            "{at} (io.l5d.prometheus): path: {} is another admin endpoint",
            telemeter.path
        ));
    }
    let valid_start = telemeter
        .prefix
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    let valid = telemeter
        .prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !(valid_start && valid) {
        return Err(format!(
            "{at} (io.l5d.prometheus): prefix: {:?} cannot start a Prometheus metric name (letters, digits, `_` and `:`, not starting with a digit)",
            telemeter.prefix
        ));
    }
    Ok(())
}

/// The figures an admin server shows, and the interval of their stats.
#[derive(Clone)]
pub struct Metrics {
    sources: Arc<Vec<Arc<dyn Source>>>,
    /// How often stats are summarised.
    pub interval: Duration,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sources", &self.sources.len())
            .field("interval", &self.interval)
            .finish()
    }
}

impl Metrics {
    /// The figures of `sources`, stats summarised every `interval`.
    pub fn new(sources: Vec<Arc<dyn Source>>, interval: Duration) -> Metrics {
        Metrics {
            sources: Arc::new(sources),
            interval,
        }
    }

    /// Every figure now (stats: their last full interval).
    pub fn entries(&self) -> Vec<Entry> {
        super::collect(&self.sources)
    }

    /// Ends every stat's interval.
    pub fn roll(&self) {
        super::roll(&self.sources);
    }

    /// The tasks that push the figures to each statsd server of
    /// `telemeters`, to spawn where they are aborted when the server stops.
    pub fn start_pushing(
        &self,
        telemeters: &Telemeters,
    ) -> Vec<impl std::future::Future<Output = ()> + Send + 'static> {
        telemeters
            .statsd
            .iter()
            .map(|statsd| super::statsd::push_every_interval(statsd.clone(), self.sources.to_vec()))
            .collect()
    }

    /// Ends every stat's interval each `interval`, until dropped (spawn it
    /// where it is aborted when the server stops).
    pub async fn roll_every_interval(self) {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.roll();
        }
    }
}

/// Content type of the JSON answers.
const JSON: &str = "application/json";

/// The admin answer for a `GET` of `path` with query `params`, as
/// `(status, content type, body)`; `None` when `path` is none of
/// [`Telemeters::paths`]. `host` is the request's `Host`, which InfluxDB
/// lines carry as a tag.
pub fn admin(
    metrics: &Metrics,
    telemeters: &Telemeters,
    path: &str,
    params: &HashMap<String, String>,
    host: Option<&str>,
) -> Option<(u16, &'static str, String)> {
    if path == METRICS_JSON_PATH {
        return Some(metrics_json(&metrics.entries(), params));
    }
    if telemeters.influxdb && path == INFLUXDB_PATH {
        let text = super::influxdb::render(&metrics.entries(), host);
        return Some((200, "text/plain; charset=utf-8", text));
    }
    let (_, prefix) = telemeters
        .prometheus_paths()
        .into_iter()
        .find(|(served, _)| served == path)?;
    let text = super::prometheus::render(&metrics.entries(), &prefix);
    Some((200, "text/plain; version=0.0.4; charset=utf-8", text))
}

/// `/admin/metrics.json`: flat keys, or with `tree=1` nested; `q=` keeps
/// one subtree; `pretty=true` indents.
fn metrics_json(
    entries: &[Entry],
    params: &HashMap<String, String>,
) -> (u16, &'static str, String) {
    use super::json;
    let subtree;
    let entries = match params.get("q") {
        None => entries,
        Some(q) => match json::subtree(entries, q) {
            Some(found) => {
                subtree = found;
                &subtree
            }
            None => {
                let error = serde_json::json!({"error": format!("No such subtree: {q}")});
                return (404, JSON, error.to_string());
            }
        },
    };
    let on = |key: &str| {
        params
            .get(key)
            .is_some_and(|v| matches!(v.as_str(), "1" | "true"))
    };
    let value = if on("tree") {
        json::tree(entries)
    } else {
        json::flat(entries)
    };
    let body = if on("pretty") {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        value.to_string()
    };
    (200, JSON, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Counter, Scope, Stat};

    fn parse(json: &str) -> Result<Telemeters, String> {
        let list: Vec<KindConfig> = serde_json::from_str(json).unwrap();
        Telemeters::from_config(&list, &["/admin/ping"])
    }

    #[test]
    fn prometheus_takes_a_path_and_a_prefix() {
        let telemeters =
            parse(r#"[{"kind": "io.l5d.prometheus", "path": "/metrics", "prefix": "linkerd_"}]"#)
                .unwrap();
        assert_eq!(
            telemeters.prometheus_paths(),
            [
                ("/metrics".to_string(), "linkerd_".to_string()),
                (DEFAULT_PROMETHEUS_PATH.to_string(), String::new())
            ]
        );
        let default = parse(r#"[{"kind": "io.l5d.prometheus"}]"#).unwrap();
        assert_eq!(
            default.prometheus_paths(),
            [(DEFAULT_PROMETHEUS_PATH.to_string(), String::new())]
        );
        assert_eq!(
            parse(r#"[{"kind": "io.l5d.influxdb"}]"#).unwrap().paths(),
            [METRICS_JSON_PATH, DEFAULT_PROMETHEUS_PATH, INFLUXDB_PATH]
        );
    }

    #[test]
    fn bad_telemeters_are_refused_with_the_key() {
        let e = parse(r#"[{"kind": "io.l5d.prometheus", "prefix": "9x"}]"#).unwrap_err();
        assert!(e.contains("telemetry[0]") && e.contains("prefix"), "{e}");
        let e = parse(r#"[{"kind": "io.l5d.prometheus", "path": "metrics"}]"#).unwrap_err();
        assert!(e.contains("path"), "{e}");
        let e = parse(r#"[{"kind": "io.l5d.prometheus", "bogus": 1}]"#).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse(r#"[{"kind": "io.l5d.influxdb", "host": "x"}]"#).unwrap_err();
        assert!(e.contains("telemetry[0]") && e.contains("host"), "{e}");
        let e = parse(r#"[{"kind": "io.l5d.prometheus"}, {"kind": "io.l5d.recentRequest"}]"#)
            .unwrap_err();
        assert!(
            e.starts_with("telemetry[1]: unknown telemetry kind \"io.l5d.recentRequest\""),
            "{e}"
        );
    }

    #[test]
    fn tracing_telemeters_are_kept_for_the_tracer() {
        let telemeters = parse(
            r#"[{"kind": "io.l5d.prometheus"},
                {"kind": "io.l5d.zipkin", "sampleRate": 0.5},
                {"kind": "io.l5d.tracelog"}]"#,
        )
        .unwrap();
        let kinds: Vec<&str> = telemeters.tracers.iter().map(|t| t.kind()).collect();
        assert_eq!(kinds, ["io.l5d.zipkin", "io.l5d.tracelog"]);
        assert_eq!(telemeters.tracers[0].sample_rate().get(), 0.5);
        let e = parse(r#"[{"kind": "io.l5d.zipkin"}, {"kind": "io.zipkin.http", "hosts": "x"}]"#)
            .unwrap_err();
        assert!(
            e.starts_with("telemetry[1] (io.zipkin.http): ") && e.contains("hosts"),
            "{e}"
        );
        let e =
            parse(r#"[{"kind": "io.opentelemetry.otlp", "endpoint": "https://otel/v1/traces"}]"#)
                .unwrap_err();
        assert!(
            e.contains("endpoint") && e.contains("not supported yet"),
            "{e}"
        );
    }

    #[test]
    fn a_path_is_served_once_and_only_by_one_endpoint() {
        for taken in [
            "/admin/metrics.json",
            "/admin/metrics/influxdb",
            "/admin/ping",
        ] {
            let e = parse(&format!(
                r#"[{{"kind": "io.l5d.prometheus", "path": "{taken}"}}]"#
            ))
            .unwrap_err();
            assert!(e.contains("is another admin endpoint"), "{e}");
        }
        let e = parse(
            r#"[{"kind": "io.l5d.prometheus"}, {"kind": "io.l5d.prometheus", "prefix": "l5d_"}]"#,
        )
        .unwrap_err();
        assert!(
            e.starts_with("telemetry[1] (io.l5d.prometheus): path: /admin/metrics/prometheus is already served by telemetry[0]"),
            "{e}"
        );
        // A route pattern is not a path.
        for pattern in ["/metrics/{x}", "/metrics/*rest", "/m:x", "/a b", "/m?x=1"] {
            let e = parse(&format!(
                r#"[{{"kind": "io.l5d.prometheus", "path": "{pattern}"}}]"#
            ))
            .unwrap_err();
            assert!(e.contains("is not an absolute path"), "{e}");
        }
    }

    struct Figures {
        requests: Counter,
        latency: Stat,
    }

    impl Source for Figures {
        fn list(&self, root: &mut Scope<'_>) {
            let mut scope = root.scope("interface");
            let mut scope = scope.scope("a/b");
            scope.counter("requests", self.requests.get());
            scope.stat("request_latency_ms", &self.latency);
        }
    }

    fn served() -> (Metrics, Telemeters) {
        let figures = Arc::new(Figures {
            requests: Counter::default(),
            latency: Stat::default(),
        });
        figures.requests.add(3);
        figures.latency.add(7);
        let metrics = Metrics::new(vec![figures], Duration::from_secs(60));
        metrics.roll();
        let telemeters = parse(
            r#"[{"kind": "io.l5d.prometheus", "path": "/metrics", "prefix": "x_"}, {"kind": "io.l5d.influxdb"}]"#,
        )
        .unwrap();
        (metrics, telemeters)
    }

    fn get(path: &str, query: &[(&str, &str)]) -> Option<(u16, &'static str, String)> {
        let (metrics, telemeters) = served();
        let params = query
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        admin(&metrics, &telemeters, path, &params, Some("h:1"))
    }

    #[test]
    fn every_format_is_answered_at_its_path() {
        let (status, content_type, body) = get("/admin/metrics.json", &[]).unwrap();
        assert_eq!((status, content_type), (200, "application/json"));
        let json: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(json["interface/a/b/requests"], 3);
        assert_eq!(json["interface/a/b/request_latency_ms.max"], 7);

        let (_, _, body) = get("/admin/metrics.json", &[("tree", "1")]).unwrap();
        let json: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(json["interface"]["a/b"]["requests"]["counter"], 3);

        let (_, _, body) = get(
            "/admin/metrics.json",
            &[("q", "interface/a/b"), ("pretty", "true")],
        )
        .unwrap();
        assert!(body.contains("\n  \"requests\": 3"), "{body}");

        let (status, _, body) = get("/admin/metrics.json", &[("q", "interface/a")]).unwrap();
        assert_eq!(status, 404);
        assert_eq!(body, r#"{"error":"No such subtree: interface/a"}"#);

        let (status, content_type, body) = get("/metrics", &[]).unwrap();
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(body.contains("x_interface:a_b:requests 3\n"), "{body}");
        let (_, _, body) = get("/admin/metrics/prometheus", &[]).unwrap();
        assert!(
            body.lines().any(|l| l == "interface:a_b:requests 3"),
            "{body}"
        );

        let (_, _, body) = get("/admin/metrics/influxdb", &[]).unwrap();
        assert!(body.starts_with("interface:a_b,host=h:1 "), "{body}");
        assert!(body.contains("requests=3"), "{body}");

        assert!(get("/admin/ping", &[]).is_none());
    }

    #[test]
    fn influxdb_is_answered_only_when_configured() {
        let (metrics, _) = served();
        let none = Telemeters::default();
        assert!(admin(&metrics, &none, INFLUXDB_PATH, &HashMap::new(), None).is_none());
        assert_eq!(none.paths(), [METRICS_JSON_PATH, DEFAULT_PROMETHEUS_PATH]);
    }
}
