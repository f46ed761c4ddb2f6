//! The service endpoints of the fake: `/v1/catalog/service/<service>`,
//! `/v1/health/service/<service>` and `/v1/agent/self`, and the test
//! controls that register, deregister and change the health of service
//! instances.
//!
//! Indexes follow Consul's state store: every write takes the next Raft
//! index; a service's index is that of the last write that touched one of
//! its instances or their checks (a node's check touches every service on
//! the node); a service with no instance left answers with the index of the
//! catalog as a whole, which every registration and deregistration bumps,
//! so the index a watcher sees never goes backwards when a service goes
//! away. An unknown service is an empty list (`[]`, status 200) with an
//! index, as in Consul: the catalog cannot tell a service that never existed
//! from one whose last instance left.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::{FakeConsul, Params, Read, Shared, State, blocking_read_with, text};

/// The health of a service instance, as its checks report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Health {
    /// Every check passes.
    #[default]
    Passing,
    /// A check warns.
    Warning,
    /// A check fails.
    Critical,
    /// The instance (or its node) is in maintenance mode, which Consul
    /// shows as an extra critical check (`_service_maintenance:<id>` or
    /// `_node_maintenance`).
    Maintenance,
}

impl Health {
    /// The status of the instance's (or node's) own check.
    fn check_status(self) -> &'static str {
        match self {
            Health::Passing | Health::Maintenance => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }
}

/// One registered service instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The datacenter; `None` is the agent's own.
    pub datacenter: Option<String>,
    /// The node the instance runs on.
    pub node: String,
    /// The node's address (`Address`).
    pub node_address: String,
    /// The instance's id, unique on its node (`ServiceID`).
    pub id: String,
    /// The service's name (`ServiceName`).
    pub service: String,
    /// The instance's own address (`ServiceAddress`); empty means "the
    /// node's address", as in Consul.
    pub address: String,
    /// The instance's port (`ServicePort`).
    pub port: u16,
    /// The instance's tags (`ServiceTags`).
    pub tags: Vec<String>,
    /// What its health check reports.
    pub health: Health,
}

impl Instance {
    /// An instance of `service` on a node of its own at `node_address`,
    /// listening on `port`, passing its check, with no tags and no service
    /// address, in the agent's datacenter.
    pub fn new(service: &str, node_address: &str, port: u16) -> Instance {
        Instance {
            datacenter: None,
            node: format!("node-{node_address}"),
            node_address: node_address.to_string(),
            id: format!("{service}-{port}"),
            service: service.to_string(),
            address: String::new(),
            port,
            tags: Vec::new(),
            health: Health::Passing,
        }
    }

    /// The same instance on the named node.
    pub fn on_node(mut self, node: &str) -> Instance {
        self.node = node.to_string();
        self
    }

    /// The same instance with another id.
    pub fn with_id(mut self, id: &str) -> Instance {
        self.id = id.to_string();
        self
    }

    /// The same instance with its own address (`ServiceAddress`).
    pub fn with_address(mut self, address: &str) -> Instance {
        self.address = address.to_string();
        self
    }

    /// The same instance with these tags.
    pub fn with_tags(mut self, tags: &[&str]) -> Instance {
        self.tags = tags.iter().map(|t| t.to_string()).collect();
        self
    }

    /// The same instance in another datacenter.
    pub fn in_datacenter(mut self, datacenter: &str) -> Instance {
        self.datacenter = Some(datacenter.to_string());
        self
    }

    /// The same instance with this health.
    pub fn with_health(mut self, health: Health) -> Instance {
        self.health = health;
        self
    }
}

/// The catalogs of every datacenter.
#[derive(Default)]
pub(super) struct Catalog {
    dcs: BTreeMap<String, Datacenter>,
}

#[derive(Default)]
struct Datacenter {
    nodes: BTreeMap<String, Node>,
    /// By (node, service id), which is Consul's order of answers.
    instances: BTreeMap<(String, String), Stored>,
    /// By lower-cased service name (Consul matches names without case).
    services: HashMap<String, Service>,
    /// The index of the last registration or deregistration.
    table_index: u64,
}

struct Node {
    address: String,
    health: Health,
    create_index: u64,
    modify_index: u64,
}

struct Stored {
    instance: Instance,
    create_index: u64,
    modify_index: u64,
}

