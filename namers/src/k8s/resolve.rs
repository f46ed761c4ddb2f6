//! What the namer keeps of Services and Endpoints, and how a port name or
//! number picks a service's endpoints. Pure: no I/O.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::Endpoint;

/// The metadata key of the node an endpoint runs on (Linkerd's).
pub const NODE_NAME_KEY: &str = "nodeName";

/// The port part of a path: a name or a number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum PortRef {
    /// A named port of the endpoints (the Service port's name).
    Name(String),
    /// A port of the Service, sent to the target port of its endpoints.
    Number(u16),
}

impl PortRef {
    pub(super) fn parse(label: &str) -> PortRef {
        match label.parse::<u16>() {
            Ok(n) if n > 0 => PortRef::Number(n),
            _ => PortRef::Name(label.to_string()),
        }
    }
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ServicePort {
    /// Empty when the port has no name (a single-port Service).
    name: String,
    port: u16,
    target: Option<u16>,
}

/// What the namer keeps of a Service: its TCP ports, and the hosts of its
/// external load balancer (`status.loadBalancer.ingress`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ServiceInfo {
    ports: Vec<ServicePort>,
    /// Each ingress point's host name, or its IP address when it has none
    /// (Linkerd's preference).
    load_balancer: Vec<String>,
}

/// One ready address of an Endpoints subset.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Address {
    ip: IpAddr,
    node: Option<Arc<str>>,
}

/// Addresses that share ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Subset {
    ready: Vec<Address>,
    /// TCP ports by name (empty for an unnamed port).
    ports: Vec<(String, u16)>,
}

/// What the namer keeps of an Endpoints object: the ready addresses and
/// their TCP ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct EndpointsInfo {
    subsets: Vec<Subset>,
}

fn is_tcp(protocol: Option<&String>) -> bool {
    protocol.is_none_or(|p| p.eq_ignore_ascii_case("TCP"))
}

fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|n| *n > 0)
}

impl From<&Service> for ServiceInfo {
    fn from(service: &Service) -> ServiceInfo {
        let ports = service
            .spec
            .iter()
            .flat_map(|spec| spec.ports.iter().flatten())
            .filter(|p| is_tcp(p.protocol.as_ref()))
            .filter_map(|p| {
                let port = port_number(p.port)?;
                let target = match &p.target_port {
                    None => Some(port),
                    Some(IntOrString::Int(n)) => port_number(*n),
                    Some(IntOrString::String(_)) => None,
                };
                Some(ServicePort {
                    name: p.name.clone().unwrap_or_default(),
                    port,
                    target,
                })
            })
            .collect();
        let load_balancer = service
            .status
            .iter()
            .filter_map(|status| status.load_balancer.as_ref())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .filter_map(|ingress| {
                let host = ingress.hostname.as_deref().filter(|h| !h.is_empty());
                host.or(ingress.ip.as_deref().filter(|ip| !ip.is_empty()))
                    .map(str::to_string)
            })
            .collect();
        ServiceInfo {
            ports,
            load_balancer,
        }
    }
}

impl From<&Endpoints> for EndpointsInfo {
    fn from(endpoints: &Endpoints) -> EndpointsInfo {
        let subsets = endpoints
            .subsets
            .iter()
            .flatten()
            .map(|subset| Subset {
                ready: subset
                    .addresses
                    .iter()
                    .flatten()
                    .filter_map(|a| {
                        Some(Address {
                            ip: a.ip.parse().ok()?,
                            node: a.node_name.as_deref().map(Arc::from),
                        })
                    })
                    .collect(),
                ports: subset
                    .ports
                    .iter()
                    .flatten()
                    .filter(|p| is_tcp(p.protocol.as_ref()))
                    .filter_map(|p| {
                        Some((p.name.clone().unwrap_or_default(), port_number(p.port)?))
                    })
                    .collect(),
            })
            .collect();
        EndpointsInfo { subsets }
    }
}

