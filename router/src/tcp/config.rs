//! A `tcp` router's config: the keys that work for it, and its servers.
//!
//! A `tcp` router shares the naming keys of every router (`dtab`,
//! `dstPrefix`, `interpreter`, `bindingCache`, `bindingTimeoutMs`,
//! `bindingLimits`) and the client keys that are about endpoints
//! (`loadBalancer`, `failureAccrual`, `failFast`, `requeueBudget`,
//! `connectTimeoutMs`). Keys about requests, headers or HTTP are refused
//! by name rather than ignored.

use std::net::SocketAddr;
use std::time::Duration;

use dtab::Path;

use crate::config::RouterConfig;
use crate::conn::config as conn_config;
use crate::server::config::ServerConfig;

/// How long a spliced connection may carry no byte either way, unless
/// `serverSession.idleTimeMs` says otherwise.
pub const DEFAULT_TCP_IDLE: Duration = Duration::from_secs(600);

/// One checked server of a `tcp` router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// How its connections are named.
    pub naming: TcpNaming,
    /// `connectTimeoutMs` of the server, over the client's.
    pub connect_timeout: Option<Duration>,
    /// `serverSession.idleTimeMs`: a connection idle this long is closed.
    pub idle: Duration,
    /// `serverSession.lifeTimeMs`: a connection is closed at this age.
    pub life: Option<Duration>,
    /// `maxConcurrency`: connections spliced at once.
    pub max_concurrency: Option<usize>,
}

/// Where a connection's name comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpNaming {
    /// `dstName`: every connection has this name.
    Static(Path),
    /// `dstFromSni`: `<dstPrefix>/<host>`, the host from the TLS hello.
    Sni(Path),
}

/// Keys of a client block that only mean something for HTTP (or for
/// TLS the router would originate: a `tcp` router passes bytes through).
const HTTP_CLIENT_KEYS: &[(&str, &str)] = &[
    (
        "requestAttemptTimeoutMs",
        "an HTTP key; tcp routers do not take it",
    ),
    (
        "hostConnectionPool",
        "an HTTP key; tcp routers do not take it",
    ),
    ("tls", "an HTTP key; tcp routers do not take it"),
    (
        "forwardClientCert",
        "an HTTP key; tcp routers do not take it",
    ),
];

/// Checks that `router`, a `tcp` router at `at`, sets no HTTP key, and
/// gives its servers.
pub(crate) fn check(
    router: &RouterConfig,
    at: &str,
    dst_prefix: &Path,
) -> Result<Vec<TcpServer>, String> {
    conn_config::refuse_http_router_keys(router, at, "tcp")?;
    if let Some(client) = &router.client {
        conn_config::refuse_client_keys(&client.0, &format!("{at}.client"), HTTP_CLIENT_KEYS)?;
    }
    if router.servers.is_empty() {
        return Err(format!("{at}.servers: at least one server is required"));
    }
    router
        .servers
        .iter()
        .enumerate()
        .map(|(i, server)| tcp_server(server, &format!("{at}.servers[{i}]"), dst_prefix))
        .collect()
}

/// Refuses the `tcp` server keys on a router of another protocol.
pub(crate) fn refuse_tcp_keys(router: &RouterConfig, at: &str) -> Result<(), String> {
    for (i, server) in router.servers.iter().enumerate() {
        let keys = [
            ("dstName", server.dst_name.is_some()),
            ("dstFromSni", server.dst_from_sni.is_some()),
            ("connectTimeoutMs", server.connect_timeout_ms.is_some()),
            ("maxConcurrency", server.max_concurrency.is_some()),
        ];
        if let Some((key, _)) = keys.iter().find(|(_, set)| *set) {
            return Err(format!("{at}.servers[{i}].{key}: only tcp routers take it"));
        }
    }
    Ok(())
}

/// One server of a `tcp` router, checked.
fn tcp_server(server: &ServerConfig, at: &str, dst_prefix: &Path) -> Result<TcpServer, String> {
    conn_config::refuse_http_server_keys(
        server,
        at,
        "tcp",
        "tcp routers pass TLS through; they do not terminate it",
    )?;
    let Some(port) = server.port else {
        return Err(format!("{at}.port: a tcp server needs a port"));
    };
    let naming = match (&server.dst_name, server.dst_from_sni.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(format!(
                "{at}.dstFromSni: a server takes dstName or dstFromSni, not both"
            ));
        }
        (Some(name), false) => {
            let path = Path::read(name).map_err(|e| format!("{at}.dstName: {e}"))?;
            if path.is_empty() {
                return Err(format!("{at}.dstName: the name is empty"));
            }
            TcpNaming::Static(path)
        }
        (None, true) => TcpNaming::Sni(dst_prefix.clone()),
        (None, false) => {
            return Err(format!(
                "{at}: a tcp server names its connections with dstName or dstFromSni: true"
            ));
        }
    };
    let session = server.server_session.as_ref();
    let ms = |ms: std::num::NonZeroU64| Duration::from_millis(ms.get());
    Ok(TcpServer {
        addr: SocketAddr::new(server.ip, port),
        naming,
        connect_timeout: server.connect_timeout_ms.map(ms),
        idle: session
            .and_then(|s| s.idle_time_ms)
            .map_or(DEFAULT_TCP_IDLE, ms),
        life: session.and_then(|s| s.life_time_ms).map(ms),
        max_concurrency: server.max_concurrency.map(usize::from),
    })
}