/// A service with at least one instance.
struct Service {
    index: u64,
    members: BTreeSet<(String, String)>,
}

/// Which endpoint a service query came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `/v1/catalog/service/<service>`: the raw entries.
    Catalog,
    /// `/v1/health/service/<service>`: entries with their checks.
    Health,
}

impl Datacenter {
    /// Records that a write at `index` touched `service` (lower-cased).
    fn touch(&mut self, service: &str, index: u64) {
        if let Some(service) = self.services.get_mut(service) {
            service.index = index;
        }
    }

    fn remove_member(&mut self, service: &str, key: &(String, String)) {
        if let Some(entry) = self.services.get_mut(service) {
            entry.members.remove(key);
            if entry.members.is_empty() {
                self.services.remove(service);
            }
        }
    }

    fn services_on_node(&self, node: &str) -> BTreeSet<String> {
        self.instances
            .range((node.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == node)
            .map(|(_, s)| s.instance.service.to_lowercase())
            .collect()
    }

    fn service_index(&self, service: &str) -> u64 {
        self.services
            .get(&service.to_lowercase())
            .map_or(self.table_index, |s| s.index)
    }
}

impl State {
    fn datacenter_name(&self, instance: &Instance, agent_dc: &str) -> String {
        instance
            .datacenter
            .clone()
            .unwrap_or_else(|| agent_dc.to_string())
    }

    fn catalog_register(&mut self, agent_dc: &str, instance: &Instance) -> u64 {
        let index = self.next_index();
        let dc_name = self.datacenter_name(instance, agent_dc);
        let dc = self.catalog.dcs.entry(dc_name).or_default();
        match dc.nodes.get_mut(&instance.node) {
            Some(node) if node.address == instance.node_address => {}
            Some(node) => {
                node.address = instance.node_address.clone();
                node.modify_index = index;
                for service in dc.services_on_node(&instance.node) {
                    dc.touch(&service, index);
                }
            }
            None => {
                dc.nodes.insert(
                    instance.node.clone(),
                    Node {
                        address: instance.node_address.clone(),
                        health: Health::Passing,
                        create_index: index,
                        modify_index: index,
                    },
                );
            }
        }
        let key = (instance.node.clone(), instance.id.clone());
        let name = instance.service.to_lowercase();
        let mut create_index = index;
        if let Some(old) = dc.instances.get(&key) {
            create_index = old.create_index;
            let old_name = old.instance.service.to_lowercase();
            if old_name != name {
                dc.remove_member(&old_name, &key);
                dc.touch(&old_name, index);
            }
        }
        let mut stored = instance.clone();
        stored.datacenter = None;
        dc.instances.insert(
            key.clone(),
            Stored {
                instance: stored,
                create_index,
                modify_index: index,
            },
        );
        let service = dc.services.entry(name).or_insert_with(|| Service {
            index,
            members: BTreeSet::new(),
        });
        service.members.insert(key);
        service.index = index;
        dc.table_index = index;
        index
    }

    fn catalog_deregister(&mut self, agent_dc: &str, instance: &Instance) -> bool {
        let dc_name = self.datacenter_name(instance, agent_dc);
        let key = (instance.node.clone(), instance.id.clone());
        let exists = self
            .catalog
            .dcs
            .get(&dc_name)
            .is_some_and(|dc| dc.instances.contains_key(&key));
        if !exists {
            return false;
        }
        let index = self.next_index();
        let Some(dc) = self.catalog.dcs.get_mut(&dc_name) else {
            return false;
        };
        if let Some(old) = dc.instances.remove(&key) {
            let name = old.instance.service.to_lowercase();
            dc.remove_member(&name, &key);
            dc.touch(&name, index);
        }
        dc.table_index = index;
        true
    }

    fn catalog_set_health(&mut self, agent_dc: &str, instance: &Instance, health: Health) -> bool {
        let dc_name = self.datacenter_name(instance, agent_dc);
        let key = (instance.node.clone(), instance.id.clone());
        let current = self
            .catalog
            .dcs
            .get(&dc_name)
            .and_then(|dc| dc.instances.get(&key))
            .map(|s| s.instance.health);
        match current {
            None => return false,
            Some(h) if h == health => return true,
            Some(_) => {}
        }
        let index = self.next_index();
        let Some(dc) = self.catalog.dcs.get_mut(&dc_name) else {
            return false;
        };
        let Some(stored) = dc.instances.get_mut(&key) else {
            return false;
        };
        stored.instance.health = health;
        let name = stored.instance.service.to_lowercase();
        dc.touch(&name, index);
        true
    }

