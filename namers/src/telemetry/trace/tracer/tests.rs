use std::time::Duration;

use super::*;
use crate::telemetry::trace::context::{SpanId, TraceId};
use crate::telemetry::trace::span::tests::client_span;
use crate::telemetry::trace::{OtlpConfig, TracelogConfig};
use crate::telemetry::{Entry, Value};

fn tracelog(rate: f64) -> TracerConfig {
    TracerConfig::Tracelog(TracelogConfig {
        sample_rate: SampleRate::new(rate).unwrap(),
        // Nothing listens in tests; the level only has to be on.
        level: Some(tracing::Level::TRACE),
    })
}

fn otlp(rate: f64) -> TracerConfig {
    TracerConfig::Otlp(OtlpConfig {
        // Nothing is sent in the tests that use it.
        endpoint: "http://127.0.0.1:9/v1/traces".parse().unwrap(),
        sample_rate: SampleRate::new(rate).unwrap(),
        service_name: None,
    })
}

fn undecided(trace: u128) -> TraceContext {
    TraceContext {
        trace_id: TraceId::new(trace).unwrap(),
        span_id: SpanId::new(1).unwrap(),
        parent_id: None,
        sampled: None,
        debug: false,
    }
}

/// A trace id that `rate` samples, or does not.
fn trace_sampled_at(rate: f64, sampled: bool) -> u128 {
    let rate = SampleRate::new(rate).unwrap();
    (1..u128::MAX)
        .find(|i| rate.samples(TraceId::new(*i).unwrap()) == sampled)
        .unwrap()
}

fn listed(tracer: &Tracer) -> Vec<(String, Value)> {
    let mut entries: Vec<Entry> = Vec::new();
    tracer.list(&mut Scope::root(&mut entries));
    entries
        .into_iter()
        .map(|e| (e.path.join("/"), e.value))
        .collect()
}

#[tokio::test]
async fn a_debug_trace_or_a_requested_rate_decides_first() {
    let tracer = Tracer::new(&[otlp(0.0)]);
    let mut c = undecided(5);
    c.debug = true;
    c.sampled = Some(false);
    tracer.decide(&mut c, Some(SampleRate::NEVER));
    assert_eq!(c.sampled, Some(true), "debug wins");

    // l5d-sample overrides what came with the request, as in Linkerd.
    let mut c = undecided(5);
    c.sampled = Some(false);
    tracer.decide(&mut c, Some(SampleRate::ALWAYS));
    assert_eq!(c.sampled, Some(true));
    let mut c = undecided(5);
    c.sampled = Some(true);
    tracer.decide(&mut c, Some(SampleRate::NEVER));
    assert_eq!(c.sampled, Some(false));
    // The requested rate is applied to the trace id like any other.
    let id = trace_sampled_at(0.5, false);
    let mut c = undecided(id);
    tracer.decide(&mut c, SampleRate::new(0.5).ok());
    assert_eq!(c.sampled, Some(false));

    // Without one, a decision that came with the request stands.
    let mut c = undecided(5);
    c.sampled = Some(true);
    tracer.decide(&mut c, None);
    assert_eq!(c.sampled, Some(true));
}

#[tokio::test]
async fn an_undecided_trace_is_recorded_when_any_exporter_picks_it() {
    let in_low = trace_sampled_at(0.1, true);
    let out_of_low = trace_sampled_at(0.1, false);
    let tracer = Tracer::new(&[otlp(0.1), otlp(0.0)]);
    let mut c = undecided(in_low);
    tracer.decide(&mut c, None);
    assert_eq!(c.sampled, Some(true));
    let mut c = undecided(out_of_low);
    tracer.decide(&mut c, None);
    assert_eq!(c.sampled, Some(false));

    // A tracelog samples for itself only: the trace stays undecided.
    let tracer = Tracer::new(&[tracelog(1.0)]);
    let mut c = undecided(out_of_low);
    tracer.decide(&mut c, None);
    assert_eq!(c.sampled, None);
    assert!(tracer.would_record(&c));
    let tracer = Tracer::new(&[tracelog(0.0)]);
    assert!(!tracer.would_record(&c));
    c.sampled = Some(true);
    assert!(tracer.would_record(&c), "a decision wins over the rate");

    let disabled = Tracer::disabled();
    let mut c = undecided(in_low);
    disabled.decide(&mut c, None);
    assert_eq!(c.sampled, None);
    assert!(!disabled.is_enabled() && !disabled.would_record(&c));
    assert!(!Tracer::new(&[]).is_enabled());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let options = ExportOptions {
        queue_capacity: 2,
        ..ExportOptions::default()
    };
    let tracer = Tracer::with_options(&[tracelog(1.0)], options);
    // On this single-threaded runtime the exporter's task does not run
    // until the test waits, so nothing leaves the queue in between.
    for _ in 0..10 {
        tracer.record(client_span());
    }
    let counts = tracer.figures_of("io.l5d.tracelog");
    assert_eq!((counts.queued, counts.dropped), (2, 8));
    tracer.flush().await;
    let counts = tracer.figures_of("io.l5d.tracelog");
    assert_eq!((counts.sent, counts.batches_sent), (2, 1));
    // The queue has room again.
    tracer.record(client_span());
    assert_eq!(tracer.figures_of("io.l5d.tracelog").queued, 3);
}

