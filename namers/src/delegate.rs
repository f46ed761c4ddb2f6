//! Explaining a resolution: Linkerd's delegator (the dtab playground and
//! namerd's `/delegate`), which explores every alternative instead of
//! picking one.

use std::collections::HashMap;
use std::time::Instant;

use dtab::{DelegateTree, Dentry, Dtab, NameTree, Path, WeightedDelegate};

use crate::bind::{Budget, Exceeded};
use crate::interpreter::Deps;
use crate::{Activity, Interpreter, Name, NamingError};

/// Linkerd's delegator has its own fixed depth limit.
const DELEGATE_MAX_DEPTH: usize = 100;

/// An explanation tree whose leaves are bound names.
pub type Delegation = DelegateTree<Name>;

impl Interpreter {
    /// Explains how `path` resolves through `dtab`: every dentry that
    /// matched, every alternative, and what the namers answered. Waits for
    /// namers that have not answered yet (callers bound the wait). The work
    /// is bounded as a bind's is ([`crate::bind::BindLimits`]); every leaf
    /// of the explanation counts towards the leaf limit.
    pub async fn delegate(&self, dtab: &Dtab, path: &Path) -> Result<Delegation, NamingError> {
        let mut deps = Deps::default();
        loop {
            let result = self.delegate_once(dtab, path, &mut deps);
            let over_budget = matches!(result, Err(NamingError::OverBudget { .. }));
            if over_budget || !deps.any_pending() {
                return result;
            }
            deps.any_changed().await;
        }
    }

    /// One explanation against the current state of every lookup.
    pub(crate) fn delegate_once(
        &self,
        dtab: &Dtab,
        path: &Path,
        deps: &mut Deps,
    ) -> Result<Delegation, NamingError> {
        deps.begin();
        let root = DelegateTree::Leaf {
            path: Path::empty(),
            dentry: Dentry::nop(),
            value: Name::Path(path.clone()),
        };
        let mut delegator = Delegator {
            interpreter: self,
            dtab,
            deps: &mut *deps,
            budget: Budget::new(self.bind_limits(), &Instant::now),
            steps: HashMap::new(),
        };
        let result = delegator.bind(0, root);
        let budget = delegator.budget.check();
        deps.finish();
        match budget {
            Err(exceeded) => Err(Budget::error(&path.show(), exceeded)),
            Ok(()) => result.map(|tree| tree.simplified()),
        }
    }
}

/// A path step met at one depth through one dentry.
struct Step {
    depth: usize,
    dentry: Dentry,
    /// The explanation and the leaves it built, once kept.
    kept: Option<(Result<Delegation, NamingError>, usize)>,
}

struct Delegator<'a> {
    interpreter: &'a Interpreter,
    dtab: &'a Dtab,
    deps: &'a mut Deps,
    budget: Budget<'a>,
    /// Each path step explained, by path, then by depth and by the dentry
    /// that led to it (which the explanation's nodes carry). As in binding,
    /// an explanation is kept from the second time its step is met.
    steps: HashMap<Path, Vec<Step>>,
}

