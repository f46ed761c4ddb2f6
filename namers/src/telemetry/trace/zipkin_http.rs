//! `io.zipkin.http`: the kind of the linkerd-zipkin plugin, which posted
//! spans to Zipkin's HTTP collector. Here a batch is Zipkin's v2 JSON,
//! `POST http://{host}/api/v2/spans`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::HeaderValue;
use http::uri::{Authority, Uri};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::http_post::JsonPoster;
use super::sampling::SampleRate;
use super::span::{Span, SpanKind};

/// The telemeter's kind.
pub(super) const KIND: &str = "io.zipkin.http";

/// `{kind: io.zipkin.http, host, hostHeader, compressionEnabled,
/// initialSampleRate}` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_host_header")]
    host_header: String,
    /// Gzip each batch (the plugin's default).
    #[serde(default = "default_compression")]
    compression_enabled: bool,
    #[serde(default = "default_sample_rate")]
    initial_sample_rate: f64,
}

fn default_host() -> String {
    "localhost:9411".into()
}

fn default_compression() -> bool {
    true
}

fn default_host_header() -> String {
    "zipkin".into()
}

fn default_sample_rate() -> f64 {
    0.001
}

/// A checked `io.zipkin.http` telemeter.
#[derive(Clone, Debug, PartialEq)]
pub struct ZipkinHttpConfig {
    /// Where the collector is (`host` is `host:port`, default
    /// `localhost:9411`).
    pub uri: Uri,
    /// The `Host` header sent (default `zipkin`, as the plugin sent).
    pub host_header: HeaderValue,
    /// The share of traces recorded (`initialSampleRate`, default 0.001).
    pub sample_rate: SampleRate,
    /// Batches are gzipped (`compressionEnabled`, default true).
    pub gzip: bool,
}

impl ZipkinHttpConfig {
    /// Reads and checks the telemeter's keys; `at` names the entry.
    pub(super) fn from_params(params: &Map<String, Value>, at: &str) -> Result<Self, String> {
        let p: Params = serde_path_to_error::deserialize(Value::Object(params.clone()))
            .map_err(|e| format!("{at} ({KIND}): {e}"))?;
        let authority: Authority = p
            .host
            .parse()
            .ok()
            .filter(|a: &Authority| !a.host().is_empty() && !p.host.contains('@'))
            .ok_or_else(|| {
                format!(
                    "{at} ({KIND}): host: {:?} is not host:port (such as localhost:9411)",
                    p.host
                )
            })?;
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query("/api/v2/spans")
            .build()
            .map_err(|e| format!("{at} ({KIND}): host: {e}"))?;
        let host_header = HeaderValue::from_str(&p.host_header)
            .ok()
            .filter(|_| !p.host_header.is_empty())
            .ok_or_else(|| {
                format!(
                    "{at} ({KIND}): hostHeader: {:?} cannot be a Host header",
                    p.host_header
                )
            })?;
        let sample_rate = SampleRate::new(p.initial_sample_rate)
            .map_err(|why| format!("{at} ({KIND}): initialSampleRate: {why}"))?;
        Ok(ZipkinHttpConfig {
            uri,
            host_header,
            sample_rate,
            gzip: p.compression_enabled,
        })
    }
}

/// Posts batches to one Zipkin collector.
pub(super) struct ZipkinHttpExporter {
    poster: JsonPoster,
}

impl ZipkinHttpExporter {
    pub(super) fn new(config: &ZipkinHttpConfig) -> ZipkinHttpExporter {
        ZipkinHttpExporter {
            poster: JsonPoster::new(config.uri.clone(), Some(config.host_header.clone()))
                .gzipped(config.gzip),
        }
    }

    pub(super) fn target(&self) -> String {
        self.poster.target()
    }

    pub(super) async fn export(&mut self, spans: &[Arc<Span>]) -> Result<(), String> {
        let batch: Vec<V2Span<'_>> = spans.iter().map(|s| V2Span::of(s)).collect();
        let body = serde_json::to_vec(&batch).map_err(|e| e.to_string())?;
        self.poster.post(body).await
    }
}

/// One span in Zipkin's v2 model, written straight from the span (no
/// JSON tree in between: a traced request's spans are many).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Span<'a> {
    trace_id: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    kind: &'static str,
    name: &'a str,
    timestamp: i64,
    duration: i64,
    local_endpoint: V2Endpoint<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_endpoint: Option<V2Endpoint<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    annotations: Vec<V2Annotation<'a>>,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    tags: Tags<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    debug: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    service_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4: Option<std::net::Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6: Option<std::net::Ipv6Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

impl<'a> V2Endpoint<'a> {
    fn of(addr: Option<SocketAddr>, service_name: Option<&'a str>) -> V2Endpoint<'a> {
        let (mut ipv4, mut ipv6) = (None, None);
        if let Some(addr) = addr {
            match addr.ip().to_canonical() {
                IpAddr::V4(ip) => ipv4 = Some(ip),
                IpAddr::V6(ip) => ipv6 = Some(ip),
            }
        }
        V2Endpoint {
            service_name,
            ipv4,
            ipv6,
            port: addr.map(|a| a.port()),
        }
    }
}

#[derive(Serialize)]
struct V2Annotation<'a> {
    timestamp: i64,
    value: &'a str,
}

/// The tags as one JSON object.
struct Tags<'a>(&'a [(std::borrow::Cow<'static, str>, String)]);

impl Tags<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Tags<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (&**k, v)))
    }
}

