//! The tracing telemeters of the `telemetry:` list, one kind per module,
//! registered in [`KINDS`].

use serde_json::{Map, Value};

use super::otlp::{self, OtlpConfig};
use super::recent::{self, RecentRequestsConfig};
use super::sampling::SampleRate;
use super::tracelog::{self, TracelogConfig};
use super::zipkin_http::{self, ZipkinHttpConfig};
use super::zipkin_scribe::{self, ZipkinScribeConfig};

/// A checked tracing telemeter.
#[derive(Clone, Debug, PartialEq)]
pub enum TracerConfig {
    /// `io.l5d.zipkin`: Zipkin v1 over scribe.
    ZipkinScribe(ZipkinScribeConfig),
    /// `io.zipkin.http`: Zipkin v2 JSON over HTTP.
    ZipkinHttp(ZipkinHttpConfig),
    /// `io.l5d.tracelog`: a log line per span.
    Tracelog(TracelogConfig),
    /// `io.opentelemetry.otlp`: OTLP/HTTP JSON.
    Otlp(OtlpConfig),
    /// `io.l5d.recentRequests`: the last sampled requests, in memory.
    RecentRequests(RecentRequestsConfig),
}

type Parse = fn(&Map<String, Value>, &str) -> Result<TracerConfig, String>;

/// Every tracing kind and how its keys are read.
pub const KINDS: &[(&str, Parse)] = &[
    (zipkin_scribe::KIND, |p, at| {
        ZipkinScribeConfig::from_params(p, at).map(TracerConfig::ZipkinScribe)
    }),
    (zipkin_http::KIND, |p, at| {
        ZipkinHttpConfig::from_params(p, at).map(TracerConfig::ZipkinHttp)
    }),
    (tracelog::KIND, |p, at| {
        TracelogConfig::from_params(p, at).map(TracerConfig::Tracelog)
    }),
    (otlp::KIND, |p, at| {
        OtlpConfig::from_params(p, at).map(TracerConfig::Otlp)
    }),
    (recent::KIND, |p, at| {
        RecentRequestsConfig::from_params(p, at).map(TracerConfig::RecentRequests)
    }),
];

impl TracerConfig {
    /// The telemeter of `kind` with keys `params`, checked; `None` when
    /// `kind` is not a tracing kind. `at` names the entry in errors
    /// (`telemetry[2]`), which read `telemetry[2] (kind): key: why`.
    pub fn from_kind(
        kind: &str,
        params: &Map<String, Value>,
        at: &str,
    ) -> Option<Result<TracerConfig, String>> {
        let (_, parse) = KINDS.iter().find(|(k, _)| *k == kind)?;
        Some(parse(params, at))
    }

