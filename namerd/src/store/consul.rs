//! `io.l5d.consul`: dtabs in Consul's KV store, one key per namespace.
//!
//! Namespace `ns` lives at the key `<pathPrefix>/<ns>` (by default
//! `namerd/dtabs/<ns>`); its value is the dtab's text and its version the
//! key's `ModifyIndex`, as 8 big-endian bytes. Writes are compare-and-set
//! PUTs (`?cas=`). Watches are Consul blocking queries: one per watched
//! namespace and one for the list, shared by every watcher, and stopped when
//! the last watcher goes away. A value that is not a dtab is never served as
//! one: a watch keeps its last good dtab (and fails if it never had one).
//!
//! The tests of this module run against an in-process fake that follows
//! Consul's documented HTTP API (`integration::consul`), not a real agent.

mod client;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dtab::Dtab;
use futures_util::future::{BoxFuture, FutureExt};
use namers::backoff::Backoff;
use namers::{Activity, Live, NamingError, Publisher};
use tokio::time::Instant;

use self::client::{Blocking, KvClient, KvEntry};
use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

/// The `kind` of this store in namerd's config.
pub const KIND: &str = "io.l5d.consul";

/// Consul's limit on the `wait` of a blocking query.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The shortest time between two queries of one watch, so that a busy
/// cluster does not make a watch spin.
const MIN_QUERY_INTERVAL: Duration = Duration::from_millis(50);

/// How many times a delete reads and compare-and-deletes before giving up
/// on a namespace that keeps changing under it.
const DELETE_ATTEMPTS: usize = 5;

/// Which of Consul's consistency modes a read uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsistencyMode {
    /// The leader answers without checking it still leads.
    #[default]
    Default,
    /// Any server answers, possibly with slightly old data.
    Stale,
    /// The leader checks with a quorum before answering.
    Consistent,
}

impl ConsistencyMode {
    /// The query flag Consul expects, if any.
    fn flag(self) -> Option<&'static str> {
        match self {
            ConsistencyMode::Default => None,
            ConsistencyMode::Stale => Some("stale"),
            ConsistencyMode::Consistent => Some("consistent"),
        }
    }
}

/// The `io.l5d.consul` storage config, with Linkerd's keys and defaults.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsulConfig {
    /// The Consul agent's host name or IP address; `localhost` by default.
    pub host: Option<String>,
    /// The agent's HTTP port; 8500 by default.
    pub port: Option<u16>,
    /// The KV folder holding one key per namespace; `/namerd/dtabs` by default.
    pub path_prefix: Option<String>,
    /// The ACL token sent with every call, if any.
    pub token: Option<String>,
    /// The datacenter whose KV store is used; the agent's own by default.
    pub datacenter: Option<String>,
    /// The consistency of reads and watches; `default` by default.
    pub read_consistency_mode: Option<ConsistencyMode>,
    /// The consistency of the reads a write makes (the check after a lost
    /// compare-and-set, the read before a delete, the read of the version a
    /// write made); `default` by default.
    pub write_consistency_mode: Option<ConsistencyMode>,
    /// Accepted for compatibility with Linkerd's config. Here a call to an
    /// unreachable agent always fails at once and watches retry with
    /// backoff, whatever its value.
    pub fail_fast: Option<bool>,
}

/// Timeouts and retry pacing; not part of the config file.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long one blocking query may wait for a change (Consul caps it
    /// at 10 minutes).
    pub wait: Duration,
    /// The limit on a call that is not a blocking query. A blocking query
    /// may take `wait`, plus Consul's random extra of up to `wait / 16`,
    /// plus this.
    pub request_timeout: Duration,
    /// The first pause of a watch after a failed query.
    pub backoff_min: Duration,
    /// The longest pause of a watch between failed queries.
    pub backoff_max: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl ConsulConfig {
    /// Checks the config and builds the store with the default [`Timing`].
    pub fn build(&self) -> Result<ConsulStore, String> {
        self.build_with(Timing::default())
    }

    /// Checks the config and builds the store with the given timing.
    pub fn build_with(&self, timing: Timing) -> Result<ConsulStore, String> {
        let host = self.host.as_deref().unwrap_or("localhost");
        let port = self.port.unwrap_or(8500);
        if port == 0 {
            return Err("port: must be between 1 and 65535".to_string());
        }
        let prefix = parse_path_prefix(self.path_prefix.as_deref().unwrap_or("/namerd/dtabs"))
            .map_err(|e| format!("pathPrefix: {e}"))?;
        if let Some(dc) = &self.datacenter {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            if dc.is_empty() || !dc.chars().all(allowed) {
                return Err(format!(
                    "datacenter: {dc:?} is not a datacenter name (letters, digits, '-', '_', '.')"
                ));
            }
        }
        let timing = Timing {
            wait: timing.wait.clamp(Duration::from_millis(1), MAX_WAIT),
            ..timing
        };
        let client = KvClient::new(
            host,
            port,
            self.token.as_deref(),
            self.datacenter.clone(),
            timing,
        )?;
        Ok(ConsulStore {
            inner: Arc::new(Inner {
                client,
                prefix,
                read: self.read_consistency_mode.unwrap_or_default(),
                write: self.write_consistency_mode.unwrap_or_default(),
                timing,
                watches: Mutex::new(Watches::default()),
            }),
        })
    }
}