    fn catalog_set_node_health(&mut self, dc_name: &str, node: &str, health: Health) -> bool {
        let current = self
            .catalog
            .dcs
            .get(dc_name)
            .and_then(|dc| dc.nodes.get(node))
            .map(|n| n.health);
        match current {
            None => return false,
            Some(h) if h == health => return true,
            Some(_) => {}
        }
        let index = self.next_index();
        let Some(dc) = self.catalog.dcs.get_mut(dc_name) else {
            return false;
        };
        if let Some(n) = dc.nodes.get_mut(node) {
            n.health = health;
        }
        for service in dc.services_on_node(node) {
            dc.touch(&service, index);
        }
        true
    }

    /// Renumbers the catalog as a restore from an older snapshot would:
    /// everything in it gets the index after `index`, which is returned
    /// (or `index` itself when the catalog is empty).
    pub(super) fn catalog_renumber(&mut self, index: u64) -> u64 {
        if self.catalog.dcs.is_empty() {
            return index;
        }
        let restored = index + 1;
        for dc in self.catalog.dcs.values_mut() {
            for node in dc.nodes.values_mut() {
                node.create_index = restored;
                node.modify_index = restored;
            }
            for stored in dc.instances.values_mut() {
                stored.create_index = restored;
                stored.modify_index = restored;
            }
            for service in dc.services.values_mut() {
                service.index = restored;
            }
            dc.table_index = restored;
        }
        restored
    }

