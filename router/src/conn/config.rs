//! The keys of a router's config that only mean something for HTTP,
//! refused by name on routers of other protocols rather than ignored.

use serde_json::Value;

use crate::config::RouterConfig;
use crate::server::config::ServerConfig;

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

/// Refuses the first HTTP key `router` sets; `protocol` names the
/// router's protocol in the message.
pub(crate) fn refuse_http_router_keys(
    router: &RouterConfig,
    at: &str,
    protocol: &str,
) -> Result<(), String> {
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
    match HTTP_ROUTER_KEYS.iter().zip(set).find(|(_, set)| *set) {
        Some((key, _)) => Err(format!(
            "{at}.{key}: an HTTP key; {protocol} routers do not take it"
        )),
        None => Ok(()),
    }
}

/// Refuses the client keys of `refused` (key, why) in an
/// `io.l5d.global` block or in any `configs` entry of an `io.l5d.static`
/// one.
pub(crate) fn refuse_client_keys(
    client: &serde_json::Map<String, Value>,
    at: &str,
    refused: &[(&str, &str)],
) -> Result<(), String> {
    let refuse = |params: &serde_json::Map<String, Value>, at: &str| match refused
        .iter()
        .find(|(key, _)| params.contains_key(*key))
    {
        Some((key, why)) => Err(format!("{at}.{key}: {why}")),
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

/// Refuses the first HTTP key `server` (at `at`) sets, with `why_tls`
/// for its `tls`.
pub(crate) fn refuse_http_server_keys(
    server: &ServerConfig,
    at: &str,
    protocol: &str,
    why_tls: &str,
) -> Result<(), String> {
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
    match http_keys.iter().find(|(_, set)| *set) {
        Some(("tls", _)) => Err(format!("{at}.tls: {why_tls}")),
        Some((key, _)) => Err(format!(
            "{at}.{key}: an HTTP key; {protocol} routers do not take it"
        )),
        None => Ok(()),
    }
}
