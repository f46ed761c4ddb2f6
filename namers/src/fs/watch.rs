//! Watching the directory and reading the service files.

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep};

use super::parse::{self, EndpointLine, Host};
use super::{Inner, MAX_FILE_BYTES};
use crate::{Endpoint, Publisher};

/// How often every subscribed file is re-read anyway, in case an event was
/// lost (an overflowed inotify queue, a directory replaced wholesale).
const RESCAN: Duration = Duration::from_secs(10);
/// How often to re-read when the directory cannot be watched at all.
const POLL: Duration = Duration::from_secs(1);
/// Files read by one blocking task (service files are small and local).
const FILES_PER_READ_TASK: usize = 64;
/// How long to let a burst of events settle before reading, so a writer's
/// truncate-then-write is read once, whole.
const SETTLE: Duration = Duration::from_millis(20);
/// How long one host name may take to resolve.
const DNS_TIMEOUT: Duration = Duration::from_secs(10);

/// What reading a service file found.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Snapshot {
    /// No such file (or a directory, or a dangling symlink).
    Absent,
    /// The file's text.
    Text(Arc<str>),
    /// The file exists but cannot be used; the message says why.
    Refused(String),
}

/// What the directory events since the last read named.
#[derive(Default)]
struct Changed {
    /// Something happened that may have changed any file: read them all.
    all: bool,
    /// The entries of the directory that events named.
    names: HashSet<String>,
}

/// Shared between the watcher's thread, which records, and the task that
/// reads.
#[derive(Default)]
struct ChangeLog(Mutex<Changed>);

impl ChangeLog {
    fn record(&self, root: &FsPath, event: &Event) {
        let mut changed = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if event.need_rescan() {
            changed.all = true;
        }
        for path in &event.paths {
            let name = path
                .strip_prefix(root)
                .ok()
                .and_then(|rest| rest.to_str())
                .filter(|rest| !rest.is_empty() && !rest.contains('/'));
            match name {
                // A ConfigMap volume swaps `..data`, which every file links
                // through: that changes them all at once.
                Some(name) if !name.starts_with("..") => {
                    changed.names.insert(name.to_string());
                }
                _ => changed.all = true,
            }
        }
    }

    fn record_all(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).all = true;
    }

    fn take(&self) -> Changed {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Watches the directory and re-reads the tracked files until nobody holds
/// `directory` (then the watcher is dropped); its value wakes it to read
/// newly tracked files. An event re-reads only the files it names, unless
/// it may have changed others (see [`Inner::files_to_read`]); every
/// [`RESCAN`] all are re-read.
pub(super) async fn drive(inner: Arc<Inner>, directory: Arc<Publisher<Arc<Notify>>>) {
    let wake = directory.current();
    tokio::select! {
        () = follow(&inner, &wake) => {}
        () = directory.closed() => {}
    }
}

/// What [`drive`] does while somebody holds the directory: never ends.
async fn follow(inner: &Arc<Inner>, wake: &Notify) {
    let (events_tx, mut events) = mpsc::channel(1);
    let broken = Arc::new(AtomicBool::new(false));
    let log = Arc::new(ChangeLog::default());
    let watch = |events_tx: &mpsc::Sender<()>| {
        start_watcher(&inner.root, events_tx.clone(), broken.clone(), log.clone())
    };
    let start = || match watch(&events_tx) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(namer = "io.l5d.fs", dir = %inner.root.display(), %error, "io.l5d.fs: cannot watch; re-reading every second");
            None
        }
    };
    let mut watcher = start();
    let rescan = sleep(period(&watcher));
    tokio::pin!(rescan);
    loop {
        // Files looked up since the last turn are read first.
        let unread = inner.files_to_read(None);
        if !unread.is_empty() {
            refresh(inner, unread).await;
            continue;
        }
        tokio::select! {
            Some(()) = events.recv() => {
                sleep(SETTLE).await;
                while events.try_recv().is_ok() {}
            }
            () = &mut rescan => {
                // Retry quietly: one warning per outage is enough.
                if broken.swap(false, Ordering::Relaxed) {
                    watcher = start();
                } else if watcher.is_none() {
                    watcher = watch(&events_tx).ok();
                }
                log.record_all();
                rescan.as_mut().reset(Instant::now() + period(&watcher));
            }
            () = wake.notified() => continue,
        }
        let files = inner.files_to_read(Some(&log.take()));
        if !files.is_empty() {
            refresh(inner, files).await;
        }
    }
}