impl<'a> V2Span<'a> {
    fn of(span: &'a Span) -> V2Span<'a> {
        let context = &span.context;
        let annotations = if span.events.is_empty() {
            Vec::new()
        } else {
            span.timed_annotations()
                .into_iter()
                .skip(2) // v2 has kind, timestamp and duration for cs/cr and sr/ss.
                .map(|a| V2Annotation {
                    timestamp: a.micros,
                    value: a.value,
                })
                .collect()
        };
        V2Span {
            trace_id: context.trace_id.to_string(),
            id: context.span_id.to_string(),
            parent_id: context.parent_id.map(|p| p.to_string()),
            kind: match span.kind {
                SpanKind::Server => "SERVER",
                SpanKind::Client => "CLIENT",
            },
            name: &span.name,
            timestamp: span.start_micros(),
            duration: span.duration_micros(),
            local_endpoint: V2Endpoint::of(span.local_endpoint, Some(&span.local_service)),
            remote_endpoint: span.remote_endpoint.map(|a| V2Endpoint::of(Some(a), None)),
            annotations,
            tags: Tags(&span.tags),
            debug: context.debug,
        }
    }
}

/// One span in Zipkin's v2 model, as a JSON value (tests).
#[cfg(test)]
pub(super) fn v2_json(span: &Span) -> Value {
    serde_json::to_value(V2Span::of(span)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::span::tests::client_span;
    use crate::telemetry::trace::test_collector::HttpCollector;
    use crate::telemetry::trace::{ExportOptions, Tracer, TracerConfig};
    use serde_json::json;

    #[test]
    fn a_span_in_zipkins_v2_json() {
        let json = v2_json(&client_span());
        assert_eq!(
            json,
            json!({
                "traceId": "0000000000000102000000000000abcd",
                "id": "0000000000000022",
                "parentId": "0000000000000011",
                "kind": "CLIENT",
                "name": "GET /svc/web",
                "timestamp": 1_609_459_200_000_001_i64,
                "duration": 1500,
                "localEndpoint": {"ipv4": "10.0.0.1", "port": 4140, "serviceName": "#/io.l5d.fs/web"},
                "remoteEndpoint": {"ipv6": "2001:db8::1", "port": 8080},
                "annotations": [{"timestamp": 1_609_459_200_000_701_i64, "value": "l5d.retryable"}],
                "tags": {"http.method": "GET", "http.status_code": "503", "error": "upstream said 503"},
                "debug": true
            })
        );
        let mut root = client_span();
        root.context.parent_id = None;
        root.context.debug = false;
        root.context.trace_id = crate::telemetry::trace::TraceId::new(0xabcd).unwrap();
        root.kind = SpanKind::Server;
        root.remote_endpoint = None;
        let json = v2_json(&root);
        assert_eq!(json["traceId"], "000000000000abcd");
        assert_eq!(json["kind"], "SERVER");
        for absent in ["parentId", "remoteEndpoint", "debug"] {
            assert!(json.get(absent).is_none(), "{absent}: {json}");
        }
    }

    #[tokio::test]
    async fn batches_are_posted_to_the_v2_api() {
        let collector = HttpCollector::start(200).await;
        let config = TracerConfig::ZipkinHttp(ZipkinHttpConfig {
            uri: format!("http://{}/api/v2/spans", collector.addr)
                .parse()
                .unwrap(),
            host_header: HeaderValue::from_static("zipkin"),
            sample_rate: SampleRate::NEVER,
            gzip: true,
        });
        let tracer = Tracer::with_options(&[config], ExportOptions::default());
        // Sampled by the context, whatever the rate.
        tracer.record(client_span());
        let mut second = client_span();
        second.name = "second".into();
        tracer.record(second);
        tracer.flush().await;
        let posts = collector.posts();
        assert_eq!(posts.len(), 1, "one batch");
        let post = &posts[0];
        assert_eq!(post.path, "/api/v2/spans");
        assert_eq!(post.host.as_deref(), Some("zipkin"));
        assert_eq!(post.content_type.as_deref(), Some("application/json"));
        assert_eq!(post.content_encoding.as_deref(), Some("gzip"));
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&post.body[..]), &mut json)
            .unwrap();
        let spans: Value = serde_json::from_slice(&json).unwrap();
        let spans = spans.as_array().unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0]["traceId"], "0000000000000102000000000000abcd");
        assert_eq!(spans[0]["localEndpoint"]["serviceName"], "#/io.l5d.fs/web");
        assert_eq!(spans[1]["name"], "second");
        let figures = tracer.figures_of(KIND);
        assert_eq!((figures.sent, figures.failed), (2, 0));
    }

    #[tokio::test]
    async fn an_error_answer_is_a_failure() {
        let collector = HttpCollector::start(503).await;
        let config = TracerConfig::ZipkinHttp(ZipkinHttpConfig {
            uri: format!("http://{}/api/v2/spans", collector.addr)
                .parse()
                .unwrap(),
            host_header: HeaderValue::from_static("zipkin"),
            sample_rate: SampleRate::ALWAYS,
            gzip: false,
        });
        let tracer = Tracer::with_options(&[config], ExportOptions::default());
        tracer.record(client_span());
        tracer.flush().await;
        assert_eq!(collector.posts().len(), 1);
        assert_eq!(collector.posts()[0].content_encoding, None, "not gzipped");
        let figures = tracer.figures_of(KIND);
        assert_eq!(
            (figures.sent, figures.failed, figures.batches_failed),
            (0, 1, 1)
        );
    }
}
