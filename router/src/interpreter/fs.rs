//! The `io.l5d.fs` interpreter: the default interpreter's namers, with a
//! dtab kept in a watched file.
//!
//! A name is bound through the file's dtab followed by the dtab the router
//! passes (its own dtab and the request's), so the router's entries win. The
//! file's directory is watched (inotify through `notify`), so an edit,
//! a rename-over save or a Kubernetes ConfigMap update is seen within a few
//! milliseconds; the file is also re-read every few seconds in case an event
//! was lost. A file that does not parse, or that disappears, is logged and
//! the last good dtab stays in force.

#[cfg(test)]
mod tests;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::LiveCache;
use namers::{
    Activity, Binding, Bound, Interpreter, Live, NameInterpreter, NamingError, Publisher,
};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::sleep;

use super::{RouterNaming, params};

/// The interpreter's `kind`.
pub const KIND: &str = "io.l5d.fs";

/// Dtab files larger than this are refused, not read.
pub const MAX_DTAB_FILE_BYTES: u64 = 1024 * 1024;

/// How often the file is re-read anyway, in case a change event was lost.
const RESCAN: Duration = Duration::from_secs(10);
/// How often the file is re-read when its directory cannot be watched.
const POLL: Duration = Duration::from_secs(1);
/// How long a burst of events settles before the file is read, so a
/// truncate-then-write is read once, whole.
const SETTLE: Duration = Duration::from_millis(20);

/// `interpreter: {kind: io.l5d.fs, dtabFile: ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FsInterpreterConfig {
    /// The file holding the dtab, in dtab syntax.
    pub dtab_file: PathBuf,
}

/// What the watched file holds, as far as bindings are concerned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileDtab {
    /// The last dtab read successfully; `None` until the file has parsed
    /// once.
    pub dtab: Option<Dtab>,
    /// Why the latest read gave no dtab (`path:line:col: ...` for a syntax
    /// error); `None` when it did.
    pub error: Option<Arc<str>>,
}

/// The `io.l5d.fs` interpreter. Cheap to clone.
#[derive(Clone)]
pub struct FsInterpreter {
    inner: Arc<Inner>,
}

struct Inner {
    file: PathBuf,
    default: Interpreter,
    /// One watch of the file, shared by every binding, ended when none is
    /// left.
    watch: LiveCache<(), FileDtab>,
}

impl FsInterpreter {
    /// An interpreter binding through the dtab in `dtab_file` with the
    /// namers of `default`.
    pub fn new(dtab_file: PathBuf, default: Interpreter) -> FsInterpreter {
        FsInterpreter {
            inner: Arc::new(Inner {
                file: dtab_file,
                default,
                watch: LiveCache::default(),
            }),
        }
    }

    /// Builds the interpreter from the keys of its `interpreter:` block.
    pub fn from_params(
        params: &Map<String, Value>,
        default: &Interpreter,
    ) -> Result<FsInterpreter, String> {
        let config: FsInterpreterConfig = params::parse(KIND, params)?;
        if config.dtab_file.as_os_str().is_empty() {
            return Err(params::invalid(KIND, "dtabFile", "must not be empty"));
        }
        Ok(FsInterpreter::new(config.dtab_file, default.clone()))
    }

    /// The file this interpreter reads.
    pub fn dtab_file(&self) -> &FsPath {
        &self.inner.file
    }

    /// The file's dtab, live. The file is read before this returns when
    /// nothing watches it yet, and watched while any handle is held. Must
    /// be called within a tokio runtime.
    pub fn file_dtab(&self) -> Live<FileDtab> {
        let file = self.inner.file.clone();
        self.inner.watch.subscribe(
            (),
            || initial(&self.inner.file),
            move |publisher| watch_file(file.clone(), publisher),
        )
    }

    /// Whether the file is being watched (it is while any binding or
    /// [`FsInterpreter::file_dtab`] handle is held).
    pub fn is_watching(&self) -> bool {
        !self.inner.watch.is_empty()
    }
}

