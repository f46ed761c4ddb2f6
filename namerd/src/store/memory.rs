//! `io.l5d.inMemory`: dtabs kept in memory only, lost on restart. Useful
//! for tests and demos; `namespaces` in the config seeds them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dtab::Dtab;
use futures_util::future::{BoxFuture, FutureExt};
use namers::{Activity, Publisher};

use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

/// The `io.l5d.inMemory` config: `namespaces` maps names to dtab text.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InMemoryConfig {
    /// Namespaces to start with.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
}

impl InMemoryConfig {
    /// Checks the seeds and builds the store.
    pub fn build(&self) -> Result<InMemoryStore, String> {
        let store = InMemoryStore::default();
        {
            let mut state = store.lock();
            for (name, text) in &self.namespaces {
                let ns = Namespace::new(name).map_err(|e| format!("namespaces.{name}: {e}"))?;
                let dtab = Dtab::read(text)
                    .map_err(|e| format!("namespaces.{name}: invalid dtab: {e}"))?;
                state.dtabs.insert(
                    ns,
                    VersionedDtab {
                        dtab,
                        version: Version::from_u64(1),
                    },
                );
            }
        }
        Ok(store)
    }
}

/// Dtabs in memory, versioned per namespace from 1 upwards.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    dtabs: BTreeMap<Namespace, VersionedDtab>,
    list_watch: Option<Publisher<Activity<BTreeSet<Namespace>>>>,
    watches: HashMap<Namespace, Publisher<Activity<Option<VersionedDtab>>>>,
}

impl State {
    fn names(&self) -> BTreeSet<Namespace> {
        self.dtabs.keys().cloned().collect()
    }

    /// Stores `dtab` under the next version and tells the watchers.
    fn write(&mut self, ns: &Namespace, dtab: &Dtab) -> Version {
        let next = self
            .dtabs
            .get(ns)
            .and_then(|d| d.version.to_u64())
            .unwrap_or(0)
            + 1;
        let version = Version::from_u64(next);
        let created = !self.dtabs.contains_key(ns);
        self.dtabs.insert(
            ns.clone(),
            VersionedDtab {
                dtab: dtab.clone(),
                version: version.clone(),
            },
        );
        self.notify(ns, created);
        version
    }

    fn notify(&mut self, ns: &Namespace, list_changed: bool) {
        if list_changed && let Some(list) = &self.list_watch {
            list.publish(Activity::Ok(self.names()));
        }
        if let Some(watch) = self.watches.get(ns) {
            watch.publish(Activity::Ok(self.dtabs.get(ns).cloned()));
        }
        // Forget watches nobody holds any more.
        self.watches.retain(|_, w| w.subscriber_count() > 0);
    }
}

impl InMemoryStore {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DtabStore for InMemoryStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        let names = self.lock().names();
        async move { Ok(names) }.boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        let found = self.lock().dtabs.get(ns).cloned();
        async move { Ok(found) }.boxed()
    }

    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        let mut state = self.lock();
        let result = if state.dtabs.contains_key(ns) {
            Err(StoreError::AlreadyExists(ns.clone()))
        } else {
            Ok(state.write(ns, dtab))
        };
        async move { result }.boxed()
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        let mut state = self.lock();
        let result = match state.dtabs.get(ns) {
            None => Err(StoreError::NotFound(ns.clone())),
            Some(current) if &current.version != version => {
                Err(StoreError::VersionMismatch(ns.clone()))
            }
            Some(_) => Ok(state.write(ns, dtab)),
        };
        async move { result }.boxed()
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        let version = self.lock().write(ns, dtab);
        async move { Ok(version) }.boxed()
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        let mut state = self.lock();
        let result = match state.dtabs.remove(ns) {
            Some(_) => {
                state.notify(ns, true);
                Ok(())
            }
            None => Err(StoreError::NotFound(ns.clone())),
        };
        async move { result }.boxed()
    }

    fn watch_list(&self) -> NamespacesWatch {
        let mut state = self.lock();
        let names = state.names();
        state
            .list_watch
            .get_or_insert_with(|| Publisher::new(Activity::Ok(names)))
            .subscribe()
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let mut state = self.lock();
        let current = state.dtabs.get(ns).cloned();
        state
            .watches
            .entry(ns.clone())
            .or_insert_with(|| Publisher::new(Activity::Ok(current)))
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    #[tokio::test]
    async fn versions_count_up_and_compare_and_set_is_enforced() {
        let store = InMemoryStore::default();
        let dtab = Dtab::read("/svc=>/#/io.l5d.fs").unwrap();
        let v1 = store.create(&ns("a"), &dtab).await.unwrap();
        assert_eq!(v1.to_etag(), "AAAAAAAAAAE=");
        assert_eq!(
            store.create(&ns("a"), &dtab).await,
            Err(StoreError::AlreadyExists(ns("a")))
        );
        let v2 = store.update(&ns("a"), &Dtab::empty(), &v1).await.unwrap();
        assert_eq!(v2.to_u64(), Some(2));
        assert_eq!(
            store.update(&ns("a"), &dtab, &v1).await,
            Err(StoreError::VersionMismatch(ns("a")))
        );
        assert_eq!(
            store.update(&ns("b"), &dtab, &v1).await,
            Err(StoreError::NotFound(ns("b")))
        );
        store.delete(&ns("a")).await.unwrap();
        assert_eq!(
            store.delete(&ns("a")).await,
            Err(StoreError::NotFound(ns("a")))
        );
    }

    #[tokio::test]
    async fn watchers_see_writes_and_deletes() {
        let store = InMemoryStore::default();
        let mut watch = store.watch(&ns("a"));
        let mut list = store.watch_list();
        assert_eq!(*watch.load(), Activity::Ok(None));
        store
            .put(&ns("a"), &Dtab::read("/a=>/b").unwrap())
            .await
            .unwrap();
        watch.changed().await;
        list.changed().await;
        let Activity::Ok(Some(current)) = &*watch.load() else {
            panic!()
        };
        assert_eq!(current.dtab.show(), "/a=>/b");
        assert_eq!(*list.load(), Activity::Ok([ns("a")].into_iter().collect()));
        store.delete(&ns("a")).await.unwrap();
        watch.changed().await;
        assert_eq!(*watch.load(), Activity::Ok(None));
    }

    #[test]
    fn seeds_are_validated() {
        let config = InMemoryConfig {
            namespaces: [("x".to_string(), "/a=>".to_string())].into(),
        };
        let err = config.build().err().unwrap();
        assert!(err.starts_with("namespaces.x: invalid dtab"), "{err}");
    }

    #[test]
    fn etags_round_trip() {
        let v = Version::from_u64(7);
        assert_eq!(Version::from_etag(&format!("\"{}\"", v.to_etag())), Some(v));
        assert_eq!(Version::from_etag("not base64!"), None);
    }
}
