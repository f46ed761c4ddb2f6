//! `io.switchboard.disk`: dtabs in files in a local directory, durable and
//! crash-safe. namerd's default store.
//!
//! Layout (see `docs/namerd-storage.md`):
//!
//! ```text
//! <dir>/lock               held with flock while a namerd has the store open
//! <dir>/dtabs/<ns>.dtab    one per namespace: "# version: N", then one dentry per line
//! <dir>/dtabs/<ns>.dtab.tmp  a write in progress; removed at start
//! ```
//!
//! Every write replaces one file atomically (temp file, fsync, rename,
//! fsync of the directory) and is acknowledged only after that, so a crash
//! at any moment keeps every acknowledged write. A deleted namespace keeps
//! its file as a tombstone holding its last version, so versions are never
//! reused. The directory belongs to one namerd: the lock refuses a second
//! one, and files are read only at start (edits by hand while namerd runs
//! are neither seen nor safe).

mod dir;
mod file;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dtab::Dtab;
use futures_util::future::{BoxFuture, FutureExt};
use namers::{Activity, Publisher};

use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;
use file::Record;

/// The `io.switchboard.disk` config.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// The store's directory; created if missing. Must be on a local file
    /// system and used by this namerd only.
    pub dir: PathBuf,
}

impl DiskConfig {
    /// Opens the store: see [`DiskStore::open`].
    pub fn open(&self) -> Result<DiskStore, DiskError> {
        DiskStore::open(&self.dir)
    }
}

/// Why the store could not be opened (or, inside a [`StoreError::Backend`],
/// why a write failed).
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// `dir` is empty (it would silently mean the working directory).
    #[error("the dtab store's dir is an empty path")]
    EmptyPath,
    /// A file system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "cannot create directory".
        what: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process has the directory open.
    #[error(
        "dtab store {} is in use by another process{}: its lock file {} is held",
        dir.display(),
        if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
        lock.display()
    )]
    Locked {
        /// The store's directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// What the lock file says about its holder (its pid), if anything.
        holder: String,
    },
    /// Namespace files that do not read; the store refuses to start rather
    /// than serve a partial view.
    #[error(
        "dtab store {} has files that cannot be read; fix them or move them out of the directory, then start again: {}",
        dir.display(),
        list_files(files)
    )]
    Unreadable {
        /// The store's directory.
        dir: PathBuf,
        /// Each unreadable file and why.
        files: Vec<(PathBuf, String)>,
    },
}

