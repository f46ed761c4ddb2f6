//! The bind stage: a destination's live bound tree, from the binding cache
//! (one binding per destination, shared by its requests, bounded work),
//! and the union branch and alternative a request goes to.

pub mod cache;
pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, NameTree};
use http::HeaderValue;
use namers::resolve::{Resolved, choose, pick_by_weight};
use namers::{Activity, Binding, Bound, NamingError};

use crate::config::RouterSpec;
use crate::config::ServicePolicies;
use crate::errors::RouterError;
use crate::interpreter::RouterNaming;
use crate::service::stats::ServiceStats;
use crate::service::{DstTarget, Service};
use crate::stats::Registry;
use cache::Cache;

/// A destination's bound tree, as the binding last published it.
pub(crate) type BoundTree = Arc<Activity<NameTree<Bound>>>;

/// Binds destinations: the router's base dtab, its interpreter and the
/// binding cache.
pub(crate) struct BindStage {
    /// Names bound through the router's dtab alone.
    bindings: Cache<DstTarget, NameBinding>,
    /// Names bound with a request's own `l5d-dtab` / `l5d-ctx-dtab`: kept
    /// apart, so that clients sending many different dtabs (or dtabs that
    /// fail to bind) push out only each other, never the router's names.
    overrides: Cache<DstTarget, NameBinding>,
    services: ServicePolicies,
    /// The services' figures, by path: shared by the bindings of one path
    /// with different local dtabs, and gone with the last of them.
    service_stats: Registry<ServiceStats>,
    naming: Arc<dyn RouterNaming>,
    base: Dtab,
    timeout: Duration,
    /// For the delegator link in a "no route" error.
    label: String,
    admin: SocketAddr,
}

/// A cached binding and what the request path needs of its name.
struct NameBinding {
    binding: Binding,
    /// The name as `l5d-dst-service` carries it, printed once.
    service_header: Option<HeaderValue>,
    /// The destination's service policy and retry budget.
    service: Arc<Service>,
}

/// What the bind stage gives a request: its bound tree, its
/// `l5d-dst-service` value and its service.
pub(crate) struct BoundDst {
    pub(crate) tree: BoundTree,
    pub(crate) service_header: Option<HeaderValue>,
    pub(crate) service: Arc<Service>,
}

impl BindStage {
    pub(crate) fn new(
        spec: &RouterSpec,
        naming: Arc<dyn RouterNaming>,
        admin: SocketAddr,
    ) -> BindStage {
        BindStage {
            bindings: Cache::new(spec.paths_capacity, spec.idle_ttl),
            overrides: Cache::new(spec.paths_capacity, spec.idle_ttl),
            services: spec.services.clone(),
            service_stats: Registry::default(),
            naming,
            base: spec.dtab.clone(),
            timeout: spec.binding_timeout,
            label: spec.label.clone(),
            admin,
        }
    }

    /// The interpreter.
    pub(crate) fn naming(&self) -> &Arc<dyn RouterNaming> {
        &self.naming
    }

    /// Lists every service's figures under `rt/<router>/service`.
    pub(crate) fn list_services(&self, services: &mut namers::telemetry::Scope<'_>) {
        for (_, stats) in self.service_stats.live() {
            stats.list(services);
        }
    }

    /// Drops bindings unused for the idle TTL.
    pub(crate) fn expire_idle(&self) {
        self.bindings.expire_idle();
        self.overrides.expire_idle();
    }

