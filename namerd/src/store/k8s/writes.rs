//! The writes of the `io.l5d.k8s` store: create (`POST`), compare-and-set
//! replace (`PUT` with the resource version read), put (read, then replace
//! or create, again while someone else keeps writing) and delete.
//!
//! Every write reads back what the API server answered and refuses to
//! report success unless it holds the dtab written: a mutating webhook or
//! a schema that prunes fields would otherwise make namerd acknowledge a
//! dtab it will never serve.

use dtab::Dtab;
use kube::api::{DeleteParams, PostParams};

use super::config::check_name;
use super::resource::{DtabResource, resource_version_of};
use super::{Inner, KIND, refused};
use crate::Namespace;
use crate::store::{StoreError, StoreResult, Version};

/// How many times a put reads and writes before giving up on a namespace
/// that keeps changing under it.
const PUT_ATTEMPTS: usize = 5;

/// What a compare-and-set replace came to.
enum Replaced {
    Done(Version),
    /// `409 Conflict`: the object is not at the version given any more.
    Conflict,
    /// `404`: the object went.
    Gone,
}

impl Inner {
    /// Creates the DTab of `ns`; `409` means it exists.
    pub(super) async fn create(&self, ns: &Namespace, dtab: &Dtab) -> StoreResult<Version> {
        self.check_name(ns)?;
        match self.post(ns, dtab).await? {
            Some(version) => Ok(version),
            None => Err(StoreError::AlreadyExists(ns.clone())),
        }
    }

    /// Replaces the dtab of `ns` if its resource version is still
    /// `version`. The API server decides (`409 Conflict`), so a write made
    /// between our read and our replace is never overwritten.
    pub(super) async fn update(
        &self,
        ns: &Namespace,
        dtab: &Dtab,
        version: &Version,
    ) -> StoreResult<Version> {
        let Some(current) = self.read(ns).await? else {
            return Err(StoreError::NotFound(ns.clone()));
        };
        let wanted = resource_version_of(version);
        if wanted.is_none() || current.resource_version() != wanted {
            return Err(StoreError::VersionMismatch(ns.clone()));
        }
        match self.replace(ns, current.with_dtab(dtab), dtab).await? {
            Replaced::Done(version) => Ok(version),
            Replaced::Conflict => Err(StoreError::VersionMismatch(ns.clone())),
            Replaced::Gone => Err(StoreError::NotFound(ns.clone())),
        }
    }

    /// Creates or replaces the dtab of `ns`, whatever its version.
    pub(super) async fn put(&self, ns: &Namespace, dtab: &Dtab) -> StoreResult<Version> {
        self.check_name(ns)?;
        for _ in 0..PUT_ATTEMPTS {
            match self.read(ns).await? {
                None => {
                    if let Some(version) = self.post(ns, dtab).await? {
                        return Ok(version);
                    }
                }
                Some(current) => {
                    if let Replaced::Done(version) =
                        self.replace(ns, current.with_dtab(dtab), dtab).await?
                    {
                        return Ok(version);
                    }
                }
            }
        }
        Err(StoreError::Backend(format!(
            "{KIND}: {} kept changing while it was being written; not written",
            self.describe(ns.as_str())
        )))
    }

    /// Deletes the DTab of `ns`.
    pub(super) async fn delete(&self, ns: &Namespace) -> StoreResult<()> {
        let what = self.describe(ns.as_str());
        let api = self.dtabs()?;
        let deleted = self
            .call(
                "deleting",
                &what,
                api.delete(ns.as_str(), &DeleteParams::default()),
            )
            .await?;
        match deleted {
            Ok(_) => Ok(()),
            Err(status) if status.code == 404 => Err(StoreError::NotFound(ns.clone())),
            Err(status) => Err(refused("deleting", &what, &status)),
        }
    }

    /// The DTab object of `ns`, if there is one.
    async fn read(&self, ns: &Namespace) -> StoreResult<Option<DtabResource>> {
        let what = self.describe(ns.as_str());
        let api = self.dtabs()?;
        match self.call("reading", &what, api.get(ns.as_str())).await? {
            Ok(object) => Ok(Some(object)),
            Err(status) if status.code == 404 => Ok(None),
            Err(status) => Err(refused("reading", &what, &status)),
        }
    }

    /// `POST`s a new DTab; `None` when one exists already.
    async fn post(&self, ns: &Namespace, dtab: &Dtab) -> StoreResult<Option<Version>> {
        let what = self.describe(ns.as_str());
        let object = DtabResource::new(&self.namespace, ns.as_str(), dtab);
        let api = self.dtabs()?;
        let created = self
            .call(
                "creating",
                &what,
                api.create(&PostParams::default(), &object),
            )
            .await?;
        match created {
            Ok(made) => self.written(&what, &made, dtab).map(Some),
            Err(status) if status.code == 409 => Ok(None),
            Err(status) => Err(refused("creating", &what, &status)),
        }
    }

    /// `PUT`s `object`, which carries the resource version it was read at.
    async fn replace(
        &self,
        ns: &Namespace,
        object: DtabResource,
        dtab: &Dtab,
    ) -> StoreResult<Replaced> {
        let what = self.describe(ns.as_str());
        let api = self.dtabs()?;
        let replaced = self
            .call(
                "replacing",
                &what,
                api.replace(ns.as_str(), &PostParams::default(), &object),
            )
            .await?;
        match replaced {
            Ok(made) => self.written(&what, &made, dtab).map(Replaced::Done),
            Err(status) if status.code == 409 => Ok(Replaced::Conflict),
            Err(status) if status.code == 404 => Ok(Replaced::Gone),
            Err(status) => Err(refused("replacing", &what, &status)),
        }
    }

    /// The version of a write the API server answered with `made`, if it
    /// holds the dtab written.
    fn written(&self, what: &str, made: &DtabResource, dtab: &Dtab) -> StoreResult<Version> {
        let read = made.read().map_err(|why| {
            StoreError::Backend(format!(
                "{KIND}: {what} was written, but the API server answered with something that is not a dtab: {why}"
            ))
        })?;
        if read.dtab != *dtab {
            return Err(StoreError::Backend(format!(
                "{KIND}: {what} was written, but the API server keeps {:?} instead of {:?} (a mutating webhook or a schema that changes dentries?)",
                read.dtab.show(),
                dtab.show()
            )));
        }
        Ok(read.version)
    }

    /// Refuses a dtab namespace that cannot name a Kubernetes object, before
    /// asking the API server.
    fn check_name(&self, ns: &Namespace) -> StoreResult<()> {
        check_name(ns.as_str(), 253, true).map_err(|why| {
            StoreError::Backend(format!(
                "{KIND}: namespace {ns:?} cannot be stored as a DTab object: the name {why}"
            ))
        })
    }
}
