//! The router's config file: Linkerd 1.x's `linkerd.yaml` keys, strict
//! about unknown keys, kinds and protocols.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, Path};
use namers::bind::BindLimits;
use namers::config::NamerConfig;
use serde_json::Value;

use crate::access_log::settings::AccessLogKeys;
pub use crate::access_log::settings::AccessLogSettings;
pub use crate::bind::config::{BindingCacheConfig, BindingLimitsConfig};
pub use crate::client::config::{ClientConfig, ClientPolicies, ConnectionSettings};
use crate::identify::IdentifierConfig;
use crate::identify::Protocol;
use crate::policy::admission::{Admission, AdmissionPolicies};
use crate::policy::classifier::Classifier;
pub use crate::server::config::{ServerConfig, ServerSessionConfig};
use crate::server::limits::{DEFAULT_MAX_HEADERS_KB, DEFAULT_MAX_INITIAL_LINE_KB, HeadLimits};
pub use crate::service::config::{DtabHeaderLimitsConfig, ServiceConfig, ServicePolicies};
use crate::service::dtab_headers::DtabHeaderLimits;

/// The whole file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The admin server.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Namers shared by the routers' default interpreters.
    #[serde(default)]
    pub namers: Vec<NamerConfig>,
    /// The routers; at least one.
    pub routers: Vec<RouterConfig>,
    /// Metrics exporters (`io.l5d.prometheus`; `/admin/metrics.json` is
    /// always served).
    #[serde(default)]
    pub telemetry: Vec<KindConfig>,
    /// Linkerd's anonymous usage reporting; accepted and never sent.
    #[serde(default)]
    pub usage: Option<Value>,
    /// The file as JSON with its secrets masked, for the admin's
    /// `/config.json` (set by [`load`]).
    #[serde(skip)]
    pub shown: Option<Arc<Value>>,
}

pub use namers::config::AdminConfig;

/// The router's admin port when `admin.port` is not set.
pub const DEFAULT_ADMIN_PORT: u16 = 9990;

/// How long requests in flight get when the router stops, unless
/// `admin.shutdownGraceMs` says otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub use namers::config::KindConfig;

/// One identifier or a list of them.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single one.
    One(T),
    /// Several, tried in order.
    Many(Vec<T>),
}

