//! Transformers: post-processing of bound names, configured on a namer
//! (`namers[].transformers`) or on an interpreter (`interpreter.transformers`).
//!
//! Most transformers map each bound name of a tree to another
//! ([`Transformer`]): its id gets the transformer's prefix
//! (`/%/<kind>/...`, so that clients of transformed and untransformed names
//! are not shared) and its address is derived live from the original one.
//! Some map the whole tree instead ([`TreeTransformer`]: `io.l5d.replace`,
//! `io.l5d.const`). Transformers apply in the order listed. Adding a kind
//! is one module and one line in [`KINDS`].

mod derive;
mod host;
mod k8s;
mod port;
mod replace;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use dtab::{Dtab, NameTree, Path};
use serde_json::{Map, Value};
use tokio::runtime::Handle;

use crate::{
    Activity, Binding, Bound, Interpreter, Live, Lookup, Name, NameInterpreter, Namer,
    NamerCounter, NamingError, Publisher,
};

pub use derive::derive_addr;
pub use host::HostTransformer;
pub use k8s::{DaemonSetTransformer, LocalNodeTransformer, NodeRule};
pub use port::PortTransformer;
pub use replace::{ConstTransformer, ReplaceTransformer};

/// Maps bound names to bound names.
pub trait Transformer: Send + Sync + 'static {
    /// The transformed name: the id prefixed, the address derived.
    fn transform(&self, bound: &Bound) -> Bound;
}

/// Maps whole bound trees to bound trees, live (Linkerd's
/// `NameTreeTransformer`), for transformers whose answer is another
/// binding rather than a function of each bound name.
pub trait TreeTransformer: Send + Sync + 'static {
    /// The kind, as the delegator names the transformation.
    fn kind(&self) -> &'static str;

    /// The binding the results depend on, started for each transformed
    /// tree and dropped with it.
    fn watch(&self) -> Binding;

    /// The tree that replaces `tree`, given the current state of
    /// [`TreeTransformer::watch`].
    fn apply(
        &self,
        tree: &NameTree<Bound>,
        watched: &Activity<NameTree<Bound>>,
    ) -> Activity<NameTree<Bound>>;

    /// Whether the delegator shows the transformation once at the root
    /// (the input is ignored) rather than at every bound leaf.
    fn replaces_root(&self) -> bool {
        false
    }
}

/// One configured transformer.
#[derive(Clone)]
pub enum Transform {
    /// Maps each bound name on its own.
    Leaf(Arc<dyn Transformer>),
    /// Maps the whole tree.
    Tree(Arc<dyn TreeTransformer>),
}

impl From<Arc<dyn Transformer>> for Transform {
    fn from(t: Arc<dyn Transformer>) -> Transform {
        Transform::Leaf(t)
    }
}

impl From<Arc<dyn TreeTransformer>> for Transform {
    fn from(t: Arc<dyn TreeTransformer>) -> Transform {
        Transform::Tree(t)
    }
}

/// How tree transformers bind their configured path: with an empty dtab
/// through the configured namers and the `/$/` namers, as Linkerd's global
/// interpreter does. Namer transformers get it before the namers exist, so
/// it is filled in once they do; until then a bind through it fails.
#[derive(Clone, Default)]
pub struct PathBinder {
    interpreter: Arc<OnceLock<Interpreter>>,
}

impl PathBinder {
    /// A binder to be filled in later with [`PathBinder::set`].
    pub fn unset() -> PathBinder {
        PathBinder::default()
    }

    /// A binder that binds through `interpreter`.
    pub fn of(interpreter: Interpreter) -> PathBinder {
        let binder = PathBinder::default();
        binder.set(interpreter);
        binder
    }

    /// Fills in the interpreter; only the first call counts.
    pub fn set(&self, interpreter: Interpreter) {
        let _ = self.interpreter.set(interpreter);
    }

