//! What the stores that watch something (ZooKeeper, etcd, Consul) share:
//! the table of running watches, with one background task per watched
//! namespace and one for the list, each stopped when its last handle is
//! dropped; keeping the last good dtab when the backend holds something
//! else; logging failures once; and backing off between retries.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use namers::backoff::{Backoff, ExponentialBackoff};
use namers::{Activity, Live, LiveCache, NamingError, Publisher};

use super::{DtabWatch, NamespacesWatch, StoreError, VersionedDtab};
use crate::Namespace;

/// Where a namespace's watch task publishes.
pub(super) type DtabPublisher = Arc<Publisher<Activity<Option<VersionedDtab>>>>;
/// Where the list watch task publishes.
pub(super) type ListPublisher = Arc<Publisher<Activity<BTreeSet<Namespace>>>>;

/// The watches one store is running. Every watcher of the same thing
/// shares one task; values are not kept once nobody watches them (no
/// inactive TTL: namerd's binding cache keeps what it needs).
pub(super) struct Watches {
    /// The store's `kind`, for errors.
    kind: &'static str,
    list: LiveCache<(), Activity<BTreeSet<Namespace>>>,
    dtabs: LiveCache<Namespace, Activity<Option<VersionedDtab>>>,
}

impl Watches {
    /// An empty table for the store `kind`.
    pub(super) fn new(kind: &'static str) -> Watches {
        Watches {
            kind,
            list: LiveCache::default(),
            dtabs: LiveCache::default(),
        }
    }

    /// The list, live. If nobody watches it yet, `run(publisher)` is started
    /// to keep it up to date; it runs until the last handle is dropped.
    pub(super) fn list<F, Fut>(&self, run: F) -> NamespacesWatch
    where
        F: Fn(ListPublisher) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let run =
            move |publisher: ListPublisher| until_unwatched(run(publisher.clone()), publisher);
        self.list
            .try_subscribe((), || Activity::Pending, run)
            .unwrap_or_else(|_| self.no_runtime())
    }

    /// The dtab of `ns`, live. If nobody watches it yet, `run(publisher)` is
    /// started to keep it up to date; it runs until the last handle is
    /// dropped.
    pub(super) fn dtab<F, Fut>(&self, ns: &Namespace, run: F) -> DtabWatch
    where
        F: Fn(DtabPublisher) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let run =
            move |publisher: DtabPublisher| until_unwatched(run(publisher.clone()), publisher);
        self.dtabs
            .try_subscribe(ns.clone(), || Activity::Pending, run)
            .unwrap_or_else(|_| self.no_runtime())
    }

    fn no_runtime<T>(&self) -> Live<Activity<T>> {
        Live::constant(Activity::Failed(NamingError::namer(format!(
            "{}: watches need a tokio runtime",
            self.kind
        ))))
    }

    /// Whether the list or any namespace is being watched.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty() && self.dtabs.is_empty()
    }

    /// How many namespaces are being watched.
    #[cfg(test)]
    pub(super) fn dtab_count(&self) -> usize {
        self.dtabs.len()
    }
}

/// Runs `watching` until nobody holds `publisher`'s value any more: the
/// store watch loops retry for ever and leave stopping to this.
async fn until_unwatched<T>(watching: impl Future<Output = ()>, publisher: Arc<Publisher<T>>) {
    tokio::select! {
        () = watching => {}
        () = publisher.closed() => {}
    }
}

/// What the backend held for a namespace.
pub(super) enum Read {
    /// A dtab, or nothing.
    Good(Option<VersionedDtab>),
    /// Something that is not a dtab.
    Corrupt(String),
}

/// Publishes what was read for `ns`. Something that is not a dtab is only
/// published as a failure when there is no good dtab to keep serving.
pub(super) fn publish_read(publisher: &DtabPublisher, ns: &Namespace, read: Read) {
    match read {
        Read::Good(value) => {
            publisher.publish_if_changed(Activity::Ok(value));
        }
        Read::Corrupt(why) => {
            tracing::warn!(namespace = %ns, "{why}; not served");
            if !matches!(*publisher.current(), Activity::Ok(_)) {
                publisher.publish(Activity::Failed(NamingError::namer(why)));
            }
        }
    }
}

/// Publishes a failed backend call, unless a value has been published: that
/// last value keeps being served while the backend is unreachable.
pub(super) fn publish_failure<T>(publisher: &Publisher<Activity<T>>, e: &StoreError) {
    if publisher.current().is_pending() {
        publisher.publish(Activity::Failed(NamingError::namer(e.to_string())));
    }
}

