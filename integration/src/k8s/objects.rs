//! Builders for the Kubernetes objects the fake serves: Services,
//! Endpoints and ConfigMaps, as the `v1` API shapes them.

use serde_json::{Value, json};

/// Where a Service port sends traffic in its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    /// A container port number.
    Number(u16),
    /// A container port name.
    Name(String),
}

/// A `v1` Service (only what a namer reads: labels and ports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    labels: Vec<(String, String)>,
    ports: Vec<Value>,
    /// `status.loadBalancer.ingress`; the Service is `type: LoadBalancer`
    /// when it has any.
    load_balancer: Vec<Value>,
}

impl Service {
    /// A Service with no port and no label.
    pub fn new(namespace: &str, name: &str) -> Service {
        Service {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: Vec::new(),
            ports: Vec::new(),
            load_balancer: Vec::new(),
        }
    }

    /// Adds an ingress point of the Service's external load balancer: an
    /// IP address, a host name, or both (`status.loadBalancer.ingress`).
    pub fn load_balancer(mut self, ip: Option<&str>, hostname: Option<&str>) -> Service {
        let mut entry = serde_json::Map::new();
        if let Some(ip) = ip {
            entry.insert("ip".into(), json!(ip));
        }
        if let Some(hostname) = hostname {
            entry.insert("hostname".into(), json!(hostname));
        }
        self.load_balancer.push(Value::Object(entry));
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Service {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a TCP port (`name` may be absent on a single-port Service).
    pub fn port(mut self, name: Option<&str>, port: u16, target: TargetPort) -> Service {
        let target = match target {
            TargetPort::Number(n) => json!(n),
            TargetPort::Name(n) => json!(n),
        };
        let mut entry = json!({"port": port, "protocol": "TCP", "targetPort": target});
        if let (Some(name), Some(map)) = (name, entry.as_object_mut()) {
            map.insert("name".into(), json!(name));
        }
        self.ports.push(entry);
        self
    }

    pub(super) fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    pub(super) fn to_json(&self) -> Value {
        let kind = if self.load_balancer.is_empty() {
            "ClusterIP"
        } else {
            "LoadBalancer"
        };
        json!({
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": metadata(&self.namespace, &self.name, &self.labels),
            "spec": {"ports": self.ports, "type": kind},
            "status": {"loadBalancer": {"ingress": self.load_balancer}},
        })
    }
}

/// One address of an Endpoints subset.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Address {
    ip: String,
    node: Option<String>,
}

/// One subset of an Endpoints object: addresses sharing a set of ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Subset {
    ready: Vec<Address>,
    not_ready: Vec<Address>,
    ports: Vec<Value>,
}

/// A `v1` Endpoints object, built subset by subset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Its namespace.
    pub namespace: String,
    /// Its name (the Service's).
    pub name: String,
    labels: Vec<(String, String)>,
    subsets: Vec<Subset>,
}

