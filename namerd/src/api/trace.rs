//! A server span per API request, for the tracing telemeters of namerd's
//! `telemetry:` list (as Linkerd's namerd traced its interfaces). The
//! caller's trace is read from `l5d-ctx-trace` or, failing that, from B3
//! headers, so a span joins the trace of whoever asked. Watch streams
//! served by the lean connection path ([`crate::conn`]) are not traced:
//! they last as long as their watcher.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use namers::telemetry::trace::{Incoming, Propagator, Span, SpanKind, Tracer, tags};

/// What the tracing layer needs.
#[derive(Clone)]
pub(crate) struct ApiTracing {
    pub(crate) tracer: Arc<Tracer>,
    /// The API server's address, the spans' local endpoint.
    pub(crate) address: SocketAddr,
}

/// The name of namerd's spans' local service, as Linkerd's namerd.
const SERVICE: &str = "namerd";

/// Records a server span for the request when its trace is recorded.
pub(crate) async fn trace_requests(
    State(setup): State<ApiTracing>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let incoming = match Propagator::Linkerd.read(headers) {
        Ok(Incoming::Absent) | Err(_) => Propagator::B3.read(headers).unwrap_or(Incoming::Absent),
        Ok(found) => found,
    };
    let requested = Propagator::Linkerd.sample_rate(headers);
    let mut context = incoming.server_context(&mut rand::rng());
    setup.tracer.decide(&mut context, requested);
    if !setup.tracer.would_record(&context) {
        return next.run(request).await;
    }
    let name = format!("{} {}", request.method(), request.uri().path());
    let mut span = Span::new(SpanKind::Server, name, context, SERVICE);
    span.local_endpoint = Some(setup.address);
    span.tag(tags::HTTP_METHOD, request.method().as_str());
    span.tag(tags::HTTP_URI, request.uri().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    span.duration = started.elapsed();
    let status = response.status();
    span.tag(tags::HTTP_STATUS_CODE, status.as_u16().to_string());
    if status.is_server_error() {
        span.tag(tags::ERROR, status.to_string());
    }
    setup.tracer.record(span);
    response
}
