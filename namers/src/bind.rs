//! The pure core of binding: Finagle's `Namer.bind` and Linkerd's
//! configured-namers lookup, as functions over snapshots.
//!
//! Nothing here waits or subscribes. A lookup function answers each path's
//! *current* state; the reactive shell ([`crate::Interpreter`]) records which
//! lookups a result depended on and runs the core again when one changes.

use dtab::{Dtab, NameTree, Path, Weighted};

use crate::{Activity, Bound, Name, NamingError};

/// Finagle's default limit on lookups per binding.
pub const DEFAULT_MAX_DEPTH: usize = 100;

/// A namer's current answer for a path (the snapshot of a [`crate::Lookup`]).
pub type Snapshot = Activity<NameTree<Name>>;

/// Finagle's `Namer.bind`: resolves every path leaf of `tree` through
/// `lookup` until only bound names remain.
///
/// Alternatives fall through only on `~`; a pending or failed lookup stops
/// them. Union branches that fail are ignored while another branch answers.
/// Each lookup counts towards `max_depth`. The result has no Alt nodes and is
/// simplified.
pub fn bind_tree(
    tree: &NameTree<Name>,
    max_depth: usize,
    lookup: &mut dyn FnMut(&Path) -> Snapshot,
) -> Activity<NameTree<Bound>> {
    Binder { max_depth, lookup }
        .bind(0, None, tree)
        .map(|t| t.simplified())
}

struct Binder<'a> {
    max_depth: usize,
    lookup: &'a mut dyn FnMut(&Path) -> Snapshot,
}

impl Binder<'_> {
    fn bind(
        &mut self,
        depth: usize,
        weight: Option<f64>,
        tree: &NameTree<Name>,
    ) -> Activity<NameTree<Bound>> {
        if depth > self.max_depth {
            return Activity::Failed(NamingError::MaxDepth {
                max: self.max_depth,
            });
        }
        match tree {
            NameTree::Leaf(Name::Path(path)) => match (self.lookup)(path) {
                Activity::Ok(next) => self.bind(depth + 1, weight, &next),
                Activity::Pending => Activity::Pending,
                Activity::Failed(e) => Activity::Failed(e),
            },
            NameTree::Leaf(Name::Bound(bound)) => {
                let mut bound = bound.clone();
                if weight.is_some() {
                    bound.weight = weight;
                }
                Activity::Ok(NameTree::Leaf(bound))
            }
            NameTree::Fail => Activity::Ok(NameTree::Fail),
            NameTree::Neg => Activity::Ok(NameTree::Neg),
            NameTree::Empty => Activity::Ok(NameTree::Empty),
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
        if !answered.is_empty() {
            Activity::Ok(NameTree::Union(answered).simplified())
        } else if let Some(e) = first_failure {
            Activity::Failed(e)
        } else {
            Activity::Pending
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Addr, Live};

    fn tree(s: &str) -> NameTree<Name> {
        NameTree::read(s)
            .unwrap()
            .map(&mut |p: &Path| Name::Path(p.clone()))
    }

    fn bound(id: &str) -> NameTree<Name> {
        let id = Path::read(id).unwrap();
        NameTree::Leaf(Name::Bound(Bound::new(
            id,
            Path::empty(),
            Live::constant(Addr::Pending),
        )))
    }

    /// A lookup that binds `/b/<x>` to a bound `/b/<x>` and rewrites `/l/<n>`
    /// into `/l/<n+1>` forever.
    fn lookup(path: &Path) -> Snapshot {
        let show = path.show();
        if show.starts_with("/b/") {
            Activity::Ok(bound(&show))
        } else if let Some(n) = show.strip_prefix("/l/") {
            let n: usize = n.parse().unwrap();
            Activity::Ok(tree(&format!("/l/{}", n + 1)))
        } else if show == "/pending" {
            Activity::Pending
        } else if show == "/error" {
            Activity::Failed(NamingError::namer("boom"))
        } else {
            Activity::Ok(NameTree::Neg)
        }
    }

    fn bind(s: &str) -> Activity<NameTree<Bound>> {
        bind_tree(&tree(s), DEFAULT_MAX_DEPTH, &mut lookup)
    }

    fn shown(a: Activity<NameTree<Bound>>) -> String {
        match a {
            Activity::Ok(t) => t.show(),
            Activity::Pending => "pending".into(),
            Activity::Failed(e) => format!("failed: {e}"),
        }
    }

    #[test]
    fn alt_falls_through_only_on_neg() {
        assert_eq!(shown(bind("/nothing | /b/1")), "/b/1");
        assert_eq!(shown(bind("! | /b/1")), "!");
        assert_eq!(shown(bind("$ | /b/1")), "$");
        assert_eq!(shown(bind("/pending | /b/1")), "pending");
        assert_eq!(shown(bind("/error | /b/1")), "failed: boom");
        assert_eq!(shown(bind("(! & !) | /b/1")), "/b/1");
    }

    #[test]
    fn union_ignores_failed_branches_while_one_answers() {
        assert_eq!(shown(bind("/error & /b/1")), "/b/1");
        assert_eq!(shown(bind("/pending & /error")), "failed: boom");
        assert_eq!(shown(bind("/pending & /pending")), "pending");
        assert_eq!(shown(bind("2*/b/1 & 3*/b/2")), "2.00*/b/1 & 3.00*/b/2");
    }

    #[test]
    fn union_weights_reach_the_bound_leaves() {
        let Activity::Ok(NameTree::Union(branches)) = bind("2*(/nothing | /b/1) & /b/2") else {
            panic!("not a union");
        };
        let weights: Vec<_> = branches
            .iter()
            .map(|w| match &w.tree {
                NameTree::Leaf(b) => b.weight,
                _ => None,
            })
            .collect();
        assert_eq!(weights, vec![Some(2.0), Some(1.0)]);
        let Activity::Ok(NameTree::Leaf(b)) = bind("/b/1") else {
            panic!()
        };
        assert_eq!(b.weight, None);
    }

    #[test]
    fn depth_counts_lookups() {
        let chain = |n: usize| {
            bind_tree(&tree("/l/0"), n, &mut |p: &Path| {
                // /l/k rewrites to /l/k+1 until /l/5, which is bound.
                if p.show() == "/l/5" {
                    Activity::Ok(bound("/b/done"))
                } else {
                    lookup(p)
                }
            })
        };
        // Six lookups: /l/0 .. /l/5.
        assert_eq!(shown(chain(6)), "/b/done");
        assert_eq!(
            shown(chain(5)),
            "failed: Max recursion level: 5 reached in Namer lookup"
        );
    }

    #[test]
    fn dtab_answers_first_and_only_exact_neg_reaches_the_namers() {
        let dtab = Dtab::read("/s=>/b/x;/t=>~;/u=>~;/u=>~").unwrap();
        let mut namers = |p: &Path| Activity::Ok(tree(&format!("/namer{}", p.show())));
        let show = |a: Snapshot| match a {
            Activity::Ok(t) => t.show(),
            _ => "?".into(),
        };
        assert_eq!(
            show(dtab_then(&dtab, &Path::read("/s/1").unwrap(), &mut namers)),
            "/b/x/1"
        );
        assert_eq!(
            show(dtab_then(&dtab, &Path::read("/t").unwrap(), &mut namers)),
            "/namer/t"
        );
        assert_eq!(
            show(dtab_then(&dtab, &Path::read("/u").unwrap(), &mut namers)),
            "~ | ~"
        );
    }
}