fn period(watcher: &Option<RecommendedWatcher>) -> Duration {
    if watcher.is_some() { RESCAN } else { POLL }
}

/// Watches `root` (not its subdirectories); every event that may mean a
/// change sends a (coalesced) wake-up on `events`.
fn start_watcher(
    root: &FsPath,
    events: mpsc::Sender<()>,
    broken: Arc<AtomicBool>,
    log: Arc<ChangeLog>,
) -> notify::Result<RecommendedWatcher> {
    let watched_root = root.to_path_buf();
    let handler = move |event: notify::Result<Event>| {
        match event {
            // Opening and reading files (our own reads too) changes nothing.
            Ok(Event {
                kind: EventKind::Access(access),
                ..
            }) if !matches!(access, AccessKind::Close(AccessMode::Write)) => {
                return;
            }
            Ok(event) => {
                let root_moved = matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                ) && event.paths.contains(&watched_root);
                if root_moved {
                    broken.store(true, Ordering::Relaxed);
                }
                log.record(&watched_root, &event);
            }
            Err(_) => {
                broken.store(true, Ordering::Relaxed);
                log.record_all();
            }
        }
        // A full channel already holds a wake-up.
        let _ = events.try_send(());
    };
    let mut watcher = notify::recommended_watcher(handler)?;
    watcher.watch(root, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

impl Inner {
    /// The tracked files to read: without `changed`, those not read since
    /// they were tracked; with it, those the change may have touched. An
    /// event naming an entry nobody tracks can still change a tracked file
    /// that is a symlink to it, so then the symlinked files are read too.
    fn files_to_read(&self, changed: Option<&Changed>) -> Vec<String> {
        let files = self.lock();
        let untracked = changed.is_some_and(|c| c.names.iter().any(|n| !files.contains_key(n)));
        let read = files.iter().filter(|(name, tracked)| match changed {
            None => !tracked.read,
            Some(changed) => {
                changed.all || changed.names.contains(*name) || (untracked && tracked.symlink)
            }
        });
        read.map(|(name, _)| name.clone()).collect()
    }
}

/// Reads `files` and publishes what changed, all at once.
async fn refresh(inner: &Arc<Inner>, files: Vec<String>) {
    // A missing root directory (unmounted, being replaced) is an outage of
    // the backend, not the deletion of every service: keep the last good
    // endpoints rather than turning every name negative.
    let root = inner.root.clone();
    let root_ok =
        tokio::task::spawn_blocking(move || std::fs::metadata(&root).is_ok_and(|m| m.is_dir()))
            .await
            .unwrap_or(false);
    if !root_ok {
        let why = format!(
            "rootDir {} is missing or not a directory",
            inner.root.display()
        );
        let mut tracked = inner.lock();
        for file in &files {
            inner.apply(&mut tracked, file, Snapshot::Refused(why.clone()));
        }
        return;
    }
    // A blocking task per chunk of files, not per file: a rescan of a
    // thousand subscribed files would otherwise start hundreds of threads
    // every RESCAN period.
    let reads = files.chunks(FILES_PER_READ_TASK).map(|chunk| {
        let paths: Vec<(PathBuf, String)> = chunk
            .iter()
            .map(|file| (inner.root.join(file), file.clone()))
            .collect();
        let count = paths.len();
        async move {
            tokio::task::spawn_blocking(move || {
                paths
                    .iter()
                    .map(|(path, file)| {
                        let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink());
                        (read_file(path, file), symlink)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_else(|error| {
                let failed = || (Snapshot::Refused(format!("reading failed: {error}")), false);
                (0..count).map(|_| failed()).collect()
            })
        }
    });
    let snapshots: Vec<(Snapshot, bool)> = join_all(reads).await.into_iter().flatten().collect();
    #[cfg(test)]
    inner.reads.fetch_add(files.len(), Ordering::Relaxed);
    let mut tracked = inner.lock();
    for (file, (snapshot, symlink)) in files.iter().zip(snapshots) {
        if let Some(entry) = tracked.get_mut(file) {
            entry.symlink = symlink;
        }
        inner.apply(&mut tracked, file, snapshot);
    }
}

/// Reads one service file, following symlinks; refuses large files before
/// reading them.
fn read_file(path: &PathBuf, file: &str) -> Snapshot {
    let absent = |error: &std::io::Error| error.kind() == std::io::ErrorKind::NotFound;
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) if absent(&error) => return Snapshot::Absent,
        Err(error) => return Snapshot::Refused(format!("{file}: {error}")),
    };
    if meta.is_dir() {
        return Snapshot::Absent;
    }
    if !meta.is_file() {
        // A FIFO or a device could block a read forever.
        return Snapshot::Refused(format!("{file}: not a regular file"));
    }
    let too_large = |size: u64| {
        Snapshot::Refused(format!(
            "{file}: {size} bytes, over the {MAX_FILE_BYTES}-byte limit"
        ))
    };
    if meta.len() > MAX_FILE_BYTES {
        return too_large(meta.len());
    }
    let mut bytes = Vec::new();
    // The file may grow between the check and the read: read one byte
    // more than allowed to notice.
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) if bytes.len() as u64 > MAX_FILE_BYTES => too_large(bytes.len() as u64),
        Ok(_) => match parse::decode(file, bytes) {
            Ok(text) => Snapshot::Text(text.into()),
            Err(error) => Snapshot::Refused(error.to_string()),
        },
        Err(error) if absent(&error) => Snapshot::Absent,
        Err(error) => Snapshot::Refused(format!("{file}: {error}")),
    }
}