    /// `path` bound with an empty dtab, live.
    pub fn bind(&self, path: &Path) -> Binding {
        match self.interpreter.get() {
            Some(interpreter) => interpreter.bind(&Dtab::default(), path),
            None => Live::constant(Activity::Failed(NamingError::namer(format!(
                "cannot bind {}: the namers are not built yet",
                path.show()
            )))),
        }
    }
}

/// One entry of a `transformers:` list.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TransformerConfig {
    /// Which transformer, e.g. `io.l5d.k8s.localnode`.
    pub kind: String,
    /// What transformed ids start with, below `/%` (default: the kind's own,
    /// e.g. `/io.l5d.k8s.localnode/<node>`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// The kind's own keys, checked by the kind.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

/// Builds a transformer from the kind's own keys, the prefix of its ids if
/// given, and how to bind paths.
type BuildTransformer =
    fn(&Map<String, Value>, Option<&Path>, &PathBinder) -> Result<Transform, String>;

/// Every transformer kind this build knows.
const KINDS: &[(&str, BuildTransformer)] = &[
    ("io.l5d.const", replace::build_const),
    ("io.l5d.k8s.daemonset", |p, prefix, _| {
        finish(k8s::build_daemonset(p), prefix)
    }),
    ("io.l5d.k8s.localnode", |p, prefix, _| {
        finish(k8s::build_localnode(p), prefix)
    }),
    ("io.l5d.localhost", |p, prefix, _| {
        finish(host::build_localhost(p), prefix)
    }),
    ("io.l5d.port", |p, prefix, _| finish(port::build(p), prefix)),
    ("io.l5d.replace", replace::build_replace),
    ("io.l5d.specificHost", |p, prefix, _| {
        finish(host::build_specific_host(p), prefix)
    }),
];

/// A transformer whose id prefix a config may set.
trait SetPrefix: Transformer {
    /// Makes ids start with `/%` and `prefix`.
    fn set_prefix(&mut self, prefix: &Path);
}

/// A built transformer, with the configured prefix if any.
fn finish<T: SetPrefix>(
    built: Result<T, String>,
    prefix: Option<&Path>,
) -> Result<Transform, String> {
    let mut built = built?;
    if let Some(prefix) = prefix {
        built.set_prefix(prefix);
    }
    Ok(Transform::Leaf(Arc::new(built)))
}

/// The transformer kinds that can be configured.
pub fn transformer_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|(kind, _)| *kind).collect()
}

/// The transformers of a list, in order; those that bind a path do it with
/// `binder`. Errors name the entry, e.g.
/// `transformers[0] (io.l5d.port): port: ...`.
pub fn build_transformers(
    configs: &[TransformerConfig],
    binder: &PathBinder,
) -> Result<Vec<Transform>, String> {
    configs
        .iter()
        .enumerate()
        .map(|(i, config)| {
            let Some((_, build)) = KINDS.iter().find(|(kind, _)| *kind == config.kind) else {
                return Err(crate::config::linkerd::unknown_kind(
                    &format!("transformers[{i}]"),
                    "transformer",
                    &config.kind,
                    &transformer_kinds(),
                ));
            };
            let at = format!("transformers[{i}] ({})", config.kind);
            let prefix = match &config.prefix {
                Some(p) => Some(Path::read(p).map_err(|e| format!("{at}: prefix: {e}"))?),
                None => None,
            };
            build(&config.params, prefix.as_ref(), binder).map_err(|e| format!("{at}: {e}"))
        })
        .collect()
}

/// Applies every transformer in turn to one bound name.
fn transform_all(transformers: &[Arc<dyn Transformer>], bound: &Bound) -> Bound {
    transformers
        .iter()
        .fold(bound.clone(), |bound, t| t.transform(&bound))
}

/// What a transformed tree's leaves are: bound names (a binding) or names
/// (a namer's answer, whose path leaves pass through untouched).
trait Leaf: Clone + PartialEq + Send + Sync + 'static {
    /// The leaf with its bound name transformed.
    fn transform(&self, cache: &mut Cache) -> Self;
    /// The bound name, if the leaf is one.
    fn bound(&self) -> Option<&Bound>;
    /// A leaf holding `bound`.
    fn from_bound(bound: &Bound) -> Self;
}