impl Endpoints {
    /// An Endpoints object with no subset (a Service with no pods).
    pub fn new(namespace: &str, name: &str) -> Endpoints {
        Endpoints {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: Vec::new(),
            subsets: Vec::new(),
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Endpoints {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts a new subset; the address and port calls that follow fill it.
    pub fn subset(mut self) -> Endpoints {
        self.subsets.push(Subset::default());
        self
    }

    fn current(&mut self) -> &mut Subset {
        if self.subsets.is_empty() {
            self.subsets.push(Subset::default());
        }
        let last = self.subsets.len() - 1;
        &mut self.subsets[last]
    }

    /// Adds a ready address on `node`.
    pub fn ready(mut self, ip: &str, node: Option<&str>) -> Endpoints {
        let address = Address {
            ip: ip.to_string(),
            node: node.map(str::to_string),
        };
        self.current().ready.push(address);
        self
    }

    /// Adds an address that is not ready.
    pub fn not_ready(mut self, ip: &str, node: Option<&str>) -> Endpoints {
        let address = Address {
            ip: ip.to_string(),
            node: node.map(str::to_string),
        };
        self.current().not_ready.push(address);
        self
    }

    /// Adds a port of `protocol` (`TCP`, `UDP`, ...).
    pub fn port_with(mut self, name: Option<&str>, port: u16, protocol: &str) -> Endpoints {
        let mut entry = json!({"port": port, "protocol": protocol});
        if let (Some(name), Some(map)) = (name, entry.as_object_mut()) {
            map.insert("name".into(), json!(name));
        }
        self.current().ports.push(entry);
        self
    }

    /// Adds a TCP port.
    pub fn port(self, name: Option<&str>, port: u16) -> Endpoints {
        self.port_with(name, port, "TCP")
    }

    pub(super) fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    pub(super) fn to_json(&self) -> Value {
        let address = |a: &Address| match &a.node {
            Some(node) => json!({"ip": a.ip, "nodeName": node}),
            None => json!({"ip": a.ip}),
        };
        let subsets: Vec<Value> = self
            .subsets
            .iter()
            .map(|s| {
                let mut subset = json!({"ports": s.ports});
                if let Some(map) = subset.as_object_mut() {
                    // The API server leaves out empty lists.
                    if !s.ready.is_empty() {
                        let ready: Vec<Value> = s.ready.iter().map(address).collect();
                        map.insert("addresses".into(), ready.into());
                    }
                    if !s.not_ready.is_empty() {
                        let not_ready: Vec<Value> = s.not_ready.iter().map(address).collect();
                        map.insert("notReadyAddresses".into(), not_ready.into());
                    }
                }
                subset
            })
            .collect();
        let mut object = json!({
            "kind": "Endpoints",
            "apiVersion": "v1",
            "metadata": metadata(&self.namespace, &self.name, &self.labels),
        });
        if let (false, Some(map)) = (subsets.is_empty(), object.as_object_mut()) {
            map.insert("subsets".into(), subsets.into());
        }
        object
    }
}

fn metadata(namespace: &str, name: &str, labels: &[(String, String)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({"namespace": namespace, "name": name, "labels": labels})
}

/// A `v1` ConfigMap whose `data` holds `data`.
pub fn config_map_object(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(key, value)| (key.to_string(), json!(value)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    })
}

/// A `networking.k8s.io/v1` Ingress, built rule by rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Ingress {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    annotations: serde_json::Map<String, Value>,
    class_name: Option<String>,
    default_backend: Option<Value>,
    /// `(host, paths)`, each path `{path, pathType, backend}`.
    rules: Vec<(Option<String>, Vec<Value>)>,
}

/// A backend's Service port: `{"name": ...}` or `{"number": ...}`.
fn backend(service: &str, port: &str) -> Value {
    let port = match port.parse::<u16>() {
        Ok(number) => json!({"number": number}),
        Err(_) => json!({"name": port}),
    };
    json!({"service": {"name": service, "port": port}})
}

impl Ingress {
    /// An Ingress with no rule, no class and no default backend.
    pub fn new(namespace: &str, name: &str) -> Ingress {
        Ingress {
            namespace: namespace.to_string(),
            name: name.to_string(),
            annotations: serde_json::Map::new(),
            class_name: None,
            default_backend: None,
            rules: Vec::new(),
        }
    }

    /// Sets the `kubernetes.io/ingress.class` annotation.
    pub fn class_annotation(mut self, class: &str) -> Ingress {
        self.annotations
            .insert("kubernetes.io/ingress.class".into(), json!(class));
        self
    }

    /// Sets `spec.ingressClassName`.
    pub fn class_name(mut self, class: &str) -> Ingress {
        self.class_name = Some(class.to_string());
        self
    }

    /// Sets `spec.defaultBackend` to a Service port (a name, or a number).
    pub fn default_backend(mut self, service: &str, port: &str) -> Ingress {
        self.default_backend = Some(backend(service, port));
        self
    }

    /// Starts a rule for `host` (any host for `None`).
    pub fn rule(mut self, host: Option<&str>) -> Ingress {
        self.rules.push((host.map(str::to_string), Vec::new()));
        self
    }

    /// Adds a path to the current rule (starting one for any host if there
    /// is none): `path_type` is `Prefix`, `Exact` or
    /// `ImplementationSpecific`; the port a name or a number.
    pub fn path(mut self, path: &str, path_type: &str, service: &str, port: &str) -> Ingress {
        if self.rules.is_empty() {
            self.rules.push((None, Vec::new()));
        }
        let entry = json!({"path": path, "pathType": path_type, "backend": backend(service, port)});
        if let Some((_, paths)) = self.rules.last_mut() {
            paths.push(entry);
        }
        self
    }

    pub(super) fn to_json(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|(host, paths)| {
                let mut rule = json!({"http": {"paths": paths}});
                if let (Some(host), Some(map)) = (host, rule.as_object_mut()) {
                    map.insert("host".into(), json!(host));
                }
                rule
            })
            .collect();
        let mut spec = json!({"rules": rules});
        if let Some(map) = spec.as_object_mut() {
            if let Some(class) = &self.class_name {
                map.insert("ingressClassName".into(), json!(class));
            }
            if let Some(backend) = &self.default_backend {
                map.insert("defaultBackend".into(), backend.clone());
            }
        }
        json!({
            "kind": "Ingress",
            "apiVersion": "networking.k8s.io/v1",
            "metadata": {
                "namespace": self.namespace,
                "name": self.name,
                "annotations": self.annotations,
            },
            "spec": spec,
        })
    }
}
