//! Following one ConfigMap through the API server, for the router's
//! `io.l5d.k8s.configMap` interpreter: a list + watch of that object alone
//! (`fieldSelector=metadata.name=<name>`), with resource versions,
//! bookmarks and a fresh list after `410 Gone`, as the namer's watches.
//!
//! What is seen is reported as [`ConfigMapEvent`]s: the object's `data`
//! whenever it is listed, created or changed, its absence when a list does
//! not have it or it is deleted. A failed list or watch is reported once per
//! outage and retried after a jittered pause that doubles from
//! [`Timing::backoff_min`] to [`Timing::backoff_max`]; since a resumed
//! watch is silent until something changes, each retry after a failure
//! also reads the object, which tells at once whether the server is back.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::watcher::{self, Event};

use super::config::{ApiServer, Timing, kube_client};
use super::watch::refused;
use crate::backoff::Backoff;

/// What a watch of one ConfigMap reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigMapEvent {
    /// The ConfigMap exists, with this `data` (listed, created or changed).
    Data(BTreeMap<String, String>),
    /// It does not exist (a list without it, or its deletion).
    Absent,
    /// The API server cannot be reached, or refuses; reported once per
    /// outage, with where and why. The watch keeps retrying.
    Failing(String),
    /// The API server answers again after [`ConfigMapEvent::Failing`].
    Recovered,
}

/// One ConfigMap to follow.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigMapWatch {
    /// Where the API server is.
    pub api: ApiServer,
    /// The ConfigMap's namespace.
    pub namespace: String,
    /// The ConfigMap's name.
    pub name: String,
    /// Retry pacing and the watch timeout.
    pub timing: Timing,
}

impl ConfigMapWatch {
    /// `ConfigMap <namespace>/<name>`, for messages.
    pub fn describe(&self) -> String {
        format!("ConfigMap {}/{}", self.namespace, self.name)
    }

    /// Follows the ConfigMap for ever, telling `report` what it sees; the
    /// caller drops the future to stop.
    pub async fn run(&self, report: impl FnMut(ConfigMapEvent) + Send) {
        let what = self.describe();
        let mut backoff = Backoff::new(self.timing.backoff_min, self.timing.backoff_max);
        let mut out = Reporter {
            report,
            failing: false,
        };
        let client = loop {
            match kube_client(&self.api) {
                Ok(client) => break client,
                Err(why) => {
                    out.failed(format!("{what}: {why}"));
                    tokio::time::sleep(backoff.next_pause()).await;
                }
            }
        };
        let api: Api<ConfigMap> = Api::namespaced(client, &self.namespace);
        let config = watcher::Config::default()
            .fields(&format!("metadata.name={}", self.name))
            .timeout(self.timing.watch_timeout.as_secs() as u32);
        let mut events = std::pin::pin!(watcher::watcher(api.clone(), config));
        // A list in progress: the object's data if the list had it.
        let mut listing: Option<Option<BTreeMap<String, String>>> = None;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tracing::debug!("{what}: resource version expired; listing again");
                    continue;
                }
                Err(error) => {
                    out.failed(format!("{what}: {error}"));
                    tokio::time::sleep(backoff.next_pause()).await;
                    // Not after a refusal (403, 404, ...): a read may be
                    // allowed where the watch is not.
                    if !refused(&error) && api.get_opt(&self.name).await.is_ok() {
                        out.answered();
                    }
                    continue;
                }
            };
            if !matches!(event, Event::Init) {
                backoff.reset();
                out.answered();
            }
            match event {
                Event::Init => listing = Some(None),
                Event::InitApply(object) => {
                    if let Some(listing) = &mut listing
                        && self.is_ours(&object)
                    {
                        *listing = Some(object.data.unwrap_or_default());
                    }
                }
                Event::InitDone => {
                    let found = listing.take().flatten();
                    (out.report)(found.map_or(ConfigMapEvent::Absent, ConfigMapEvent::Data));
                }
                Event::Apply(object) if self.is_ours(&object) => {
                    (out.report)(ConfigMapEvent::Data(object.data.unwrap_or_default()));
                }
                Event::Delete(object) if self.is_ours(&object) => {
                    (out.report)(ConfigMapEvent::Absent);
                }
                Event::Apply(_) | Event::Delete(_) => {}
            }
        }
    }

    /// Whether `object` is the ConfigMap followed (the server selects it by
    /// name already; this guards against one that does not).
    fn is_ours(&self, object: &ConfigMap) -> bool {
        object.metadata.name.as_deref() == Some(self.name.as_str())
    }
}

/// Reports failures once per outage, and the end of each outage.
struct Reporter<F> {
    report: F,
    failing: bool,
}

impl<F: FnMut(ConfigMapEvent)> Reporter<F> {
    fn failed(&mut self, why: String) {
        if self.failing {
            tracing::debug!(error = %why, "still failing");
        } else {
            self.failing = true;
            (self.report)(ConfigMapEvent::Failing(why));
        }
    }

    fn answered(&mut self) {
        if self.failing {
            self.failing = false;
            (self.report)(ConfigMapEvent::Recovered);
        }
    }
}
