//! A finished span: what the router hands the tracer for each request it
//! served and each attempt it sent.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::context::TraceContext;

/// Tag names in Linkerd's and Finagle's spelling, so that dashboards and
/// queries written for Linkerd's traces find them.
pub mod tags {
    /// The request's method (`GET`).
    pub const HTTP_METHOD: &str = "http.method";
    /// The request's URI.
    pub const HTTP_URI: &str = "http.uri";
    /// The response's status code.
    pub const HTTP_STATUS_CODE: &str = "http.status_code";
    /// The logical name the router identified (`/svc/web`).
    pub const NAMER_PATH: &str = "namer.path";
    /// The bound id a client sent to (`/#/io.l5d.fs/web`).
    pub const DST_ID: &str = "dst.id";
    /// The residual path after binding.
    pub const DST_PATH: &str = "dst.path";
    /// Why the request failed; a span with it is an error span.
    pub const ERROR: &str = "error";
}

/// Which side of a request a span stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// The router answering a request (Zipkin's `sr`/`ss`).
    Server,
    /// The router sending an attempt (Zipkin's `cs`/`cr`).
    Client,
}

/// Something that happened at a moment during a span (a retry, a
/// requeue), for the annotations Zipkin shows on its timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: SystemTime,
    /// What (`l5d.retryable`).
    pub value: String,
}

/// A span, finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// What was done: for Linkerd, the method and the path or name.
    pub name: String,
    /// Server or client.
    pub kind: SpanKind,
    /// Its ids and the trace's decision.
    pub context: TraceContext,
    /// Who did it: the router's label, or a client's bound id.
    pub local_service: String,
    /// The address the router served or sent from, when known.
    pub local_endpoint: Option<SocketAddr>,
    /// The peer: the caller of a server span, the endpoint of a client
    /// span.
    pub remote_endpoint: Option<SocketAddr>,
    /// When it started.
    pub start: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Key/value facts ([`tags`]).
    pub tags: Vec<(Cow<'static, str>, String)>,
    /// Timed events.
    pub events: Vec<Event>,
}

/// A timed annotation as Zipkin v1 has them: the span's start and end
/// named for its kind, then its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedAnnotation<'a> {
    /// Microseconds since the epoch.
    pub micros: i64,
    /// `cs`, `cr`, `sr`, `ss` or an event's value.
    pub value: &'a str,
}

impl Span {
    /// A span of `kind` starting now, to be filled in and timed.
    pub fn new(
        kind: SpanKind,
        name: impl Into<String>,
        context: TraceContext,
        local_service: impl Into<String>,
    ) -> Span {
        Span {
            name: name.into(),
            kind,
            context,
            local_service: local_service.into(),
            local_endpoint: None,
            remote_endpoint: None,
            start: SystemTime::now(),
            duration: Duration::ZERO,
            tags: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Adds the tag `key` = `value`.
    pub fn tag(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.tags.push((key.into(), value.into()));
    }

    /// Records the event `value` as happening now.
    pub fn event(&mut self, value: impl Into<String>) {
        self.events.push(Event {
            at: SystemTime::now(),
            value: value.into(),
        });
    }

    /// Whether the span records a failure (it has an [`tags::ERROR`] tag).
    pub fn is_error(&self) -> bool {
        self.tags.iter().any(|(key, _)| key == tags::ERROR)
    }

    /// The start in microseconds since the epoch (0 before it).
    pub fn start_micros(&self) -> i64 {
        micros_since_epoch(self.start)
    }

    /// The duration in microseconds, at least 1: Zipkin reads 0 as
    /// "unknown".
    pub fn duration_micros(&self) -> i64 {
        i64::try_from(self.duration.as_micros())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// Zipkin v1's timed annotations: `sr`/`ss` for a server span,
    /// `cs`/`cr` for a client span, at its start and end; then the
    /// events.
    pub fn timed_annotations(&self) -> Vec<TimedAnnotation<'_>> {
        let (begin, end) = match self.kind {
            SpanKind::Server => ("sr", "ss"),
            SpanKind::Client => ("cs", "cr"),
        };
        let start = self.start_micros();
        let mut annotations = vec![
            TimedAnnotation {
                micros: start,
                value: begin,
            },
            TimedAnnotation {
                micros: start.saturating_add(self.duration_micros()),
                value: end,
            },
        ];
        annotations.extend(self.events.iter().map(|e| TimedAnnotation {
            micros: micros_since_epoch(e.at),
            value: &e.value,
        }));
        annotations
    }
}

/// Microseconds since the epoch; 0 for a time before it.
pub(super) fn micros_since_epoch(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Nanoseconds since the epoch; 0 for a time before it.
pub(super) fn nanos_since_epoch(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::telemetry::trace::context::{SpanId, TraceId};

    /// A client span with every field set, the same in every exporter's
    /// tests: 2021-01-01T00:00:00Z plus 1 µs, 1.5 ms long.
    pub(crate) fn client_span() -> Span {
        let start = UNIX_EPOCH + Duration::from_micros(1_609_459_200_000_001);
        let mut span = Span {
            name: "GET /svc/web".into(),
            kind: SpanKind::Client,
            context: TraceContext {
                trace_id: TraceId::new((0x0102_u128 << 64) | 0xabcd).unwrap(),
                span_id: SpanId::new(0x22).unwrap(),
                parent_id: SpanId::new(0x11),
                sampled: Some(true),
                debug: true,
            },
            local_service: "#/io.l5d.fs/web".into(),
            local_endpoint: Some("10.0.0.1:4140".parse().unwrap()),
            remote_endpoint: Some("[2001:db8::1]:8080".parse().unwrap()),
            start,
            duration: Duration::from_micros(1500),
            tags: Vec::new(),
            events: vec![Event {
                at: start + Duration::from_micros(700),
                value: "l5d.retryable".into(),
            }],
        };
        span.tag(tags::HTTP_METHOD, "GET");
        span.tag(tags::HTTP_STATUS_CODE, "503");
        span.tag("error", "upstream said 503".to_string());
        span
    }

    #[test]
    fn annotations_follow_the_kind() {
        let span = client_span();
        let annotations = span.timed_annotations();
        let values: Vec<(i64, &str)> = annotations.iter().map(|a| (a.micros, a.value)).collect();
        assert_eq!(
            values,
            [
                (1_609_459_200_000_001, "cs"),
                (1_609_459_200_001_501, "cr"),
                (1_609_459_200_000_701, "l5d.retryable")
            ]
        );
        let mut server = client_span();
        server.kind = SpanKind::Server;
        server.duration = Duration::ZERO;
        let values: Vec<&str> = server.timed_annotations().iter().map(|a| a.value).collect();
        assert_eq!(values[..2], ["sr", "ss"]);
        assert_eq!(server.duration_micros(), 1, "a zero duration is 1 µs");
        assert!(span.is_error());
    }

    #[test]
    fn times_before_the_epoch_are_zero() {
        let mut span = client_span();
        span.start = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(span.start_micros(), 0);
        assert_eq!(nanos_since_epoch(span.start), 0);
    }
}
