//! The `io.l5d.fs` namer: a directory with one file per service, each file
//! listing the service's endpoints (see [`parse_endpoints`] for the format).
//!
//! Looking up `/web/api` below the namer's prefix binds to the file `web`:
//! the id is `<prefix>/web`, the residual `/api`, and the address is the
//! live endpoint set of the file. The tree changes only when the file
//! appears or disappears; an edit only changes the address. A malformed or
//! oversized file is logged and leaves the last good endpoint set in place.
//!
//! The directory is watched with inotify (through `notify`), so edits,
//! rename-over saves and Kubernetes ConfigMap updates (a `..data` symlink
//! swapped under the service files) are seen at once; every subscribed file
//! is also re-read every few seconds in case an event was lost. Nothing is
//! watched while nothing is subscribed.

mod parse;
mod watch;

#[cfg(test)]
mod tests;

pub use parse::{EndpointLine, FsParseError, Host, LineError, parse_endpoints};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dtab::{Label, NameTree, Path};
use serde::Deserialize;
use tokio::sync::{Notify, watch as tokio_watch};

use crate::namer_table::{Found, NamerTable};
use crate::{Activity, Addr, Live, LiveCache, Lookup, Namer, Publisher};
use watch::Snapshot;

/// Service files larger than this many bytes are refused, not read.
pub const MAX_FILE_BYTES: u64 = 500 * 1024;

/// The `io.l5d.fs` config block (its `kind` and `prefix` are read by the
/// namer registry).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FsConfig {
    /// The directory holding one file per service.
    pub root_dir: std::path::PathBuf,
}

impl FsConfig {
    /// Builds the namer, serving paths below `prefix`.
    pub fn build(&self, prefix: Path) -> Result<Arc<FsNamer>, FsError> {
        FsNamer::new(prefix, self.root_dir.clone())
    }
}

/// Why an `io.l5d.fs` namer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// `rootDir` is missing, not a directory, or not readable.
    #[error("io.l5d.fs rootDir {}: {source}", path.display())]
    RootDir {
        /// The configured directory.
        path: std::path::PathBuf,
        /// Why it cannot be listed.
        #[source]
        source: std::io::Error,
    },
}

/// The `io.l5d.fs` namer.
pub struct FsNamer {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: Path,
    root: std::path::PathBuf,
    table: NamerTable<String>,
    /// The files the directory watch reads: those somebody holds a lookup
    /// or an address of.
    files: Mutex<HashMap<String, Tracked>>,
    /// The directory watch, running while any file is tracked; its value
    /// wakes it to read newly tracked files.
    directory: LiveCache<(), Arc<Notify>>,
    watched: tokio_watch::Sender<usize>,
    /// How many times a file has been read, to check nothing re-reads in a loop.
    #[cfg(test)]
    reads: std::sync::atomic::AtomicUsize,
}

/// A file the directory watch keeps up to date.
struct Tracked {
    found: Arc<Publisher<Found>>,
    /// Whether it has been read since it was tracked.
    read: bool,
    /// Whether the file was a symlink when last read: a change to what it
    /// points at shows up as an event on another entry.
    symlink: bool,
    /// What was last read, so unchanged files publish nothing.
    seen: Option<Snapshot>,
    /// Bumped on each new content, so a slow name resolution of older
    /// content is not applied over newer.
    generation: u64,
}

impl FsNamer {
    /// A namer for the files of `root_dir`, serving paths below `prefix`
    /// (usually `/#/io.l5d.fs`). Fails if `root_dir` cannot be listed.
    pub fn new(prefix: Path, root_dir: std::path::PathBuf) -> Result<Arc<FsNamer>, FsError> {
        if let Err(source) = std::fs::read_dir(&root_dir) {
            return Err(FsError::RootDir {
                path: root_dir,
                source,
            });
        }
        let (watched, _) = tokio_watch::channel(0);
        let inner = Inner {
            prefix,
            root: root_dir,
            table: NamerTable::new("io.l5d.fs"),
            files: Mutex::default(),
            directory: LiveCache::default(),
            watched,
            #[cfg(test)]
            reads: Default::default(),
        };
        Ok(Arc::new(FsNamer {
            inner: Arc::new(inner),
        }))
    }

    /// How many files are being tracked (looked up, or whose address is
    /// held); zero once every handle has been dropped.
    pub fn watched_count(&self) -> usize {
        self.inner.lock().len()
    }

    /// [`FsNamer::watched_count`] as a value to wait on.
    pub fn watched(&self) -> tokio_watch::Receiver<usize> {
        self.inner.watched.subscribe()
    }

    /// Whether the directory is being watched (it is while any file is
    /// tracked; the watcher itself is released just after).
    pub fn is_watching(&self) -> bool {
        !self.inner.lock().is_empty()
    }
}

