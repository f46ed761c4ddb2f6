//! Dtab storage: where namerd keeps one dtab per namespace.
//!
//! Every store offers versioned compare-and-set and live watches, and
//! validates before it writes: only a parsed [`Dtab`] can be written, so an
//! invalid dtab is never stored. Each backend is one module (`kind` in the
//! config), registered in [`crate::config`].

mod backend;
pub mod consul;
/// The store contract test harness: in namerd's own tests, and for other
/// crates' tests with the `contract` feature; not in the production library.
#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod counted;
pub mod disk;
pub mod etcd;
pub mod k8s;
pub mod memory;
pub mod zk;

use std::collections::BTreeSet;

use dtab::Dtab;
use futures_util::future::BoxFuture;
use namers::{Activity, Live};

use crate::Namespace;

pub use namerd_client::{Version, VersionedDtab};

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The namespace does not exist.
    #[error("namespace {0} does not exist")]
    NotFound(Namespace),
    /// `create` of a namespace that exists.
    #[error("namespace {0} already exists")]
    AlreadyExists(Namespace),
    /// A compare-and-set lost: the stored version is not the one given.
    #[error("namespace {0} was changed by someone else (version mismatch)")]
    VersionMismatch(Namespace),
    /// The backend failed or answered something unusable.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// The answer to a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A live list of namespaces.
pub type NamespacesWatch = Live<Activity<BTreeSet<Namespace>>>;

/// A live dtab of one namespace: `None` while the namespace does not exist.
pub type DtabWatch = Live<Activity<Option<VersionedDtab>>>;

/// Storage for dtabs, one per namespace.
///
/// Implementations keep watches shared (one backend watch per namespace,
/// whatever the number of watchers) and stop watching the backend when the
/// last `Live` handle is dropped. After a backend failure a watch keeps its
/// last good value; only a first answer that fails is `Failed`.
pub trait DtabStore: Send + Sync + 'static {
    /// The namespaces that exist, sorted.
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>>;

    /// The dtab of `ns`, if it exists.
    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>>;

    /// Creates `ns`; fails with [`StoreError::AlreadyExists`] if it exists.
    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>>;

    /// Replaces the dtab of `ns` if its version is still `version`.
    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>>;

    /// Creates or replaces the dtab of `ns`, whatever its version.
    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>>;

    /// Deletes `ns`; fails with [`StoreError::NotFound`] if it does not exist.
    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>>;

    /// The namespaces, live.
    fn watch_list(&self) -> NamespacesWatch;

    /// The dtab of `ns`, live.
    fn watch(&self, ns: &Namespace) -> DtabWatch;
}