    /// The telemeter's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TracerConfig::ZipkinScribe(_) => zipkin_scribe::KIND,
            TracerConfig::ZipkinHttp(_) => zipkin_http::KIND,
            TracerConfig::Tracelog(_) => tracelog::KIND,
            TracerConfig::Otlp(_) => otlp::KIND,
            TracerConfig::RecentRequests(_) => recent::KIND,
        }
    }

    /// The share of undecided traces the telemeter records.
    pub fn sample_rate(&self) -> SampleRate {
        match self {
            TracerConfig::ZipkinScribe(c) => c.sample_rate,
            TracerConfig::ZipkinHttp(c) => c.sample_rate,
            TracerConfig::Tracelog(c) => c.sample_rate,
            TracerConfig::Otlp(c) => c.sample_rate,
            TracerConfig::RecentRequests(c) => c.sample_rate,
        }
    }

    /// Whether the telemeter's rate takes part in the decision that goes
    /// downstream with a new trace. Linkerd's tracelog and recent
    /// requests did not: they only sample for themselves.
    pub fn decides(&self) -> bool {
        !matches!(
            self,
            TracerConfig::Tracelog(_) | TracerConfig::RecentRequests(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn parse(kind: &str, json: &str) -> Result<TracerConfig, String> {
        let params: Map<String, Value> = serde_json::from_str(json).unwrap();
        TracerConfig::from_kind(kind, &params, "telemetry[1]").unwrap()
    }

    fn rate(r: f64) -> SampleRate {
        SampleRate::new(r).unwrap()
    }

    #[test]
    fn only_tracing_kinds_are_taken() {
        assert!(TracerConfig::from_kind("io.l5d.prometheus", &Map::new(), "t").is_none());
        // Every kind's keys have defaults but recentRequests' sampleRate.
        for (kind, _) in KINDS {
            let json = if *kind == "io.l5d.recentRequests" {
                r#"{"sampleRate": 1}"#
            } else {
                "{}"
            };
            let params: Map<String, Value> = serde_json::from_str(json).unwrap();
            let config = TracerConfig::from_kind(kind, &params, "t")
                .unwrap()
                .unwrap();
            assert_eq!(config.kind(), *kind);
        }
    }

    #[test]
    fn zipkin_scribe_defaults_and_keys() {
        assert_eq!(
            parse("io.l5d.zipkin", "{}"),
            Ok(TracerConfig::ZipkinScribe(ZipkinScribeConfig {
                host: "localhost".into(),
                port: 9410,
                sample_rate: rate(0.001),
            }))
        );
        assert_eq!(
            parse(
                "io.l5d.zipkin",
                r#"{"host": "zipkin.local", "port": 1463, "sampleRate": 1}"#
            ),
            Ok(TracerConfig::ZipkinScribe(ZipkinScribeConfig {
                host: "zipkin.local".into(),
                port: 1463,
                sample_rate: SampleRate::ALWAYS,
            }))
        );
    }

    #[test]
    fn zipkin_http_defaults_and_keys() {
        let TracerConfig::ZipkinHttp(config) = parse("io.zipkin.http", "{}").unwrap() else {
            panic!("not io.zipkin.http");
        };
        assert_eq!(config.uri, "http://localhost:9411/api/v2/spans");
        assert_eq!(config.host_header, "zipkin");
        assert_eq!(config.sample_rate, rate(0.001));
        assert!(config.gzip, "gzipped by default, as the plugin did");
        let TracerConfig::ZipkinHttp(config) = parse(
            "io.zipkin.http",
            r#"{"host": "10.1.2.3:19411", "hostHeader": "zipkin.example",
                "compressionEnabled": false, "initialSampleRate": 0.25}"#,
        )
        .unwrap() else {
            panic!("not io.zipkin.http");
        };
        assert_eq!(config.uri, "http://10.1.2.3:19411/api/v2/spans");
        assert_eq!(
            config.host_header,
            HeaderValue::from_static("zipkin.example")
        );
        assert_eq!(config.sample_rate, rate(0.25));
        assert!(!config.gzip);
    }

    #[test]
    fn tracelog_defaults_and_keys() {
        assert_eq!(
            parse("io.l5d.tracelog", "{}"),
            Ok(TracerConfig::Tracelog(TracelogConfig {
                sample_rate: SampleRate::ALWAYS,
                level: Some(tracing::Level::INFO),
            }))
        );
        assert_eq!(
            parse(
                "io.l5d.tracelog",
                r#"{"sampleRate": 0.2, "level": "TRACE"}"#
            ),
            Ok(TracerConfig::Tracelog(TracelogConfig {
                sample_rate: rate(0.2),
                level: Some(tracing::Level::TRACE),
            }))
        );
        let off = parse("io.l5d.tracelog", r#"{"level": "off"}"#).unwrap();
        assert!(!off.decides());
    }

    #[test]
    fn otlp_defaults_and_keys() {
        assert_eq!(
            parse("io.opentelemetry.otlp", "{}"),
            Ok(TracerConfig::Otlp(OtlpConfig {
                endpoint: "http://localhost:4318/v1/traces".parse().unwrap(),
                sample_rate: rate(0.001),
                service_name: None,
            }))
        );
        assert_eq!(
            parse(
                "io.opentelemetry.otlp",
                r#"{"endpoint": "http://otel:4318/custom", "sampleRate": 0.5, "serviceName": "edge"}"#
            ),
            Ok(TracerConfig::Otlp(OtlpConfig {
                endpoint: "http://otel:4318/custom".parse().unwrap(),
                sample_rate: rate(0.5),
                service_name: Some("edge".into()),
            }))
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        for kind in [
            "io.l5d.zipkin",
            "io.zipkin.http",
            "io.l5d.tracelog",
            "io.opentelemetry.otlp",
        ] {
            let e = parse(kind, r#"{"bogus": 1}"#).unwrap_err();
            assert!(
                e.starts_with(&format!("telemetry[1] ({kind}): "))
                    && e.contains("unknown field `bogus`"),
                "{e}"
            );
        }
        // Linkerd's tracelog docs listed `host`, which it never took.
        let e = parse("io.l5d.tracelog", r#"{"host": "x"}"#).unwrap_err();
        assert!(e.contains("unknown field `host`"), "{e}");
    }

    #[test]
    fn a_linkerd_key_that_cannot_work_is_not_supported_yet() {
        let e = parse(
            "io.opentelemetry.otlp",
            r#"{"endpoint": "https://otel:4318/v1/traces"}"#,
        )
        .unwrap_err();
        assert!(e.contains("endpoint: https is not supported yet"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (kind, json, expected) in [
            (
                "io.l5d.zipkin",
                r#"{"sampleRate": 1.5}"#,
                "sampleRate: 1.5 is not between 0 and 1",
            ),
            ("io.l5d.zipkin", r#"{"port": 0}"#, "port: must not be 0"),
            ("io.l5d.zipkin", r#"{"port": 70000}"#, "port: "),
            (
                "io.l5d.zipkin",
                r#"{"host": " "}"#,
                "host: must not be empty",
            ),
            ("io.l5d.zipkin", r#"{"sampleRate": "0.1"}"#, "sampleRate: "),
            (
                "io.zipkin.http",
                r#"{"host": "a b"}"#,
                "host: \"a b\" is not host:port",
            ),
            ("io.zipkin.http", r#"{"host": "http://x:1/"}"#, "host: "),
            (
                "io.zipkin.http",
                r#"{"hostHeader": "a\nb"}"#,
                "hostHeader: ",
            ),
            (
                "io.zipkin.http",
                r#"{"initialSampleRate": -1}"#,
                "initialSampleRate: -1 is not between 0 and 1",
            ),
            (
                "io.l5d.tracelog",
                r#"{"level": "supergood"}"#,
                "level: \"supergood\" is not one of",
            ),
            (
                "io.l5d.tracelog",
                r#"{"sampleRate": 2}"#,
                "sampleRate: 2 is not between 0 and 1",
            ),
            (
                "io.opentelemetry.otlp",
                r#"{"endpoint": "otel:4318"}"#,
                "endpoint: ",
            ),
            (
                "io.opentelemetry.otlp",
                r#"{"endpoint": "ftp://otel/"}"#,
                "is not an http:// URL",
            ),
            (
                "io.opentelemetry.otlp",
                r#"{"serviceName": ""}"#,
                "serviceName: must not be empty",
            ),
        ] {
            let e = parse(kind, json).unwrap_err();
            let prefix = format!("telemetry[1] ({kind}): ");
            assert!(
                e.starts_with(&prefix) && e.contains(expected),
                "{json}: {e}"
            );
        }
    }
}
