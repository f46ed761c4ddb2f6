//! `io.l5d.localhost` and `io.l5d.specificHost`: keep only the endpoints on
//! one host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::Arc;

use dtab::Path;
use serde_json::{Map, Value};

use super::{SetPrefix, Transformer, bound_or_neg, derive_addr, percent, prefixed};
use crate::{Addr, Bound};

/// Keeps the endpoints whose IP address is one of a set.
pub struct HostTransformer {
    ips: Arc<[IpAddr]>,
    prefix: Path,
}

impl HostTransformer {
    /// Keeps the endpoints at one of `ips`; ids get `prefix` (below `/%`).
    pub fn new(ips: Vec<IpAddr>, prefix: &str) -> HostTransformer {
        HostTransformer {
            ips: ips.into(),
            prefix: Path::from_strs(["%", prefix]).unwrap_or_default(),
        }
    }
}

impl SetPrefix for HostTransformer {
    fn set_prefix(&mut self, prefix: &Path) {
        self.prefix = percent(prefix);
    }
}

impl Transformer for HostTransformer {
    fn transform(&self, bound: &Bound) -> Bound {
        let ips = self.ips.clone();
        let addr = derive_addr(bound.addr.clone(), move |addr| match addr {
            Addr::Bound(set) => {
                let kept = set
                    .endpoints()
                    .iter()
                    .filter(|e| ips.contains(&e.addr.ip()));
                bound_or_neg(kept.cloned().collect(), set)
            }
            other => other.clone(),
        });
        Bound {
            id: prefixed(&self.prefix, bound),
            residual: bound.residual.clone(),
            addr,
            weight: bound.weight,
        }
    }
}

/// The addresses `host` resolves to (an IP address is itself).
fn resolve(host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let addrs = (host, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
    let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
    ips.sort();
    ips.dedup();
    Ok(ips)
}

/// The `io.l5d.specificHost` config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecificHostConfig {
    host: String,
}

pub(super) fn build_specific_host(params: &Map<String, Value>) -> Result<HostTransformer, String> {
    let config: SpecificHostConfig = crate::config::kind_params(params)?;
    let ips = resolve(&config.host).map_err(|e| format!("host: {e}"))?;
    Ok(HostTransformer::new(ips, "io.l5d.specificHost"))
}

/// `io.l5d.localhost` has no keys of its own.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalhostConfig {}

pub(super) fn build_localhost(params: &Map<String, Value>) -> Result<HostTransformer, String> {
    let LocalhostConfig {} = crate::config::kind_params(params)?;
    // The loopback addresses and what this host's name resolves to, once.
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if let Ok(name) = hostname::get()
        && let Some(name) = name.to_str()
        && let Ok(found) = resolve(name)
    {
        ips.extend(found);
    }
    ips.sort();
    ips.dedup();
    Ok(HostTransformer::new(ips, "io.l5d.localhost"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn hosts_are_resolved_once_and_ip_literals_are_themselves() {
        assert_eq!(
            resolve("10.1.2.3").unwrap(),
            ["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert!(
            resolve("localhost")
                .unwrap()
                .iter()
                .all(|ip| ip.is_loopback())
        );
        let params = serde_json::json!({"host": "10.1.2.3"});
        let transformer = build_specific_host(params.as_object().unwrap()).unwrap();
        assert_eq!(transformer.prefix.show(), "/%/io.l5d.specificHost");
        let local = build_localhost(&Map::new()).unwrap();
        assert!(local.ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(build_localhost(serde_json::json!({"x": 1}).as_object().unwrap()).is_err());
    }
}
