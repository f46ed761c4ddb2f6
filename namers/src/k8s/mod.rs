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
mod config_map;
mod resolve;
mod watch;

pub use config::{
    ApiServer, DEFAULT_NAMESPACE_VAR, K8sConfig, K8sConfigError, K8sExternalConfig, K8sNsConfig,
    Timing, api_server, kube_client,
};
pub use config_map::{ConfigMapEvent, ConfigMapWatch};
pub use resolve::NODE_NAME_KEY;
pub use watch::refused as watch_refused;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dtab::{NameTree, Path};
use serde_json::{Map, Value};

use crate::config::NamerContext;
use crate::namer_table::{Found, NamerTable, outside_runtime};
use crate::serversets::HostPort;
use crate::serversets::resolve::Hosts;
use crate::system::inet::InetResolver;
use crate::{
    Activity, Addr, AddrSet, Live, LiveCache, Lookup, Metadata, Namer, NamerCounter, Publisher,
};
use config::Mode;
use resolve::{EndpointsInfo, PortRef, Resolution, ServiceInfo};

const KIND: &str = "io.l5d.k8s";

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

struct Inner {
    prefix: Path,
    settings: config::Settings,
    /// Made on first use: building a client needs a runtime.
    client: Mutex<Option<kube::Client>>,
    namespaces: LiveCache<NsKey, NsState>,
    /// Each (port, service) of a namespace, derived from its watch.
    table: NamerTable<(NsKey, EntryKey)>,
    stats: K8sStats,
    /// Resolves load balancers named by host (`io.l5d.k8s.external`).
    inet: Option<Arc<InetResolver>>,
}

/// What a namespace watch has seen.
#[derive(Clone, Default)]
struct NsState {
    services: HashMap<Arc<str>, Arc<ServiceInfo>>,
    endpoints: HashMap<Arc<str>, Arc<EndpointsInfo>>,
    services_listed: bool,
    endpoints_listed: bool,
    /// Why the watch fails, while it has never listed.
    failure: Option<Arc<str>>,
    /// Who to tell of a change (shared by every state of one watch).
    signals: Arc<Signals>,
}

/// Tells the lookups of a namespace which changes concern them: an event
/// for one service wakes only that service's lookups, not every one in the
/// namespace.
#[derive(Default)]
struct Signals {
    /// A change for every service: listed, listed again, failing.
    all: tokio::sync::watch::Sender<()>,
    by_service: Mutex<HashMap<Arc<str>, tokio::sync::watch::Sender<()>>>,
}

impl Signals {
    /// Receivers told of a change to `service`, and of one to all.
    fn subscribe(
        &self,
        service: &str,
    ) -> (
        tokio::sync::watch::Receiver<()>,
        tokio::sync::watch::Receiver<()>,
    ) {
        let mut by_service = self
            .by_service
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mine = by_service
            .entry(service.into())
            .or_insert_with(|| tokio::sync::watch::channel(()).0)
            .subscribe();
        (mine, self.all.subscribe())
    }

    /// Tells the lookups of `service` (all of them, for `None`) that the
    /// namespace's state changed.
    fn changed(&self, service: Option<&str>) {
        let Some(service) = service else {
            self.all.send_replace(());
            return;
        };
        let mut by_service = self
            .by_service
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = by_service.get(service) {
            if tx.receiver_count() == 0 {
                by_service.remove(service);
            } else {
                tx.send_replace(());
            }
        }
    }
}

/// What a (port, service) is resolved from.
#[derive(PartialEq)]
struct Inputs {
    listed: bool,
    failure: Option<Arc<str>>,
    service: Option<Arc<ServiceInfo>>,
    endpoints: Option<Arc<EndpointsInfo>>,
}

impl K8sNamer {
    fn new(prefix: Path, settings: config::Settings) -> Arc<K8sNamer> {
        K8sNamer::with_inet(prefix, settings, None)
    }

