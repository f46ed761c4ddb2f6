//! namerd's counters, served in Prometheus text form on the admin port.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::Namerd;

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route, e.g. `/api/1/dtabs/{ns}`.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The status code.
    pub status: u16,
}

/// Labels of a store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// `create`, `update`, `put` or `delete`.
    pub op: &'static str,
    /// `ok`, `conflict`, `not_found`, `exists` or `error`.
    pub result: &'static str,
}

/// Every metric namerd exports.
pub struct Metrics {
    registry: Registry,
    /// API requests served.
    pub requests: Family<RequestLabels, Counter>,
    /// Store writes attempted, by outcome.
    pub store_writes: Family<StoreLabels, Counter>,
    live_bindings: Gauge,
    active_interpreter_bindings: Gauge,
    failures_masked: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("namerd");
        let requests = Family::<RequestLabels, Counter>::default();
        let store_writes = Family::<StoreLabels, Counter>::default();
        let live_bindings = Gauge::default();
        let active_interpreter_bindings = Gauge::default();
        let failures_masked = Gauge::default();
        registry.register("http_requests", "API requests served", requests.clone());
        registry.register(
            "store_writes",
            "Dtab store writes, by outcome",
            store_writes.clone(),
        );
        registry.register(
            "live_bindings",
            "Bindings kept live for watchers",
            live_bindings.clone(),
        );
        registry.register(
            "interpreter_active_bindings",
            "Interpreter bindings whose task is running",
            active_interpreter_bindings.clone(),
        );
        registry.register(
            "namer_failures_masked",
            "Namer failures answered with the last good value",
            failures_masked.clone(),
        );
        Metrics {
            registry,
            requests,
            store_writes,
            live_bindings,
            active_interpreter_bindings,
            failures_masked,
        }
    }
}

impl Metrics {
    /// namerd's metrics, with the counters of the configured `namers`
    /// (`namerd_namer_<counter>_total{namer="<prefix>"}`).
    pub fn with_namers(namers: &[(dtab::Path, std::sync::Arc<dyn namers::Namer>)]) -> Metrics {
        let mut metrics = Metrics::default();
        metrics
            .registry
            .register_collector(Box::new(namers::metrics::NamerMetrics::new(namers)));
        metrics
    }

    /// The Prometheus text exposition, with gauges read from `namerd` now.
    pub fn render(&self, namerd: &Namerd) -> String {
        let stats = namerd.interpreter().stats();
        self.live_bindings.set(namerd.live_bindings() as i64);
        self.active_interpreter_bindings
            .set(stats.active_bindings() as i64);
        self.failures_masked
            .set(stats.failures_masked.load(Ordering::Relaxed) as i64);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
