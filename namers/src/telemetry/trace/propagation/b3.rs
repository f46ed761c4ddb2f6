//! Zipkin's B3 headers, which Linkerd's `io.l5d.zipkin` propagator and
//! Zipkin-instrumented apps use.
//!
//! Read: the single `b3` header (`{trace}-{span}[-{0|1|d}[-{parent}]]`,
//! or a decision alone: `0`, `1`, `d`), which wins when present, else
//! `X-B3-TraceId` (16 or 32 hex digits; shorter ids are taken as Finagle
//! took them), `X-B3-SpanId`, `X-B3-ParentSpanId`, `X-B3-Sampled` (`1`,
//! `0`, `true`, `false`) and `X-B3-Flags` (`1`: debug). Written: the
//! multi-header form.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Incoming;
use crate::telemetry::trace::context::{SpanId, TraceContext, TraceId};

/// The single-header form.
pub(super) const B3: HeaderName = HeaderName::from_static("b3");
pub(super) const X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub(super) const X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub(super) const X_B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub(super) const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub(super) const X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// What the B3 headers of a request say.
pub fn read_b3(headers: &HeaderMap) -> Result<Incoming, String> {
    if let Some(single) = text_of(headers, &B3)? {
        return read_single(single).map_err(|why| format!("b3: {single:?}: {why}"));
    }
    read_multi(headers)
}

/// Sets the multi-header form to `context`, and removes a `b3` header,
/// which would win over them downstream.
pub fn write_b3(headers: &mut HeaderMap, context: &TraceContext) {
    headers.remove(B3);
    let mut set = |name: HeaderName, text: String| {
        // Hex and digits are always valid header values.
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.insert(name, value);
        }
    };
    set(X_B3_TRACE_ID, context.trace_id.to_string());
    set(X_B3_SPAN_ID, context.span_id.to_string());
    match context.parent_id {
        Some(parent) => set(X_B3_PARENT_SPAN_ID, parent.to_string()),
        None => {
            headers.remove(X_B3_PARENT_SPAN_ID);
        }
    }
    // Debug implies sampled, and B3 asks not to send both.
    if context.debug {
        headers.remove(X_B3_SAMPLED);
        headers.insert(X_B3_FLAGS, HeaderValue::from_static("1"));
        return;
    }
    headers.remove(X_B3_FLAGS);
    match context.sampled {
        Some(sampled) => {
            let value = if sampled { "1" } else { "0" };
            headers.insert(X_B3_SAMPLED, HeaderValue::from_static(value));
        }
        None => {
            headers.remove(X_B3_SAMPLED);
        }
    }
}

fn text_of<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim()))
            .map_err(|_| format!("{name}: not plain ASCII text")),
    }
}

fn read_single(text: &str) -> Result<Incoming, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let state = |part: &str| match part {
        "0" => Ok((Some(false), false)),
        "1" => Ok((Some(true), false)),
        "d" => Ok((None, true)),
        other => Err(format!("{other:?} is not a sampling state (0, 1 or d)")),
    };
    let (trace, span, decision, parent) = match parts.as_slice() {
        [alone] => {
            let (sampled, debug) = state(alone)?;
            return Ok(Incoming::Decision { sampled, debug });
        }
        [trace, span] => (trace, span, (None, false), None),
        [trace, span, decision] => (trace, span, state(decision)?, None),
        [trace, span, decision, parent] => (trace, span, state(decision)?, Some(parent)),
        _ => return Err("not {trace}-{span}[-{sampling}[-{parent}]]".into()),
    };
    // The single form has no history of short ids: exact lengths only.
    if trace.len() != 16 && trace.len() != 32 {
        return Err(format!("trace id {trace:?} is not 16 or 32 hex digits"));
    }
    let exact_16 = |what: &str, id: &str| {
        if id.len() == 16 {
            span_id(what, id)
        } else {
            Err(format!("{what} {id:?} is not 16 hex digits"))
        }
    };
    let (sampled, debug) = decision;
    Ok(Incoming::Context(TraceContext {
        trace_id: trace_id(trace)?,
        span_id: exact_16("span id", span)?,
        parent_id: parent.map(|p| exact_16("parent span id", p)).transpose()?,
        sampled,
        debug,
    }))
}

