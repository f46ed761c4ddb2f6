//! `io.opentelemetry.otlp` (ours; Linkerd had no such kind): spans to an
//! OpenTelemetry collector over OTLP/HTTP with the JSON encoding, an
//! `ExportTraceServiceRequest` per batch. Ids are hex, as OTLP's JSON
//! asks (not base64), and 64-bit integers are strings.
//!
//! Each span's local service becomes its resource's `service.name`, so a
//! router's server spans and each client's spans show as services of
//! their own, as in Zipkin; with `serviceName` every span is that one
//! service and keeps its local service as the attribute
//! `switchboard.local_service`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::uri::Uri;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::http_post::JsonPoster;
use super::sampling::SampleRate;
use super::span::{Span, SpanKind, nanos_since_epoch};

/// The telemeter's kind.
pub(super) const KIND: &str = "io.opentelemetry.otlp";

/// The instrumentation scope spans are reported under.
const SCOPE: &str = "switchboard";

/// The attribute keeping a span's own service when `serviceName` is set.
const LOCAL_SERVICE: &str = "switchboard.local_service";

/// OTLP's `SpanKind` and `StatusCode` values.
const KIND_SERVER: u8 = 2;
const KIND_CLIENT: u8 = 3;
const STATUS_ERROR: u8 = 2;

/// `{kind: io.opentelemetry.otlp, endpoint, sampleRate, serviceName}` as
/// written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    #[serde(default = "default_endpoint")]
    endpoint: String,
    #[serde(default = "default_sample_rate")]
    sample_rate: f64,
    #[serde(default)]
    service_name: Option<String>,
}

fn default_endpoint() -> String {
    "http://localhost:4318/v1/traces".into()
}

/// As Linkerd's Zipkin telemeters: a router sees every request, and a
/// collector rarely wants them all.
fn default_sample_rate() -> f64 {
    0.001
}

/// A checked `io.opentelemetry.otlp` telemeter.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// The collector's traces URL (default
    /// `http://localhost:4318/v1/traces`); plain HTTP only.
    pub endpoint: Uri,
    /// The share of traces recorded (default 0.001).
    pub sample_rate: SampleRate,
    /// One `service.name` for every span, instead of each span's own.
    pub service_name: Option<String>,
}

impl OtlpConfig {
    /// Reads and checks the telemeter's keys; `at` names the entry.
    pub(super) fn from_params(params: &Map<String, Value>, at: &str) -> Result<Self, String> {
        let p: Params = serde_path_to_error::deserialize(Value::Object(params.clone()))
            .map_err(|e| format!("{at} ({KIND}): {e}"))?;
        let endpoint: Uri = p.endpoint.parse().map_err(|e| {
            format!(
                "{at} ({KIND}): endpoint: {:?} is not a URL: {e}",
                p.endpoint
            )
        })?;
        match endpoint.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{at} ({KIND}): endpoint: https is not supported yet; use an http:// URL"
                ));
            }
            _ => {
                return Err(format!(
                    "{at} ({KIND}): endpoint: {:?} is not an http:// URL",
                    p.endpoint
                ));
            }
        }
        if endpoint.host().is_none_or(str::is_empty) {
            return Err(format!(
                "{at} ({KIND}): endpoint: {:?} has no host",
                p.endpoint
            ));
        }
        let sample_rate = SampleRate::new(p.sample_rate)
            .map_err(|why| format!("{at} ({KIND}): sampleRate: {why}"))?;
        if p.service_name
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(format!("{at} ({KIND}): serviceName: must not be empty"));
        }
        Ok(OtlpConfig {
            endpoint,
            sample_rate,
            service_name: p.service_name,
        })
    }
}

/// Posts batches to one OTLP collector.
pub(super) struct OtlpExporter {
    poster: JsonPoster,
    service_name: Option<String>,
}

impl OtlpExporter {
    pub(super) fn new(config: &OtlpConfig) -> OtlpExporter {
        OtlpExporter {
            poster: JsonPoster::new(config.endpoint.clone(), None),
            service_name: config.service_name.clone(),
        }
    }

    pub(super) fn target(&self) -> String {
        self.poster.target()
    }

    pub(super) async fn export(&mut self, spans: &[Arc<Span>]) -> Result<(), String> {
        let request = ExportRequest::of(spans, self.service_name.as_deref());
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        self.poster.post(body).await
    }
}