/// Checks a `pathPrefix` such as `/namerd/dtabs` and returns it as a key
/// prefix without slashes at either end (empty for `/`).
fn parse_path_prefix(text: &str) -> Result<String, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!("{text:?} must start with '/'"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(String::new());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    for segment in rest.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!("{text:?} has an empty, '.' or '..' segment"));
        }
        if !segment.chars().all(allowed) {
            return Err(format!(
                "{text:?}: segment {segment:?} may only hold letters, digits, '-', '_', '.' and '~'"
            ));
        }
    }
    Ok(rest.to_string())
}

/// Dtabs in Consul's KV store.
pub struct ConsulStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: KvClient,
    /// The key prefix, without slashes at either end.
    prefix: String,
    read: ConsistencyMode,
    write: ConsistencyMode,
    timing: Timing,
    watches: Mutex<Watches>,
}

type DtabPublisher = Arc<Publisher<Activity<Option<VersionedDtab>>>>;
type ListPublisher = Arc<Publisher<Activity<BTreeSet<Namespace>>>>;

/// The running watches, so that watchers of one thing share one query.
#[derive(Default)]
struct Watches {
    list: Option<ListPublisher>,
    dtabs: HashMap<Namespace, DtabPublisher>,
}

impl ConsulStore {
    /// The Consul key that holds the dtab of `ns`.
    pub fn key(&self, ns: &Namespace) -> String {
        self.inner.key(ns)
    }
}

impl Inner {
    fn key(&self, ns: &Namespace) -> String {
        if self.prefix.is_empty() {
            ns.as_str().to_string()
        } else {
            format!("{}/{}", self.prefix, ns)
        }
    }

    /// The prefix that lists namespaces: the folder, with its slash.
    fn list_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    fn lock(&self) -> MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The namespaces among the keys of a `?keys` listing.
    fn namespaces(&self, keys: Vec<String>) -> BTreeSet<Namespace> {
        let prefix = self.list_prefix();
        keys.into_iter()
            .filter_map(|key| {
                let name = key.strip_prefix(&prefix)?;
                // Sub-folders (`name/`) and names namerd cannot serve are
                // not namespaces.
                match Namespace::new(name) {
                    Ok(ns) => Some(ns),
                    Err(e) => {
                        if !name.is_empty() {
                            tracing::debug!(key, error = %e, "consul: ignoring a key that is not a namespace");
                        }
                        None
                    }
                }
            })
            .collect()
    }

    /// The version of `ns` after our write of `text` succeeded. Consul does
    /// not say which index a PUT made, so it is read back.
    async fn written_version(&self, ns: &Namespace, text: &str) -> StoreResult<Version> {
        // A stale read could miss the write just made.
        let mode = match self.write {
            ConsistencyMode::Stale => ConsistencyMode::Default,
            mode => mode,
        };
        let (_, entry) = self
            .client
            .get(&self.key(ns), mode, Blocking::No)
            .await
            .map_err(StoreError::Backend)?;
        Ok(match entry {
            Some(entry) if entry.value == text.as_bytes() => Version::from_u64(entry.modify_index),
            // Someone wrote after us. Our write's index is below theirs, and
            // so is this one: a compare-and-set with it fails, as it should.
            Some(entry) => Version::from_u64(entry.modify_index.saturating_sub(1)),
            // Deleted since: no key has ModifyIndex 0, so this fails too.
            None => Version::from_u64(0),
        })
    }

    async fn exists(&self, ns: &Namespace) -> StoreResult<bool> {
        let (_, entry) = self
            .client
            .get(&self.key(ns), self.write, Blocking::No)
            .await
            .map_err(StoreError::Backend)?;
        Ok(entry.is_some())
    }
}

