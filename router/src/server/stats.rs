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
    /// The server's TLS, when it has some, for its reload figures.
    tls: std::sync::OnceLock<Arc<namers::tls::ServerTls>>,
    /// TLS handshakes that failed or timed out.
    tls_handshake_failures: std::sync::atomic::AtomicU64,
}

impl ServerStats {
    /// The figures of the server configured at `ip:port`.
    pub fn new(ip: IpAddr, port: u16) -> ServerStats {
        ServerStats {
            segment: format!("{ip}/{port}"),
            requests: RequestStats::default(),
            status: StatusCounts::default(),
            connections: Arc::default(),
            tls: std::sync::OnceLock::new(),
            tls_handshake_failures: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The server speaks TLS with `tls`.
    pub(crate) fn set_tls(&self, tls: Arc<namers::tls::ServerTls>) {
        let _ = self.tls.set(tls);
    }

    /// Counts a TLS handshake that failed or timed out.
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        if let Some(tls) = self.tls.get() {
            list_tls(&mut scope, tls, &self.tls_handshake_failures);
        }
    }
}

/// `tls/handshake_failures`, and the reload figures of [`list_reloads`].
fn list_tls(
    scope: &mut Scope<'_>,
    tls: &namers::tls::ServerTls,
    handshake_failures: &std::sync::atomic::AtomicU64,
) {
    let mut scope = scope.scope("tls");
    scope.counter(
        "handshake_failures",
        handshake_failures.load(std::sync::atomic::Ordering::Relaxed),
    );
    list_reloads(&mut scope, tls.stats());
}

/// `reloads`, `reload_failures` and `expires_in_s`.
pub(crate) fn list_reloads(scope: &mut Scope<'_>, stats: &namers::tls::reload::ReloadStats) {
    stats.list(scope);
}
