//! `io.l5d.etcd`: dtabs in etcd, through its v3 API.
//!
//! Each namespace is the key `<pathPrefix>/<namespace>` whose value is the
//! dtab text. Its version is the key's `mod_revision` as 8 big-endian bytes
//! (Linkerd, on etcd's v2 API, used the key's `modifiedIndex`, the same
//! idea). Compare-and-set is an etcd transaction. Watches are etcd watch
//! streams, one per watched namespace plus one on the prefix for the list;
//! after a broken stream they resume from the last revision seen, and read
//! the key again if that revision has been compacted away.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::Dtab;
use etcd_client as etcd;
use futures_util::future::{BoxFuture, FutureExt};
use namers::Activity;

use super::backend::{
    Backoff, DtabPublisher, Health, ListPublisher, Read, Watches, publish_failure, publish_read,
};
use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

/// How long one backend call may take before it fails.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The `io.l5d.etcd` config, with Linkerd's keys.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EtcdConfig {
    /// The etcd host (default `localhost`).
    #[serde(default = "default_host")]
    pub host: String,
    /// The etcd client port (default 2379).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The key prefix of the namespaces (default `/namerd/dtabs`).
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
}

impl Default for EtcdConfig {
    fn default() -> EtcdConfig {
        EtcdConfig {
            host: default_host(),
            port: default_port(),
            path_prefix: default_path_prefix(),
        }
    }
}

fn default_host() -> String {
    "localhost".to_string()
}

fn default_port() -> u16 {
    2379
}

fn default_path_prefix() -> String {
    "/namerd/dtabs".to_string()
}

