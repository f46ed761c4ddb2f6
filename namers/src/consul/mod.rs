//! The `io.l5d.consul` namer: services registered in Consul, followed live
//! through blocking queries.
//!
//! Paths are `/<dc>/<service>[/residual]`, or with `includeTag`
//! `/<dc>/<tag>/<service>[/residual]`; the datacenter `.local` is the
//! agent's own (its `Config.Datacenter`, read once from `/v1/agent/self`).
//! A path with fewer labels is `~`. The bound id is the namer's prefix
//! followed by the datacenter, tag and service labels as written, and the
//! residual is the rest.
//!
//! Each (datacenter, tag, service) looked up has one watch, shared by
//! every lookup of it: a task that asks the catalog
//! (`/v1/catalog/service/<service>`), or with `useHealthCheck` the health
//! endpoint (`/v1/health/service/<service>`, keeping instances whose worst
//! check is in `healthStatuses`), then keeps asking with Consul's
//! `X-Consul-Index` and a wait, so an answer comes as soon as the service
//! changes. An index that goes backwards (a restore from a snapshot, a new
//! cluster) restarts the watch from index 0, as Consul's documentation says
//! clients must. A change of instances changes the bound address only; the
//! tree stays the same. The watch ends once no lookup and no address of it
//! is held any more.
//!
//! **Existence.** The lookup is `~` (so that a dtab's `|` falls through to
//! its next branch) whenever no instance is usable: Consul answers an
//! empty list for a service that does not exist, and an empty list for a
//! service with no instance with the tag, and the catalog has no notion of
//! a service without instances. With `useHealthCheck`, a service whose
//! instances are all outside `healthStatuses` is `~` too, as in Linkerd: an
//! empty endpoint set would make requests fail where a fallback branch
//! (`/#/io.l5d.consul/dc1/web | /#/io.l5d.consul/dc2/web`) could serve them.
//! An address already handed out turns [`Addr::Neg`] then. A datacenter
//! Consul cannot reach ("No path to datacenter") is `~` too, unless the
//! service had been found there before: that is an outage.
//!
//! **Outages.** A failed query (agent down, 5xx, timeout, unreadable
//! answer) is retried after a pause that starts at 100 ms and doubles up to
//! 30 s, with jitter; the last good endpoints stay bound meanwhile. Only a
//! watch that never had an answer reports the failure (as a failed lookup
//! and address). Each change between answering and failing is logged once
//! and counted ([`ConsulStats::state_changes`]), not each retry.
//!
//! Endpoints: an instance's address is its `ServiceAddress`, or its node's
//! `Address` when it has none or `preferServiceAddress` is false; a host
//! name is resolved through DNS when the answer arrives. Instances with no
//! address or port 0 are skipped. Each endpoint's weight (also in its
//! `endpoint_addr_weight` metadata) is the highest of its tags' `weights`,
//! else 1. With `setHost`, the address carries the `authority` metadata
//! `[<tag>.]<service>.service.<dc>.<domain>`, the domain being the agent's.
//!
//! The tests of this namer run against an in-process fake that follows
//! Consul's documented HTTP API (`integration::consul`), not a real agent.

mod client;
mod config;
mod watch;

pub use client::{Blocking, ConsulClient, KvEntry, QueryError};
pub use config::{
    Agent, ConsistencyMode, ConsulConfig, ConsulConfigError, HealthStatus, TagWeight, Timing,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dtab::{NameTree, Path};
use serde_json::{Map, Value};
use tokio::runtime::Handle;
use tokio::sync::{Notify, OnceCell};

use crate::config::NamerContext;
use crate::{
    Activity, Addr, AddrSet, Bound, Live, Lookup, Name, Namer, NamerCounter, NamingError, Publisher,
};
use client::AgentInfo;

/// The datacenter label that stands for the agent's own.
pub const LOCAL_DATACENTER: &str = ".local";

/// Counters of a Consul namer, for metrics and tests.
#[derive(Debug, Default)]
pub struct ConsulStats {
    /// Watches started (one per datacenter, tag and service in use).
    pub watches_started: AtomicU64,
    /// Watches ended (nobody used them any more).
    pub watches_ended: AtomicU64,
    /// Queries sent to Consul, blocking or not.
    pub queries: AtomicU64,
    /// Queries that failed.
    pub errors: AtomicU64,
    /// Times a watch went from answering to failing or back.
    pub state_changes: AtomicU64,
    /// Times a watch published a new answer (endpoints, or `~`).
    pub updates: AtomicU64,
}

/// The `io.l5d.consul` namer.
pub struct ConsulNamer {
    inner: Arc<Inner>,
}

type Tree = Activity<NameTree<Name>>;

/// What one watch follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WatchKey {
    /// As written in the path (`.local` included).
    dc: String,
    tag: Option<String>,
    service: String,
}

