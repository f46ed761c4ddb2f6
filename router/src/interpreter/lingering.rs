//! Keeps a binding made with the router's own namers (the default and
//! `io.l5d.fs` interpreters) up to date for `bindingCache.idleTtlSecs`
//! after the binding cache lets go of it. The binding holds the namers'
//! watches (Consul, Kubernetes, ZooKeeper); without this, a name evicted or
//! idle-expired during an outage of that backend would be bound afresh
//! against a backend that cannot answer, and fail, instead of getting its
//! last good endpoints. `io.l5d.namerd.http` keeps its own watches the same
//! way.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use futures_util::future::BoxFuture;
use namers::{Activity, Binding, Bound, LiveCache, Publisher};

use super::RouterNaming;

/// A binding's key: the whole dtab it was bound through, and the name.
type BindKey = (String, Path);

/// An interpreter whose bindings outlive their last user for a while.
pub struct Lingering {
    inner: Arc<dyn RouterNaming>,
    bindings: LiveCache<BindKey, Activity<NameTree<Bound>>>,
}

impl Lingering {
    /// Wraps `inner`, keeping each binding `idle_ttl` after its last user
    /// leaves, at most `max_idle` such bindings at a time (the least
    /// recently asked for go first, so requests that each carry a new
    /// `l5d-dtab` cannot grow the router).
    pub fn new(inner: Arc<dyn RouterNaming>, idle_ttl: Duration, max_idle: usize) -> Lingering {
        Lingering {
            inner,
            bindings: LiveCache::with_limits(idle_ttl, max_idle),
        }
    }

    /// How many bindings are kept up to date (used or lingering).
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether no binding is kept.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

impl RouterNaming for Lingering {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        let key = (dtab.show(), path.clone());
        // A new binding starts with the inner binding's state as it is (a
        // name bound without waiting is answered without a task hop); the
        // relay takes that binding over.
        let first: Arc<Mutex<Option<Binding>>> = Arc::default();
        let initial = || {
            let binding = self.inner.bind(dtab, path);
            let state = (*binding.load()).clone();
            *lock(&first) = Some(binding);
            state
        };
        let inner = self.inner.clone();
        let (dtab, path) = (dtab.clone(), path.clone());
        let relayed = first.clone();
        self.bindings.subscribe(key, initial, move |publisher| {
            let binding = lock(&relayed)
                .take()
                .unwrap_or_else(|| inner.bind(&dtab, &path));
            relay(binding, publisher)
        })
    }

    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        self.inner.delegate(dtab, path)
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        self.inner.ready()
    }

    fn list_stats(&self, interpreter: &mut namers::telemetry::Scope<'_>) {
        self.inner.list_stats(interpreter);
    }
}

fn lock<T>(slot: &Mutex<T>) -> MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Publishes each state of `binding` until nobody (the cache's own handle
/// included) watches `publisher` any more.
async fn relay(mut binding: Binding, publisher: Arc<Publisher<Activity<NameTree<Bound>>>>) {
    loop {
        binding.mark_seen();
        publisher.publish_if_changed((*binding.load()).clone());
        tokio::select! {
            () = binding.changed() => {}
            () = publisher.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use futures_util::FutureExt;
    use namers::{Addr, Live};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An interpreter that binds every name to one leaf whose state the
    /// test sets, counting the bindings it makes.
    struct Scripted {
        state: Publisher<Activity<NameTree<Bound>>>,
        made: AtomicUsize,
    }

    impl RouterNaming for Scripted {
        fn bind(&self, _: &Dtab, _: &Path) -> Binding {
            self.made.fetch_add(1, Ordering::SeqCst);
            self.state.subscribe()
        }

        fn delegate<'a>(
            &'a self,
            _: &'a Dtab,
            _: &'a Path,
        ) -> BoxFuture<'a, Result<serde_json::Value, String>> {
            async { Ok(serde_json::Value::Null) }.boxed()
        }
    }

    fn leaf(port: u16) -> Activity<NameTree<Bound>> {
        let addr = Live::constant(Addr::bound(vec![namers::Endpoint::new(
            format!("127.0.0.1:{port}").parse().unwrap(),
        )]));
        let id = Path::read("/#/io.l5d.consul/dc1/web").unwrap();
        Activity::Ok(NameTree::Leaf(Bound::new(id, Path::empty(), addr)))
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_binding_let_go_by_the_cache_keeps_its_last_good_tree_through_an_outage() {
        let scripted = Arc::new(Scripted {
            state: Publisher::new(leaf(8080)),
            made: AtomicUsize::new(0),
        });
        let lingering = Lingering::new(scripted.clone(), Duration::from_secs(600), 100);
        let (dtab, name) = (
            Dtab::read("/svc=>/#/io.l5d.consul/dc1").unwrap(),
            Path::read("/svc/web").unwrap(),
        );

        let first = lingering.bind(&dtab, &name);
        settle().await;
        assert_eq!(*first.load(), leaf(8080));
        drop(first);

        // The backend goes away while nobody uses the name: the namer's
        // watch (still running) keeps its last answer.
        tokio::time::advance(Duration::from_secs(120)).await;
        settle().await;
        let again = lingering.bind(&dtab, &name);
        assert_eq!(*again.load(), leaf(8080), "the last good tree at once");
        assert_eq!(scripted.made.load(Ordering::SeqCst), 1, "not bound afresh");

        // Changes still reach a returning user.
        scripted.state.publish(leaf(9090));
        settle().await;
        assert_eq!(*again.load(), leaf(9090));
        drop(again);

        // Past the idle TTL the binding, and the namer's watch, are let go.
        for _ in 0..20 {
            tokio::time::advance(Duration::from_secs(60)).await;
            settle().await;
        }
        assert!(lingering.is_empty());
        assert_eq!(
            scripted.state.subscriber_count(),
            0,
            "the inner binding is dropped"
        );
    }
}
