//! The client stage: per bound id, the balancer over the live endpoint set
//! and what is sent to every endpoint of that id (`l5d-dst-*`). Failure
//! accrual, requeues and `requestAttemptTimeoutMs` belong here.

pub mod accrual;
pub mod balance;
pub mod config;
pub(crate) mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::Path;
use http::header::{self, HeaderName, HeaderValue};
use namers::Bound;

use crate::bind::cache::{Cache, Entry};
use crate::config::RouterSpec;
use crate::errors::RouterError;
use crate::http2::{Added, Adding};
use crate::policy::budget::RetryBudget;
use crate::service::DstTarget;
use crate::service::deadline::{Deadline, L5D_CTX_DEADLINE};
use balance::{Balancer, Picked};
use config::{ClientPolicies, ClientPolicy};

const L5D_DST_SERVICE: HeaderName = HeaderName::from_static("l5d-dst-service");
const L5D_DST_CLIENT: HeaderName = HeaderName::from_static("l5d-dst-client");
const L5D_DST_RESIDUAL: HeaderName = HeaderName::from_static("l5d-dst-residual");
const L5D_REQID: HeaderName = HeaderName::from_static("l5d-reqid");
const VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 switchboard");

/// The clients of one router, one per bound id.
pub(crate) struct ClientStage {
    /// The router's label, for the log.
    router: Arc<str>,
    clients: Cache<Path, Client>,
    policies: ClientPolicies,
    /// How long a pending address may keep a request waiting.
    timeout: Duration,
}

impl ClientStage {
    pub(crate) fn new(spec: &RouterSpec) -> ClientStage {
        ClientStage {
            router: spec.label.as_str().into(),
            clients: Cache::new(spec.clients_capacity, spec.idle_ttl),
            policies: spec.clients.clone(),
            timeout: spec.binding_timeout,
        }
    }

    /// Drops clients unused for the idle TTL.
    pub(crate) fn expire_idle(&self) {
        self.clients.expire_idle();
    }

    /// Lists every client's figures under `rt/<router>/client`: its
    /// requests, its balancer's endpoints and its failure accrual.
    pub(crate) fn list_clients(&self, clients: &mut namers::telemetry::Scope<'_>) {
        let now = tokio::time::Instant::now();
        for (id, entry) in self.clients.values() {
            let client = &entry.value;
            let mut scope = clients.scope(&namers::telemetry::segment_of(&id));
            client.stats.list(&mut scope);
            if scope.is_rolling() {
                continue;
            }
            let health = client.health(now);
            #[allow(clippy::cast_precision_loss)]
            {
                let size = (health.live + health.dead + health.probing) as f64;
                scope.gauge("loadbalancer/size", size);
                scope.gauge("loadbalancer/available", health.live as f64);
                scope.gauge("available", health.live as f64);
            }
            scope.counter("failure_accrual/removals", health.removals);
            scope.counter("failure_accrual/revivals", health.revivals);
            scope.counter("failure_accrual/probes", health.probes);
        }
    }

    /// Every client's failure-accrual figures, for the metrics.
    pub(crate) fn health(&self) -> Vec<(Path, ClientHealth)> {
        let now = tokio::time::Instant::now();
        self.clients
            .values()
            .into_iter()
            .map(|(id, entry)| (id, entry.value.health(now)))
            .collect()
    }

    /// Every client's state, for `/client_state.json`.
    pub(crate) fn states(&self) -> Vec<(Path, serde_json::Value)> {
        self.clients
            .values()
            .into_iter()
            .map(|(id, entry)| (id, entry.value.state()))
            .collect()
    }

    /// The client of `bound`'s id, made on first use.
    pub(crate) fn client(&self, bound: &Bound, started: Instant) -> Arc<Entry<Client>> {
        self.clients.get_or_insert_at(&bound.id, started, || {
            Client::new(bound, self.policies.for_id(&bound.id), &self.router)
        })
    }

