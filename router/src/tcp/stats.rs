//! A `tcp` router's figures, in Linkerd's scopes and Finagle's names:
//! per server `rt/<router>/server/<ip>/<port>/{connects, connections,
//! closes, received_bytes, sent_bytes, refused, unnamed, unrouted}`, and per client
//! (bound id) `rt/<router>/client/<id>/{connects, connections, closes,
//! connect_failures, connect_latency_ms, received_bytes, sent_bytes}`
//! (`connects` and `connections` of a client are its
//! [`ConnectionCounts`](crate::stats::ConnectionCounts), shared with HTTP).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use namers::telemetry::{Counter, Scope, Stat};

use crate::stats::{ConnectionCounts, OpenConnection};

/// One server of a `tcp` router.
#[derive(Debug)]
pub struct TcpServerStats {
    segment: String,
    connections: Arc<ConnectionCounts>,
    closes: Counter,
    /// Bytes read from clients.
    received: Counter,
    /// Bytes written to clients.
    sent: Counter,
    /// Connections closed at accept: `maxConcurrency` were open.
    refused: Counter,
    /// Connections closed unnamed: no TLS hello, or no server name in it.
    unnamed: Counter,
    /// Connections closed because their name did not bind or no endpoint
    /// took a connection.
    unrouted: Counter,
}

impl TcpServerStats {
    /// The figures of the server configured at `ip:port`.
    pub fn new(ip: IpAddr, port: u16) -> TcpServerStats {
        TcpServerStats {
            segment: format!("{ip}/{port}"),
            connections: Arc::default(),
            closes: Counter::default(),
            received: Counter::default(),
            sent: Counter::default(),
            refused: Counter::default(),
            unnamed: Counter::default(),
            unrouted: Counter::default(),
        }
    }

    /// Counts a connection accepted; it counts as closed when the guard
    /// goes.
    pub(crate) fn accepted(self: &Arc<TcpServerStats>) -> Accepted {
        Accepted {
            _open: self.connections.opened(),
            stats: self.clone(),
        }
    }

    pub(crate) fn refused(&self) {
        self.refused.incr();
    }

    pub(crate) fn unnamed(&self) {
        self.unnamed.incr();
    }

    pub(crate) fn unrouted(&self) {
        self.unrouted.incr();
    }

    /// Lists under `rt/<router>/server`.
    pub(crate) fn list(&self, servers: &mut Scope<'_>) {
        let mut scope = servers.scope(&self.segment);
        self.connections.list(&mut scope);
        scope.counter("closes", self.closes.get());
        scope.counter("received_bytes", self.received.get());
        scope.counter("sent_bytes", self.sent.get());
        scope.counter("refused", self.refused.get());
        scope.counter("unnamed", self.unnamed.get());
        scope.counter("unrouted", self.unrouted.get());
    }
}

/// An accepted connection, open while this lives.
#[derive(Debug)]
pub(crate) struct Accepted {
    _open: OpenConnection,
    stats: Arc<TcpServerStats>,
}

impl Accepted {
    pub(crate) fn received(&self, n: usize) {
        self.stats.received.add(n as u64);
    }

    pub(crate) fn sent(&self, n: usize) {
        self.stats.sent.add(n as u64);
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        self.stats.closes.incr();
    }
}

/// What a client of a `tcp` router counts besides its connections.
#[derive(Debug, Default)]
pub(crate) struct TcpClientStats {
    closes: Counter,
    connect_failures: Counter,
    connect_latency: Stat,
    /// Bytes read from endpoints.
    received: Counter,
    /// Bytes written to endpoints.
    sent: Counter,
}

impl TcpClientStats {
    pub(crate) fn connected(&self, elapsed: Duration) {
        self.connect_latency
            .add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }

    pub(crate) fn connect_failed(&self) {
        self.connect_failures.incr();
    }

    pub(crate) fn closed(&self) {
        self.closes.incr();
    }

    pub(crate) fn received(&self, n: usize) {
        self.received.add(n as u64);
    }

    pub(crate) fn sent(&self, n: usize) {
        self.sent.add(n as u64);
    }

    /// Lists into the client's scope (`connects` and `connections` are
    /// listed with the client's connection counts).
    pub(crate) fn list(&self, scope: &mut Scope<'_>) {
        scope.counter("closes", self.closes.get());
        scope.counter("connect_failures", self.connect_failures.get());
        scope.stat("connect_latency_ms", &self.connect_latency);
        scope.counter("received_bytes", self.received.get());
        scope.counter("sent_bytes", self.sent.get());
    }
}
