//! The client stage's config: `client:`. Its `kind` is `io.l5d.global`
//! (the default: one set of parameters for every client) or
//! `io.l5d.static` (`configs:`, each a `prefix` matched against the bound
//! id and the parameters for the ids it matches; when several match, later
//! ones override earlier ones key by key).

use std::sync::Arc;
use std::time::Duration;

use dtab::Path;
use namers::config::{KindConfig, kind_params};
use serde_json::{Map, Value};

use super::accrual::AccrualConfig;
use super::balance::{BalanceConfig, BalancerKind};
use crate::endpoint::h1_pool::PoolLimits;
use crate::endpoint::tls::UpstreamTls;
use crate::policy::budget::BudgetConfig;
use crate::policy::prefix::Captures;
use crate::policy::prefix::PrefixPattern;
use namers::tls::{ClientTls, ClientTlsConfig};

/// `client:` as written; read by [`ClientPolicies::from_config`], which
/// tells apart the two kinds.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct ClientConfig(pub Map<String, Value>);

/// The parameters of one client: all of an `io.l5d.global` block, or one
/// entry of an `io.l5d.static` block's `configs` without its `prefix`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientParams {
    /// `{kind: p2c | ewma | aperture | heap | roundRobin, ...}`.
    #[serde(default)]
    pub load_balancer: Option<KindConfig>,
    /// `{kind: io.l5d.consecutiveFailures | ..., backoff}`.
    #[serde(default)]
    pub failure_accrual: Option<KindConfig>,
    /// Marks an endpoint dead on its first connection failure.
    #[serde(default)]
    pub fail_fast: Option<bool>,
    /// How many requests may be sent again after a connection failure.
    #[serde(default)]
    pub requeue_budget: Option<BudgetConfig>,
    /// Time limit for one attempt, in ms.
    #[serde(default)]
    pub request_attempt_timeout_ms: Option<u64>,
    /// Timeout for opening a connection, in ms (default 3000). Connections
    /// are pooled per router, so only an `io.l5d.global` block sets it.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Connections per endpoint (`http` routers; only in `io.l5d.global`).
    #[serde(default)]
    pub host_connection_pool: Option<HostConnectionPool>,
    /// TLS to the endpoints; in an `io.l5d.static` entry its `commonName`
    /// may use the prefix's `{captures}`.
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
    /// Send the identity of the client's certificate (mutual TLS on the
    /// server) as `x-forwarded-client-cert`; without it the field is
    /// removed.
    #[serde(default)]
    pub forward_client_cert: Option<bool>,
}

/// `hostConnectionPool:`, Linkerd's keys and defaults except `idleTimeMs`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostConnectionPool {
    /// Idle connections kept open past `idleTimeMs` (default 0).
    #[serde(default)]
    pub min_size: Option<usize>,
    /// Connections open at once to one endpoint (default: no limit).
    #[serde(default)]
    pub max_size: Option<usize>,
    /// How long an idle connection stays open, in ms (default 60000).
    #[serde(default)]
    pub idle_time_ms: Option<u64>,
    /// Requests that may wait when `maxSize` are busy (default: no limit).
    #[serde(default)]
    pub max_waiters: Option<usize>,
}

/// What a router's client block says about its connections, which are
/// pooled per router.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    /// `connectTimeoutMs`.
    pub connect_timeout: Option<Duration>,
    /// `hostConnectionPool.idleTimeMs`.
    pub idle_time: Option<Duration>,
    /// `hostConnectionPool`'s sizes, when any is set.
    pub limits: Option<PoolLimits>,
}

impl HostConnectionPool {
    fn limits(&self, at: &str) -> Result<Option<PoolLimits>, String> {
        if self.max_size == Some(0) {
            return Err(format!(
                "{at}.hostConnectionPool: maxSize: must be at least 1"
            ));
        }
        if let (Some(min), Some(max)) = (self.min_size, self.max_size)
            && min > max
        {
            return Err(format!(
                "{at}.hostConnectionPool: minSize: must not exceed maxSize ({max})"
            ));
        }
        if self.min_size.is_none() && self.max_size.is_none() && self.max_waiters.is_none() {
            return Ok(None);
        }
        Ok(Some(PoolLimits {
            min_size: self.min_size.unwrap_or(0),
            max_size: self
                .max_size
                .unwrap_or(tokio::sync::Semaphore::MAX_PERMITS)
                .min(tokio::sync::Semaphore::MAX_PERMITS),
            max_waiters: self.max_waiters.unwrap_or(usize::MAX),
        }))
    }
}

