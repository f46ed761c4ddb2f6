//! The service stage: what a request is for, per destination path. It
//! reads the request's own dtab (`l5d-ctx-dtab`, `l5d-dtab`, bounded) and
//! names the destination, [`DstTarget`], that binding, clients and metrics
//! are keyed by. Per-service policy (`totalTimeoutMs`, retries, response
//! classifiers) belongs here.

pub mod config;
pub mod deadline;
pub mod dtab_headers;
pub(crate) mod replay;
pub(crate) mod stats;

use std::sync::Arc;

use dtab::{Dtab, Path};

use crate::errors::RouterError;
use crate::policy::budget::RetryBudget;
use config::ServicePolicy;

/// One destination's policy and its retry budget, shared by its requests.
pub(crate) struct Service {
    /// `service:` for this destination.
    pub(crate) policy: Arc<ServicePolicy>,
    /// What retries may still be made.
    pub(crate) retries: RetryBudget,
    /// `rt/<router>/service/<path>`.
    pub(crate) stats: Arc<crate::service::stats::ServiceStats>,
    /// The figures of the client this service's requests went to last, for
    /// it: a binding's requests nearly always go to one client, and this
    /// spares them the client's lookup.
    last_client: arc_swap::ArcSwapOption<LastClient>,
}

struct LastClient {
    /// Held weakly, so the address stays unique while it is compared.
    client: std::sync::Weak<crate::client::stats::ClientStats>,
    stats: Arc<crate::stats::RequestStats>,
}

impl Service {
    pub(crate) fn new(
        policy: Arc<ServicePolicy>,
        stats: Arc<crate::service::stats::ServiceStats>,
    ) -> Service {
        Service {
            retries: RetryBudget::new(&policy.budget),
            policy,
            stats,
            last_client: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// `rt/<router>/client/<id>/service/<path>`: `client`'s figures for
    /// this service.
    pub(crate) fn client_stats(
        &self,
        client: &Arc<crate::client::stats::ClientStats>,
    ) -> Arc<crate::stats::RequestStats> {
        if let Some(last) = &*self.last_client.load()
            && std::ptr::eq(last.client.as_ptr(), Arc::as_ptr(client))
        {
            return last.stats.clone();
        }
        let stats = client.for_service(&self.stats);
        self.last_client.store(Some(Arc::new(LastClient {
            client: Arc::downgrade(client),
            stats: stats.clone(),
        })));
        stats
    }
}

/// A request's destination: the name its identifier gave and the dtab the
/// request brought. Requests with equal targets share one binding; it is
/// the binding cache's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DstTarget {
    /// The request's own dtab as text; empty for most requests.
    pub local_dtab: String,
    /// The name, e.g. `/svc/web`.
    pub name: Path,
}

impl DstTarget {
    /// The target of a request named `name` that brought `local`.
    pub fn new(local: &Dtab, name: Path) -> DstTarget {
        DstTarget {
            local_dtab: if local.is_empty() {
                String::new()
            } else {
                local.show()
            },
            name,
        }
    }
}

/// The request's own dtab, within the router's `dtabHeaderLimits`.
pub(crate) fn local_dtab(
    headers: &http::HeaderMap,
    limits: &dtab_headers::DtabHeaderLimits,
) -> Result<Dtab, RouterError> {
    dtab_headers::local_dtab(headers, limits).map_err(|e| RouterError::BadDtabHeader(e.to_string()))
}
