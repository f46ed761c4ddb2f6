//! Trace headers: reading the context a request arrives with and writing
//! the one it leaves with, in Linkerd's form (`l5d-ctx-trace`,
//! `l5d-sample`) or Zipkin's B3 form.
//!
//! Reading never fails the request: a malformed header is an `Err` that
//! says why, and the caller starts a new trace instead, as Linkerd did.

mod b3;
mod l5d;

use http::HeaderMap;
use http::header::HeaderName;
use rand::Rng;

pub use b3::{read_b3, write_b3};
pub use l5d::{
    L5D_CTX_TRACE, L5D_REQID, L5D_SAMPLE, decode_l5d_ctx_trace, encode_l5d_ctx_trace,
    read_l5d_ctx_trace, read_l5d_sample, write_l5d_ctx_trace,
};

use super::context::TraceContext;
use super::sampling::SampleRate;

/// What a request's headers say about its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing: the request starts a trace.
    Absent,
    /// The caller's span: the request continues its trace.
    Context(TraceContext),
    /// A decision without ids (B3's `b3: 0`, or `X-B3-Sampled` alone):
    /// the request starts a trace, recorded or not as it says.
    Decision {
        /// Whether to record the trace, if said.
        sampled: Option<bool>,
        /// Whether to record it whatever the rates.
        debug: bool,
    },
}

impl Incoming {
    /// The context of the server span for this request: a child of the
    /// caller's span (Linkerd gave each hop spans of its own), or a new
    /// trace.
    pub fn server_context(self, rng: &mut impl Rng) -> TraceContext {
        match self {
            Incoming::Absent => TraceContext::root(rng),
            Incoming::Context(caller) => caller.child(rng),
            Incoming::Decision { sampled, debug } => TraceContext {
                sampled,
                debug,
                ..TraceContext::root(rng)
            },
        }
    }
}

/// Which headers carry the trace between routers and apps (a router's
/// `tracePropagator`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagator {
    /// Linkerd's `io.l5d.default`: `l5d-ctx-trace` (and `l5d-reqid` out),
    /// `l5d-sample` in.
    #[default]
    Linkerd,
    /// Linkerd's `io.l5d.zipkin`: the B3 headers, single or multi.
    B3,
}

impl Propagator {
    /// The trace of an incoming request.
    pub fn read(self, headers: &HeaderMap) -> Result<Incoming, String> {
        match self {
            Propagator::Linkerd => Ok(match read_l5d_ctx_trace(headers)? {
                Some(context) => Incoming::Context(context),
                None => Incoming::Absent,
            }),
            Propagator::B3 => read_b3(headers),
        }
    }

    /// The sample rate the request asks for (`l5d-sample`). Only
    /// Linkerd's form has one: B3 carries a decision in the context.
    pub fn sample_rate(self, headers: &HeaderMap) -> Option<SampleRate> {
        match self {
            Propagator::Linkerd => read_l5d_sample(headers),
            Propagator::B3 => None,
        }
    }

    /// Puts `context` on an outgoing request, replacing what was there.
    pub fn write(self, headers: &mut HeaderMap, context: &TraceContext) {
        match self {
            Propagator::Linkerd => write_l5d_ctx_trace(headers, context),
            Propagator::B3 => write_b3(headers, context),
        }
    }
}

/// Every header this module reads or writes as trace context, which a
/// router removes before writing its own (`l5d-reqid` is not one: it is
/// overwritten, never read).
pub const TRACE_HEADERS: [HeaderName; 8] = [
    L5D_CTX_TRACE,
    L5D_SAMPLE,
    b3::B3,
    b3::X_B3_TRACE_ID,
    b3::X_B3_SPAN_ID,
    b3::X_B3_PARENT_SPAN_ID,
    b3::X_B3_SAMPLED,
    b3::X_B3_FLAGS,
];

/// Removes every trace header from `headers`.
pub fn strip_trace_headers(headers: &mut HeaderMap) {
    for name in &TRACE_HEADERS {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::context::{SpanId, TraceId};
    use http::HeaderValue;
    use rand::{SeedableRng as _, rngs::StdRng};

    fn context() -> TraceContext {
        TraceContext {
            trace_id: TraceId::new(0xabc).unwrap(),
            span_id: SpanId::new(0x12).unwrap(),
            parent_id: Some(SpanId::new(0x34).unwrap()),
            sampled: Some(true),
            debug: false,
        }
    }

    #[test]
    fn each_propagator_reads_what_it_writes() {
        for propagator in [Propagator::Linkerd, Propagator::B3] {
            let mut headers = HeaderMap::new();
            propagator.write(&mut headers, &context());
            assert_eq!(
                propagator.read(&headers),
                Ok(Incoming::Context(context())),
                "{propagator:?}"
            );
        }
    }

    #[test]
    fn the_server_span_is_a_child_of_the_callers() {
        let mut rng = StdRng::seed_from_u64(5);
        let server = Incoming::Context(context()).server_context(&mut rng);
        assert_eq!(server.trace_id, context().trace_id);
        assert_eq!(server.parent_id, Some(context().span_id));
        assert_eq!(server.sampled, Some(true));
        let fresh = Incoming::Absent.server_context(&mut rng);
        assert_eq!((fresh.parent_id, fresh.sampled), (None, None));
        let decided = Incoming::Decision {
            sampled: Some(false),
            debug: false,
        }
        .server_context(&mut rng);
        assert_eq!((decided.parent_id, decided.sampled), (None, Some(false)));
    }

    #[test]
    fn only_linkerds_form_has_a_sample_rate() {
        let mut headers = HeaderMap::new();
        headers.insert(L5D_SAMPLE, HeaderValue::from_static("0.25"));
        assert_eq!(
            Propagator::Linkerd.sample_rate(&headers),
            SampleRate::new(0.25).ok()
        );
        assert_eq!(Propagator::B3.sample_rate(&headers), None);
    }

    #[test]
    fn stripping_removes_every_trace_header_and_nothing_else() {
        let mut headers = HeaderMap::new();
        Propagator::Linkerd.write(&mut headers, &context());
        Propagator::B3.write(&mut headers, &context());
        headers.insert(L5D_SAMPLE, HeaderValue::from_static("1"));
        headers.insert("b3", HeaderValue::from_static("0"));
        headers.insert("x-b3-flags", HeaderValue::from_static("1"));
        headers.insert("host", HeaderValue::from_static("web"));
        strip_trace_headers(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "l5d-reqid"]);
    }
}