impl EtcdConfig {
    /// Checks the config; the error names the key and why.
    pub fn validate(&self) -> Result<EtcdSettings, String> {
        let host = self.host.trim();
        if host.is_empty() || host.contains(['/', ' ', '@', '?', '#']) {
            return Err(format!("host: invalid host {:?}", self.host));
        }
        if self.port == 0 {
            return Err("port: must be 1-65535".to_string());
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let prefix = &self.path_prefix;
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        if !trimmed.starts_with('/') {
            return Err(format!(
                "pathPrefix: must start with '/', like /namerd/dtabs (got {prefix:?})"
            ));
        }
        if trimmed[1..].split('/').any(str::is_empty) {
            return Err(format!(
                "pathPrefix: must name a key prefix below the root, without empty segments (got {prefix:?})"
            ));
        }
        Ok(EtcdSettings {
            endpoint: format!("http://{host}:{}", self.port),
            path_prefix: trimmed.to_string(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// Checks the config and builds the store. It connects on first use,
    /// so namerd can start while etcd is down.
    pub fn build(&self) -> Result<EtcdStore, String> {
        Ok(EtcdStore::new(self.validate()?))
    }

    /// Checks the config, builds the store and makes one call now, failing
    /// if etcd cannot be reached within the call timeout.
    pub async fn connect(&self) -> Result<EtcdStore, String> {
        let store = self.build()?;
        store.list().await.map_err(|e| e.to_string())?;
        Ok(store)
    }
}

/// A checked `io.l5d.etcd` config.
#[derive(Clone, Debug)]
pub struct EtcdSettings {
    /// The client URL, `http://host:port`.
    pub endpoint: String,
    /// The key prefix, without a trailing `/`.
    pub path_prefix: String,
    /// How long one backend call may take.
    pub call_timeout: Duration,
}

/// Dtabs in etcd.
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: EtcdSettings,
    client: tokio::sync::Mutex<Option<etcd::Client>>,
    watches: Watches,
}

impl EtcdStore {
    /// A store with these settings; it connects on first use.
    pub fn new(settings: EtcdSettings) -> EtcdStore {
        EtcdStore {
            inner: Arc::new(Inner {
                settings,
                client: tokio::sync::Mutex::new(None),
                watches: Watches::new("io.l5d.etcd"),
            }),
        }
    }

    /// The settings this store runs with.
    pub fn settings(&self) -> &EtcdSettings {
        &self.inner.settings
    }
}

impl Inner {
    fn key(&self, ns: &Namespace) -> String {
        format!("{}/{}", self.settings.path_prefix, ns)
    }

    /// The prefix every namespace key starts with.
    fn dir(&self) -> String {
        format!("{}/", self.settings.path_prefix)
    }

    fn backend(&self, what: &str, e: etcd::Error) -> StoreError {
        StoreError::Backend(format!("etcd at {}: {what}: {e}", self.settings.endpoint))
    }

    /// Runs `call`, failing it after the call timeout.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let limit = self.settings.call_timeout;
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Backend(format!(
                "etcd at {}: {what} timed out after {limit:?}",
                self.settings.endpoint
            ))),
        }
    }

    /// The client; its channel reconnects by itself after an outage.
    async fn client(&self) -> StoreResult<etcd::Client> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        // HTTP/2 pings notice a dead server under a long-lived watch.
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(self.settings.call_timeout)
            .with_keep_alive(Duration::from_secs(10), self.settings.call_timeout);
        let client = etcd::Client::connect([self.settings.endpoint.as_str()], Some(options))
            .await
            .map_err(|e| self.backend("cannot connect", e))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The key's value and the store revision it is current at.
    async fn read(&self, ns: &Namespace) -> StoreResult<(Read, i64)> {
        let key = self.key(ns);
        let response = self
            .client()
            .await?
            .get(key.as_str(), None)
            .await
            .map_err(|e| self.backend(&format!("cannot read {key}"), e))?;
        let revision = revision_of(response.header())?;
        let read = match response.kvs().first() {
            None => Read::Good(None),
            Some(kv) => match decode(ns, kv) {
                Ok(dtab) => Read::Good(Some(dtab)),
                Err(why) => Read::Corrupt(why),
            },
        };
        Ok((read, revision))
    }

    /// The namespaces and the store revision they are current at.
    async fn read_list(&self) -> StoreResult<(BTreeSet<Namespace>, i64)> {
        let dir = self.dir();
        let options = etcd::GetOptions::new().with_prefix().with_keys_only();
        let response = self
            .client()
            .await?
            .get(dir.as_str(), Some(options))
            .await
            .map_err(|e| self.backend(&format!("cannot list {dir}"), e))?;
        let revision = revision_of(response.header())?;
        let names = response
            .kvs()
            .iter()
            .filter_map(|kv| self.namespace_of(kv.key()))
            .collect();
        Ok((names, revision))
    }

    /// The namespace a key stands for, if it is one of ours.
    fn namespace_of(&self, key: &[u8]) -> Option<Namespace> {
        let name = key.strip_prefix(self.dir().as_bytes())?;
        Namespace::new(std::str::from_utf8(name).ok()?).ok()
    }

    /// Opens a watch stream on `key` (or the prefix) from `revision` on.
    async fn open_watch(
        &self,
        key: &str,
        prefix: bool,
        revision: i64,
    ) -> StoreResult<etcd::WatchStream> {
        let mut options = etcd::WatchOptions::new()
            .with_start_revision(revision)
            .with_progress_notify();
        if prefix {
            options = options.with_prefix();
        }
        self.client()
            .await?
            .watch(key, Some(options))
            .await
            .map_err(|e| self.backend(&format!("cannot watch {key}"), e))
    }

    async fn txn(&self, what: &str, txn: etcd::Txn) -> StoreResult<etcd::TxnResponse> {
        self.client()
            .await?
            .txn(txn)
            .await
            .map_err(|e| self.backend(what, e))
    }
}

/// The version of a key: its `mod_revision`, 8 bytes big-endian.
fn version_of(mod_revision: i64) -> Version {
    Version(mod_revision.to_be_bytes().to_vec())
}

fn revision_of(header: Option<&etcd::ResponseHeader>) -> StoreResult<i64> {
    header
        .map(etcd::ResponseHeader::revision)
        .ok_or_else(|| StoreError::Backend("etcd answered without a response header".to_string()))
}

fn decode(ns: &Namespace, kv: &etcd::KeyValue) -> Result<VersionedDtab, String> {
    let text = std::str::from_utf8(kv.value())
        .map_err(|_| format!("the key of namespace {ns} does not hold UTF-8 text"))?;
    let dtab = Dtab::read(text)
        .map_err(|e| format!("the key of namespace {ns} does not hold a valid dtab: {e}"))?;
    Ok(VersionedDtab {
        dtab,
        version: version_of(kv.mod_revision()),
    })
}

impl DtabStore for EtcdStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        let inner = &self.inner;
        inner
            .call("list", async move { Ok(inner.read_list().await?.0) })
            .boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        let inner = &self.inner;
        inner
            .call("get", async move {
                match inner.read(ns).await?.0 {
                    Read::Good(value) => Ok(value),
                    Read::Corrupt(why) => Err(StoreError::Backend(format!(
                        "etcd at {}: {why}",
                        inner.settings.endpoint
                    ))),
                }
            })
            .boxed()
    }

    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner
            .call("create", async move {
                let key = inner.key(ns);
                let txn = etcd::Txn::new()
                    .when([etcd::Compare::create_revision(
                        key.as_str(),
                        etcd::CompareOp::Equal,
                        0,
                    )])
                    .and_then([etcd::TxnOp::put(key.as_str(), dtab.show(), None)]);
                let response = inner.txn(&format!("cannot create {key}"), txn).await?;
                if !response.succeeded() {
                    return Err(StoreError::AlreadyExists(ns.clone()));
                }
                Ok(version_of(revision_of(response.header())?))
            })
            .boxed()
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner
            .call("update", async move {
                let key = inner.key(ns);
                // A version that is not ours matches no revision.
                let expected = <[u8; 8]>::try_from(version.0.as_slice())
                    .map(i64::from_be_bytes)
                    .unwrap_or(-1);
                let txn = etcd::Txn::new()
                    .when([etcd::Compare::mod_revision(
                        key.as_str(),
                        etcd::CompareOp::Equal,
                        expected,
                    )])
                    .and_then([etcd::TxnOp::put(key.as_str(), dtab.show(), None)])
                    .or_else([etcd::TxnOp::get(
                        key.as_str(),
                        Some(etcd::GetOptions::new().with_keys_only()),
                    )]);
                let response = inner.txn(&format!("cannot update {key}"), txn).await?;
                if response.succeeded() {
                    return Ok(version_of(revision_of(response.header())?));
                }
                let exists = response
                    .op_responses()
                    .iter()
                    .any(|op| matches!(op, etcd::TxnOpResponse::Get(get) if !get.kvs().is_empty()));
                if exists {
                    Err(StoreError::VersionMismatch(ns.clone()))
                } else {
                    Err(StoreError::NotFound(ns.clone()))
                }
            })
            .boxed()
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner
            .call("put", async move {
                let key = inner.key(ns);
                let response = inner
                    .client()
                    .await?
                    .put(key.as_str(), dtab.show(), None)
                    .await
                    .map_err(|e| inner.backend(&format!("cannot write {key}"), e))?;
                Ok(version_of(revision_of(response.header())?))
            })
            .boxed()
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        let inner = &self.inner;
        inner
            .call("delete", async move {
                let key = inner.key(ns);
                let txn = etcd::Txn::new()
                    .when([etcd::Compare::create_revision(
                        key.as_str(),
                        etcd::CompareOp::Greater,
                        0,
                    )])
                    .and_then([etcd::TxnOp::delete(key.as_str(), None)]);
                let response = inner.txn(&format!("cannot delete {key}"), txn).await?;
                if response.succeeded() {
                    Ok(())
                } else {
                    Err(StoreError::NotFound(ns.clone()))
                }
            })
            .boxed()
    }

    fn watch_list(&self) -> NamespacesWatch {
        let inner = self.inner.clone();
        self.inner
            .watches
            .list(|publisher| watch_list(inner, publisher))
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let inner = self.inner.clone();
        self.inner
            .watches
            .dtab(ns, |publisher| watch_dtab(inner, ns.clone(), publisher))
    }
}

