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
use serde_json::Value;

use crate::config::RouterConfig;
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

/// Keys of `routers[i]` that only mean something for HTTP.
const HTTP_ROUTER_KEYS: &[&str] = &[
    "identifier",
    "service",
    "responseClassifier",
    "tracePropagator",
    "dtabHeaderLimits",
    "accessControl",
    "rateLimits",
    "maxHeadersKB",
    "maxInitialLineKB",
    "httpAccessLog",
    "httpAccessLogRollPolicy",
    "httpAccessLogAppend",
    "httpAccessLogRotateCount",
    "h2AccessLog",
    "h2AccessLogRollPolicy",
    "h2AccessLogAppend",
    "h2AccessLogRotateCount",
];

/// Keys of a client block that only mean something for HTTP (or for
/// TLS the router would originate: a `tcp` router passes bytes through).
const HTTP_CLIENT_KEYS: &[&str] = &[
    "requestAttemptTimeoutMs",
    "hostConnectionPool",
    "tls",
    "forwardClientCert",
];

/// Checks that `router`, a `tcp` router at `at`, sets no HTTP key, and
/// gives its servers.
pub(crate) fn check(
    router: &RouterConfig,
    at: &str,
    dst_prefix: &Path,
) -> Result<Vec<TcpServer>, String> {
    if let Some(key) = http_router_keys(router).first() {
        return Err(format!(
            "{at}.{key}: an HTTP key; tcp routers do not take it"
        ));
    }
    if let Some(client) = &router.client {
        check_client(&client.0, &format!("{at}.client"))?;
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

/// The HTTP-only keys `router` sets, in [`HTTP_ROUTER_KEYS`] order.
fn http_router_keys(router: &RouterConfig) -> Vec<&'static str> {
    let set = [
        router.identifier.is_some(),
        router.service.is_some(),
        router.response_classifier.is_some(),
        router.trace_propagator.is_some(),
        router.dtab_header_limits.is_some(),
        router.access_control.is_some(),
        router.rate_limits.is_some(),
        router.max_headers_kb.is_some(),
        router.max_initial_line_kb.is_some(),
        router.http_access_log.is_some(),
        router.http_access_log_roll_policy.is_some(),
        router.http_access_log_append.is_some(),
        router.http_access_log_rotate_count.is_some(),
        router.h2_access_log.is_some(),
        router.h2_access_log_roll_policy.is_some(),
        router.h2_access_log_append.is_some(),
        router.h2_access_log_rotate_count.is_some(),
    ];
    HTTP_ROUTER_KEYS
        .iter()
        .zip(set)
        .filter_map(|(key, set)| set.then_some(*key))
        .collect()
}

/// Refuses HTTP client keys in an `io.l5d.global` block or in any
/// `configs` entry of an `io.l5d.static` one.
fn check_client(client: &serde_json::Map<String, Value>, at: &str) -> Result<(), String> {
    let refuse = |params: &serde_json::Map<String, Value>, at: &str| match HTTP_CLIENT_KEYS
        .iter()
        .find(|k| params.contains_key(**k))
    {
        Some(key) => Err(format!(
            "{at}.{key}: an HTTP key; tcp routers do not take it"
        )),
        None => Ok(()),
    };
    refuse(client, at)?;
    if let Some(Value::Array(configs)) = client.get("configs") {
        for (i, entry) in configs.iter().enumerate() {
            if let Value::Object(params) = entry {
                refuse(params, &format!("{at}.configs[{i}]"))?;
            }
        }
    }
    Ok(())
}

/// One server of a `tcp` router, checked.
fn tcp_server(server: &ServerConfig, at: &str, dst_prefix: &Path) -> Result<TcpServer, String> {
    let http_keys = [
        ("clearContext", server.clear_context),
        ("maxCallDepth", server.max_call_depth.is_some()),
        (
            "maxConcurrentRequests",
            server.max_concurrent_requests.is_some(),
        ),
        (
            "maxConcurrentStreamsPerConnection",
            server.max_concurrent_streams_per_connection.is_some(),
        ),
        ("tls", server.tls.is_some()),
        ("addForwardedHeader", server.add_forwarded_header.is_some()),
        (
            "serverSession.maxRequests",
            server
                .server_session
                .as_ref()
                .is_some_and(|s| s.max_requests.is_some()),
        ),
    ];
    if let Some((key, _)) = http_keys.iter().find(|(_, set)| *set) {
        let why = if *key == "tls" {
            "tcp routers pass TLS through; they do not terminate it"
        } else {
            "an HTTP key; tcp routers do not take it"
        };
        return Err(format!("{at}.{key}: {why}"));
    }
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
