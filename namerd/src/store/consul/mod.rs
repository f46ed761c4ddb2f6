//! `io.l5d.consul`: dtabs in Consul's KV store, one key per namespace.
//!
//! Namespace `ns` lives at the key `<pathPrefix>/<ns>` (by default
//! `namerd/dtabs/<ns>`); its value is the dtab's text and its version the
//! key's `ModifyIndex`, as 8 big-endian bytes. Writes are compare-and-set
//! PUTs (`?cas=`, in [`cas`](self)). Watches are Consul blocking queries:
//! one per watched namespace and one for the list, shared by every watcher,
//! and stopped when the last watcher goes away. A value that is not a dtab
//! is never served as one: a watch keeps its last good dtab (and fails if
//! it never had one). Calls go through the Consul client of the namers
//! crate ([`namers::consul::ConsulClient`]).
//!
//! The tests of this module run against an in-process fake that follows
//! Consul's documented HTTP API (`integration::consul`), not a real agent.

mod cas;
mod config;
mod watch;

use std::collections::BTreeSet;
use std::sync::Arc;

use dtab::Dtab;
use futures_util::future::{BoxFuture, FutureExt};
use namers::consul::{Blocking, ConsulClient, KvEntry, QueryError};

use super::backend::Watches;
use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

pub use config::{ConsulConfig, Timing};
pub use namers::consul::ConsistencyMode;

use watch::{DtabKey, NamespaceList, follow};

/// The `kind` of this store in namerd's config.
pub const KIND: &str = "io.l5d.consul";

/// How many times a delete reads and compare-and-deletes before giving up
/// on a namespace that keeps changing under it.
const DELETE_ATTEMPTS: usize = 5;

/// Dtabs in Consul's KV store.
pub struct ConsulStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: ConsulClient,
    /// The datacenter whose KV store is used; the agent's own if `None`.
    datacenter: Option<String>,
    /// The key prefix, without slashes at either end.
    prefix: String,
    read: ConsistencyMode,
    write: ConsistencyMode,
    timing: Timing,
    watches: Watches,
}

impl ConsulStore {
    /// The Consul key that holds the dtab of `ns`.
    pub fn key(&self, ns: &Namespace) -> String {
        self.inner.key(ns)
    }
}

impl Inner {
    fn key(&self, ns: &Namespace) -> String {
        if self.prefix.is_empty() {
            ns.as_str().to_string()
        } else {
            format!("{}/{}", self.prefix, ns)
        }
    }

    /// The prefix that lists namespaces: the folder, with its slash.
    fn list_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// The datacenter of every call.
    fn dc(&self) -> Option<&str> {
        self.datacenter.as_deref()
    }

    /// The namespaces among the keys of a `?keys` listing.
    fn namespaces(&self, keys: Vec<String>) -> BTreeSet<Namespace> {
        let prefix = self.list_prefix();
        keys.into_iter()
            .filter_map(|key| {
                let name = key.strip_prefix(&prefix)?;
                // Sub-folders (`name/`) and names namerd cannot serve are
                // not namespaces.
                match Namespace::new(name) {
                    Ok(ns) => Some(ns),
                    Err(e) => {
                        if !name.is_empty() {
                            tracing::debug!(key, error = %e, "consul: ignoring a key that is not a namespace");
                        }
                        None
                    }
                }
            })
            .collect()
    }
}

/// A failed call to Consul, as a store error.
fn backend_error(e: QueryError) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The dtab stored in `entry`, or why it is not one.
fn parse_entry(key: &str, entry: &KvEntry) -> Result<VersionedDtab, String> {
    let text = std::str::from_utf8(&entry.value)
        .map_err(|_| format!("the value of Consul key {key} is not UTF-8 text"))?;
    let dtab = Dtab::read(text)
        .map_err(|e| format!("the value of Consul key {key} is not a valid dtab: {e}"))?;
    Ok(VersionedDtab {
        dtab,
        version: Version::from_u64(entry.modify_index),
    })
}

impl DtabStore for ConsulStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        async move {
            let inner = &self.inner;
            let (_, keys) = inner
                .client
                .keys(&inner.list_prefix(), inner.dc(), inner.read, Blocking::No)
                .await
                .map_err(backend_error)?;
            Ok(inner.namespaces(keys))
        }
        .boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        async move {
            let key = self.inner.key(ns);
            let (_, entry) = self
                .inner
                .client
                .get(&key, self.inner.dc(), self.inner.read, Blocking::No)
                .await
                .map_err(backend_error)?;
            entry
                .map(|e| parse_entry(&key, &e))
                .transpose()
                .map_err(StoreError::Backend)
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
            .list(move |publisher| follow(inner.clone(), NamespaceList, publisher))
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let inner = self.inner.clone();
        let key = ns.clone();
        self.inner.watches.dtab(ns, move |publisher| {
            follow(inner.clone(), DtabKey(key.clone()), publisher)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_that_are_not_namespaces_are_skipped() {
        let store = ConsulConfig::default().build().unwrap();
        let names = store.inner.namespaces(vec![
            "namerd/dtabs/".to_string(),
            "namerd/dtabs/a".to_string(),
            "namerd/dtabs/sub/".to_string(),
            "namerd/dtabs/bad name".to_string(),
            "elsewhere/b".to_string(),
        ]);
        assert_eq!(names, [Namespace::new("a").unwrap()].into_iter().collect());
    }
}