fn list_files(files: &[(PathBuf, String)]) -> String {
    files
        .iter()
        .map(|(path, why)| format!("{}: {why}", path.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Dtabs in a directory; see the module docs. Reads are served from
/// memory; writes go to disk first and are published once durable.
pub struct DiskStore {
    shared: Arc<Shared>,
    /// Serializes writes; held by the blocking task doing one, so a caller
    /// that gives up cannot let the next write overlap it.
    writes: Arc<tokio::sync::Mutex<()>>,
}

struct Shared {
    dtabs: PathBuf,
    state: Mutex<State>,
    /// Holds the flock for as long as the store lives.
    _lock: File,
}

#[derive(Default)]
struct State {
    namespaces: BTreeMap<Namespace, Slot>,
    list_watch: Option<Publisher<Activity<BTreeSet<Namespace>>>>,
    watches: HashMap<Namespace, Publisher<Activity<Option<VersionedDtab>>>>,
}

/// One namespace, live or deleted.
struct Slot {
    /// The highest version ever given out or attempted; the next write
    /// takes the one after. Never goes down, even after a delete.
    last_version: u64,
    /// What is durably stored now; `None` once deleted.
    current: Option<VersionedDtab>,
}

/// A write, checked against the current state just before it is done.
enum Write {
    Create(Dtab),
    Update(Dtab, Version),
    Put(Dtab),
    Delete,
}

impl DiskStore {
    /// Opens (creating if needed) the store in `dir`: takes its lock,
    /// removes temp files a crash left, and reads every namespace file. Fails
    /// if another process holds the lock or any file does not read; the
    /// error names the files. Does blocking I/O: call it at start-up (or
    /// from `spawn_blocking`).
    pub fn open(dir: impl AsRef<Path>) -> Result<DiskStore, DiskError> {
        let dir = dir.as_ref();
        let opened = dir::open(dir)?;
        let namespaces: BTreeMap<Namespace, Slot> = opened
            .records
            .into_iter()
            .map(|(ns, record)| {
                let version = Version::from_u64(record.version);
                let slot = Slot {
                    last_version: record.version,
                    current: record.dtab.map(|dtab| VersionedDtab { dtab, version }),
                };
                (ns, slot)
            })
            .collect();
        let live = namespaces.values().filter(|s| s.current.is_some()).count();
        tracing::info!(dir = %dir.display(), namespaces = live, "opened the dtab store");
        Ok(DiskStore {
            shared: Arc::new(Shared {
                dtabs: opened.dtabs,
                state: Mutex::new(State {
                    namespaces,
                    ..State::default()
                }),
                _lock: opened.lock,
            }),
            writes: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Does `write` on disk, then in memory, one write at a time. The
    /// blocking part runs to the end even if the caller stops waiting.
    async fn write(&self, ns: &Namespace, write: Write) -> StoreResult<Version> {
        let turn = self.writes.clone().lock_owned().await;
        let shared = self.shared.clone();
        let ns = ns.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            shared.write(&ns, write)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("dtab write task failed: {e}")))?
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocking; the caller holds the write turn, so the state read here is
    /// still current when the file has been written.
    fn write(&self, ns: &Namespace, write: Write) -> StoreResult<Version> {
        let (version, dtab) = {
            let state = self.lock();
            let slot = state.namespaces.get(ns);
            let current = slot.and_then(|s| s.current.as_ref());
            let dtab = match (write, current) {
                (Write::Create(_), Some(_)) => return Err(StoreError::AlreadyExists(ns.clone())),
                (Write::Update(..) | Write::Delete, None) => {
                    return Err(StoreError::NotFound(ns.clone()));
                }
                (Write::Update(_, expected), Some(current)) if current.version != expected => {
                    return Err(StoreError::VersionMismatch(ns.clone()));
                }
                (Write::Create(dtab) | Write::Update(dtab, _) | Write::Put(dtab), _) => Some(dtab),
                (Write::Delete, Some(_)) => None,
            };
            let version = slot
                .map_or(0, |s| s.last_version)
                .checked_add(1)
                .ok_or_else(|| {
                    StoreError::Backend(format!("namespace {ns}: versions exhausted"))
                })?;
            (version, dtab)
        };
        let record = Record { version, dtab };
        let text = file::render(&record).map_err(|why| {
            StoreError::Backend(format!("cannot store the dtab of namespace {ns}: {why}"))
        })?;
        // A write that fails part-way may still reach the disk, so its
        // version is used up whatever happens next.
        self.lock()
            .namespaces
            .entry(ns.clone())
            .or_insert(Slot {
                last_version: 0,
                current: None,
            })
            .last_version = version;
        dir::replace(&self.dtabs, ns, &text).map_err(|e| {
            let outcome = if e.maybe_kept {
                "it may or may not have been kept"
            } else {
                "it was not stored"
            };
            StoreError::Backend(format!("namespace {ns}: {}; {outcome}", e.error))
        })?;

        let mut state = self.lock();
        let version = Version::from_u64(version);
        let current = record.dtab.map(|dtab| VersionedDtab {
            dtab,
            version: version.clone(),
        });
        let slot = state.namespaces.get_mut(ns);
        let was_live = slot.as_ref().is_some_and(|s| s.current.is_some());
        let list_changed = was_live != current.is_some();
        if let Some(slot) = slot {
            slot.current = current;
        }
        state.notify(ns, list_changed);
        Ok(version)
    }
}

impl State {
    fn names(&self) -> BTreeSet<Namespace> {
        self.namespaces
            .iter()
            .filter(|(_, slot)| slot.current.is_some())
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    fn current(&self, ns: &Namespace) -> Option<VersionedDtab> {
        self.namespaces.get(ns).and_then(|s| s.current.clone())
    }

    fn notify(&mut self, ns: &Namespace, list_changed: bool) {
        if list_changed && let Some(list) = &self.list_watch {
            list.publish(Activity::Ok(self.names()));
        }
        if let Some(watch) = self.watches.get(ns) {
            watch.publish(Activity::Ok(self.current(ns)));
        }
        // Forget watches nobody holds any more.
        self.watches.retain(|_, w| w.subscriber_count() > 0);
    }
}

impl DtabStore for DiskStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        let names = self.shared.lock().names();
        async move { Ok(names) }.boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        let found = self.shared.lock().current(ns);
        async move { Ok(found) }.boxed()
    }

    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        self.write(ns, Write::Create(dtab.clone())).boxed()
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        self.write(ns, Write::Update(dtab.clone(), version.clone()))
            .boxed()
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        self.write(ns, Write::Put(dtab.clone())).boxed()
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        self.write(ns, Write::Delete).map(|r| r.map(|_| ())).boxed()
    }

    fn watch_list(&self) -> NamespacesWatch {
        let mut state = self.shared.lock();
        let names = state.names();
        state
            .list_watch
            .get_or_insert_with(|| Publisher::new(Activity::Ok(names)))
            .subscribe()
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let mut state = self.shared.lock();
        let current = state.current(ns);
        state
            .watches
            .entry(ns.clone())
            .or_insert_with(|| Publisher::new(Activity::Ok(current)))
            .subscribe()
    }
}
