//! The `io.l5d.curator` namer: services registered with Apache Curator's
//! service discovery (`curator-x-discovery`) in ZooKeeper.
//!
//! Curator keeps each service at `<basePath>/<service name>`, and each of
//! its instances in a child znode named by the instance's id, holding the
//! instance as JSON:
//!
//! ```json
//! {"name": "web", "id": "5f0c…", "address": "10.0.0.1", "port": 8080,
//!  "sslPort": null, "payload": null, "registrationTimeUTC": 1700000000000,
//!  "serviceType": "DYNAMIC", "uriSpec": null}
//! ```
//!
//! Looking up `/<service>/rest` below the namer's prefix binds the
//! service's instances, with id `<prefix>/<service>` and residual `/rest`.
//! Each instance is one endpoint at its `address` and its `sslPort` if it
//! has one, else its `port` (as Linkerd chose), with `ssl` in its
//! metadata. A service without a znode or without a usable instance is
//! negative. The instances are watched (children and data) through the
//! session and watch machinery of [`crate::serversets`], so changes arrive
//! live and ZooKeeper outages keep the last instances.

use std::sync::Arc;
use std::time::Duration;

use dtab::{Label, Path};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::watch as tokio_watch;

use crate::config::{NamerContext, kind_params};
use crate::serversets::prefix::{AddrSource, Trees};
use crate::serversets::resolve::{Addrs, Wanted};
use crate::serversets::watch::{GroupState, Groups, ZkSession};
use crate::serversets::{DEFAULT_SESSION_TIMEOUT, HostPort, ZkAddr, connect_string, znode};
use crate::system::inet::InetResolver;
use crate::{Addr, Live, Lookup, Metadata, Namer, NamerCounter};

const KIND: &str = "io.l5d.curator";

/// The metadata key saying whether an endpoint is an instance's `sslPort`.
pub const SSL_KEY: &str = "ssl";

/// The `io.l5d.curator` config block (its `kind`, `prefix` and
/// `experimental` are read by the namer registry).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CuratorConfig {
    /// The ZooKeeper servers.
    pub zk_addrs: Vec<ZkAddr>,
    /// The znode under which Curator keeps its services (default `/`).
    #[serde(default)]
    pub base_path: Option<String>,
}

impl CuratorConfig {
    /// The base path as a znode path without a trailing slash (`""` for
    /// the root), checked.
    pub fn base_znode(&self) -> Result<String, String> {
        let Some(text) = &self.base_path else {
            return Ok(String::new());
        };
        let bad = |why: &str| format!("basePath: {text:?} {why}");
        if !text.starts_with('/') {
            return Err(bad("must start with /"));
        }
        let trimmed = text.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(String::new());
        }
        let labels: Option<Vec<Label>> = trimmed[1..].split('/').map(Label::new).collect();
        match labels.and_then(|labels| znode(&labels)) {
            Some(path) => Ok(path),
            None => Err(bad("is not a ZooKeeper path")),
        }
    }

    /// Checks the config and builds the namer, serving paths below `prefix`.
    /// It connects on first use, so it can start while ZooKeeper is down.
    pub fn build(
        &self,
        prefix: Path,
        inet: Arc<InetResolver>,
    ) -> Result<Arc<CuratorNamer>, String> {
        let servers = connect_string(&self.zk_addrs)?;
        let base = self.base_znode()?;
        Ok(CuratorNamer::new(
            prefix,
            servers,
            base,
            DEFAULT_SESSION_TIMEOUT,
            inet,
        ))
    }
}

/// Builds the namer from its config keys (the namer registry's entry).
pub(crate) fn build(
    prefix: &Path,
    params: &Map<String, Value>,
    context: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: CuratorConfig = kind_params(params)?;
    Ok(config.build(prefix.clone(), context.inet.clone())?)
}

/// The `io.l5d.curator` namer.
pub struct CuratorNamer {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    addrs: Arc<Addrs<Instance>>,
    trees: Arc<Trees>,
}

impl CuratorNamer {
    /// A namer reading the services below the znode `base` (`""` for the
    /// root) of the ZooKeeper ensemble at `connect_string`, through one
    /// session with `session_timeout`, serving paths below `prefix`
    /// (usually `/#/io.l5d.curator`).
    pub fn new(
        prefix: Path,
        connect_string: String,
        base: String,
        session_timeout: Duration,
        inet: Arc<InetResolver>,
    ) -> Arc<CuratorNamer> {
        let session = ZkSession::new(KIND, connect_string, session_timeout);
        let groups = Arc::new(Groups::with_members(session, decode, |_| true));
        Arc::new(CuratorNamer {
            inner: Arc::new(Inner {
                base,
                addrs: Arc::new(Addrs::new(groups, inet, select)),
                trees: Arc::new(Trees::new(KIND, prefix)),
            }),
        })
    }

