//! The store's directory: the lock, the start-up scan and crash-safe file
//! replacement.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::DiskError;
use super::file::{self, Record};
use crate::Namespace;

/// The lock file, held (`flock`) while a process has the store open.
const LOCK: &str = "lock";
/// The directory of namespace files.
const DTABS: &str = "dtabs";
/// A namespace file is `<namespace>.dtab`.
const DTAB_SUFFIX: &str = ".dtab";
/// A write in progress is `<namespace>.dtab.tmp`; no namespace file ends so.
const TMP_SUFFIX: &str = ".tmp";

/// An open directory: the held lock and what the files hold.
pub(super) struct Opened {
    pub(super) lock: File,
    pub(super) dtabs: PathBuf,
    pub(super) records: BTreeMap<Namespace, Record>,
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DiskError {
    let path = path.to_path_buf();
    move |source| DiskError::Io { what, path, source }
}

/// Takes the lock on `dir` (creating the layout if needed), removes the temp
/// files a crash left, and reads every namespace file. Any unreadable file
/// fails the whole open.
pub(super) fn open(dir: &Path) -> Result<Opened, DiskError> {
    if dir.as_os_str().is_empty() {
        return Err(DiskError::EmptyPath);
    }
    let existed = dir.is_dir();
    fs::create_dir_all(dir).map_err(io_error("cannot create directory", dir))?;
    if !existed && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent).map_err(io_error("cannot sync directory", parent))?;
    }
    let lock = lock(dir)?;

    let dtabs = dir.join(DTABS);
    if !dtabs.is_dir() {
        fs::create_dir(&dtabs).map_err(io_error("cannot create directory", &dtabs))?;
    }
    // Makes the lock file and `dtabs/` themselves durable.
    sync_dir(dir).map_err(io_error("cannot sync directory", dir))?;

    let mut records = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut removed_temp = false;
    let entries = fs::read_dir(&dtabs).map_err(io_error("cannot list directory", &dtabs))?;
    for entry in entries {
        let entry = entry.map_err(io_error("cannot list directory", &dtabs))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(file = %path.display(), "ignoring a file that is not a namespace file");
            continue;
        };
        if name.ends_with(TMP_SUFFIX) {
            // A write that never reached its rename: never acknowledged.
            fs::remove_file(&path).map_err(io_error("cannot remove temp file", &path))?;
            tracing::info!(file = %path.display(), "removed a temp file left by an interrupted write");
            removed_temp = true;
            continue;
        }
        let Some(stem) = name.strip_suffix(DTAB_SUFFIX) else {
            tracing::warn!(file = %path.display(), "ignoring a file that is not a namespace file");
            continue;
        };
        match read_record(&path, stem) {
            Ok((ns, record)) => {
                records.insert(ns, record);
            }
            Err(reason) => unreadable.push((path, reason)),
        }
    }
    if !unreadable.is_empty() {
        unreadable.sort();
        return Err(DiskError::Unreadable {
            dir: dir.to_path_buf(),
            files: unreadable,
        });
    }
    if removed_temp {
        sync_dir(&dtabs).map_err(io_error("cannot sync directory", &dtabs))?;
    }
    Ok(Opened {
        lock,
        dtabs,
        records,
    })
}

/// Opens and locks `<dir>/lock`, then writes our pid in it for whoever
/// finds it locked.
fn lock(dir: &Path) -> Result<File, DiskError> {
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("cannot open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // Only for the message; an unreadable pid is no reason to fail differently.
            let _ = file.read_to_string(&mut holder);
            return Err(DiskError::Locked {
                dir: dir.to_path_buf(),
                lock: path,
                holder: holder.trim().to_string(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_error("cannot lock", &path)(e)),
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(io_error("cannot write lock file", &path))?;
    Ok(file)
}

fn read_record(path: &Path, stem: &str) -> Result<(Namespace, Record), String> {
    let ns = Namespace::new(stem).map_err(|e| format!("not a namespace file name: {e}"))?;
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let record = file::parse(&text)?;
    Ok((ns, record))
}

/// The path of the file of `ns`.
pub(super) fn dtab_path(dtabs: &Path, ns: &Namespace) -> PathBuf {
    dtabs.join(format!("{ns}{DTAB_SUFFIX}"))
}

/// A failed [`replace`].
#[derive(Debug)]
pub(super) struct ReplaceError {
    pub(super) error: DiskError,
    /// Whether the new file may be in place anyway (the failure came after
    /// the rename).
    pub(super) maybe_kept: bool,
}

/// Replaces the file of `ns` with `text` so that a crash at any moment
/// leaves either the old file or the new one: write a temp file, sync it,
/// rename it over the target, sync the directory. When this returns `Ok`
/// the new file is durable.
pub(super) fn replace(dtabs: &Path, ns: &Namespace, text: &str) -> Result<(), ReplaceError> {
    let target = dtab_path(dtabs, ns);
    let tmp = dtabs.join(format!("{ns}{DTAB_SUFFIX}{TMP_SUFFIX}"));
    let not_kept = |error| ReplaceError {
        error,
        maybe_kept: false,
    };
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        // Best effort: a temp file left here is removed at the next start.
        let _ = fs::remove_file(&tmp);
        return Err(not_kept(io_error("cannot write", &tmp)(e)));
    }
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(not_kept(io_error("cannot rename a temp file to", &target)(
            e,
        )));
    }
    // Until the directory is synced the rename itself may be lost in a
    // power cut; after a failure here the new file may or may not be kept.
    sync_dir(dtabs).map_err(|e| ReplaceError {
        error: io_error("cannot sync directory", dtabs)(e),
        maybe_kept: true,
    })
}

/// `fsync` of a directory, which makes the names in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
