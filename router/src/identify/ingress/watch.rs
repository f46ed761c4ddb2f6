//! Follows the Ingresses of one namespace (or of all) through the API
//! server's list + watch, and publishes what the identifier matches
//! requests against.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use namers::backoff::Backoff;

use super::rules::IngressSpec;
use super::{KIND, Settings};

/// `(namespace, name)` of an Ingress.
type Key = (String, String);

/// What the identifier matches requests against.
#[derive(Default)]
pub(super) struct Snapshot {
    /// Whether the Ingresses have been listed.
    pub(super) listed: bool,
    /// Why they cannot be, while they never have been.
    pub(super) failure: Option<String>,
    /// Our Ingresses, in Linkerd's order: as listed, then each one added or
    /// changed since at the end.
    pub(super) ingresses: Vec<(Key, Arc<IngressSpec>)>,
}

fn key(ingress: &Ingress) -> Option<Key> {
    let meta = &ingress.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    Some((namespace, meta.name.clone()?))
}

/// Changes the snapshot and publishes it.
fn update(state: &ArcSwap<Snapshot>, change: impl FnOnce(&mut Snapshot)) {
    let current = state.load();
    let mut next = Snapshot {
        listed: current.listed,
        failure: current.failure.clone(),
        ingresses: current.ingresses.clone(),
    };
    change(&mut next);
    state.store(Arc::new(next));
}

/// Lists then watches Ingresses for ever (the identifier aborts the task
/// when it is dropped). Failures are retried with backoff; the last
/// Ingresses seen stay in use meanwhile.
pub(super) async fn run(settings: Arc<Settings>, state: Arc<ArcSwap<Snapshot>>) {
    let timing = settings.timing;
    let mut backoff = Backoff::new(timing.backoff_min, timing.backoff_max);
    let client = loop {
        match namers::k8s::kube_client(&settings.api) {
            Ok(client) => break client,
            Err(why) => {
                failing(&state, &format!("{KIND}: {why}"), &mut true);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    };
    let api: Api<Ingress> = match &settings.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let config = watcher::Config::default().timeout(timing.watch_timeout.as_secs() as u32);
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), config));
    let probe = ListParams::default().limit(1);
    let mut healthy = true;
    let mut listing: Option<Vec<(Key, Arc<IngressSpec>)>> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::debug!("{KIND}: resource version expired; listing again");
                continue;
            }
            Err(error) => {
                failing(&state, &format!("{KIND}: ingresses: {error}"), &mut healthy);
                tokio::time::sleep(backoff.next_pause()).await;
                // A resumed watch says nothing until something changes: a
                // one-object list tells whether the server is back.
                if !namers::k8s::watch_refused(&error) && api.list(&probe).await.is_ok() {
                    recovered(&mut healthy);
                }
                continue;
            }
        };
        if !matches!(event, Event::Init) {
            backoff.reset();
            recovered(&mut healthy);
        }
        let filter = &settings.filter;
        match event {
            Event::Init => listing = Some(Vec::new()),
            Event::InitApply(ingress) => {
                if let (Some(listing), Some(key), Some(spec)) =
                    (&mut listing, key(&ingress), filter.keep(&ingress))
                {
                    listing.push((key, spec));
                }
            }
            Event::InitDone => {
                let listed = listing.take().unwrap_or_default();
                update(&state, |s| {
                    s.ingresses = listed;
                    s.listed = true;
                    s.failure = None;
                });
            }
            Event::Apply(ingress) => {
                let Some(key) = key(&ingress) else { continue };
                let spec = filter.keep(&ingress);
                update(&state, |s| {
                    s.ingresses.retain(|(k, _)| *k != key);
                    if let Some(spec) = spec {
                        s.ingresses.push((key, spec));
                    }
                });
            }
            Event::Delete(ingress) => {
                let Some(key) = key(&ingress) else { continue };
                update(&state, |s| s.ingresses.retain(|(k, _)| *k != key));
            }
        }
    }
}

/// Logs a watch that starts failing (once), and tells requests why while
/// nothing was ever listed.
fn failing(state: &ArcSwap<Snapshot>, why: &str, healthy: &mut bool) {
    if std::mem::replace(healthy, false) {
        tracing::warn!(error = %why, "{KIND}: watch failing; keeping the last Ingresses and retrying");
    } else {
        tracing::debug!(error = %why, "{KIND}: still failing");
    }
    if !state.load().listed {
        update(state, |s| s.failure = Some(why.to_string()));
    }
}

fn recovered(healthy: &mut bool) {
    if !std::mem::replace(healthy, true) {
        tracing::info!("{KIND}: watch recovered");
    }
}
