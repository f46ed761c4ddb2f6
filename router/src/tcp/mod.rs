//! `protocol: tcp` routers: each accepted connection is named (by its
//! server's `dstName`, or by the server name of the client's TLS hello,
//! which is peeked and passes through untouched), bound through the
//! router's interpreter and binding cache like an HTTP request's name, sent
//! to an endpoint its client's balancer picks (a refused connection marks
//! the endpoint for failure accrual and another is tried), and spliced
//! byte for byte.

pub mod config;
pub mod sni;
mod splice;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, Label, Path};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::client::balance::{Outcome, Picked};
use crate::errors::RouterError;
use crate::service::DstTarget;
use crate::stack::RouterStack;
pub use config::{TcpNaming, TcpServer};
use stats::{Accepted, TcpServerStats};

/// How many endpoints one connection tries before it is closed (each try
/// after the first also needs the client's requeue budget).
const MAX_CONNECT_ATTEMPTS: usize = 3;

/// How many more picks a second try makes to avoid the endpoint that just
/// refused.
const AVOID_PICKS: usize = 3;

/// How long a client has to send its TLS hello to a `dstFromSni` server.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A `tcp` router's servers' figures, `rt/<router>/server/...`.
pub struct TcpFigures {
    label: String,
    servers: Vec<Arc<TcpServerStats>>,
}

impl namers::telemetry::Source for TcpFigures {
    fn list(&self, root: &mut namers::telemetry::Scope<'_>) {
        let mut rt = root.scope("rt");
        let mut router = rt.scope(&self.label);
        let mut scope = router.scope("server");
        for server in &self.servers {
            server.list(&mut scope);
        }
    }
}

/// Listens on each of `servers` for `router` and spawns their accept loops
/// into `tasks`; gives where they listen and their figures.
pub(crate) async fn listen(
    router: &Arc<RouterStack>,
    servers: &[TcpServer],
    at: &str,
    stop: &Arc<Notify>,
    tasks: &mut JoinSet<()>,
) -> Result<(Vec<SocketAddr>, TcpFigures), String> {
    let mut addrs = Vec::new();
    let mut figures = TcpFigures {
        label: router.label().to_string(),
        servers: Vec::new(),
    };
    for (i, server) in servers.iter().enumerate() {
        let listener = TcpListener::bind(server.addr)
            .await
            .map_err(|e| format!("{at}.servers[{i}]: cannot listen on {}: {e}", server.addr))?;
        addrs.push(listener.local_addr().map_err(|e| e.to_string())?);
        let stats = Arc::new(TcpServerStats::new(server.addr.ip(), server.addr.port()));
        figures.servers.push(stats.clone());
        // Registered now, so a stop that comes before the loop first runs
        // is not missed.
        let stopped = stop.clone().notified_owned();
        tasks.spawn(accept_loop(
            listener,
            router.clone(),
            Arc::new(server.clone()),
            stats,
            stopped,
        ));
    }
    Ok((addrs, figures))
}

