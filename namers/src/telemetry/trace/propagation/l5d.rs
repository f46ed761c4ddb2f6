//! Linkerd's trace headers: `l5d-ctx-trace`, Finagle's serialized
//! `TraceId` in base64, and `l5d-sample`, a rate a caller asks for.
//!
//! Finagle's layout, big-endian: span id, parent id, trace id (its low 64
//! bits), flags, 8 bytes each; a 128-bit trace id adds its high 64 bits
//! as 8 more (40 bytes; Linkerd 1.4 and later read both lengths). A
//! trace's first span repeats its span id as its parent. Flags: 1 debug,
//! 2 "the decision is known", 4 "sampled"; other bits are not kept.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::super::context::{SpanId, TraceContext, TraceId};
use super::super::sampling::SampleRate;

/// Linkerd's trace context header.
pub const L5D_CTX_TRACE: HeaderName = HeaderName::from_static("l5d-ctx-trace");

/// The sample rate a caller asks for, between 0 and 1.
pub const L5D_SAMPLE: HeaderName = HeaderName::from_static("l5d-sample");

/// The trace id in hex on requests Linkerd sends, for apps to correlate
/// their logs.
pub const L5D_REQID: HeaderName = HeaderName::from_static("l5d-reqid");

const DEBUG: u64 = 1;
const SAMPLING_KNOWN: u64 = 2;
const SAMPLED: u64 = 4;

/// Standard base64 with padding when writing; Java's decoder, which
/// Linkerd used, also takes it without padding, so this one does too.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The longest piece of a bad value quoted in an error.
const QUOTED: usize = 64;

/// The `l5d-ctx-trace` value for `context`.
pub fn encode_l5d_ctx_trace(context: &TraceContext) -> String {
    let mut flags = if context.debug { DEBUG } else { 0 };
    match context.sampled {
        Some(true) => flags |= SAMPLING_KNOWN | SAMPLED,
        Some(false) => flags |= SAMPLING_KNOWN,
        None => {}
    }
    let span = context.span_id.get();
    let mut bytes = Vec::with_capacity(40);
    bytes.extend_from_slice(&span.to_be_bytes());
    bytes.extend_from_slice(&context.parent_id.map_or(span, SpanId::get).to_be_bytes());
    bytes.extend_from_slice(&context.trace_id.low().to_be_bytes());
    bytes.extend_from_slice(&flags.to_be_bytes());
    if context.trace_id.is_128_bit() {
        bytes.extend_from_slice(&context.trace_id.high().to_be_bytes());
    }
    BASE64.encode(bytes)
}

/// The context in an `l5d-ctx-trace` value, or why there is none.
pub fn decode_l5d_ctx_trace(value: &str) -> Result<TraceContext, String> {
    let quoted = || {
        let mut q: String = value.chars().take(QUOTED).collect();
        if value.len() > q.len() {
            q.push('…');
        }
        q
    };
    let bytes = BASE64
        .decode(value)
        .map_err(|e| format!("{L5D_CTX_TRACE}: {:?} is not base64: {e}", quoted()))?;
    if bytes.len() != 32 && bytes.len() != 40 {
        return Err(format!(
            "{L5D_CTX_TRACE}: {:?} holds {} bytes; a Finagle trace id is 32 bytes, or 40 with a 128-bit trace id",
            quoted(),
            bytes.len()
        ));
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_be_bytes(b)
    };
    let (span, parent, low, flags) = (word(0), word(1), word(2), word(3));
    let high = if bytes.len() == 40 { word(4) } else { 0 };
    let span_id = SpanId::new(span)
        .ok_or_else(|| format!("{L5D_CTX_TRACE}: {:?}: the span id is 0", quoted()))?;
    let trace_id = TraceId::new((u128::from(high) << 64) | u128::from(low))
        .ok_or_else(|| format!("{L5D_CTX_TRACE}: {:?}: the trace id is 0", quoted()))?;
    // A first span names itself as its parent (and a zero parent is none).
    let parent_id = if parent == span {
        None
    } else {
        SpanId::new(parent)
    };
    let sampled = (flags & SAMPLING_KNOWN != 0).then_some(flags & SAMPLED != 0);
    Ok(TraceContext {
        trace_id,
        span_id,
        parent_id,
        sampled,
        debug: flags & DEBUG != 0,
    })
}

