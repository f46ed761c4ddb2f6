//! The `io.l5d.serversets` namer: Finagle serversets in ZooKeeper.
//!
//! A serverset is a znode whose children named `member_*` (ephemeral
//! sequential znodes written by Finagle's or the commons announcers) each
//! hold one [`ServiceInstance`] as JSON. Looking up
//! `/discovery/prod/web:http/rest` below the namer's prefix binds the
//! longest prefix of the path that is a serverset with at least one `ALIVE`
//! member (see [`prefix`] for how the choice stays live): here the
//! serverset `/discovery/prod/web`, endpoint `http` (the member's
//! `additionalEndpoints["http"]`; without `:name`, its `serviceEndpoint`),
//! with id `<prefix>/discovery/prod/web:http` and residual `/rest`. A path
//! no prefix of which has such a serverset is negative.
//!
//! The address is live: each serverset is watched (children and every
//! member's data), its members' shard ids are in their endpoints'
//! metadata (`shard`), and host names are resolved through DNS. While
//! ZooKeeper cannot be reached the last members are kept. One ZooKeeper
//! session serves the whole namer; a serverset stops being watched when
//! no lookup or address of it is held any more.

mod member;
pub(crate) mod prefix;
pub(crate) mod resolve;
pub(crate) mod watch;

pub use member::{HostPort, MemberError, ServiceInstance, Status, parse_member};
pub use watch::{DEFAULT_SESSION_TIMEOUT, MEMBER_PREFIX};

use std::sync::Arc;
use std::time::Duration;

use dtab::{Label, Path};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::watch as tokio_watch;

use crate::config::{NamerContext, kind_params};
use crate::system::inet::InetResolver;
use crate::{Addr, Live, Lookup, Metadata, Namer, NamerCounter};
use prefix::{AddrSource, Trees};
use resolve::{Addrs, Wanted};
use watch::{GroupState, Groups, ZkSession};

/// The metadata key of a member's shard id on its endpoints.
pub const SHARD_KEY: &str = "shard";

const KIND: &str = "io.l5d.serversets";

/// The `io.l5d.serversets` config block (its `kind` and `prefix` are read
/// by the namer registry).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServersetsConfig {
    /// The ZooKeeper servers.
    pub zk_addrs: Vec<ZkAddr>,
}

/// One ZooKeeper server of a `zkAddrs` list.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZkAddr {
    /// Host name or IP address.
    pub host: String,
    /// Client port (default 2181).
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    2181
}

/// The ZooKeeper connect string (`host:port,...`) of a `zkAddrs` list;
/// the error names the entry and why.
pub fn connect_string(zk_addrs: &[ZkAddr]) -> Result<String, String> {
    if zk_addrs.is_empty() {
        return Err("zkAddrs: at least one ZooKeeper server is required".to_string());
    }
    let mut servers = Vec::new();
    for (i, addr) in zk_addrs.iter().enumerate() {
        let host = addr.host.trim();
        if host.is_empty() || host.contains([',', '/', ' ']) {
            return Err(format!("zkAddrs[{i}].host: invalid host {:?}", addr.host));
        }
        if addr.port == 0 {
            return Err(format!("zkAddrs[{i}].port: must be 1-65535"));
        }
        if host.contains(':') && !host.starts_with('[') {
            servers.push(format!("[{host}]:{}", addr.port));
        } else {
            servers.push(format!("{host}:{}", addr.port));
        }
    }
    Ok(servers.join(","))
}

