//! Which trace a request belongs to and where in it: the ids and flags
//! that travel in `l5d-ctx-trace` and B3 headers.

use std::fmt;

use rand::Rng;

/// A trace's id: 128 bits, of which a 64-bit id uses the low half only
/// (Finagle's ids, and Linkerd's, are 64-bit). Never zero.
///
/// Kept as two halves rather than a `u128`: a `u128` would align every
/// request future that holds a trace context to 16 bytes, and the
/// allocator serves such large blocks by a slower path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId {
    high: u64,
    low: u64,
}

impl TraceId {
    /// The id `value`; `None` for zero, which no tracer accepts.
    pub fn new(value: u128) -> Option<TraceId> {
        (value != 0).then_some(TraceId::from_u128(value))
    }

    fn from_u128(value: u128) -> TraceId {
        TraceId {
            high: (value >> 64) as u64,
            low: value as u64,
        }
    }

    /// The whole id.
    pub fn get(self) -> u128 {
        (u128::from(self.high) << 64) | u128::from(self.low)
    }

    /// The high 64 bits: zero for a 64-bit id.
    pub fn high(self) -> u64 {
        self.high
    }

    /// The low 64 bits: the whole of a 64-bit id.
    pub fn low(self) -> u64 {
        self.low
    }

    /// Whether the id needs 128 bits.
    pub fn is_128_bit(self) -> bool {
        self.high() != 0
    }
}

/// Lower-case hex: 16 digits for a 64-bit id, 32 for a 128-bit one, as
/// B3 headers and Zipkin write it.
impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_128_bit() {
            write!(f, "{:032x}", self.get())
        } else {
            write!(f, "{:016x}", self.low())
        }
    }
}

/// A span's id. Never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl SpanId {
    /// The id `value`; `None` for zero.
    pub fn new(value: u64) -> Option<SpanId> {
        (value != 0).then_some(SpanId(value))
    }

    /// The id.
    pub fn get(self) -> u64 {
        self.0
    }

    /// A random id.
    pub fn random(rng: &mut impl Rng) -> SpanId {
        SpanId(rng.random_range(1..=u64::MAX))
    }
}

/// Lower-case hex, 16 digits.
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One span's place in a trace, and whether the trace is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace every span of a request tree shares.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// The span that caused this one; `None` for a trace's first span.
    pub parent_id: Option<SpanId>,
    /// Whether the trace is recorded: `None` until someone decides
    /// ([`super::Tracer::decide`]), and then passed on to every child.
    pub sampled: Option<bool>,
    /// Record this trace whatever the sample rates say (B3's and
    /// Finagle's debug flag).
    pub debug: bool,
}

impl TraceContext {
    /// A new trace with a 64-bit id (Finagle's default, which every
    /// Linkerd reads), nothing decided yet.
    pub fn root(rng: &mut impl Rng) -> TraceContext {
        let low = rng.random_range(1..=u64::MAX);
        TraceContext::root_with(TraceId { high: 0, low }, rng)
    }

    /// A new trace with a 128-bit id (for collectors and apps that use
    /// them; Linkerd before 1.4 cannot read a 128-bit `l5d-ctx-trace`).
    pub fn root_128(rng: &mut impl Rng) -> TraceContext {
        let high = rng.random_range(1..=u64::MAX);
        let low: u64 = rng.random();
        TraceContext::root_with(TraceId { high, low }, rng)
    }

    fn root_with(trace_id: TraceId, rng: &mut impl Rng) -> TraceContext {
        TraceContext {
            trace_id,
            span_id: SpanId::random(rng),
            parent_id: None,
            sampled: None,
            debug: false,
        }
    }

    /// A span caused by this one: a new span id, this span as its parent,
    /// the same trace and the same decision.
    pub fn child(&self, rng: &mut impl Rng) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: SpanId::random(rng),
            parent_id: Some(self.span_id),
            sampled: self.sampled,
            debug: self.debug,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    #[test]
    fn ids_are_never_zero() {
        assert_eq!(TraceId::new(0), None);
        assert_eq!(SpanId::new(0), None);
        assert_eq!(SpanId::new(7).map(SpanId::get), Some(7));
    }

    #[test]
    fn hex_is_16_digits_unless_the_id_needs_128_bits() {
        let short = TraceId::new(0xab).unwrap();
        assert_eq!(short.to_string(), "00000000000000ab");
        let long = TraceId::new((1u128 << 64) | 0xab).unwrap();
        assert_eq!(long.to_string(), "000000000000000100000000000000ab");
        assert_eq!((long.high(), long.low()), (1, 0xab));
        assert_eq!(SpanId::new(0x1f).unwrap().to_string(), "000000000000001f");
    }

    #[test]
    fn a_child_keeps_the_trace_and_the_decision() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut root = TraceContext::root(&mut rng);
        assert!(!root.trace_id.is_128_bit());
        assert_eq!(
            (root.parent_id, root.sampled, root.debug),
            (None, None, false)
        );
        root.sampled = Some(true);
        root.debug = true;
        let child = root.child(&mut rng);
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent_id, Some(root.span_id));
        assert_ne!(child.span_id, root.span_id);
        assert_eq!((child.sampled, child.debug), (Some(true), true));
        assert!(TraceContext::root_128(&mut rng).trace_id.is_128_bit());
    }
}
