//! A store that counts what is asked of the store it wraps, for the
//! metrics tree: `dtabstore/<op>/requests`, `success`, `failures`,
//! `failures/<why>` and `request_latency_ms` for each of `list`, `get`,
//! `create`, `update`, `put` and `delete`, whoever asked (the API, a
//! delegation, the readiness probe). Linkerd gave its store the
//! `dtabstore` scope but kept nothing in it; the figures are ours.
//!
//! Watches are passed through uncounted: they are long-lived and shared,
//! and their backend calls are the store's own business.

use std::collections::BTreeSet;
use std::sync::Arc;

use dtab::Dtab;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use namers::telemetry::{Counter, Scope, Source, Stat};
use tokio::time::Instant;

use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

/// The operations counted, in the order listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    List,
    Get,
    Create,
    Update,
    Put,
    Delete,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::List,
        Op::Get,
        Op::Create,
        Op::Update,
        Op::Put,
        Op::Delete,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Get => "get",
            Op::Create => "create",
            Op::Update => "update",
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }
}

/// Why an operation failed, as `failures/<why>` names it.
fn why(e: &StoreError) -> usize {
    match e {
        StoreError::NotFound(_) => 0,
        StoreError::AlreadyExists(_) => 1,
        StoreError::VersionMismatch(_) => 2,
        StoreError::Backend(_) => 3,
    }
}

const WHY: [&str; 4] = ["not_found", "already_exists", "version_mismatch", "backend"];

/// One operation's figures.
#[derive(Debug, Default)]
struct OpStats {
    requests: Counter,
    success: Counter,
    failures: Counter,
    why: [Counter; WHY.len()],
    latency: Stat,
}

impl OpStats {
    fn record<T>(&self, started: Instant, result: &StoreResult<T>) {
        self.requests.incr();
        match result {
            Ok(_) => self.success.incr(),
            Err(e) => {
                self.failures.incr();
                self.why[why(e)].incr();
            }
        }
        let elapsed = started.elapsed().as_millis();
        self.latency.add(u64::try_from(elapsed).unwrap_or(u64::MAX));
    }
}

/// A [`DtabStore`] whose calls are counted; list it as a metrics
/// [`Source`].
pub struct CountedStore {
    inner: Arc<dyn DtabStore>,
    ops: [OpStats; Op::ALL.len()],
}

impl CountedStore {
    /// Counts the calls made to `inner`.
    pub fn new(inner: Arc<dyn DtabStore>) -> CountedStore {
        CountedStore {
            inner,
            ops: Default::default(),
        }
    }

    /// Runs `call` as `op`, counting its outcome.
    fn counted<'a, T: Send + 'a>(
        &'a self,
        op: Op,
        call: BoxFuture<'a, StoreResult<T>>,
    ) -> BoxFuture<'a, StoreResult<T>> {
        let started = Instant::now();
        call.map(move |result| {
            self.ops[op as usize].record(started, &result);
            result
        })
        .boxed()
    }
}

impl DtabStore for CountedStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        self.counted(Op::List, self.inner.list())
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        self.counted(Op::Get, self.inner.get(ns))
    }

    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        self.counted(Op::Create, self.inner.create(ns, dtab))
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        self.counted(Op::Update, self.inner.update(ns, dtab, version))
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        self.counted(Op::Put, self.inner.put(ns, dtab))
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        self.counted(Op::Delete, self.inner.delete(ns))
    }

    fn watch_list(&self) -> NamespacesWatch {
        self.inner.watch_list()
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        self.inner.watch(ns)
    }
}

/// `dtabstore/<op>/…` for each operation asked at least once.
impl Source for CountedStore {
    fn list(&self, root: &mut Scope<'_>) {
        let mut store = root.scope("dtabstore");
        for op in Op::ALL {
            let figures = &self.ops[op as usize];
            let mut scope = store.scope(op.name());
            if !scope.is_rolling() && figures.requests.get() == 0 {
                continue;
            }
            scope.stat("request_latency_ms", &figures.latency);
            if scope.is_rolling() {
                continue;
            }
            scope.counter("requests", figures.requests.get());
            scope.counter("success", figures.success.get());
            scope.counter("failures", figures.failures.get());
            for (name, count) in WHY.iter().zip(&figures.why) {
                if count.get() > 0 {
                    scope.counter(&format!("failures/{name}"), count.get());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::InMemoryStore;
    use namers::telemetry::{Value, collect};

    #[tokio::test]
    async fn every_call_is_counted_by_outcome() {
        let store = Arc::new(CountedStore::new(Arc::new(InMemoryStore::default())));
        let ns = Namespace::new("web").unwrap();
        let dtab = Dtab::read("/a=>/b").unwrap();
        let version = store.create(&ns, &dtab).await.unwrap();
        assert!(store.create(&ns, &dtab).await.is_err());
        store.update(&ns, &dtab, &version).await.unwrap();
        assert!(store.update(&ns, &dtab, &version).await.is_err());
        assert!(store.get(&ns).await.unwrap().is_some());
        store.delete(&ns).await.unwrap();
        assert!(store.delete(&ns).await.is_err());
        let source: Arc<dyn Source> = store.clone();
        namers::telemetry::roll(std::slice::from_ref(&source));
        let listed: Vec<(String, Value)> = collect(&[source])
            .into_iter()
            .map(|e| (e.path.join("/"), e.value))
            .collect();
        let counter = |key: &str| {
            listed
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no {key} in {listed:?}"))
        };
        for (key, value) in [
            ("dtabstore/create/requests", 2),
            ("dtabstore/create/success", 1),
            ("dtabstore/create/failures/already_exists", 1),
            ("dtabstore/update/failures/version_mismatch", 1),
            ("dtabstore/get/success", 1),
            ("dtabstore/delete/failures", 1),
            ("dtabstore/delete/failures/not_found", 1),
        ] {
            assert_eq!(counter(key), &Value::Counter(value), "{key}");
        }
        let Value::Stat(latency) = counter("dtabstore/create/request_latency_ms") else {
            panic!("not a stat")
        };
        assert_eq!(latency.count, 2);
        assert!(
            !listed.iter().any(|(k, _)| k.starts_with("dtabstore/put/")),
            "an operation never asked is not listed"
        );
    }

    #[tokio::test]
    async fn the_counted_store_keeps_the_store_contract() {
        let store = CountedStore::new(Arc::new(InMemoryStore::default()));
        crate::store::contract::check_store(&store, "").await;
    }
}
