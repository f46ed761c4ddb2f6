//! namerd's config file: Linkerd's keys (`admin`, `storage`, `namers`,
//! `interfaces`), strict about unknown keys and kinds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use namers::config::{NamerConfig, kind_params};
use namers::telemetry::telemeters::Telemeters;
use serde_json::{Map, Value};

use crate::store::DtabStore;

/// The whole config file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamerdConfig {
    /// The admin server (ping, metrics).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Where dtabs are kept; the embedded disk store when absent.
    #[serde(default)]
    pub storage: Option<KindConfig>,
    /// Namers used to bind names.
    #[serde(default)]
    pub namers: Vec<NamerConfig>,
    /// The APIs served to routers and operators.
    pub interfaces: Vec<KindConfig>,
    /// Metrics exporters: `io.l5d.prometheus` and `io.l5d.influxdb`, as
    /// the router takes them.
    #[serde(default)]
    pub telemetry: Vec<KindConfig>,
    /// The work one bind may do (our own keys: Linkerd has none).
    #[serde(default, rename = "bindingLimits")]
    pub binding_limits: namers::config::BindingLimitsConfig,
    /// How large the `dtab` a request adds may be (our own keys, the
    /// router's `dtabHeaderLimits` block).
    #[serde(default, rename = "localDtabLimits")]
    pub local_dtab_limits: namers::config::LocalDtabLimitsConfig,
    /// How long bindings outlive their last watcher.
    #[serde(default, rename = "bindingCache")]
    pub binding_cache: namers::live_cache::BindingCacheConfig,
}

pub use namers::config::AdminConfig;

/// namerd's admin port when `admin.port` is not set.
pub const DEFAULT_ADMIN_PORT: u16 = 9991;

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

pub use namers::config::KindConfig;

/// `io.l5d.httpController`: the `/api/1` HTTP API.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpControllerConfig {
    /// Address to listen on (loopback by default).
    #[serde(default = "loopback")]
    pub ip: IpAddr,
    /// Port (4180 by default).
    #[serde(default = "default_controller_port")]
    pub port: u16,
    /// When set, dtab writes need `Authorization: Bearer <token>`.
    #[serde(default)]
    pub write_token: Option<String>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Serve the API over TLS, with client certificates checked when
    /// `requireClientAuth` is set (Linkerd's server `tls:` block).
    #[serde(default)]
    pub tls: Option<namers::tls::ServerTlsConfig>,
}

fn default_controller_port() -> u16 {
    4180
}

fn default_max_body() -> usize {
    crate::api::DEFAULT_MAX_BODY_BYTES
}

/// The interfaces this build can serve, and how each is read.
const INTERFACE_KINDS: &[(&str, ReadInterface)] = &[
    ("io.l5d.httpController", |p| {
        Ok(InterfaceConfig::Http(kind_params(p)?))
    }),
    (crate::iface::thrift::KIND, |p| {
        Ok(InterfaceConfig::Thrift(kind_params(p)?))
    }),
    (crate::iface::mesh::KIND, |p| {
        Ok(InterfaceConfig::Mesh(kind_params(p)?))
    }),
];

type ReadInterface = fn(&Map<String, Value>) -> Result<InterfaceConfig, String>;

/// One entry of `interfaces:`.
#[derive(Debug, Clone)]
pub enum InterfaceConfig {
    /// `io.l5d.httpController`: the `/api/1` HTTP API.
    Http(HttpControllerConfig),
    /// `io.l5d.thriftNameInterpreter`: Linkerd's thrift interface.
    Thrift(crate::iface::thrift::ThriftConfig),
    /// `io.l5d.mesh`: Linkerd's gRPC mesh interface.
    Mesh(crate::iface::mesh::MeshConfig),
}

