//! One SRV lookup: the records of a name, and the addresses of their
//! targets, through hickory with no cache of its own (the namer decides
//! when to ask again).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name as DnsName, RData};

use crate::system::inet::fixed_host_ip;

/// How long one DNS query may wait for an answer before it is tried again.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// One usable SRV record: where its target is, and its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct SrvTarget {
    /// The target host name as the record gives it (without its final dot).
    pub host: String,
    /// The target's addresses.
    pub ips: Vec<IpAddr>,
    /// The record's port.
    pub port: u16,
    /// The record's weight.
    pub weight: u16,
    /// The record's priority (reported, not used for selection).
    pub priority: u16,
}

impl SrvTarget {
    /// The target's socket addresses.
    pub fn sockets(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.ips.iter().map(|ip| SocketAddr::new(*ip, self.port))
    }
}

/// What the DNS server said about a name.
#[derive(Clone, Debug, PartialEq)]
pub enum SrvAnswer {
    /// SRV records (`targets` may be empty when no target has an address;
    /// `unknown_targets` counts those).
    Records {
        /// The targets that have addresses.
        targets: Vec<SrvTarget>,
        /// Targets whose names do not exist or have no addresses.
        unknown_targets: usize,
        /// The records' TTL, the shortest of them.
        ttl: Duration,
    },
    /// The name exists but has no SRV record (or only the `.` target,
    /// which says the service is not offered there).
    NoRecords,
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
}

/// Looks SRV names up; pluggable so that tests can script the answers.
pub trait SrvResolve: Send + Sync + 'static {
    /// Looks `name` up. `Err` is a failure to get an answer (timeout,
    /// SERVFAIL, REFUSED, no reachable server), saying why.
    fn lookup(&self, name: &str) -> BoxFuture<'static, Result<SrvAnswer, String>>;
}

/// Where the resolver sends its queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameServers {
    /// The system's resolver configuration (`/etc/resolv.conf`).
    System,
    /// These servers, in order.
    These(Vec<SocketAddr>),
}

/// SRV lookups through hickory.
#[derive(Clone)]
pub struct HickorySrv {
    resolver: TokioResolver,
}

impl std::fmt::Debug for HickorySrv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickorySrv")
    }
}

impl HickorySrv {
    /// A resolver asking `servers`, caching nothing.
    pub fn new(servers: &NameServers) -> Result<HickorySrv, String> {
        let mut builder = match servers {
            NameServers::System => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot use the system DNS configuration: {e}"))?,
            NameServers::These(list) => {
                let mut config = ResolverConfig::default();
                for addr in list {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    config.name_servers.push(server);
                }
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            }
        };
        let options: &mut ResolverOpts = builder.options_mut();
        // Every refresh asks the server, as Linkerd's namer did.
        options.cache_size = 0;
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 2;
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(HickorySrv { resolver })
    }
}

impl SrvResolve for HickorySrv {
    fn lookup(&self, name: &str) -> BoxFuture<'static, Result<SrvAnswer, String>> {
        let resolver = self.resolver.clone();
        let name = name.to_owned();
        Box::pin(async move { lookup(&resolver, &name).await })
    }
}

async fn lookup(resolver: &TokioResolver, name: &str) -> Result<SrvAnswer, String> {
    let Ok(query) = DnsName::from_utf8(name) else {
        return Ok(SrvAnswer::NoSuchName);
    };
    let answer = match resolver.srv_lookup(query).await {
        Ok(answer) => answer,
        Err(e) => return no_records(&e).ok_or_else(|| format!("SRV lookup of {name}: {e}")),
    };
    // Targets' addresses that came with the answer.
    let mut known: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for record in answer.additionals() {
        let ip = match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        known.entry(host_of(&record.name)).or_default().push(ip);
    }
    let mut records = Vec::new();
    let mut ttl = u32::MAX;
    for record in answer.answers() {
        if let RData::SRV(srv) = &record.data {
            ttl = ttl.min(record.ttl);
            // `.` says the service is not offered (RFC 2782).
            if !srv.target.is_root() {
                records.push(srv.clone());
            }
        }
    }
    if records.is_empty() {
        return Ok(SrvAnswer::NoRecords);
    }
    let resolve = records.iter().map(|srv| {
        let host = host_of(&srv.target);
        let known = known.get(&host).cloned();
        async move {
            if let Some(ips) = known {
                return Ok((host, ips));
            }
            if let Some(ip) = fixed_host_ip(&host) {
                return Ok((host, vec![ip]));
            }
            match resolver.lookup_ip(srv.target.clone()).await {
                Ok(found) => Ok((host, found.iter().collect())),
                Err(e) if no_records(&e).is_some() => Ok((host, Vec::new())),
                Err(e) => Err(format!("address of {host} (target of {name}): {e}")),
            }
        }
    });
    let mut targets = Vec::new();
    let mut unknown_targets = 0;
    for (srv, found) in records.iter().zip(join_all(resolve).await) {
        let (host, ips) = found?;
        if ips.is_empty() {
            unknown_targets += 1;
            continue;
        }
        targets.push(SrvTarget {
            host,
            ips,
            port: srv.port,
            weight: srv.weight,
            priority: srv.priority,
        });
    }
    Ok(SrvAnswer::Records {
        targets,
        unknown_targets,
        ttl: Duration::from_secs(u64::from(ttl)),
    })
}

/// The answer an error stands for when it is the server saying the name
/// does not exist or has no such records.
fn no_records(error: &NetError) -> Option<SrvAnswer> {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(none)) => Some(match none.response_code {
            ResponseCode::NXDomain => SrvAnswer::NoSuchName,
            _ => SrvAnswer::NoRecords,
        }),
        _ => None,
    }
}

fn host_of(name: &DnsName) -> String {
    let text = name.to_utf8();
    text.strip_suffix('.').unwrap_or(&text).to_string()
}
