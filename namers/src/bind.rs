//! The pure core of binding: Finagle's `Namer.bind` and Linkerd's
//! configured-namers lookup, as functions over snapshots.
//!
//! Nothing here waits or subscribes. A lookup function answers each path's
//! *current* state; the reactive shell ([`crate::Interpreter`]) records which
//! lookups a result depended on and runs the core again when one changes.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use dtab::{Dtab, NameTree, Path, Weighted};

use crate::{Activity, Bound, Name, NamingError};

mod budget;
#[cfg(test)]
mod tests;

pub(crate) use budget::Budget;
pub use budget::{
    BindLimits, DEFAULT_MAX_BIND_TIME, DEFAULT_MAX_DEPTH, DEFAULT_MAX_LEAVES, DEFAULT_MAX_LOOKUPS,
    Exceeded,
};

/// A namer's current answer for a path (the snapshot of a [`crate::Lookup`]).
pub type Snapshot = Activity<NameTree<Name>>;

/// Finagle's `Namer.bind`: resolves every path leaf of `tree` through
/// `lookup` until only bound names remain.
///
/// Alternatives fall through only on `~`; a pending or failed lookup stops
/// them. Union branches that fail are ignored while another branch answers.
/// Each lookup counts towards `limits.max_depth`. The result has no Alt
/// nodes and is simplified.
///
/// The work is bounded by `limits` (see [`BindLimits`]): `lookup` is called
/// once per distinct path, a path reached again at the same depth and
/// weight reuses its result, and going over a limit fails the whole bind
/// with [`NamingError::OverBudget`].
pub fn bind_tree(
    tree: &NameTree<Name>,
    limits: &BindLimits,
    lookup: &mut dyn FnMut(&Path) -> Snapshot,
) -> Activity<NameTree<Bound>> {
    bind_tree_timed(tree, limits, &Instant::now, lookup)
}

/// [`bind_tree`] with the clock given, for tests of the time limit.
pub(crate) fn bind_tree_timed(
    tree: &NameTree<Name>,
    limits: &BindLimits,
    clock: &dyn Fn() -> Instant,
    lookup: &mut dyn FnMut(&Path) -> Snapshot,
) -> Activity<NameTree<Bound>> {
    let mut binder = Binder {
        max_depth: limits.max_depth,
        budget: Budget::new(limits, clock),
        lookup,
        paths: HashMap::new(),
    };
    let result = binder.bind(0, None, tree);
    match binder.budget.check() {
        Err(exceeded) => Activity::Failed(Budget::error(&tree.show(), exceeded)),
        Ok(()) => result.map(|t| t.simplified()),
    }
}

struct Binder<'a> {
    max_depth: usize,
    budget: Budget<'a>,
    lookup: &'a mut dyn FnMut(&Path) -> Snapshot,
    /// What is known of each path met in this bind.
    paths: HashMap<Path, PathMemo>,
}

/// A path's lookup, made once per bind, and what binding it gave.
struct PathMemo {
    looked_up: Rc<Snapshot>,
    /// One entry per depth and weight the path was bound at: the same path
    /// at another depth or weight can give another result (the depth
    /// limit, the weight on its leaves). Usually just one.
    bound: Vec<Reuse>,
}

/// A path bound at one depth and weight (as bits). The result is kept
/// only from the second binding on: most paths are met once, and copying
/// every result would cost them all. Binding a repeated path twice is
/// still cheap, since the second time its own repeated paths are kept.
struct Reuse {
    depth: usize,
    weight: Option<u64>,
    /// The result and the leaves it built, once kept.
    kept: Option<(Activity<NameTree<Bound>>, usize)>,
}

