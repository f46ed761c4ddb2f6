//! The figures of a server, a service and a client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use namers::telemetry::{Counter, Scope, Stat};

use super::{FailureKind, RequestStats, StatusCounts};

/// One of a router's servers: `rt/<router>/server/<ip>/<port>`, with the
/// configured port as Linkerd named it.
#[derive(Debug)]
pub struct ServerStats {
    segment: String,
    requests: RequestStats,
    status: StatusCounts,
    connects: Counter,
    connections: AtomicI64,
}

impl ServerStats {
    /// The figures of the server configured at `ip:port`.
    pub fn new(ip: IpAddr, port: u16) -> ServerStats {
        ServerStats {
            segment: format!("{ip}/{port}"),
            requests: RequestStats::default(),
            status: StatusCounts::default(),
            connects: Counter::default(),
            connections: AtomicI64::new(0),
        }
    }

    /// Counts an answered request: a 5XX answer is a failure.
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        self.requests.request();
        if status >= 500 {
            self.requests.failure_unexplained();
        } else {
            self.requests.success();
        }
        self.status.record(status);
        self.requests.latency(elapsed);
    }

    /// Counts a connection accepted, and open until the guard is dropped.
    pub(crate) fn connection(self: &Arc<ServerStats>) -> OpenConnection {
        self.connects.incr();
        self.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Lists under `rt/<router>/server`.
    pub(crate) fn list(&self, servers: &mut Scope<'_>) {
        let mut scope = servers.scope(&self.segment);
        self.requests.list(&mut scope);
        self.status.list(&mut scope);
        scope.counter("connects", self.connects.get());
        #[allow(clippy::cast_precision_loss)]
        scope.gauge(
            "connections",
            self.connections.load(Ordering::Relaxed).max(0) as f64,
        );
    }
}

/// A connection of a server, counted open while this lives.
#[derive(Debug)]
pub struct OpenConnection(Arc<ServerStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A destination path: `rt/<router>/service/<path>`.
#[derive(Debug)]
pub(crate) struct ServiceStats {
    segment: Arc<str>,
    pub(crate) requests: RequestStats,
    /// Requests made without a retry, added to `retries_per_request` as
    /// zeros when its interval ends: most requests are, and a counter costs
    /// less than a histogram.
    unretried: Counter,
    retries_per_request: Stat,
    retries_total: Counter,
    /// Retryable failures not retried: the budget (or the request's 25
    /// retries) was spent.
    pub(crate) budget_exhausted: Counter,
    /// Not retried: the request's body could not be sent again.
    pub(crate) body_not_replayable: Counter,
    /// Not retried: the pause would have ended past the deadline.
    pub(crate) past_deadline: Counter,
}

impl ServiceStats {
    pub(crate) fn new(segment: Arc<str>) -> ServiceStats {
        ServiceStats {
            segment,
            requests: RequestStats::default(),
            unretried: Counter::default(),
            retries_per_request: Stat::default(),
            retries_total: Counter::default(),
            budget_exhausted: Counter::default(),
            body_not_replayable: Counter::default(),
            past_deadline: Counter::default(),
        }
    }

    /// The scope's name (`svc/web`).
    pub(crate) fn segment(&self) -> &Arc<str> {
        &self.segment
    }

    /// Counts a request that made `retries` retries.
    pub(crate) fn retried(&self, retries: u32) {
        if retries == 0 {
            self.unretried.incr();
            return;
        }
        self.retries_per_request.add(u64::from(retries));
        self.retries_total.add(u64::from(retries));
    }

    /// Lists under `rt/<router>/service`.
    pub(crate) fn list(&self, services: &mut Scope<'_>) {
        let mut scope = services.scope(&self.segment);
        self.requests.list(&mut scope);
        if scope.is_rolling() {
            let zeros = self.unretried.take();
            self.retries_per_request.add_many(0, zeros);
        }
        scope.stat("retries/per_request", &self.retries_per_request);
        scope.counter("retries/total", self.retries_total.get());
        scope.counter("retries/budget_exhausted", self.budget_exhausted.get());
        scope.counter(
            "retries/body_not_replayable",
            self.body_not_replayable.get(),
        );
        scope.counter("retries/past_deadline", self.past_deadline.get());
    }
}

/// A bound id: `rt/<router>/client/<id>`, and per service under it.
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    pub(crate) requests: RequestStats,
    pub(crate) status: StatusCounts,
    /// Requests sent again after a connection failure.
    pub(crate) requeues: Counter,
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

/// The scopes a response classified only by its trailers still has to
/// be counted in.
#[derive(Debug)]
pub struct PendingOutcome {
    pub(crate) service: Arc<ServiceStats>,
    pub(crate) client: Arc<ClientStats>,
    pub(crate) client_service: Arc<RequestStats>,
}

impl PendingOutcome {
    /// Counts the class the trailers gave.
    pub(crate) fn settle(&self, success: bool) {
        for stats in [
            &self.service.requests,
            &self.client.requests,
            &*self.client_service,
        ] {
            if success {
                stats.success();
            } else {
                stats.failure(FailureKind::Classified);
            }
        }
    }
}
