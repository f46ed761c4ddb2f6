//! The `io.l5d.k8s` namer: Kubernetes Services and their Endpoints,
//! followed live through the API server's list + watch.
//!
//! Paths are `/<namespace>/<port>/<service>[/residual]`, or with
//! `labelSelector` `/<namespace>/<port>/<service>/<label value>[/residual]`
//! (only objects labelled `<labelSelector>=<label value>` count). These
//! labels are lower-cased, as Kubernetes names are. A path with fewer
//! labels is `~`. The bound id is the namer's prefix followed by those
//! labels; the residual is the rest.
//!
//! **Ports.** A port name picks the endpoints' port of that name (the
//! Service port's name). A number is a port of the Service: the endpoints'
//! port for that Service port, i.e. its `targetPort` as resolved per pod.
//! The `resolve` module has the details.
//!
//! **Existence.** A namespace, service or port that does not exist is `~`,
//! so that a dtab's `|` falls through to its next branch. A service that
//! exists with no ready pod is bound to an empty set of endpoints (as in
//! Linkerd). Only ready addresses are used.
//!
//! **Watches.** Each namespace (and label value) looked up has one watch
//! task, shared by every lookup in it: it lists then watches Services and
//! Endpoints (`kube::runtime::watcher`: resource versions, bookmarks, and a
//! fresh list when the server answers `410 Gone`). A change to one service
//! republishes only the lookups of that service, and a change of endpoints
//! changes the bound address only, not the tree. The task ends once no
//! lookup and no address of its namespace is held any more.
//!
//! **Outages.** A failed list or watch is retried after a pause that starts
//! at 100 ms and doubles up to 30 s, with jitter; the last good endpoints
//! stay bound meanwhile. Only a watch that never listed reports the failure
//! (as a failed lookup and address). Each change between answering and
//! failing is logged once and counted ([`K8sStats::state_changes`]), not
//! each retry. Since a resumed watch says nothing until something changes,
//! each retry after a failure also lists one object, which tells at once
//! whether the server is back.
//!
//! Endpoints carry the `nodeName` metadata of their address, which the
//! `io.l5d.k8s.daemonset` and `io.l5d.k8s.localnode` transformers use.
//!
//! The tests of this namer run against an in-process fake of the API
//! server's list + watch protocol (`integration::k8s`), not a real cluster.

mod config;
mod resolve;
mod watch;

pub use config::{ApiServer, K8sConfig, K8sConfigError, Timing};
pub use resolve::NODE_NAME_KEY;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dtab::{NameTree, Path};
use serde_json::{Map, Value};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::config::NamerContext;
use crate::{
    Activity, Addr, AddrSet, Bound, Live, Lookup, Name, Namer, NamerCounter, NamingError, Publisher,
};
use resolve::{EndpointsInfo, PortRef, Resolution, ServiceInfo};

/// Counters of a Kubernetes namer, for metrics and tests.
#[derive(Debug, Default)]
pub struct K8sStats {
    /// Namespace watches started.
    pub watches_started: AtomicU64,
    /// Namespace watches ended (nobody used them any more).
    pub watches_ended: AtomicU64,
    /// Watch events received (objects listed, added, changed, deleted).
    pub events: AtomicU64,
    /// Lists or watches that failed (not counting `410 Gone`).
    pub errors: AtomicU64,
    /// Times the server said `410 Gone` and a watch listed again.
    pub relists: AtomicU64,
    /// Times a namespace watch went from answering to failing or back.
    pub state_changes: AtomicU64,
    /// Times a lookup's answer or address changed.
    pub updates: AtomicU64,
}

/// The `io.l5d.k8s` namer.
pub struct K8sNamer {
    inner: Arc<Inner>,
}

type Tree = Activity<NameTree<Name>>;

/// What one namespace watch follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct NsKey {
    namespace: String,
    /// `<labelSelector>=<value>`, with `labelSelector`.
    selector: Option<String>,
}

/// One (port, service) looked up in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EntryKey {
    service: String,
    port: PortRef,
}

/// What the lookups of an entry answer.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Pending,
    Failed(Arc<str>),
    Absent,
    Present,
}

