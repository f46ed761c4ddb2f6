//! The watches of the `io.l5d.k8s` store: one list + watch of every DTab
//! object of the Kubernetes namespace (the collection), and the store's
//! watches (the namespace list, each namespace's dtab) derived from it.
//!
//! The collection runs while any derived watch holds it and stops with the
//! last. It keeps what it last listed through failures: only a collection
//! that never listed reports one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use kube::api::ListParams;
use kube::runtime::watcher::{self, Event};
use namers::backoff::Backoff;
use namers::{Live, Publisher};

use super::resource::DtabResource;
use super::{Inner, KIND};
use crate::Namespace;
use crate::store::backend::{
    DtabPublisher, Health, ListPublisher, Read, publish_failure, publish_read,
};
use crate::store::{StoreError, VersionedDtab};

/// What one DTab object holds: a dtab, or why it is not one.
type Entry = Result<VersionedDtab, String>;

/// What the collection watch has seen.
#[derive(Clone, Default)]
pub(super) struct Collection {
    /// Every object by name, once a list has completed.
    listed: Option<Arc<BTreeMap<String, Entry>>>,
    /// Why the collection fails, while it has never listed.
    failure: Option<String>,
}

impl Inner {
    /// The collection, live; started if nobody follows it yet.
    fn collection(self: &Arc<Self>) -> Live<Collection> {
        let inner = self.clone();
        let run = move |publisher: Arc<Publisher<Collection>>| {
            let inner = inner.clone();
            async move {
                tokio::select! {
                    () = follow_collection(inner, publisher.clone()) => {}
                    () = publisher.closed() => {}
                }
            }
        };
        match self.collection.try_subscribe((), Collection::default, run) {
            Ok(live) => live,
            // The store's watches are only started in a runtime, so this
            // is not reached; a failed value says so if it ever is.
            Err(_) => Live::constant(Collection {
                listed: None,
                failure: Some(format!("{KIND}: watches need a tokio runtime")),
            }),
        }
    }
}

/// Keeps the dtab of `ns` up to date with the collection.
pub(super) async fn follow_dtab(inner: Arc<Inner>, ns: Namespace, publisher: DtabPublisher) {
    let mut collection = inner.collection();
    // The entry last published, so that an unchanged bad object is not
    // logged again with each change of the others.
    let mut last: Option<Option<Entry>> = None;
    loop {
        collection.mark_seen();
        let state = collection.load();
        match &state.listed {
            Some(objects) => {
                let entry = objects.get(ns.as_str()).cloned();
                if last.as_ref() != Some(&entry) {
                    let read = match &entry {
                        None => Read::Good(None),
                        Some(Ok(dtab)) => Read::Good(Some(dtab.clone())),
                        Some(Err(why)) => Read::Corrupt(why.clone()),
                    };
                    publish_read(&publisher, &ns, read);
                    last = Some(entry);
                }
            }
            None => {
                if let Some(why) = &state.failure {
                    publish_failure(&publisher, &StoreError::Backend(why.clone()));
                }
            }
        }
        collection.changed().await;
    }
}

/// Keeps the namespace list up to date with the collection.
pub(super) async fn follow_list(inner: Arc<Inner>, publisher: ListPublisher) {
    let mut collection = inner.collection();
    loop {
        collection.mark_seen();
        let state = collection.load();
        match &state.listed {
            Some(objects) => {
                let names: BTreeSet<Namespace> =
                    Inner::namespaces(objects.keys().map(String::as_str));
                publisher.publish_if_changed(namers::Activity::Ok(names));
            }
            None => {
                if let Some(why) = &state.failure {
                    publish_failure(&publisher, &StoreError::Backend(why.clone()));
                }
            }
        }
        collection.changed().await;
    }
}

/// Changes the collection and publishes it.
fn update(publisher: &Publisher<Collection>, change: impl FnOnce(&mut Collection)) {
    let mut state = Collection::clone(&publisher.current());
    change(&mut state);
    publisher.publish(state);
}

/// Changes one object of a listed collection.
fn update_object(publisher: &Publisher<Collection>, object: &DtabResource, deleted: bool) {
    let Some(name) = object.name() else {
        return;
    };
    update(publisher, |state| {
        if let Some(objects) = &mut state.listed {
            let objects = Arc::make_mut(objects);
            if deleted {
                objects.remove(name);
            } else {
                objects.insert(name.to_string(), object.read());
            }
        }
    });
}

/// Lists then watches every DTab object, for ever: the collection's cache
/// stops it when nobody follows it any more.
async fn follow_collection(inner: Arc<Inner>, publisher: Arc<Publisher<Collection>>) {
    let timing = inner.timing;
    let what = format!(
        "dtabs.l5d.io in namespace {} at {}",
        inner.namespace,
        inner.where_()
    );
    let mut health = Health::new(KIND, None, &what);
    let mut backoff = Backoff::new(timing.backoff_min, timing.backoff_max);
    let api = loop {
        match inner.dtabs() {
            Ok(api) => break api,
            Err(e) => {
                fail(&publisher, &mut health, &e);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    };
    let config = watcher::Config::default().timeout(timing.watch_timeout.as_secs() as u32);
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), config));
    let probe = ListParams::default().limit(1);
    // A fresh list is gathered here, then replaces what was known at once.
    let mut listing: Option<BTreeMap<String, Entry>> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                // The watcher lists again by itself.
                tracing::debug!(store = KIND, watch = %what, "resource version expired; listing again");
                continue;
            }
            Err(error) => {
                let e = StoreError::Backend(format!("{KIND}: watching {what}: {error}"));
                fail(&publisher, &mut health, &e);
                tokio::time::sleep(backoff.next_pause()).await;
                // A watch resumed after an outage is silent until something
                // changes: a one-object list tells whether the server is
                // back. Not after a refusal (403, 404, ...): a list may be
                // allowed where the watch is not.
                if !namers::k8s::watch_refused(&error) && api.list(&probe).await.is_ok() {
                    health.ok();
                }
                continue;
            }
        };
        if !matches!(event, Event::Init) {
            backoff.reset();
            health.ok();
        }
        match event {
            Event::Init => listing = Some(BTreeMap::new()),
            Event::InitApply(object) => {
                if let (Some(listing), Some(name)) = (&mut listing, object.name()) {
                    listing.insert(name.to_string(), object.read());
                }
            }
            Event::InitDone => {
                let listed = listing.take().unwrap_or_default();
                log_bad_objects(&listed);
                update(&publisher, |state| {
                    state.listed = Some(Arc::new(listed));
                    state.failure = None;
                });
            }
            Event::Apply(object) => update_object(&publisher, &object, false),
            Event::Delete(object) => update_object(&publisher, &object, true),
        }
    }
}

/// Records a failure: logged once until the collection answers again, and
/// published only while nothing was ever listed.
fn fail(publisher: &Publisher<Collection>, health: &mut Health<'_>, e: &StoreError) {
    health.failed(e);
    if publisher.current().listed.is_none() {
        let why = e.to_string();
        update(publisher, |state| state.failure = Some(why));
    }
}

/// Logs the listed objects that are not dtabs (the namespaces' watches
/// log them too, but only for namespaces being watched).
fn log_bad_objects(listed: &BTreeMap<String, Entry>) {
    for why in listed.values().filter_map(|entry| entry.as_ref().err()) {
        tracing::debug!(store = KIND, "{why}; not served");
    }
}
