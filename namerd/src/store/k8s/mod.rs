//! `io.l5d.k8s`: dtabs kept in Kubernetes as `dtabs.l5d.io` custom
//! resources, as Linkerd's namerd kept them.
//!
//! Each dtab namespace is one `DTab` object (group `l5d.io`, version
//! `v1alpha1`) in one Kubernetes namespace (`namespace`, `default` by
//! default): its `metadata.name` is the dtab namespace and its `dentries`
//! the dtab, a list of `{prefix, dst}` strings, so objects Linkerd wrote
//! are read as they are. A dtab's version is the object's
//! `metadata.resourceVersion` (its text, as Linkerd had it). Writes are
//! compare-and-set through the API server's optimistic concurrency: a
//! replace carries the resource version it read, and `409 Conflict` means
//! somebody else wrote first.
//!
//! **Watches.** One list + watch of the DTab objects (`kube`'s watcher:
//! resource versions, bookmarks, and a fresh list after `410 Gone`) feeds
//! every watch of the store, the namespace list and each namespace's dtab,
//! as Linkerd's store did; it runs while anything watches and stops with
//! the last watcher. A failed list or watch is retried after a pause that
//! starts at 100 ms and doubles up to 30 s, with jitter.
//!
//! **Outages.** While the API server cannot be reached, watches keep the
//! last dtabs they listed; only a watch that never listed fails. An object
//! edited into something that is not a dtab is not served: its namespace
//! keeps its last good dtab (or fails if it never had one), and a `get`
//! says what is wrong and where.
//!
//! The API server is reached as the `io.l5d.k8s` namer reaches it: plain
//! HTTP to `host:port` (a `kubectl proxy`), or in a pod with neither key
//! set, the in-cluster API server with the pod's service account.
//!
//! The tests of this module run against an in-process fake of the API
//! server (`integration::k8s`), not a real cluster.

mod config;
mod resource;
mod watch;
mod writes;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use dtab::Dtab;
use futures_util::future::{BoxFuture, FutureExt};
use kube::Api;
use kube::api::ListParams;
use namers::LiveCache;
use namers::k8s::ApiServer;
use serde_json::{Map, Value};

use super::backend::Watches;
use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

pub use config::{K8sStoreConfig, Timing};
pub use resource::{GROUP, KIND as RESOURCE_KIND, PLURAL, VERSION};

use resource::DtabResource;
use watch::Collection;

/// The `kind` of this store in namerd's config.
pub const KIND: &str = "io.l5d.k8s";

/// Builds the store from its config block (the storage registry's entry).
pub fn build(params: &Map<String, Value>) -> Result<Arc<dyn DtabStore>, String> {
    let config: K8sStoreConfig = namers::config::kind_params(params)?;
    Ok(Arc::new(config.build()?))
}

/// Dtabs as `dtabs.l5d.io` objects in one Kubernetes namespace.
pub struct K8sStore {
    inner: Arc<Inner>,
}

struct Inner {
    api: ApiServer,
    /// The Kubernetes namespace of the DTab objects.
    namespace: String,
    timing: Timing,
    /// Made on first use: building a client needs a runtime.
    client: Mutex<Option<kube::Client>>,
    /// The one list + watch of every DTab object.
    collection: LiveCache<(), Collection>,
    watches: Watches,
}

impl Inner {
    /// The client, made on first use.
    fn client(&self) -> Result<kube::Client, StoreError> {
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = &*client {
            return Ok(client.clone());
        }
        let mut config = match &self.api {
            ApiServer::Proxy { authority } => {
                let url = format!("http://{authority}").parse().map_err(|e| {
                    StoreError::Backend(format!("{KIND}: API server {authority}: {e}"))
                })?;
                kube::Config::new(url)
            }
            ApiServer::InCluster => kube::Config::incluster()
                .map_err(|e| StoreError::Backend(format!("{KIND}: in-cluster API server: {e}")))?,
        };
        // Watches retry with their own pacing; a failed write is the
        // caller's to retry.
        config.default_retry = false;
        let made = kube::Client::try_from(config)
            .map_err(|e| StoreError::Backend(format!("{KIND}: {}: {e}", self.where_())))?;
        *client = Some(made.clone());
        Ok(made)
    }