impl InterfaceConfig {
    /// The interface's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            InterfaceConfig::Http(_) => "io.l5d.httpController",
            InterfaceConfig::Thrift(_) => crate::iface::thrift::KIND,
            InterfaceConfig::Mesh(_) => crate::iface::mesh::KIND,
        }
    }

    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        match self {
            InterfaceConfig::Http(c) => c.addr(),
            InterfaceConfig::Thrift(c) => c.addr(),
            InterfaceConfig::Mesh(c) => c.addr(),
        }
    }

    /// The interface's `tls:` block, when enabled.
    fn tls_config(&self) -> Option<&namers::tls::ServerTlsConfig> {
        let tls = match self {
            InterfaceConfig::Http(c) => c.tls.as_ref(),
            InterfaceConfig::Thrift(c) => c.tls.as_ref(),
            InterfaceConfig::Mesh(c) => c.tls.as_ref(),
        };
        tls.filter(|tls| tls.is_enabled())
    }

    /// The interface's TLS, read from its files now (`None` without a
    /// `tls:` block or with `enabled: false`). Errors name the file and
    /// what is wrong with it.
    pub fn server_tls(&self) -> Result<Option<Arc<namers::tls::ServerTls>>, String> {
        let Some(tls) = self.tls_config() else {
            return Ok(None);
        };
        let alpn: &[&[u8]] = match self {
            // The API's watches are chunked HTTP/1.1 responses.
            InterfaceConfig::Http(_) => &[namers::tls::ALPN_HTTP11],
            InterfaceConfig::Mesh(_) => &[namers::tls::ALPN_H2],
            // Thrift has no ALPN name; clients offer none.
            InterfaceConfig::Thrift(_) => &[],
        };
        Ok(Some(Arc::new(tls.build(alpn)?)))
    }
}

/// Builds a store from its config.
type BuildStore = fn(&Map<String, Value>) -> Result<Arc<dyn DtabStore>, String>;

/// Every storage kind this build knows; adding one is one line here.
const STORAGE_KINDS: &[(&str, BuildStore)] = &[
    ("io.switchboard.disk", |p| {
        let config: crate::store::disk::DiskConfig = kind_params(p)?;
        Ok(Arc::new(config.open().map_err(|e| e.to_string())?))
    }),
    ("io.l5d.inMemory", |p| {
        let config: crate::store::memory::InMemoryConfig = kind_params(p)?;
        Ok(Arc::new(config.build()?))
    }),
    ("io.l5d.zk", |p| {
        let config: crate::store::zk::ZkConfig = kind_params(p)?;
        Ok(Arc::new(config.build()?))
    }),
    ("io.l5d.etcd", |p| {
        let config: crate::store::etcd::EtcdConfig = kind_params(p)?;
        Ok(Arc::new(config.build()?))
    }),
    ("io.l5d.consul", |p| {
        let config: crate::store::consul::ConsulConfig = kind_params(p)?;
        Ok(Arc::new(config.build()?))
    }),
    ("io.l5d.k8s", crate::store::k8s::build),
];

/// The storage kinds this build has.
pub fn storage_kinds() -> Vec<&'static str> {
    STORAGE_KINDS.iter().map(|(kind, _)| *kind).collect()
}

/// The interface kinds this build serves.
pub fn interface_kinds() -> Vec<&'static str> {
    INTERFACE_KINDS.iter().map(|(kind, _)| *kind).collect()
}

/// Where the default store keeps its files, relative to the working dir.
pub const DEFAULT_DISK_DIR: &str = "namerd-data";

impl NamerdConfig {
    /// Builds the configured store (the embedded disk store by default).
    pub fn build_store(&self) -> Result<Arc<dyn DtabStore>, String> {
        let default = KindConfig {
            experimental: false,
            kind: "io.switchboard.disk".to_string(),
            params: [("dir".to_string(), Value::from(DEFAULT_DISK_DIR))]
                .into_iter()
                .collect(),
        };
        let storage = self.storage.as_ref().unwrap_or(&default);
        let (_, build) = STORAGE_KINDS
            .iter()
            .find(|(kind, _)| *kind == storage.kind)
            .ok_or_else(|| {
                let kinds: Vec<&str> = STORAGE_KINDS.iter().map(|(k, _)| *k).collect();
                namers::config::linkerd::unknown_kind("storage", "storage", &storage.kind, &kinds)
            })?;
        build(&storage.params).map_err(|e| format!("storage ({}): {e}", storage.kind))
    }

