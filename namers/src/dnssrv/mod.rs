//! The `io.l5d.dnssrv` namer: services found through DNS SRV records.
//!
//! Looking up `/<srv name>/rest` below the namer's prefix asks the DNS for
//! the SRV records of `<srv name>` (e.g. `_http._tcp.web.example.org`).
//! Each record's target host and port becomes an endpoint, weighted by the
//! record's weight; the id is the prefix plus the name, and `/rest` is the
//! residual. NXDOMAIN, a name without SRV records and records none of whose
//! targets has an address are negative, so the dtab's alternatives apply.
//!
//! Each name in use is looked up again every `refreshIntervalSeconds`
//! (sooner when its records' TTL is shorter), through the configured
//! `dnsHosts` or the system's resolver. While the DNS server does not
//! answer, the last answer is kept.

mod lookup;
mod refresh;

pub use lookup::{HickorySrv, NameServers, SrvAnswer, SrvResolve, SrvTarget};

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dtab::{Label, Path};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{NamerContext, kind_params};
use crate::serversets::prefix::{AddrSource, Trees};
use crate::{Addr, Live, LiveCache, Lookup, Namer, NamerCounter};
use refresh::{Refresh, Stats};

const KIND: &str = "io.l5d.dnssrv";

/// Linkerd's default refresh interval.
const DEFAULT_REFRESH: u64 = 5;

/// The `io.l5d.dnssrv` config block (its `kind`, `prefix` and
/// `experimental` are read by the namer registry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsSrvConfig {
    /// Seconds between lookups of a name (default 5).
    #[serde(default)]
    pub refresh_interval_seconds: Option<u64>,
    /// The DNS servers to ask, each `host` or `host:port` (port 53 by
    /// default); the system's resolver when absent.
    #[serde(default)]
    pub dns_hosts: Option<Vec<String>>,
}

impl DnsSrvConfig {
    /// The refresh interval, checked.
    pub fn refresh_interval(&self) -> Result<Duration, String> {
        match self.refresh_interval_seconds {
            None => Ok(Duration::from_secs(DEFAULT_REFRESH)),
            Some(0) => Err("refreshIntervalSeconds: must be at least 1".to_string()),
            Some(secs) => Ok(Duration::from_secs(secs)),
        }
    }

    /// The name servers: `dnsHosts` with their addresses (host names are
    /// looked up once, now, as Linkerd did), or the system's.
    pub fn name_servers(&self) -> Result<NameServers, String> {
        let Some(hosts) = &self.dns_hosts else {
            return Ok(NameServers::System);
        };
        if hosts.is_empty() {
            return Err(
                "dnsHosts: list at least one DNS server, or leave the key out to use the system's"
                    .to_string(),
            );
        }
        let mut servers = Vec::new();
        for (i, entry) in hosts.iter().enumerate() {
            servers.extend(name_server(entry).map_err(|why| format!("dnsHosts[{i}]: {why}"))?);
        }
        Ok(NameServers::These(servers))
    }

    /// Checks the config and builds the namer, serving paths below `prefix`.
    pub fn build(&self, prefix: Path) -> Result<Arc<DnsSrvNamer>, String> {
        let interval = self.refresh_interval()?;
        let resolver = HickorySrv::new(&self.name_servers()?)?;
        Ok(DnsSrvNamer::new(prefix, Arc::new(resolver), interval))
    }
}

/// The addresses of one `dnsHosts` entry: `host`, `host:port`, `ip`,
/// `ip:port` or `[ipv6]:port`.
fn name_server(entry: &str) -> Result<Vec<SocketAddr>, String> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 53)]);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{entry:?}: the port must be 1-65535"))?;
            (host, port)
        }
        None => (entry, 53),
    };
    if host.is_empty() || host.contains([':', '/', ' ', '[', ']']) {
        return Err(format!("{entry:?} is not a host or host:port"));
    }
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot find the address of {host}: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(found)
}

/// Builds the namer from its config keys (the namer registry's entry).
pub(crate) fn build(
    prefix: &Path,
    params: &Map<String, Value>,
    _: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: DnsSrvConfig = kind_params(params)?;
    Ok(config.build(prefix.clone())?)
}

/// The `io.l5d.dnssrv` namer.
pub struct DnsSrvNamer {
    inner: Arc<Inner>,
    trees: Trees,
}

struct Inner {
    refresh: Arc<Refresh>,
    addrs: LiveCache<String, Addr>,
}