/// How long a watch stream must have lasted for its end to reset the
/// backoff (a stream that breaks at once is retried ever more slowly).
const STABLE: Duration = Duration::from_secs(10);

/// Where a watch stands: the store revision its value is current at, or
/// `None` when it must read the key again first.
type Position = Option<i64>;

/// What became of a watch stream.
enum StreamEnd {
    /// It broke; resume from the last revision seen.
    Broken(StoreError),
    /// Its start revision was compacted away; read again.
    Compacted,
}

/// Follows one watch stream, handing every event to `apply` and keeping
/// `position` at the last revision seen, until the stream ends.
async fn follow(
    inner: &Inner,
    stream: &mut etcd::WatchStream,
    position: &mut Position,
    mut apply: impl FnMut(&etcd::Event),
) -> StreamEnd {
    let broken = |why: String| {
        StreamEnd::Broken(StoreError::Backend(format!(
            "etcd at {}: {why}",
            inner.settings.endpoint
        )))
    };
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return broken("the watch stream ended".to_string()),
            Err(e) => return broken(format!("the watch stream broke: {e}")),
        };
        if response.canceled() {
            if response.compact_revision() > 0 {
                return StreamEnd::Compacted;
            }
            return broken(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason()
            ));
        }
        for event in response.events() {
            apply(event);
            if let Some(kv) = event.kv() {
                *position = Some(position.unwrap_or(0).max(kv.mod_revision()));
            }
        }
        // A progress notice: every event up to its revision has been sent.
        if response.events().is_empty()
            && !response.created()
            && let Ok(revision) = revision_of(response.header())
        {
            *position = Some(position.unwrap_or(0).max(revision));
        }
    }
}