fn read_multi(headers: &HeaderMap) -> Result<Incoming, String> {
    let trace = text_of(headers, &X_B3_TRACE_ID)?;
    let span = text_of(headers, &X_B3_SPAN_ID)?;
    let parent = text_of(headers, &X_B3_PARENT_SPAN_ID)?;
    let sampled = text_of(headers, &X_B3_SAMPLED)?
        .map(|text| match text.to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(format!(
                "{X_B3_SAMPLED}: {text:?} is not 1, 0, true or false"
            )),
        })
        .transpose()?;
    // Finagle reads the flags as a number of which bit 1 is debug.
    let debug = match text_of(headers, &X_B3_FLAGS)? {
        None => false,
        Some(text) => {
            let flags: u64 = text
                .parse()
                .map_err(|_| format!("{X_B3_FLAGS}: {text:?} is not a number"))?;
            flags & 1 != 0
        }
    };
    fn with_name(name: &HeaderName) -> impl FnOnce(String) -> String + '_ {
        move |why| format!("{name}: {why}")
    }
    match (trace, span) {
        (Some(trace), Some(span)) => Ok(Incoming::Context(TraceContext {
            trace_id: trace_id(trace).map_err(with_name(&X_B3_TRACE_ID))?,
            span_id: span_id("span id", span).map_err(with_name(&X_B3_SPAN_ID))?,
            parent_id: parent
                .map(|p| span_id("parent span id", p))
                .transpose()
                .map_err(with_name(&X_B3_PARENT_SPAN_ID))?,
            sampled,
            debug,
        })),
        (Some(_), None) => Err(format!("{X_B3_TRACE_ID} without {X_B3_SPAN_ID}")),
        (None, Some(_)) => Err(format!("{X_B3_SPAN_ID} without {X_B3_TRACE_ID}")),
        (None, None) if parent.is_some() => Err(format!(
            "{X_B3_PARENT_SPAN_ID} without {X_B3_TRACE_ID} and {X_B3_SPAN_ID}"
        )),
        (None, None) if sampled.is_none() && !debug => Ok(Incoming::Absent),
        (None, None) => Ok(Incoming::Decision { sampled, debug }),
    }
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A trace id of up to 16 hex digits, or exactly 32.
fn trace_id(text: &str) -> Result<TraceId, String> {
    let value = match text.len() {
        1..=16 | 32 if is_hex(text) => u128::from_str_radix(text, 16).ok(),
        _ => None,
    };
    let value = value.ok_or_else(|| format!("trace id {text:?} is not 16 or 32 hex digits"))?;
    TraceId::new(value).ok_or_else(|| "the trace id is 0".to_string())
}