/// What the lookups of a watch answer.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    /// No answer yet.
    Pending,
    /// No answer ever, only this failure.
    Failed(Arc<str>),
    /// No usable instance.
    Absent,
    /// Usable instances: the address is bound.
    Present,
}

/// A new state for a watch's address and lookups.
#[derive(Debug)]
enum Update {
    Bound(AddrSet),
    Absent,
    Failed(Arc<str>),
}

struct Inner {
    prefix: Path,
    client: ConsulClient,
    settings: config::Settings,
    /// The agent's datacenter and domain, asked once when first needed.
    agent: OnceCell<AgentInfo>,
    state: Mutex<State>,
    stats: ConsulStats,
}

#[derive(Default)]
struct State {
    watches: HashMap<WatchKey, Entry>,
}

/// A watch somebody holds a lookup or an address of.
struct Entry {
    id: Path,
    addr: Arc<Publisher<Addr>>,
    /// One live tree per residual path looked up.
    trees: HashMap<Path, Arc<Publisher<Tree>>>,
    answer: Answer,
    /// Tells the watch task to end; also tells a task that it has been
    /// replaced (each run of a watch has its own).
    stop: Arc<Notify>,
    /// Whether a task waits for the last address handle to go.
    addr_reaper: bool,
}

impl ConsulNamer {
    fn new(prefix: Path, settings: config::Settings) -> Arc<ConsulNamer> {
        Arc::new(ConsulNamer {
            inner: Arc::new(Inner {
                prefix,
                client: ConsulClient::new(settings.agent.clone(), settings.timing.request_timeout),
                settings,
                agent: OnceCell::new(),
                state: Mutex::default(),
                stats: ConsulStats::default(),
            }),
        })
    }

    /// The counters of this namer.
    pub fn stats(&self) -> &ConsulStats {
        &self.inner.stats
    }

    /// How many watch tasks are running; zero once every lookup and
    /// address has been dropped (and the tasks have noticed).
    pub fn active_watches(&self) -> u64 {
        let stats = &self.inner.stats;
        let started = stats.watches_started.load(Ordering::Relaxed);
        started.saturating_sub(stats.watches_ended.load(Ordering::Relaxed))
    }

    /// How many times a watch went from answering to failing or back.
    pub fn state_changes(&self) -> u64 {
        self.inner.stats.state_changes.load(Ordering::Relaxed)
    }

    /// How many (datacenter, tag, service) are tracked (looked up, or
    /// whose address is held).
    pub fn watched_count(&self) -> usize {
        self.inner.lock().watches.len()
    }
}

impl Namer for ConsulNamer {
    fn counters(&self) -> Vec<NamerCounter> {
        let stats = &self.inner.stats;
        let read = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        vec![
            NamerCounter::state_changes(read(&stats.state_changes)),
            NamerCounter::watches_started(read(&stats.watches_started)),
            NamerCounter::watches_ended(read(&stats.watches_ended)),
            NamerCounter::errors(read(&stats.errors)),
            NamerCounter::updates(read(&stats.updates)),
        ]
    }