    /// The DTab objects, through the client.
    fn dtabs(&self) -> Result<Api<DtabResource>, StoreError> {
        Ok(Api::namespaced(self.client()?, &self.namespace))
    }

    /// The API server, for errors.
    fn where_(&self) -> String {
        match &self.api {
            ApiServer::Proxy { authority } => format!("API server http://{authority}"),
            ApiServer::InCluster => "the in-cluster API server".to_string(),
        }
    }

    /// `dtabs.l5d.io <namespace>/<name> at <API server>`, for errors.
    fn describe(&self, name: &str) -> String {
        format!(
            "{PLURAL}.{GROUP} {}/{name} at {}",
            self.namespace,
            self.where_()
        )
    }

    /// A failed call about `what`, as a store error.
    fn failed(&self, doing: &str, what: &str, e: &kube::Error) -> StoreError {
        StoreError::Backend(format!("{KIND}: {doing} {what}: {}", explain(e)))
    }

    /// Runs one call that is not a watch, within the request timeout.
    async fn call<T>(
        &self,
        doing: &str,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> StoreResult<Result<T, Box<kube::core::Status>>> {
        match tokio::time::timeout(self.timing.request_timeout, call).await {
            Ok(Ok(value)) => Ok(Ok(value)),
            Ok(Err(kube::Error::Api(status))) if (400..500).contains(&status.code) => {
                Ok(Err(status))
            }
            Ok(Err(e)) => Err(self.failed(doing, what, &e)),
            Err(_) => Err(StoreError::Backend(format!(
                "{KIND}: {doing} {what}: no answer within {:?}",
                self.timing.request_timeout
            ))),
        }
    }

    /// The namespaces among listed objects; names that cannot be dtab
    /// namespaces are skipped.
    fn namespaces<'a>(names: impl Iterator<Item = &'a str>) -> BTreeSet<Namespace> {
        names
            .filter_map(|name| match Namespace::new(name) {
                Ok(ns) => Some(ns),
                Err(e) => {
                    tracing::debug!(name, error = %e, "{KIND}: ignoring a DTab whose name is not a namespace");
                    None
                }
            })
            .collect()
    }
}

/// What went wrong in a call, in words: the API server's status when it
/// answered, else the transport error.
fn explain(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!(
            "the API server answered {} {}: {}",
            status.code, status.reason, status.message
        ),
        other => other.to_string(),
    }
}

/// A 4xx answer that is not one the caller expects, as a store error.
fn refused(doing: &str, what: &str, status: &kube::core::Status) -> StoreError {
    StoreError::Backend(format!(
        "{KIND}: {doing} {what}: the API server answered {} {}: {}",
        status.code, status.reason, status.message
    ))
}

impl DtabStore for K8sStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        async move {
            let inner = &self.inner;
            let what = format!(
                "{PLURAL}.{GROUP} in namespace {} at {}",
                inner.namespace,
                inner.where_()
            );
            let api = inner.dtabs()?;
            let listed = inner
                .call("listing", &what, api.list(&ListParams::default()))
                .await?
                .map_err(|status| refused("listing", &what, &status))?;
            Ok(Inner::namespaces(
                listed.items.iter().filter_map(DtabResource::name),
            ))
        }
        .boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        async move {
            let inner = &self.inner;
            let what = inner.describe(ns.as_str());
            let api = inner.dtabs()?;
            match inner.call("reading", &what, api.get(ns.as_str())).await? {
                Ok(object) => object.read().map(Some).map_err(StoreError::Backend),
                Err(status) if status.code == 404 => Ok(None),
                Err(status) => Err(refused("reading", &what, &status)),
            }
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        self.inner.create(ns, dtab).boxed()
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        self.inner.update(ns, dtab, version).boxed()
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        self.inner.put(ns, dtab).boxed()
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        self.inner.delete(ns).boxed()
    }

    fn watch_list(&self) -> NamespacesWatch {
        let inner = self.inner.clone();
        self.inner
            .watches
            .list(move |publisher| watch::follow_list(inner.clone(), publisher))
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let inner = self.inner.clone();
        let key = ns.clone();
        self.inner.watches.dtab(ns, move |publisher| {
            watch::follow_dtab(inner.clone(), key.clone(), publisher)
        })
    }
}