impl Leaf for Bound {
    fn transform(&self, cache: &mut Cache) -> Bound {
        cache.transform(self)
    }
    fn bound(&self) -> Option<&Bound> {
        Some(self)
    }
    fn from_bound(bound: &Bound) -> Bound {
        bound.clone()
    }
}

impl Leaf for Name {
    fn transform(&self, cache: &mut Cache) -> Name {
        match self {
            Name::Bound(bound) => Name::Bound(cache.transform(bound)),
            Name::Path(path) => Name::Path(path.clone()),
        }
    }
    fn bound(&self) -> Option<&Bound> {
        match self {
            Name::Bound(bound) => Some(bound),
            Name::Path(_) => None,
        }
    }
    fn from_bound(bound: &Bound) -> Name {
        Name::Bound(bound.clone())
    }
}

/// The transformed names of one live tree, kept so that an unchanged bound
/// name keeps its derived address when the tree is recomputed.
struct Cache {
    transformers: Arc<[Arc<dyn Transformer>]>,
    done: HashMap<(Path, Path), (Bound, Bound)>,
    /// The names of the latest tree; the others are forgotten.
    used: HashSet<(Path, Path)>,
}

impl Cache {
    fn transform(&mut self, bound: &Bound) -> Bound {
        let key = (bound.id.clone(), bound.residual.clone());
        self.used.insert(key.clone());
        if let Some((source, transformed)) = self.done.get(&key)
            && source.addr.same_source(&bound.addr)
            && source.weight == bound.weight
        {
            return transformed.clone();
        }
        let transformed = transform_all(&self.transformers, bound);
        self.done.insert(key, (bound.clone(), transformed.clone()));
        transformed
    }

    /// Maps every leaf of a tree, forgetting names it no longer has.
    fn map_tree<T: Leaf>(&mut self, tree: &Activity<NameTree<T>>) -> Activity<NameTree<T>> {
        self.used.clear();
        let mapped = match tree {
            Activity::Pending => Activity::Pending,
            Activity::Ok(tree) => Activity::Ok(tree.map(&mut |l: &T| l.transform(self))),
            Activity::Failed(e) => Activity::Failed(e.clone()),
        };
        let used = &self.used;
        self.done.retain(|key, _| used.contains(key));
        mapped
    }
}

/// Follows a live tree and publishes it with every bound name mapped by
/// `transformers`, until nobody holds the result.
fn map_live<T: Leaf>(
    mut source: Live<Activity<NameTree<T>>>,
    transformers: Arc<[Arc<dyn Transformer>]>,
) -> Live<Activity<NameTree<T>>> {
    let mut cache = Cache {
        transformers,
        done: HashMap::new(),
        used: HashSet::new(),
    };
    let publisher = Publisher::new(cache.map_tree(&source.load()));
    let live = publisher.subscribe();
    let Ok(runtime) = Handle::try_current() else {
        return live;
    };
    runtime.spawn(async move {
        loop {
            tokio::select! {
                () = publisher.closed() => return,
                () = source.changed() => {}
            }
            publisher.publish_if_changed(cache.map_tree(&source.load()));
        }
    });
    live
}

/// One tree transformer applied to the current state of a tree. A tree
/// with path leaves (a namer's answer still to be bound further) passes
/// through, as in Linkerd.
fn apply_tree<T: Leaf>(
    transformer: &dyn TreeTransformer,
    source: &Activity<NameTree<T>>,
    watched: &Activity<NameTree<Bound>>,
) -> Activity<NameTree<T>> {
    let Activity::Ok(tree) = source else {
        return source.clone();
    };
    let mut all_bound = true;
    let bound = tree.map(&mut |leaf: &T| match leaf.bound() {
        Some(bound) => bound.clone(),
        None => {
            all_bound = false;
            Bound::new(
                Path::empty(),
                Path::empty(),
                Live::constant(crate::Addr::Neg),
            )
        }
    });
    if !all_bound {
        return source.clone();
    }
    transformer
        .apply(&bound, watched)
        .map(|tree| tree.map(&mut T::from_bound))
}