    /// The interfaces to serve, in config order (at least one is
    /// required).
    pub fn interfaces(&self) -> Result<Vec<InterfaceConfig>, String> {
        if self.interfaces.is_empty() {
            return Err(
                "interfaces: at least one interface is required (e.g. kind: io.l5d.httpController)"
                    .into(),
            );
        }
        self.interfaces
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                let Some((_, read)) = INTERFACE_KINDS.iter().find(|(k, _)| *k == iface.kind) else {
                    let kinds: Vec<&str> = INTERFACE_KINDS.iter().map(|(k, _)| *k).collect();
                    return Err(namers::config::linkerd::unknown_kind(
                        &format!("interfaces[{i}]"),
                        "interface",
                        &iface.kind,
                        &kinds,
                    ));
                };
                read(&iface.params).map_err(|e| format!("interfaces[{i}] ({}): {e}", iface.kind))
            })
            .collect()
    }

    /// The HTTP controllers among the interfaces.
    pub fn http_controllers(&self) -> Result<Vec<HttpControllerConfig>, String> {
        Ok(self
            .interfaces()?
            .into_iter()
            .filter_map(|iface| match iface {
                InterfaceConfig::Http(c) => Some(c),
                _ => None,
            })
            .collect())
    }

    /// The telemeters of `telemetry:`, checked.
    pub fn telemeters(&self) -> Result<Telemeters, String> {
        Telemeters::from_config(&self.telemetry, crate::admin::PATHS)
    }

    /// Checks the parts that need no I/O: interfaces, telemetry, namer kinds.
    pub fn validate(&self) -> Result<(), String> {
        self.interfaces()?;
        self.telemeters()?;
        let kinds = namers::config::namer_kinds();
        for (i, namer) in self.namers.iter().enumerate() {
            if !kinds.contains(&namer.kind.as_str()) {
                return Err(namers::config::linkerd::unknown_kind(
                    &format!("namers[{i}]"),
                    "namer",
                    &namer.kind,
                    &kinds,
                ));
            }
        }
        Ok(())
    }
}

