//! The `io.l5d.zkLeader` namer: the leader of a ZooKeeper leader-election
//! group, as the commons `Group`/`CandidateImpl` recipe runs it.
//!
//! A group is a znode whose children named `member_*` are the candidates
//! (ephemeral sequential znodes); the leader is the first of them in name
//! order, which is the one with the lowest sequence number. Its data says
//! where the leader serves: `host:port` text (several may be separated by
//! commas or spaces), as the recipe writes it and Linkerd reads it; a
//! serverset JSON entry is read too (its `serviceEndpoint`).
//!
//! Looking up `/<zk path...>` below the namer's prefix binds the longest
//! prefix of the path that is a group with a leader, with the rest as the
//! residual (as `io.l5d.serversets` does); the id is the prefix plus that
//! znode path. The address follows the leader: when it goes away the next
//! candidate takes over. Outages keep the last leader, as in
//! [`crate::serversets`], whose watching this namer shares.

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
use crate::serversets::{
    DEFAULT_SESSION_TIMEOUT, HostPort, ZkAddr, connect_string, parse_member, znode,
};
use crate::system::inet::InetResolver;
use crate::{Addr, Live, Lookup, Metadata, Namer, NamerCounter};

const KIND: &str = "io.l5d.zkLeader";

/// The `io.l5d.zkLeader` config block (its `kind` and `prefix` are read by
/// the namer registry).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZkLeaderConfig {
    /// The ZooKeeper servers.
    pub zk_addrs: Vec<ZkAddr>,
}

impl ZkLeaderConfig {
    /// Checks the config and builds the namer, serving paths below `prefix`.
    pub fn build(
        &self,
        prefix: Path,
        inet: Arc<InetResolver>,
    ) -> Result<Arc<ZkLeaderNamer>, String> {
        let servers = connect_string(&self.zk_addrs)?;
        Ok(ZkLeaderNamer::new(
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
    let config: ZkLeaderConfig = kind_params(params)?;
    Ok(config.build(prefix.clone(), context.inet.clone())?)
}

/// The `io.l5d.zkLeader` namer.
pub struct ZkLeaderNamer {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Arc<Addrs<LeaderData>>,
    trees: Arc<Trees>,
}

/// What a candidate's data says.
#[derive(Clone, Debug, PartialEq)]
enum LeaderData {
    Endpoints(Vec<HostPort>),
    Unusable(Arc<str>),
}

impl ZkLeaderNamer {
    /// A namer reading the groups of the ZooKeeper ensemble at
    /// `connect_string` through one session with `session_timeout`, serving
    /// paths below `prefix` (usually `/#/io.l5d.zkLeader`).
    pub fn new(
        prefix: Path,
        connect_string: String,
        session_timeout: Duration,
        inet: Arc<InetResolver>,
    ) -> Arc<ZkLeaderNamer> {
        let session = ZkSession::new(KIND, connect_string, session_timeout);
        let groups = Arc::new(Groups::new(session, decode));
        Arc::new(ZkLeaderNamer {
            inner: Arc::new(Inner {
                addrs: Arc::new(Addrs::new(groups, inet, select)),
                trees: Arc::new(Trees::new(KIND, prefix)),
            }),
        })
    }

    /// How many groups are watched in ZooKeeper; zero once every lookup and
    /// address handle has been dropped.
    pub fn watched_count(&self) -> usize {
        self.inner.addrs.groups().watched_count()
    }

    /// [`ZkLeaderNamer::watched_count`] as a value to wait on.
    pub fn watched(&self) -> tokio_watch::Receiver<usize> {
        self.inner.addrs.groups().watched()
    }
}

impl Namer for ZkLeaderNamer {
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
        let group = znode(elems)?;
        Some(self.addrs.addr(&group, None))
    }
}

fn decode(_: &str, data: &[u8]) -> Option<LeaderData> {
    Some(match parse_leader_data(data) {
        Ok(endpoints) => LeaderData::Endpoints(endpoints),
        Err(why) => LeaderData::Unusable(why.into()),
    })
}

/// Reads a leader's data: `host:port` entries separated by commas or
/// spaces (IPv6 hosts in brackets), or a serverset JSON entry.
pub fn parse_leader_data(data: &[u8]) -> Result<Vec<HostPort>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())?;
    let text = text.trim();
    if text.starts_with('{') {
        let instance = parse_member(text.as_bytes()).map_err(|e| e.to_string())?;
        return match instance.service_endpoint {
            Some(hp) => Ok(vec![hp]),
            None => Err("a serverset entry without a serviceEndpoint".to_string()),
        };
    }
    let mut endpoints = Vec::new();
    for entry in text
        .split([',', ' ', '\n', '\t', '\r'])
        .filter(|e| !e.is_empty())
    {
        let bad = || format!("{entry:?} is not host:port");
        let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 || (host.contains(':') && !entry.starts_with('[')) {
            return Err(bad());
        }
        endpoints.push(HostPort {
            host: host.to_string(),
            port,
        });
    }
    if endpoints.is_empty() {
        return Err("no host:port".to_string());
    }
    Ok(endpoints)
}