/// What one block of parameters sets, checked.
#[derive(Debug, Default, Clone)]
pub struct ClientLayer {
    balancer: Option<BalancerKind>,
    accrual: Option<Arc<AccrualConfig>>,
    fail_fast: Option<bool>,
    requeue_budget: Option<BudgetConfig>,
    attempt_timeout: Option<Duration>,
    tls: Option<LayerTls>,
    forward_client_cert: Option<bool>,
}

/// A block's `tls`: its settings, built (files read and checked) when the
/// config is, or `None` for `enabled: false`; and its `commonName`, whose
/// `{captures}` are filled in per client.
#[derive(Debug, Clone)]
struct LayerTls {
    built: Option<Arc<ClientTls>>,
    common_name: Option<String>,
}

impl LayerTls {
    /// The TLS of a client whose id the block's prefix matched with
    /// `captures`.
    fn for_client(&self, captures: &Captures) -> Option<Arc<UpstreamTls>> {
        let tls = self.built.clone()?;
        let name = self.common_name.as_ref().map(|name| {
            let mut name = name.clone();
            for (key, value) in captures {
                name = name.replace(&format!("{{{key}}}"), value);
            }
            name
        });
        Some(Arc::new(UpstreamTls::new(tls, name.as_deref())))
    }
}

/// What a client of one bound id does.
#[derive(Debug, Clone)]
pub struct ClientPolicy {
    /// Its balancer and failure accrual.
    pub balance: Arc<BalanceConfig>,
    /// Its requeue budget.
    pub requeue_budget: BudgetConfig,
    /// The time limit of one attempt.
    pub attempt_timeout: Option<Duration>,
    /// TLS to the endpoints, when set.
    pub(crate) tls: Option<Arc<UpstreamTls>>,
    /// `forwardClientCert`.
    pub forward_client_cert: bool,
}

impl Default for ClientPolicy {
    fn default() -> ClientPolicy {
        ClientLayer::default().finish(&Captures::new())
    }
}

/// A router's client policies: one for all, or one per prefix.
#[derive(Debug, Clone)]
pub enum ClientPolicies {
    /// `io.l5d.global`: the same for every client.
    Global(Arc<ClientPolicy>),
    /// `io.l5d.static`: the layers whose prefix matches, applied in order.
    Static(Vec<(PrefixPattern, ClientLayer)>),
}

impl Default for ClientPolicies {
    fn default() -> ClientPolicies {
        ClientPolicies::Global(Arc::new(ClientPolicy::default()))
    }
}

/// The config's client kinds.
pub const CLIENT_KINDS: &[&str] = &["io.l5d.global", "io.l5d.static"];

impl ClientPolicies {
    /// Reads `client:` (at key path `at`); also gives what it says of
    /// connections. TLS to the endpoints offers `alpn`.
    pub fn from_config(
        at: &str,
        config: &ClientConfig,
        alpn: &[&[u8]],
    ) -> Result<(ClientPolicies, ConnectionSettings), String> {
        let mut map = config.0.clone();
        let kind = take_kind(at, &mut map)?;
        match kind.as_deref().unwrap_or("io.l5d.global") {
            "io.l5d.global" => {
                let params: ClientParams = kind_params(&map).map_err(|e| format!("{at}: {e}"))?;
                let pool = params.host_connection_pool.clone().unwrap_or_default();
                let connections = ConnectionSettings {
                    connect_timeout: params.connect_timeout_ms.map(Duration::from_millis),
                    idle_time: pool.idle_time_ms.map(Duration::from_millis),
                    limits: pool.limits(at)?,
                };
                let layer = ClientLayer::check(at, &params, alpn)?;
                if layer
                    .tls
                    .as_ref()
                    .and_then(|t| t.common_name.as_ref())
                    .is_some_and(|name| name.contains('{'))
                {
                    return Err(format!(
                        "{at}.tls: commonName: `{{...}}` takes a capture of an io.l5d.static prefix; an io.l5d.global client has none"
                    ));
                }
                Ok((
                    ClientPolicies::Global(Arc::new(layer.finish(&Captures::new()))),
                    connections,
                ))
            }
            "io.l5d.static" => {
                let layers = static_configs(at, map, |at, params: ClientParams| {
                    if params.connect_timeout_ms.is_some() {
                        return Err(format!(
                            "{at}: connectTimeoutMs: per prefix is not supported yet (connections are pooled per router); set it in an io.l5d.global client"
                        ));
                    }
                    if params.host_connection_pool.is_some() {
                        return Err(format!(
                            "{at}: hostConnectionPool: per prefix is not supported yet (connections are pooled per router); set it in an io.l5d.global client"
                        ));
                    }
                    ClientLayer::check(at, &params, alpn)
                })?;
                for (i, (prefix, layer)) in layers.iter().enumerate() {
                    check_common_name_captures(&format!("{at}.configs[{i}]"), prefix, layer)?;
                }
                Ok((
                    ClientPolicies::Static(layers),
                    ConnectionSettings::default(),
                ))
            }
            other => Err(format!(
                "{at}: kind: unknown client kind {other:?}; expected one of {}",
                CLIENT_KINDS.join(", ")
            )),
        }
    }