impl HttpControllerConfig {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// Reads and checks a config file.
pub fn load(path: &std::path::Path) -> Result<NamerdConfig, String> {
    let source = namers::config::Source::read(path).map_err(|e| e.to_string())?;
    let config: NamerdConfig = source.parse().map_err(|e| e.to_string())?;
    config
        .validate()
        .map_err(|e| source.error(&e).to_string())?;
    Ok(config)
}

/// A directory for the default store, for messages.
pub fn default_disk_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DISK_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<NamerdConfig, String> {
        let config: NamerdConfig =
            namers::config::parse("namerd.yaml", yaml).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn linkerd_style_config_parses() {
        let config = parse(
            "admin:\n  port: 9991\nstorage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: /svc => /#/io.l5d.fs\nnamers:\n- kind: io.l5d.fs\n  rootDir: disco\ninterfaces:\n- kind: io.l5d.httpController\n  port: 4180\n",
        )
        .unwrap();
        assert_eq!(
            config.http_controllers().unwrap()[0].addr().to_string(),
            "127.0.0.1:4180"
        );
        assert!(config.build_store().is_ok());
    }

    #[test]
    fn unknown_kinds_and_keys_are_named() {
        let err = parse("interfaces:\n- kind: io.l5d.destination\n").unwrap_err();
        assert!(
            err.contains("interface kind \"io.l5d.destination\" is not supported yet"),
            "{err}"
        );
        assert!(err.contains("io.l5d.httpController"), "{err}");
        let err = parse("interfaces:\n- kind: io.l5d.httpController\n  prot: 1\n").unwrap_err();
        assert!(
            err.contains("interfaces[0] (io.l5d.httpController): prot: unknown field `prot`"),
            "{err}"
        );
        let err = parse("interfaces: []\nadmin:\n  portt: 1\n").unwrap_err();
        assert!(err.contains("admin.portt"), "{err}");
        let config =
            parse("storage:\n  kind: io.l5d.nope\ninterfaces:\n- kind: io.l5d.httpController\n")
                .unwrap();
        let err = config.build_store().err().unwrap();
        assert!(
            err.contains("unknown storage kind \"io.l5d.nope\""),
            "{err}"
        );
        assert!(err.contains("io.switchboard.disk"), "{err}");
    }

    #[test]
    fn interface_and_admin_tls_take_linkerds_server_tls_keys() {
        let err = load_error(
            "interfaces:\n- kind: io.l5d.httpController\n  tls:\n    certPath: a.pem\n    caCert: ca.pem\n",
        );
        assert!(
            err.starts_with("namerd.yaml: interfaces[0] (io.l5d.httpController): tls.caCert: line 5: unknown field `caCert`"),
            "{err}"
        );
        assert!(!err.contains("not supported yet"), "{err}");
        let config = parse(
            "admin:\n  tls:\n    certPath: a.pem\n    keyPath: a-key.pem\ninterfaces:\n- kind: io.l5d.httpController\n  tls:\n    enabled: false\n    certPath: a.pem\n    keyPath: a-key.pem\n",
        )
        .unwrap();
        assert!(config.admin.tls.is_some());
        // Turned off: its files are not read.
        assert!(
            config.interfaces().unwrap()[0]
                .server_tls()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn linkerds_k8s_storage_config_builds_and_its_keys_are_checked() {
        let with = |storage: &str| {
            parse(&format!(
                "storage:\n  kind: io.l5d.k8s\n{storage}interfaces:\n- kind: io.l5d.httpController\n"
            ))
            .unwrap()
            .build_store()
        };
        assert!(with("  host: localhost\n  port: 8001\n  namespace: linkerd\n").is_ok());
        assert!(with("").is_ok());
        let err = with("  namespace: Linkerd\n").err().unwrap();
        assert!(err.starts_with("storage (io.l5d.k8s): namespace:"), "{err}");
        let err = with("  hots: x\n").err().unwrap();
        assert!(err.contains("io.l5d.k8s") && err.contains("hots"), "{err}");
    }

    #[test]
    fn bad_seed_dtabs_are_reported_with_the_namespace() {
        let config = parse(
            "storage:\n  kind: io.l5d.inMemory\n  namespaces:\n    web: /svc =>\ninterfaces:\n- kind: io.l5d.httpController\n",
        )
        .unwrap();
        let err = config.build_store().err().unwrap();
        assert!(err.contains("namespaces.web: invalid dtab"), "{err}");
    }

    #[test]
    fn telemetry_takes_the_routers_telemeters_and_the_snapshot_interval() {
        let config = parse(
            "admin:\n  histogramSnapshotIntervalMs: 10000\ninterfaces:\n- kind: io.l5d.httpController\ntelemetry:\n- kind: io.l5d.prometheus\n  path: /metrics\n  prefix: namerd_\n- kind: io.l5d.influxdb\n",
        )
        .unwrap();
        let telemeters = config.telemeters().unwrap();
        assert_eq!(
            telemeters.paths(),
            [
                "/admin/metrics.json",
                "/metrics",
                "/admin/metrics/prometheus",
                "/admin/metrics/influxdb"
            ]
        );
        assert_eq!(
            config.admin.histogram_snapshot_interval(),
            std::time::Duration::from_secs(10)
        );
    }

    /// What `load` reports for `yaml`.
    fn load_error(yaml: &str) -> String {
        let source = namers::config::Source::new("namerd.yaml", yaml);
        let config: NamerdConfig = source.parse().unwrap();
        source.error(&config.validate().unwrap_err()).to_string()
    }

    #[test]
    fn bad_telemeters_are_refused_with_file_key_and_line() {
        let err = load_error(
            "interfaces:\n- kind: io.l5d.httpController\ntelemetry:\n- kind: io.l5d.prometheus\n- kind: io.l5d.zipkin\n  sampleRate: 2\n",
        );
        assert!(
            err.starts_with("namerd.yaml: telemetry[1] (io.l5d.zipkin): sampleRate: line 6:"),
            "{err}"
        );
        let err = load_error(
            "interfaces:\n- kind: io.l5d.httpController\ntelemetry:\n- kind: io.l5d.prometheus\n  path: /admin/ping\n",
        );
        assert!(
            err.starts_with("namerd.yaml: telemetry[0] (io.l5d.prometheus): path: line 5: /admin/ping is another admin endpoint"),
            "{err}"
        );
        let err = load_error(
            "interfaces:\n- kind: io.l5d.httpController\ntelemetry:\n- kind: io.l5d.influxdb\n  host: x\n",
        );
        assert!(
            err.starts_with(
                "namerd.yaml: telemetry[0] (io.l5d.influxdb): host: line 5: unknown field `host`"
            ),
            "{err}"
        );
    }
}
