//! One namespace watch: the list + watch loops that follow a namespace's
//! Services and Endpoints, their pacing after failures, and the one log
//! line per change between answering and failing.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};

use futures_util::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

use super::config::{Mode, kube_client};
use super::resolve::{EndpointsInfo, ServiceInfo};
use super::{Inner, NsKey, NsState};
use crate::Publisher;
use crate::backoff::Backoff;
use crate::namer_table::Running;

/// A resource a namespace watch follows, and where its objects are kept.
trait Followed:
    kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + 'static
{
    /// What is kept of an object.
    type Info: for<'a> From<&'a Self> + Send + Sync;
    /// For logs: `services` or `endpoints`.
    const WHAT: &'static str;

    fn objects(ns: &mut NsState) -> &mut Objects<Self::Info>;
    fn listed(ns: &mut NsState) -> &mut bool;
}

impl Followed for Service {
    type Info = ServiceInfo;
    const WHAT: &'static str = "services";

    fn objects(ns: &mut NsState) -> &mut Objects<ServiceInfo> {
        &mut ns.services
    }

    fn listed(ns: &mut NsState) -> &mut bool {
        &mut ns.services_listed
    }
}

impl Followed for Endpoints {
    type Info = EndpointsInfo;
    const WHAT: &'static str = "endpoints";

    fn objects(ns: &mut NsState) -> &mut Objects<EndpointsInfo> {
        &mut ns.endpoints
    }

    fn listed(ns: &mut NsState) -> &mut bool {
        &mut ns.endpoints_listed
    }
}

/// What a namespace watch keeps of one resource's objects, by name.
type Objects<T> = HashMap<Arc<str>, Arc<T>>;

/// Changes what a namespace watch has seen, and publishes it. Both loops
/// of a watch run in its one task, so neither can publish between the other's
/// read and publish.
fn update(ns: &Publisher<NsState>, service: Option<&str>, change: impl FnOnce(&mut NsState)) {
    let mut state = NsState::clone(&ns.current());
    change(&mut state);
    let signals = state.signals.clone();
    ns.publish(state);
    // After the publish: a lookup told of the change reads the new state.
    signals.changed(service);
}

/// Whether a namespace's watch is failing. Both loops talk to one API
/// server, so an answer to either means the server is back.
#[derive(Default)]
struct Health {
    failing: AtomicBool,
}

impl Health {
    /// Records whether the last attempt failed; says whether that changed
    /// the namespace between answering and failing.
    fn set(&self, failing: bool) -> bool {
        self.failing.swap(failing, Ordering::Relaxed) != failing
    }
}

/// Follows the namespace of `key` until nobody holds what it has seen.
pub(super) async fn run(inner: Arc<Inner>, key: NsKey, ns: Arc<Publisher<NsState>>) {
    let stats = &inner.stats;
    let _running = Running::start(&stats.watches_started, &stats.watches_ended);
    let health = Health::default();
    let mut backoff = Backoff::new(
        inner.settings.timing.backoff_min,
        inner.settings.timing.backoff_max,
    );
    let client = loop {
        match client(&inner) {
            Ok(client) => break client,
            Err(why) => {
                inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                if health.set(true) {
                    report_failure(&inner, &key, &ns, &why);
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_pause()) => {}
                    () = ns.closed() => return,
                }
            }
        }
    };
    // Load balancers are in the Services: `io.l5d.k8s.external` needs no
    // Endpoints.
    let endpoints = async {
        match inner.settings.mode {
            Mode::Endpoints => {
                follow::<Endpoints>(&inner, &key, &ns, client.clone(), &health).await
            }
            Mode::External => std::future::pending().await,
        }
    };
    tokio::select! {
        () = follow::<Service>(&inner, &key, &ns, client.clone(), &health) => {}
        () = endpoints => {}
        () = ns.closed() => {}
    }
}

/// The client of the namer, made on first use.
fn client(inner: &Inner) -> Result<kube::Client, String> {
    let mut client = inner.client.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(client) = &*client {
        return Ok(client.clone());
    }
    let made = kube_client(&inner.settings.api).map_err(|e| format!("io.l5d.k8s: {e}"))?;
    *client = Some(made.clone());
    Ok(made)
}