    /// Whether any instance was ever registered in `dc`.
    pub(super) fn has_datacenter(&self, dc: &str) -> bool {
        self.catalog.dcs.contains_key(dc)
    }
}

/// A stable, made-up node id (Consul's are UUIDs).
fn node_id(dc: &str, node: &str) -> String {
    let mut hasher = DefaultHasher::new();
    (dc, node).hash(&mut hasher);
    let h = hasher.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

/// The checks of an instance, node checks first, as Consul lists them.
fn checks_json(dc_name: &str, node: &Node, stored: &Stored, node_name: &str) -> Vec<Value> {
    let instance = &stored.instance;
    let check = |id: String, name: &str, status: &str, service: bool| {
        json!({
            "Node": node_name,
            "CheckID": id,
            "Name": name,
            "Status": status,
            "Notes": "",
            "Output": "",
            "ServiceID": if service { instance.id.as_str() } else { "" },
            "ServiceName": if service { instance.service.as_str() } else { "" },
            "ServiceTags": if service { instance.tags.clone() } else { Vec::new() },
            "Type": if service { "ttl" } else { "" },
            "Namespace": "default",
            "Datacenter": dc_name,
            "CreateIndex": stored.create_index,
            "ModifyIndex": stored.modify_index,
        })
    };
    let mut checks = vec![check(
        "serfHealth".to_string(),
        "Serf Health Status",
        node.health.check_status(),
        false,
    )];
    if node.health == Health::Maintenance {
        checks.push(check(
            "_node_maintenance".to_string(),
            "Node Maintenance Mode",
            "critical",
            false,
        ));
    }
    checks.push(check(
        format!("service:{}", instance.id),
        &format!("Service '{}' check", instance.service),
        instance.health.check_status(),
        true,
    ));
    if instance.health == Health::Maintenance {
        checks.push(check(
            format!("_service_maintenance:{}", instance.id),
            "Service Maintenance Mode",
            "critical",
            true,
        ));
    }
    checks
}

fn tagged_addresses(address: &str) -> Value {
    json!({"lan": address, "wan": address})
}

/// One entry of `/v1/catalog/service/<service>`.
fn catalog_json(dc_name: &str, node_name: &str, node: &Node, stored: &Stored) -> Value {
    let i = &stored.instance;
    json!({
        "ID": node_id(dc_name, node_name),
        "Node": node_name,
        "Address": node.address,
        "Datacenter": dc_name,
        "TaggedAddresses": tagged_addresses(&node.address),
        "NodeMeta": {"consul-network-segment": ""},
        "ServiceKind": "",
        "ServiceID": i.id,
        "ServiceName": i.service,
        "ServiceTags": i.tags,
        "ServiceAddress": i.address,
        "ServiceWeights": {"Passing": 1, "Warning": 1},
        "ServiceMeta": {},
        "ServicePort": i.port,
        "ServiceEnableTagOverride": false,
        "ServiceProxy": {"MeshGateway": {}, "Expose": {}},
        "ServiceConnect": {},
        "Namespace": "default",
        "CreateIndex": stored.create_index,
        "ModifyIndex": stored.modify_index,
    })
}

/// One entry of `/v1/health/service/<service>`.
fn health_json(dc_name: &str, node_name: &str, node: &Node, stored: &Stored) -> Value {
    let i = &stored.instance;
    json!({
        "Node": {
            "ID": node_id(dc_name, node_name),
            "Node": node_name,
            "Address": node.address,
            "Datacenter": dc_name,
            "TaggedAddresses": tagged_addresses(&node.address),
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": node.create_index,
            "ModifyIndex": node.modify_index,
        },
        "Service": {
            "ID": i.id,
            "Service": i.service,
            "Tags": i.tags,
            "Address": i.address,
            "Meta": {},
            "Port": i.port,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": false,
            "Proxy": {"MeshGateway": {}, "Expose": {}},
            "Connect": {},
            "Namespace": "default",
            "CreateIndex": stored.create_index,
            "ModifyIndex": stored.modify_index,
        },
        "Checks": checks_json(dc_name, node, stored, node_name),
    })
}

/// The entries of a service query, in Consul's order.
fn service_entries(
    state: &State,
    dc_name: &str,
    service: &str,
    tag: Option<&str>,
    endpoint: Endpoint,
    passing_only: bool,
) -> Vec<Value> {
    let Some(dc) = state.catalog.dcs.get(dc_name) else {
        return Vec::new();
    };
    let Some(members) = dc.services.get(&service.to_lowercase()) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for key in &members.members {
        let (Some(stored), Some(node)) = (dc.instances.get(key), dc.nodes.get(&key.0)) else {
            continue;
        };
        let instance = &stored.instance;
        // Consul compares tags without regard to case.
        if let Some(tag) = tag
            && !instance.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
        {
            continue;
        }
        match endpoint {
            Endpoint::Catalog => entries.push(catalog_json(dc_name, &key.0, node, stored)),
            Endpoint::Health => {
                let passing = node.health == Health::Passing && instance.health == Health::Passing;
                if passing_only && !passing {
                    continue;
                }
                entries.push(health_json(dc_name, &key.0, node, stored));
            }
        }
    }
    entries
}

/// Serves `GET /v1/catalog/service/<service>` and
/// `GET /v1/health/service/<service>`. With `filtered`, the caller has no
/// token on an agent that requires one: Consul then answers as for the
/// anonymous token, with every entry filtered out by the ACLs.
pub(super) async fn service(
    shared: &Shared,
    params: &Params,
    dc_name: &str,
    service: &str,
    endpoint: Endpoint,
    filtered: bool,
) -> Response<Full<Bytes>> {
    if service.is_empty() {
        return text(StatusCode::BAD_REQUEST, "Missing service name");
    }
    let tag = params.get("tag").filter(|t| !t.is_empty());
    let passing_only = endpoint == Endpoint::Health && params.has("passing");
    let read = blocking_read_with(
        shared,
        params,
        |state| {
            state
                .catalog
                .dcs
                .get(dc_name)
                .map_or(1, |dc| dc.service_index(service))
        },
        |state| {
            if filtered {
                Vec::new()
            } else {
                service_entries(state, dc_name, service, tag, endpoint, passing_only)
            }
        },
    )
    .await;
    match read {
        Read::Down => text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader"),
        Read::BadWait => text(StatusCode::BAD_REQUEST, "Invalid wait time or index"),
        Read::Answer(index, entries) => {
            let mut response = super::json(StatusCode::OK, &Value::Array(entries), Some(index));
            if filtered {
                response.headers_mut().insert(
                    "X-Consul-Results-Filtered-By-ACLs",
                    HeaderValue::from_static("true"),
                );
            }
            response
        }
    }
}

/// Serves `GET /v1/agent/self`: the agent's configuration, of which
/// clients mostly read `Config.Datacenter` and the DNS domain.
pub(super) fn agent_self(shared: &Shared) -> Response<Full<Bytes>> {
    let config = &shared.config;
    let dc = &config.datacenter;
    let body = json!({
        "Config": {
            "Datacenter": dc,
            "PrimaryDatacenter": dc,
            "NodeName": "fake-consul",
            "NodeID": node_id(dc, "fake-consul"),
            "Revision": "fake",
            "Server": true,
            "Version": "1.15.0",
        },
        "DebugConfig": {
            "Datacenter": dc,
            "DNSDomain": format!("{}.", config.domain.trim_matches('.')),
            "NodeName": "fake-consul",
        },
        "Coord": null,
        "Member": {
            "Name": "fake-consul",
            "Addr": "127.0.0.1",
            "Port": 8301,
            "Tags": {"dc": dc, "role": "consul"},
            "Status": 1,
        },
        "Meta": {"consul-network-segment": ""},
    });
    super::json(StatusCode::OK, &body, None)
}

impl FakeConsul {
    /// Registers (or replaces) a service instance directly, as an agent's
    /// anti-entropy sync would; returns the index of the write. Wakes
    /// blocking queries.
    pub fn register(&self, instance: &Instance) -> u64 {
        let index = self
            .shared
            .lock()
            .catalog_register(&self.shared.config.datacenter, instance);
        self.shared.wake_all();
        index
    }

    /// Deregisters the instance with `instance`'s datacenter, node and id;
    /// says whether it was registered.
    pub fn deregister(&self, instance: &Instance) -> bool {
        let done = self
            .shared
            .lock()
            .catalog_deregister(&self.shared.config.datacenter, instance);
        self.shared.wake_all();
        done
    }

    /// Sets what the health check of the instance with `instance`'s
    /// datacenter, node and id reports; says whether it is registered.
    pub fn set_health(&self, instance: &Instance, health: Health) -> bool {
        let done =
            self.shared
                .lock()
                .catalog_set_health(&self.shared.config.datacenter, instance, health);
        self.shared.wake_all();
        done
    }

    /// Sets what a node's own check (`serfHealth`) reports, which counts
    /// for every instance on the node; `datacenter` `None` is the agent's.
    /// Says whether the node is known.
    pub fn set_node_health(&self, datacenter: Option<&str>, node: &str, health: Health) -> bool {
        let dc = datacenter.unwrap_or(&self.shared.config.datacenter);
        let done = self.shared.lock().catalog_set_node_health(dc, node, health);
        self.shared.wake_all();
        done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use http::Method;

    use super::super::tests::call;
    use super::super::{FakeConsul, FakeConsulConfig};
    use super::*;

    fn parse(body: &str) -> Vec<Value> {
        serde_json::from_str::<Vec<Value>>(body).unwrap()
    }

    #[tokio::test]
    async fn catalog_and_health_answer_as_consul_does() {
        let fake = FakeConsul::start().await.unwrap();
        let url = |rest: &str| format!("{}/v1/{rest}", fake.url());

        let (status, index, body) = call(Method::GET, &url("catalog/service/web"), "").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
        assert!(index.unwrap() >= 1, "an unknown service still has an index");

        let a = Instance::new("web", "10.0.0.1", 8080).with_tags(&["v1", "Primary"]);
        let b = Instance::new("web", "10.0.0.2", 8080).with_address("192.168.0.2");
        let registered = fake.register(&a);
        let last = fake.register(&b);
        fake.register(&Instance::new("db", "10.0.0.3", 5432));

        let (_, index, body) = call(Method::GET, &url("catalog/service/web"), "").await;
        assert_eq!(index, Some(last), "the index of the service, not of db");
        let entries = parse(&body);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["Address"], "10.0.0.1");
        assert_eq!(entries[0]["ServiceAddress"], "");
        assert_eq!(entries[0]["ServicePort"], 8080);
        assert_eq!(entries[0]["CreateIndex"], registered);
        assert_eq!(entries[1]["ServiceAddress"], "192.168.0.2");

        let (_, _, body) = call(Method::GET, &url("catalog/service/WEB?tag=primary"), "").await;
        let entries = parse(&body);
        assert_eq!(entries.len(), 1, "names and tags match without case");
        assert_eq!(entries[0]["ServiceTags"], json!(["v1", "Primary"]));

        fake.set_health(&b, Health::Critical);
        let (_, _, body) = call(Method::GET, &url("health/service/web"), "").await;
        let entries = parse(&body);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["Service"]["Address"], "192.168.0.2");
        assert_eq!(entries[1]["Node"]["Address"], "10.0.0.2");
        assert_eq!(entries[1]["Checks"][0]["CheckID"], "serfHealth");
        assert_eq!(entries[1]["Checks"][1]["Status"], "critical");
        let (_, _, body) = call(Method::GET, &url("health/service/web?passing"), "").await;
        assert_eq!(parse(&body).len(), 1);
        fake.set_health(&b, Health::Maintenance);
        let (_, _, body) = call(Method::GET, &url("health/service/web"), "").await;
        assert_eq!(
            parse(&body)[1]["Checks"][2]["CheckID"],
            "_service_maintenance:web-8080"
        );
        fake.set_node_health(None, &a.node, Health::Warning);
        let (_, _, body) = call(Method::GET, &url("health/service/web?passing"), "").await;
        assert_eq!(parse(&body).len(), 0, "a warning node fails ?passing");

        let before = fake.index();
        assert!(fake.deregister(&a));
        assert!(fake.deregister(&b));
        assert!(!fake.deregister(&b));
        let (_, index, body) = call(Method::GET, &url("catalog/service/web"), "").await;
        assert_eq!(body, "[]");
        assert!(index.unwrap() > before, "the index never goes backwards");
    }

    #[tokio::test]
    async fn service_queries_block_until_their_service_changes() {
        let fake = FakeConsul::start().await.unwrap();
        let index = fake.register(&Instance::new("web", "10.0.0.1", 80));
        let url = format!(
            "{}/v1/health/service/web?index={index}&wait=10s",
            fake.url()
        );
        let waiting = tokio::spawn(async move { call(Method::GET, &url, "").await });
        for _ in 0..500 {
            if fake.blocking_queries_in_flight() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fake.blocking_queries_in_flight(), 1);
        fake.register(&Instance::new("db", "10.0.0.2", 5432));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "another service woke the query");
        let next = fake.register(&Instance::new("web", "10.0.0.3", 80));
        let (status, got, body) = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("the change did not end the blocking query")
            .unwrap();
        assert_eq!((status, got), (StatusCode::OK, Some(next)));
        assert_eq!(parse(&body).len(), 2);
        assert_eq!(fake.blocking_queries_in_flight(), 0);

        let before = fake.index();
        fake.reset_index();
        let url = format!("{}/v1/catalog/service/web", fake.url());
        let (_, after, _) = call(Method::GET, &url, "").await;
        assert!(after.unwrap() < before, "a restore makes indexes go back");
    }