/// The dtab stored in `entry`, or why it is not one.
fn parse_entry(key: &str, entry: &KvEntry) -> Result<VersionedDtab, String> {
    let text = std::str::from_utf8(&entry.value)
        .map_err(|_| format!("the value of Consul key {key} is not UTF-8 text"))?;
    let dtab = Dtab::read(text)
        .map_err(|e| format!("the value of Consul key {key} is not a valid dtab: {e}"))?;
    Ok(VersionedDtab {
        dtab,
        version: Version::from_u64(entry.modify_index),
    })
}

impl DtabStore for ConsulStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        async move {
            let inner = &self.inner;
            let (_, keys) = inner
                .client
                .keys(&inner.list_prefix(), inner.read, Blocking::No)
                .await
                .map_err(StoreError::Backend)?;
            Ok(inner.namespaces(keys))
        }
        .boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        async move {
            let key = self.inner.key(ns);
            let (_, entry) = self
                .inner
                .client
                .get(&key, self.inner.read, Blocking::No)
                .await
                .map_err(StoreError::Backend)?;
            entry
                .map(|e| parse_entry(&key, &e))
                .transpose()
                .map_err(StoreError::Backend)
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        async move {
            let inner = &self.inner;
            let text = dtab.show();
            let created = inner
                .client
                .put(&inner.key(ns), text.clone(), Some(0))
                .await
                .map_err(StoreError::Backend)?;
            if !created {
                return Err(StoreError::AlreadyExists(ns.clone()));
            }
            inner.written_version(ns, &text).await
        }
        .boxed()
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        async move {
            let inner = &self.inner;
            let text = dtab.show();
            // `cas=0` would mean "create"; no stored key has index 0, so a
            // version that is 0 (or not ours at all) can only mismatch.
            if let Some(index) = version.to_u64().filter(|i| *i > 0) {
                let written = inner
                    .client
                    .put(&inner.key(ns), text.clone(), Some(index))
                    .await
                    .map_err(StoreError::Backend)?;
                if written {
                    return inner.written_version(ns, &text).await;
                }
            }
            if inner.exists(ns).await? {
                Err(StoreError::VersionMismatch(ns.clone()))
            } else {
                Err(StoreError::NotFound(ns.clone()))
            }
        }
        .boxed()
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        async move {
            let inner = &self.inner;
            let text = dtab.show();
            let written = inner
                .client
                .put(&inner.key(ns), text.clone(), None)
                .await
                .map_err(StoreError::Backend)?;
            if !written {
                return Err(StoreError::Backend(format!(
                    "Consul refused to write {}",
                    inner.key(ns)
                )));
            }
            inner.written_version(ns, &text).await
        }
        .boxed()
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        async move {
            let inner = &self.inner;
            let key = inner.key(ns);
            for _ in 0..DELETE_ATTEMPTS {
                let (_, entry) = inner
                    .client
                    .get(&key, inner.write, Blocking::No)
                    .await
                    .map_err(StoreError::Backend)?;
                let Some(entry) = entry else {
                    return Err(StoreError::NotFound(ns.clone()));
                };
                // Compare-and-delete, so that a delete never removes a dtab
                // written after the check above.
                let deleted = inner
                    .client
                    .delete(&key, entry.modify_index)
                    .await
                    .map_err(StoreError::Backend)?;
                if deleted {
                    return Ok(());
                }
            }
            Err(StoreError::Backend(format!(
                "Consul key {key} kept changing while it was being deleted"
            )))
        }
        .boxed()
    }

    fn watch_list(&self) -> NamespacesWatch {
        let mut watches = self.inner.lock();
        if let Some(publisher) = &watches.list {
            return publisher.subscribe();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Live::constant(no_runtime());
        };
        let publisher = Arc::new(Publisher::new(Activity::Pending));
        let live = publisher.subscribe();
        watches.list = Some(publisher.clone());
        runtime.spawn(follow(self.inner.clone(), NamespaceList, publisher));
        live
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let mut watches = self.inner.lock();
        if let Some(publisher) = watches.dtabs.get(ns) {
            return publisher.subscribe();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Live::constant(no_runtime());
        };
        let publisher = Arc::new(Publisher::new(Activity::Pending));
        let live = publisher.subscribe();
        watches.dtabs.insert(ns.clone(), publisher.clone());
        runtime.spawn(follow(self.inner.clone(), DtabKey(ns.clone()), publisher));
        live
    }
}