/// Follows a live tree and publishes it transformed by `transformer`, until
/// nobody holds the result.
fn tree_live<T: Leaf>(
    mut source: Live<Activity<NameTree<T>>>,
    transformer: Arc<dyn TreeTransformer>,
) -> Live<Activity<NameTree<T>>> {
    let Ok(runtime) = Handle::try_current() else {
        let now = apply_tree(&*transformer, &source.load(), &Activity::Pending);
        return Live::constant(now);
    };
    let mut watched = transformer.watch();
    let publisher = Publisher::new(apply_tree(&*transformer, &source.load(), &watched.load()));
    let live = publisher.subscribe();
    runtime.spawn(async move {
        loop {
            tokio::select! {
                () = publisher.closed() => return,
                () = source.changed() => {}
                () = watched.changed() => {}
            }
            let now = apply_tree(&*transformer, &source.load(), &watched.load());
            publisher.publish_if_changed(now);
        }
    });
    live
}

/// Runs `transforms` in order over a live tree: one stage per run of
/// per-name transformers, one per tree transformer.
fn transform_live<T: Leaf>(
    mut live: Live<Activity<NameTree<T>>>,
    transforms: &[Transform],
) -> Live<Activity<NameTree<T>>> {
    let mut leaves: Vec<Arc<dyn Transformer>> = Vec::new();
    for transform in transforms {
        match transform {
            Transform::Leaf(t) => leaves.push(t.clone()),
            Transform::Tree(t) => {
                if !leaves.is_empty() {
                    live = map_live(live, std::mem::take(&mut leaves).into());
                }
                live = tree_live(live, t.clone());
            }
        }
    }
    if !leaves.is_empty() {
        live = map_live(live, leaves.into());
    }
    live
}

/// A namer whose bound names are transformed (a namer's `transformers`).
pub struct TransformingNamer {
    inner: Arc<dyn Namer>,
    transforms: Arc<[Transform]>,
}

impl TransformingNamer {
    /// `inner` with `transformers` applied to its answers, in order.
    pub fn new<T: Into<Transform>>(
        inner: Arc<dyn Namer>,
        transformers: impl IntoIterator<Item = T>,
    ) -> TransformingNamer {
        TransformingNamer {
            inner,
            transforms: transformers.into_iter().map(Into::into).collect(),
        }
    }
}

impl Namer for TransformingNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        transform_live(self.inner.lookup(path), &self.transforms)
    }

    fn counters(&self) -> Vec<NamerCounter> {
        self.inner.counters()
    }
}

/// A binding whose bound names are transformed (an interpreter's
/// `transformers`).
pub fn transform_binding<T: Clone + Into<Transform>>(
    binding: Binding,
    transformers: &[T],
) -> Binding {
    if transformers.is_empty() {
        return binding;
    }
    let transforms: Vec<Transform> = transformers.iter().cloned().map(Into::into).collect();
    transform_live(binding, &transforms)
}

/// Shows an interpreter's tree transformers in its delegation (Linkerd's
/// `/delegate` JSON): a `transformation` node, named by the kind, in place
/// of every bound leaf (or of the root, for one that ignores its input),
/// holding the original name and what the transformer answered. Waits for
/// the transformers' own bindings to answer (callers bound the wait).
/// Per-name transformers are not shown.
pub async fn show_in_delegation(mut json: Value, transforms: &[Transform]) -> Value {
    for transform in transforms {
        let Transform::Tree(t) = transform else {
            continue;
        };
        let mut watched = t.watch();
        while watched.load().is_pending() {
            watched.changed().await;
        }
        let watched = watched.load();
        json = if t.replaces_root() {
            let path = json.get("path").cloned().unwrap_or_else(|| "/".into());
            let answer = t.apply(&NameTree::Neg, &watched);
            transformation(t.kind(), path, None, &answer)
        } else {
            show_at_leaves(json, &**t, &watched)
        };
    }
    json
}

