//! A `thrift` router's config: Linkerd's thrift keys (`thriftMethodInDst`,
//! `thriftProtocol`; `thriftFramed` on servers and clients;
//! `attemptTTwitterUpgrade: false` on clients), the shared naming keys
//! (`dtab`, `dstPrefix`, `interpreter`, `bindingCache`,
//! `bindingTimeoutMs`, `bindingLimits`) and the client keys about
//! endpoints (`loadBalancer`, `failureAccrual`, `failFast`,
//! `requeueBudget`, `connectTimeoutMs`, `requestAttemptTimeoutMs`). HTTP
//! keys are refused by name; so are the thrift keys on other routers.

use std::net::SocketAddr;
use std::time::Duration;

use dtab::Path;
use serde_json::{Map, Value};

use crate::client::config::ClientConfig;
use crate::config::RouterConfig;
use crate::conn::config as conn_config;
use crate::policy::prefix::PrefixPattern;
use crate::server::config::ServerConfig;

/// Linkerd's port for a thrift server that sets none.
pub const DEFAULT_THRIFT_PORT: u16 = 4114;

/// How long a client connection may wait between requests, unless
/// `serverSession.idleTimeMs` says otherwise (as for `tcp` routers:
/// Thrift clients keep their connections).
pub const DEFAULT_THRIFT_IDLE: Duration = crate::tcp::config::DEFAULT_TCP_IDLE;

/// Thrift's two protocols (`thriftProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThriftProtocol {
    /// `TBinaryProtocol` (the default).
    Binary,
    /// `TCompactProtocol`.
    Compact,
}

/// A `thrift` router's checked settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ThriftSpec {
    /// Its servers.
    pub servers: Vec<ThriftServer>,
    /// `thriftMethodInDst`: the method name is the name's last segment.
    pub method_in_dst: bool,
    /// `thriftProtocol`, of servers and clients alike.
    pub protocol: ThriftProtocol,
    /// The clients' `thriftFramed`.
    pub clients: ThriftClients,
}

/// One checked server of a `thrift` router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThriftServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `thriftFramed`: framed transport (else buffered).
    pub framed: bool,
    /// `serverSession.idleTimeMs`: a connection that waits this long for
    /// its next request is closed.
    pub idle: Duration,
    /// `serverSession.lifeTimeMs`: a connection is closed at this age,
    /// after the request in flight.
    pub life: Option<Duration>,
}

/// The transport of each client: `thriftFramed` of an `io.l5d.global`
/// block, or of the `io.l5d.static` entries whose prefix matches the
/// bound id (later entries override earlier ones).
#[derive(Debug, Clone, PartialEq)]
pub enum ThriftClients {
    /// Every client.
    Global {
        /// `thriftFramed` (default true).
        framed: bool,
    },
    /// Per prefix; `None` where an entry does not set it.
    Static(Vec<(PrefixPattern, Option<bool>)>),
}

impl ThriftClients {
    /// Whether the client of bound id `id` frames its requests.
    pub fn framed(&self, id: &Path) -> bool {
        match self {
            ThriftClients::Global { framed } => *framed,
            ThriftClients::Static(entries) => entries
                .iter()
                .filter(|(prefix, _)| prefix.matches(id).is_some())
                .fold(true, |framed, (_, set)| set.unwrap_or(framed)),
        }
    }
}

/// The thrift keys of a client block.
const THRIFT_CLIENT_KEYS: &[&str] = &["thriftFramed", "attemptTTwitterUpgrade"];

/// Client keys a `thrift` router refuses, and why.
const REFUSED_CLIENT_KEYS: &[(&str, &str)] = &[
    (
        "hostConnectionPool",
        "not supported yet on thrift routers (idle connections are kept per endpoint for the router's idle time)",
    ),
    ("tls", "TLS to thrift endpoints is not supported yet"),
    (
        "forwardClientCert",
        "an HTTP key; thrift routers do not take it",
    ),
];

