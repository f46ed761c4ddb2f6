//! Dtab storage: where namerd keeps one dtab per namespace.
//!
//! Every store offers versioned compare-and-set and live watches, and
//! validates before it writes: only a parsed [`Dtab`] can be written, so an
//! invalid dtab is never stored. Each backend is one module (`kind` in the
//! config), registered in [`crate::config`].

mod backend;
pub mod consul;
#[doc(hidden)]
pub mod contract;
pub mod disk;
pub mod etcd;
pub mod memory;
pub mod zk;

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use dtab::Dtab;
use futures_util::future::BoxFuture;
use namers::{Activity, Live};

use crate::Namespace;

/// An opaque version of a stored dtab, compared for compare-and-set and
/// shown to clients as an ETag (base64 of the bytes, as Linkerd does).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(pub Vec<u8>);

impl Version {
    /// A version from a counter, as 8 big-endian bytes (Linkerd's in-memory
    /// store: version 1 is the ETag `AAAAAAAAAAE=`).
    pub fn from_u64(n: u64) -> Version {
        Version(n.to_be_bytes().to_vec())
    }

    /// The counter of a version made by [`Version::from_u64`].
    pub fn to_u64(&self) -> Option<u64> {
        <[u8; 8]>::try_from(self.0.as_slice())
            .ok()
            .map(u64::from_be_bytes)
    }

    /// The ETag form: standard base64.
    pub fn to_etag(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    /// Reads an ETag (quotes and a weak `W/` prefix are tolerated).
    pub fn from_etag(etag: &str) -> Option<Version> {
        let etag = etag.trim();
        let etag = etag.strip_prefix("W/").unwrap_or(etag);
        let etag = etag.trim_matches('"');
        base64::engine::general_purpose::STANDARD
            .decode(etag)
            .ok()
            .map(Version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_etag())
    }
}

/// A stored dtab and its version.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionedDtab {
    /// The dtab.
    pub dtab: Dtab,
    /// Its version, for compare-and-set.
    pub version: Version,
}

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