struct Inner {
    prefix: Path,
    settings: config::Settings,
    /// Made on first use: building a client needs a runtime.
    client: Mutex<Option<kube::Client>>,
    state: Mutex<State>,
    stats: K8sStats,
}

#[derive(Default)]
struct State {
    namespaces: HashMap<NsKey, NsWatch>,
}

/// A namespace somebody holds a lookup or an address in, and what its
/// watch has seen.
struct NsWatch {
    services: HashMap<String, ServiceInfo>,
    endpoints: HashMap<String, EndpointsInfo>,
    services_listed: bool,
    endpoints_listed: bool,
    /// Why the watch fails, while it has never listed.
    failure: Option<Arc<str>>,
    entries: HashMap<EntryKey, Entry>,
    /// Tells the watch task to end.
    stop: Arc<Notify>,
}

/// A (port, service) somebody holds a lookup or an address of.
struct Entry {
    id: Path,
    addr: Arc<Publisher<Addr>>,
    /// One live tree per residual path looked up.
    trees: HashMap<Path, Arc<Publisher<Tree>>>,
    answer: Answer,
    /// Whether a task waits for the last address handle to go.
    addr_reaper: bool,
}

impl K8sNamer {
    fn new(prefix: Path, settings: config::Settings) -> Arc<K8sNamer> {
        Arc::new(K8sNamer {
            inner: Arc::new(Inner {
                prefix,
                settings,
                client: Mutex::new(None),
                state: Mutex::default(),
                stats: K8sStats::default(),
            }),
        })
    }

    /// The counters of this namer.
    pub fn stats(&self) -> &K8sStats {
        &self.inner.stats
    }

    /// How many namespace watch tasks are running.
    pub fn active_watches(&self) -> u64 {
        let stats = &self.inner.stats;
        let started = stats.watches_started.load(Ordering::Relaxed);
        started.saturating_sub(stats.watches_ended.load(Ordering::Relaxed))
    }

    /// How many times a watch went from answering to failing or back.
    pub fn state_changes(&self) -> u64 {
        self.inner.stats.state_changes.load(Ordering::Relaxed)
    }

    /// How many (namespace, port, service) are tracked.
    pub fn watched_count(&self) -> usize {
        let state = self.inner.lock();
        state.namespaces.values().map(|ns| ns.entries.len()).sum()
    }

    /// The namespace, port and service a path names, and how many labels
    /// that took; `None` when the path is too short.
    fn parse(&self, path: &Path) -> Option<(NsKey, EntryKey, usize)> {
        let label = self.inner.settings.label.as_deref();
        let named = if label.is_some() { 4 } else { 3 };
        let labels: Vec<String> = path
            .elems()
            .iter()
            .take(named)
            .map(|l| l.as_str().map(str::to_ascii_lowercase))
            .collect::<Option<_>>()?;
        if labels.len() < named {
            return None;
        }
        let selector = label.map(|key| format!("{key}={}", labels[3]));
        let ns = NsKey {
            namespace: labels[0].clone(),
            selector,
        };
        let entry = EntryKey {
            port: PortRef::parse(&labels[1]),
            service: labels[2].clone(),
        };
        Some((ns, entry, named))
    }
}