// The OTLP/JSON shapes, written straight from the spans (no JSON tree in
// between: a traced request's spans are many).

/// An `ExportTraceServiceRequest`: one resource per service name, in name
/// order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: [Attribute<'a>; 1],
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<OtlpSpan<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<Attribute<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events: Vec<Event<'a>>,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Attribute<'a> {
    key: Cow<'a, str>,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    String(Cow<'a, str>),
    /// OTLP/JSON writes 64-bit integers as strings.
    #[serde(rename = "intValue")]
    Int(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    time_unix_nano: String,
    name: &'a str,
}

/// Unset (`{}`) unless the span failed: OTLP keeps "ok" for a decision
/// made by the application, not by a proxy.
#[derive(Serialize)]
struct Status<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

fn attribute<'a>(key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Attribute<'a> {
    Attribute {
        key: key.into(),
        value: AnyValue::String(value.into()),
    }
}

impl<'a> ExportRequest<'a> {
    fn of(spans: &'a [Arc<Span>], service_name: Option<&'a str>) -> ExportRequest<'a> {
        let mut by_service: BTreeMap<&'a str, Vec<OtlpSpan<'a>>> = BTreeMap::new();
        for span in spans {
            let service = service_name.unwrap_or(&span.local_service);
            let mut otlp = OtlpSpan::of(span);
            if service_name.is_some() {
                otlp.attributes
                    .push(attribute(LOCAL_SERVICE, span.local_service.as_str()));
            }
            by_service.entry(service).or_default().push(otlp);
        }
        let resource_spans = by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Resource {
                    attributes: [attribute("service.name", service)],
                },
                scope_spans: [ScopeSpans {
                    scope: Scope {
                        name: SCOPE,
                        version: env!("CARGO_PKG_VERSION"),
                    },
                    spans,
                }],
            })
            .collect();
        ExportRequest { resource_spans }
    }
}

impl<'a> OtlpSpan<'a> {
    fn of(span: &'a Span) -> OtlpSpan<'a> {
        let context = &span.context;
        let start = nanos_since_epoch(span.start);
        let end = start.saturating_add(span.duration.as_nanos());
        let mut attributes: Vec<Attribute<'a>> = span
            .tags
            .iter()
            .map(|(k, v)| attribute(&**k, v.as_str()))
            .collect();
        endpoint_attributes(&mut attributes, "network.local", span.local_endpoint);
        endpoint_attributes(&mut attributes, "network.peer", span.remote_endpoint);
        let error = span
            .tags
            .iter()
            .find(|(k, _)| k == super::span::tags::ERROR)
            .map(|(_, why)| why.as_str());
        OtlpSpan {
            // OTLP's trace ids are always 32 digits.
            trace_id: format!("{:032x}", context.trace_id.get()),
            span_id: context.span_id.to_string(),
            parent_span_id: context.parent_id.map(|p| p.to_string()),
            name: &span.name,
            kind: match span.kind {
                SpanKind::Server => KIND_SERVER,
                SpanKind::Client => KIND_CLIENT,
            },
            start_time_unix_nano: start.to_string(),
            end_time_unix_nano: end.to_string(),
            attributes,
            events: span
                .events
                .iter()
                .map(|e| Event {
                    time_unix_nano: nanos_since_epoch(e.at).to_string(),
                    name: &e.value,
                })
                .collect(),
            status: Status {
                code: error.map(|_| STATUS_ERROR),
                message: error,
            },
        }
    }
}

fn endpoint_attributes(
    attributes: &mut Vec<Attribute<'_>>,
    prefix: &str,
    addr: Option<SocketAddr>,
) {
    if let Some(addr) = addr {
        attributes.push(attribute(
            format!("{prefix}.address"),
            addr.ip().to_canonical().to_string(),
        ));
        attributes.push(Attribute {
            key: format!("{prefix}.port").into(),
            value: AnyValue::Int(addr.port().to_string()),
        });
    }
}

/// The request for `spans` as a JSON value (tests).
#[cfg(test)]
pub(super) fn export_request(spans: &[Arc<Span>], service_name: Option<&str>) -> Value {
    serde_json::to_value(ExportRequest::of(spans, service_name)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::span::tests::client_span;
    use crate::telemetry::trace::test_collector::HttpCollector;
    use crate::telemetry::trace::{ExportOptions, Tracer, TracerConfig};
    use serde_json::json;

    fn attributes(span: &Value) -> Vec<(String, Value)> {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
            .collect()
    }

    #[test]
    fn a_span_in_otlp_json() {
        let request = export_request(&[Arc::new(client_span())], None);
        let resource = &request["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"],
            json!([{"key": "service.name", "value": {"stringValue": "#/io.l5d.fs/web"}}])
        );
        assert_eq!(resource["scopeSpans"][0]["scope"]["name"], "switchboard");
        let span = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "0000000000000102000000000000abcd");
        assert_eq!(span["spanId"], "0000000000000022");
        assert_eq!(span["parentSpanId"], "0000000000000011");
        assert_eq!(span["name"], "GET /svc/web");
        assert_eq!(span["kind"], 3);
        assert_eq!(span["startTimeUnixNano"], "1609459200000001000");
        assert_eq!(span["endTimeUnixNano"], "1609459200001501000");
        assert_eq!(
            span["events"],
            json!([{"timeUnixNano": "1609459200000701000", "name": "l5d.retryable"}])
        );
        assert_eq!(
            span["status"],
            json!({"code": 2, "message": "upstream said 503"})
        );
        assert_eq!(
            attributes(span),
            [
                ("http.method".to_string(), json!({"stringValue": "GET"})),
                (
                    "http.status_code".to_string(),
                    json!({"stringValue": "503"})
                ),
                (
                    "error".to_string(),
                    json!({"stringValue": "upstream said 503"})
                ),
                (
                    "network.local.address".to_string(),
                    json!({"stringValue": "10.0.0.1"})
                ),
                (
                    "network.local.port".to_string(),
                    json!({"intValue": "4140"})
                ),
                (
                    "network.peer.address".to_string(),
                    json!({"stringValue": "2001:db8::1"})
                ),
                ("network.peer.port".to_string(), json!({"intValue": "8080"})),
            ]
        );
    }