/// A span id of up to 16 hex digits.
fn span_id(what: &str, text: &str) -> Result<SpanId, String> {
    let value = match text.len() {
        1..=16 if is_hex(text) => u64::from_str_radix(text, 16).ok(),
        _ => None,
    };
    let value = value.ok_or_else(|| format!("{what} {text:?} is not 16 hex digits"))?;
    SpanId::new(value).ok_or_else(|| format!("the {what} is 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "463ac35c9f6413ad";
    const TRACE_128: &str = "463ac35c9f6413ad48485a3953bb6124";
    const SPAN: &str = "a2fb4a1d1a96d312";
    const PARENT: &str = "0020000000000001";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_static(value));
        }
        map
    }

    fn context(incoming: Result<Incoming, String>) -> TraceContext {
        match incoming {
            Ok(Incoming::Context(c)) => c,
            other => panic!("not a context: {other:?}"),
        }
    }

    #[test]
    fn multi_headers_give_every_field() {
        let c = context(read_b3(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-parentspanid", PARENT),
            ("x-b3-sampled", "1"),
        ])));
        assert_eq!(c.trace_id.get(), 0x463a_c35c_9f64_13ad);
        assert_eq!(c.span_id.get(), 0xa2fb_4a1d_1a96_d312);
        assert_eq!(c.parent_id.map(SpanId::get), Some(0x0020_0000_0000_0001));
        assert_eq!((c.sampled, c.debug), (Some(true), false));

        let c = context(read_b3(&headers(&[
            ("X-B3-TraceId", TRACE_128),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Sampled", "false"),
            ("X-B3-Flags", "1"),
        ])));
        assert_eq!(c.trace_id.to_string(), TRACE_128);
        assert_eq!((c.parent_id, c.sampled, c.debug), (None, Some(false), true));
        // Finagle wrote ids without leading zeros once; they still read.
        let c = context(read_b3(&headers(&[
            ("x-b3-traceid", "abc"),
            ("x-b3-spanid", "1"),
        ])));
        assert_eq!(
            (c.trace_id.get(), c.span_id.get(), c.sampled),
            (0xabc, 1, None)
        );
    }

    #[test]
    fn a_decision_alone_is_not_a_context() {
        assert_eq!(read_b3(&HeaderMap::new()), Ok(Incoming::Absent));
        assert_eq!(
            read_b3(&headers(&[("x-b3-sampled", "0")])),
            Ok(Incoming::Decision {
                sampled: Some(false),
                debug: false
            })
        );
        assert_eq!(
            read_b3(&headers(&[("x-b3-flags", "1")])),
            Ok(Incoming::Decision {
                sampled: None,
                debug: true
            })
        );
        assert_eq!(
            read_b3(&headers(&[("x-b3-flags", "0")])),
            Ok(Incoming::Absent)
        );
    }

    #[test]
    fn bad_multi_headers_say_which_and_why() {
        let error = |pairs| read_b3(&headers(pairs)).unwrap_err();
        let e = error(&[("x-b3-traceid", "463ac35c9f6413az"), ("x-b3-spanid", SPAN)]);
        assert!(
            e.starts_with("x-b3-traceid: trace id \"463ac35c9f6413az\""),
            "{e}"
        );
        let e = error(&[("x-b3-traceid", "463ac35c9f6413ad4"), ("x-b3-spanid", SPAN)]);
        assert!(e.contains("not 16 or 32 hex digits"), "{e}");
        let e = error(&[("x-b3-traceid", TRACE), ("x-b3-spanid", "+1")]);
        assert!(e.starts_with("x-b3-spanid:"), "{e}");
        let e = error(&[("x-b3-traceid", TRACE), ("x-b3-spanid", "0")]);
        assert!(e.ends_with("the span id is 0"), "{e}");
        let e = error(&[("x-b3-traceid", "0000000000000000"), ("x-b3-spanid", SPAN)]);
        assert!(e.ends_with("the trace id is 0"), "{e}");
        let e = error(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-parentspanid", "xyz"),
        ]);
        assert!(e.starts_with("x-b3-parentspanid:"), "{e}");
        let e = error(&[("x-b3-traceid", TRACE)]);
        assert_eq!(e, "x-b3-traceid without x-b3-spanid");
        let e = error(&[("x-b3-spanid", SPAN)]);
        assert_eq!(e, "x-b3-spanid without x-b3-traceid");
        let e = error(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "yes"),
        ]);
        assert!(e.contains("is not 1, 0, true or false"), "{e}");
        let e = error(&[("x-b3-flags", "debug")]);
        assert!(e.contains("is not a number"), "{e}");
    }

    #[test]
    fn the_single_header_in_each_form() {
        let c = context(read_b3(&headers(&[(
            "b3",
            "463ac35c9f6413ad-a2fb4a1d1a96d312-1-0020000000000001",
        )])));
        assert_eq!(c.trace_id.to_string(), TRACE);
        assert_eq!(c.span_id.to_string(), SPAN);
        assert_eq!(c.parent_id.map(|p| p.to_string()), Some(PARENT.to_string()));
        assert_eq!((c.sampled, c.debug), (Some(true), false));

        let c = context(read_b3(&headers(&[(
            "b3",
            "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-d",
        )])));
        assert_eq!(c.trace_id.to_string(), TRACE_128);
        assert_eq!((c.parent_id, c.sampled, c.debug), (None, None, true));

        let c = context(read_b3(&headers(&[(
            "b3",
            "463ac35c9f6413ad-a2fb4a1d1a96d312",
        )])));
        assert_eq!((c.sampled, c.debug), (None, false));

        for (value, sampled, debug) in [
            ("0", Some(false), false),
            ("1", Some(true), false),
            ("d", None, true),
        ] {
            let mut map = HeaderMap::new();
            map.insert("b3", HeaderValue::from_static(value));
            assert_eq!(
                read_b3(&map),
                Ok(Incoming::Decision { sampled, debug }),
                "{value}"
            );
        }
    }

    #[test]
    fn the_single_header_wins_over_the_others() {
        let map = headers(&[
            ("b3", "0"),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(
            read_b3(&map),
            Ok(Incoming::Decision {
                sampled: Some(false),
                debug: false
            })
        );
    }

    #[test]
    fn bad_single_headers_are_refused() {
        for (value, why) in [
            (
                "463ac35c9f6413ad-a2fb4a1d1a96d312-2",
                "is not a sampling state",
            ),
            ("463ac35c9f6413ad", "is not a sampling state"),
            (
                "463ac35c9f6413a-a2fb4a1d1a96d312",
                "is not 16 or 32 hex digits",
            ),
            ("463ac35c9f6413ad-a2fb4a1d1a96d31", "span id"),
            ("463ac35c9f6413ad-a2fb4a1d1a96d31g", "span id"),
            ("463ac35c9f6413ad-a2fb4a1d1a96d312-1-xyz", "parent span id"),
            (
                "463ac35c9f6413ad-a2fb4a1d1a96d312-1-0020000000000001-9",
                "not {trace}",
            ),
            ("", "is not a sampling state"),
        ] {
            let mut map = HeaderMap::new();
            map.insert("b3", HeaderValue::from_static(value));
            let e = read_b3(&map).unwrap_err();
            assert!(e.starts_with("b3: ") && e.contains(why), "{value}: {e}");
        }
    }

    #[test]
    fn written_headers_follow_b3() {
        let mut map = headers(&[
            ("b3", "0"),
            ("x-b3-parentspanid", PARENT),
            ("x-b3-flags", "1"),
        ]);
        let mut c = context(read_b3(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
        ])));
        c.sampled = Some(false);
        write_b3(&mut map, &c);
        assert!(!map.contains_key("b3") && !map.contains_key("x-b3-parentspanid"));
        assert!(!map.contains_key("x-b3-flags"));
        assert_eq!(map["x-b3-traceid"], TRACE);
        assert_eq!(map["x-b3-spanid"], SPAN);
        assert_eq!(map["x-b3-sampled"], "0");
        c.debug = true;
        c.parent_id = SpanId::new(1);
        write_b3(&mut map, &c);
        assert_eq!(map["x-b3-flags"], "1");
        assert_eq!(map["x-b3-parentspanid"], "0000000000000001");
        assert!(!map.contains_key("x-b3-sampled"));
    }
}
