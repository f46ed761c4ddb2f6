//! `io.l5d.replace` and `io.l5d.const`: answer with the binding of one
//! configured path instead of the names found.
//!
//! Both bind `path` with an empty dtab through the configured namers and
//! the `/$/` namers ([`PathBinder`]) and give every name of that binding the
//! id `/%/<prefix><path>` (default prefix: the kind). `io.l5d.replace` puts
//! that binding at every bound leaf of the tree, so a tree without leaves
//! (`~`, `!`, `$`) stays what it was; `io.l5d.const` answers with it
//! whatever the tree was, `~` included. A pending or failed input stays
//! pending or failed for both, as in Linkerd.

use std::sync::Arc;

use dtab::{NameTree, Path, Weighted};
use serde_json::{Map, Value};

use super::{PathBinder, Transform, TreeTransformer, percent};
use crate::{Activity, Binding, Bound};

/// The config of both kinds.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PathConfig {
    path: String,
}

/// The configured path, its ids' prefix and how to bind it.
struct Target {
    path: Path,
    /// The id every name of the binding gets: `/%`, the prefix, the path.
    id: Path,
    binder: PathBinder,
}

impl Target {
    fn build(
        kind: &str,
        params: &Map<String, Value>,
        prefix: Option<&Path>,
        binder: &PathBinder,
    ) -> Result<Target, String> {
        let config: PathConfig = crate::config::kind_params(params)?;
        let path = Path::read(&config.path).map_err(|e| format!("path: {e}"))?;
        if path.is_empty() {
            return Err("path: must not be empty".into());
        }
        let prefix = match prefix {
            Some(prefix) => prefix.clone(),
            None => Path::from_strs([kind]).ok_or("bad default prefix")?,
        };
        Ok(Target {
            id: percent(&prefix).concat(&path),
            path,
            binder: binder.clone(),
        })
    }

    /// The binding of the path with every name renamed to the target's id.
    fn renamed(
        &self,
        watched: &Activity<NameTree<Bound>>,
        weight: Option<f64>,
    ) -> Activity<NameTree<Bound>> {
        watched.clone().map(|tree| {
            tree.map(&mut |b: &Bound| Bound {
                id: self.id.clone(),
                residual: b.residual.clone(),
                addr: b.addr.clone(),
                weight: b.weight.or(weight),
            })
        })
    }
}

/// Puts the binding of a path at every bound leaf (`io.l5d.replace`).
pub struct ReplaceTransformer {
    target: Target,
}

impl ReplaceTransformer {
    /// The path this transformer binds.
    pub fn path(&self) -> &Path {
        &self.target.path
    }
}

/// Whether a tree has a leaf anywhere.
fn has_leaf<T>(tree: &NameTree<T>) -> bool {
    match tree {
        NameTree::Leaf(_) => true,
        NameTree::Alt(trees) => trees.iter().any(has_leaf),
        NameTree::Union(branches) => branches.iter().any(|w| has_leaf(&w.tree)),
        NameTree::Neg | NameTree::Fail | NameTree::Empty => false,
    }
}

/// `tree` with every leaf replaced by `with(leaf)`, keeping the shape.
fn replace_leaves(
    tree: &NameTree<Bound>,
    with: &dyn Fn(&Bound) -> NameTree<Bound>,
) -> NameTree<Bound> {
    match tree {
        NameTree::Leaf(b) => with(b),
        NameTree::Alt(trees) => {
            NameTree::Alt(trees.iter().map(|t| replace_leaves(t, with)).collect())
        }
        NameTree::Union(branches) => NameTree::Union(
            branches
                .iter()
                .map(|w| Weighted::new(w.weight, replace_leaves(&w.tree, with)))
                .collect(),
        ),
        NameTree::Neg => NameTree::Neg,
        NameTree::Fail => NameTree::Fail,
        NameTree::Empty => NameTree::Empty,
    }
}

impl TreeTransformer for ReplaceTransformer {
    fn kind(&self) -> &'static str {
        "io.l5d.replace"
    }

    fn watch(&self) -> Binding {
        self.target.binder.bind(&self.target.path)
    }

    fn apply(
        &self,
        tree: &NameTree<Bound>,
        watched: &Activity<NameTree<Bound>>,
    ) -> Activity<NameTree<Bound>> {
        if !has_leaf(tree) {
            return Activity::Ok(tree.clone());
        }
        match watched {
            Activity::Ok(_) => Activity::Ok(replace_leaves(tree, &|leaf| {
                match self.target.renamed(watched, leaf.weight) {
                    Activity::Ok(replacement) => replacement,
                    // Not reached: `watched` is an answer.
                    _ => NameTree::Neg,
                }
            })),
            Activity::Pending => Activity::Pending,
            Activity::Failed(e) => Activity::Failed(e.clone()),
        }
    }
}

/// Answers with the binding of a path whatever the tree (`io.l5d.const`).
pub struct ConstTransformer {
    target: Target,
}

impl ConstTransformer {
    /// The path this transformer binds.
    pub fn path(&self) -> &Path {
        &self.target.path
    }
}

impl TreeTransformer for ConstTransformer {
    fn kind(&self) -> &'static str {
        "io.l5d.const"
    }

    fn watch(&self) -> Binding {
        self.target.binder.bind(&self.target.path)
    }

    fn apply(
        &self,
        _: &NameTree<Bound>,
        watched: &Activity<NameTree<Bound>>,
    ) -> Activity<NameTree<Bound>> {
        self.target.renamed(watched, None)
    }

    fn replaces_root(&self) -> bool {
        true
    }
}

pub(super) fn build_replace(
    params: &Map<String, Value>,
    prefix: Option<&Path>,
    binder: &PathBinder,
) -> Result<Transform, String> {
    let target = Target::build("io.l5d.replace", params, prefix, binder)?;
    Ok(Transform::Tree(Arc::new(ReplaceTransformer { target })))
}

pub(super) fn build_const(
    params: &Map<String, Value>,
    prefix: Option<&Path>,
    binder: &PathBinder,
) -> Result<Transform, String> {
    let target = Target::build("io.l5d.const", params, prefix, binder)?;
    Ok(Transform::Tree(Arc::new(ConstTransformer { target })))
}