/// Accepts connections until `stop`, then waits for the spliced ones.
/// Dropping the loop (at the end of the grace period) closes them.
async fn accept_loop(
    listener: TcpListener,
    router: Arc<RouterStack>,
    server: Arc<TcpServer>,
    stats: Arc<TcpServerStats>,
    stop: OwnedNotified,
) {
    tokio::pin!(stop);
    let limit = server.max_concurrency.map(|n| Arc::new(Semaphore::new(n)));
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match &limit {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    stats.refused();
                    tracing::debug!(%peer, "maxConcurrency connections open; closed");
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let accepted = stats.accepted();
        let router = router.clone();
        let server = server.clone();
        let stats = stats.clone();
        connections.spawn(async move {
            let _permit = permit;
            serve(&router, &server, &stats, stream, peer, accepted).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One connection: named, routed, spliced.
async fn serve(
    router: &RouterStack,
    server: &TcpServer,
    stats: &TcpServerStats,
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Accepted,
) {
    let started = Instant::now();
    let name = match &server.naming {
        TcpNaming::Static(name) => name.clone(),
        TcpNaming::Sni(prefix) => match sni_name(&stream, prefix).await {
            Ok(name) => name,
            Err(why) => {
                stats.unnamed();
                tracing::debug!(router = %router.label(), %peer, %why, "connection not named");
                return;
            }
        },
    };
    let timeout = server
        .connect_timeout
        .unwrap_or(router.spec().connect_timeout);
    let upstream = match connect(router, &name, started, timeout).await {
        Ok(upstream) => upstream,
        Err(e) => {
            stats.unrouted();
            tracing::debug!(router = %router.label(), %peer, error = %e, "connection not routed");
            return;
        }
    };
    let Upstream {
        stream: upstream,
        picked,
        client,
        _open,
    } = upstream;
    let figures = client.tcp.get_or_init(Default::default);
    let upward = |n| {
        accepted.received(n);
        figures.sent(n);
    };
    let downward = |n| {
        accepted.sent(n);
        figures.received(n);
    };
    let counting = splice::Counting {
        upward: &upward,
        downward: &downward,
    };
    let ended = splice::splice(stream, upstream, server.idle, server.life, counting).await;
    figures.closed();
    tracing::debug!(
        router = %router.label(),
        %peer,
        upstream = %picked.addr,
        name = %name.show(),
        %ended,
        "connection ended"
    );
}

/// A connection made to an endpoint of the name's client, and what is
/// held while it is open.
struct Upstream {
    stream: TcpStream,
    /// Counts in the balancer's load while the connection is open.
    picked: Picked,
    client: Arc<crate::client::stats::ClientStats>,
    _open: crate::stats::OpenConnection,
}

/// Binds `name` through the router's dtab and interpreter and connects to
/// an endpoint of its client, trying another after a refusal.
async fn connect(
    router: &RouterStack,
    name: &Path,
    started: Instant,
    timeout: Duration,
) -> Result<Upstream, RouterError> {
    let (bind, clients) = router.tcp_stages();
    let local = Dtab::empty();
    let target = DstTarget::new(&local, name.clone());
    let deadline = tokio::time::Instant::from_std(started) + router.spec().binding_timeout;
    let dst = bind.bound_tree(&target, &local, started, deadline).await?;
    let bound = bind.leaf(&dst.tree, &target, &local)?;
    let client = clients.client(bound, started);
    let client = &client.value;
    let figures = client.stats.tcp.get_or_init(Default::default);
    client
        .requeues
        .deposit_at(tokio::time::Instant::from_std(started));
    let mut failed_at = None;
    let mut tries = 0;
    loop {
        let mut picked = clients.pick(client, &target, bound, deadline).await?;
        for _ in 0..AVOID_PICKS {
            if failed_at != Some(picked.addr) {
                break;
            }
            picked = clients.pick(client, &target, bound, deadline).await?;
        }
        let began = Instant::now();
        let error = match tokio::time::timeout(timeout, TcpStream::connect(picked.addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                figures.connected(began.elapsed());
                picked.record(Outcome::Success);
                return Ok(Upstream {
                    stream,
                    picked,
                    _open: client.stats.connections.opened(),
                    client: client.stats.clone(),
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
            return Err(RouterError::Upstream(format!(
                "connecting to {} for {} failed: {error}",
                picked.addr,
                name.show()
            )));
        }
        client.stats.requeues.incr();
    }
}

/// `<prefix>/<host>`, the host the client's TLS hello names; the hello
/// stays unread.
async fn sni_name(stream: &TcpStream, prefix: &Path) -> Result<Path, String> {
    let host = peek_server_name(stream).await?;
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    let label = Label::new(host.as_bytes())
        .filter(|_| valid)
        .ok_or_else(|| format!("the server name {host:?} is not a host name"))?;
    Ok(prefix.concat_labels(&[label]))
}

/// The server name of the TLS hello at the front of `stream`, peeked.
async fn peek_server_name(stream: &TcpStream) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    let mut buf = vec![0u8; sni::MAX_HELLO];
    // `peek` answers at once while bytes wait unread, so a partial hello
    // is peeked again after a short pause rather than in a busy loop.
    let mut pause = Duration::from_millis(1);
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .map_err(|_| format!("no TLS hello within {HELLO_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before its TLS hello".into());
        }
        match sni::server_name(&buf[..n]) {
            sni::Hello::Host(host) => return Ok(host),
            sni::Hello::NoServerName => return Err("its TLS hello names no server".into()),
            sni::Hello::NotTls => return Err("it did not start with a TLS hello".into()),
            sni::Hello::Incomplete if n == buf.len() => {
                return Err("its TLS hello does not fit in one record".into());
            }
            sni::Hello::Incomplete => {
                tokio::time::timeout_at(deadline, tokio::time::sleep(pause))
                    .await
                    .map_err(|_| format!("no whole TLS hello within {HELLO_TIMEOUT:?}"))?;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}