    #[test]
    fn spans_are_grouped_by_service_unless_one_is_set() {
        let mut server = client_span();
        server.kind = SpanKind::Server;
        server.local_service = "web-router".into();
        server.context.parent_id = None;
        server.tags.clear();
        let spans = [Arc::new(client_span()), Arc::new(server)];
        let request = export_request(&spans, None);
        let services: Vec<&Value> = request["resourceSpans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["resource"]["attributes"][0]["value"]["stringValue"])
            .collect();
        assert_eq!(services, ["#/io.l5d.fs/web", "web-router"]);
        let server = &request["resourceSpans"][1]["scopeSpans"][0]["spans"][0];
        assert_eq!(server["kind"], 2);
        assert!(server.get("parentSpanId").is_none());
        assert_eq!(server["status"], json!({}));

        let request = export_request(&spans, Some("edge"));
        assert_eq!(request["resourceSpans"].as_array().unwrap().len(), 1);
        let spans = &request["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans.as_array().unwrap().len(), 2);
        let kept = attributes(&spans[1]);
        assert!(kept.contains(&(
            LOCAL_SERVICE.to_string(),
            json!({"stringValue": "web-router"})
        )));
    }

    #[test]
    fn a_64_bit_trace_id_is_padded_to_32_digits() {
        let mut span = client_span();
        span.context.trace_id = crate::telemetry::trace::TraceId::new(0xabc).unwrap();
        let json = serde_json::to_value(OtlpSpan::of(&span)).unwrap();
        assert_eq!(json["traceId"], "00000000000000000000000000000abc");
    }

    #[tokio::test]
    async fn batches_are_posted_as_json() {
        let collector = HttpCollector::start(200).await;
        let config = TracerConfig::Otlp(OtlpConfig {
            endpoint: format!("http://{}/v1/traces", collector.addr)
                .parse()
                .unwrap(),
            sample_rate: SampleRate::ALWAYS,
            service_name: None,
        });
        let tracer = Tracer::with_options(&[config], ExportOptions::default());
        let mut span = client_span();
        span.context.sampled = None;
        span.context.debug = false;
        tracer.record(span);
        tracer.flush().await;
        let posts = collector.posts();
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].path, "/v1/traces");
        assert_eq!(posts[0].content_type.as_deref(), Some("application/json"));
        let body: Value = serde_json::from_slice(&posts[0].body).unwrap();
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["spanId"], "0000000000000022");
        assert_eq!(span["kind"], 3);
        let figures = tracer.figures_of(KIND);
        assert_eq!((figures.queued, figures.sent), (1, 1));
    }
}
