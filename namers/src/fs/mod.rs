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
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch as tokio_watch};

use crate::{Activity, Addr, Bound, Live, Lookup, Name, Namer, NamingError, Publisher};
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

type Tree = Activity<NameTree<Name>>;

struct Inner {
    prefix: Path,
    root: std::path::PathBuf,
    state: Mutex<State>,
    watched: tokio_watch::Sender<usize>,
    /// How many times a file has been read, to check nothing re-reads in a loop.
    #[cfg(test)]
    reads: std::sync::atomic::AtomicUsize,
}

/// Invariant: `driver` is `Some` exactly when `files` is not empty.
#[derive(Default)]
struct State {
    files: HashMap<String, FileEntry>,
    /// Wakes the task that watches the directory; each run of that task has
    /// its own, so a stopped task can tell it has been replaced.
    driver: Option<Arc<Notify>>,
}

/// A file somebody holds a lookup or an address of.
struct FileEntry {
    id: Path,
    addr: Arc<Publisher<Addr>>,
    /// One live tree per residual path looked up.
    trees: HashMap<Path, Arc<Publisher<Tree>>>,
    presence: Presence,
    /// Whether the file was a symlink when last read: a change to what it
    /// points at shows up as an event on another entry.
    symlink: bool,
    /// What was last read, so unchanged files publish nothing.
    seen: Option<Snapshot>,
    /// Bumped on each new content, so a slow name resolution of older
    /// content is not applied over newer.
    generation: u64,
    /// Whether a task waits for the last address handle to go.
    addr_reaper: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    Unknown,
    Absent,
    Present,
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
            state: Mutex::default(),
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
        self.inner.lock().files.len()
    }

    /// [`FsNamer::watched_count`] as a value to wait on.
    pub fn watched(&self) -> tokio_watch::Receiver<usize> {
        self.inner.watched.subscribe()
    }

    /// Whether the directory is being watched (it is while any file is
    /// tracked; the watcher itself is released just after).
    pub fn is_watching(&self) -> bool {
        self.inner.lock().driver.is_some()
    }
}

impl Namer for FsNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        let Some((label, file)) = path.elems().first().and_then(|l| Some((l, file_name(l)?)))
        else {
            return Live::constant(Activity::Ok(NameTree::Neg));
        };
        let Ok(runtime) = Handle::try_current() else {
            return Live::constant(Activity::Failed(NamingError::namer(
                "io.l5d.fs: lookup outside a tokio runtime",
            )));
        };
        let residual = path.drop_first(1);
        let inner = &self.inner;
        let mut guard = inner.lock();
        let state = &mut *guard;
        let mut new_file = false;
        let entry = state.files.entry(file.clone()).or_insert_with(|| {
            new_file = true;
            FileEntry::new(inner.prefix.concat_labels(std::slice::from_ref(label)))
        });
        let tree =
            match entry.trees.get(&residual) {
                Some(tree) => tree.clone(),
                None => {
                    let tree = Arc::new(Publisher::new(entry.tree(&residual)));
                    entry.trees.insert(residual.clone(), tree.clone());
                    let inner = inner.clone();
                    runtime.spawn(tree.clone().release_when_unused(move |tree| {
                        inner.release_tree(&file, &residual, tree)
                    }));
                    tree
                }
            };
        let live = tree.subscribe();
        match &state.driver {
            Some(driver) if new_file => driver.notify_one(),
            Some(_) => {}
            None => {
                let driver = Arc::new(Notify::new());
                state.driver = Some(driver.clone());
                runtime.spawn(watch::drive(inner.clone(), driver));
            }
        }
        inner.count_watched(state);
        live
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

impl FileEntry {
    fn new(id: Path) -> FileEntry {
        FileEntry {
            id,
            addr: Arc::new(Publisher::new(Addr::Pending)),
            trees: HashMap::new(),
            presence: Presence::Unknown,
            symlink: false,
            seen: None,
            generation: 0,
            addr_reaper: false,
        }
    }

    /// The lookup answer for `residual` as things stand.
    fn tree(&self, residual: &Path) -> Tree {
        match self.presence {
            Presence::Unknown => Activity::Pending,
            Presence::Absent => Activity::Ok(NameTree::Neg),
            Presence::Present => {
                let bound = Bound::new(self.id.clone(), residual.clone(), self.addr.subscribe());
                Activity::Ok(NameTree::Leaf(Name::Bound(bound)))
            }
        }
    }

    fn publish_trees(&self) {
        for (residual, tree) in &self.trees {
            tree.publish_if_changed(self.tree(residual));
        }
    }