/// One entry of `routers:`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouterConfig {
    /// `http`, `h2`, `tcp` or `thrift`.
    pub protocol: String,
    /// Acknowledges an experimental protocol, as Linkerd asked for some;
    /// accepted, and asked for by none here.
    #[serde(default)]
    pub experimental: bool,
    /// Names the router in metrics (defaults to the protocol).
    #[serde(default)]
    pub label: Option<String>,
    /// The base dtab.
    #[serde(default)]
    pub dtab: Option<String>,
    /// Prepended to identified names (default `/svc`).
    #[serde(default)]
    pub dst_prefix: Option<String>,
    /// How requests are named.
    #[serde(default)]
    pub identifier: Option<OneOrMany<IdentifierConfig>>,
    /// How names are bound (`default`, `io.l5d.fs`, `io.l5d.namerd.http`).
    #[serde(default)]
    pub interpreter: Option<KindConfig>,
    /// Where the router listens; at least one.
    pub servers: Vec<ServerConfig>,
    /// Upstream client settings.
    #[serde(default)]
    pub client: Option<ClientConfig>,
    /// Per-service settings.
    #[serde(default)]
    pub service: Option<ServiceConfig>,
    /// The response classifier of services that set none (where older
    /// Linkerd configs put it).
    #[serde(default)]
    pub response_classifier: Option<KindConfig>,
    /// Which headers carry traces: `io.l5d.default` (`l5d-ctx-trace`,
    /// the default) or `io.l5d.zipkin` (B3).
    #[serde(default)]
    pub trace_propagator: Option<KindConfig>,
    /// Sizes of the binding caches.
    #[serde(default)]
    pub binding_cache: Option<BindingCacheConfig>,
    /// How long a request waits for its name to bind (default 10 s).
    #[serde(default)]
    pub binding_timeout_ms: Option<u64>,
    /// Work limits of each bind (our own keys: Linkerd has none).
    #[serde(default)]
    pub binding_limits: Option<BindingLimitsConfig>,
    /// Size limits of a request's `l5d-dtab` and `l5d-ctx-dtab` headers
    /// (our own keys: Linkerd has none).
    #[serde(default)]
    pub dtab_header_limits: Option<DtabHeaderLimitsConfig>,
    /// Who may send requests to which names (our own key; reloaded on
    /// `SIGHUP`).
    #[serde(default)]
    pub access_control: Option<crate::policy::access::AccessControlConfig>,
    /// Token-bucket limits per name prefix (our own key; reloaded on
    /// `SIGHUP`).
    #[serde(default)]
    pub rate_limits: Option<Vec<crate::policy::rate_limit::RateLimitConfig>>,
    /// KiB of request header fields accepted (default 8; more is 431).
    #[serde(default, rename = "maxHeadersKB")]
    pub max_headers_kb: Option<NonZeroUsize>,
    /// KiB of request line accepted (default 4; more is 414).
    #[serde(default, rename = "maxInitialLineKB")]
    pub max_initial_line_kb: Option<NonZeroUsize>,
    /// The access log of an `http` router (unset or `""`: none).
    #[serde(default)]
    pub http_access_log: Option<String>,
    /// When it rolls: `never` (default), `hourly`, `daily`, `weekly(n)`,
    /// `sighup` or a size (`100.megabytes`).
    #[serde(default)]
    pub http_access_log_roll_policy: Option<String>,
    /// Keep its lines at start (default) or truncate it.
    #[serde(default)]
    pub http_access_log_append: Option<bool>,
    /// Rolled files kept; -1 (default) keeps all.
    #[serde(default)]
    pub http_access_log_rotate_count: Option<i64>,
    /// The access log of an `h2` router; as `httpAccessLog`.
    #[serde(default, rename = "h2AccessLog")]
    pub h2_access_log: Option<String>,
    /// As `httpAccessLogRollPolicy`.
    #[serde(default, rename = "h2AccessLogRollPolicy")]
    pub h2_access_log_roll_policy: Option<String>,
    /// As `httpAccessLogAppend`.
    #[serde(default, rename = "h2AccessLogAppend")]
    pub h2_access_log_append: Option<bool>,
    /// As `httpAccessLogRotateCount`.
    #[serde(default, rename = "h2AccessLogRotateCount")]
    pub h2_access_log_rotate_count: Option<i64>,
    /// A `thrift` router's names end with the method name (default
    /// false).
    #[serde(default)]
    pub thrift_method_in_dst: Option<bool>,
    /// A `thrift` router's protocol: `binary` (default) or `compact`.
    #[serde(default)]
    pub thrift_protocol: Option<String>,
}

impl RouterConfig {
    /// The size limits of a request head (`maxInitialLineKB`,
    /// `maxHeadersKB`).
    pub fn head_limits(&self) -> HeadLimits {
        HeadLimits::from_kb(
            self.max_initial_line_kb
                .map_or(DEFAULT_MAX_INITIAL_LINE_KB, usize::from),
            self.max_headers_kb
                .map_or(DEFAULT_MAX_HEADERS_KB, usize::from),
        )
    }
}

/// How long an idle upstream connection stays open unless
/// `hostConnectionPool.idleTimeMs` says otherwise.
pub const DEFAULT_CONNECTION_IDLE_TIME: Duration = Duration::from_secs(60);

/// The protocols a router can speak.
pub const PROTOCOLS: &[&str] = &["http", "h2", "tcp", "thrift"];

/// The interpreters a router can use.
pub const INTERPRETERS: &[&str] = &[
    "default",
    "io.l5d.fs",
    "io.l5d.k8s.configMap",
    "io.l5d.consul.interpreter",
    "io.l5d.namerd",
    "io.l5d.namerd.http",
    "io.l5d.mesh",
];

