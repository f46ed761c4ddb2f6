//! Router metrics: requests by router and status, and latency, served by
//! the admin server in Prometheus text form.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

/// The process's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouterLabel, Histogram>,
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
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            latency,
        }
    }
}

impl Metrics {
    /// The metrics of one router.
    pub fn router(&self, label: &str) -> RouterMetrics {
        RouterMetrics {
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
}

impl RouterMetrics {
    /// Records a served request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            rt: self.label.clone(),
            status,
        };
        self.metrics.requests.get_or_create(&labels).inc();
        self.metrics
            .latency
            .get_or_create(&RouterLabel {
                rt: self.label.clone(),
            })
            .observe(elapsed.as_secs_f64() * 1000.0);
    }
}
