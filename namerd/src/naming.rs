//! namerd's naming service: binds names through the stored dtab of a
//! namespace, live, sharing one binding between all its watchers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use namers::LiveCache;
use namers::live_cache::DEFAULT_INACTIVE_TTL;
use namers::resolve::{Resolved, choose, pick_by_weight};
use namers::{
    Activity, Addr, Binding, Bound, Delegation, Interpreter, Live, NameInterpreter, NamingError,
    Publisher,
};

use crate::Namespace;
use crate::store::DtabStore;

type BindKey = (Namespace, Path, String);

/// Binds names for namerd's clients.
pub struct Namerd {
    store: Arc<dyn DtabStore>,
    interpreter: Interpreter,
    bindings: LiveCache<BindKey, Activity<NameTree<Bound>>>,
    resolutions: LiveCache<BindKey, Addr>,
    addrs: LiveCache<Path, Addr>,
    bound_names: Arc<BoundNames>,
}

impl Namerd {
    /// A naming service over `store`, binding with `interpreter`, that
    /// keeps a binding nobody watches for [`DEFAULT_INACTIVE_TTL`].
    pub fn new(store: Arc<dyn DtabStore>, interpreter: Interpreter) -> Arc<Namerd> {
        Namerd::with_inactive_ttl(store, interpreter, DEFAULT_INACTIVE_TTL)
    }

    /// A naming service that keeps bindings, resolutions and addresses up to
    /// date for `inactive_ttl` after their last watcher leaves, so that a
    /// one-off request or a returning router gets the last good answer
    /// during an outage of a namer's backend.
    pub fn with_inactive_ttl(
        store: Arc<dyn DtabStore>,
        interpreter: Interpreter,
        inactive_ttl: Duration,
    ) -> Arc<Namerd> {
        Arc::new(Namerd {
            store,
            interpreter,
            bindings: LiveCache::with_inactive_ttl(inactive_ttl),
            resolutions: LiveCache::with_inactive_ttl(inactive_ttl),
            addrs: LiveCache::with_inactive_ttl(inactive_ttl),
            bound_names: Arc::new(BoundNames::default()),
        })
    }

    /// The dtab store.
    pub fn store(&self) -> &Arc<dyn DtabStore> {
        &self.store
    }

    /// The interpreter (its counters are in the metrics tree).
    pub fn interpreter(&self) -> &Interpreter {
        &self.interpreter
    }

    /// How many bindings are being kept live.
    pub fn live_bindings(&self) -> usize {
        self.bindings.len()
    }

    /// How many resolutions (`/api/1/resolve`) are being kept live.
    pub fn live_resolutions(&self) -> usize {
        self.resolutions.len()
    }

    /// How many addresses of bound ids (`/api/1/addr`) are being kept live.
    pub fn live_addrs(&self) -> usize {
        self.addrs.len()
    }

    /// Binds `path` through the dtab of `ns` followed by `local`, live. A
    /// namespace that does not exist binds as an empty dtab.
    pub fn bind(&self, ns: &Namespace, path: &Path, local: &Dtab) -> Binding {
        let key = (ns.clone(), path.clone(), local.show());
        let (store, interpreter, names) = (
            self.store.clone(),
            self.interpreter.clone(),
            self.bound_names.clone(),
        );
        let (ns, path, local) = (ns.clone(), path.clone(), local.clone());
        self.bindings.subscribe(
            key.clone(),
            || Activity::Pending,
            move |publisher| {
                follow_binding(
                    store.clone(),
                    interpreter.clone(),
                    names.clone(),
                    key.clone(),
                    (ns.clone(), path.clone(), local.clone()),
                    publisher,
                )
            },
        )
    }

    /// The address of a bound id (e.g. `/#/io.l5d.fs/web`), live.
    pub fn addr(&self, id: &Path) -> Live<Addr> {
        let interpreter = self.interpreter.clone();
        let id2 = id.clone();
        self.addrs.subscribe(
            id.clone(),
            || Addr::Pending,
            move |publisher| {
                let binding = interpreter.bind(&Dtab::empty(), &id2);
                let id = id2.clone();
                follow_addr(binding, publisher, move |tree| match tree {
                    NameTree::Leaf(b) if b.id == id => Some(b.addr.clone()),
                    _ => None,
                })
            },
        )
    }

    /// One address for `path` in `ns` (namerd's `resolve`), live.
    pub fn resolve(&self, ns: &Namespace, path: &Path, local: &Dtab) -> Live<Addr> {
        let binding = self.bind(ns, path, local);
        let key = (ns.clone(), path.clone(), local.show());
        self.resolutions.subscribe(
            key,
            || Addr::Pending,
            move |publisher| {
                follow_addr(binding.clone(), publisher, |tree| {
                    match choose(tree, &mut pick_by_weight) {
                        Resolved::Leaf(b) => Some(b.addr.clone()),
                        Resolved::Empty => Some(Live::constant(Addr::bound(Vec::new()))),
                        Resolved::Neg => None,
                    }
                })
            },
        )
    }

