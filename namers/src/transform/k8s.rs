//! The Kubernetes transformers, as in Linkerd:
//!
//! - `io.l5d.k8s.localnode` keeps only the endpoints on this router's node:
//!   with `hostNetwork: true`, those whose `nodeName` is `$NODE_NAME`;
//!   otherwise those in the same /24 as `$POD_IP` (each node has its own
//!   pod subnet in the usual network setups).
//! - `io.l5d.k8s.daemonset` replaces each endpoint with the pods of a
//!   daemonset's service on the same node (the router running there): by
//!   `nodeName` with `hostNetwork: true`, else by /24 subnet. The
//!   daemonset's service is followed like an `io.l5d.k8s` lookup of
//!   `/<namespace>/<port>/<service>`, through `k8sHost`/`k8sPort` (by
//!   default the in-cluster API server, else `localhost:8001`).
//!
//! A bound address left with no endpoint is [`Addr::Neg`]; other states
//! (pending, failed, `~`) pass through unchanged.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use dtab::Path;
use serde_json::{Map, Value};

use super::derive::{Gateways, derive_addr_with_gateways};
use super::{SetPrefix, Transformer, bound_or_neg, derive_addr, percent, prefixed};
use crate::k8s::{K8sConfig, NODE_NAME_KEY};
use crate::{Addr, Bound, Endpoint, Lookup, Namer};

/// How endpoints are judged to be on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeRule {
    /// Their `nodeName` metadata is this node's name.
    NodeName(String),
    /// Their address is in the same /24 as this one.
    Subnet(IpAddr),
}

impl NodeRule {
    fn label(&self) -> String {
        match self {
            NodeRule::NodeName(name) => name.clone(),
            NodeRule::Subnet(ip) => ip.to_string(),
        }
    }

    /// Whether `endpoint` is on the node this rule describes.
    fn holds(&self, endpoint: &Endpoint) -> bool {
        match self {
            NodeRule::NodeName(name) => node_name(endpoint) == Some(name.as_str()),
            NodeRule::Subnet(ip) => same_subnet(*ip, endpoint.addr.ip()),
        }
    }
}

fn node_name(endpoint: &Endpoint) -> Option<&str> {
    endpoint.meta.get(NODE_NAME_KEY).and_then(Value::as_str)
}

/// Whether two addresses share their first 24 bits (Linkerd's netmask
/// 255.255.255.0, applied to the address bytes).
fn same_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..3] == b.octets()[..3],
        _ => false,
    }
}

/// `io.l5d.k8s.localnode`.
pub struct LocalNodeTransformer {
    rule: NodeRule,
    prefix: Path,
}

impl LocalNodeTransformer {
    /// Keeps the endpoints on the node described by `rule`.
    pub fn new(rule: NodeRule) -> LocalNodeTransformer {
        let prefix =
            Path::from_strs(["%", "io.l5d.k8s.localnode", &rule.label()]).unwrap_or_default();
        LocalNodeTransformer { rule, prefix }
    }
}

impl SetPrefix for LocalNodeTransformer {
    fn set_prefix(&mut self, prefix: &Path) {
        self.prefix = percent(prefix);
    }
}

