//! What the admin server shows of the routers' and namers' figures: the
//! metrics tree as `/admin/metrics.json`, and as Prometheus text at
//! `/admin/metrics/prometheus` (or where an `io.l5d.prometheus`
//! telemeter's `path` says, with its `prefix`), and as InfluxDB line
//! protocol at `/admin/metrics/influxdb` with an `io.l5d.influxdb`
//! telemeter.

use std::sync::Arc;
use std::time::Duration;

use namers::config::KindConfig;
use namers::telemetry::{self, Entry, Source};
use serde_json::Value;

/// The Prometheus endpoint when no telemeter says otherwise.
pub const DEFAULT_PROMETHEUS_PATH: &str = "/admin/metrics/prometheus";

/// The telemeter kinds a router config may list.
pub const TELEMETERS: &[&str] = &["io.l5d.prometheus", "io.l5d.influxdb"];

/// Where an `io.l5d.influxdb` telemeter serves its lines (Linkerd's path).
pub const INFLUXDB_PATH: &str = "/admin/metrics/influxdb";

/// The `telemetry:` list, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Telemeters {
    /// Where Prometheus text is served, and the prefix of its names.
    pub prometheus: Vec<PrometheusTelemeter>,
    /// Whether `/admin/metrics/influxdb` is served.
    pub influxdb: bool,
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
    /// Checks `telemetry:`; a Linkerd kind this build lacks is refused as
    /// not supported yet.
    pub fn from_config(list: &[KindConfig]) -> Result<Telemeters, String> {
        let mut telemeters = Telemeters::default();
        for (i, entry) in list.iter().enumerate() {
            let at = format!("telemetry[{i}]");
            match entry.kind.as_str() {
                "io.l5d.prometheus" => {
                    let params = Value::Object(entry.params.clone());
                    let telemeter: PrometheusTelemeter =
                        serde_path_to_error::deserialize(params)
                            .map_err(|e| format!("{at} (io.l5d.prometheus): {e}"))?;
                    check_prometheus(&at, &telemeter)?;
                    telemeters.prometheus.push(telemeter);
                }
                "io.l5d.influxdb" => {
                    let params = Value::Object(entry.params.clone());
                    let _: InfluxDbTelemeter = serde_path_to_error::deserialize(params)
                        .map_err(|e| format!("{at} (io.l5d.influxdb): {e}"))?;
                    telemeters.influxdb = true;
                }
                other => {
                    return Err(namers::config::linkerd::unknown_kind(
                        &at,
                        "telemetry",
                        other,
                        TELEMETERS,
                    ));
                }
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
}

fn check_prometheus(at: &str, telemeter: &PrometheusTelemeter) -> Result<(), String> {
    if !telemeter.path.starts_with('/') || telemeter.path.contains(['?', '#', ' ']) {
        return Err(format!(
            "{at} (io.l5d.prometheus): path: {:?} is not an absolute path such as /admin/metrics/prometheus",
            telemeter.path
        ));
    }
    let reserved = [
        "/admin/metrics.json",
        "/admin/ping",
        "/admin/ready",
        INFLUXDB_PATH,
    ];
    if reserved.contains(&telemeter.path.as_str()) {
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

/// The figures the admin server shows.
#[derive(Clone)]
pub struct Metrics {
    sources: Arc<Vec<Arc<dyn Source>>>,
    /// How often stats are summarised.
    pub interval: Duration,
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
        telemetry::collect(&self.sources)
    }

    /// Ends every stat's interval.
    pub fn roll(&self) {
        telemetry::roll(&self.sources);
    }

    /// Ends every stat's interval each `interval`, until dropped.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Telemeters, String> {
        let list: Vec<KindConfig> = serde_json::from_str(yaml).unwrap();
        Telemeters::from_config(&list)
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
        let e = parse(r#"[{"kind": "io.l5d.prometheus"}, {"kind": "io.l5d.zipkin"}]"#).unwrap_err();
        assert!(
            e.contains("telemetry[1]") && e.contains("not supported yet"),
            "{e}"
        );
    }
}
