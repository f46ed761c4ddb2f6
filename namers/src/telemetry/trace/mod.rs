//! Distributed tracing as Linkerd 1.x did it, and a little more: the
//! trace context of a request ([`TraceContext`]), the headers that carry
//! it ([`propagation`]), which traces are recorded ([`SampleRate`],
//! [`Tracer::decide`]), the spans a router records ([`Span`]) and the
//! telemeters that send them somewhere ([`TracerConfig`]):
//!
//! - `io.l5d.zipkin`: Zipkin v1 Thrift to a scribe collector, as Linkerd;
//! - `io.zipkin.http`: Zipkin v2 JSON over HTTP (the linkerd-zipkin
//!   plugin's kind);
//! - `io.l5d.tracelog`: a log line per span, as Linkerd;
//! - `io.opentelemetry.otlp`: OTLP/HTTP JSON, ours;
//! - `io.l5d.recentRequests`: the last sampled requests, in memory, for
//!   the admin server's `/requests`.
//!
//! A request handler reads the caller's context, makes its server span a
//! child of it, decides, makes a child per attempt, writes that onto the
//! attempt, and hands finished spans to [`Tracer::record`], which queues
//! them for a task per exporter and never waits. The figures of each
//! exporter are listed under `telemetry/<kind>/` ([`Tracer`] is a metrics
//! [`Source`](crate::telemetry::Source)).

mod config;
mod context;
mod export;
mod http_post;
mod otlp;
pub mod propagation;
mod recent;
mod sampling;
mod span;
mod thrift;
mod tracelog;
mod tracer;
mod zipkin_http;
mod zipkin_scribe;

#[cfg(test)]
mod test_collector;

pub use config::{KINDS, TracerConfig};
pub use context::{SpanId, TraceContext, TraceId};
pub use export::ExportOptions;
pub use otlp::OtlpConfig;
pub use propagation::{Incoming, Propagator, strip_trace_headers};
pub use recent::{
    RecentRequest, RecentRequests, RecentRequestsConfig, address_text, html as recent_requests_html,
};
pub use sampling::SampleRate;
pub use span::{Event, Span, SpanKind, TimedAnnotation, tags};
pub use tracelog::TracelogConfig;
pub use tracer::Tracer;
pub use zipkin_http::ZipkinHttpConfig;
pub use zipkin_scribe::ZipkinScribeConfig;
