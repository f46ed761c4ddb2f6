//! What a watching namer (`io.l5d.consul`, `io.l5d.fs`, `io.l5d.k8s`)
//! keeps per name, built on [`LiveCache`]: for each key (a service, a
//! file), what the namer's watch found; the key's address, derived from
//! it; and the tree of each lookup, derived from both. Each of the three
//! is one task shared by everyone who holds it, and stops when nobody
//! does: a lookup holds its tree, a tree and a bound name hold the
//! address, and those hold the watch.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dtab::{NameTree, Path};

use crate::{Activity, Addr, Bound, Live, LiveCache, Lookup, Name, NamingError, Publisher};

type Tree = Activity<NameTree<Name>>;

/// What a namer's watch found for a key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Found {
    /// Nothing yet: lookups are pending, and so is the address.
    Pending,
    /// Nothing ever, only this failure: lookups and the address fail.
    Failed(Arc<str>),
    /// No such thing: lookups are `~`, the address is negative.
    Absent,
    /// Lookups bind to the key's address, which is this.
    Present(Addr),
}

impl Found {
    /// The key's address.
    fn addr(&self) -> Addr {
        match self {
            Found::Pending => Addr::Pending,
            Found::Failed(why) => Addr::Failed(why.clone()),
            Found::Absent => Addr::Neg,
            Found::Present(addr) => addr.clone(),
        }
    }
}

/// The lookup a namer answers when it cannot start watching: there is no
/// tokio runtime to watch on.
pub(crate) fn outside_runtime(kind: &str) -> Lookup {
    Live::constant(Activity::Failed(NamingError::namer(format!(
        "{kind}: lookup outside a tokio runtime"
    ))))
}

/// Counts a watch as started, and as ended however its task ends.
pub(crate) struct Running<'a> {
    ended: &'a AtomicU64,
}

