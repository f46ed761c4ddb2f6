//! `io.l5d.zk`: dtabs in ZooKeeper, as Linkerd's namerd keeps them.
//!
//! Each namespace is the znode `<pathPrefix>/<namespace>` whose data is the
//! dtab text; its version is the znode's `stat.version` as 4 big-endian
//! bytes. Compare-and-set is ZooKeeper's versioned `setData`. Watches are
//! ZooKeeper watches, one per watched namespace plus one on the children
//! of `pathPrefix` for the list, re-armed after every event and set up
//! again on a new session after the old one expired.
//!
//! The config and its checks are in `config`, the session in `session`,
//! the writes in `cas` and the watches in `watch`.

mod cas;
mod config;
mod session;
mod watch;

use std::collections::BTreeSet;
use std::sync::Arc;

use dtab::Dtab;
use futures_util::future::{BoxFuture, FutureExt};
use zookeeper_client as zk;

use super::backend::Watches;
use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

pub use config::{DEFAULT_CALL_TIMEOUT, ZkAclConfig, ZkAddr, ZkAuthInfo, ZkConfig, ZkSettings};

use watch::{watch_dtab, watch_list};

/// Dtabs in ZooKeeper.
pub struct ZkStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ZkSettings,
    /// The current session; replaced when it has expired or closed.
    session: tokio::sync::Mutex<Option<zk::Client>>,
    watches: Watches,
}

impl ZkStore {
    /// A store with these settings; it connects on first use.
    pub fn new(settings: ZkSettings) -> ZkStore {
        ZkStore {
            inner: Arc::new(Inner {
                settings,
                session: tokio::sync::Mutex::new(None),
                watches: Watches::new("io.l5d.zk"),
            }),
        }
    }

    /// Opens the session now rather than on first use.
    pub async fn connect(&self) -> StoreResult<()> {
        self.inner
            .call("connect", async { self.inner.connected().await.map(drop) })
            .await
    }

    /// The settings this store runs with.
    pub fn settings(&self) -> &ZkSettings {
        &self.inner.settings
    }
}

impl Inner {
    fn node(&self, ns: &Namespace) -> String {
        format!("{}/{}", self.settings.path_prefix, ns)
    }
}

/// Linkerd's version of a znode: its `stat.version`, 4 bytes big-endian.
fn version_of(stat_version: i32) -> Version {
    Version(stat_version.to_be_bytes().to_vec())
}

fn decode(ns: &Namespace, data: &[u8], stat: &zk::Stat) -> Result<VersionedDtab, String> {
    let text = std::str::from_utf8(data)
        .map_err(|_| format!("the znode of namespace {ns} does not hold UTF-8 text"))?;
    let dtab = Dtab::read(text)
        .map_err(|e| format!("the znode of namespace {ns} does not hold a valid dtab: {e}"))?;
    Ok(VersionedDtab {
        dtab,
        version: version_of(stat.version),
    })
}

/// The children that are namespace names; others are not ours to list.
fn namespaces(children: Vec<String>) -> BTreeSet<Namespace> {
    children
        .into_iter()
        .filter_map(|child| Namespace::new(&child).ok())
        .collect()
}

impl DtabStore for ZkStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        let inner = &self.inner;
        inner
            .call("list", async move {
                let client = inner.connected().await?;
                let prefix = &inner.settings.path_prefix;
                match client.list_children(prefix).await {
                    Ok(children) => Ok(namespaces(children)),
                    Err(zk::Error::NoNode) => Ok(BTreeSet::new()),
                    Err(e) => Err(inner.backend(&format!("cannot list {prefix}"), e)),
                }
            })
            .boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        let inner = &self.inner;
        inner
            .call("get", async move {
                let client = inner.connected().await?;
                let path = inner.node(ns);
                match client.get_data(&path).await {
                    Ok((data, stat)) => decode(ns, &data, &stat)
                        .map(Some)
                        .map_err(|why| StoreError::Backend(format!("{}: {why}", inner.where_()))),
                    Err(zk::Error::NoNode) => Ok(None),
                    Err(e) => Err(inner.backend(&format!("cannot read {path}"), e)),
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
        inner.call("create", inner.create(ns, dtab)).boxed()
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner
            .call("update", inner.update(ns, dtab, version))
            .boxed()
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner.call("put", inner.put(ns, dtab)).boxed()
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        let inner = &self.inner;
        inner.call("delete", inner.delete(ns)).boxed()
    }

    fn watch_list(&self) -> NamespacesWatch {
        let inner = self.inner.clone();
        self.inner
            .watches
            .list(move |publisher| watch_list(inner.clone(), publisher))
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let inner = self.inner.clone();
        let key = ns.clone();
        self.inner.watches.dtab(ns, move |publisher| {
            watch_dtab(inner.clone(), key.clone(), publisher)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use namers::Activity;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watches_are_shared_and_stop_with_their_last_handle() {
        let Some(server) = integration::servers::ZooKeeper::start() else {
            return;
        };
        let config = ZkConfig {
            zk_addrs: vec![ZkAddr {
                host: "127.0.0.1".to_string(),
                port: server.port(),
            }],
            path_prefix: "/shared".to_string(),
            session_timeout_ms: 10_000,
            auth_info: None,
            acls: Vec::new(),
        };
        let store = config.build().unwrap();
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
        assert_eq!(store.inner.watches.dtab_count(), 1);
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

    #[test]
    fn versions_are_four_big_endian_bytes() {
        assert_eq!(version_of(258).0, vec![0, 0, 1, 2]);
        assert_eq!(version_of(0).to_etag(), "AAAAAA==");
    }
}
