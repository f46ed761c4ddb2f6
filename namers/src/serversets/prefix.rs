//! Binding the longest prefix of a path that names something, live.
//!
//! Like Linkerd's ZooKeeper namers, a lookup of `/a/b/c` tries `/a/b/c`,
//! then `/a/b` with residual `/c`, then `/a` with residual `/b/c`, taking
//! the first whose address is not negative. Linkerd decides once, at
//! lookup; here the choice follows the addresses: a longer prefix that
//! comes into being later takes over, and a chosen one that goes negative
//! falls back to a shorter one. Shorter prefixes are only watched while
//! every longer one is negative.

use std::sync::Arc;

use dtab::{Label, NameTree, Path};
use futures_util::future::select_all;

use crate::namer_table::outside_runtime;
use crate::{Activity, Addr, Bound, Live, LiveCache, Lookup, Name, NamingError, Publisher};

type Tree = Activity<NameTree<Name>>;

/// Where the addresses of a path's prefixes come from.
pub(crate) trait AddrSource: Send + Sync + 'static {
    /// The live address named by these leading elements of a path, or
    /// `None` when they cannot name anything (then they count as negative).
    fn addr_of(&self, elems: &[Label]) -> Option<Live<Addr>>;
}

/// The live trees of one namer's lookups, shared by path.
pub(crate) struct Trees {
    kind: &'static str,
    prefix: Path,
    lookups: LiveCache<Path, Tree>,
}

impl Trees {
    /// Trees whose bound ids start with `prefix` (e.g. `/#/io.l5d.serversets`).
    pub(crate) fn new(kind: &'static str, prefix: Path) -> Trees {
        Trees {
            kind,
            prefix,
            lookups: LiveCache::default(),
        }
    }

    /// How many lookups are live.
    pub(crate) fn count(&self) -> usize {
        self.lookups.len()
    }

    /// The live tree of `path` (given without the namer's prefix).
    pub(crate) fn lookup(&self, source: Arc<dyn AddrSource>, path: &Path) -> Lookup {
        if path.is_empty() {
            return Live::constant(Activity::Ok(NameTree::Neg));
        }
        let run = {
            let (prefix, path) = (self.prefix.clone(), path.clone());
            move |publisher| keep_choosing(prefix.clone(), source.clone(), path.clone(), publisher)
        };
        let tree = self
            .lookups
            .try_subscribe(path.clone(), || Activity::Pending, run);
        tree.unwrap_or_else(|_| outside_runtime(self.kind))
    }
}

/// Keeps one lookup's tree current until nobody holds it.
async fn keep_choosing(
    prefix: Path,
    source: Arc<dyn AddrSource>,
    path: Path,
    publisher: Arc<Publisher<Tree>>,
) {
    let run = async {
        let elems = path.elems();
        // The address of the first `k` elements, at index `k`.
        let mut held: Vec<Option<Live<Addr>>> = (0..=elems.len()).map(|_| None).collect();
        loop {
            let (tree, chosen) = choose(&prefix, &path, source.as_ref(), &mut held);
            // Shorter prefixes are not needed while a longer one answers.
            for slot in held.iter_mut().take(chosen) {
                *slot = None;
            }
            publisher.publish_if_changed(tree);
            let waits: Vec<_> = held
                .iter_mut()
                .flatten()
                .map(|live| Box::pin(live.changed()))
                .collect();
            if waits.is_empty() {
                // Nothing can ever change the answer.
                std::future::pending::<()>().await;
            }
            select_all(waits).await;
        }
    };
    tokio::select! {
        () = run => {}
        () = publisher.closed() => {}
    }
}

/// The tree for the longest prefix that is not negative, and its length
/// (0 when every prefix is negative).
fn choose(
    prefix: &Path,
    path: &Path,
    source: &dyn AddrSource,
    held: &mut [Option<Live<Addr>>],
) -> (Tree, usize) {
    let elems = path.elems();
    for k in (1..=elems.len()).rev() {
        if held[k].is_none() {
            held[k] = source.addr_of(&elems[..k]);
        }
        let Some(live) = &mut held[k] else {
            continue;
        };
        live.mark_seen();
        let tree = match &*live.load() {
            Addr::Neg => continue,
            Addr::Pending => Activity::Pending,
            Addr::Failed(why) => Activity::Failed(NamingError::Namer(why.clone())),
            Addr::Bound(_) => {
                let id = prefix.concat_labels(&elems[..k]);
                let bound = Bound::new(id, path.drop_first(k), live.clone());
                Activity::Ok(NameTree::Leaf(Name::Bound(bound)))
            }
        };
        return (tree, k);
    }
    (Activity::Ok(NameTree::Neg), 0)
}