impl RouterNaming for FsInterpreter {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        if tokio::runtime::Handle::try_current().is_err() {
            return Live::constant(Activity::Failed(NamingError::namer(
                "io.l5d.fs interpreter: binding outside a tokio runtime",
            )));
        }
        let file = self.file_dtab();
        let mut follow = Follow {
            default: self.inner.default.clone(),
            local: dtab.clone(),
            path: path.clone(),
            current: None,
            publisher: Publisher::new(Activity::Pending),
        };
        // The first answer is computed here, like the default
        // interpreter's, so names needing no I/O are bound at once.
        follow.step(&file.load());
        let binding = follow.publisher.subscribe();
        tokio::spawn(follow.run(file));
        binding
    }

    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let state = self.file_dtab().load();
            let Some(base) = &state.dtab else {
                return Err(state
                    .error
                    .as_deref()
                    .unwrap_or("the dtab file has not been read yet")
                    .to_string());
            };
            let full = base.concat(dtab);
            RouterNaming::delegate(&self.inner.default, &full, path).await
        }
        .boxed()
    }

    // Ready once the file has given a usable dtab; a file that breaks later
    // leaves the last good dtab in force, so readiness stays.
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            let state = self.file_dtab().load();
            match (&state.dtab, &state.error) {
                (Some(_), _) => Ok(()),
                (None, error) => Err(format!(
                    "io.l5d.fs interpreter: no usable dtab in {} yet: {}",
                    self.inner.file.display(),
                    error.as_deref().unwrap_or("not read yet")
                )),
            }
        }
        .boxed()
    }
}

/// One binding: the default interpreter's binding of the path through the
/// file's dtab plus the router's, replaced whenever the file's dtab
/// changes.
struct Follow {
    default: Interpreter,
    local: Dtab,
    path: Path,
    current: Option<(Dtab, Binding)>,
    publisher: Publisher<Activity<NameTree<Bound>>>,
}