fn no_runtime<T>() -> Activity<T> {
    Activity::Failed(NamingError::namer(
        "io.l5d.consul: watches need a Tokio runtime",
    ))
}

/// Something a watch follows with blocking queries.
trait Followed: Send + Sync + 'static {
    /// What a successful query yields.
    type Value: PartialEq + Send + Sync + 'static;

    /// For logs.
    fn describe(&self, inner: &Inner) -> String;

    /// One query: the index Consul answered with, and the value or why the
    /// stored data is unusable. `Err` when Consul could not be asked.
    fn query(
        &self,
        inner: &Inner,
        blocking: Blocking,
    ) -> impl Future<Output = Result<(u64, Result<Self::Value, String>), String>> + Send;

    /// Forgets the watch once nobody holds it; says whether it may stop
    /// (someone may have subscribed again in the meantime).
    fn retire(&self, inner: &Inner, publisher: &Arc<Publisher<Activity<Self::Value>>>) -> bool;
}

struct DtabKey(Namespace);

impl Followed for DtabKey {
    type Value = Option<VersionedDtab>;

    fn describe(&self, inner: &Inner) -> String {
        format!("dtab {} (Consul key {})", self.0, inner.key(&self.0))
    }

    async fn query(
        &self,
        inner: &Inner,
        blocking: Blocking,
    ) -> Result<(u64, Result<Self::Value, String>), String> {
        let key = inner.key(&self.0);
        let (index, entry) = inner.client.get(&key, inner.read, blocking).await?;
        let value = entry.map(|e| parse_entry(&key, &e)).transpose();
        Ok((index, value))
    }

    fn retire(&self, inner: &Inner, publisher: &DtabPublisher) -> bool {
        let mut watches = inner.lock();
        if publisher.subscriber_count() > 0 {
            return false;
        }
        if watches
            .dtabs
            .get(&self.0)
            .is_some_and(|p| Arc::ptr_eq(p, publisher))
        {
            watches.dtabs.remove(&self.0);
        }
        true
    }
}

struct NamespaceList;

impl Followed for NamespaceList {
    type Value = BTreeSet<Namespace>;

    fn describe(&self, inner: &Inner) -> String {
        format!("namespace list (Consul keys under {})", inner.list_prefix())
    }

    async fn query(
        &self,
        inner: &Inner,
        blocking: Blocking,
    ) -> Result<(u64, Result<Self::Value, String>), String> {
        let (index, keys) = inner
            .client
            .keys(&inner.list_prefix(), inner.read, blocking)
            .await?;
        Ok((index, Ok(inner.namespaces(keys))))
    }

    fn retire(&self, inner: &Inner, publisher: &ListPublisher) -> bool {
        let mut watches = inner.lock();
        if publisher.subscriber_count() > 0 {
            return false;
        }
        if watches
            .list
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, publisher))
        {
            watches.list = None;
        }
        true
    }
}