impl Namer for K8sNamer {
    fn counters(&self) -> Vec<NamerCounter> {
        let stats = &self.inner.stats;
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            NamerCounter::state_changes(read(&stats.state_changes)),
            NamerCounter::watches_started(read(&stats.watches_started)),
            NamerCounter::watches_ended(read(&stats.watches_ended)),
            NamerCounter::errors(read(&stats.errors)),
            NamerCounter::updates(read(&stats.updates)),
            NamerCounter {
                name: "relists",
                help: "Times a Kubernetes watch listed again after 410 Gone",
                value: read(&stats.relists),
            },
        ]
    }

    fn lookup(&self, path: &Path) -> Lookup {
        let Some((ns_key, entry_key, named)) = self.parse(path) else {
            return Live::constant(Activity::Ok(NameTree::Neg));
        };
        let Ok(runtime) = Handle::try_current() else {
            return Live::constant(Activity::Failed(NamingError::namer(
                "io.l5d.k8s: lookup outside a tokio runtime",
            )));
        };
        let residual = path.drop_first(named);
        let inner = &self.inner;
        let mut state = inner.lock();
        let mut new_watch = false;
        let ns = state.namespaces.entry(ns_key.clone()).or_insert_with(|| {
            new_watch = true;
            NsWatch::new()
        });
        if !ns.entries.contains_key(&entry_key) {
            let labels = path.elems().get(..named).unwrap_or_default();
            let mut entry = Entry::new(inner.prefix.concat_labels(labels));
            ns.refresh(&entry_key, &mut entry);
            ns.entries.insert(entry_key.clone(), entry);
        }
        let Some(entry) = ns.entries.get_mut(&entry_key) else {
            return Live::constant(Activity::Pending);
        };
        let tree = match entry.trees.get(&residual) {
            Some(tree) => tree.clone(),
            None => {
                let tree = Arc::new(Publisher::new(entry.tree(&residual)));
                entry.trees.insert(residual.clone(), tree.clone());
                let key = (ns_key.clone(), entry_key);
                let inner = inner.clone();
                runtime
                    .spawn(tree.clone().release_when_unused(move |tree| {
                        inner.release_tree(&key, &residual, tree)
                    }));
                tree
            }
        };
        let live = tree.subscribe();
        if new_watch {
            inner.stats.watches_started.fetch_add(1, Ordering::Relaxed);
            let stop = ns.stop.clone();
            runtime.spawn(watch::run(inner.clone(), ns_key, stop));
        }
        live
    }
}

impl NsWatch {
    fn new() -> NsWatch {
        NsWatch {
            services: HashMap::new(),
            endpoints: HashMap::new(),
            services_listed: false,
            endpoints_listed: false,
            failure: None,
            entries: HashMap::new(),
            stop: Arc::new(Notify::new()),
        }
    }

    /// What `key` stands for as things stand.
    fn resolution(&self, key: &EntryKey) -> Result<Resolution, Option<Arc<str>>> {
        if !(self.services_listed && self.endpoints_listed) {
            return Err(self.failure.clone());
        }
        let service = self.services.get(&key.service);
        let endpoints = self.endpoints.get(&key.service);
        Ok(resolve::resolve(service, endpoints, &key.port))
    }

    /// Brings an entry up to date; says whether anything changed.
    fn refresh(&self, key: &EntryKey, entry: &mut Entry) -> bool {
        // The address first, so a binding that sees the new tree already
        // sees its endpoints.
        let (addr, answer) = match self.resolution(key) {
            Ok(Resolution::Bound(endpoints)) => {
                (Addr::Bound(AddrSet::new(endpoints)), Answer::Present)
            }
            Ok(Resolution::Neg) => (Addr::Neg, Answer::Absent),
            Err(Some(why)) => (Addr::Failed(why.clone()), Answer::Failed(why)),
            Err(None) => (Addr::Pending, Answer::Pending),
        };
        let mut changed = entry.addr.publish_if_changed(addr);
        if entry.answer != answer {
            entry.answer = answer;
            changed = true;
            for (residual, tree) in &entry.trees {
                tree.publish_if_changed(entry.tree(residual));
            }
        }
        changed
    }

    /// Brings the entries of `service` (or all, with `None`) up to date;
    /// returns how many changed.
    fn refresh_entries(&mut self, service: Option<&str>) -> u64 {
        let mut entries = std::mem::take(&mut self.entries);
        let mut changed = 0;
        for (key, entry) in &mut entries {
            if service.is_none_or(|s| s == key.service) && self.refresh(key, entry) {
                changed += 1;
            }
        }
        self.entries = entries;
        changed
    }
}

impl Entry {
    fn new(id: Path) -> Entry {
        Entry {
            id,
            addr: Arc::new(Publisher::new(Addr::Pending)),
            trees: HashMap::new(),
            answer: Answer::Pending,
            addr_reaper: false,
        }
    }

