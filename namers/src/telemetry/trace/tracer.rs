//! The tracer the router holds: it decides which traces are recorded and
//! takes finished spans off the request path onto each exporter's
//! bounded queue.

use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use super::config::TracerConfig;
use super::context::TraceContext;
use super::export::{self, ExportOptions, Exporter, Figures, Message};
use super::recent::RecentRequests;
use super::sampling::SampleRate;
use super::span::Span;
use crate::telemetry::{Scope, Source};

/// Records spans to the configured exporters. Cheap to clone; a disabled
/// tracer records nothing and costs a branch.
#[derive(Clone, Default)]
pub struct Tracer {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    exporters: Vec<Handle>,
    /// The rates of the exporters that take part in a new trace's
    /// decision.
    deciding: Vec<SampleRate>,
    /// The table of the first `io.l5d.recentRequests`, for the admin
    /// server.
    recent: Option<RecentRequests>,
}

/// One exporter as the request path sees it.
struct Handle {
    kind: &'static str,
    /// Its scope under `telemetry/`: the kind, `.2`, `.3` … after it for
    /// a kind configured more than once.
    scope: String,
    rate: SampleRate,
    queue: mpsc::Sender<Message>,
    figures: Arc<Figures>,
}

impl Handle {
    /// Whether this exporter records spans of `context`: the trace's
    /// decision when there is one, else its own rate.
    fn wants(&self, context: &TraceContext) -> bool {
        context.debug
            || context
                .sampled
                .unwrap_or_else(|| self.rate.samples(context.trace_id))
    }
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scopes: Vec<&str> = self
            .inner
            .iter()
            .flat_map(|i| i.exporters.iter().map(|e| e.scope.as_str()))
            .collect();
        f.debug_struct("Tracer")
            .field("exporters", &scopes)
            .finish()
    }
}

impl Tracer {
    /// A tracer that records nothing.
    pub fn disabled() -> Tracer {
        Tracer { inner: None }
    }

    /// A tracer sending to the exporters of `configs`, with the default
    /// queue and batches. Starts a task per exporter, so it must be called
    /// within a Tokio runtime; the tasks end when every clone of the
    /// tracer is gone (or at [`Tracer::shutdown`]).
    pub fn new(configs: &[TracerConfig]) -> Tracer {
        Tracer::with_options(configs, ExportOptions::default())
    }

    /// [`Tracer::new`] with other queue and batch settings.
    pub fn with_options(configs: &[TracerConfig], options: ExportOptions) -> Tracer {
        let mut exporters = Vec::new();
        let mut deciding = Vec::new();
        let mut recent = None;
        for config in configs {
            let Some(exporter) = Exporter::new(config) else {
                continue;
            };
            if recent.is_none() {
                recent = exporter.recent_requests();
            }
            if config.decides() {
                deciding.push(config.sample_rate());
            }
            let kind = config.kind();
            let same_kind = exporters
                .iter()
                .filter(|h: &&Handle| h.kind == kind)
                .count();
            let scope = if same_kind == 0 {
                kind.to_string()
            } else {
                format!("{kind}.{}", same_kind + 1)
            };
            let (queue, receiver) = mpsc::channel(options.queue_capacity.max(1));
            let figures = Arc::new(Figures::default());
            tokio::spawn(export::run(
                kind,
                exporter,
                receiver,
                figures.clone(),
                options,
            ));
            exporters.push(Handle {
                kind,
                scope,
                rate: config.sample_rate(),
                queue,
                figures,
            });
        }
        if exporters.is_empty() {
            return Tracer::disabled();
        }
        Tracer {
            inner: Some(Arc::new(Inner {
                exporters,
                deciding,
                recent,
            })),
        }
    }

    /// The table of recent requests, when `io.l5d.recentRequests` is
    /// configured.
    pub fn recent_requests(&self) -> Option<&RecentRequests> {
        self.inner.as_ref()?.recent.as_ref()
    }