/// Keeps one namespace's watch up to date; dropped when nobody holds it.
async fn watch_dtab(inner: Arc<Inner>, ns: Namespace, publisher: DtabPublisher) {
    let key = inner.key(&ns);
    let what = format!("watch of {key}");
    let apply_read = |read: Read| publish_read(&publisher, &ns, read);
    let mut health = Health::new(&what);
    let mut backoff = Backoff::default();
    let mut position: Position = None;
    loop {
        let opened = inner
            .call("watch", async {
                let revision = match position {
                    Some(revision) => revision,
                    None => {
                        let (read, revision) = inner.read(&ns).await?;
                        apply_read(read);
                        position = Some(revision);
                        revision
                    }
                };
                inner.open_watch(&key, false, revision + 1).await
            })
            .await;
        let end = match opened {
            Ok(mut stream) => {
                health.ok();
                let opened_at = Instant::now();
                let end = follow(&inner, &mut stream, &mut position, |event| {
                    match event.event_type() {
                        etcd::EventType::Put => match event.kv().map(|kv| decode(&ns, kv)) {
                            Some(Ok(dtab)) => apply_read(Read::Good(Some(dtab))),
                            Some(Err(why)) => apply_read(Read::Corrupt(why)),
                            None => {}
                        },
                        etcd::EventType::Delete => apply_read(Read::Good(None)),
                    }
                })
                .await;
                // Back off afresh only after a stream that lasted.
                if opened_at.elapsed() >= STABLE {
                    backoff.reset();
                }
                end
            }
            Err(e) => StreamEnd::Broken(e),
        };
        match end {
            StreamEnd::Compacted => position = None,
            StreamEnd::Broken(e) => {
                health.failed(&e);
                publish_failure(&publisher, &e);
                backoff.wait().await;
            }
        }
    }
}