impl DnsSrvNamer {
    /// A namer looking names up through `resolver` every `interval` (or
    /// sooner, as the records' TTL says), serving paths below `prefix`
    /// (usually `/#/io.l5d.dnssrv`).
    pub fn new(
        prefix: Path,
        resolver: Arc<dyn SrvResolve>,
        interval: Duration,
    ) -> Arc<DnsSrvNamer> {
        Arc::new(DnsSrvNamer {
            inner: Arc::new(Inner {
                refresh: Arc::new(Refresh {
                    resolver,
                    interval,
                    stats: Arc::default(),
                }),
                addrs: LiveCache::default(),
            }),
            trees: Trees::new(KIND, prefix),
        })
    }

    /// How many names are being looked up; zero once every lookup and
    /// address handle has been dropped.
    pub fn active_count(&self) -> usize {
        self.inner.addrs.len()
    }
}

impl Namer for DnsSrvNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        self.trees.lookup(self.inner.clone(), path)
    }

    fn counters(&self) -> Vec<NamerCounter> {
        let stats: &Stats = &self.inner.refresh.stats;
        let read = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let counter = |name, help, value| NamerCounter { name, help, value };
        vec![
            NamerCounter::state_changes(read(&stats.state_changes)),
            counter(
                "lookup_successes_total",
                "SRV lookups that found endpoints",
                read(&stats.successes),
            ),
            counter(
                "lookup_failures_total",
                "SRV lookups of names that do not exist or have no SRV records",
                read(&stats.failures),
            ),
            counter(
                "lookup_zero_results_total",
                "SRV lookups none of whose targets has an address",
                read(&stats.zero_results),
            ),
            counter(
                "unknown_srv_hosts_results_total",
                "SRV targets without an address",
                read(&stats.unknown_hosts),
            ),
            counter(
                "unexpected_code_total",
                "SRV lookups the DNS server did not answer",
                read(&stats.unexpected),
            ),
        ]
    }
}

impl AddrSource for Inner {
    fn addr_of(&self, elems: &[Label]) -> Option<Live<Addr>> {
        // Only the first label is the name; the rest is the residual.
        let [label] = elems else {
            return None;
        };
        let name = label.as_str()?.to_string();
        let run = {
            let (refresh, name) = (self.refresh.clone(), name.clone());
            move |publisher| refresh::keep_refreshing(refresh.clone(), name.clone(), publisher)
        };
        Some(self.addrs.subscribe(name, || Addr::Pending, run))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(json: &str) -> Result<DnsSrvConfig, String> {
        kind_params(
            serde_json::from_str::<Value>(json)
                .unwrap()
                .as_object()
                .unwrap(),
        )
    }

    #[test]
    fn reads_linkerds_keys() {
        let c = config(r#"{"refreshIntervalSeconds": 60, "dnsHosts": ["127.0.0.1:5353", "10.0.0.2", "[::1]:53", "localhost"]}"#).unwrap();
        assert_eq!(c.refresh_interval(), Ok(Duration::from_secs(60)));
        let NameServers::These(servers) = c.name_servers().unwrap() else {
            panic!("servers expected");
        };
        let shown: Vec<String> = servers.iter().map(ToString::to_string).collect();
        assert_eq!(&shown[..3], ["127.0.0.1:5353", "10.0.0.2:53", "[::1]:53"]);
        assert!(
            servers[3..]
                .iter()
                .all(|s| s.ip().is_loopback() && s.port() == 53)
        );
        let defaults = config("{}").unwrap();
        assert_eq!(defaults.refresh_interval(), Ok(Duration::from_secs(5)));
        assert_eq!(defaults.name_servers(), Ok(NameServers::System));
    }

    #[test]
    fn bad_keys_are_named() {
        let cases = [
            (
                r#"{"refreshIntervalSeconds": 0}"#,
                "refreshIntervalSeconds: must be at least 1",
            ),
            (
                r#"{"refreshIntervalSeconds": -1}"#,
                "refreshIntervalSeconds: invalid value",
            ),
            (r#"{"dnsHosts": []}"#, "dnsHosts: list at least one"),
            (
                r#"{"dnsHosts": ["127.0.0.1", "a:0"]}"#,
                "dnsHosts[1]: \"a:0\": the port",
            ),
            (r#"{"dnsHosts": ["a b"]}"#, "dnsHosts[0]:"),
            (r#"{"domain": "x"}"#, "unknown field `domain`"),
        ];
        for (json, want) in cases {
            let err = config(json)
                .and_then(|c| c.refresh_interval().and(c.name_servers()).map(|_| ()))
                .err()
                .unwrap_or_default();
            assert!(
                err.contains(want),
                "{json}: {err:?} should contain {want:?}"
            );
        }
    }
}
