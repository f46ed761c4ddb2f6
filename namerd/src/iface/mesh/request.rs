//! What the services check in a request, and how their failures become
//! gRPC statuses. A bad request is INVALID_ARGUMENT with a message that
//! names the field (`BindReq.dtab.dentries[1]: dst is missing`).

use std::future::Future;
use std::time::Duration;

use dtab::{Dtab, Path};
use namerd_client::mesh::{self, ConvertError, convert, proto};
use namers::{Activity, Live, NamingError};
use tonic::Status;

use super::Mesh;
use super::metrics::Method;
use crate::Namespace;

/// How long a one-off call waits for a value that is still pending (the
/// HTTP API waits as long).
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// An INVALID_ARGUMENT naming the message and field at fault.
pub(crate) fn invalid(message: &str, e: &ConvertError) -> Status {
    Status::invalid_argument(format!("{message}.{e}"))
}

/// The namespace a request's `root` names.
pub(crate) fn namespace(message: &str, root: Option<&proto::Path>) -> Result<Namespace, Status> {
    let Some(root) = root else {
        return Err(Status::invalid_argument(format!(
            "{message}.root: missing; it names the namespace, e.g. /default"
        )));
    };
    mesh::namespace_of(root).map_err(|e| invalid(message, &e))
}

/// A required, non-empty path field.
pub(crate) fn name(message: &str, field: &str, path: Option<&proto::Path>) -> Result<Path, Status> {
    let path = match path {
        Some(p) => convert::path_from_proto(p).map_err(|e| invalid(message, &e.within(field)))?,
        None => Path::empty(),
    };
    if path.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{message}.{field}: missing or empty"
        )));
    }
    Ok(path)
}

impl Mesh {
    /// A request's own dtab, within `localDtabLimits` as the HTTP API's
    /// `dtab` parameter is: the number of dentries is checked before they
    /// are converted, the size of the dtab's text after.
    pub(crate) fn local_dtab(
        &self,
        message: &str,
        dtab: Option<&proto::Dtab>,
    ) -> Result<Dtab, Status> {
        let Some(dtab) = dtab else {
            return Ok(Dtab::empty());
        };
        let limits = self.ctx.local_dtab_limits;
        if dtab.dentries.len() > limits.max_dentries {
            return Err(Status::invalid_argument(format!(
                "{message}.dtab: {} dentries, over the limit of {} (localDtabLimits.maxDentries)",
                dtab.dentries.len(),
                limits.max_dentries
            )));
        }
        let dtab =
            convert::dtab_from_proto(dtab).map_err(|e| invalid(message, &e.within("dtab")))?;
        let size = dtab.show().len();
        if size > limits.max_bytes {
            return Err(Status::invalid_argument(format!(
                "{message}.dtab: {size} bytes as text, over the limit of {} (localDtabLimits.maxBytes)",
                limits.max_bytes
            )));
        }
        Ok(dtab)
    }

    /// Runs one call of `method`, counting it and its failure.
    pub(crate) async fn counted<T>(
        &self,
        method: Method,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        self.stats.request(method);
        let result = call.await;
        if result.is_err() {
            self.stats.failure(method);
        }
        result
    }
}

/// The status a failed binding ends a call with: INVALID_ARGUMENT when the
/// request's own dtab took binding over its limits (the same request would
/// fail again), INTERNAL otherwise.
pub(crate) fn binding_failed(e: &NamingError, local: &Dtab) -> Status {
    match e {
        NamingError::OverBudget { .. } if !local.is_empty() => {
            Status::invalid_argument(format!("{e}, with the request's dtab"))
        }
        _ => Status::internal(e.to_string()),
    }
}

/// Waits until `live` is no longer pending, for up to [`SETTLE_TIMEOUT`].
pub(crate) async fn settled<T>(
    live: &Live<T>,
    is_pending: impl Fn(&T) -> bool,
) -> Option<std::sync::Arc<T>> {
    let mut live = live.clone();
    tokio::time::timeout(SETTLE_TIMEOUT, async {
        loop {
            let current = live.load();
            if !is_pending(&current) {
                return current;
            }
            live.changed().await;
        }
    })
    .await
    .ok()
}

/// Whether a binding has not answered yet.
pub(crate) fn pending<T>(state: &Activity<T>) -> bool {
    state.is_pending()
}