    /// Starts reloading the TLS settings' files when they change (needs a
    /// Tokio runtime).
    pub fn watch_tls(&self) {
        let layers: Vec<&ClientLayer> = match self {
            ClientPolicies::Global(policy) => {
                if let Some(tls) = &policy.tls {
                    tls.securer().watch();
                }
                Vec::new()
            }
            ClientPolicies::Static(layers) => layers.iter().map(|(_, layer)| layer).collect(),
        };
        for layer in layers {
            if let Some(built) = layer.tls.as_ref().and_then(|tls| tls.built.as_ref()) {
                built.watch();
            }
        }
    }

    /// Lists each `tls` block's reload figures under
    /// `client_tls/<i>/` (`i`: the block's entry in `configs`, 0 for an
    /// `io.l5d.global` client): `reloads`, `reload_failures` and
    /// `expires_in_s` of its `clientAuth` certificate.
    pub(crate) fn list_tls(&self, router: &mut namers::telemetry::Scope<'_>) {
        let built: Vec<(usize, &ClientTls)> = match self {
            ClientPolicies::Global(policy) => policy
                .tls
                .iter()
                .map(|tls| (0, tls.securer().settings()))
                .collect(),
            ClientPolicies::Static(layers) => layers
                .iter()
                .enumerate()
                .filter_map(|(i, (_, layer))| Some((i, layer.tls.as_ref()?.built.as_deref()?)))
                .collect(),
        };
        if built.is_empty() {
            return;
        }
        let mut scope = router.scope("client_tls");
        for (i, tls) in built {
            crate::server::stats::list_reloads(&mut scope.scope(&i.to_string()), tls.stats());
        }
    }

    /// The policy of the client of bound id `id`.
    pub fn for_id(&self, id: &Path) -> Arc<ClientPolicy> {
        match self {
            ClientPolicies::Global(policy) => policy.clone(),
            ClientPolicies::Static(layers) => {
                let mut merged = ClientLayer::default();
                // The captures of the prefix whose block set `tls`.
                let mut tls_captures = Captures::new();
                for (prefix, layer) in layers {
                    if let Some(captures) = prefix.matches(id) {
                        if layer.tls.is_some() {
                            tls_captures = captures;
                        }
                        merged.override_with(layer);
                    }
                }
                Arc::new(merged.finish(&tls_captures))
            }
        }
    }
}

impl ClientLayer {
    fn check(at: &str, params: &ClientParams, alpn: &[&[u8]]) -> Result<ClientLayer, String> {
        let tls = params
            .tls
            .as_ref()
            .map(|tls| {
                let built = if tls.is_enabled() {
                    // The name is given per connection: the settings are
                    // built once for every client they apply to.
                    Some(Arc::new(
                        tls.build(alpn).map_err(|e| format!("{at}.tls: {e}"))?,
                    ))
                } else {
                    None
                };
                Ok::<_, String>(LayerTls {
                    built,
                    common_name: tls.common_name.clone(),
                })
            })
            .transpose()?;
        let balancer = params
            .load_balancer
            .as_ref()
            .map(|lb| BalancerKind::from_kind(&format!("{at}.loadBalancer"), lb))
            .transpose()?;
        let accrual = params
            .failure_accrual
            .as_ref()
            .map(|fa| AccrualConfig::from_kind(&format!("{at}.failureAccrual"), fa).map(Arc::new))
            .transpose()?;
        if let Some(budget) = &params.requeue_budget {
            budget
                .validate()
                .map_err(|e| format!("{at}: requeueBudget: {e}"))?;
        }
        Ok(ClientLayer {
            balancer,
            accrual,
            fail_fast: params.fail_fast,
            requeue_budget: params.requeue_budget.clone(),
            attempt_timeout: params.request_attempt_timeout_ms.map(Duration::from_millis),
            tls,
            forward_client_cert: params.forward_client_cert,
        })
    }

