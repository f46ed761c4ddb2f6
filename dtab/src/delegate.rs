//! Delegation trees: the annotated explanation of how a name was resolved
//! (Linkerd's `DelegateTree`, shown by the dtab playground and `/delegate`).

use crate::{Dentry, NameTree, Path};

/// A union branch of a [`DelegateTree`].
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedDelegate<T> {
    /// The branch's weight.
    pub weight: f64,
    /// The branch.
    pub tree: DelegateTree<T>,
}

/// Each node records the path being resolved there and the dentry that
/// produced it ([`Dentry::nop`] when none did).
#[derive(Clone, Debug, PartialEq)]
pub enum DelegateTree<T> {
    /// Resolution failed with an error (a namer failure, the depth limit).
    Exception {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
        /// What went wrong.
        message: String,
    },
    /// `$`: the name exists with no endpoints.
    Empty {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
    },
    /// `!`: resolution failed on purpose.
    Fail {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
    },
    /// `~`: nothing matched.
    Neg {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
    },
    /// `path` was rewritten by `dentry` into `tree`.
    Delegate {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
        /// What the path was rewritten into.
        tree: Box<DelegateTree<T>>,
    },
    /// A final value, usually a bound name.
    Leaf {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
        /// The value.
        value: T,
    },
    /// Alternatives, every one of them explored.
    Alt {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
        /// The alternatives, in order.
        trees: Vec<DelegateTree<T>>,
    },
    /// A weighted split, every branch explored.
    Union {
        /// The path being resolved.
        path: Path,
        /// The dentry that led here.
        dentry: Dentry,
        /// The branches.
        trees: Vec<WeightedDelegate<T>>,
    },
    /// A transformer (e.g. `io.l5d.localhost`) rewrote a bound name.
    Transformation {
        /// The path being resolved.
        path: Path,
        /// The transformer's name.
        name: String,
        /// The value before the transformation.
        value: T,
        /// The tree after it.
        tree: Box<DelegateTree<T>>,
    },
}

impl<T: Clone> DelegateTree<T> {
    /// The path being resolved at this node.
    pub fn path(&self) -> &Path {
        match self {
            DelegateTree::Exception { path, .. }
            | DelegateTree::Empty { path, .. }
            | DelegateTree::Fail { path, .. }
            | DelegateTree::Neg { path, .. }
            | DelegateTree::Delegate { path, .. }
            | DelegateTree::Leaf { path, .. }
            | DelegateTree::Alt { path, .. }
            | DelegateTree::Union { path, .. }
            | DelegateTree::Transformation { path, .. } => path,
        }
    }

    /// The dentry that produced this node; `None` for a transformation.
    pub fn dentry(&self) -> Option<&Dentry> {
        match self {
            DelegateTree::Exception { dentry, .. }
            | DelegateTree::Empty { dentry, .. }
            | DelegateTree::Fail { dentry, .. }
            | DelegateTree::Neg { dentry, .. }
            | DelegateTree::Delegate { dentry, .. }
            | DelegateTree::Leaf { dentry, .. }
            | DelegateTree::Alt { dentry, .. }
            | DelegateTree::Union { dentry, .. } => Some(dentry),
            DelegateTree::Transformation { .. } => None,
        }
    }

    /// The same node attributed to `new` (a transformation keeps none).
    pub fn with_dentry(self, new: Dentry) -> DelegateTree<T> {
        match self {
            DelegateTree::Exception { path, message, .. } => DelegateTree::Exception {
                path,
                dentry: new,
                message,
            },
            DelegateTree::Empty { path, .. } => DelegateTree::Empty { path, dentry: new },
            DelegateTree::Fail { path, .. } => DelegateTree::Fail { path, dentry: new },
            DelegateTree::Neg { path, .. } => DelegateTree::Neg { path, dentry: new },
            DelegateTree::Delegate { path, tree, .. } => DelegateTree::Delegate {
                path,
                dentry: new,
                tree,
            },
            DelegateTree::Leaf { path, value, .. } => DelegateTree::Leaf {
                path,
                dentry: new,
                value,
            },
            DelegateTree::Alt { path, trees, .. } => DelegateTree::Alt {
                path,
                dentry: new,
                trees,
            },
            DelegateTree::Union { path, trees, .. } => DelegateTree::Union {
                path,
                dentry: new,
                trees,
            },
            t @ DelegateTree::Transformation { .. } => t,
        }
    }