    /// How many services are watched in ZooKeeper; zero once every lookup
    /// and address handle has been dropped.
    pub fn watched_count(&self) -> usize {
        self.inner.addrs.groups().watched_count()
    }

    /// [`CuratorNamer::watched_count`] as a value to wait on.
    pub fn watched(&self) -> tokio_watch::Receiver<usize> {
        self.inner.addrs.groups().watched()
    }
}

impl Namer for CuratorNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        self.inner.trees.lookup(self.inner.clone(), path)
    }

    fn counters(&self) -> Vec<NamerCounter> {
        let session = self.inner.addrs.groups().session();
        vec![NamerCounter::state_changes(session.state_changes())]
    }
}

impl AddrSource for Inner {
    fn addr_of(&self, elems: &[Label]) -> Option<Live<Addr>> {
        // The service is the first label; the rest is the residual.
        let [service] = elems else {
            return None;
        };
        let service = znode(std::slice::from_ref(service))?;
        Some(self.addrs.addr(&format!("{}{service}", self.base), None))
    }
}

/// What the namer keeps of one registered instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Where it serves, if the instance says.
    pub endpoint: Option<HostPort>,
    /// Whether `endpoint` is its `sslPort`.
    pub ssl: bool,
    /// Curator's `enabled` flag (true when absent).
    pub enabled: bool,
}

/// Why an instance's data could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// Not a JSON object.
    #[error("not a JSON object")]
    NotObject,
    /// No string `address`.
    #[error("no address")]
    NoAddress,
    /// Neither `sslPort` nor `port` is a port number.
    #[error("neither sslPort nor port is a port from 1 to 65535")]
    NoPort,
}

/// Reads an instance's data as Curator's `JsonInstanceSerializer` writes
/// it. Unknown keys (`payload`, `uriSpec`, ...) are ignored.
pub fn parse_instance(data: &[u8]) -> Result<Instance, InstanceError> {
    let value: Value = serde_json::from_slice(data).map_err(|_| InstanceError::NotObject)?;
    let Value::Object(object) = value else {
        return Err(InstanceError::NotObject);
    };
    let host = object
        .get("address")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .ok_or(InstanceError::NoAddress)?;
    let port = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    };
    // Linkerd used the SSL port whenever the instance had one.
    let (port, ssl) = match (port("sslPort"), port("port")) {
        (Some(ssl_port), _) => (ssl_port, true),
        (None, Some(port)) => (port, false),
        (None, None) => return Err(InstanceError::NoPort),
    };
    let enabled = object
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(Instance {
        endpoint: Some(HostPort {
            host: host.to_string(),
            port,
        }),
        ssl,
        enabled,
    })
}

fn decode(znode: &str, data: &[u8]) -> Option<Instance> {
    match parse_instance(data) {
        Ok(instance) => Some(instance),
        Err(error) => {
            tracing::warn!(namer = KIND, instance = %znode, %error, "not a usable Curator service instance; ignored");
            None
        }
    }
}

