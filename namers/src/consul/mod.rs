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
pub mod kv;
mod watch;

pub use client::{Blocking, ConsulClient, KvEntry, QueryError};
pub use config::{
    Agent, ConsistencyMode, ConsulConfig, ConsulConfigError, HealthStatus, TagWeight, Timing,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dtab::{NameTree, Path};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::config::NamerContext;
use crate::namer_table::{Found, NamerTable};
use crate::{Activity, Live, Lookup, Namer, NamerCounter, Publisher};
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

/// What one watch follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WatchKey {
    /// As written in the path (`.local` included).
    dc: String,
    tag: Option<String>,
    service: String,
}

struct Inner {
    prefix: Path,
    client: ConsulClient,
    settings: config::Settings,
    /// The agent's datacenter and domain, asked once when first needed.
    agent: OnceCell<AgentInfo>,
    table: NamerTable<WatchKey>,
    stats: ConsulStats,
}

impl ConsulNamer {
    fn new(prefix: Path, settings: config::Settings) -> Arc<ConsulNamer> {
        Arc::new(ConsulNamer {
            inner: Arc::new(Inner {
                prefix,
                client: ConsulClient::new(settings.agent.clone(), settings.timing.request_timeout),
                settings,
                agent: OnceCell::new(),
                table: NamerTable::new("io.l5d.consul"),
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
        self.inner.table.len()
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
        let inner = &self.inner;
        let id = inner
            .prefix
            .concat_labels(path.elems().get(..named).unwrap_or_default());
        let watch = {
            let (inner, key) = (inner.clone(), key.clone());
            move |found| watch::run(inner.clone(), key.clone(), found)
        };
        let residual = path.drop_first(named);
        inner
            .table
            .lookup(key, id, residual, || Found::Pending, watch)
    }
}

impl Inner {
    /// The agent's datacenter and domain, asked once.
    async fn agent(&self) -> Result<&AgentInfo, QueryError> {
        self.agent
            .get_or_try_init(|| self.client.agent_info())
            .await
    }

    /// Publishes a watch's new state, counting it if it changed anything.
    fn publish(&self, publisher: &Publisher<Found>, found: Found) {
        if publisher.publish_if_changed(found) {
            self.stats.updates.fetch_add(1, Ordering::Relaxed);
        }
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