    /// Reports a bad file: the last good endpoints stay; without any, the
    /// address fails.
    fn fail(&self, why: &str) {
        if matches!(*self.addr.current(), Addr::Bound(_)) {
            tracing::warn!(namer = "io.l5d.fs", error = %why, "io.l5d.fs: bad service file; keeping its last good endpoints");
        } else {
            tracing::warn!(namer = "io.l5d.fs", error = %why, "io.l5d.fs: bad service file");
            self.addr.publish_if_changed(Addr::Failed(why.into()));
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the
        // state is still consistent enough to keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_watched(&self, state: &State) {
        let count = state.files.len();
        self.watched
            .send_if_modified(|n| std::mem::replace(n, count) != count);
    }

    /// Applies what was read of `file`, publishing only what changed.
    fn apply(self: &Arc<Self>, state: &mut State, file: &str, snapshot: Snapshot) {
        let Some(entry) = state.files.get_mut(file) else {
            return;
        };
        if entry.seen.as_ref() == Some(&snapshot) {
            return;
        }
        entry.generation = entry.generation.wrapping_add(1);
        match &snapshot {
            Snapshot::Absent => {
                entry.presence = Presence::Absent;
                entry.addr.publish_if_changed(Addr::Neg);
            }
            Snapshot::Refused(why) => {
                entry.presence = Presence::Present;
                entry.fail(why);
            }
            Snapshot::Text(text) => {
                entry.presence = Presence::Present;
                match parse_endpoints(file, text) {
                    Err(error) => entry.fail(&error.to_string()),
                    Ok(lines) => match watch::literal_endpoints(&lines) {
                        Some(endpoints) => {
                            entry.addr.publish_if_changed(Addr::bound(endpoints));
                        }
                        None => {
                            if matches!(*entry.addr.current(), Addr::Neg) {
                                entry.addr.publish(Addr::Pending);
                            }
                            let task =
                                self.clone()
                                    .resolve(file.to_string(), entry.generation, lines);
                            tokio::spawn(task);
                        }
                    },
                }
            }
        }
        entry.seen = Some(snapshot);
        entry.publish_trees();
    }

    /// Resolves the host names of a file in the background.
    async fn resolve(self: Arc<Self>, file: String, generation: u64, lines: Vec<EndpointLine>) {
        let result = watch::resolve(&file, &lines).await;
        let mut state = self.lock();
        let Some(entry) = state.files.get_mut(&file) else {
            return;
        };
        if entry.generation != generation {
            return;
        }
        match result {
            Ok(endpoints) => {
                entry.addr.publish_if_changed(Addr::bound(endpoints));
            }
            Err(why) => {
                // Forget the content so that the next re-read tries again.
                entry.seen = None;
                entry.fail(&why);
            }
        }
    }

    /// Drops the tree of a lookup nobody holds; says whether the reaper is done.
    fn release_tree(
        self: &Arc<Self>,
        file: &str,
        residual: &Path,
        tree: &Arc<Publisher<Tree>>,
    ) -> bool {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(entry) = state.files.get_mut(file) else {
            return true;
        };
        if !entry
            .trees
            .get(residual)
            .is_some_and(|t| Arc::ptr_eq(t, tree))
        {
            return true;
        }
        if tree.subscriber_count() > 0 {
            // Looked up again since it closed.
            return false;
        }
        entry.trees.remove(residual);
        // Its last value holds an address handle; dropping it now lets the
        // file go at once instead of through an address reaper.
        tree.publish(Activity::Pending);
        if entry.trees.is_empty() {
            if entry.addr.subscriber_count() == 0 {
                self.remove_file(state, file);
            } else if !entry.addr_reaper {
                entry.addr_reaper = true;
                let (inner, file) = (self.clone(), file.to_string());
                tokio::spawn(
                    entry
                        .addr
                        .clone()
                        .release_when_unused(move |addr| inner.release_addr(&file, addr)),
                );
            }
        }
        true
    }

    /// Stops tracking a file whose address nobody holds and that nobody
    /// looks up; says whether the reaper is done.
    fn release_addr(&self, file: &str, addr: &Arc<Publisher<Addr>>) -> bool {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(entry) = state.files.get_mut(file) else {
            return true;
        };
        if !Arc::ptr_eq(&entry.addr, addr) {
            return true;
        }
        if !entry.trees.is_empty() {
            // Looked up again: the trees' reapers take over.
            entry.addr_reaper = false;
            return true;
        }
        if addr.subscriber_count() > 0 {
            return false;
        }
        self.remove_file(state, file);
        true
    }

    fn remove_file(&self, state: &mut State, file: &str) {
        state.files.remove(file);
        if state.files.is_empty()
            && let Some(driver) = state.driver.take()
        {
            driver.notify_one();
        }
        self.count_watched(state);
    }
}