impl Namer for FsNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        let Some((label, file)) = path.elems().first().and_then(|l| Some((l, file_name(l)?)))
        else {
            return Live::constant(Activity::Ok(NameTree::Neg));
        };
        let inner = &self.inner;
        let id = inner.prefix.concat_labels(std::slice::from_ref(label));
        let watch = {
            let (inner, file) = (inner.clone(), file.clone());
            move |found| inner.clone().track(file.clone(), found)
        };
        let residual = path.drop_first(1);
        inner
            .table
            .lookup(file, id, residual, || Found::Pending, watch)
    }
}

/// The file a path label names, unless it could escape the directory.
fn file_name(label: &Label) -> Option<String> {
    let name = label.as_str()?;
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return None;
    }
    Some(name.to_string())
}

impl Tracked {
    /// Reports a bad file: the last good endpoints stay; without any, the
    /// address fails.
    fn fail(&self, why: &str) {
        if matches!(*self.found.current(), Found::Present(Addr::Bound(_))) {
            tracing::warn!(namer = "io.l5d.fs", error = %why, "io.l5d.fs: bad service file; keeping its last good endpoints");
        } else {
            tracing::warn!(namer = "io.l5d.fs", error = %why, "io.l5d.fs: bad service file");
            let failed = Addr::Failed(why.into());
            self.found.publish_if_changed(Found::Present(failed));
        }
    }
}

type Files = HashMap<String, Tracked>;

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Files> {
        // Nothing panics while holding the lock; if something did, the
        // state is still consistent enough to keep serving.
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_watched(&self, files: &Files) {
        let count = files.len();
        self.watched
            .send_if_modified(|n| std::mem::replace(n, count) != count);
    }

    /// Has the directory watch keep `file` up to date until nobody holds
    /// what was found of it.
    async fn track(self: Arc<Self>, file: String, found: Arc<Publisher<Found>>) {
        let directory = {
            let inner = self.clone();
            let drive = move |directory| watch::drive(inner.clone(), directory);
            self.directory
                .subscribe((), || Arc::new(Notify::new()), drive)
        };
        let tracked = Tracked {
            found: found.clone(),
            read: false,
            symlink: false,
            seen: None,
            generation: 0,
        };
        {
            let mut files = self.lock();
            files.insert(file.clone(), tracked);
            self.count_watched(&files);
        }
        // Read it at once.
        directory.load().notify_one();
        found.closed().await;
        let mut files = self.lock();
        if files
            .get(&file)
            .is_some_and(|t| Arc::ptr_eq(&t.found, &found))
        {
            files.remove(&file);
        }
        self.count_watched(&files);
    }

    /// Applies what was read of `file`, publishing only what changed.
    fn apply(self: &Arc<Self>, files: &mut Files, file: &str, snapshot: Snapshot) {
        let Some(tracked) = files.get_mut(file) else {
            return;
        };
        tracked.read = true;
        if tracked.seen.as_ref() == Some(&snapshot) {
            return;
        }
        tracked.generation = tracked.generation.wrapping_add(1);
        match &snapshot {
            Snapshot::Absent => {
                tracked.found.publish_if_changed(Found::Absent);
            }
            Snapshot::Refused(why) => tracked.fail(why),
            Snapshot::Text(text) => match parse_endpoints(file, text) {
                Err(error) => tracked.fail(&error.to_string()),
                Ok(lines) => match watch::literal_endpoints(&lines) {
                    Some(endpoints) => {
                        let found = Found::Present(Addr::bound(endpoints));
                        tracked.found.publish_if_changed(found);
                    }
                    None => {
                        // Bound while its names resolve, to its last
                        // endpoints if it has any.
                        let addr = match &*tracked.found.current() {
                            Found::Present(addr) => addr.clone(),
                            _ => Addr::Pending,
                        };
                        tracked.found.publish_if_changed(Found::Present(addr));
                        let task =
                            self.clone()
                                .resolve(file.to_string(), tracked.generation, lines);
                        tokio::spawn(task);
                    }
                },
            },
        }
        tracked.seen = Some(snapshot);
    }

    /// Resolves the host names of a file in the background.
    async fn resolve(self: Arc<Self>, file: String, generation: u64, lines: Vec<EndpointLine>) {
        let result = watch::resolve(&file, &lines).await;
        let mut files = self.lock();
        let Some(tracked) = files.get_mut(&file) else {
            return;
        };
        if tracked.generation != generation {
            return;
        }
        match result {
            Ok(endpoints) => {
                let found = Found::Present(Addr::bound(endpoints));
                tracked.found.publish_if_changed(found);
            }
            Err(why) => {
                // Forget the content so that the next re-read tries again.
                tracked.seen = None;
                tracked.fail(&why);
            }
        }
    }
}
