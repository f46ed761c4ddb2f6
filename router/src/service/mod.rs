//! The service stage: what a request is for, per destination path. It
//! reads the request's own dtab (`l5d-ctx-dtab`, `l5d-dtab`, bounded) and
//! names the destination, [`DstTarget`], that binding, clients and metrics
//! are keyed by. Per-service policy (`totalTimeoutMs`, retries, response
//! classifiers) belongs here.

pub mod config;
pub mod deadline;
pub mod dtab_headers;
pub(crate) mod replay;

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
    pub(crate) stats: Arc<crate::stats::ServiceStats>,
}

impl Service {
    pub(crate) fn new(
        policy: Arc<ServicePolicy>,
        stats: Arc<crate::stats::ServiceStats>,
    ) -> Service {
        Service {
            retries: RetryBudget::new(&policy.budget),
            policy,
            stats,
        }
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
