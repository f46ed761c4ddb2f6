//! The `io.l5d.fs` interpreter: the default interpreter's namers, with a
//! dtab kept in a watched file.
//!
//! A name is bound through the file's dtab followed by the dtab the router
//! passes (its own dtab and the request's), so the router's entries win. The
//! file's directory is watched (inotify through `notify`), so an edit,
//! a rename-over save or a Kubernetes ConfigMap update is seen within a few
//! milliseconds; the file is also re-read every few seconds in case an event
//! was lost. A file that does not parse, or that disappears, is logged and
//! the last good dtab stays in force. The binding side is shared with the
//! other watched-dtab interpreters (`watched`).

#[cfg(test)]
mod tests;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dtab::Dtab;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::{Interpreter, Live};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::sleep;

use super::params;
use super::watched::{DtabSource, Read, SourceDtab, SourceUpdates, WatchedDtab, parse_dtab};

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
pub type FileDtab = SourceDtab;

/// The `io.l5d.fs` interpreter. Cheap to clone.
pub type FsInterpreter = WatchedDtab<FileSource>;

/// A dtab file, watched.
#[derive(Clone, Debug)]
pub struct FileSource {
    file: PathBuf,
}

impl WatchedDtab<FileSource> {
    /// An interpreter binding through the dtab in `dtab_file` with the
    /// namers of `default`.
    pub fn new(dtab_file: PathBuf, default: Interpreter) -> FsInterpreter {
        WatchedDtab::with_source(FileSource { file: dtab_file }, default)
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
        &self.source().file
    }

    /// The file's dtab, live. The file is read before this returns when
    /// nothing watches it yet, and watched while any handle is held. Must
    /// be called within a tokio runtime.
    pub fn file_dtab(&self) -> Live<FileDtab> {
        self.source_dtab()
    }
}

impl DtabSource for FileSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("the dtab file {}", self.file.display())
    }

    /// The file is read at once, so names are bound without waiting.
    fn initial(&self) -> SourceDtab {
        let state = match read_dtab(&self.file) {
            Ok(dtab) => SourceDtab {
                dtab: Some(dtab),
                error: None,
            },
            Err(error) => SourceDtab {
                dtab: None,
                error: Some(error.into()),
            },
        };
        if let Some(error) = &state.error {
            tracing::warn!(%error, "io.l5d.fs interpreter: no usable dtab");
        }
        state
    }

    fn watch(self: Arc<Self>, updates: SourceUpdates) -> BoxFuture<'static, ()> {
        watch_file(self.file.clone(), updates).boxed()
    }
}

/// A read of the file as a reading of the source.
fn reading(read: Result<Dtab, String>) -> Read {
    match read {
        Ok(dtab) => Read::Dtab(dtab),
        Err(error) => Read::Failed(error),
    }
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
    parse_dtab(&text, &shown.to_string())
}

/// Keeps `updates` up to date with the file until nobody listens.
async fn watch_file(file: PathBuf, updates: SourceUpdates) {
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
        updates.apply(reading(read));
        let wait = if watcher.is_some() { RESCAN } else { POLL };
        tokio::select! {
            () = updates.closed() => return,
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
