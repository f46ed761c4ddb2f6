//! From a name to a connection: the name is bound through the router's
//! dtab, interpreter and binding cache like an HTTP request's (no local
//! dtab), its client picks an endpoint, and a connection is made to it;
//! one that cannot be made marks the endpoint for failure accrual and
//! another endpoint is tried within the client's requeue budget.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, Path};
use namers::Bound;
use tokio::net::TcpStream;

use crate::bind::cache::Entry;
use crate::client::Client;
use crate::client::balance::{Outcome, Picked};
use crate::errors::RouterError;
use crate::service::{DstTarget, Service};
use crate::stack::RouterStack;

/// How many endpoints one connection (or request) tries before it fails
/// (each try after the first also needs the client's requeue budget).
const MAX_CONNECT_ATTEMPTS: usize = 3;

/// How many more picks a second try makes to avoid the endpoint that just
/// refused.
const AVOID_PICKS: usize = 3;

/// A name bound to a client.
pub(crate) struct Route {
    pub(crate) target: DstTarget,
    pub(crate) bound: Bound,
    pub(crate) client: Arc<Entry<Client>>,
    /// `rt/<router>/service/<name>`.
    pub(crate) service: Arc<Service>,
    /// When waiting for a pending binding or address gives up.
    pub(crate) deadline: tokio::time::Instant,
    started: Instant,
}

impl Route {
    /// The client of the bound name.
    pub(crate) fn client(&self) -> &Client {
        &self.client.value
    }
}

/// Binds `name` through the router's dtab and interpreter; the request
/// (or connection) began at `started`.
pub(crate) async fn route(
    router: &RouterStack,
    name: &Path,
    started: Instant,
) -> Result<Route, RouterError> {
    let (bind, clients) = router.tcp_stages();
    let local = Dtab::empty();
    let target = DstTarget::new(&local, name.clone());
    let deadline = tokio::time::Instant::from_std(started) + router.spec().binding_timeout;
    let dst = bind.bound_tree(&target, &local, started, deadline).await?;
    let bound = bind.leaf(&dst.tree, &target, &local)?.clone();
    let client = clients.client(&bound, started);
    Ok(Route {
        target,
        bound,
        client,
        service: dst.service,
        deadline,
        started,
    })
}

/// A connection to an endpoint: one kept from an earlier request, or a
/// new one.
pub(crate) enum Connection<T> {
    /// What `reuse` gave for the endpoint picked.
    Reused(T),
    /// A new connection, counted open in the client's figures while the
    /// guard lives.
    Opened(TcpStream, crate::stats::OpenConnection),
}

/// A connection to an endpoint of `route`'s client and the pick that
/// chose it (which counts in the balancer's load while it lives, and is
/// left for the caller to record the outcome on).
pub(crate) struct Upstream<T> {
    pub(crate) connection: Connection<T>,
    pub(crate) picked: Picked,
}

/// Picks an endpoint of `route`'s client and gives a connection to it:
/// `reuse`'s, if it has one for the endpoint's address, else a new one
/// made within `timeout`. A connection that cannot be made marks the
/// endpoint, and another is tried.
pub(crate) async fn connect<T>(
    router: &RouterStack,
    route: &Route,
    timeout: Duration,
    mut reuse: impl FnMut(SocketAddr) -> Option<T>,
) -> Result<Upstream<T>, RouterError> {
    let (_, clients) = router.tcp_stages();
    let client = route.client();
    let name = &route.target.name;
    let figures = client.stats.tcp.get_or_init(Default::default);
    client
        .requeues
        .deposit_at(tokio::time::Instant::from_std(route.started));
    let mut failed_at = None;
    let mut tries = 0;
    loop {
        let (mut picked, _) = clients
            .pick(client, &route.target, &route.bound, route.deadline)
            .await?;
        for _ in 0..AVOID_PICKS {
            if failed_at != Some(picked.addr) {
                break;
            }
            (picked, _) = clients
                .pick(client, &route.target, &route.bound, route.deadline)
                .await?;
        }
        if let Some(kept) = reuse(picked.addr) {
            return Ok(Upstream {
                connection: Connection::Reused(kept),
                picked,
            });
        }
        let began = Instant::now();
        let error = match tokio::time::timeout(timeout, TcpStream::connect(picked.addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                figures.connected(began.elapsed());
                return Ok(Upstream {
                    connection: Connection::Opened(stream, client.stats.connections.opened()),
                    picked,
                });
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {timeout:?}"),
        };
        picked.record(Outcome::ConnectFailed);
        figures.connect_failed();
        tries += 1;
        failed_at = Some(picked.addr);
        tracing::debug!(
            name = %name.show(),
            endpoint = %picked.addr,
            %error,
            "connection to an endpoint failed"
        );
        if tries >= MAX_CONNECT_ATTEMPTS || !client.requeues.try_withdraw() {
            return Err(RouterError::Unsent(format!(
                "connecting to {} for {} failed: {error}",
                picked.addr,
                name.show()
            )));
        }
        client.stats.requeues.incr();
    }
}