impl Delegator<'_> {
    /// Linkerd's `delegateLookup`: the node for one step of `path`.
    fn lookup(&mut self, dentry: &Dentry, path: &Path) -> Delegation {
        let mut matches: Vec<Delegation> = self
            .dtab
            .iter()
            .rev()
            .filter(|d| d.prefix.matches(path))
            .map(|d| {
                let residual = &path.elems()[d.prefix.len()..];
                let tree = d
                    .dst
                    .map(&mut |leaf: &Path| Name::Path(leaf.concat_labels(residual)));
                DelegateTree::from_name_tree(path, d, &tree)
            })
            .collect();
        let node = match matches.len() {
            0 => DelegateTree::Neg {
                path: path.clone(),
                dentry: dentry.clone(),
            },
            1 => DelegateTree::Delegate {
                path: path.clone(),
                dentry: dentry.clone(),
                tree: Box::new(matches.remove(0)),
            },
            _ => DelegateTree::Alt {
                path: path.clone(),
                dentry: dentry.clone(),
                trees: matches,
            },
        };
        if !matches!(node, DelegateTree::Neg { .. }) {
            return node;
        }
        match self.interpreter.lookup_namers(self.deps, path) {
            Activity::Ok(NameTree::Neg) | Activity::Pending => node,
            Activity::Ok(tree) => DelegateTree::from_name_tree(path, dentry, &tree),
            Activity::Failed(e) => DelegateTree::Exception {
                path: path.clone(),
                dentry: dentry.clone(),
                message: e.to_string(),
            },
        }
    }

    /// Linkerd's `delegateBind`: expands every path leaf, exploring every
    /// alternative and union branch.
    fn bind(&mut self, depth: usize, tree: Delegation) -> Result<Delegation, NamingError> {
        self.budget.check().map_err(spent)?;
        if depth > DELEGATE_MAX_DEPTH {
            return Err(NamingError::DelegateMaxDepth);
        }
        Ok(match tree {
            DelegateTree::Leaf {
                dentry,
                value: Name::Path(p),
                ..
            } => self.bind_step(depth, dentry, p)?,
            DelegateTree::Delegate { path, dentry, tree } => DelegateTree::Delegate {
                path,
                dentry,
                tree: Box::new(self.bind(depth, *tree)?),
            },
            DelegateTree::Alt {
                path,
                dentry,
                mut trees,
            } => match trees.len() {
                0 => DelegateTree::Neg { path, dentry },
                1 => {
                    let only = self.bind(depth, trees.remove(0))?;
                    DelegateTree::Delegate {
                        path,
                        dentry,
                        tree: Box::new(only),
                    }
                }
                _ => {
                    let trees = trees
                        .into_iter()
                        .map(|t| self.bind_or_exception(depth, t, &path, &dentry))
                        .collect();
                    DelegateTree::Alt {
                        path,
                        dentry,
                        trees,
                    }
                }
            },
            DelegateTree::Union {
                path,
                dentry,
                mut trees,
            } => match trees.len() {
                0 => DelegateTree::Neg { path, dentry },
                1 => {
                    let only = self.bind(depth, trees.remove(0).tree)?;
                    DelegateTree::Delegate {
                        path,
                        dentry,
                        tree: Box::new(only),
                    }
                }
                _ => {
                    let trees = trees
                        .into_iter()
                        .map(|w| WeightedDelegate {
                            weight: w.weight,
                            tree: self.bind_or_exception(depth, w.tree, &path, &dentry),
                        })
                        .collect();
                    DelegateTree::Union {
                        path,
                        dentry,
                        trees,
                    }
                }
            },
            done => {
                self.budget.leaves(1).map_err(spent)?;
                done
            }
        })
    }

    /// One lookup step, explained once per path, depth and dentry.
    fn bind_step(
        &mut self,
        depth: usize,
        dentry: Dentry,
        path: Path,
    ) -> Result<Delegation, NamingError> {
        self.budget.lookup().map_err(spent)?;
        let seen = self.steps.entry(path.clone()).or_default();
        let at = |s: &Step| s.depth == depth && s.dentry == dentry;
        let keep = match seen.iter().find(|s| at(s)) {
            Some(Step {
                kept: Some((result, leaves)),
                ..
            }) => {
                self.budget.leaves(*leaves).map_err(spent)?;
                return result.clone();
            }
            Some(_) => true,
            None => {
                seen.push(Step {
                    depth,
                    dentry: dentry.clone(),
                    kept: None,
                });
                false
            }
        };
        let before = self.budget.leaves_so_far();
        let next = self.lookup(&dentry, &path);
        let result = self.bind(depth + 1, next);
        if keep
            && self.budget.check().is_ok()
            && let Some(step) = self
                .steps
                .get_mut(&path)
                .and_then(|seen| seen.iter_mut().find(|s| at(s)))
        {
            let leaves = self.budget.leaves_so_far() - before;
            step.kept = Some((result.clone(), leaves));
        }
        result
    }

    /// A failure inside one alternative becomes an Exception node carrying
    /// the alternative's parent path and dentry.
    fn bind_or_exception(
        &mut self,
        depth: usize,
        tree: Delegation,
        path: &Path,
        dentry: &Dentry,
    ) -> Delegation {
        self.bind(depth, tree)
            .unwrap_or_else(|e| DelegateTree::Exception {
                path: path.clone(),
                dentry: dentry.clone(),
                message: e.to_string(),
            })
    }
}

/// What a step returns once the budget is spent; `delegate_once` names the
/// path in the error it returns instead.
fn spent(exceeded: Exceeded) -> NamingError {
    Budget::error("", exceeded)
}