    /// Explains how `path` resolves in `ns` with `local` appended.
    pub async fn delegate(
        &self,
        ns: &Namespace,
        path: &Path,
        local: &Dtab,
    ) -> Result<Delegation, DelegateError> {
        let stored = self
            .store
            .get(ns)
            .await
            .map_err(|e| DelegateError::Store(e.to_string()))?;
        let dtab = stored.map(|d| d.dtab).unwrap_or_default().concat(local);
        self.interpreter
            .delegate(&dtab, path)
            .await
            .map_err(DelegateError::Naming)
    }

    /// The ids bound by live bindings, live.
    pub fn bound_names(&self) -> Live<BTreeSet<String>> {
        self.bound_names.publisher.subscribe()
    }
}

/// Why a delegation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    /// The store could not be read.
    #[error("{0}")]
    Store(String),
    /// Resolution failed as a whole (e.g. the depth limit).
    #[error("{0}")]
    Naming(NamingError),
}

/// Keeps `publisher` equal to the binding of `path` through the stored
/// dtab of `ns` plus `local`, rebinding whenever the stored dtab changes.
async fn follow_binding(
    store: Arc<dyn DtabStore>,
    interpreter: Interpreter,
    names: Arc<BoundNames>,
    key: BindKey,
    (ns, path, local): (Namespace, Path, Dtab),
    publisher: Arc<Publisher<Activity<NameTree<Bound>>>>,
) {
    let mut stored = store.watch(&ns);
    let mut current: Option<(Dtab, Binding)> = None;
    loop {
        let dtab = match &*stored.load() {
            Activity::Ok(found) => Some(
                found
                    .as_ref()
                    .map(|d| d.dtab.clone())
                    .unwrap_or_default()
                    .concat(&local),
            ),
            Activity::Pending => None,
            Activity::Failed(e) => {
                if current.is_none() {
                    publisher.publish(Activity::Failed(e.clone()));
                }
                None
            }
        };
        if let Some(dtab) = dtab
            && current.as_ref().is_none_or(|(d, _)| *d != dtab)
        {
            let binding = interpreter.bind(&dtab, &path);
            current = Some((dtab, binding));
        }
        let publish = |binding: &Binding| {
            let state = binding.load();
            names.update(&key, &state);
            publisher.publish_if_changed((*state).clone());
        };
        if let Some((_, binding)) = &current {
            publish(binding);
        }
        tokio::select! {
            () = publisher.closed() => break,
            () = stored.changed() => {}
            () = async {
                match current.as_mut() {
                    Some((_, binding)) => binding.changed().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
    names.remove(&key);
}

/// Keeps `publisher` equal to the address `pick` selects from a binding,
/// following both the tree and the selected address.
async fn follow_addr(
    mut binding: Binding,
    publisher: Arc<Publisher<Addr>>,
    pick: impl Fn(&NameTree<Bound>) -> Option<Live<Addr>> + Send,
) {
    loop {
        let mut addr = match &*binding.load() {
            Activity::Ok(tree) => pick(tree),
            Activity::Pending => Some(Live::constant(Addr::Pending)),
            Activity::Failed(e) => Some(Live::constant(Addr::Failed(e.to_string().into()))),
        }
        .unwrap_or_else(|| Live::constant(Addr::Neg));
        loop {
            publisher.publish_if_changed((*addr.load()).clone());
            tokio::select! {
                () = publisher.closed() => return,
                () = binding.changed() => break,
                () = addr.changed() => {}
            }
        }
    }
}

/// The union of the ids bound by every live binding.
struct BoundNames {
    by_binding: Mutex<HashMap<BindKey, BTreeSet<String>>>,
    publisher: Publisher<BTreeSet<String>>,
}

impl Default for BoundNames {
    fn default() -> Self {
        BoundNames {
            by_binding: Mutex::default(),
            publisher: Publisher::new(BTreeSet::new()),
        }
    }
}

impl BoundNames {
    fn update(&self, key: &BindKey, state: &Activity<NameTree<Bound>>) {
        let Activity::Ok(tree) = state else { return };
        let ids: BTreeSet<String> = tree
            .eval()
            .unwrap_or_default()
            .iter()
            .map(|b| b.id.show())
            .collect();
        let mut by_binding = self
            .by_binding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if by_binding.get(key) != Some(&ids) {
            by_binding.insert(key.clone(), ids);
            self.publisher
                .publish_if_changed(by_binding.values().flatten().cloned().collect());
        }
    }

    fn remove(&self, key: &BindKey) {
        let mut by_binding = self
            .by_binding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if by_binding.remove(key).is_some() {
            self.publisher
                .publish_if_changed(by_binding.values().flatten().cloned().collect());
        }
    }
}