/// Every bound leaf of a delegation's JSON replaced by `t`'s answer.
fn show_at_leaves(
    json: Value,
    t: &dyn TreeTransformer,
    watched: &Activity<NameTree<Bound>>,
) -> Value {
    let Value::Object(mut node) = json else {
        return json;
    };
    if node.get("type").and_then(Value::as_str) == Some("leaf")
        && let Some(bound) = node.get("bound").cloned()
    {
        let text = |key: &str| bound.get(key).and_then(Value::as_str).unwrap_or("/");
        let original = Bound::new(
            Path::read(text("id")).unwrap_or_default(),
            Path::read(text("path")).unwrap_or_default(),
            Live::constant(crate::Addr::Pending),
        );
        let answer = t.apply(&NameTree::Leaf(original), watched);
        let path = node.get("path").cloned().unwrap_or_else(|| "/".into());
        return transformation(t.kind(), path, Some(bound), &answer);
    }
    for (key, value) in node.iter_mut() {
        match (key.as_str(), value) {
            ("delegate" | "tree", child) => *child = show_at_leaves(child.take(), t, watched),
            ("alt", Value::Array(children)) => {
                for child in children {
                    *child = show_at_leaves(child.take(), t, watched);
                }
            }
            ("union", Value::Array(branches)) => {
                for branch in branches {
                    if let Some(child) = branch.get_mut("tree") {
                        *child = show_at_leaves(child.take(), t, watched);
                    }
                }
            }
            _ => {}
        }
    }
    Value::Object(node)
}

/// A `transformation` node: `path` as the original node had it, the name
/// before (if one), and the answer as a delegation below.
fn transformation(
    kind: &str,
    path: Value,
    before: Option<Value>,
    answer: &Activity<NameTree<Bound>>,
) -> Value {
    let tree = match answer {
        Activity::Ok(tree) => {
            let id = tree
                .map(&mut |b: &Bound| b.id.clone())
                .eval()
                .and_then(|ids| ids.first().map(|id| (*id).clone()))
                .unwrap_or_default();
            let names = tree.map(&mut |b: &Bound| Name::Bound(b.clone()));
            let tree = dtab::DelegateTree::from_name_tree(&id, &dtab::Dentry::nop(), &names);
            crate::json::delegate_tree(&tree)
        }
        Activity::Pending => serde_json::json!({"type": "neg", "path": "~"}),
        Activity::Failed(e) => {
            serde_json::json!({"type": "exception", "path": path, "message": e.to_string()})
        }
    };
    let mut node = Map::new();
    node.insert("type".into(), "transformation".into());
    node.insert("path".into(), path);
    node.insert("name".into(), kind.into());
    if let Some(before) = before {
        node.insert("bound".into(), before);
    }
    node.insert("tree".into(), tree);
    Value::Object(node)
}

/// The id of a transformed name: `prefix` followed by the original id.
fn prefixed(prefix: &Path, bound: &Bound) -> Path {
    prefix.concat(&bound.id)
}

/// `/%` followed by `prefix`: where transformed ids live.
fn percent(prefix: &Path) -> Path {
    Path::from_strs(["%"]).unwrap_or_default().concat(prefix)
}

/// A bound set of `endpoints` with `like`'s metadata, or `~` when a
/// transformer left none (as in Linkerd).
fn bound_or_neg(endpoints: Vec<crate::Endpoint>, like: &crate::AddrSet) -> crate::Addr {
    if endpoints.is_empty() {
        return crate::Addr::Neg;
    }
    let mut set = crate::AddrSet::new(endpoints);
    set.meta = like.meta.clone();
    crate::Addr::Bound(set)
}