impl Transformer for LocalNodeTransformer {
    fn transform(&self, bound: &Bound) -> Bound {
        let rule = self.rule.clone();
        let addr = derive_addr(bound.addr.clone(), move |addr| match addr {
            Addr::Bound(set) => {
                let local = set.endpoints().iter().filter(|e| rule.holds(e));
                bound_or_neg(local.cloned().collect(), set)
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

/// How daemonset pods are matched with endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pairing {
    NodeName,
    Subnet,
}

impl Pairing {
    fn pairs(self, endpoint: &Endpoint, daemon: &Endpoint) -> bool {
        match self {
            // Both must name their node: two unknowns are not one node.
            Pairing::NodeName => node_name(endpoint).is_some_and(|n| node_name(daemon) == Some(n)),
            Pairing::Subnet => same_subnet(endpoint.addr.ip(), daemon.addr.ip()),
        }
    }
}

/// `io.l5d.k8s.daemonset`.
pub struct DaemonSetTransformer {
    namer: Arc<dyn Namer>,
    /// `/<namespace>/<port>/<service>` below the namer.
    path: Path,
    /// Looked up on first use (a lookup needs a runtime), then held.
    daemons: OnceLock<Lookup>,
    pairing: Pairing,
    prefix: Path,
}

impl DaemonSetTransformer {
    /// Sends each endpoint's traffic to the pods of `namer`'s `path`
    /// (`/<namespace>/<port>/<service>`) on its node, found by `nodeName`
    /// when `by_node_name`, else by /24 subnet.
    pub fn new(namer: Arc<dyn Namer>, path: Path, by_node_name: bool) -> DaemonSetTransformer {
        let prefix = Path::from_strs(["%", "io.l5d.k8s.daemonset"])
            .unwrap_or_default()
            .concat(&path);
        DaemonSetTransformer {
            namer,
            path,
            daemons: OnceLock::new(),
            pairing: if by_node_name {
                Pairing::NodeName
            } else {
                Pairing::Subnet
            },
            prefix,
        }
    }
}

impl SetPrefix for DaemonSetTransformer {
    fn set_prefix(&mut self, prefix: &Path) {
        self.prefix = percent(prefix);
    }
}

impl Transformer for DaemonSetTransformer {
    fn transform(&self, bound: &Bound) -> Bound {
        let daemons = self
            .daemons
            .get_or_init(|| self.namer.lookup(&self.path))
            .clone();
        let pairing = self.pairing;
        let addr = derive_addr_with_gateways(bound.addr.clone(), daemons, move |addr, daemons| {
            match (addr, daemons) {
                (Addr::Bound(set), Gateways::Known(daemons)) => {
                    let paired = set
                        .endpoints()
                        .iter()
                        .flat_map(|endpoint| daemons.iter().filter(|d| pairing.pairs(endpoint, d)));
                    bound_or_neg(paired.cloned().collect(), set)
                }
                (Addr::Bound(_), Gateways::Pending) => Addr::Pending,
                (Addr::Bound(_), Gateways::Failed(why)) => {
                    Addr::Failed(format!("io.l5d.k8s.daemonset: {why}").into())
                }
                (other, _) => other.clone(),
            }
        });
        Bound {
            id: prefixed(&self.prefix, bound),
            residual: bound.residual.clone(),
            addr,
            weight: bound.weight,
        }
    }
}

/// The `io.l5d.k8s.daemonset` config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DaemonSetConfig {
    k8s_host: Option<String>,
    k8s_port: Option<u16>,
    namespace: String,
    service: String,
    port: String,
    host_network: Option<bool>,
}

pub(super) fn build_daemonset(params: &Map<String, Value>) -> Result<DaemonSetTransformer, String> {
    let config: DaemonSetConfig = crate::config::kind_params(params)?;
    let path = Path::from_strs([&config.namespace, &config.port, &config.service])
        .ok_or("namespace, port and service must be path labels")?;
    let namer = K8sConfig {
        host: config.k8s_host,
        port: config.k8s_port,
        label_selector: None,
    }
    .build(Path::default())
    .map_err(|e| format!("k8s{}", capitalized(&e.to_string())))?;
    Ok(DaemonSetTransformer::new(
        namer,
        path,
        config.host_network.unwrap_or(false),
    ))
}

/// `host: ...` as `Host: ...`, to name the `k8sHost` key.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The `io.l5d.k8s.localnode` config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LocalNodeConfig {
    host_network: Option<bool>,
}

pub(super) fn build_localnode(params: &Map<String, Value>) -> Result<LocalNodeTransformer, String> {
    let config: LocalNodeConfig = crate::config::kind_params(params)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let rule = if config.host_network.unwrap_or(false) {
        let name = env("NODE_NAME").ok_or(
            "with hostNetwork, the NODE_NAME environment variable must hold the node's name",
        )?;
        NodeRule::NodeName(name)
    } else {
        let ip = env("POD_IP")
            .ok_or("the POD_IP environment variable must hold the pod's IP address (or set hostNetwork and NODE_NAME)")?;
        let ip = ip
            .parse()
            .map_err(|_| format!("POD_IP {ip:?} is not an IP address"))?;
        NodeRule::Subnet(ip)
    };
    Ok(LocalNodeTransformer::new(rule))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn endpoint(addr: &str, node: Option<&str>) -> Endpoint {
        let mut e = Endpoint::new(addr.parse().unwrap());
        if let Some(node) = node {
            e.meta.insert(NODE_NAME_KEY.into(), node.into());
        }
        e
    }

    #[test]
    fn nodes_are_told_by_name_or_by_subnet() {
        let by_name = NodeRule::NodeName("a".into());
        assert!(by_name.holds(&endpoint("10.0.0.1:80", Some("a"))));
        assert!(!by_name.holds(&endpoint("10.0.0.1:80", Some("b"))));
        assert!(!by_name.holds(&endpoint("10.0.0.1:80", None)));
        let by_subnet = NodeRule::Subnet("10.1.2.3".parse().unwrap());
        assert!(by_subnet.holds(&endpoint("10.1.2.200:80", None)));
        assert!(!by_subnet.holds(&endpoint("10.1.3.3:80", None)));
        assert!(!Pairing::NodeName.pairs(
            &endpoint("10.0.0.1:80", None),
            &endpoint("10.0.0.2:80", None)
        ));
    }
}
