//! A `thrift` router's server figures, in Linkerd's scopes and Finagle's
//! names: per server `rt/<router>/server/<ip>/<port>/{requests, success,
//! failures, failures/<kind>, request_latency_ms, connects, connections,
//! closes, received_bytes, sent_bytes, malformed, too_large}`. Services
//! (`rt/<router>/service/<name>`) and clients (`rt/<router>/client/<id>`)
//! count requests as for HTTP, and clients their connections as for
//! `tcp` routers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use namers::telemetry::{Counter, Scope};

use crate::errors::RouterError;
use crate::stats::{ConnectionCounts, OpenConnection, RequestStats};

/// One server of a `thrift` router.
#[derive(Debug)]
pub struct ThriftServerStats {
    segment: String,
    requests: RequestStats,
    connections: Arc<ConnectionCounts>,
    closes: Counter,
    /// Bytes of messages read from clients.
    received: Counter,
    /// Bytes of messages written to clients.
    sent: Counter,
    /// Connections closed because what the client sent was not a Thrift
    /// call of the server's protocol and transport.
    malformed: Counter,
    /// Connections closed because a message was over the size limit.
    too_large: Counter,
}

impl ThriftServerStats {
    /// The figures of the server configured at `ip:port`.
    pub fn new(ip: IpAddr, port: u16) -> ThriftServerStats {
        ThriftServerStats {
            segment: format!("{ip}/{port}"),
            requests: RequestStats::default(),
            connections: Arc::default(),
            closes: Counter::default(),
            received: Counter::default(),
            sent: Counter::default(),
            malformed: Counter::default(),
            too_large: Counter::default(),
        }
    }

    /// Counts a connection accepted; it counts as closed when the guard
    /// goes.
    pub(crate) fn accepted(self: &Arc<ThriftServerStats>) -> Accepted {
        Accepted {
            _open: self.connections.opened(),
            stats: self.clone(),
        }
    }

    pub(crate) fn request(&self, bytes: usize) {
        self.requests.request();
        self.received.add(bytes as u64);
    }

    pub(crate) fn answered(&self, result: Result<(), &RouterError>, elapsed: Duration) {
        match result {
            Ok(()) => self.requests.success(),
            Err(e) => self.requests.failure(e.failure_kind()),
        }
        self.requests.latency(elapsed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.sent.add(bytes as u64);
    }

    pub(crate) fn malformed(&self) {
        self.malformed.incr();
    }

    pub(crate) fn too_large(&self) {
        self.too_large.incr();
    }

    /// Lists under `rt/<router>/server`.
    pub(crate) fn list(&self, servers: &mut Scope<'_>) {
        let mut scope = servers.scope(&self.segment);
        self.requests.list(&mut scope);
        self.connections.list(&mut scope);
        scope.counter("closes", self.closes.get());
        scope.counter("received_bytes", self.received.get());
        scope.counter("sent_bytes", self.sent.get());
        scope.counter("malformed", self.malformed.get());
        scope.counter("too_large", self.too_large.get());
    }
}

/// An accepted connection, open while this lives.
#[derive(Debug)]
pub(crate) struct Accepted {
    _open: OpenConnection,
    stats: Arc<ThriftServerStats>,
}

impl Drop for Accepted {
    fn drop(&mut self) {
        self.stats.closes.incr();
    }
}
