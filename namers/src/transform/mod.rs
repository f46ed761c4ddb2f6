//! Transformers: post-processing of bound names, configured on a namer
//! (`namers[].transformers`) or on an interpreter (`interpreter.transformers`).
//!
//! A transformer maps each bound name of a tree to another: its id gets the
//! transformer's prefix (`/%/<kind>/...`, so that clients of transformed
//! and untransformed names are not shared) and its address is derived live
//! from the original one. Transformers apply in the order listed. Adding
//! a kind is one module and one line in [`KINDS`].

mod derive;
mod host;
mod k8s;
mod port;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dtab::{NameTree, Path};
use serde_json::{Map, Value};
use tokio::runtime::Handle;

use crate::{Activity, Binding, Bound, Live, Lookup, Name, Namer, NamerCounter, Publisher};

pub use derive::derive_addr;
pub use host::HostTransformer;
pub use k8s::{DaemonSetTransformer, LocalNodeTransformer, NodeRule};
pub use port::PortTransformer;

/// Maps bound names to bound names.
pub trait Transformer: Send + Sync + 'static {
    /// The transformed name: the id prefixed, the address derived.
    fn transform(&self, bound: &Bound) -> Bound;
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

/// Builds a transformer from the kind's own keys and, if given, the prefix
/// of its ids.
type BuildTransformer =
    fn(&Map<String, Value>, Option<&Path>) -> Result<Arc<dyn Transformer>, String>;

/// Every transformer kind this build knows.
const KINDS: &[(&str, BuildTransformer)] = &[
    ("io.l5d.k8s.daemonset", |p, prefix| {
        finish(k8s::build_daemonset(p), prefix)
    }),
    ("io.l5d.k8s.localnode", |p, prefix| {
        finish(k8s::build_localnode(p), prefix)
    }),
    ("io.l5d.localhost", |p, prefix| {
        finish(host::build_localhost(p), prefix)
    }),
    ("io.l5d.port", |p, prefix| finish(port::build(p), prefix)),
    ("io.l5d.specificHost", |p, prefix| {
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
) -> Result<Arc<dyn Transformer>, String> {
    let mut built = built?;
    if let Some(prefix) = prefix {
        built.set_prefix(prefix);
    }
    Ok(Arc::new(built))
}

/// The transformer kinds that can be configured.
pub fn transformer_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|(kind, _)| *kind).collect()
}

/// The transformers of a list, in order. Errors name the entry, e.g.
/// `transformers[0] (io.l5d.port): port: ...`.
pub fn build_transformers(
    configs: &[TransformerConfig],
) -> Result<Vec<Arc<dyn Transformer>>, String> {
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
            build(&config.params, prefix.as_ref()).map_err(|e| format!("{at}: {e}"))
        })
        .collect()
}

/// Applies every transformer in turn to one bound name.
fn transform_all(transformers: &[Arc<dyn Transformer>], bound: &Bound) -> Bound {
    transformers
        .iter()
        .fold(bound.clone(), |bound, t| t.transform(&bound))
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
    fn map_tree<T, U>(
        &mut self,
        tree: &Activity<NameTree<T>>,
        leaf: fn(&mut Cache, &T) -> U,
    ) -> Activity<NameTree<U>> {
        self.used.clear();
        let mapped = match tree {
            Activity::Pending => Activity::Pending,
            Activity::Ok(tree) => Activity::Ok(tree.map(&mut |l| leaf(self, l))),
            Activity::Failed(e) => Activity::Failed(e.clone()),
        };
        let used = &self.used;
        self.done.retain(|key, _| used.contains(key));
        mapped
    }
}

/// Follows a live tree and publishes it with every leaf mapped by `leaf`,
/// until nobody holds the result.
fn map_live<T, U>(
    mut source: Live<Activity<NameTree<T>>>,
    transformers: Arc<[Arc<dyn Transformer>]>,
    leaf: fn(&mut Cache, &T) -> U,
) -> Live<Activity<NameTree<U>>>
where
    T: Send + Sync + 'static,
    U: PartialEq + Send + Sync + 'static,
{
    let mut cache = Cache {
        transformers,
        done: HashMap::new(),
        used: HashSet::new(),
    };
    let publisher = Publisher::new(cache.map_tree(&source.load(), leaf));
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
            publisher.publish_if_changed(cache.map_tree(&source.load(), leaf));
        }
    });
    live
}

/// A namer whose bound names are transformed (a namer's `transformers`).
pub struct TransformingNamer {
    inner: Arc<dyn Namer>,
    transformers: Arc<[Arc<dyn Transformer>]>,
}

impl TransformingNamer {
    /// `inner` with `transformers` applied to its answers, in order.
    pub fn new(
        inner: Arc<dyn Namer>,
        transformers: Vec<Arc<dyn Transformer>>,
    ) -> TransformingNamer {
        TransformingNamer {
            inner,
            transformers: transformers.into(),
        }
    }
}

impl Namer for TransformingNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        map_live(
            self.inner.lookup(path),
            self.transformers.clone(),
            |cache, name| match name {
                Name::Bound(bound) => Name::Bound(cache.transform(bound)),
                Name::Path(path) => Name::Path(path.clone()),
            },
        )
    }

    fn counters(&self) -> Vec<NamerCounter> {
        self.inner.counters()
    }
}

/// A binding whose bound names are transformed (an interpreter's
/// `transformers`).
pub fn transform_binding(binding: Binding, transformers: &[Arc<dyn Transformer>]) -> Binding {
    if transformers.is_empty() {
        return binding;
    }
    map_live(binding, transformers.to_vec().into(), |cache, bound| {
        cache.transform(bound)
    })
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