    /// Whether any exporter is configured: when not, the router need not
    /// build spans at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Settles whether the trace of `context` is recorded, for a server
    /// span about to be handled:
    /// - a debug trace is always recorded;
    /// - a rate the request asks for (`l5d-sample`) decides, even over a
    ///   decision that came with the request, as in Linkerd;
    /// - else a decision that came with the request stands;
    /// - else the trace is recorded when any exporter's rate picks it
    ///   (the tracelog's rate excepted, as in Linkerd), and that decision
    ///   goes downstream with it. Without such exporters it stays
    ///   undecided.
    pub fn decide(&self, context: &mut TraceContext, requested: Option<SampleRate>) {
        if context.debug {
            context.sampled = Some(true);
            return;
        }
        if let Some(rate) = requested {
            context.sampled = Some(rate.samples(context.trace_id));
            return;
        }
        if context.sampled.is_some() {
            return;
        }
        let Some(inner) = &self.inner else {
            return;
        };
        if !inner.deciding.is_empty() {
            let id = context.trace_id;
            context.sampled = Some(inner.deciding.iter().any(|r| r.samples(id)));
        }
    }

    /// Whether a span of `context` would be recorded by any exporter: the
    /// router may skip building spans that would not.
    pub fn would_record(&self, context: &TraceContext) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.exporters.iter().any(|e| e.wants(context)))
    }

    /// Hands a finished span to every exporter that records it. Never
    /// waits: a full queue drops the span and counts it.
    pub fn record(&self, span: Span) {
        let Some(inner) = &self.inner else {
            return;
        };
        if !inner.exporters.iter().any(|e| e.wants(&span.context)) {
            return;
        }
        let span = Arc::new(span);
        for exporter in &inner.exporters {
            if !exporter.wants(&span.context) {
                continue;
            }
            match exporter.queue.try_send(Message::Span(span.clone())) {
                Ok(()) => exporter.figures.queued.incr(),
                Err(_) => exporter.figures.dropped.incr(),
            }
        }
    }

    /// Sends every span recorded so far, and returns once each exporter
    /// has tried.
    pub async fn flush(&self) {
        self.each_exporter(Message::Flush).await;
    }

    /// Sends every span recorded so far and stops the exporters; spans
    /// recorded afterwards are dropped.
    pub async fn shutdown(&self) {
        self.each_exporter(Message::Close).await;
    }

    async fn each_exporter(&self, message: fn(oneshot::Sender<()>) -> Message) {
        let Some(inner) = &self.inner else {
            return;
        };
        join_all(inner.exporters.iter().map(|exporter| async move {
            let (done, answered) = oneshot::channel();
            if exporter.queue.send(message(done)).await.is_ok() {
                let _ = answered.await;
            }
        }))
        .await;
    }

    /// One exporter's counts, by its scope (tests).
    #[cfg(test)]
    pub(crate) fn figures_of(&self, scope: &str) -> FigureCounts {
        let handle = self
            .inner
            .iter()
            .flat_map(|i| i.exporters.iter())
            .find(|e| e.scope == scope)
            .unwrap_or_else(|| panic!("no exporter {scope}"));
        let f = &handle.figures;
        FigureCounts {
            queued: f.queued.get(),
            sent: f.sent.get(),
            dropped: f.dropped.get(),
            failed: f.failed.get(),
            batches_sent: f.batches_sent.get(),
            batches_failed: f.batches_failed.get(),
        }
    }
}

/// A snapshot of one exporter's counts (tests).
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FigureCounts {
    pub(crate) queued: u64,
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) failed: u64,
    pub(crate) batches_sent: u64,
    pub(crate) batches_failed: u64,
}

/// `telemetry/<kind>/spans/{queued,sent,dropped,failed}`,
/// `…/batches/{sent,failed}` and the gauge `…/queue/size`.
impl Source for Tracer {
    fn list(&self, root: &mut Scope<'_>) {
        let Some(inner) = &self.inner else {
            return;
        };
        let mut telemetry = root.scope("telemetry");
        for exporter in &inner.exporters {
            let f = &exporter.figures;
            let mut scope = telemetry.scope(&exporter.scope);
            scope.counter("spans/queued", f.queued.get());
            scope.counter("spans/sent", f.sent.get());
            scope.counter("spans/dropped", f.dropped.get());
            scope.counter("spans/failed", f.failed.get());
            scope.counter("batches/sent", f.batches_sent.get());
            scope.counter("batches/failed", f.batches_failed.get());
            let waiting = exporter.queue.max_capacity() - exporter.queue.capacity();
            scope.gauge("queue/size", waiting as f64);
        }
    }
}

#[cfg(test)]
mod tests;
