//! The server stage's figures: `rt/<router>/server/<ip>/<port>`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use namers::telemetry::Scope;

use crate::stats::{ConnectionCounts, OpenConnection, RequestStats, StatusCounts};

/// One of a router's servers: `rt/<router>/server/<ip>/<port>`, with the
/// configured port as Linkerd named it.
#[derive(Debug)]
pub struct ServerStats {
    segment: String,
    requests: RequestStats,
    status: StatusCounts,
    connections: Arc<ConnectionCounts>,
}

impl ServerStats {
    /// The figures of the server configured at `ip:port`.
    pub fn new(ip: IpAddr, port: u16) -> ServerStats {
        ServerStats {
            segment: format!("{ip}/{port}"),
            requests: RequestStats::default(),
            status: StatusCounts::default(),
            connections: Arc::default(),
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
        if crate::stats::COUNTING {
            self.status.record(status);
        }
        self.requests.latency(elapsed);
    }

    /// Counts a connection accepted, and open until the guard is dropped.
    pub(crate) fn connection(&self) -> OpenConnection {
        self.connections.opened()
    }

    /// Lists under `rt/<router>/server`.
    pub(crate) fn list(&self, servers: &mut Scope<'_>) {
        let mut scope = servers.scope(&self.segment);
        self.requests.list(&mut scope);
        self.status.list(&mut scope);
        self.connections.list(&mut scope);
    }
}