/// A router's checked settings.
#[derive(Debug)]
pub struct RouterSpec {
    /// Index in the config, for messages.
    pub index: usize,
    /// Metrics label.
    pub label: String,
    /// `http` or `h2`; `http` for a `tcp` or `thrift` router, which has
    /// no HTTP side.
    pub protocol: crate::identify::Protocol,
    /// A `tcp` router's servers; `None` for other routers.
    pub tcp: Option<Vec<crate::tcp::TcpServer>>,
    /// A `thrift` router's settings; `None` for other routers.
    pub thrift: Option<crate::thrift::ThriftSpec>,
    /// The base dtab.
    pub dtab: Dtab,
    /// The name prefix.
    pub dst_prefix: Path,
    /// How long to wait for a binding.
    pub binding_timeout: Duration,
    /// Per-service policies: timeouts, classifiers, retries.
    pub services: ServicePolicies,
    /// Per-client policies: balancers, failure accrual, requeues.
    pub clients: ClientPolicies,
    /// Connection time limit.
    pub connect_timeout: Duration,
    /// How long an idle upstream connection stays open.
    pub connection_idle_time: Duration,
    /// `hostConnectionPool`'s sizes (`http` routers).
    pub connection_limits: Option<crate::endpoint::h1_pool::PoolLimits>,
    /// Cache sizes.
    pub paths_capacity: usize,
    /// Client cache size.
    pub clients_capacity: usize,
    /// Cache idle TTL.
    pub idle_ttl: Duration,
    /// Work limits of each bind.
    pub bind_limits: BindLimits,
    /// Size limits of the dtab headers.
    pub dtab_header_limits: DtabHeaderLimits,
    /// The access log, when one is configured.
    pub access_log: Option<AccessLogSettings>,
    /// The headers that carry traces.
    pub trace_propagator: namers::telemetry::trace::Propagator,
    /// `accessControl` and `rateLimits`, replaceable while running.
    pub admission: Arc<crate::policy::admission::Admission>,
}

impl Config {
    /// Checks everything that needs no I/O.
    pub fn validate(&self) -> Result<Vec<RouterSpec>, String> {
        if self.routers.is_empty() {
            return Err("routers: at least one router is required".into());
        }
        crate::metrics::telemeters(&self.telemetry)?;
        let mut labels = std::collections::HashSet::new();
        let specs = self
            .routers
            .iter()
            .enumerate()
            .map(|(i, r)| r.validate(i))
            .collect::<Result<Vec<_>, _>>()?;
        for spec in &specs {
            if !labels.insert(spec.label.clone()) {
                return Err(format!(
                    "routers[{}]: label {:?} is used by another router",
                    spec.index, spec.label
                ));
            }
        }
        crate::access_log::settings::check_distinct_paths(
            specs.iter().filter_map(|s| s.access_log.as_ref()),
        )?;
        Ok(specs)
    }
}

impl RouterConfig {
    /// Its `accessControl` and `rateLimits`, checked.
    pub fn admission_policies(&self, index: usize) -> Result<AdmissionPolicies, String> {
        AdmissionPolicies::from_config(
            &format!("routers[{index}]"),
            self.access_control.as_ref(),
            self.rate_limits.as_deref(),
        )
    }

