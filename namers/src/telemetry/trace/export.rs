//! The task behind each exporter: it takes spans off the exporter's
//! queue, sends them in batches (when a batch is full, a second after its
//! first span, or when asked to flush), counts what happened, and keeps
//! going whatever the collector does. A failed batch is dropped, not
//! retried: the queue behind it is bounded, and a collector that is down
//! would otherwise fill it with spans that no one will see.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::TracerConfig;
use super::otlp::OtlpExporter;
use super::recent::{RecentRequests, RecentRequestsExporter};
use super::span::Span;
use super::tracelog::TracelogExporter;
use super::zipkin_http::ZipkinHttpExporter;
use super::zipkin_scribe::ScribeExporter;
use crate::telemetry::Counter;

/// How often a failing collector is complained about at `warn`; failures
/// in between are logged at `debug`.
const COMPLAIN_EVERY: Duration = Duration::from_secs(60);

/// How an exporter batches and waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Spans waiting to be sent, per exporter, beyond which new spans are
    /// dropped (and counted).
    pub queue_capacity: usize,
    /// The most spans in one batch.
    pub max_batch: usize,
    /// How long a span may wait for its batch to fill.
    pub batch_interval: Duration,
    /// How long one batch may take to send before it counts as failed.
    pub timeout: Duration,
}