    fn override_with(&mut self, later: &ClientLayer) {
        if later.balancer.is_some() {
            self.balancer.clone_from(&later.balancer);
        }
        if later.accrual.is_some() {
            self.accrual.clone_from(&later.accrual);
        }
        if later.fail_fast.is_some() {
            self.fail_fast = later.fail_fast;
        }
        if later.requeue_budget.is_some() {
            self.requeue_budget.clone_from(&later.requeue_budget);
        }
        if later.attempt_timeout.is_some() {
            self.attempt_timeout = later.attempt_timeout;
        }
        if later.tls.is_some() {
            self.tls.clone_from(&later.tls);
        }
        if later.forward_client_cert.is_some() {
            self.forward_client_cert = later.forward_client_cert;
        }
    }

    /// The policy; `captures` are those of the prefix whose block set
    /// `tls`.
    fn finish(self, captures: &Captures) -> ClientPolicy {
        let defaults = BalanceConfig::default();
        ClientPolicy {
            balance: Arc::new(BalanceConfig {
                kind: self.balancer.unwrap_or(defaults.kind),
                accrual: self.accrual.unwrap_or(defaults.accrual),
                fail_fast: self.fail_fast.unwrap_or(defaults.fail_fast),
            }),
            requeue_budget: self.requeue_budget.unwrap_or_default(),
            attempt_timeout: self.attempt_timeout,
            tls: self.tls.as_ref().and_then(|tls| tls.for_client(captures)),
            forward_client_cert: self.forward_client_cert.unwrap_or(false),
        }
    }
}

/// Every `{name}` in a block's `tls.commonName` must be a capture of its
/// prefix: one that is not would make every connection fail.
fn check_common_name_captures(
    at: &str,
    prefix: &PrefixPattern,
    layer: &ClientLayer,
) -> Result<(), String> {
    let Some(name) = layer.tls.as_ref().and_then(|tls| tls.common_name.as_ref()) else {
        return Ok(());
    };
    let captures = prefix.capture_names();
    let mut rest = name.as_str();
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            return Err(format!(
                "{at}.tls: commonName: `{name}` has a `{{` without `}}`"
            ));
        };
        let capture = &rest[start + 1..start + len];
        if !captures.contains(&capture) {
            return Err(format!(
                "{at}.tls: commonName: `{{{capture}}}` is not a capture of the prefix `{}`",
                prefix.as_str()
            ));
        }
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

/// Takes `kind` out of a block.
pub(crate) fn take_kind(at: &str, map: &mut Map<String, Value>) -> Result<Option<String>, String> {
    match map.remove("kind") {
        None => Ok(None),
        Some(Value::String(kind)) => Ok(Some(kind)),
        Some(other) => Err(format!("{at}: kind: expected a string, found {other}")),
    }
}