/// The endpoints of `lines` when every host is an IP address, so nothing
/// needs resolving.
pub(super) fn literal_endpoints(lines: &[EndpointLine]) -> Option<Vec<Endpoint>> {
    lines
        .iter()
        .map(|line| match line.host {
            Host::Ip(ip) => Some(line.endpoint(SocketAddr::new(ip, line.port))),
            Host::Name(_) => None,
        })
        .collect()
}

/// The endpoints of `lines`, resolving host names (every address of a
/// name is an endpoint). Any name that does not resolve fails the file.
pub(super) async fn resolve(file: &str, lines: &[EndpointLine]) -> Result<Vec<Endpoint>, String> {
    let resolved = join_all(lines.iter().map(|line| async move {
        let name = match &line.host {
            Host::Ip(ip) => return Ok(vec![line.endpoint(SocketAddr::new(*ip, line.port))]),
            Host::Name(name) => name,
        };
        let blame = |why: String| format!("{file}:{}: cannot resolve {name}: {why}", line.line);
        match tokio::time::timeout(
            DNS_TIMEOUT,
            tokio::net::lookup_host((name.as_str(), line.port)),
        )
        .await
        {
            Ok(Ok(addrs)) => {
                let endpoints: Vec<Endpoint> = addrs.map(|addr| line.endpoint(addr)).collect();
                if endpoints.is_empty() {
                    Err(blame("no addresses".into()))
                } else {
                    Ok(endpoints)
                }
            }
            Ok(Err(error)) => Err(blame(error.to_string())),
            Err(_) => Err(blame(format!("no answer in {DNS_TIMEOUT:?}"))),
        }
    }))
    .await;
    let mut endpoints = Vec::new();
    for result in resolved {
        endpoints.extend(result?);
    }
    Ok(endpoints)
}