/// What a (service, port) stands for.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Resolution {
    /// No such service or port.
    Neg,
    /// These endpoints (none when no pod is ready).
    Bound(Vec<Endpoint>),
}

/// Resolves a port of a service, given what is known of its Service and
/// Endpoints objects.
///
/// A port name is matched against the endpoints' port names, which are the
/// Service's port names; a name the Service has but no endpoint carries
/// yet (no pod) is an empty set. A number is a port of the Service: its
/// endpoints are those of the Service port's name, at the port number they
/// carry, which is how a named `targetPort` resolves differently per pod;
/// with no endpoint carrying it yet, the set is empty.
pub(super) fn resolve(
    service: Option<&ServiceInfo>,
    endpoints: Option<&EndpointsInfo>,
    port: &PortRef,
) -> Resolution {
    if service.is_none() && endpoints.is_none() {
        return Resolution::Neg;
    }
    let subsets = endpoints.map(|e| e.subsets.as_slice()).unwrap_or_default();
    let (name, fallback) = match port {
        PortRef::Name(name) => {
            let named = |p: &ServicePort| &p.name == name;
            let in_endpoints = subsets
                .iter()
                .any(|s| s.ports.iter().any(|(n, _)| n == name));
            let in_service = service.is_some_and(|s| s.ports.iter().any(named));
            if !in_endpoints && !in_service {
                return Resolution::Neg;
            }
            (name.as_str(), None)
        }
        PortRef::Number(number) => {
            let Some(mapped) = service.and_then(|s| s.ports.iter().find(|p| p.port == *number))
            else {
                return Resolution::Neg;
            };
            (mapped.name.as_str(), mapped.target)
        }
    };
    let mut found = Vec::new();
    for subset in subsets {
        let port = subset
            .ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .or(fallback.filter(|_| subset.ports.is_empty()));
        let Some(port) = port else { continue };
        for address in &subset.ready {
            let mut endpoint = Endpoint::new(SocketAddr::new(address.ip, port));
            if let Some(node) = &address.node {
                endpoint
                    .meta
                    .insert(NODE_NAME_KEY.to_string(), node.to_string().into());
            }
            found.push(endpoint);
        }
    }
    Resolution::Bound(found)
}

