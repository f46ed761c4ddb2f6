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

use dtab::{Label, Path};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::client::balance::{Outcome, Picked};
use crate::conn::accept::{Stopping, accept_loop};
use crate::conn::upstream::{self, Connection};
use crate::errors::RouterError;
use crate::stack::RouterStack;
pub use config::{TcpNaming, TcpServer};
use stats::{Accepted, TcpServerStats};

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
        let refusing = stats.clone();
        let refused = move |peer| {
            refusing.refused();
            tracing::debug!(%peer, "maxConcurrency connections open; closed");
        };
        let router = router.clone();
        let limit = server.max_concurrency;
        let server = Arc::new(server.clone());
        let serve = move |stream, peer, _: Stopping| {
            let accepted = stats.accepted();
            let (router, server, stats) = (router.clone(), server.clone(), stats.clone());
            async move { serve(&router, &server, &stats, stream, peer, accepted).await }
        };
        // Registered now, so a stop that comes before the loop first runs
        // is not missed.
        let stopped = stop.clone().notified_owned();
        tasks.spawn(accept_loop(listener, stopped, limit, refused, serve));
    }
    Ok((addrs, figures))
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
    let route = upstream::route(router, name, started).await?;
    let upstream::Upstream {
        connection,
        mut picked,
    } = upstream::connect(
        router,
        &route,
        timeout,
        |_| None::<std::convert::Infallible>,
    )
    .await?;
    let (stream, open) = match connection {
        Connection::Opened(stream, open) => (stream, open),
        Connection::Reused(never) => match never {},
    };
    picked.record(Outcome::Success);
    Ok(Upstream {
        stream,
        picked,
        client: route.client().stats.clone(),
        _open: open,
    })
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