impl ServersetsConfig {
    /// Checks the config and builds the namer, serving paths below `prefix`.
    /// It connects on first use, so it can start while ZooKeeper is down.
    pub fn build(
        &self,
        prefix: Path,
        inet: Arc<InetResolver>,
    ) -> Result<Arc<ServersetsNamer>, String> {
        let servers = connect_string(&self.zk_addrs)?;
        Ok(ServersetsNamer::new(
            prefix,
            servers,
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
    let config: ServersetsConfig = kind_params(params)?;
    Ok(config.build(prefix.clone(), context.inet.clone())?)
}

/// The `io.l5d.serversets` namer.
pub struct ServersetsNamer {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Arc<Addrs<ServiceInstance>>,
    trees: Arc<Trees>,
}

impl ServersetsNamer {
    /// A namer reading the serversets of the ZooKeeper ensemble at
    /// `connect_string` (`host:port,...`) through one session with
    /// `session_timeout`, serving paths below `prefix` (usually
    /// `/#/io.l5d.serversets`).
    pub fn new(
        prefix: Path,
        connect_string: String,
        session_timeout: Duration,
        inet: Arc<InetResolver>,
    ) -> Arc<ServersetsNamer> {
        let session = ZkSession::new(KIND, connect_string, session_timeout);
        let groups = Arc::new(Groups::new(session, decode));
        Arc::new(ServersetsNamer {
            inner: Arc::new(Inner {
                addrs: Arc::new(Addrs::new(groups, inet, select)),
                trees: Arc::new(Trees::new(KIND, prefix)),
            }),
        })
    }

    /// How many serversets are watched in ZooKeeper; zero once every
    /// lookup and address handle has been dropped.
    pub fn watched_count(&self) -> usize {
        self.inner.addrs.groups().watched_count()
    }

    /// [`ServersetsNamer::watched_count`] as a value to wait on.
    pub fn watched(&self) -> tokio_watch::Receiver<usize> {
        self.inner.addrs.groups().watched()
    }

    /// How many lookups are live.
    pub fn lookup_count(&self) -> usize {
        self.inner.trees.count()
    }

    /// The id of the current ZooKeeper session, if one is open.
    pub async fn session_id(&self) -> Option<i64> {
        self.inner.addrs.groups().session().session_id().await
    }
}

impl Namer for ServersetsNamer {
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
        let (last, parents) = elems.split_last()?;
        let last = last.as_str()?;
        // Linkerd splits at the first `:`.
        let (name, endpoint) = match last.split_once(':') {
            Some((name, endpoint)) => (name, Some(endpoint)),
            None => (last, None),
        };
        let mut group = znode(parents)?;
        if !znode_name(name) {
            return None;
        }
        group.push('/');
        group.push_str(name);
        Some(self.addrs.addr(&group, endpoint))
    }
}

/// The absolute znode path of these labels (`""` for none), unless one of
/// them cannot be a znode name.
pub(crate) fn znode(elems: &[Label]) -> Option<String> {
    let mut path = String::new();
    for label in elems {
        let name = label.as_str()?;
        if !znode_name(name) {
            return None;
        }
        path.push('/');
        path.push_str(name);
    }
    Some(path)
}

/// Whether ZooKeeper takes `name` as one element of a znode path: it
/// refuses control characters, the private use area and U+FFF0-U+FFFF.
fn znode_name(name: &str) -> bool {
    let refused = |c: char| {
        c.is_control()
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
    };
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains(refused)
}

fn decode(member: &str, data: &[u8]) -> Option<ServiceInstance> {
    match parse_member(data) {
        Ok(instance) => Some(instance),
        Err(error) => {
            tracing::warn!(namer = KIND, %member, %error, "member data is not a serverset entry; ignored");
            None
        }
    }
}

/// The `ALIVE` members' endpoints of that name; negative when there are
/// none, as in Finagle.
fn select(_: &str, state: &GroupState<ServiceInstance>, endpoint: Option<&str>) -> Wanted {
    let members = match state {
        GroupState::Pending => return Wanted::Pending,
        GroupState::Missing => return Wanted::Neg,
        GroupState::Failed(why) => return Wanted::Failed(why.clone()),
        GroupState::Members(members) => members,
    };
    let endpoints: Vec<(HostPort, Metadata)> = members
        .values()
        .filter(|instance| instance.status == Status::Alive)
        .filter_map(|instance| {
            let hp = instance.endpoint(endpoint)?;
            let mut meta = Metadata::new();
            if let Some(shard) = instance.shard {
                meta.insert(SHARD_KEY.to_string(), shard.into());
            }
            Some((hp.clone(), meta))
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

    fn config(json: &str) -> Result<String, String> {
        let config: ServersetsConfig = kind_params(
            serde_json::from_str::<Value>(json)
                .unwrap()
                .as_object()
                .unwrap(),
        )?;
        connect_string(&config.zk_addrs)
    }

    #[test]
    fn zk_addrs_default_their_port_and_are_checked() {
        assert_eq!(
            config(
                r#"{"zkAddrs": [{"host": "zk1"}, {"host": "zk2", "port": 2182}, {"host": "::1"}]}"#
            ),
            Ok("zk1:2181,zk2:2182,[::1]:2181".to_string())
        );
        let cases = [
            (r#"{"zkAddrs": []}"#, "zkAddrs:"),
            (r#"{}"#, "missing field `zkAddrs`"),
            (r#"{"zkAddrs": [{"host": ""}]}"#, "zkAddrs[0].host"),
            (
                r#"{"zkAddrs": [{"host": "a", "port": 0}]}"#,
                "zkAddrs[0].port",
            ),
            (
                r#"{"zkAddrs": [{"host": "a", "port": 70000}]}"#,
                "zkAddrs[0].port",
            ),
            (
                r#"{"zkAddrs": [{"host": "a", "prot": 1}]}"#,
                "unknown field `prot`",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "pathPrefix": "/x"}"#,
                "unknown field `pathPrefix`",
            ),
        ];
        for (text, key) in cases {
            let err = config(text).err().unwrap_or_default();
            assert!(err.contains(key), "{text}: {err:?} should name {key}");
        }
    }

    fn members(list: &[(&str, &str)]) -> GroupState<ServiceInstance> {
        GroupState::Members(Arc::new(
            list.iter()
                .map(|(name, json)| (name.to_string(), parse_member(json.as_bytes()).unwrap()))
                .collect(),
        ))
    }

    #[test]
    fn only_alive_members_with_the_endpoint_count() {
        let state = members(&[
            (
                "member_0000000001",
                r#"{"serviceEndpoint":{"host":"10.0.0.1","port":80},"additionalEndpoints":{"http":{"host":"10.0.0.1","port":81}},"status":"ALIVE","shard":1}"#,
            ),
            (
                "member_0000000002",
                r#"{"serviceEndpoint":{"host":"10.0.0.2","port":80},"additionalEndpoints":{},"status":"ALIVE"}"#,
            ),
            (
                "member_0000000003",
                r#"{"serviceEndpoint":{"host":"10.0.0.3","port":80},"status":"DEAD"}"#,
            ),
        ]);
        let Wanted::Endpoints(all) = select("/s", &state, None) else {
            panic!("bound expected");
        };
        let hosts: Vec<&str> = all.iter().map(|(hp, _)| hp.host.as_str()).collect();
        assert_eq!(hosts, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(all[0].1.get(SHARD_KEY), Some(&Value::from(1)));
        assert!(all[1].1.is_empty());
        let Wanted::Endpoints(http) = select("/s", &state, Some("http")) else {
            panic!("bound expected");
        };
        assert_eq!(http.len(), 1);
        assert_eq!(http[0].0.port, 81);
        assert!(matches!(select("/s", &state, Some("admin")), Wanted::Neg));
        assert!(matches!(
            select("/s", &GroupState::Missing, None),
            Wanted::Neg
        ));
        assert!(matches!(select("/s", &members(&[]), None), Wanted::Neg));
    }

    #[test]
    fn labels_that_cannot_be_znodes_name_nothing() {
        let labels = |text: &str| Path::read(text).unwrap().elems().to_vec();
        assert_eq!(znode(&labels("/a/b.c/d:e")), Some("/a/b.c/d:e".to_string()));
        assert_eq!(znode(&labels("/a/../b")), None);
        assert_eq!(znode(&labels("/a/\\x01")), None);
        assert_eq!(znode(&labels("/a/\\xef\\xbf\\xbf")), None);
        assert_eq!(
            znode(&labels("/caf\\xc3\\xa9")),
            Some("/caf\u{e9}".to_string())
        );
        assert_eq!(znode(&[]), Some(String::new()));
    }
}