impl Binder<'_> {
    fn bind(
        &mut self,
        depth: usize,
        weight: Option<f64>,
        tree: &NameTree<Name>,
    ) -> Activity<NameTree<Bound>> {
        if let Err(exceeded) = self.budget.check() {
            return spent(exceeded);
        }
        if depth > self.max_depth {
            return Activity::Failed(NamingError::MaxDepth {
                max: self.max_depth,
            });
        }
        match tree {
            NameTree::Leaf(Name::Path(path)) => self.bind_path(depth, weight, path),
            NameTree::Leaf(Name::Bound(bound)) => {
                if let Err(exceeded) = self.budget.leaves(1) {
                    return spent(exceeded);
                }
                let mut bound = bound.clone();
                if weight.is_some() {
                    bound.weight = weight;
                }
                Activity::Ok(NameTree::Leaf(bound))
            }
            NameTree::Fail => Activity::Ok(NameTree::Fail),
            NameTree::Neg => Activity::Ok(NameTree::Neg),
            NameTree::Empty => {
                if let Err(exceeded) = self.budget.leaves(1) {
                    return spent(exceeded);
                }
                Activity::Ok(NameTree::Empty)
            }
            NameTree::Union(branches) => match branches.as_slice() {
                [] => Activity::Ok(NameTree::Neg),
                [only] => self.bind(depth, Some(only.weight), &only.tree),
                _ => self.bind_union(depth, branches),
            },
            NameTree::Alt(alts) => match alts.as_slice() {
                [] => Activity::Ok(NameTree::Neg),
                [only] => self.bind(depth, weight, only),
                _ => {
                    for alt in alts {
                        match self.bind(depth, weight, alt) {
                            Activity::Ok(NameTree::Neg) => continue,
                            other => return other,
                        }
                    }
                    Activity::Ok(NameTree::Neg)
                }
            },
        }
    }

    /// One lookup step, made once per path and reused per depth and weight.
    fn bind_path(
        &mut self,
        depth: usize,
        weight: Option<f64>,
        path: &Path,
    ) -> Activity<NameTree<Bound>> {
        if let Err(exceeded) = self.budget.lookup() {
            return spent(exceeded);
        }
        let weight_bits = weight.map(f64::to_bits);
        let at = |r: &Reuse| r.depth == depth && r.weight == weight_bits;
        let mut keep = false;
        let next = match self.paths.get_mut(path) {
            Some(memo) => {
                match memo.bound.iter().find(|r| at(r)) {
                    Some(Reuse {
                        kept: Some((result, leaves)),
                        ..
                    }) => {
                        return match self.budget.leaves(*leaves) {
                            Ok(()) => result.clone(),
                            Err(exceeded) => spent(exceeded),
                        };
                    }
                    Some(_) => keep = true,
                    None => memo.bound.push(Reuse {
                        depth,
                        weight: weight_bits,
                        kept: None,
                    }),
                }
                memo.looked_up.clone()
            }
            None => {
                let next = Rc::new((self.lookup)(path));
                let memo = PathMemo {
                    looked_up: next.clone(),
                    bound: vec![Reuse {
                        depth,
                        weight: weight_bits,
                        kept: None,
                    }],
                };
                self.paths.insert(path.clone(), memo);
                next
            }
        };
        let before = self.budget.leaves_so_far();
        let result = match &*next {
            Activity::Ok(next) => self.bind(depth + 1, weight, next),
            Activity::Pending => Activity::Pending,
            Activity::Failed(e) => Activity::Failed(e.clone()),
        };
        if keep
            && self.budget.check().is_ok()
            && let Some(reuse) = self
                .paths
                .get_mut(path)
                .and_then(|memo| memo.bound.iter_mut().find(|r| at(r)))
        {
            let leaves = self.budget.leaves_so_far() - before;
            reuse.kept = Some((result.clone(), leaves));
        }
        result
    }

    /// Every branch is bound; any answer wins over failures and pending
    /// branches, which are then left out.
    fn bind_union(
        &mut self,
        depth: usize,
        branches: &[Weighted<Name>],
    ) -> Activity<NameTree<Bound>> {
        let mut answered = Vec::new();
        let mut first_failure = None;
        for branch in branches {
            match self.bind(depth, Some(branch.weight), &branch.tree) {
                Activity::Ok(tree) => answered.push(Weighted::new(branch.weight, tree)),
                Activity::Failed(e) => {
                    first_failure.get_or_insert(e);
                }
                Activity::Pending => {}
            }
        }
        if let Err(exceeded) = self.budget.check() {
            return spent(exceeded);
        }
        if !answered.is_empty() {
            Activity::Ok(NameTree::Union(answered).simplified())
        } else if let Some(e) = first_failure {
            Activity::Failed(e)
        } else {
            Activity::Pending
        }
    }
}

/// What a step returns once the budget is spent; [`bind_tree_timed`]
/// names the bound name in the error it returns instead.
fn spent<T>(exceeded: Exceeded) -> Activity<T> {
    Activity::Failed(Budget::error("", exceeded))
}

/// One step of Linkerd's configured-namers interpreter: the dtab first; only
/// when it answers exactly `~` (no dentry matched, or the one that did says
/// `~`) does the path go to the namers.
pub fn dtab_then(dtab: &Dtab, path: &Path, namers: &mut dyn FnMut(&Path) -> Snapshot) -> Snapshot {
    match dtab.lookup(path) {
        NameTree::Neg => namers(path),
        tree => Activity::Ok(tree.map(&mut |p: &Path| Name::Path(p.clone()))),
    }
}