    /// The lookup answer for `residual` as things stand.
    fn tree(&self, residual: &Path) -> Tree {
        match &self.answer {
            Answer::Pending => Activity::Pending,
            Answer::Failed(why) => Activity::Failed(NamingError::Namer(why.clone())),
            Answer::Absent => Activity::Ok(NameTree::Neg),
            Answer::Present => {
                let bound = Bound::new(self.id.clone(), residual.clone(), self.addr.subscribe());
                Activity::Ok(NameTree::Leaf(Name::Bound(bound)))
            }
        }
    }
}

type FullKey = (NsKey, EntryKey);

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes what a namespace watch knows with `change` and republishes
    /// the entries of `service` (all entries with `None`), unless the watch
    /// has been stopped or replaced.
    fn update(
        &self,
        key: &NsKey,
        stop: &Arc<Notify>,
        service: Option<&str>,
        change: impl FnOnce(&mut NsWatch),
    ) {
        let mut state = self.lock();
        let Some(ns) = state.namespaces.get_mut(key) else {
            return;
        };
        if !Arc::ptr_eq(&ns.stop, stop) {
            return;
        }
        change(ns);
        let changed = ns.refresh_entries(service);
        self.stats.updates.fetch_add(changed, Ordering::Relaxed);
    }

    /// Drops the tree of a lookup nobody holds; says whether the reaper is
    /// done.
    fn release_tree(
        self: &Arc<Self>,
        (ns_key, key): &FullKey,
        residual: &Path,
        tree: &Arc<Publisher<Tree>>,
    ) -> bool {
        let mut state = self.lock();
        let Some(entry) = state
            .namespaces
            .get_mut(ns_key)
            .and_then(|ns| ns.entries.get_mut(key))
        else {
            return true;
        };
        if !entry
            .trees
            .get(residual)
            .is_some_and(|t| Arc::ptr_eq(t, tree))
        {
            return true;
        }
        if tree.subscriber_count() > 0 {
            // Looked up again since it closed.
            return false;
        }
        entry.trees.remove(residual);
        // Its last value holds an address handle; dropping it now lets the
        // watch end at once instead of through an address reaper.
        tree.publish(Activity::Pending);
        if entry.trees.is_empty() {
            if entry.addr.subscriber_count() == 0 {
                remove_entry(&mut state, ns_key, key);
            } else if !entry.addr_reaper {
                entry.addr_reaper = true;
                let full = (ns_key.clone(), key.clone());
                let inner = self.clone();
                tokio::spawn(
                    entry
                        .addr
                        .clone()
                        .release_when_unused(move |addr| inner.release_addr(&full, addr)),
                );
            }
        }
        true
    }

    /// Forgets an entry whose address nobody holds and that nobody looks
    /// up; says whether the reaper is done.
    fn release_addr(&self, (ns_key, key): &FullKey, addr: &Arc<Publisher<Addr>>) -> bool {
        let mut state = self.lock();
        let Some(entry) = state
            .namespaces
            .get_mut(ns_key)
            .and_then(|ns| ns.entries.get_mut(key))
        else {
            return true;
        };
        if !Arc::ptr_eq(&entry.addr, addr) {
            return true;
        }
        if !entry.trees.is_empty() {
            // Looked up again: the trees' reapers take over.
            entry.addr_reaper = false;
            return true;
        }
        if addr.subscriber_count() > 0 {
            return false;
        }
        remove_entry(&mut state, ns_key, key);
        true
    }
}

/// Forgets an entry, and its namespace's watch when it was the last.
fn remove_entry(state: &mut State, ns_key: &NsKey, key: &EntryKey) {
    let Some(ns) = state.namespaces.get_mut(ns_key) else {
        return;
    };
    ns.entries.remove(key);
    if ns.entries.is_empty()
        && let Some(ns) = state.namespaces.remove(ns_key)
    {
        ns.stop.notify_one();
    }
}

/// Builds the namer from its config block (the registry's entry point).
pub(crate) fn build(
    prefix: &Path,
    params: &Map<String, Value>,
    _: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: K8sConfig = crate::config::kind_params(params)?;
    Ok(config.build(prefix.clone()).map_err(|e| e.to_string())?)
}
