//! The writes of the `io.l5d.consul` store: compare-and-set PUTs
//! (`?cas=`), compare-and-delete, and reading back the index a write made.

use dtab::Dtab;
use namers::consul::{Blocking, ConsistencyMode};

use super::{DELETE_ATTEMPTS, Inner, backend_error};
use crate::Namespace;
use crate::store::{StoreError, StoreResult, Version};

impl Inner {
    /// Creates `ns` (compare-and-set with index 0: only if absent).
    pub(super) async fn create(&self, ns: &Namespace, dtab: &Dtab) -> StoreResult<Version> {
        let text = dtab.show();
        let created = self
            .client
            .put(&self.key(ns), self.dc(), text.clone(), Some(0))
            .await
            .map_err(backend_error)?;
        if !created {
            return Err(StoreError::AlreadyExists(ns.clone()));
        }
        self.written_version(ns, &text).await
    }

    /// Replaces the dtab of `ns` if its ModifyIndex is still `version`.
    pub(super) async fn update(
        &self,
        ns: &Namespace,
        dtab: &Dtab,
        version: &Version,
    ) -> StoreResult<Version> {
        let text = dtab.show();
        // `cas=0` would mean "create"; no stored key has index 0, so a
        // version that is 0 (or not ours at all) can only mismatch.
        if let Some(index) = version.to_u64().filter(|i| *i > 0) {
            let written = self
                .client
                .put(&self.key(ns), self.dc(), text.clone(), Some(index))
                .await
                .map_err(backend_error)?;
            if written {
                return self.written_version(ns, &text).await;
            }
        }
        if self.exists(ns).await? {
            Err(StoreError::VersionMismatch(ns.clone()))
        } else {
            Err(StoreError::NotFound(ns.clone()))
        }
    }

    /// Creates or replaces the dtab of `ns`, whatever its index.
    pub(super) async fn put(&self, ns: &Namespace, dtab: &Dtab) -> StoreResult<Version> {
        let text = dtab.show();
        let written = self
            .client
            .put(&self.key(ns), self.dc(), text.clone(), None)
            .await
            .map_err(backend_error)?;
        if !written {
            return Err(StoreError::Backend(format!(
                "Consul refused to write {}",
                self.key(ns)
            )));
        }
        self.written_version(ns, &text).await
    }

    /// Deletes `ns` with compare-and-delete, retrying while it changes.
    pub(super) async fn delete(&self, ns: &Namespace) -> StoreResult<()> {
        let key = self.key(ns);
        for _ in 0..DELETE_ATTEMPTS {
            let (_, entry) = self
                .client
                .get(&key, self.dc(), self.write, Blocking::No)
                .await
                .map_err(backend_error)?;
            let Some(entry) = entry else {
                return Err(StoreError::NotFound(ns.clone()));
            };
            // Compare-and-delete, so that a delete never removes a dtab
            // written after the check above.
            let deleted = self
                .client
                .delete(&key, self.dc(), entry.modify_index)
                .await
                .map_err(backend_error)?;
            if deleted {
                return Ok(());
            }
        }
        Err(StoreError::Backend(format!(
            "Consul key {key} kept changing while it was being deleted"
        )))
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
            .get(&self.key(ns), self.dc(), mode, Blocking::No)
            .await
            .map_err(backend_error)?;
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
            .get(&self.key(ns), self.dc(), self.write, Blocking::No)
            .await
            .map_err(backend_error)?;
        Ok(entry.is_some())
    }
}