    fn lookup(&self, path: &Path) -> Lookup {
        let include_tag = self.inner.settings.include_tag;
        let named = if include_tag { 3 } else { 2 };
        let labels: Option<Vec<&str>> = path
            .elems()
            .iter()
            .take(named)
            .map(|l| l.as_str())
            .collect();
        let key = match labels.as_deref() {
            Some([dc, service]) if !include_tag => WatchKey {
                dc: dc.to_string(),
                tag: None,
                service: service.to_string(),
            },
            Some([dc, tag, service]) if include_tag => WatchKey {
                dc: dc.to_string(),
                tag: Some(tag.to_string()),
                service: service.to_string(),
            },
            _ => return Live::constant(Activity::Ok(NameTree::Neg)),
        };
        let Ok(runtime) = Handle::try_current() else {
            return Live::constant(Activity::Failed(NamingError::namer(
                "io.l5d.consul: lookup outside a tokio runtime",
            )));
        };
        let residual = path.drop_first(named);
        let inner = &self.inner;
        let mut state = inner.lock();
        let mut new_watch = false;
        let entry = state.watches.entry(key.clone()).or_insert_with(|| {
            new_watch = true;
            Entry::new(
                inner
                    .prefix
                    .concat_labels(path.elems().get(..named).unwrap_or_default()),
            )
        });
        let tree = match entry.trees.get(&residual) {
            Some(tree) => tree.clone(),
            None => {
                let tree = Arc::new(Publisher::new(entry.tree(&residual)));
                entry.trees.insert(residual.clone(), tree.clone());
                let (inner, key) = (inner.clone(), key.clone());
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
            let stop = entry.stop.clone();
            runtime.spawn(watch::run(inner.clone(), key, stop));
        }
        live
    }
}

impl Entry {
    fn new(id: Path) -> Entry {
        Entry {
            id,
            addr: Arc::new(Publisher::new(Addr::Pending)),
            trees: HashMap::new(),
            answer: Answer::Pending,
            stop: Arc::new(Notify::new()),
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

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent; a panic in
        // one cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The agent's datacenter and domain, asked once.
    async fn agent(&self) -> Result<&AgentInfo, QueryError> {
        self.agent
            .get_or_try_init(|| self.client.agent_info())
            .await
    }

    /// Applies a watch's new state, unless the watch has been stopped or
    /// replaced; says whether anything changed.
    fn publish(&self, key: &WatchKey, stop: &Arc<Notify>, update: Update) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.watches.get_mut(key) else {
            return false;
        };
        if !Arc::ptr_eq(&entry.stop, stop) {
            return false;
        }
        // The address first, so a binding that sees the new tree already
        // sees its endpoints.
        let (addr, answer) = match update {
            Update::Bound(set) => (Addr::Bound(set), Answer::Present),
            Update::Absent => (Addr::Neg, Answer::Absent),
            Update::Failed(why) => (Addr::Failed(why.clone()), Answer::Failed(why)),
        };
        let mut changed = entry.addr.publish_if_changed(addr);
        if entry.answer != answer {
            entry.answer = answer;
            changed = true;
            for (residual, tree) in &entry.trees {
                tree.publish_if_changed(entry.tree(residual));
            }
        }
        if changed {
            self.stats.updates.fetch_add(1, Ordering::Relaxed);
        }
        changed
    }

    /// Drops the tree of a lookup nobody holds; says whether the reaper is
    /// done.
    fn release_tree(
        self: &Arc<Self>,
        key: &WatchKey,
        residual: &Path,
        tree: &Arc<Publisher<Tree>>,
    ) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.watches.get_mut(key) else {
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
                remove_watch(&mut state, key);
            } else if !entry.addr_reaper {
                entry.addr_reaper = true;
                let (inner, key) = (self.clone(), key.clone());
                tokio::spawn(
                    entry
                        .addr
                        .clone()
                        .release_when_unused(move |addr| inner.release_addr(&key, addr)),
                );
            }
        }
        true
    }

    /// Ends a watch whose address nobody holds and that nobody looks up;
    /// says whether the reaper is done.
    fn release_addr(&self, key: &WatchKey, addr: &Arc<Publisher<Addr>>) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.watches.get_mut(key) else {
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
        remove_watch(&mut state, key);
        true
    }
}

fn remove_watch(state: &mut State, key: &WatchKey) {
    if let Some(entry) = state.watches.remove(key) {
        entry.stop.notify_one();
    }
}

/// Builds the namer from its config block (the registry's entry point).
pub(crate) fn build(
    prefix: &Path,
    params: &Map<String, Value>,
    _: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: ConsulConfig = crate::config::kind_params(params)?;
    Ok(config.build(prefix.clone()).map_err(|e| e.to_string())?)
}
