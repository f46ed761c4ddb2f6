//! Router metrics: requests by router and status, and latency, served by
//! the admin server in Prometheus text form.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::client::ClientHealth;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    rt: String,
    status: u16,
}

/// Labels of a router.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouterLabel {
    rt: String,
}

/// Labels of a retry that was not made.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotRetriedLabels {
    rt: String,
    /// `budget` (the retry budget was spent, or the request's 25 retries),
    /// `body` (the request's body or head could not be sent again) or
    /// `deadline` (the pause would end past the request's deadline).
    reason: &'static str,
}

/// The process's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouterLabel, Histogram>,
    retries: Family<RouterLabel, Counter>,
    requeues: Family<RouterLabel, Counter>,
    not_retried: Family<NotRetriedLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rt");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouterLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
            ])
        });
        registry.register(
            "requests",
            "Requests served, by router and status",
            requests.clone(),
        );
        registry.register(
            "request_latency_ms",
            "Time to the response headers, in ms",
            latency.clone(),
        );
        let retries = Family::<RouterLabel, Counter>::default();
        registry.register(
            "retries",
            "Requests sent again after an answer or error the response classifier called retryable",
            retries.clone(),
        );
        let requeues = Family::<RouterLabel, Counter>::default();
        registry.register(
            "requeues",
            "Requests sent to another endpoint after a connection failure",
            requeues.clone(),
        );
        let not_retried = Family::<NotRetriedLabels, Counter>::default();
        registry.register(
            "retries_not_made",
            "Retryable failures that were not retried, by reason (budget, body, deadline)",
            not_retried.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            latency,
            retries,
            requeues,
            not_retried,
        }
    }
}

impl Metrics {
    /// Adds the counters of the configured `namers`
    /// (`rt_namer_<counter>_total{namer="<prefix>"}`).
    pub fn register_namers(&self, namers: &[(dtab::Path, Arc<dyn namers::Namer>)]) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(Box::new(namers::metrics::NamerMetrics::new(namers)));
    }

    /// Adds each router's clients' failure-accrual figures, read when
    /// the metrics are asked for (`rt_client_*{rt, client}`).
    pub fn register_clients(&self, routers: Vec<Arc<crate::stack::RouterStack>>) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(Box::new(ClientMetrics { routers }));
    }

    /// The metrics of one router.
    pub fn router(&self, label: &str) -> RouterMetrics {
        let ok = RequestLabels {
            rt: label.to_string(),
            status: 200,
        };
        let rt = RouterLabel {
            rt: label.to_string(),
        };
        let not_retried = |reason| {
            self.not_retried
                .get_or_create(&NotRetriedLabels {
                    rt: label.to_string(),
                    reason,
                })
                .clone()
        };
        RouterMetrics {
            ok: self.requests.get_or_create(&ok).clone(),
            latency: self.latency.get_or_create(&rt).clone(),
            retries: self.retries.get_or_create(&rt).clone(),
            requeues: self.requeues.get_or_create(&rt).clone(),
            over_budget: not_retried("budget"),
            body_not_replayable: not_retried("body"),
            past_deadline: not_retried("deadline"),
            metrics: self.clone(),
            label: label.to_string(),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// One router's handle on the metrics.
#[derive(Clone)]
pub struct RouterMetrics {
    metrics: Metrics,
    label: String,
    /// Handles looked up once, so the common case takes no lock and
    /// allocates nothing per request.
    ok: Counter,
    latency: Histogram,
    /// Retries made.
    pub retries: Counter,
    /// Requeues made.
    pub requeues: Counter,
    /// Retryable failures not retried: the budget was spent.
    pub over_budget: Counter,
    /// Retryable failures not retried: the body could not be sent again.
    pub body_not_replayable: Counter,
    /// Retryable failures not retried: the pause would end past the
    /// request's deadline.
    pub past_deadline: Counter,
}

impl RouterMetrics {
    /// Records a served request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        if status == 200 {
            self.ok.inc();
        } else {
            let labels = RequestLabels {
                rt: self.label.clone(),
                status,
            };
            self.metrics.requests.get_or_create(&labels).inc();
        }
        self.latency.observe(elapsed.as_secs_f64() * 1000.0);
    }
}

/// One figure of a client's health.
type HealthFigure = fn(&ClientHealth) -> u64;

/// The clients' failure accrual, read from the routers at each scrape.
struct ClientMetrics {
    routers: Vec<Arc<crate::stack::RouterStack>>,
}

impl std::fmt::Debug for ClientMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetrics").finish_non_exhaustive()
    }
}

impl Collector for ClientMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let clients: Vec<(&str, String, ClientHealth)> = self
            .routers
            .iter()
            .flat_map(|router| {
                router
                    .client_health()
                    .into_iter()
                    .map(|(id, health)| (router.label(), id.show(), health))
            })
            .collect();
        let counters: [(&str, &str, HealthFigure); 3] = [
            (
                "client_removals",
                "Endpoints failure accrual took out",
                |h| h.removals,
            ),
            (
                "client_revivals",
                "Endpoints a successful probe brought back",
                |h| h.revivals,
            ),
            (
                "client_probes",
                "Requests let through to an endpoint after its backoff",
                |h| h.probes,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (rt, client, health) in &clients {
                let labels = [("rt", *rt), ("client", client.as_str())];
                ConstCounter::new(value(health)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "client_endpoints",
            "Endpoints of each client by failure-accrual state (live, dead, probing)",
            None,
            MetricType::Gauge,
        )?;
        for (rt, client, health) in &clients {
            for (state, count) in [
                ("live", health.live),
                ("dead", health.dead),
                ("probing", health.probing),
            ] {
                let labels = [("rt", *rt), ("client", client.as_str()), ("state", state)];
                ConstGauge::new(count as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_counted_and_the_cached_handles_are_the_registered_ones() {
        let metrics = Metrics::default();
        let router = metrics.router("web");
        router.record(200, Duration::from_millis(1));
        router.record(200, Duration::from_millis(2));
        router.record(502, Duration::from_millis(3));
        let text = metrics.render();
        assert!(
            text.contains("rt_requests_total{rt=\"web\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("rt_requests_total{rt=\"web\",status=\"502\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rt_request_latency_ms_count{rt=\"web\"} 3"),
            "{text}"
        );
    }
}
