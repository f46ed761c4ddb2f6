//! A request's trace as the router keeps it: the server span of the
//! request it serves and a client span per attempt, in the headers of the
//! router's `tracePropagator`, recorded by the tracing telemeters
//! ([`namers::telemetry::trace`]).
//!
//! Without a tracing telemeter the router keeps no trace: the caller's
//! trace headers go to the endpoint as they came, as every other header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::HeaderMap;
use namers::telemetry::trace::{
    Incoming, Propagator, Span, SpanKind, TraceContext, Tracer, strip_trace_headers, tags,
};

/// What a router needs to trace its requests.
#[derive(Clone)]
pub(crate) struct Tracing {
    /// Records the spans.
    pub(crate) tracer: Arc<Tracer>,
    /// Reads and writes the trace headers.
    pub(crate) propagator: Propagator,
}

/// One request's trace, from its arrival to its answer.
pub(crate) struct RequestTrace {
    tracer: Arc<Tracer>,
    propagator: Propagator,
    server: TraceContext,
    /// The server span being filled in, and when it started; `None` when
    /// the trace is not recorded (its context still goes downstream).
    span: Option<(Span, Instant)>,
}

/// One attempt's client span, begun; its clock readings only when the
/// trace is recorded.
pub(crate) struct AttemptTrace {
    context: TraceContext,
    timing: Option<(SystemTime, Instant)>,
}

impl RequestTrace {
    /// Reads the caller's trace from `parts`, takes the trace headers
    /// off, and decides whether the trace is recorded. A malformed header
    /// starts a new trace, as in Linkerd.
    pub(crate) fn begin(
        setup: &Tracing,
        parts: &mut http::request::Parts,
        label: &str,
        local: SocketAddr,
        remote: Option<SocketAddr>,
    ) -> Box<RequestTrace> {
        let headers = &parts.headers;
        let incoming = setup.propagator.read(headers).unwrap_or_else(|why| {
            tracing::debug!(%why, "ignoring the request's trace headers");
            Incoming::Absent
        });
        let requested = setup.propagator.sample_rate(headers);
        strip_trace_headers(&mut parts.headers);
        let mut rng = rand::rng();
        let mut server = incoming.server_context(&mut rng);
        setup.tracer.decide(&mut server, requested);
        let span = setup.tracer.would_record(&server).then(|| {
            let mut span = Span::new(SpanKind::Server, span_name(parts), server, label);
            span.local_endpoint = Some(local);
            span.remote_endpoint = remote;
            span.tag(tags::HTTP_METHOD, parts.method.as_str());
            span.tag(tags::HTTP_URI, parts.uri.to_string());
            (span, Instant::now())
        });
        Box::new(RequestTrace {
            tracer: setup.tracer.clone(),
            propagator: setup.propagator,
            server,
            span,
        })
    }

    /// Names the destination in the server span once it is known.
    pub(crate) fn destination(&mut self, service: &dtab::Path) {
        if let Some((span, _)) = &mut self.span {
            span.tag(tags::NAMER_PATH, service.show());
        }
    }

    /// Starts an attempt: a child of the server span, written into the
    /// attempt's headers.
    pub(crate) fn attempt(&self, headers: &mut HeaderMap) -> AttemptTrace {
        let context = self.server.child(&mut rand::rng());
        self.propagator.write(headers, &context);
        AttemptTrace {
            context,
            timing: self
                .span
                .is_some()
                .then(|| (SystemTime::now(), Instant::now())),
        }
    }

    /// Records an attempt's client span: sent to `endpoint` of the bound
    /// id `client` (with `residual` left of the name), answered with
    /// `status` or failed with an error.
    pub(crate) fn attempt_ended(
        &self,
        attempt: AttemptTrace,
        endpoint: SocketAddr,
        client: &dtab::Path,
        residual: &dtab::Path,
        answer: Result<u16, String>,
    ) {
        let (Some((server_span, _)), Some((start, started))) = (&self.span, attempt.timing) else {
            return;
        };
        let mut span = Span::new(
            SpanKind::Client,
            server_span.name.clone(),
            attempt.context,
            client.show(),
        );
        span.start = start;
        span.duration = started.elapsed();
        span.remote_endpoint = Some(endpoint);
        span.tag(tags::DST_ID, client.show());
        if !residual.is_empty() {
            span.tag(tags::DST_PATH, residual.show());
        }
        match answer {
            Ok(status) => span.tag(tags::HTTP_STATUS_CODE, status.to_string()),
            Err(error) => span.tag(tags::ERROR, error),
        }
        self.tracer.record(span);
    }

    /// Records the server span with the answer's status.
    pub(crate) fn end(self, status: u16, error: Option<&str>) {
        let Some((mut span, started)) = self.span else {
            return;
        };
        span.duration = started.elapsed();
        span.tag(tags::HTTP_STATUS_CODE, status.to_string());
        if let Some(error) = error {
            span.tag(tags::ERROR, error.to_string());
        }
        self.tracer.record(span);
    }
}

/// A span's name: the method and path, as Linkerd's spans were named.
fn span_name(parts: &http::request::Parts) -> String {
    format!("{} {}", parts.method, parts.uri.path())
}
