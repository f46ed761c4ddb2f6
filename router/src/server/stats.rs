//! The server stage's figures: `rt/<router>/server/<ip>/<port>`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use namers::telemetry::{Counter, Scope};

use crate::stats::{RequestStats, StatusCounts};

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
