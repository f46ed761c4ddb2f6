//! The client stage's figures: `rt/<router>/client/<id>`, and per service
//! under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use namers::telemetry::Scope;

use crate::service::stats::ServiceStats;
use crate::stats::{ConnectionCounts, RequestStats, StatusCounts};
use namers::telemetry::Counter;

/// A bound id: `rt/<router>/client/<id>`, and per service under it.
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    pub(crate) requests: RequestStats,
    pub(crate) status: StatusCounts,
    /// Requests sent again after a connection failure.
    pub(crate) requeues: Counter,
    /// Connections this client's requests opened to its endpoints. A
    /// router pools connections per endpoint address, so a connection
    /// counts for the client that opened it, even when another client
    /// bound to the same address uses it later.
    pub(crate) connections: Arc<ConnectionCounts>,
    /// A `tcp` router's figures of the client, made by its first
    /// connection.
    pub(crate) tcp: std::sync::OnceLock<crate::tcp::stats::TcpClientStats>,
    per_service: Mutex<HashMap<Arc<str>, PerService>>,
}

/// A client's figures for one service, kept while the service is.
type PerService = (Weak<ServiceStats>, Arc<RequestStats>);

impl ClientStats {
    /// The figures of this client's requests for `service`.
    pub(crate) fn for_service(&self, service: &Arc<ServiceStats>) -> Arc<RequestStats> {
        let mut per_service = self
            .per_service
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((held, stats)) = per_service.get(&**service.segment())
            && held.strong_count() > 0
        {
            return stats.clone();
        }
        let stats = Arc::new(RequestStats::default());
        per_service.insert(
            service.segment().clone(),
            (Arc::downgrade(service), stats.clone()),
        );
        stats
    }

    /// Lists into the client's own scope; services whose bindings are
    /// gone are forgotten.
    pub(crate) fn list(&self, scope: &mut Scope<'_>) {
        self.requests.list(scope);
        self.status.list(scope);
        scope.counter("retries/requeues", self.requeues.get());
        self.connections.list(scope);
        if let Some(tcp) = self.tcp.get() {
            tcp.list(scope);
        }
        let mut per_service: Vec<(Arc<str>, Arc<RequestStats>)> = {
            let mut held = self
                .per_service
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            held.retain(|_, (service, _)| service.strong_count() > 0);
            held.iter()
                .map(|(name, (_, stats))| (name.clone(), stats.clone()))
                .collect()
        };
        per_service.sort_by(|a, b| a.0.cmp(&b.0));
        let mut services = scope.scope("service");
        for (name, stats) in per_service {
            stats.list(&mut services.scope(&name));
        }
    }
}