/// Reads the `configs` of an `io.l5d.static` block (whose `kind` is
/// already taken out): each entry's `prefix`, and its other keys through
/// `check`.
pub(crate) fn static_configs<P, L>(
    at: &str,
    mut map: Map<String, Value>,
    check: impl Fn(&str, P) -> Result<L, String>,
) -> Result<Vec<(PrefixPattern, L)>, String>
where
    P: serde::de::DeserializeOwned,
{
    let configs = map.remove("configs");
    if let Some(key) = map.keys().next() {
        return Err(format!(
            "{at}: {key}: an io.l5d.static block takes only `configs` (put the key in one of its entries)"
        ));
    }
    let Some(configs) = configs else {
        return Err(format!("{at}: configs: missing field `configs`"));
    };
    let Value::Array(configs) = configs else {
        return Err(format!("{at}: configs: expected a list"));
    };
    configs
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = format!("{at}.configs[{i}]");
            let Value::Object(mut entry) = entry else {
                return Err(format!("{at}: expected a map with a `prefix`"));
            };
            let prefix = match entry.remove("prefix") {
                Some(Value::String(prefix)) => {
                    PrefixPattern::parse(&prefix).map_err(|e| format!("{at}: prefix: {e}"))?
                }
                Some(_) => return Err(format!("{at}: prefix: expected a string")),
                None => return Err(format!("{at}: prefix: missing field `prefix`")),
            };
            let params: P = kind_params(&entry).map_err(|e| format!("{at}: {e}"))?;
            Ok((prefix, check(&at, params)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(json: &str) -> Result<ClientPolicies, String> {
        let config: ClientConfig = serde_json::from_str(json).unwrap();
        ClientPolicies::from_config("client", &config, &[]).map(|(p, _)| p)
    }

    fn id(text: &str) -> Path {
        Path::read(text).unwrap()
    }

    #[test]
    fn global_is_the_default_and_applies_to_every_id() {
        let p = policies(r#"{"requestAttemptTimeoutMs": 250}"#).unwrap();
        assert_eq!(
            p.for_id(&id("/#/io.l5d.fs/web")).attempt_timeout,
            Some(Duration::from_millis(250))
        );
        let p = policies(r#"{"kind": "io.l5d.global", "failFast": true}"#).unwrap();
        assert!(p.for_id(&id("/x")).balance.fail_fast);
    }

    #[test]
    fn static_configs_apply_in_order_key_by_key() {
        let p = policies(
            r#"{"kind": "io.l5d.static", "configs": [
                {"prefix": "/#/io.l5d.fs", "requestAttemptTimeoutMs": 100, "failFast": true},
                {"prefix": "/#/io.l5d.fs/{service}", "requestAttemptTimeoutMs": 200},
                {"prefix": "/$/inet/*/80", "failFast": false}
            ]}"#,
        )
        .unwrap();
        let web = p.for_id(&id("/#/io.l5d.fs/web"));
        assert_eq!(web.attempt_timeout, Some(Duration::from_millis(200)));
        assert!(web.balance.fail_fast);
        let fs_root = p.for_id(&id("/#/io.l5d.fs"));
        assert_eq!(fs_root.attempt_timeout, Some(Duration::from_millis(100)));
        let inet = p.for_id(&id("/$/inet/127.0.0.1/80"));
        assert_eq!(inet.attempt_timeout, None);
        assert!(!inet.balance.fail_fast);
    }

    #[test]
    fn host_connection_pool_sizes_the_router_s_pools() {
        let config: ClientConfig = serde_json::from_str(
            r#"{"hostConnectionPool": {"maxSize": 10, "idleTimeMs": 5000, "maxWaiters": 100}}"#,
        )
        .unwrap();
        let (_, connections) = ClientPolicies::from_config("client", &config, &[]).unwrap();
        assert_eq!(connections.idle_time, Some(Duration::from_secs(5)));
        assert_eq!(
            connections.limits,
            Some(PoolLimits {
                min_size: 0,
                max_size: 10,
                max_waiters: 100
            })
        );
        let config: ClientConfig =
            serde_json::from_str(r#"{"hostConnectionPool": {"idleTimeMs": 5000}}"#).unwrap();
        let (_, connections) = ClientPolicies::from_config("client", &config, &[]).unwrap();
        assert_eq!(connections.limits, None);
        let config: ClientConfig =
            serde_json::from_str(r#"{"hostConnectionPool": {"minSize": 5, "maxSize": 2}}"#)
                .unwrap();
        let err = ClientPolicies::from_config("client", &config, &[]).unwrap_err();
        assert_eq!(
            err,
            "client.hostConnectionPool: minSize: must not exceed maxSize (2)"
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        let err = policies(r#"{"kind": "io.l5d.static", "failFast": true}"#).unwrap_err();
        assert!(err.starts_with("client: failFast: "), "{err}");
        let err =
            policies(r#"{"kind": "io.l5d.static", "configs": [{"failFast": true}]}"#).unwrap_err();
        assert_eq!(err, "client.configs[0]: prefix: missing field `prefix`");
        let err =
            policies(r#"{"kind": "io.l5d.static", "configs": [{"prefix": "/a", "tls": {}}]}"#)
                .unwrap_err();
        assert_eq!(
            err,
            "client.configs[0].tls: commonName: required unless disableValidation is set"
        );
        let err = policies(
            r#"{"kind": "io.l5d.static", "configs": [{"prefix": "/#/io.l5d.fs/{service}", "tls": {"commonName": "{svc}.default", "disableValidation": true}}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "client.configs[0].tls: commonName: `{svc}` is not a capture of the prefix `/#/io.l5d.fs/{service}`"
        );
        let err = policies(r#"{"tls": {"commonName": "{service}.svc"}}"#).unwrap_err();
        assert!(
            err.starts_with("client.tls: commonName: `{...}` takes a capture"),
            "{err}"
        );
        let err = policies(r#"{"kind": "io.l5d.dynamic"}"#).unwrap_err();
        assert!(err.contains("unknown client kind"), "{err}");
        let err = policies(
            r#"{"kind": "io.l5d.static", "configs": [{"prefix": "/a", "connectTimeoutMs": 5}]}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("connectTimeoutMs: per prefix is not supported yet"),
            "{err}"
        );
    }
}