impl Follow {
    async fn run(mut self, mut file: Live<FileDtab>) {
        loop {
            tokio::select! {
                () = self.publisher.closed() => return,
                () = file.changed() => {}
                () = async {
                    match self.current.as_mut() {
                        Some((_, binding)) => binding.changed().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            self.step(&file.load());
        }
    }

    /// Rebinds if the file's dtab changed, then publishes the binding's
    /// state.
    fn step(&mut self, file: &FileDtab) {
        if let Some(base) = &file.dtab {
            let full = base.concat(&self.local);
            if self.current.as_ref().is_none_or(|(d, _)| *d != full) {
                let binding = NameInterpreter::bind(&self.default, &full, &self.path);
                self.current = Some((full, binding));
            }
        }
        let next = match &self.current {
            Some((_, binding)) => binding.load(),
            None => match &file.error {
                Some(error) => Arc::new(Activity::Failed(NamingError::Namer(error.clone()))),
                None => return,
            },
        };
        // A new dtab's binding may need a moment (a namer reading a file);
        // the previous tree serves meanwhile.
        if next.is_pending() && matches!(*self.publisher.current(), Activity::Ok(_)) {
            return;
        }
        publish_if_changed(&self.publisher, &next);
    }
}

/// Publishes `next` unless it is the current state with the same address
/// handles (an equal tree whose leaves read other address sources is
/// published, so nobody is left holding a handle that no longer updates).
pub(super) fn publish_if_changed(
    publisher: &Publisher<Activity<NameTree<Bound>>>,
    next: &Activity<NameTree<Bound>>,
) {
    let current = publisher.current();
    let same = match (&*current, next) {
        (Activity::Ok(a), Activity::Ok(b)) => a == b && same_addr_sources(a, b),
        (a, b) => a == b,
    };
    if !same {
        publisher.publish(next.clone());
    }
}

fn same_addr_sources(a: &NameTree<Bound>, b: &NameTree<Bound>) -> bool {
    let (mut left, mut right) = (Vec::new(), Vec::new());
    leaves(a, &mut left);
    leaves(b, &mut right);
    left.len() == right.len()
        && left
            .iter()
            .zip(&right)
            .all(|(x, y)| x.addr.same_source(&y.addr))
}

fn leaves<'t>(tree: &'t NameTree<Bound>, out: &mut Vec<&'t Bound>) {
    match tree {
        NameTree::Leaf(bound) => out.push(bound),
        NameTree::Alt(trees) => trees.iter().for_each(|t| leaves(t, out)),
        NameTree::Union(branches) => branches.iter().for_each(|w| leaves(&w.tree, out)),
        NameTree::Neg | NameTree::Fail | NameTree::Empty => {}
    }
}

/// The state of the file when nobody watched it yet.
fn initial(file: &FsPath) -> FileDtab {
    let state = match read_dtab(file) {
        Ok(dtab) => FileDtab {
            dtab: Some(dtab),
            error: None,
        },
        Err(error) => FileDtab {
            dtab: None,
            error: Some(error.into()),
        },
    };
    if let Some(error) = &state.error {
        tracing::warn!(%error, "io.l5d.fs interpreter: no usable dtab");
    }
    state
}

/// Applies a read of the file: a dtab replaces the current one; an error
/// is recorded and logged while the last good dtab stays.
fn apply(publisher: &Publisher<FileDtab>, read: Result<Dtab, String>) {
    let current = publisher.current();
    let next = match read {
        Ok(dtab) => FileDtab {
            dtab: Some(dtab),
            error: None,
        },
        Err(error) => FileDtab {
            dtab: current.dtab.clone(),
            error: Some(error.into()),
        },
    };
    if *current == next {
        return;
    }
    match (&next.error, &current.error) {
        (Some(error), _) if next.dtab.is_some() => {
            tracing::warn!(%error, "io.l5d.fs interpreter: keeping the last good dtab");
        }
        (Some(error), _) => tracing::warn!(%error, "io.l5d.fs interpreter: no usable dtab"),
        (None, Some(_)) => tracing::info!("io.l5d.fs interpreter: the dtab file is usable again"),
        (None, None) => {}
    }
    if next.dtab != current.dtab
        && let Some(dtab) = &next.dtab
    {
        tracing::info!(%dtab, "io.l5d.fs interpreter: dtab changed");
    }
    publisher.publish(next);
}

/// Reads and parses the dtab file; errors name the file (and the line and
/// column of a syntax error).
fn read_dtab(file: &FsPath) -> Result<Dtab, String> {
    let shown = file.display();
    let meta = std::fs::metadata(file).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if meta.len() > MAX_DTAB_FILE_BYTES {
        return Err(format!(
            "{shown}: {} bytes, over the {MAX_DTAB_FILE_BYTES}-byte limit",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("{shown}: {e}"))?;
    Dtab::read(&text).map_err(|e| {
        format!(
            "{shown}:{}:{}: expected {}: \"{}\"",
            e.line, e.column, e.expected, e.context
        )
    })
}

/// Keeps `publisher` up to date with the file until nobody listens.
async fn watch_file(file: PathBuf, publisher: Arc<Publisher<FileDtab>>) {
    let (events_tx, mut events) = mpsc::channel(1);
    let broken = Arc::new(AtomicBool::new(false));
    let start = || match start_watcher(&file, events_tx.clone(), broken.clone()) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(file = %file.display(), %error, "io.l5d.fs interpreter: cannot watch the dtab file's directory; re-reading every second");
            None
        }
    };
    let mut watcher = start();
    loop {
        // Read first: the file may have changed before the watch began.
        let path = file.clone();
        let read = tokio::task::spawn_blocking(move || read_dtab(&path))
            .await
            .unwrap_or_else(|e| Err(format!("{}: reading failed: {e}", file.display())));
        apply(&publisher, read);
        let wait = if watcher.is_some() { RESCAN } else { POLL };
        tokio::select! {
            () = publisher.closed() => return,
            Some(()) = events.recv() => {
                sleep(SETTLE).await;
                while events.try_recv().is_ok() {}
            }
            () = sleep(wait) => {}
        }
        if broken.swap(false, Ordering::Relaxed) {
            watcher = start();
        } else if watcher.is_none() {
            watcher = start_watcher(&file, events_tx.clone(), broken.clone()).ok();
        }
    }
}

/// Watches the file's directory; events about the file (or about the
/// `..data` link a Kubernetes ConfigMap swaps) send a coalesced wake-up.
fn start_watcher(
    file: &FsPath,
    events: mpsc::Sender<()>,
    broken: Arc<AtomicBool>,
) -> notify::Result<RecommendedWatcher> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file.file_name().map(|n| n.to_os_string());
    let watched_dir = dir.clone();
    let handler = move |event: notify::Result<Event>| {
        match event {
            // Opening and reading (ours too) changes nothing.
            Ok(Event {
                kind: EventKind::Access(access),
                ..
            }) if !matches!(access, AccessKind::Close(AccessMode::Write)) => return,
            Ok(event) => {
                let dir_moved = matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                ) && event.paths.contains(&watched_dir);
                if dir_moved {
                    broken.store(true, Ordering::Relaxed);
                }
                let relevant = dir_moved
                    || event.need_rescan()
                    || event.paths.iter().any(|p| {
                        p.file_name().is_some_and(|n| {
                            Some(n) == name.as_deref() || n.to_string_lossy().starts_with("..")
                        })
                    });
                if !relevant {
                    return;
                }
            }
            Err(_) => broken.store(true, Ordering::Relaxed),
        }
        // A full channel already holds a wake-up.
        let _ = events.try_send(());
    };
    let mut watcher = notify::recommended_watcher(handler)?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