    /// An endpoint of `bound`, waiting (until the binding deadline) for an
    /// address that is still pending; and the time the pick read from the
    /// clock, if it did ([`Balancer::pick_reading`]).
    pub(crate) async fn pick(
        &self,
        client: &Client,
        target: &DstTarget,
        bound: &Bound,
        deadline: tokio::time::Instant,
    ) -> Result<(Picked, Option<tokio::time::Instant>), RouterError> {
        let balancer = &client.balancer;
        let mut addr = balancer.live_addr();
        loop {
            if let Some(picked) = balancer.pick_reading() {
                return Ok(picked);
            }
            let current = addr.load();
            if !matches!(*current, namers::Addr::Pending) {
                return Err(RouterError::NoEndpoints(format!(
                    "no endpoints for {} (bound to {}: {})",
                    target.name.show(),
                    bound.id.show(),
                    describe_addr(&current)
                )));
            }
            if tokio::time::timeout_at(deadline, addr.changed())
                .await
                .is_err()
            {
                return Err(RouterError::BindingTimeout(format!(
                    "the address of {} ({}) was still pending after {:?}",
                    target.name.show(),
                    bound.id.show(),
                    self.timeout
                )));
            }
        }
    }
}

/// One client's failure accrual, as the metrics show it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientHealth {
    /// Endpoints taken out, ever.
    pub removals: u64,
    /// Endpoints brought back by a probe, ever.
    pub revivals: u64,
    /// Probes let through, ever.
    pub probes: u64,
    /// Endpoints live now.
    pub live: u64,
    /// Endpoints out now.
    pub dead: u64,
    /// Endpoints whose backoff has passed, waiting for or making a probe.
    pub probing: u64,
}

/// A bound name's balancer and what the request path needs of its id.
pub(crate) struct Client {
    balancer: Balancer,
    /// What this client does (`client:` for its id).
    pub(crate) policy: Arc<ClientPolicy>,
    /// Connection failures may be sent again within this budget.
    pub(crate) requeues: RetryBudget,
    /// The id as `l5d-dst-client` carries it, printed once.
    client_header: Option<HeaderValue>,
    /// `rt/<router>/client/<id>`.
    pub(crate) stats: Arc<crate::client::stats::ClientStats>,
    /// The last residual path sent as `l5d-dst-residual`, and its value:
    /// requests for one client usually share their residual.
    last_residual: arc_swap::ArcSwapOption<(Path, HeaderValue)>,
}