    fn validate(&self, index: usize) -> Result<RouterSpec, String> {
        let at = format!("routers[{index}]");
        let protocol = match self.protocol.as_str() {
            "http" | "tcp" | "thrift" => crate::identify::Protocol::Http,
            "h2" => crate::identify::Protocol::H2,
            other => {
                return Err(namers::config::linkerd::unknown_kind(
                    &format!("{at}.protocol"),
                    "protocol",
                    other,
                    PROTOCOLS,
                ));
            }
        };
        let dtab = match &self.dtab {
            Some(text) => Dtab::read(text).map_err(|e| format!("{at}.dtab: {e}"))?,
            None => Dtab::empty(),
        };
        let dst_prefix = Path::read(self.dst_prefix.as_deref().unwrap_or("/svc"))
            .map_err(|e| format!("{at}.dstPrefix: {e}"))?;
        if self.servers.is_empty() {
            return Err(format!("{at}.servers: at least one server is required"));
        }
        let tcp = if self.protocol == "tcp" {
            Some(crate::tcp::config::check(self, &at, &dst_prefix)?)
        } else {
            crate::tcp::config::refuse_tcp_keys(self, &at)?;
            None
        };
        let thrift = if self.protocol == "thrift" {
            Some(crate::thrift::config::check(self, &at)?)
        } else {
            crate::thrift::config::refuse_thrift_keys(self, &at)?;
            None
        };
        if tcp.is_none()
            && thrift.is_none()
            && protocol == crate::identify::Protocol::Http
            && let Some(i) = self
                .servers
                .iter()
                .position(|s| s.max_concurrent_streams_per_connection.is_some())
        {
            return Err(format!(
                "{at}.servers[{i}].maxConcurrentStreamsPerConnection: only h2 routers have streams"
            ));
        }
        if let Some(interpreter) = &self.interpreter
            && !INTERPRETERS.contains(&interpreter.kind.as_str())
        {
            return Err(namers::config::linkerd::unknown_kind(
                &format!("{at}.interpreter"),
                "interpreter",
                &interpreter.kind,
                INTERPRETERS,
            ));
        }
        let h2 = protocol == crate::identify::Protocol::H2;
        // A thrift router's own client keys are read with its servers'.
        let client = match (&self.client, &thrift) {
            (Some(client), Some(_)) => Some(crate::thrift::config::without_thrift_keys(client)),
            (client, _) => client.clone(),
        };
        let (clients, connections) = match &client {
            Some(client) => {
                let alpn: &[&[u8]] = if h2 {
                    &[namers::tls::ALPN_H2]
                } else {
                    &[namers::tls::ALPN_HTTP11]
                };
                ClientPolicies::from_config(&format!("{at}.client"), client, alpn)?
            }
            None => (ClientPolicies::default(), ConnectionSettings::default()),
        };
        let classifier = match &self.response_classifier {
            Some(kind) => Classifier::from_kind(&format!("{at}.responseClassifier"), kind, h2)?,
            None => Classifier::default_for(h2),
        };
        let services = match &self.service {
            Some(service) => {
                ServicePolicies::from_config(&format!("{at}.service"), service, h2, classifier)?
            }
            None => ServicePolicies::defaults(classifier),
        };
        let cache = self.binding_cache.as_ref();
        let ms = Duration::from_millis;
        let label = self.label.clone().unwrap_or_else(|| self.protocol.clone());
        let access_log = crate::access_log::settings::from_keys(
            &at,
            &label,
            protocol,
            self.access_log_keys(Protocol::Http),
            self.access_log_keys(Protocol::H2),
        )?;
        let trace_propagator = match &self.trace_propagator {
            Some(kind) => trace_propagator(&format!("{at}.tracePropagator"), kind)?,
            None => namers::telemetry::trace::Propagator::default(),
        };
        let admission = Arc::new(Admission::new(self.admission_policies(index)?));
        Ok(RouterSpec {
            index,
            label,
            access_log,
            trace_propagator,
            admission,
            protocol,
            tcp,
            thrift,
            dtab,
            dst_prefix,
            binding_timeout: ms(self.binding_timeout_ms.unwrap_or(10_000)),
            services,
            clients,
            connect_timeout: connections
                .connect_timeout
                .unwrap_or(Duration::from_millis(3_000)),
            connection_idle_time: connections
                .idle_time
                .unwrap_or(DEFAULT_CONNECTION_IDLE_TIME),
            connection_limits: connections.limits,
            paths_capacity: cache.and_then(|c| c.paths).unwrap_or(1000),
            clients_capacity: cache.and_then(|c| c.clients).unwrap_or(1000),
            idle_ttl: Duration::from_secs(cache.and_then(|c| c.idle_ttl_secs).unwrap_or(600)),
            bind_limits: self
                .binding_limits
                .as_ref()
                .map_or_else(BindLimits::default, BindingLimitsConfig::limits),
            dtab_header_limits: self
                .dtab_header_limits
                .as_ref()
                .map_or_else(DtabHeaderLimits::default, DtabHeaderLimitsConfig::limits),
        })
    }

    /// The `httpAccessLog*` or `h2AccessLog*` keys as written.
    fn access_log_keys(&self, protocol: Protocol) -> AccessLogKeys<'_> {
        match protocol {
            Protocol::Http => AccessLogKeys {
                path: self.http_access_log.as_deref(),
                roll_policy: self.http_access_log_roll_policy.as_deref(),
                append: self.http_access_log_append,
                rotate_count: self.http_access_log_rotate_count,
            },
            Protocol::H2 => AccessLogKeys {
                path: self.h2_access_log.as_deref(),
                roll_policy: self.h2_access_log_roll_policy.as_deref(),
                append: self.h2_access_log_append,
                rotate_count: self.h2_access_log_rotate_count,
            },
        }
    }
}