    /// Waits for the binding of `target` to leave the pending state; also
    /// gives the name's `l5d-dst-service` value.
    ///
    /// A new name is bound here, on the request's task, but outside the
    /// binding cache's lock: other names never wait for it, and the
    /// interpreter's `bindingLimits` bound the work.
    pub(crate) async fn bound_tree(
        &self,
        target: &DstTarget,
        local: &Dtab,
        started: Instant,
        deadline: tokio::time::Instant,
    ) -> Result<BoundDst, RouterError> {
        let name = &target.name;
        let cache = if local.is_empty() {
            &self.bindings
        } else {
            &self.overrides
        };
        let entry = cache.get_or_make_at(target, started, || {
            let dtab = self.base.concat(local);
            NameBinding {
                binding: self.naming.bind(&dtab, name),
                service_header: HeaderValue::try_from(name.show()).ok(),
                service: Arc::new(Service::new(
                    self.services.for_path(name),
                    self.service_stats
                        .get_or_make(&namers::telemetry::segment_of(name), ServiceStats::new),
                )),
            }
        });
        let mut binding = entry.value.binding.clone();
        let outcome = loop {
            let state = binding.load();
            match &*state {
                Activity::Ok(_) => {
                    break Ok(BoundDst {
                        tree: state,
                        service_header: entry.value.service_header.clone(),
                        service: entry.value.service.clone(),
                    });
                }
                // The client's own dtab asks for too much: its fault, and
                // it would fail again.
                Activity::Failed(e @ NamingError::OverBudget { .. }) if !local.is_empty() => {
                    break Err(RouterError::BindingLimit(format!(
                        "{e}, with the request's l5d-dtab / l5d-ctx-dtab"
                    )));
                }
                // namerd's own words already say why.
                Activity::Failed(NamingError::Refused(why)) if !local.is_empty() => {
                    break Err(RouterError::BindingLimit(format!(
                        "namerd refused the request's l5d-dtab / l5d-ctx-dtab: {why}"
                    )));
                }
                Activity::Failed(e) => {
                    break Err(RouterError::BindingFailed(format!(
                        "binding {} failed: {e}",
                        name.show()
                    )));
                }
                Activity::Pending => {}
            }
            if tokio::time::timeout_at(deadline, binding.changed())
                .await
                .is_err()
            {
                break Err(RouterError::BindingTimeout(format!(
                    "binding {} timed out after {:?}",
                    name.show(),
                    self.timeout
                )));
            }
        };
        // A name that does not bind is still a request of its service.
        if let Err(error) = &outcome {
            let figures = &entry.value.service.stats.requests;
            figures.request();
            figures.failure(error.failure_kind());
            figures.latency(started.elapsed());
        }
        outcome
    }

    /// The bound name this request goes to: a union branch picked by
    /// weight, the first alternative that is not negative.
    pub(crate) fn leaf<'t>(
        &self,
        state: &'t Activity<NameTree<Bound>>,
        target: &DstTarget,
        local: &Dtab,
    ) -> Result<&'t Bound, RouterError> {
        let name = &target.name;
        let Activity::Ok(tree) = state else {
            return Err(RouterError::BindingFailed(format!(
                "binding {} is not ready",
                name.show()
            )));
        };
        match choose(tree, &mut pick_by_weight) {
            Resolved::Leaf(bound) => Ok(bound),
            Resolved::Empty => Err(RouterError::NoEndpoints(format!(
                "{} has no endpoints (it resolved to $)",
                name.show()
            ))),
            Resolved::Neg => Err(self.no_route(target, local, tree)),
        }
    }

    /// The "no route" error: which name, which dentries matched its first
    /// step, and where to get the full explanation.
    fn no_route(&self, target: &DstTarget, local: &Dtab, tree: &NameTree<Bound>) -> RouterError {
        let name = &target.name;
        let dtab = self.base.concat(local);
        let tried: Vec<String> = dtab
            .iter()
            .filter(|d| d.prefix.matches(name))
            .map(|d| d.show())
            .collect();
        let tried = if tried.is_empty() {
            "no dentry matched it".to_string()
        } else {
            format!("dentries tried: {}", tried.join("; "))
        };
        let mut explain = format!(
            "http://{}/delegator?namespace={}&path={}",
            self.admin,
            crate::errors::url_encode(&self.label),
            crate::errors::url_encode(&name.show())
        );
        if !local.is_empty() {
            explain.push_str(&format!(
                "&dtab={}",
                crate::errors::url_encode(&target.local_dtab)
            ));
        }
        RouterError::NoEndpoints(format!(
            "no endpoints for {}: it resolved to {} ({tried}); explanation: {explain}",
            name.show(),
            tree.show()
        ))
    }
}