    /// Annotates a name tree: every node gets `path` and `dentry`, except
    /// `~`, whose path is empty (it resolved nothing).
    pub fn from_name_tree(path: &Path, dentry: &Dentry, tree: &NameTree<T>) -> DelegateTree<T> {
        let (path, d) = (path.clone(), dentry.clone());
        match tree {
            NameTree::Neg => DelegateTree::Neg {
                path: Path::empty(),
                dentry: d,
            },
            NameTree::Fail => DelegateTree::Fail { path, dentry: d },
            NameTree::Empty => DelegateTree::Empty { path, dentry: d },
            NameTree::Leaf(value) => DelegateTree::Leaf {
                path,
                dentry: d,
                value: value.clone(),
            },
            NameTree::Alt(ts) => DelegateTree::Alt {
                trees: ts
                    .iter()
                    .map(|t| DelegateTree::from_name_tree(&path, dentry, t))
                    .collect(),
                path,
                dentry: d,
            },
            NameTree::Union(ws) => DelegateTree::Union {
                trees: ws
                    .iter()
                    .map(|w| WeightedDelegate {
                        weight: w.weight,
                        tree: DelegateTree::from_name_tree(&path, dentry, &w.tree),
                    })
                    .collect(),
                path,
                dentry: d,
            },
        }
    }

    /// Linkerd's `DelegateTree.simplified`: collapses a Delegate into its
    /// child when the child resolves the same path (the child takes the
    /// Delegate's dentry), flattens alternatives of the same path, and
    /// replaces empty Alts and Unions with `~`.
    pub fn simplified(&self) -> DelegateTree<T> {
        match self {
            DelegateTree::Delegate { path, dentry, tree } => {
                Self::simplified_delegate(path, dentry, tree)
            }
            DelegateTree::Alt {
                path,
                dentry,
                trees,
            } => match trees.as_slice() {
                [] => DelegateTree::Neg {
                    path: path.clone(),
                    dentry: dentry.clone(),
                },
                [only] => Self::simplified_delegate(path, dentry, only),
                _ => {
                    let mut flat = Vec::with_capacity(trees.len());
                    for t in trees {
                        match t.simplified() {
                            DelegateTree::Alt {
                                path: p,
                                trees: inner,
                                ..
                            } if &p == path => flat.extend(inner),
                            other => flat.push(other),
                        }
                    }
                    DelegateTree::Alt {
                        path: path.clone(),
                        dentry: dentry.clone(),
                        trees: flat,
                    }
                }
            },
            DelegateTree::Union {
                path,
                dentry,
                trees,
            } => match trees.as_slice() {
                [] => DelegateTree::Neg {
                    path: path.clone(),
                    dentry: dentry.clone(),
                },
                [only] => Self::simplified_delegate(path, dentry, &only.tree),
                _ => DelegateTree::Union {
                    path: path.clone(),
                    dentry: dentry.clone(),
                    trees: trees
                        .iter()
                        .map(|w| WeightedDelegate {
                            weight: w.weight,
                            tree: w.tree.simplified(),
                        })
                        .collect(),
                },
            },
            other => other.clone(),
        }
    }

    fn simplified_delegate(
        path: &Path,
        dentry: &Dentry,
        child: &DelegateTree<T>,
    ) -> DelegateTree<T> {
        let child = child.simplified();
        let terminal = matches!(
            child,
            DelegateTree::Neg { .. } | DelegateTree::Fail { .. } | DelegateTree::Empty { .. }
        );
        if !terminal && child.path() == path {
            child.with_dentry(dentry.clone())
        } else {
            DelegateTree::Delegate {
                path: path.clone(),
                dentry: dentry.clone(),
                tree: Box::new(child),
            }
        }
    }