/// Reads and checks a config file.
pub fn load(path: &std::path::Path) -> Result<(Config, Vec<RouterSpec>), String> {
    let source = namers::config::Source::read(path).map_err(|e| e.to_string())?;
    let mut config: Config = source.parse().map_err(|e| e.to_string())?;
    let specs = config
        .validate()
        .map_err(|e| source.error(&e).to_string())?;
    config.shown = source.masked_json().map(Arc::new);
    Ok((config, specs))
}

/// Reads the config file at `path` again and puts each router's
/// `accessControl` and `rateLimits` in place of those running under the
/// same label (`running`). A file that does not load, or a router whose
/// policies do not check, changes nothing; the error names the file, key
/// and line. Gives how many routers took new policies.
pub fn reload_admission(
    path: &std::path::Path,
    running: &[(String, Arc<Admission>)],
) -> Result<usize, String> {
    let source = namers::config::Source::read(path).map_err(|e| e.to_string())?;
    let config: Config = source.parse().map_err(|e| e.to_string())?;
    let mut checked = Vec::new();
    for (index, router) in config.routers.iter().enumerate() {
        let label = router
            .label
            .clone()
            .unwrap_or_else(|| router.protocol.clone());
        let policies = router
            .admission_policies(index)
            .map_err(|e| source.error(&e).to_string())?;
        checked.push((label, policies));
    }
    let mut replaced = 0;
    for (label, policies) in checked {
        match running.iter().find(|(running, _)| *running == label) {
            Some((_, admission)) => {
                admission.replace(policies);
                replaced += 1;
            }
            None => tracing::warn!(
                router = %label,
                "the config names a router that is not running; adding routers needs a restart"
            ),
        }
    }
    Ok(replaced)
}

/// The trace propagator kinds: Linkerd's, for both protocols.
const TRACE_PROPAGATORS: &[&str] = &["io.l5d.default", "io.l5d.zipkin"];