#[tokio::test]
async fn spans_not_sampled_are_not_queued() {
    let tracer = Tracer::new(&[tracelog(1.0)]);
    let mut span = client_span();
    span.context.sampled = Some(false);
    span.context.debug = false;
    tracer.record(span);
    let counts = tracer.figures_of("io.l5d.tracelog");
    assert_eq!((counts.queued, counts.dropped), (0, 0));
}

#[tokio::test]
async fn batches_hold_at_most_max_batch_spans() {
    let options = ExportOptions {
        max_batch: 2,
        ..ExportOptions::default()
    };
    let tracer = Tracer::with_options(&[tracelog(1.0)], options);
    for _ in 0..5 {
        tracer.record(client_span());
    }
    tracer.flush().await;
    let counts = tracer.figures_of("io.l5d.tracelog");
    assert_eq!((counts.sent, counts.batches_sent), (5, 3));
}

#[tokio::test(start_paused = true)]
async fn a_batch_goes_after_the_interval_without_a_flush() {
    let tracer = Tracer::new(&[tracelog(1.0)]);
    tracer.record(client_span());
    tracer.record(client_span());
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        tracer.figures_of("io.l5d.tracelog").sent,
        0,
        "waiting for more"
    );
    tokio::time::advance(Duration::from_millis(1001)).await;
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    let counts = tracer.figures_of("io.l5d.tracelog");
    assert_eq!((counts.sent, counts.batches_sent), (2, 1));
}

#[tokio::test]
async fn after_shutdown_spans_are_dropped() {
    let tracer = Tracer::new(&[tracelog(1.0)]);
    tracer.record(client_span());
    tracer.shutdown().await;
    assert_eq!(tracer.figures_of("io.l5d.tracelog").sent, 1);
    tracer.record(client_span());
    assert_eq!(tracer.figures_of("io.l5d.tracelog").dropped, 1);
    // Flushing a stopped tracer returns.
    tracer.flush().await;
}

#[tokio::test]
async fn each_exporter_lists_its_figures() {
    let tracer = Tracer::with_options(
        &[tracelog(1.0), otlp(0.0), tracelog(1.0)],
        ExportOptions {
            queue_capacity: 1,
            ..ExportOptions::default()
        },
    );
    let mut span = client_span();
    span.context.sampled = None;
    span.context.debug = false;
    tracer.record(span.clone());
    tracer.record(span);
    let figures = listed(&tracer);
    let value = |key: &str| {
        figures
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {key} in {figures:?}"))
    };
    assert_eq!(
        value("telemetry/io.l5d.tracelog/spans/queued"),
        Value::Counter(1)
    );
    assert_eq!(
        value("telemetry/io.l5d.tracelog/spans/dropped"),
        Value::Counter(1)
    );
    assert_eq!(
        value("telemetry/io.l5d.tracelog/queue/size"),
        Value::Gauge(1.0)
    );
    assert_eq!(
        value("telemetry/io.l5d.tracelog.2/spans/queued"),
        Value::Counter(1)
    );
    assert_eq!(
        value("telemetry/io.opentelemetry.otlp/spans/queued"),
        Value::Counter(0)
    );
    for figure in [
        "spans/sent",
        "spans/failed",
        "batches/sent",
        "batches/failed",
    ] {
        assert_eq!(
            value(&format!("telemetry/io.l5d.tracelog/{figure}")),
            Value::Counter(0)
        );
    }
    assert!(listed(&Tracer::disabled()).is_empty());
}
