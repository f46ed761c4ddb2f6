//! The writes of the `io.l5d.zk` store: creates, ZooKeeper's versioned
//! `setData` as compare-and-set, and deletes.

use dtab::Dtab;
use zookeeper_client as zk;

use super::{Inner, version_of};
use crate::Namespace;
use crate::store::{StoreError, StoreResult, Version};

impl Inner {
    /// Creates `ns`; fails if it exists.
    pub(super) async fn create(&self, ns: &Namespace, dtab: &Dtab) -> StoreResult<Version> {
        let client = self.connected().await?;
        self.create_node(&client, ns, dtab.show().as_bytes()).await
    }

    /// Replaces the dtab of `ns` if its znode's version is still
    /// `version` (ZooKeeper's versioned `setData`).
    pub(super) async fn update(
        &self,
        ns: &Namespace,
        dtab: &Dtab,
        version: &Version,
    ) -> StoreResult<Version> {
        let client = self.connected().await?;
        let path = self.node(ns);
        let Ok(expected) = <[u8; 4]>::try_from(version.0.as_slice()) else {
            // Not a version of ours: it cannot match.
            return match client.check_stat(&path).await {
                Ok(Some(_)) => Err(StoreError::VersionMismatch(ns.clone())),
                Ok(None) => Err(StoreError::NotFound(ns.clone())),
                Err(e) => Err(self.backend(&format!("cannot read {path}"), e)),
            };
        };
        let expected = i32::from_be_bytes(expected);
        match client
            .set_data(&path, dtab.show().as_bytes(), Some(expected))
            .await
        {
            Ok(stat) => Ok(version_of(stat.version)),
            Err(zk::Error::BadVersion) => Err(StoreError::VersionMismatch(ns.clone())),
            Err(zk::Error::NoNode) => Err(StoreError::NotFound(ns.clone())),
            Err(e) => Err(self.backend(&format!("cannot write {path}"), e)),
        }
    }

    /// Sets the dtab of `ns`, creating its znode if missing.
    pub(super) async fn put(&self, ns: &Namespace, dtab: &Dtab) -> StoreResult<Version> {
        let client = self.connected().await?;
        let path = self.node(ns);
        let data = dtab.show();
        // Set, or create if missing; a create that loses a race
        // with another writer sets instead.
        for _ in 0..5 {
            match client.set_data(&path, data.as_bytes(), None).await {
                Ok(stat) => return Ok(version_of(stat.version)),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(self.backend(&format!("cannot write {path}"), e)),
            }
            match self.create_node(&client, ns, data.as_bytes()).await {
                Err(StoreError::AlreadyExists(_)) => continue,
                other => return other,
            }
        }
        Err(StoreError::Backend(format!(
            "{}: {path} kept appearing and disappearing",
            self.where_()
        )))
    }

    /// Deletes the znode of `ns`.
    pub(super) async fn delete(&self, ns: &Namespace) -> StoreResult<()> {
        let client = self.connected().await?;
        let path = self.node(ns);
        match client.delete(&path, None).await {
            Ok(()) => Ok(()),
            Err(zk::Error::NoNode) => Err(StoreError::NotFound(ns.clone())),
            Err(e) => Err(self.backend(&format!("cannot delete {path}"), e)),
        }
    }

    /// Creates the znode of `ns`, and `pathPrefix` first if it is missing.
    async fn create_node(
        &self,
        client: &zk::Client,
        ns: &Namespace,
        data: &[u8],
    ) -> StoreResult<Version> {
        let path = self.node(ns);
        let acls = self.acls();
        let options = zk::CreateMode::Persistent.with_acls(acls);
        for attempt in 0..2 {
            match client.create(&path, data, &options).await {
                Ok((stat, _)) => return Ok(version_of(stat.version)),
                Err(zk::Error::NodeExists) => return Err(StoreError::AlreadyExists(ns.clone())),
                Err(zk::Error::NoNode) if attempt == 0 => {
                    let prefix = &self.settings.path_prefix;
                    client
                        .mkdir(prefix, &options)
                        .await
                        .map_err(|e| self.backend(&format!("cannot create {prefix}"), e))?;
                }
                Err(e) => return Err(self.backend(&format!("cannot create {path}"), e)),
            }
        }
        Err(StoreError::Backend(format!(
            "{}: {} vanished while creating {path}",
            self.where_(),
            self.settings.path_prefix
        )))
    }
}