/// The load balancer hosts of a Service port, each with the Service port's
/// number (`port`, not `nodePort`: the load balancer listens on the Service
/// port). A port name is a Service port's name; a number is a Service port's
/// number. `None` when the Service, the port or the load balancer is missing.
pub(super) fn resolve_external(
    service: Option<&ServiceInfo>,
    port: &PortRef,
) -> Option<Vec<(String, u16)>> {
    let service = service?;
    let found = service.ports.iter().find(|p| match port {
        PortRef::Name(name) => &p.name == name,
        PortRef::Number(number) => p.port == *number,
    })?;
    if service.load_balancer.is_empty() {
        return None;
    }
    let hosts = service.load_balancer.iter();
    Some(hosts.map(|host| (host.clone(), found.port)).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn service(value: serde_json::Value) -> ServiceInfo {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"}, "spec": {"ports": value}
        }))
        .unwrap();
        ServiceInfo::from(&service)
    }

    fn endpoints(value: serde_json::Value) -> EndpointsInfo {
        let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"}, "subsets": value
        }))
        .unwrap();
        EndpointsInfo::from(&endpoints)
    }

    fn addrs(resolution: Resolution) -> Vec<String> {
        match resolution {
            Resolution::Neg => vec!["neg".into()],
            Resolution::Bound(eps) => eps.iter().map(|e| e.addr.to_string()).collect(),
        }
    }

    #[test]
    fn names_pick_endpoint_ports_and_numbers_go_through_the_service() {
        let svc = service(serde_json::json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "admin", "port": 9990, "targetPort": 9990},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]));
        let eps = endpoints(serde_json::json!([
            {"addresses": [{"ip": "10.0.0.1", "nodeName": "a"}],
             "notReadyAddresses": [{"ip": "10.0.0.9"}],
             "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9990}]},
            {"addresses": [{"ip": "10.0.0.2"}],
             "ports": [{"name": "http", "port": 8081}]},
        ]));
        let resolve = |port: &str| addrs(resolve(Some(&svc), Some(&eps), &PortRef::parse(port)));
        assert_eq!(resolve("http"), ["10.0.0.1:8080", "10.0.0.2:8081"]);
        assert_eq!(resolve("80"), ["10.0.0.1:8080", "10.0.0.2:8081"]);
        assert_eq!(resolve("admin"), ["10.0.0.1:9990"]);
        assert_eq!(resolve("9990"), ["10.0.0.1:9990"]);
        assert_eq!(
            resolve("8080"),
            ["neg"],
            "a target port is not a service port"
        );
        assert_eq!(resolve("dns"), ["neg"], "UDP ports are left out");
        assert_eq!(resolve("nope"), ["neg"]);

        let Resolution::Bound(found) = resolve_named(&svc, &eps) else {
            panic!()
        };
        assert_eq!(found[0].meta[NODE_NAME_KEY], "a");
        assert!(!found[1].meta.contains_key(NODE_NAME_KEY));
    }

    fn resolve_named(svc: &ServiceInfo, eps: &EndpointsInfo) -> Resolution {
        resolve(Some(svc), Some(eps), &PortRef::Name("http".into()))
    }

    #[test]
    fn a_service_without_ready_pods_is_an_empty_set_and_a_missing_one_neg() {
        let svc = service(serde_json::json!([{"name": "http", "port": 80}]));
        let none = EndpointsInfo::default();
        let only_unready = endpoints(serde_json::json!([
            {"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"name": "http", "port": 80}]}
        ]));
        for eps in [&none, &only_unready] {
            assert_eq!(
                addrs(resolve(Some(&svc), Some(eps), &PortRef::parse("http"))).len(),
                0
            );
            assert_eq!(
                addrs(resolve(Some(&svc), Some(eps), &PortRef::parse("80"))).len(),
                0
            );
        }
        assert_eq!(addrs(resolve(None, None, &PortRef::parse("http"))), ["neg"]);
        // Without its Service, a number cannot be mapped.
        assert_eq!(
            addrs(resolve(None, Some(&none), &PortRef::parse("80"))),
            ["neg"]
        );
    }

    #[test]
    fn an_unnamed_port_of_a_single_port_service_is_reached_by_number() {
        let svc = service(serde_json::json!([{"port": 80, "targetPort": 8080}]));
        let eps = endpoints(serde_json::json!([
            {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 8080}]}
        ]));
        assert_eq!(
            addrs(resolve(Some(&svc), Some(&eps), &PortRef::parse("80"))),
            ["10.0.0.1:8080"]
        );
    }

    #[test]
    fn external_addresses_are_the_load_balancers_at_the_service_port() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "admin", "port": 9990},
            ]},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "203.0.113.7"},
                {"hostname": "lb.example.com", "ip": "203.0.113.8"},
            ]}},
        }))
        .unwrap();
        let svc = ServiceInfo::from(&service);
        let external = |port: &str| resolve_external(Some(&svc), &PortRef::parse(port));
        let expected = vec![
            ("203.0.113.7".to_string(), 80),
            ("lb.example.com".to_string(), 80),
        ];
        assert_eq!(external("http"), Some(expected.clone()));
        assert_eq!(external("80"), Some(expected));
        assert_eq!(external("admin").unwrap()[0].1, 9990);
        assert_eq!(
            external("8080"),
            None,
            "a target port is not a service port"
        );
        assert_eq!(external("nope"), None);
        assert_eq!(resolve_external(None, &PortRef::parse("http")), None);
        // No load balancer (yet): nothing to bind.
        let pending = service_json_without_status();
        assert_eq!(
            resolve_external(Some(&pending), &PortRef::parse("http")),
            None
        );
    }

    fn service_json_without_status() -> ServiceInfo {
        service(serde_json::json!([{"name": "http", "port": 80}]))
    }
}
