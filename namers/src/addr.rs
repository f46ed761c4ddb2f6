//! Addresses: the live set of endpoints behind a bound name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Free-form metadata that namers attach to endpoints and address sets
/// (`authority`, `nodeName`, `endpoint_addr_weight`, ...).
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// The metadata key Linkerd uses for an endpoint's weight.
pub const WEIGHT_KEY: &str = "endpoint_addr_weight";

/// One endpoint of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Relative share of traffic (1.0 unless the namer says otherwise).
    pub weight: f64,
    /// Anything else the namer knows about the endpoint.
    pub meta: Metadata,
}

impl Endpoint {
    /// An endpoint of weight 1 with no metadata.
    pub fn new(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            weight: 1.0,
            meta: Metadata::new(),
        }
    }

    /// The same endpoint with a weight (recorded in the metadata too, as
    /// Linkerd does).
    pub fn with_weight(mut self, weight: f64) -> Endpoint {
        self.weight = weight;
        self.meta.insert(WEIGHT_KEY.to_string(), weight.into());
        self
    }
}

/// A set of endpoints, sorted by address so equal sets compare equal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddrSet {
    endpoints: Arc<[Endpoint]>,
    /// Metadata of the set as a whole.
    pub meta: Metadata,
}

impl AddrSet {
    /// A set of `endpoints` (sorted; later duplicates of an address dropped).
    pub fn new(mut endpoints: Vec<Endpoint>) -> AddrSet {
        endpoints.sort_by_key(|e| e.addr);
        endpoints.dedup_by_key(|e| e.addr);
        AddrSet {
            endpoints: endpoints.into(),
            meta: Metadata::new(),
        }
    }

    /// The endpoints, sorted by address.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Whether there are no endpoints.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

/// The state of a bound name's address.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Addr {
    /// Not known yet.
    #[default]
    Pending,
    /// These endpoints (possibly none).
    Bound(AddrSet),
    /// The name does not exist.
    Neg,
    /// Could not be determined.
    Failed(Arc<str>),
}

impl Addr {
    /// A bound address of these endpoints.
    pub fn bound(endpoints: Vec<Endpoint>) -> Addr {
        Addr::Bound(AddrSet::new(endpoints))
    }
}