impl Default for ExportOptions {
    fn default() -> ExportOptions {
        ExportOptions {
            queue_capacity: 4096,
            max_batch: 256,
            batch_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What goes through an exporter's queue.
pub(super) enum Message {
    /// A span to send.
    Span(Arc<Span>),
    /// Send what is queued, then answer.
    Flush(oneshot::Sender<()>),
    /// Send what is queued, answer, and stop.
    Close(oneshot::Sender<()>),
}

/// An exporter's counts, listed under `telemetry/<kind>/`.
#[derive(Debug, Default)]
pub(super) struct Figures {
    /// Spans put on the queue.
    pub(super) queued: Counter,
    /// Spans the collector took.
    pub(super) sent: Counter,
    /// Spans not queued: the queue was full (or the exporter stopped).
    pub(super) dropped: Counter,
    /// Spans lost in a batch that failed.
    pub(super) failed: Counter,
    /// Batches the collector took.
    pub(super) batches_sent: Counter,
    /// Batches that failed.
    pub(super) batches_failed: Counter,
}

/// One exporter of each kind.
pub(super) enum Exporter {
    Scribe(ScribeExporter),
    ZipkinHttp(ZipkinHttpExporter),
    Otlp(OtlpExporter),
    Tracelog(TracelogExporter),
    Recent(RecentRequestsExporter),
}

impl Exporter {
    /// The exporter for `config`; `None` for one that would do nothing (a
    /// tracelog at `OFF`).
    pub(super) fn new(config: &TracerConfig) -> Option<Exporter> {
        Some(match config {
            TracerConfig::ZipkinScribe(c) => Exporter::Scribe(ScribeExporter::new(c)),
            TracerConfig::ZipkinHttp(c) => Exporter::ZipkinHttp(ZipkinHttpExporter::new(c)),
            TracerConfig::Otlp(c) => Exporter::Otlp(OtlpExporter::new(c)),
            TracerConfig::Tracelog(c) => Exporter::Tracelog(TracelogExporter::new(c)?),
            TracerConfig::RecentRequests(c) => Exporter::Recent(RecentRequestsExporter::new(c)),
        })
    }

    /// The table a recent-requests exporter fills.
    pub(super) fn recent_requests(&self) -> Option<RecentRequests> {
        match self {
            Exporter::Recent(e) => Some(e.table()),
            _ => None,
        }
    }

    /// Whether spans go into a table an operator is looking at: they are
    /// handed over at once rather than batched for a second.
    fn is_immediate(&self) -> bool {
        matches!(self, Exporter::Recent(_))
    }

    fn target(&self) -> String {
        match self {
            Exporter::Scribe(e) => e.target(),
            Exporter::ZipkinHttp(e) => e.target(),
            Exporter::Otlp(e) => e.target(),
            Exporter::Tracelog(e) => e.target(),
            Exporter::Recent(e) => e.target(),
        }
    }

    async fn export(&mut self, spans: &[Arc<Span>]) -> Result<(), String> {
        match self {
            Exporter::Scribe(e) => e.export(spans).await,
            Exporter::ZipkinHttp(e) => e.export(spans).await,
            Exporter::Otlp(e) => e.export(spans).await,
            Exporter::Tracelog(e) => {
                e.export(spans);
                Ok(())
            }
            Exporter::Recent(e) => {
                e.export(spans);
                Ok(())
            }
        }
    }
}

/// Drains `queue` into `exporter` until the queue closes or is told to.
pub(super) async fn run(
    kind: &'static str,
    exporter: Exporter,
    mut queue: mpsc::Receiver<Message>,
    figures: Arc<Figures>,
    options: ExportOptions,
) {
    let immediate = exporter.is_immediate();
    let mut batch = Batch {
        complaints: Complaints::new(kind, exporter.target()),
        exporter,
        spans: Vec::with_capacity(options.max_batch.min(1024)),
        figures,
        timeout: options.timeout,
    };
    // When the batch must go, once it has a span.
    let mut due: Option<Instant> = None;
    loop {
        let message = match due {
            Some(at) => tokio::select! {
                message = queue.recv() => message,
                () = tokio::time::sleep_until(at) => {
                    due = None;
                    batch.send().await;
                    continue;
                }
            },
            None => queue.recv().await,
        };
        match message {
            Some(Message::Span(span)) => {
                if batch.spans.is_empty() {
                    due = Some(Instant::now() + options.batch_interval);
                }
                batch.spans.push(span);
                if immediate || batch.spans.len() >= options.max_batch {
                    due = None;
                    batch.send().await;
                }
            }
            Some(Message::Flush(done)) => {
                due = None;
                batch.send().await;
                let _ = done.send(());
            }
            Some(Message::Close(done)) => {
                batch.send().await;
                let _ = done.send(());
                return;
            }
            None => {
                // Every tracer is gone: send what is left and stop.
                batch.send().await;
                return;
            }
        }
    }
}

/// The spans waiting to go, and what sends and counts them.
struct Batch {
    exporter: Exporter,
    spans: Vec<Arc<Span>>,
    figures: Arc<Figures>,
    complaints: Complaints,
    timeout: Duration,
}

impl Batch {
    /// Sends the spans (if any) and counts the outcome.
    async fn send(&mut self) {
        if self.spans.is_empty() {
            return;
        }
        let count = self.spans.len() as u64;
        let timeout = self.timeout;
        let outcome = match tokio::time::timeout(timeout, self.exporter.export(&self.spans)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        self.spans.clear();
        match outcome {
            Ok(()) => {
                self.figures.sent.add(count);
                self.figures.batches_sent.incr();
                self.complaints.recovered();
            }
            Err(error) => {
                self.figures.failed.add(count);
                self.figures.batches_failed.incr();
                self.complaints.failed(&error, count);
            }
        }
    }
}

/// Logs a failing collector without flooding the log: the first failure
/// and then one a minute at `warn`, the rest at `debug`, and a line when
/// it works again.
struct Complaints {
    kind: &'static str,
    target: String,
    last_warned: Option<Instant>,
    /// Spans lost since the last warning.
    lost_since_warned: u64,
    failing: bool,
}

impl Complaints {
    fn new(kind: &'static str, target: String) -> Complaints {
        Complaints {
            kind,
            target,
            last_warned: None,
            lost_since_warned: 0,
            failing: false,
        }
    }

    fn failed(&mut self, error: &str, lost: u64) {
        self.failing = true;
        self.lost_since_warned += lost;
        let now = Instant::now();
        let kind = self.kind;
        let target = &self.target;
        if self
            .last_warned
            .is_none_or(|at| now.duration_since(at) >= COMPLAIN_EVERY)
        {
            tracing::warn!(
                telemeter = kind,
                target,
                error,
                spans_lost = self.lost_since_warned,
                "cannot export spans; dropped them, and will try again with the next batch"
            );
            self.last_warned = Some(now);
            self.lost_since_warned = 0;
        } else {
            tracing::debug!(
                telemeter = kind,
                target,
                error,
                spans_lost = lost,
                "cannot export spans"
            );
        }
    }

    fn recovered(&mut self) {
        if self.failing {
            self.failing = false;
            self.last_warned = None;
            self.lost_since_warned = 0;
            tracing::info!(
                telemeter = self.kind,
                target = self.target,
                "exporting spans again"
            );
        }
    }
}