    fn with_inet(
        prefix: Path,
        settings: config::Settings,
        inet: Option<Arc<InetResolver>>,
    ) -> Arc<K8sNamer> {
        Arc::new(K8sNamer {
            inner: Arc::new(Inner {
                prefix,
                settings,
                client: Mutex::new(None),
                namespaces: LiveCache::default(),
                table: NamerTable::new(KIND),
                stats: K8sStats::default(),
                inet,
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
        self.inner.table.len()
    }

    /// The namespace, port and service a path names, and how many labels
    /// that took; `None` when the path is too short. With a fixed
    /// namespace (`io.l5d.k8s.ns`), paths leave it out.
    fn parse(&self, path: &Path) -> Option<(NsKey, EntryKey, usize)> {
        let settings = &self.inner.settings;
        let label = settings.label.as_deref();
        let fixed = settings.namespace.as_ref();
        let named = 2 + usize::from(fixed.is_none()) + usize::from(label.is_some());
        let mut labels: Vec<String> = path
            .elems()
            .iter()
            .take(named)
            .map(|l| l.as_str().map(str::to_ascii_lowercase))
            .collect::<Option<_>>()?;
        if labels.len() < named {
            return None;
        }
        if let Some(namespace) = fixed {
            labels.insert(0, namespace.clone());
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
        let inner = &self.inner;
        let watch = {
            let (inner, key) = (inner.clone(), ns_key.clone());
            move |ns| watch::run(inner.clone(), key.clone(), ns)
        };
        let ns = inner
            .namespaces
            .try_subscribe(ns_key.clone(), NsState::default, watch);
        let Ok(ns) = ns else {
            return outside_runtime(KIND);
        };
        let id = inner
            .prefix
            .concat_labels(path.elems().get(..named).unwrap_or_default());
        let initial = || {
            let inputs = ns.load().inputs(&entry_key.service, inner.settings.mode);
            inputs.found(&entry_key.port, inner, &mut Hosts::default())
        };
        let follow = {
            let (inner, ns, key) = (inner.clone(), ns.clone(), entry_key.clone());
            move |found| follow(inner.clone(), ns.clone(), key.clone(), found)
        };
        let key = (ns_key, entry_key.clone());
        let residual = path.drop_first(named);
        inner.table.lookup(key, id, residual, initial, follow)
    }
}

impl NsState {
    /// Whether the watch has listed what `mode` needs.
    fn listed(&self, mode: Mode) -> bool {
        self.services_listed && (self.endpoints_listed || mode == Mode::External)
    }

    /// What `service` is resolved from as things stand.
    fn inputs(&self, service: &str, mode: Mode) -> Inputs {
        Inputs {
            listed: self.listed(mode),
            failure: self.failure.clone(),
            service: self.services.get(service).cloned(),
            endpoints: self.endpoints.get(service).cloned(),
        }
    }
}

impl Inputs {
    /// What a port of the service stands for; load balancers named by
    /// host are looked up in `hosts`.
    fn found(&self, port: &PortRef, inner: &Inner, hosts: &mut Hosts) -> Found {
        if !self.listed {
            return self.failure.clone().map_or(Found::Pending, Found::Failed);
        }
        if let (Mode::External, Some(inet)) = (inner.settings.mode, &inner.inet) {
            let Some(list) = resolve::resolve_external(self.service.as_deref(), port) else {
                hosts.clear();
                return Found::Absent;
            };
            let list = list
                .into_iter()
                .map(|(host, port)| (HostPort { host, port }, Metadata::default()))
                .collect();
            return Found::Present(hosts.resolve(inet, list));
        }
        match resolve::resolve(self.service.as_deref(), self.endpoints.as_deref(), port) {
            Resolution::Bound(endpoints) => Found::Present(Addr::Bound(AddrSet::new(endpoints))),
            Resolution::Neg => Found::Absent,
        }
    }
}

/// Keeps what a (port, service) stands for up to date with its namespace's
/// watch, until nobody holds it.
async fn follow(
    inner: Arc<Inner>,
    mut ns: Live<NsState>,
    key: EntryKey,
    found: Arc<Publisher<Found>>,
) {
    let mut resolved: Option<Inputs> = None;
    let (mut mine, mut all) = ns.load().signals.subscribe(&key.service);
    let mode = inner.settings.mode;
    // The DNS lookups of load balancers named by host; a change of their
    // answers is a change of the address as much as a watch event is.
    let mut hosts = Hosts::default();
    let mut hosts_changed = false;
    loop {
        // Seen before the state is read: a change made after this read
        // wakes the loop again.
        mine.borrow_and_update();
        all.borrow_and_update();
        ns.mark_seen();
        let inputs = ns.load().inputs(&key.service, mode);
        if hosts_changed || resolved.as_ref() != Some(&inputs) {
            if found.publish_if_changed(inputs.found(&key.port, &inner, &mut hosts)) {
                inner.stats.updates.fetch_add(1, Ordering::Relaxed);
            }
            resolved = Some(inputs);
        }
        hosts_changed = false;
        tokio::select! {
            _ = mine.changed() => {}
            _ = all.changed() => {}
            () = hosts.changed() => hosts_changed = true,
            () = found.closed() => return,
        }
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

/// Builds an `io.l5d.k8s.external` namer from its config block.
pub(crate) fn build_external(
    prefix: &Path,
    params: &Map<String, Value>,
    context: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: K8sExternalConfig = crate::config::kind_params(params)?;
    let namer = config.build_with(prefix.clone(), context.inet.clone(), Timing::default());
    Ok(namer.map_err(|e| e.to_string())?)
}

/// Builds an `io.l5d.k8s.ns` namer from its config block.
pub(crate) fn build_ns(
    prefix: &Path,
    params: &Map<String, Value>,
    _: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: K8sNsConfig = crate::config::kind_params(params)?;
    let namespace = config.namespace().map_err(|e| e.to_string())?;
    let namer = config.build_in(prefix.clone(), &namespace, Timing::default());
    Ok(namer.map_err(|e| e.to_string())?)
}