/// A router's `tracePropagator`; neither kind takes keys.
fn trace_propagator(
    at: &str,
    kind: &KindConfig,
) -> Result<namers::telemetry::trace::Propagator, String> {
    use namers::telemetry::trace::Propagator;
    let propagator = match kind.kind.as_str() {
        "io.l5d.default" => Propagator::Linkerd,
        "io.l5d.zipkin" => Propagator::B3,
        other => {
            return Err(namers::config::linkerd::unknown_kind(
                at,
                "tracePropagator",
                other,
                TRACE_PROPAGATORS,
            ));
        }
    };
    if let Some(key) = kind.params.keys().find(|k| k.as_str() != "experimental") {
        return Err(format!("{at} ({}): unknown field `{key}`", kind.kind));
    }
    Ok(propagator)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::server::session::SessionLimits;

    fn specs(yaml: &str) -> Result<Vec<RouterSpec>, String> {
        let config: Config =
            namers::config::parse("linkerd.yaml", yaml).map_err(|e| e.to_string())?;
        config.validate()
    }

    const ROUTER: &str = "routers:\n- protocol: http\n  servers:\n  - port: 0\n";

    #[test]
    fn limits_default_to_the_library_defaults() {
        let spec = specs(ROUTER).unwrap().remove(0);
        assert_eq!(spec.bind_limits, BindLimits::default());
        assert_eq!(spec.dtab_header_limits, DtabHeaderLimits::default());
    }

    #[test]
    fn limits_are_set_per_router_and_unset_keys_keep_their_default() {
        let yaml = format!(
            "{ROUTER}  bindingLimits:\n    maxLookups: 500\n    maxBindMs: 20\n  dtabHeaderLimits:\n    maxDentries: 10\n"
        );
        let spec = specs(&yaml).unwrap().remove(0);
        assert_eq!(
            spec.bind_limits,
            BindLimits {
                max_lookups: 500,
                max_time: Duration::from_millis(20),
                ..BindLimits::default()
            }
        );
        assert_eq!(
            spec.dtab_header_limits,
            DtabHeaderLimits {
                max_dentries: 10,
                ..DtabHeaderLimits::default()
            }
        );
    }

    fn config(yaml: &str) -> Config {
        namers::config::parse("linkerd.yaml", yaml).unwrap()
    }

    #[test]
    fn server_limits_default_to_linkerd_s_and_ours() {
        let config = config(ROUTER);
        assert_eq!(config.routers[0].head_limits(), HeadLimits::default());
        assert_eq!(
            HeadLimits::default(),
            HeadLimits {
                max_line: 4096,
                max_fields: 8192
            }
        );
        let server = &config.routers[0].servers[0];
        assert_eq!(server.session(), SessionLimits::default());
        assert_eq!(SessionLimits::default().idle, Duration::from_secs(60));
        assert_eq!(SessionLimits::default().life, None);
        assert_eq!(server.max_concurrent_streams(), 200);
    }

    #[test]
    fn server_limits_are_set_by_linkerd_s_keys() {
        let yaml = "routers:\n- protocol: h2\n  maxHeadersKB: 16\n  maxInitialLineKB: 2\n  servers:\n  - port: 0\n    maxConcurrentStreamsPerConnection: 50\n    serverSession:\n      idleTimeMs: 5000\n      lifeTimeMs: 600000\n      maxRequests: 1000\n";
        let config = config(yaml);
        config.validate().unwrap();
        assert_eq!(
            config.routers[0].head_limits(),
            HeadLimits {
                max_line: 2048,
                max_fields: 16384
            }
        );
        let server = &config.routers[0].servers[0];
        assert_eq!(
            server.session(),
            SessionLimits {
                idle: Duration::from_secs(5),
                life: Some(Duration::from_secs(600)),
                head: SessionLimits::default().head,
                max_requests: Some(1000),
            }
        );
        assert_eq!(server.max_concurrent_streams(), 50);
    }

    #[test]
    fn bad_server_limits_are_refused() {
        let err = specs(&format!(
            "{ROUTER}    maxConcurrentStreamsPerConnection: 5\n"
        ))
        .unwrap_err();
        assert_eq!(
            err,
            "routers[0].servers[0].maxConcurrentStreamsPerConnection: only h2 routers have streams"
        );
        let err = specs(&format!(
            "{ROUTER}    serverSession:\n      idleTimeMs: 0\n"
        ))
        .unwrap_err();
        assert!(err.contains("serverSession.idleTimeMs"), "{err}");
        assert!(err.contains("nonzero"), "{err}");
        let err = specs(&format!("{ROUTER}    serverSession:\n      idleTime: 5\n")).unwrap_err();
        assert!(err.contains("`idleTime`"), "{err}");
        assert!(
            err.contains("expected one of idleTimeMs, lifeTimeMs"),
            "{err}"
        );
        assert!(err.contains("line 6"), "{err}");
        let err = specs("routers:\n- protocol: http\n  maxHeadersKB: 0\n  servers:\n  - port: 0\n")
            .unwrap_err();
        assert!(err.contains("maxHeadersKB"), "{err}");
    }

    #[test]
    fn a_router_level_classifier_is_the_default_of_every_service() {
        let yaml = format!(
            "{ROUTER}  responseClassifier:\n    kind: io.l5d.http.retryableAll5XX\n  service:\n    kind: io.l5d.static\n    configs:\n    - prefix: /svc/a\n      responseClassifier:\n        kind: io.l5d.http.allSuccessful\n"
        );
        let spec = specs(&yaml).unwrap().remove(0);
        let a = spec.services.for_path(&Path::read("/svc/a").unwrap());
        assert_eq!(a.classifier, Classifier::AllSuccessful);
        let b = spec.services.for_path(&Path::read("/svc/b").unwrap());
        assert_eq!(b.classifier, Classifier::RetryableAll5xx);
        let plain = specs(ROUTER).unwrap().remove(0);
        let c = plain.services.for_path(&Path::read("/svc/c").unwrap());
        assert_eq!(c.classifier, Classifier::NonRetryable5xx);
    }

    #[test]
    fn access_log_keys_load_into_settings() {
        let yaml = format!(
            "{ROUTER}  label: web\n  httpAccessLog: logs/access.log\n  httpAccessLogRollPolicy: 3.megabytes\n  httpAccessLogAppend: false\n  httpAccessLogRotateCount: 4\n"
        );
        let log = specs(&yaml).unwrap().remove(0).access_log.unwrap();
        assert_eq!(log.key, "routers[0].httpAccessLog");
        assert_eq!(log.router, "web");
        assert_eq!(log.path, std::path::Path::new("logs/access.log"));
        assert_eq!(log.roll, crate::access_log::RollPolicy::MaxSize(3 << 20));
        assert!(!log.append);
        assert_eq!(log.rotate_count, Some(4));
        assert!(specs(ROUTER).unwrap()[0].access_log.is_none());
        let h2 = "routers:\n- protocol: h2\n  h2AccessLog: h2.log\n  h2AccessLogRollPolicy: weekly(2)\n  servers:\n  - port: 0\n";
        let log = specs(h2).unwrap().remove(0).access_log.unwrap();
        assert_eq!(log.roll, crate::access_log::RollPolicy::Weekly(2));
        assert_eq!(log.protocol, Protocol::H2);
    }

    #[test]
    fn bad_access_log_keys_name_the_file_the_key_and_the_line() {
        let check = |yaml: &str| {
            let source = namers::config::Source::new("linkerd.yaml", yaml);
            let config: Config = source.parse().unwrap();
            config.validate().map_err(|e| source.error(&e).to_string())
        };
        let err = check(&format!(
            "{ROUTER}  httpAccessLog: a.log\n  httpAccessLogRollPolicy: fortnightly\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("linkerd.yaml: routers[0].httpAccessLogRollPolicy: line 6: invalid roll policy \"fortnightly\""),
            "{err}"
        );
        let err = check(&format!("{ROUTER}  h2AccessLog: a.log\n")).unwrap_err();
        assert!(
            err.starts_with("linkerd.yaml: routers[0].h2AccessLog: line 5: only h2 routers take h2AccessLog keys"),
            "{err}"
        );
        let err = check(&format!(
            "{ROUTER}  httpAccessLog: a.log\n- protocol: http\n  label: second\n  httpAccessLog: a.log\n  servers:\n  - port: 0\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("routers[1].httpAccessLog: line 8: a.log is the access log of routers[0].httpAccessLog already"),
            "{err}"
        );
    }

    #[test]
    fn bad_limits_name_the_file_the_key_and_the_line() {
        let yaml = format!("{ROUTER}  bindingLimits:\n    maxLeafs: 5\n");
        let err = specs(&yaml).unwrap_err();
        assert!(
            err.starts_with("linkerd.yaml: routers[0].bindingLimits.maxLeafs: "),
            "{err}"
        );
        assert!(err.contains("unknown field `maxLeafs`"), "{err}");
        assert!(err.contains("line 6"), "{err}");

        let yaml = format!("{ROUTER}  dtabHeaderLimits:\n    maxBytes: 0\n");
        let err = specs(&yaml).unwrap_err();
        assert!(
            err.starts_with("linkerd.yaml: routers[0].dtabHeaderLimits.maxBytes: "),
            "{err}"
        );
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains("nonzero"), "{err}");
    }

    #[test]
    fn trace_propagators_are_linkerd_s_two_kinds() {
        let with = |kind: &str| {
            let yaml = format!(
                "routers:\n- protocol: http\n  tracePropagator:\n    kind: {kind}\n  servers:\n  - port: 0\n"
            );
            let config: Config = namers::config::parse("t.yaml", &yaml).unwrap();
            config.validate().map(|specs| specs[0].trace_propagator)
        };
        use namers::telemetry::trace::Propagator;
        assert_eq!(with("io.l5d.default"), Ok(Propagator::Linkerd));
        assert_eq!(with("io.l5d.zipkin"), Ok(Propagator::B3));
        let error = with("io.l5d.b3").unwrap_err();
        assert!(error.contains("routers[0].tracePropagator"), "{error}");
        assert!(error.contains("io.l5d.default, io.l5d.zipkin"), "{error}");
        let error = with("io.l5d.zipkin\n    sampleRate: 1").unwrap_err();
        assert!(error.contains("unknown field `sampleRate`"), "{error}");
    }
}