/// The leader's address: negative without candidates, failed when the
/// leader's data is unusable (the next candidate is not a leader).
fn select(group: &str, state: &GroupState<LeaderData>, _: Option<&str>) -> Wanted {
    let members = match state {
        GroupState::Pending => return Wanted::Pending,
        GroupState::Missing => return Wanted::Neg,
        GroupState::Failed(why) => return Wanted::Failed(why.clone()),
        GroupState::Members(members) => members,
    };
    match members.iter().next() {
        None => Wanted::Neg,
        Some((_, LeaderData::Endpoints(list))) => Wanted::Endpoints(
            list.iter()
                .map(|hp| (hp.clone(), Metadata::new()))
                .collect(),
        ),
        Some((name, LeaderData::Unusable(why))) => {
            Wanted::Failed(format!("{KIND}: the data of leader {group}/{name}: {why}").into())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn reads_host_port_lists_and_serverset_entries() {
        assert_eq!(
            parse_leader_data(b"10.0.0.1:8080"),
            Ok(vec![hp("10.0.0.1", 8080)])
        );
        assert_eq!(
            parse_leader_data(b" a:1, b:2 [::1]:3\n"),
            Ok(vec![hp("a", 1), hp("b", 2), hp("::1", 3)])
        );
        assert_eq!(
            parse_leader_data(br#"{"serviceEndpoint":{"host":"h","port":9},"status":"ALIVE"}"#),
            Ok(vec![hp("h", 9)])
        );
        for bad in [&b""[..], b"host", b"h:0", b"h:x", b"::1:80", b"\xff", b"{}"] {
            assert!(parse_leader_data(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_lowest_member_leads() {
        let state = |list: &[(&str, &[u8])]| {
            GroupState::Members(Arc::new(
                list.iter()
                    .filter_map(|(name, data)| Some((name.to_string(), decode(name, data)?)))
                    .collect::<BTreeMap<_, _>>(),
            ))
        };
        let two = state(&[
            ("member_0000000007", b"10.0.0.7:1"),
            ("member_0000000003", b"10.0.0.3:1"),
        ]);
        let Wanted::Endpoints(leader) = select("/g", &two, None) else {
            panic!("a leader expected");
        };
        assert_eq!(leader[0].0, hp("10.0.0.3", 1));
        let bad = state(&[
            ("member_0000000001", b"nonsense"),
            ("member_0000000002", b"h:1"),
        ]);
        let Wanted::Failed(why) = select("/g", &bad, None) else {
            panic!("failure expected");
        };
        assert!(why.contains("/g/member_0000000001"), "{why}");
        assert!(matches!(select("/g", &state(&[]), None), Wanted::Neg));
        assert!(matches!(
            select("/g", &GroupState::Missing, None),
            Wanted::Neg
        ));
    }
}