/// Follows `target` with blocking queries and publishes what it finds,
/// until nobody watches any more.
async fn follow<F: Followed>(
    inner: Arc<Inner>,
    target: F,
    publisher: Arc<Publisher<Activity<F::Value>>>,
) {
    let what = target.describe(&inner);
    let mut index = 0;
    let mut backoff = Backoff::new(inner.timing.backoff_min, inner.timing.backoff_max);
    // Whether an outage was logged, so that retries do not log again.
    let mut failing = false;
    // The index of a bad value already logged.
    let mut bad_at = None;
    loop {
        let started = Instant::now();
        let blocking = if index == 0 {
            Blocking::No
        } else {
            Blocking::Since {
                index,
                wait: inner.timing.wait,
            }
        };
        let answer = tokio::select! {
            _ = publisher.closed() => {
                if target.retire(&inner, &publisher) {
                    return;
                }
                continue;
            }
            answer = target.query(&inner, blocking) => answer,
        };
        let pause = match answer {
            Ok((new_index, value)) => {
                if failing {
                    tracing::info!("consul: {what}: Consul answers again");
                    failing = false;
                }
                backoff.reset();
                if new_index < index {
                    // A snapshot restore, or a list whose newest key went:
                    // waiting on the old index could miss every change.
                    tracing::info!(
                        "consul: {what}: the index went backwards ({index} -> {new_index}); reading afresh"
                    );
                    index = 0;
                    continue;
                }
                // Consul never answers 0 but by a bug, and blocking on 0
                // would not block at all.
                index = new_index.max(1);
                match value {
                    Ok(value) => {
                        bad_at = None;
                        publisher.publish_if_changed(Activity::Ok(value));
                    }
                    Err(why) => {
                        if bad_at != Some(index) {
                            tracing::warn!("consul: {what}: {why}; keeping the last good value");
                            bad_at = Some(index);
                        }
                        if publisher.current().ok().is_none() {
                            publisher.publish_if_changed(Activity::Failed(NamingError::namer(why)));
                        }
                    }
                }
                MIN_QUERY_INTERVAL.saturating_sub(started.elapsed())
            }
            Err(why) => {
                if failing {
                    tracing::debug!("consul: {what}: still failing: {why}");
                } else {
                    tracing::warn!(
                        "consul: {what}: {why}; keeping the last good value and retrying"
                    );
                    failing = true;
                }
                if publisher.current().is_pending() {
                    publisher.publish(Activity::Failed(NamingError::namer(why)));
                }
                backoff.next_pause()
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = publisher.closed() => {
                    if target.retire(&inner, &publisher) {
                        return;
                    }
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml_like: serde_json::Value) -> Result<ConsulConfig, String> {
        serde_json::from_value(yaml_like).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_linkerd() {
        let store = ConsulConfig::default().build().unwrap();
        assert_eq!(
            store.key(&Namespace::new("default").unwrap()),
            "namerd/dtabs/default"
        );
        assert_eq!(store.inner.client.authority(), "localhost:8500");
        assert_eq!(store.inner.read, ConsistencyMode::Default);
        assert_eq!(store.inner.timing.wait, Duration::from_secs(30));
    }

    #[test]
    fn linkerd_keys_are_read_and_unknown_ones_refused() {
        let parsed = config(serde_json::json!({
            "host": "consul.local", "port": 8501, "pathPrefix": "/dtabs/prod/",
            "token": "secret", "datacenter": "east-1",
            "readConsistencyMode": "stale", "writeConsistencyMode": "consistent",
            "failFast": true
        }))
        .unwrap();
        let store = parsed.build().unwrap();
        assert_eq!(store.key(&Namespace::new("web").unwrap()), "dtabs/prod/web");
        assert_eq!(store.inner.client.authority(), "consul.local:8501");
        assert_eq!(store.inner.read, ConsistencyMode::Stale);
        assert_eq!(store.inner.write, ConsistencyMode::Consistent);

        let err = config(serde_json::json!({"hots": "x"})).unwrap_err();
        assert!(err.contains("unknown field `hots`"), "{err}");
        let err = config(serde_json::json!({"readConsistencyMode": "eventual"})).unwrap_err();
        assert!(err.contains("eventual"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let build = |v: serde_json::Value| config(v).unwrap().build().err().unwrap();
        assert!(build(serde_json::json!({"port": 0})).starts_with("port:"));
        assert!(build(serde_json::json!({"pathPrefix": "namerd"})).starts_with("pathPrefix:"));
        assert!(build(serde_json::json!({"pathPrefix": "/a//b"})).starts_with("pathPrefix:"));
        assert!(build(serde_json::json!({"pathPrefix": "/a b"})).starts_with("pathPrefix:"));
        assert!(build(serde_json::json!({"datacenter": "dc 1"})).starts_with("datacenter:"));
        assert!(build(serde_json::json!({"token": "a\nb"})).starts_with("token:"));
        assert!(build(serde_json::json!({"host": "a/b"})).starts_with("host:"));
        assert!(build(serde_json::json!({"host": ""})).starts_with("host:"));
    }

    #[test]
    fn root_prefix_and_ipv6_hosts_work() {
        let store = config(serde_json::json!({"pathPrefix": "/", "host": "::1"}))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(store.key(&Namespace::new("x").unwrap()), "x");
        assert_eq!(store.inner.list_prefix(), "");
        assert_eq!(store.inner.client.authority(), "[::1]:8500");
    }

    #[test]
    fn listed_keys_that_are_not_namespaces_are_skipped() {
        let store = ConsulConfig::default().build().unwrap();
        let names = store.inner.namespaces(vec![
            "namerd/dtabs/".to_string(),
            "namerd/dtabs/a".to_string(),
            "namerd/dtabs/sub/".to_string(),
            "namerd/dtabs/bad name".to_string(),
            "elsewhere/b".to_string(),
        ]);
        assert_eq!(names, [Namespace::new("a").unwrap()].into_iter().collect());
    }
}