/// The enabled instances' endpoints; negative when there are none.
fn select(_: &str, state: &GroupState<Instance>, _: Option<&str>) -> Wanted {
    let instances = match state {
        GroupState::Pending => return Wanted::Pending,
        GroupState::Missing => return Wanted::Neg,
        GroupState::Failed(why) => return Wanted::Failed(why.clone()),
        GroupState::Members(instances) => instances,
    };
    let endpoints: Vec<(HostPort, Metadata)> = instances
        .values()
        .filter(|i| i.enabled)
        .filter_map(|i| {
            let mut meta = Metadata::new();
            meta.insert(SSL_KEY.to_string(), i.ssl.into());
            Some((i.endpoint.clone()?, meta))
        })
        .collect();
    if endpoints.is_empty() {
        Wanted::Neg
    } else {
        Wanted::Endpoints(endpoints)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(json: &str) -> Result<CuratorConfig, String> {
        kind_params(
            serde_json::from_str::<Value>(json)
                .unwrap()
                .as_object()
                .unwrap(),
        )
    }

    fn checked(json: &str) -> Result<(String, String), String> {
        let c = config(json)?;
        Ok((connect_string(&c.zk_addrs)?, c.base_znode()?))
    }

    #[test]
    fn reads_linkerds_keys() {
        assert_eq!(
            checked(
                r#"{"zkAddrs": [{"host": "zk1"}, {"host": "zk2", "port": 2182}], "basePath": "/curator/"}"#
            ),
            Ok(("zk1:2181,zk2:2182".into(), "/curator".into()))
        );
        assert_eq!(checked(r#"{"zkAddrs": [{"host": "zk"}]}"#).unwrap().1, "");
        assert_eq!(
            checked(r#"{"zkAddrs": [{"host": "zk"}], "basePath": "/"}"#)
                .unwrap()
                .1,
            ""
        );
        let cases = [
            (r#"{}"#, "missing field `zkAddrs`"),
            (r#"{"zkAddrs": []}"#, "zkAddrs:"),
            (
                r#"{"zkAddrs": [{"host": "a", "port": 0}]}"#,
                "zkAddrs[0].port",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "basePath": "curator"}"#,
                "basePath: \"curator\" must start with /",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "basePath": "/a//b"}"#,
                "basePath: \"/a//b\" is not a ZooKeeper path",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "basePath": "/a/../b"}"#,
                "is not a ZooKeeper path",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "hosts": "a:1"}"#,
                "unknown field `hosts`",
            ),
        ];
        for (json, want) in cases {
            let err = checked(json).err().unwrap_or_default();
            assert!(
                err.contains(want),
                "{json}: {err:?} should contain {want:?}"
            );
        }
    }

    #[test]
    fn reads_what_curator_writes() {
        let plain = parse_instance(
            br#"{"name":"web","id":"b7f1","address":"10.0.0.1","port":8080,"sslPort":null,
                "payload":{"@class":"com.example.Details","zone":"a"},"registrationTimeUTC":1700000000000,
                "serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true}]}}"#,
        )
        .unwrap();
        assert_eq!(
            plain.endpoint,
            Some(HostPort {
                host: "10.0.0.1".into(),
                port: 8080
            })
        );
        assert!(!plain.ssl && plain.enabled);
        let ssl = parse_instance(
            br#"{"address":"web-2.example","port":80,"sslPort":443,"enabled":false}"#,
        )
        .unwrap();
        assert_eq!(ssl.endpoint.as_ref().unwrap().port, 443);
        assert!(ssl.ssl && !ssl.enabled);
        assert_eq!(parse_instance(b"[]"), Err(InstanceError::NotObject));
        assert_eq!(parse_instance(b"\xff"), Err(InstanceError::NotObject));
        assert_eq!(
            parse_instance(br#"{"port":1}"#),
            Err(InstanceError::NoAddress)
        );
        assert_eq!(
            parse_instance(br#"{"address":"a","port":0}"#),
            Err(InstanceError::NoPort)
        );
        assert_eq!(
            parse_instance(br#"{"address":"a","port":"80"}"#),
            Err(InstanceError::NoPort)
        );
    }

    #[test]
    fn enabled_instances_count_and_none_is_negative() {
        let state = |list: &[(&str, &[u8])]| {
            GroupState::Members(Arc::new(
                list.iter()
                    .filter_map(|(name, data)| Some((name.to_string(), decode(name, data)?)))
                    .collect(),
            ))
        };
        let two = state(&[
            ("a", br#"{"address":"10.0.0.1","port":80}"#),
            ("b", br#"{"address":"10.0.0.2","port":80,"sslPort":443}"#),
            ("c", br#"{"address":"10.0.0.3","port":80,"enabled":false}"#),
            ("d", b"garbage"),
        ]);
        let Wanted::Endpoints(found) = select("/s", &two, None) else {
            panic!("endpoints expected");
        };
        let ports: Vec<(u16, bool)> = found
            .iter()
            .map(|(hp, meta)| (hp.port, meta[SSL_KEY] == Value::Bool(true)))
            .collect();
        assert_eq!(ports, [(80, false), (443, true)]);
        assert!(matches!(
            select(
                "/s",
                &state(&[("c", br#"{"address":"a","port":1,"enabled":false}"#)]),
                None
            ),
            Wanted::Neg
        ));
        assert!(matches!(
            select("/s", &GroupState::Missing, None),
            Wanted::Neg
        ));
    }
}