impl<'a> Running<'a> {
    pub(crate) fn start(started: &AtomicU64, ended: &'a AtomicU64) -> Running<'a> {
        started.fetch_add(1, Ordering::Relaxed);
        Running { ended }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// One namer's watched keys, their addresses and their lookups' trees.
pub(crate) struct NamerTable<K> {
    /// The namer's kind, for errors.
    kind: &'static str,
    found: LiveCache<K, Found>,
    addrs: LiveCache<K, Addr>,
    /// By key, bound id and residual.
    trees: LiveCache<(K, Path, Path), Tree>,
}

impl<K> NamerTable<K>
where
    K: Eq + Hash + Clone + Send + 'static,
{
    /// An empty table; nothing outlives its last holder.
    pub(crate) fn new(kind: &'static str) -> NamerTable<K> {
        NamerTable {
            kind,
            found: LiveCache::default(),
            addrs: LiveCache::default(),
            trees: LiveCache::default(),
        }
    }

    /// The live tree of a lookup that names `key`, bound (when found) as
    /// `id` with `residual`. Unless somebody holds `key` already, it starts
    /// as `initial()` and `watch` keeps it up to date, returning once
    /// [`Publisher::closed`] completes.
    pub(crate) fn lookup<W, Fut>(
        &self,
        key: K,
        id: Path,
        residual: Path,
        initial: impl FnOnce() -> Found,
        watch: W,
    ) -> Lookup
    where
        W: Fn(Arc<Publisher<Found>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let found = self.found.try_subscribe(key.clone(), initial, watch);
        let Ok(found) = found else {
            return outside_runtime(self.kind);
        };
        let addr = self
            .addrs
            .try_subscribe(key.clone(), || found.load().addr(), {
                let found = found.clone();
                move |addr| follow_addr(found.clone(), addr)
            });
        let Ok(addr) = addr else {
            return outside_runtime(self.kind);
        };
        let run = {
            let (found, addr) = (found.clone(), addr.clone());
            let (id, residual) = (id.clone(), residual.clone());
            move |tree| {
                let (id, residual) = (id.clone(), residual.clone());
                follow_tree(found.clone(), addr.clone(), id, residual, tree)
            }
        };
        let initial = || tree(&found.load(), &addr, &id, &residual).unwrap_or(Activity::Pending);
        let key = (key, id.clone(), residual.clone());
        match self.trees.try_subscribe(key, initial, run) {
            Ok(tree) => tree,
            Err(_) => outside_runtime(self.kind),
        }
    }

    /// How many keys are watched (looked up, or whose address is held).
    pub(crate) fn len(&self) -> usize {
        self.found.len()
    }
}

/// Keeps a key's address up to date until nobody holds it.
async fn follow_addr(mut found: Live<Found>, addr: Arc<Publisher<Addr>>) {
    loop {
        found.mark_seen();
        addr.publish_if_changed(found.load().addr());
        tokio::select! {
            () = found.changed() => {}
            () = addr.closed() => return,
        }
    }
}

/// Keeps a lookup's tree up to date until nobody holds it.
async fn follow_tree(
    mut found: Live<Found>,
    mut addr: Live<Addr>,
    id: Path,
    residual: Path,
    publisher: Arc<Publisher<Tree>>,
) {
    loop {
        found.mark_seen();
        addr.mark_seen();
        if let Some(tree) = tree(&found.load(), &addr, &id, &residual) {
            publisher.publish_if_changed(tree);
        }
        tokio::select! {
            () = found.changed() => {}
            () = addr.changed() => {}
            () = publisher.closed() => return,
        }
    }
}

/// The tree of a lookup, given what was found; `None` while it would bind
/// to an address that does not show what was found yet, so that a binding
/// that sees a new tree already sees its endpoints.
fn tree(found: &Found, addr: &Live<Addr>, id: &Path, residual: &Path) -> Option<Tree> {
    Some(match found {
        Found::Pending => Activity::Pending,
        Found::Failed(why) => Activity::Failed(NamingError::Namer(why.clone())),
        Found::Absent => Activity::Ok(NameTree::Neg),
        Found::Present(want) if *addr.load() != *want => return None,
        Found::Present(_) => {
            let bound = Bound::new(id.clone(), residual.clone(), addr.clone());
            Activity::Ok(NameTree::Leaf(Name::Bound(bound)))
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;
    use crate::Endpoint;

    /// A table whose watch of any key publishes what `found` says.
    fn lookup(table: &NamerTable<u8>, found: &watch::Sender<Found>, residual: &str) -> Lookup {
        let source = found.subscribe();
        let watch = move |found: Arc<Publisher<Found>>| {
            let mut source = source.clone();
            async move {
                loop {
                    found.publish(source.borrow_and_update().clone());
                    tokio::select! {
                        _ = source.changed() => {}
                        () = found.closed() => return,
                    }
                }
            }
        };
        let id = Path::read("/#/test/web").unwrap();
        let residual = Path::read(residual).unwrap();
        table.lookup(0, id, residual, || Found::Pending, watch)
    }

    async fn until(tree: &mut Lookup, ok: impl Fn(&Tree) -> bool) -> Arc<Tree> {
        let wait = async {
            loop {
                let now = tree.load();
                if ok(&now) {
                    return now;
                }
                tree.changed().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap()
    }

    fn leaf(tree: &Tree) -> Option<&Bound> {
        match tree {
            Activity::Ok(NameTree::Leaf(Name::Bound(bound))) => Some(bound),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_new_leaf_shows_its_endpoints_and_all_stops_with_the_last_holder() {
        let table = NamerTable::new("test");
        let (found, _) = watch::channel(Found::Pending);
        let mut tree = lookup(&table, &found, "/a");
        let mut other = lookup(&table, &found, "/b");
        for port in 1..=50 {
            found.send_replace(Found::Absent);
            until(&mut tree, |t| *t == Activity::Ok(NameTree::Neg)).await;
            let addr = Addr::bound(vec![Endpoint::new(([127, 0, 0, 1], port).into())]);
            found.send_replace(Found::Present(addr.clone()));
            let now = until(&mut tree, |t| leaf(t).is_some()).await;
            assert_eq!(*leaf(&now).unwrap().addr.load(), addr);
        }
        let now = until(&mut other, |t| leaf(t).is_some()).await;
        let held = leaf(&now).unwrap().addr.clone();
        assert!(held.same_source(&leaf(&tree.load()).unwrap().addr));
        drop((tree, other, now));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(table.len(), 1, "a held address keeps its key watched");

        drop(held);
        let stopped = async {
            while table.len() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .unwrap();
    }

    #[test]
    fn no_leaf_until_its_address_shows_what_was_found() {
        let addr = Addr::bound(vec![Endpoint::new(([127, 0, 0, 1], 80).into())]);
        let found = Found::Present(addr.clone());
        let publisher = Publisher::new(Addr::Neg);
        let live = publisher.subscribe();
        let (id, residual) = (Path::read("/#/test/web").unwrap(), Path::empty());
        assert!(tree(&found, &live, &id, &residual).is_none());
        publisher.publish(addr);
        let now = tree(&found, &live, &id, &residual).unwrap();
        assert!(leaf(&now).is_some_and(|bound| bound.addr.same_source(&live)));
    }

    #[test]
    fn outside_a_runtime_a_lookup_fails() {
        let table = NamerTable::new("test");
        let (found, _) = watch::channel(Found::Pending);
        let tree = lookup(&table, &found, "/a");
        assert!(matches!(&*tree.load(), Activity::Failed(_)));
        assert_eq!(table.len(), 0);
    }
}