/// Lists then watches one resource of a namespace, for ever.
async fn follow<K: Followed>(
    inner: &Inner,
    key: &NsKey,
    ns: &Publisher<NsState>,
    client: kube::Client,
    health: &Health,
) {
    let timing = inner.settings.timing;
    let api: Api<K> = Api::namespaced(client, &key.namespace);
    let probe = ListParams::default().limit(1);
    let mut config = watcher::Config::default().timeout(timing.watch_timeout.as_secs() as u32);
    if let Some(selector) = &key.selector {
        config = config.labels(selector);
    }
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), config));
    let mut backoff = Backoff::new(timing.backoff_min, timing.backoff_max);
    // A fresh list is gathered here, then replaces what was known at once.
    let mut listing: Option<Objects<K::Info>> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                inner.stats.relists.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(watch = %key, what = K::WHAT, "io.l5d.k8s: resource version expired; listing again");
                continue;
            }
            Err(error) => {
                inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                let why = format!("io.l5d.k8s: {} in {key}: {error}", K::WHAT);
                if health.set(true) {
                    report_failure(inner, key, ns, &why);
                } else {
                    tracing::debug!(watch = %key, error = %why, "io.l5d.k8s: still failing");
                }
                tokio::time::sleep(backoff.next_pause()).await;
                // A watch resumed after an outage is silent until something
                // changes: a one-object list tells whether the server is back.
                // Not after a refusal (403, 404, ...): a list may be allowed
                // where the watch is not.
                if !refused(&error) && api.list(&probe).await.is_ok() {
                    recovered(inner, key, health);
                }
                continue;
            }
        };
        if !matches!(event, Event::Init) {
            backoff.reset();
            recovered(inner, key, health);
        }
        match event {
            Event::Init => listing = Some(HashMap::new()),
            Event::InitApply(object) => {
                inner.stats.events.fetch_add(1, Ordering::Relaxed);
                if let (Some(listing), Some(name)) = (&mut listing, object.meta().name.as_deref()) {
                    listing.insert(name.into(), Arc::new(K::Info::from(&object)));
                }
            }
            Event::InitDone => {
                let listed = listing.take().unwrap_or_default();
                update(ns, None, |ns| {
                    *K::objects(ns) = listed;
                    *K::listed(ns) = true;
                    ns.failure = None;
                });
            }
            Event::Apply(object) => {
                inner.stats.events.fetch_add(1, Ordering::Relaxed);
                let Some(name) = object.meta().name.as_deref() else {
                    continue;
                };
                let info = Arc::new(K::Info::from(&object));
                update(ns, Some(name), |ns| {
                    K::objects(ns).insert(name.into(), info);
                });
            }
            Event::Delete(object) => {
                inner.stats.events.fetch_add(1, Ordering::Relaxed);
                let Some(name) = object.meta().name.as_deref() else {
                    continue;
                };
                update(ns, Some(name), |ns| {
                    K::objects(ns).remove(name);
                });
            }
        }
    }
}

/// Whether the server refused the request (a 4xx status) rather than
/// failed to answer it.
pub fn refused(error: &watcher::Error) -> bool {
    let status = match error {
        watcher::Error::WatchError(status) => status.code,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        _ => return false,
    };
    (400..500).contains(&status)
}

/// Logs and counts a namespace that answers again.
fn recovered(inner: &Inner, key: &NsKey, health: &Health) {
    if health.set(false) {
        inner.stats.state_changes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(namer = "io.l5d.k8s", watch = %key, "io.l5d.k8s: watch recovered");
    }
}

/// Logs and counts a namespace that starts failing; a namespace that never
/// listed reports the failure to its lookups, one that did keeps its last
/// known endpoints.
fn report_failure(inner: &Inner, key: &NsKey, ns: &Publisher<NsState>, why: &str) {
    inner.stats.state_changes.fetch_add(1, Ordering::Relaxed);
    let current = ns.current();
    let listed = current.listed(inner.settings.mode);
    if !listed {
        update(ns, None, |ns| ns.failure = Some(why.into()));
    }
    if listed {
        tracing::warn!(namer = "io.l5d.k8s", watch = %key, error = %why, "io.l5d.k8s: watch failing; keeping the last known endpoints and retrying");
    } else {
        tracing::warn!(namer = "io.l5d.k8s", watch = %key, error = %why, "io.l5d.k8s: watch failing; retrying");
    }
}

impl std::fmt::Display for NsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Some(selector) => write!(f, "namespace {} ({selector})", self.namespace),
            None => write!(f, "namespace {}", self.namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_4xx_statuses() {
        use kube::core::Status;
        let status = |code| Box::new(Status::failure("no", "Forbidden").with_code(code));
        assert!(refused(&watcher::Error::WatchStartFailed(
            kube::Error::Api(status(403))
        )));
        assert!(refused(&watcher::Error::WatchError(status(410))));
        assert!(!refused(&watcher::Error::InitialListFailed(
            kube::Error::Api(status(503))
        )));
        assert!(!refused(&watcher::Error::NoResourceVersion));
    }

    #[test]
    fn health_reports_only_changes() {
        let health = Health::default();
        assert!(health.set(true));
        assert!(!health.set(true));
        assert!(health.set(false));
        assert!(!health.set(false));
    }
}