/// The context of `l5d-ctx-trace` (the first, if there are several);
/// `Ok(None)` without one.
pub fn read_l5d_ctx_trace(headers: &HeaderMap) -> Result<Option<TraceContext>, String> {
    let Some(value) = headers.get(L5D_CTX_TRACE) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| format!("{L5D_CTX_TRACE}: not plain ASCII text"))?;
    decode_l5d_ctx_trace(text).map(Some)
}

/// Sets `l5d-ctx-trace` to `context`, and `l5d-reqid` to its trace id
/// (the low 64 bits in hex, as Linkerd wrote it).
pub fn write_l5d_ctx_trace(headers: &mut HeaderMap, context: &TraceContext) {
    // Base64 and hex are always valid header values.
    if let Ok(value) = HeaderValue::from_str(&encode_l5d_ctx_trace(context)) {
        headers.insert(L5D_CTX_TRACE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("{:016x}", context.trace_id.low())) {
        headers.insert(L5D_REQID, value);
    }
}

/// The rate of `l5d-sample`, brought into [0, 1] as Linkerd did (a
/// negative rate is 0, more than 1 is 1). A value that is not a number
/// (or is NaN) is ignored, as Linkerd ignored what it could not parse.
pub fn read_l5d_sample(headers: &HeaderMap) -> Option<SampleRate> {
    let text = headers.get(L5D_SAMPLE)?.to_str().ok()?;
    SampleRate::clamped(text.trim().parse::<f64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(trace: u128, span: u64, parent: Option<u64>) -> TraceContext {
        TraceContext {
            trace_id: TraceId::new(trace).unwrap(),
            span_id: SpanId::new(span).unwrap(),
            parent_id: parent.map(|p| SpanId::new(p).unwrap()),
            sampled: None,
            debug: false,
        }
    }

    /// Finagle's layout written out by hand: span, parent, trace, flags.
    fn finagle_bytes(words: &[u64]) -> String {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn a_known_value_decodes_to_its_fields() {
        // span 1, parent 2, trace 3, flags 6 (sampling known, sampled).
        let value = finagle_bytes(&[1, 2, 3, 6]);
        assert_eq!(value, "AAAAAAAAAAEAAAAAAAAAAgAAAAAAAAADAAAAAAAAAAY=");
        let mut expected = context(3, 1, Some(2));
        expected.sampled = Some(true);
        assert_eq!(decode_l5d_ctx_trace(&value), Ok(expected));
        assert_eq!(encode_l5d_ctx_trace(&expected), value);
    }

    #[test]
    fn flags_say_sampled_not_sampled_undecided_or_debug() {
        let decoded = |flags| decode_l5d_ctx_trace(&finagle_bytes(&[1, 2, 3, flags])).unwrap();
        assert_eq!(decoded(0).sampled, None);
        assert_eq!(decoded(2).sampled, Some(false));
        assert_eq!(decoded(6).sampled, Some(true));
        // "Sampled" without "known" is not a decision.
        assert_eq!(decoded(4).sampled, None);
        assert!(decoded(1).debug);
        assert!(!decoded(6).debug);
    }

    #[test]
    fn a_first_span_names_itself_as_its_parent() {
        let root = context(9, 5, None);
        let value = encode_l5d_ctx_trace(&root);
        assert_eq!(value, finagle_bytes(&[5, 5, 9, 0]));
        assert_eq!(decode_l5d_ctx_trace(&value), Ok(root));
    }

    #[test]
    fn contexts_round_trip_in_both_lengths() {
        for trace in [0xfeed_u128, (0xdead_u128 << 64) | 0xbeef] {
            for sampled in [None, Some(false), Some(true)] {
                for debug in [false, true] {
                    let mut c = context(trace, u64::MAX, Some(0x8000_0000_0000_0000));
                    c.sampled = sampled;
                    c.debug = debug;
                    let value = encode_l5d_ctx_trace(&c);
                    let len = base64::engine::general_purpose::STANDARD
                        .decode(&value)
                        .unwrap()
                        .len();
                    assert_eq!(len, if trace > u128::from(u64::MAX) { 40 } else { 32 });
                    assert_eq!(decode_l5d_ctx_trace(&value), Ok(c));
                }
            }
        }
    }

    #[test]
    fn a_128_bit_trace_id_is_the_fifth_word() {
        let value = finagle_bytes(&[1, 1, 3, 0, 7]);
        let c = decode_l5d_ctx_trace(&value).unwrap();
        assert_eq!(c.trace_id.get(), (7u128 << 64) | 3);
        assert_eq!(c.parent_id, None);
    }

    #[test]
    fn padding_may_be_left_off() {
        let value = finagle_bytes(&[1, 2, 3, 6]);
        let unpadded = value.trim_end_matches('=');
        assert_eq!(decode_l5d_ctx_trace(unpadded), decode_l5d_ctx_trace(&value));
    }

    #[test]
    fn malformed_values_say_why() {
        let e = decode_l5d_ctx_trace("not base64!").unwrap_err();
        assert!(
            e.starts_with("l5d-ctx-trace: \"not base64!\" is not base64"),
            "{e}"
        );
        let e = decode_l5d_ctx_trace(&finagle_bytes(&[1, 2, 3])).unwrap_err();
        assert!(e.contains("holds 24 bytes"), "{e}");
        let e = decode_l5d_ctx_trace(&finagle_bytes(&[1, 2, 3, 4, 5, 6])).unwrap_err();
        assert!(e.contains("holds 48 bytes"), "{e}");
        let e = decode_l5d_ctx_trace(&finagle_bytes(&[0, 2, 3, 0])).unwrap_err();
        assert!(e.ends_with("the span id is 0"), "{e}");
        let e = decode_l5d_ctx_trace(&finagle_bytes(&[1, 2, 0, 0])).unwrap_err();
        assert!(e.ends_with("the trace id is 0"), "{e}");
        let long = "A".repeat(500);
        let e = decode_l5d_ctx_trace(&long).unwrap_err();
        assert!(e.len() < 200, "a long value is shortened: {e}");
    }

    #[test]
    fn headers_are_read_and_written() {
        let mut headers = HeaderMap::new();
        assert_eq!(read_l5d_ctx_trace(&headers), Ok(None));
        let c = context(0x1234, 5, Some(6));
        write_l5d_ctx_trace(&mut headers, &c);
        assert_eq!(read_l5d_ctx_trace(&headers), Ok(Some(c)));
        assert_eq!(headers[L5D_REQID], "0000000000001234");
        headers.insert(L5D_CTX_TRACE, HeaderValue::from_static("%%%"));
        assert!(read_l5d_ctx_trace(&headers).is_err());
    }

    #[test]
    fn l5d_sample_is_clamped_and_junk_is_ignored() {
        let rate = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(L5D_SAMPLE, HeaderValue::from_static(v));
            read_l5d_sample(&headers).map(SampleRate::get)
        };
        assert_eq!(rate("0.25"), Some(0.25));
        assert_eq!(rate(" 1 "), Some(1.0));
        assert_eq!(rate("1.7"), Some(1.0));
        assert_eq!(rate("-3"), Some(0.0));
        assert_eq!(rate("1e-2"), Some(0.01));
        assert_eq!(rate("half"), None);
        assert_eq!(rate("NaN"), None);
        assert_eq!(read_l5d_sample(&HeaderMap::new()), None);
    }
}