impl Client {
    fn new(bound: &Bound, policy: Arc<ClientPolicy>, router: &Arc<str>) -> Client {
        let owner = Arc::new(balance::Owner {
            router: router.clone(),
            id: bound.id.show().into(),
        });
        Client {
            balancer: Balancer::owned(bound.addr.clone(), policy.balance.clone(), owner),
            requeues: RetryBudget::new(&policy.requeue_budget),
            policy,
            client_header: HeaderValue::try_from(bound.id.show()).ok(),
            stats: Arc::default(),
            last_residual: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Its endpoints by failure-accrual state, and what accrual has done.
    fn health(&self, now: tokio::time::Instant) -> ClientHealth {
        let balancer = &self.balancer;
        let mut health = ClientHealth {
            removals: balancer.removals(),
            revivals: balancer.revivals(),
            probes: balancer.probes(),
            ..ClientHealth::default()
        };
        for endpoint in balancer.endpoints() {
            *match endpoint.state {
                balance::HealthState::Live => &mut health.live,
                balance::HealthState::Dead { until } if until > now => &mut health.dead,
                _ => &mut health.probing,
            } += 1;
        }
        health
    }

    /// Linkerd's `/client_state.json` entry (`state`, `addresses`), and
    /// what this router adds: each endpoint's failure-accrual state and
    /// load, and the balancer's totals.
    fn state(&self) -> serde_json::Value {
        let addr = self.balancer.addr();
        let state = match &*addr {
            namers::Addr::Bound(_) => "bound".to_string(),
            namers::Addr::Pending => "Pending".to_string(),
            namers::Addr::Neg => "Neg".to_string(),
            namers::Addr::Failed(why) => format!("Failed: {why}"),
        };
        let now = tokio::time::Instant::now();
        let endpoints: Vec<serde_json::Value> = self
            .balancer
            .endpoints()
            .into_iter()
            .map(|e| {
                let (health, dead_ms) = match e.state {
                    balance::HealthState::Live => ("live", None),
                    balance::HealthState::Probing => ("probing", None),
                    balance::HealthState::Dead { until } => (
                        "dead",
                        Some(until.saturating_duration_since(now).as_millis()),
                    ),
                };
                serde_json::json!({
                    "address": e.addr.to_string(),
                    "weight": e.weight,
                    "inFlight": e.in_flight,
                    "state": health,
                    "deadForMs": dead_ms,
                    "load": e.load,
                })
            })
            .collect();
        let addresses: Vec<&serde_json::Value> = endpoints.iter().map(|e| &e["address"]).collect();
        serde_json::json!({
            "state": state,
            "addresses": addresses,
            "endpoints": endpoints,
            "available": self.balancer.available(),
            "removals": self.balancer.removals(),
            "revivals": self.balancer.revivals(),
            "probes": self.balancer.probes(),
            "requeueBudget": self.requeues.balance(),
        })
    }

    /// `residual` as an `l5d-dst-residual` value, printed only when it
    /// differs from the last one.
    fn residual_header(&self, residual: &Path) -> Option<HeaderValue> {
        if let Some(last) = &*self.last_residual.load()
            && last.0 == *residual
        {
            return Some(last.1.clone());
        }
        let value = HeaderValue::try_from(residual.show()).ok()?;
        self.last_residual
            .store(Some(Arc::new((residual.clone(), value.clone()))));
        Some(value)
    }
}

/// `Via` and the `l5d-dst-*`, `l5d-reqid` and `l5d-ctx-deadline` headers
/// Linkerd sends downstream. `l5d-dst-*` replace the client's; a client's
/// `l5d-reqid` is kept.
pub(crate) struct DstHeaders {
    service: Option<HeaderValue>,
    client: Option<HeaderValue>,
    residual: Option<HeaderValue>,
    /// The request's deadline (`deadline::apply` took the client's out of
    /// its header map).
    deadline: Option<Deadline>,
}

impl DstHeaders {
    pub(crate) fn new(
        service: Option<HeaderValue>,
        client: &Client,
        bound: &Bound,
        deadline: Option<Deadline>,
    ) -> DstHeaders {
        DstHeaders {
            service,
            client: client.client_header.clone(),
            residual: if bound.residual.is_empty() {
                None
            } else {
                client.residual_header(&bound.residual)
            },
            deadline,
        }
    }

    /// Sets the headers in a request's header map.
    pub(crate) fn set(&self, headers: &mut http::HeaderMap) {
        headers.reserve(5);
        headers.append(header::VIA, VIA_VALUE);
        let replaced = [
            (L5D_DST_SERVICE, &self.service),
            (L5D_DST_CLIENT, &self.client),
            (L5D_DST_RESIDUAL, &self.residual),
        ];
        for (name, value) in replaced {
            if let Some(value) = value {
                headers.insert(name, value.clone());
            }
        }
        if !headers.contains_key(L5D_REQID) {
            headers.insert(L5D_REQID, request_id());
        }
        if let Some(deadline) = self.deadline {
            headers.insert(L5D_CTX_DEADLINE, deadline.header_value());
        }
    }

    /// The same headers as fields the HTTP/2 client adds as it encodes a
    /// request's head (`headers`), rather than in its header map.
    pub(crate) fn added(&self, headers: &http::HeaderMap) -> Added {
        let mut added = Added::with_capacity(6);
        added.push(header::VIA, VIA_VALUE, Adding::Appending);
        let replaced = [
            (L5D_DST_SERVICE, &self.service),
            (L5D_DST_CLIENT, &self.client),
            (L5D_DST_RESIDUAL, &self.residual),
        ];
        for (name, value) in replaced {
            if let Some(value) = value {
                added.push(name, value.clone(), Adding::Replacing);
            }
        }
        if !headers.contains_key(L5D_REQID) {
            added.push(L5D_REQID, request_id(), Adding::Replacing);
        }
        if let Some(deadline) = self.deadline {
            added.push(L5D_CTX_DEADLINE, deadline.header_value(), Adding::Replacing);
        }
        added
    }

    /// Writes the head of `parts` with these headers to `out`, without
    /// putting them in its header map first; a request without `Host`
    /// gets `endpoint`'s address.
    pub(crate) fn encode_head(
        &self,
        parts: &http::request::Parts,
        endpoint: std::net::SocketAddr,
        out: &mut Vec<u8>,
    ) {
        let mut has_reqid = false;
        let mut has_host = false;
        crate::endpoint::h1_direct::encode_head(parts, out, |name| {
            // Only `l5d-*` names need a closer look.
            if !name.as_str().starts_with("l5d-") {
                has_host |= name == header::HOST;
                return true;
            }
            if name == L5D_REQID {
                has_reqid = true;
                return true;
            }
            !((name == L5D_DST_SERVICE && self.service.is_some())
                || (name == L5D_DST_CLIENT && self.client.is_some())
                || (name == L5D_DST_RESIDUAL && self.residual.is_some())
                || (name == L5D_CTX_DEADLINE && self.deadline.is_some()))
        });
        let push = crate::endpoint::h1_direct::push_field;
        if !has_host {
            push(out, b"host", endpoint.to_string().as_bytes());
        }
        push(out, b"via", VIA_VALUE.as_bytes());
        let replaced = [
            (&L5D_DST_SERVICE, &self.service),
            (&L5D_DST_CLIENT, &self.client),
            (&L5D_DST_RESIDUAL, &self.residual),
        ];
        for (name, value) in replaced {
            if let Some(value) = value {
                push(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        if !has_reqid {
            push(out, b"l5d-reqid", &request_id_text());
        }
        if let Some(deadline) = self.deadline {
            let (text, len) = deadline.text();
            push(out, L5D_CTX_DEADLINE.as_str().as_bytes(), &text[..len]);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// A random request id: 16 lowercase hex digits. Marked sensitive, which
/// only HTTP/2 reads: HPACK then sends it as a literal never indexed. A
/// value seen once would otherwise be added to the connection's header
/// table, pushing out values worth keeping, and every later id would be
/// compared against each id still there (an h2 request spent more on this
/// than on routing).
fn request_id() -> HeaderValue {
    // Hex digits are always a valid header value.
    let mut id = HeaderValue::from_bytes(&request_id_text())
        .unwrap_or_else(|_| HeaderValue::from_static("0"));
    id.set_sensitive(true);
    id
}

fn request_id_text() -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = rand::random::<u64>();
    let mut text = [0u8; 16];
    for digit in text.iter_mut().rev() {
        *digit = HEX[(id & 0xf) as usize];
        id >>= 4;
    }
    text
}

fn describe_addr(addr: &namers::Addr) -> String {
    match addr {
        namers::Addr::Pending => "address pending".to_string(),
        namers::Addr::Neg => "the name does not exist".to_string(),
        namers::Addr::Failed(why) => format!("address lookup failed: {why}"),
        namers::Addr::Bound(set) if set.is_empty() => "no endpoints listed".to_string(),
        namers::Addr::Bound(_) => "every endpoint has weight 0".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_hex_fresh_and_kept_out_of_header_tables() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 16);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
            assert!(id.is_sensitive());
        }
    }
}