/// Logs a watch's failures once when they start and once when they end.
pub(super) struct Health<'a> {
    store: &'static str,
    namespace: Option<&'a str>,
    what: &'a str,
    failing: bool,
}

impl<'a> Health<'a> {
    /// The health of `what`, a watch of the `store` kind's backend, for
    /// `namespace` (none: the list of namespaces).
    pub(super) fn new(
        store: &'static str,
        namespace: Option<&'a str>,
        what: &'a str,
    ) -> Health<'a> {
        Health {
            store,
            namespace,
            what,
            failing: false,
        }
    }

    pub(super) fn failed(&mut self, e: &StoreError) {
        let (store, namespace, watch) = (self.store, self.namespace, self.what);
        if !self.failing {
            tracing::warn!(store, namespace, watch, error = %e, "dtab store failing; keeping its last value");
            self.failing = true;
        } else {
            tracing::debug!(store, namespace, watch, error = %e, "dtab store still failing");
        }
    }

    pub(super) fn ok(&mut self) {
        if self.failing {
            let (store, namespace, watch) = (self.store, self.namespace, self.what);
            tracing::info!(store, namespace, watch, "dtab store recovered");
            self.failing = false;
        }
    }
}

/// The backoff of a store watch between failed reads: 100 ms doubling to
/// 2 s, without jitter.
pub(super) fn retry_backoff() -> Backoff {
    ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(2))
        .without_jitter()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_two_seconds_and_starts_over_after_a_reset() {
        let mut backoff = retry_backoff();
        let mut waited = Vec::new();
        for _ in 0..7 {
            let start = tokio::time::Instant::now();
            tokio::time::sleep(backoff.next_pause()).await;
            waited.push(start.elapsed().as_millis());
        }
        assert_eq!(waited, [100, 200, 400, 800, 1600, 2000, 2000]);
        backoff.reset();
        let start = tokio::time::Instant::now();
        tokio::time::sleep(backoff.next_pause()).await;
        assert_eq!(start.elapsed().as_millis(), 100);
    }

    #[test]
    fn without_a_runtime_a_watch_fails_naming_the_store() {
        let watches = Watches::new("io.l5d.zk");
        let ns = Namespace::new("default").unwrap();
        let live = watches.dtab(&ns, |_| async {});
        match &*live.load() {
            Activity::Failed(e) => assert!(e.to_string().contains("io.l5d.zk"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(watches.is_empty(), "nothing runs, so nothing is kept");
    }

    #[tokio::test]
    async fn a_watch_that_never_returns_is_shared_and_ends_with_its_last_handle() {
        let watches = Watches::new("io.l5d.zk");
        let ns = Namespace::new("default").unwrap();
        // What a store's watch task holds: the store, here a token.
        let store = Arc::new(());
        let start = || {
            let store = store.clone();
            watches.dtab(&ns, move |publisher| {
                let store = store.clone();
                async move {
                    let _store = store;
                    publisher.publish(Activity::Ok(None));
                    std::future::pending::<()>().await;
                }
            })
        };
        let (mut first, second) = (start(), start());
        assert!(first.same_source(&second));
        first.changed().await;
        assert_eq!(*second.load(), Activity::Ok(None));
        let list = watches.list(|_| std::future::pending());
        assert!(list.same_source(&watches.list(|_| std::future::pending())));
        drop((first, second, list));
        tokio::time::timeout(Duration::from_secs(5), async {
            while Arc::strong_count(&store) > 1 || !watches.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_corrupt_value_fails_only_a_watch_without_a_good_one() {
        let ns = Namespace::new("default").unwrap();
        let publisher: DtabPublisher = Arc::new(Publisher::new(Activity::Pending));
        publish_read(&publisher, &ns, Read::Corrupt("not a dtab".to_string()));
        assert!(matches!(*publisher.current(), Activity::Failed(_)));
        publish_read(&publisher, &ns, Read::Good(None));
        publish_read(&publisher, &ns, Read::Corrupt("not a dtab".to_string()));
        assert!(matches!(*publisher.current(), Activity::Ok(None)));
        publish_failure(&publisher, &StoreError::Backend("down".to_string()));
        assert!(matches!(*publisher.current(), Activity::Ok(None)));
    }
}