/// Checks `router`, a `thrift` router at `at`.
pub(crate) fn check(router: &RouterConfig, at: &str) -> Result<ThriftSpec, String> {
    if router.service.is_some() {
        return Err(format!("{at}.service: not supported yet on thrift routers"));
    }
    conn_config::refuse_http_router_keys(router, at, "thrift")?;
    let protocol = match router.thrift_protocol.as_deref() {
        None | Some("binary") => ThriftProtocol::Binary,
        Some("compact") => ThriftProtocol::Compact,
        Some(other) => {
            return Err(format!(
                "{at}.thriftProtocol: {other:?} is not a thrift protocol; expected binary or compact"
            ));
        }
    };
    let clients = match &router.client {
        Some(client) => {
            let at = format!("{at}.client");
            conn_config::refuse_client_keys(&client.0, &at, REFUSED_CLIENT_KEYS)?;
            thrift_clients(&client.0, &at)?
        }
        None => ThriftClients::Global { framed: true },
    };
    if router.servers.is_empty() {
        return Err(format!("{at}.servers: at least one server is required"));
    }
    let servers = router
        .servers
        .iter()
        .enumerate()
        .map(|(i, server)| thrift_server(server, &format!("{at}.servers[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(ThriftSpec {
        servers,
        method_in_dst: router.thrift_method_in_dst.unwrap_or(false),
        protocol,
        clients,
    })
}

/// Refuses the thrift keys on a router of another protocol.
pub(crate) fn refuse_thrift_keys(router: &RouterConfig, at: &str) -> Result<(), String> {
    let only = "only thrift routers take it";
    if router.thrift_method_in_dst.is_some() {
        return Err(format!("{at}.thriftMethodInDst: {only}"));
    }
    if router.thrift_protocol.is_some() {
        return Err(format!("{at}.thriftProtocol: {only}"));
    }
    if let Some(i) = router
        .servers
        .iter()
        .position(|s| s.thrift_framed.is_some())
    {
        return Err(format!("{at}.servers[{i}].thriftFramed: {only}"));
    }
    if let Some(client) = &router.client {
        let refused: Vec<(&str, &str)> = THRIFT_CLIENT_KEYS.iter().map(|k| (*k, only)).collect();
        conn_config::refuse_client_keys(&client.0, &format!("{at}.client"), &refused)?;
    }
    Ok(())
}

/// `client` without its thrift keys, for the client policies every
/// router shares.
pub(crate) fn without_thrift_keys(client: &ClientConfig) -> ClientConfig {
    let strip = |params: &mut Map<String, Value>| {
        for key in THRIFT_CLIENT_KEYS {
            params.remove(*key);
        }
    };
    let mut map = client.0.clone();
    strip(&mut map);
    if let Some(Value::Array(configs)) = map.get_mut("configs") {
        for entry in configs {
            if let Value::Object(params) = entry {
                strip(params);
            }
        }
    }
    ClientConfig(map)
}

/// The thrift keys of one block of client parameters: its
/// `thriftFramed`, if set.
fn client_keys(params: &Map<String, Value>, at: &str) -> Result<Option<bool>, String> {
    match params.get("attemptTTwitterUpgrade") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(format!(
                "{at}.attemptTTwitterUpgrade: `true` is not supported yet (Linkerd's TTwitter \
                 protocol upgrade; this router speaks plain Thrift); leave it out or set it to false"
            ));
        }
        Some(_) => {
            return Err(format!(
                "{at}.attemptTTwitterUpgrade: expected true or false"
            ));
        }
    }
    match params.get("thriftFramed") {
        None => Ok(None),
        Some(Value::Bool(framed)) => Ok(Some(*framed)),
        Some(_) => Err(format!("{at}.thriftFramed: expected true or false")),
    }
}

/// The clients' transports. A prefix that does not parse is left for the
/// client policies to report.
fn thrift_clients(client: &Map<String, Value>, at: &str) -> Result<ThriftClients, String> {
    let framed = client_keys(client, at)?;
    if client.get("kind").and_then(Value::as_str) != Some("io.l5d.static") {
        return Ok(ThriftClients::Global {
            framed: framed.unwrap_or(true),
        });
    }
    let mut entries = Vec::new();
    if let Some(Value::Array(configs)) = client.get("configs") {
        for (i, entry) in configs.iter().enumerate() {
            let Value::Object(params) = entry else {
                continue;
            };
            let framed = client_keys(params, &format!("{at}.configs[{i}]"))?;
            let prefix = params
                .get("prefix")
                .and_then(Value::as_str)
                .and_then(|p| PrefixPattern::parse(p).ok());
            if let Some(prefix) = prefix {
                entries.push((prefix, framed));
            }
        }
    }
    Ok(ThriftClients::Static(entries))
}

/// One server of a `thrift` router, checked.
fn thrift_server(server: &ServerConfig, at: &str) -> Result<ThriftServer, String> {
    conn_config::refuse_http_server_keys(
        server,
        at,
        "thrift",
        "TLS on thrift servers is not supported yet",
    )?;
    let session = server.server_session.as_ref();
    let ms = |ms: std::num::NonZeroU64| Duration::from_millis(ms.get());
    Ok(ThriftServer {
        addr: SocketAddr::new(server.ip, server.port.unwrap_or(DEFAULT_THRIFT_PORT)),
        framed: server.thrift_framed.unwrap_or(true),
        idle: session
            .and_then(|s| s.idle_time_ms)
            .map_or(DEFAULT_THRIFT_IDLE, ms),
        life: session.and_then(|s| s.life_time_ms).map(ms),
    })
}
