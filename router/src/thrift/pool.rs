//! Idle connections to endpoints, kept between requests and shared by a
//! router's client connections. A Thrift connection without mux carries
//! one request at a time, so a connection is taken out for a request and
//! put back after its answer; one whose answer did not come whole is not
//! put back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::transport::MessageStream;
use crate::client::stats::ClientStats;
use crate::stats::OpenConnection;

/// Idle connections kept per endpoint (and transport), at most.
const MAX_IDLE_PER_ENDPOINT: usize = 64;

/// A connection to an endpoint.
pub(crate) struct UpstreamConnection {
    pub(crate) stream: MessageStream,
    /// The client that opened it, whose figures count it.
    client: Arc<ClientStats>,
    _open: OpenConnection,
}

impl UpstreamConnection {
    pub(crate) fn new(
        stream: MessageStream,
        client: Arc<ClientStats>,
        open: OpenConnection,
    ) -> UpstreamConnection {
        UpstreamConnection {
            stream,
            client,
            _open: open,
        }
    }

    /// The figures of the client that opened it.
    pub(crate) fn client(&self) -> Arc<ClientStats> {
        self.client.clone()
    }

    /// Whether the endpoint has neither closed it nor sent anything
    /// unasked.
    fn is_usable(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            self.stream.stream().try_read(&mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }
}

impl Drop for UpstreamConnection {
    fn drop(&mut self) {
        if let Some(figures) = self.client.tcp.get() {
            figures.closed();
        }
    }
}

struct Idle {
    connection: UpstreamConnection,
    since: Instant,
}

/// The idle connections of one router, by endpoint and transport
/// (`true`: framed).
pub(crate) struct Pool {
    idle: Mutex<HashMap<(SocketAddr, bool), Vec<Idle>>>,
    /// How long a connection may stay idle.
    idle_time: Duration,
}

impl Pool {
    pub(crate) fn new(idle_time: Duration) -> Pool {
        Pool {
            idle: Mutex::default(),
            idle_time,
        }
    }

    /// The most recently used idle connection to `addr` that is still
    /// usable.
    pub(crate) fn take(&self, addr: SocketAddr, framed: bool) -> Option<UpstreamConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(&(addr, framed))?;
        let now = Instant::now();
        while let Some(kept) = list.pop() {
            if now.duration_since(kept.since) < self.idle_time && kept.connection.is_usable() {
                return Some(kept.connection);
            }
        }
        None
    }

    /// Keeps `connection` to `addr` for a later request.
    pub(crate) fn put(&self, addr: SocketAddr, framed: bool, connection: UpstreamConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry((addr, framed)).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    /// Closes the connections idle for too long, or closed by their
    /// endpoint.
    pub(crate) fn expire_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        for list in idle.values_mut() {
            list.retain(|kept| {
                now.duration_since(kept.since) < self.idle_time && kept.connection.is_usable()
            });
        }
        idle.retain(|_, list| !list.is_empty());
    }
}