/// Keeps the list watch up to date; dropped when nobody holds it.
async fn watch_list(inner: Arc<Inner>, publisher: ListPublisher) {
    let dir = inner.dir();
    let what = format!("watch of {dir}*");
    let mut health = Health::new(&what);
    let mut backoff = Backoff::default();
    let mut position: Position = None;
    let mut names = BTreeSet::new();
    loop {
        let opened = inner
            .call("watch", async {
                let revision = match position {
                    Some(revision) => revision,
                    None => {
                        let (now, revision) = inner.read_list().await?;
                        names = now;
                        publisher.publish_if_changed(Activity::Ok(names.clone()));
                        position = Some(revision);
                        revision
                    }
                };
                inner.open_watch(&dir, true, revision + 1).await
            })
            .await;
        let end = match opened {
            Ok(mut stream) => {
                health.ok();
                let opened_at = Instant::now();
                let end = follow(&inner, &mut stream, &mut position, |event| {
                    let Some(ns) = event.kv().and_then(|kv| inner.namespace_of(kv.key())) else {
                        return;
                    };
                    let changed = match event.event_type() {
                        etcd::EventType::Put => names.insert(ns),
                        etcd::EventType::Delete => names.remove(&ns),
                    };
                    if changed {
                        publisher.publish(Activity::Ok(names.clone()));
                    }
                })
                .await;
                if opened_at.elapsed() >= STABLE {
                    backoff.reset();
                }
                end
            }
            Err(e) => StreamEnd::Broken(e),
        };
        match end {
            StreamEnd::Compacted => position = None,
            StreamEnd::Broken(e) => {
                health.failed(&e);
                publish_failure(&publisher, &e);
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<EtcdSettings, String> {
        let config: EtcdConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        config.validate()
    }

    #[test]
    fn defaults_follow_linkerd() {
        let settings = config("{}").unwrap();
        assert_eq!(settings.endpoint, "http://localhost:2379");
        assert_eq!(settings.path_prefix, "/namerd/dtabs");
        assert_eq!(settings.call_timeout, DEFAULT_CALL_TIMEOUT);
        let settings = config(r#"{"host": "::1", "port": 2380, "pathPrefix": "/x/"}"#).unwrap();
        assert_eq!(settings.endpoint, "http://[::1]:2380");
        assert_eq!(settings.path_prefix, "/x");
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            (r#"{"host": ""}"#, "host:"),
            (r#"{"host": "http://a"}"#, "host:"),
            (r#"{"port": 0}"#, "port:"),
            (r#"{"pathPrefix": "namerd"}"#, "pathPrefix"),
            (r#"{"pathPrefix": "/"}"#, "pathPrefix"),
            (r#"{"pathPrefix": "/a//b"}"#, "pathPrefix"),
            (r#"{"prefix": "/a"}"#, "unknown field `prefix`"),
        ];
        for (text, key) in cases {
            let err = config(text).err().unwrap_or_default();
            assert!(err.contains(key), "{text}: {err:?} should name {key}");
        }
    }

    fn store_on(server: &integration::servers::Etcd, prefix: &str) -> EtcdStore {
        let config = EtcdConfig {
            host: "127.0.0.1".to_string(),
            port: server.port(),
            path_prefix: prefix.to_string(),
        };
        config.build().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watches_are_shared_and_stop_with_their_last_handle() {
        let Some(server) = integration::servers::Etcd::start() else {
            return;
        };
        let store = store_on(&server, "/shared");
        let ns = Namespace::new("a").unwrap();
        let first = store.watch(&ns);
        let second = store.watch(&ns);
        assert!(
            first.same_source(&second),
            "one backend watch per namespace"
        );
        let list = store.watch_list();
        assert!(list.same_source(&store.watch_list()));
        crate::store::contract::wait_for(&first, Duration::from_secs(10), "an answer", |s| {
            matches!(s, Activity::Ok(None))
        })
        .await;
        drop(first);
        assert!(store.inner.watches.watches(&ns));
        drop((second, list));
        // The tasks end and let go of the store.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&store.inner) > 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "watch tasks still run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(store.inner.watches.is_empty());
        // A new watch starts afresh and works.
        let again = store.watch(&ns);
        let version = store
            .put(&ns, &Dtab::read("/a=>/b").unwrap())
            .await
            .unwrap();
        crate::store::contract::wait_for(
            &again,
            Duration::from_secs(10),
            "the write",
            |s| matches!(s, Activity::Ok(Some(d)) if d.version == version),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compacted_start_revision_is_noticed() {
        let Some(server) = integration::servers::Etcd::start() else {
            return;
        };
        let store = store_on(&server, "/compacted");
        let ns = Namespace::new("a").unwrap();
        let dtab = Dtab::read("/a=>/b").unwrap();
        store.put(&ns, &dtab).await.unwrap();
        let last = store.put(&ns, &dtab).await.unwrap().to_u64().unwrap();
        let mut client = store.inner.client().await.unwrap();
        client
            .compact(i64::try_from(last).unwrap(), None)
            .await
            .unwrap();
        let mut stream = store
            .inner
            .open_watch(&store.inner.key(&ns), false, 1)
            .await
            .unwrap();
        let mut position = Some(1);
        let end = tokio::time::timeout(
            Duration::from_secs(5),
            follow(&store.inner, &mut stream, &mut position, |_| {}),
        )
        .await
        .unwrap();
        assert!(matches!(end, StreamEnd::Compacted));
    }

    #[test]
    fn versions_are_eight_big_endian_bytes() {
        assert_eq!(version_of(258).0, vec![0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(version_of(1).to_etag(), "AAAAAAAAAAE=");
    }
}