    #[tokio::test]
    async fn datacenters_tokens_and_the_agent() {
        let fake = FakeConsul::start_with(FakeConsulConfig {
            datacenter: "east".to_string(),
            token: Some("t".to_string()),
            domain: "example.".to_string(),
            ..FakeConsulConfig::default()
        })
        .await
        .unwrap();
        fake.register(&Instance::new("web", "10.0.0.1", 80));
        fake.register(&Instance::new("web", "10.1.0.1", 80).in_datacenter("west"));
        let url = |rest: &str| format!("{}/v1/{rest}", fake.url());

        let (_, _, body) = call(Method::GET, &url("catalog/service/web?token=t"), "").await;
        assert_eq!(parse(&body)[0]["Datacenter"], "east");
        let (_, _, body) = call(Method::GET, &url("catalog/service/web?token=t&dc=west"), "").await;
        assert_eq!(parse(&body)[0]["Address"], "10.1.0.1");
        let (status, _, body) = call(
            Method::GET,
            &url("catalog/service/web?token=t&dc=north"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, "No path to datacenter");

        // No token: the anonymous token sees nothing.
        let (status, index, body) = call(Method::GET, &url("health/service/web"), "").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
        assert!(index.is_some());
        let (status, _, _) = call(Method::GET, &url("catalog/service/web?token=x"), "").await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (status, index, body) = call(Method::GET, &url("agent/self?token=t"), "").await;
        assert_eq!((status, index), (StatusCode::OK, None));
        let agent: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(agent["Config"]["Datacenter"], "east");
        assert_eq!(agent["DebugConfig"]["DNSDomain"], "example.");
        assert_eq!(
            call(Method::GET, &url("agent/self"), "").await.0,
            StatusCode::FORBIDDEN
        );

        fake.set_down(true);
        let (status, _, _) = call(Method::GET, &url("catalog/service/web?token=t"), "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