    /// The route from the root to the first leaf (pre-order) whose value
    /// satisfies `pred`, as `(path, dentry shown)` pairs; `""` stands for no
    /// dentry and a transformation contributes its name.
    pub fn find(&self, pred: &impl Fn(&T) -> bool) -> Option<Vec<(Path, String)>> {
        let step = |path: &Path, dentry: &Dentry| (path.clone(), show_dentry(dentry));
        match self {
            DelegateTree::Leaf {
                path,
                dentry,
                value,
            } if pred(value) => Some(vec![step(path, dentry)]),
            DelegateTree::Delegate { path, dentry, tree } => tree.find(pred).map(|mut rest| {
                rest.insert(0, step(path, dentry));
                rest
            }),
            DelegateTree::Alt {
                path,
                dentry,
                trees,
            } => trees.iter().find_map(|t| t.find(pred)).map(|mut rest| {
                rest.insert(0, step(path, dentry));
                rest
            }),
            DelegateTree::Union {
                path,
                dentry,
                trees,
            } => trees
                .iter()
                .find_map(|w| w.tree.find(pred))
                .map(|mut rest| {
                    rest.insert(0, step(path, dentry));
                    rest
                }),
            DelegateTree::Transformation {
                path, name, tree, ..
            } => tree.find(pred).map(|mut rest| {
                if let [(leaf_path, leaf_dentry)] = rest.as_slice() {
                    vec![
                        (path.clone(), leaf_dentry.clone()),
                        (leaf_path.clone(), name.clone()),
                    ]
                } else {
                    rest.insert(0, (path.clone(), name.clone()));
                    rest
                }
            }),
            _ => None,
        }
    }

    /// Applies `f` to every value, keeping the annotations.
    pub fn map<U>(&self, f: &mut impl FnMut(&T) -> U) -> DelegateTree<U> {
        match self {
            DelegateTree::Exception {
                path,
                dentry,
                message,
            } => DelegateTree::Exception {
                path: path.clone(),
                dentry: dentry.clone(),
                message: message.clone(),
            },
            DelegateTree::Empty { path, dentry } => DelegateTree::Empty {
                path: path.clone(),
                dentry: dentry.clone(),
            },
            DelegateTree::Fail { path, dentry } => DelegateTree::Fail {
                path: path.clone(),
                dentry: dentry.clone(),
            },
            DelegateTree::Neg { path, dentry } => DelegateTree::Neg {
                path: path.clone(),
                dentry: dentry.clone(),
            },
            DelegateTree::Delegate { path, dentry, tree } => DelegateTree::Delegate {
                path: path.clone(),
                dentry: dentry.clone(),
                tree: Box::new(tree.map(f)),
            },
            DelegateTree::Leaf {
                path,
                dentry,
                value,
            } => DelegateTree::Leaf {
                path: path.clone(),
                dentry: dentry.clone(),
                value: f(value),
            },
            DelegateTree::Alt {
                path,
                dentry,
                trees,
            } => DelegateTree::Alt {
                path: path.clone(),
                dentry: dentry.clone(),
                trees: trees.iter().map(|t| t.map(f)).collect(),
            },
            DelegateTree::Union {
                path,
                dentry,
                trees,
            } => DelegateTree::Union {
                path: path.clone(),
                dentry: dentry.clone(),
                trees: trees
                    .iter()
                    .map(|w| WeightedDelegate {
                        weight: w.weight,
                        tree: w.tree.map(f),
                    })
                    .collect(),
            },
            DelegateTree::Transformation {
                path,
                name,
                value,
                tree,
            } => DelegateTree::Transformation {
                path: path.clone(),
                name: name.clone(),
                value: f(value),
                tree: Box::new(tree.map(f)),
            },
        }
    }
}

/// A dentry as [`DelegateTree::find`] reports it: `""` for no dentry.
fn show_dentry(dentry: &Dentry) -> String {
    if dentry.is_nop() {
        String::new()
    } else {
        dentry.show()
    }
}
