//! The log file itself: opening, writing, rolling by policy and pruning
//! rolled files, as util-logging's `FileHandler` (which Linkerd uses) does.
//!
//! A rolled file is renamed to `<path minus extension>-<suffix><extension>`
//! (`access.log` → `access-20240229.log`); the suffix is the time the file
//! was opened (UTC): `yyyyMMdd-HH` hourly, `yyyyMMdd` daily or weekly,
//! `yyyyMMdd-HHmmss` by size, `yyyy` on `SIGHUP`. Where util would
//! overwrite an earlier file of the same name, a counter is added instead
//! (`access-2024.1.log`). Only the writer thread touches a `LogFile`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::settings::{AccessLogSettings, RollPolicy};
use super::time::{Civil, DAY, push_padded, weekday};

/// An open (or, after an error, to be reopened) log file.
#[derive(Debug)]
pub(super) struct LogFile {
    /// The router's label, for log events.
    router: String,
    path: PathBuf,
    names: RolledNames,
    roll: RollPolicy,
    rotate_count: Option<usize>,
    /// `None` after a failed open; the next write tries again.
    file: Option<File>,
    opened_at: u64,
    next_roll: Option<u64>,
    /// Bytes in the file, for the size policy.
    size: u64,
}

impl LogFile {
    /// Opens (creating it and its directory) the file of `settings` at
    /// `now` (Unix seconds), truncating it unless `append`.
    pub(super) fn open(settings: &AccessLogSettings, now: u64) -> io::Result<LogFile> {
        let mut log = LogFile {
            router: settings.router.clone(),
            path: settings.path.clone(),
            names: RolledNames::of(&settings.path),
            roll: settings.roll,
            rotate_count: settings.rotate_count,
            file: None,
            opened_at: now,
            next_roll: None,
            size: 0,
        };
        if let Some(dir) = log.names.dir.as_deref() {
            std::fs::create_dir_all(dir)?;
        }
        log.open_at_path(now)?;
        if !settings.append {
            if let Some(file) = &log.file {
                file.set_len(0)?;
            }
            log.size = 0;
        }
        Ok(log)
    }

    /// The path lines are written to.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` (whole lines), rolling first when the policy says
    /// so. An error leaves the file to be reopened by the next write.
    pub(super) fn write(&mut self, lines: &[u8], now: u64) -> io::Result<()> {
        if self.file.is_none() {
            self.open_at_path(now)?;
        }
        if self.next_roll.is_some_and(|at| now >= at) {
            self.roll_now(now)?;
        }
        let RollPolicy::MaxSize(max) = self.roll else {
            return self.append(lines);
        };
        let mut rest = lines;
        let mut just_rolled = false;
        while !rest.is_empty() {
            let mut take = whole_lines_within(rest, max.saturating_sub(self.size));
            if take == 0 {
                if self.size > 0 && !just_rolled {
                    self.roll_now(now)?;
                    just_rolled = true;
                    continue;
                }
                // A line longer than the limit gets a file of its own.
                take = first_line_len(rest);
            }
            let (now_part, later) = rest.split_at(take);
            self.append(now_part)?;
            rest = later;
            just_rolled = false;
        }
        Ok(())
    }

    /// What `SIGHUP` does: roll under the `sighup` policy; otherwise reopen
    /// the file at its path, so that lines go to the file there now (the
    /// new file logrotate made, or a new one if it moved ours away).
    pub(super) fn on_sighup(&mut self, now: u64) -> io::Result<()> {
        if self.roll == RollPolicy::SigHup {
            self.roll_now(now)
        } else {
            self.open_at_path(now)
        }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => return Err(io::Error::other("the file is not open")),
        };
        if let Err(e) = file.write_all(bytes) {
            // Start again from the path next time: the file may be gone.
            self.file = None;
            return Err(e);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn open_at_path(&mut self, now: u64) -> io::Result<()> {
        self.file = None;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata().map_or(0, |m| m.len());
        self.file = Some(file);
        self.opened_at = now;
        self.next_roll = next_roll(self.roll, now);
        Ok(())
    }

    /// Renames the file aside, starts a new one and prunes old ones. A
    /// file that cannot be renamed is written on rather than lose lines.
    fn roll_now(&mut self, now: u64) -> io::Result<()> {
        self.file = None;
        let rolled = self.names.unused(&suffix(self.roll, self.opened_at));
        let renamed = match std::fs::rename(&self.path, &rolled) {
            // Moved away already (by logrotate, say): nothing to roll.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        self.open_at_path(now)?;
        let trouble = match renamed {
            Err(error) => {
                // Counted afresh: the next try is a period or a size later,
                // not at every batch.
                self.size = 0;
                Some((
                    error,
                    "cannot roll the access log; writing on to the same file",
                ))
            }
            Ok(()) => match self.rotate_count.map(|keep| self.names.prune(keep)) {
                Some(Err(error)) => Some((error, "cannot delete old rolled access log files")),
                _ => None,
            },
        };
        if let Some((error, what)) = trouble {
            tracing::warn!(router = %self.router, file = %self.path.display(), %error, "{what}");
        }
        Ok(())
    }
}

/// The length of the longest run of whole lines at the start of `bytes`
/// that fits in `room` bytes.
fn whole_lines_within(bytes: &[u8], room: u64) -> usize {
    let mut end = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            if (i + 1) as u64 > room {
                break;
            }
            end = i + 1;
        }
    }
    end
}

fn first_line_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |i| i + 1)
}

/// When a file opened at `opened` (Unix seconds) is next rolled by time.
pub(super) fn next_roll(policy: RollPolicy, opened: u64) -> Option<u64> {
    let today = opened / DAY;
    match policy {
        RollPolicy::Hourly => Some((opened / 3_600 + 1) * 3_600),
        RollPolicy::Daily => Some((today + 1) * DAY),
        RollPolicy::Weekly(day) => (1..=7)
            .map(|ahead| today + ahead)
            .find(|d| weekday(*d) == day)
            .map(|d| d * DAY),
        RollPolicy::Never | RollPolicy::SigHup | RollPolicy::MaxSize(_) => None,
    }
}

/// The suffix of a file opened at `opened` when it is rolled.
pub(super) fn suffix(policy: RollPolicy, opened: u64) -> String {
    let t = Civil::from_unix(opened);
    let mut out = Vec::with_capacity(15);
    push_padded(&mut out, t.year, 4);
    if policy != RollPolicy::Never && policy != RollPolicy::SigHup {
        push_padded(&mut out, t.month, 2);
        push_padded(&mut out, t.day, 2);
    }
    if matches!(policy, RollPolicy::Hourly | RollPolicy::MaxSize(_)) {
        out.push(b'-');
        push_padded(&mut out, t.hour, 2);
    }
    if matches!(policy, RollPolicy::MaxSize(_)) {
        push_padded(&mut out, t.minute, 2);
        push_padded(&mut out, t.second, 2);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How rolled files of one log are named, found and ordered.
#[derive(Debug)]
struct RolledNames {
    /// The directory, when the path names one.
    dir: Option<PathBuf>,
    /// The file name without its extension (`access`).
    stem: String,
    /// The extension with its dot (`.log`), or `""`.
    ext: String,
}

impl RolledNames {
    /// Splits the file name at its last dot (a leading dot, as in
    /// `.access`, starts no extension).
    fn of(path: &Path) -> RolledNames {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
            _ => (name.clone(), String::new()),
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf);
        RolledNames { dir, stem, ext }
    }

    fn in_dir(&self, name: &str) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// `stem-suffix.ext`, or `stem-suffix.N.ext` with the first N that no
    /// file has yet.
    fn unused(&self, suffix: &str) -> PathBuf {
        let plain = self.in_dir(&format!("{}-{suffix}{}", self.stem, self.ext));
        if !plain.exists() {
            return plain;
        }
        (1u64..)
            .map(|n| self.in_dir(&format!("{}-{suffix}.{n}{}", self.stem, self.ext)))
            .find(|p| !p.exists())
            .unwrap_or(plain)
    }

    /// Where a rolled file's name sorts among the others: by suffix (times
    /// of one policy have one width, so text order is time order), then
    /// by counter. `None` for a name this log did not make.
    fn order(&self, name: &str) -> Option<(String, u64)> {
        let middle = name
            .strip_prefix(self.stem.as_str())?
            .strip_prefix('-')?
            .strip_suffix(self.ext.as_str())?;
        let (stamp, counter) = match middle.split_once('.') {
            Some((stamp, n)) => (stamp, n.parse().ok()?),
            None => (middle, 0),
        };
        let is_stamp = stamp.starts_with(|c: char| c.is_ascii_digit())
            && stamp.chars().all(|c| c.is_ascii_digit() || c == '-');
        is_stamp.then(|| (stamp.to_string(), counter))
    }

    /// Deletes all but the `keep` newest rolled files.
    fn prune(&self, keep: usize) -> io::Result<()> {
        let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let mut rolled: Vec<((String, u64), PathBuf)> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                self.order(&name).map(|order| (order, entry.path()))
            })
            .collect();
        rolled.sort();
        let extra = rolled.len().saturating_sub(keep);
        for (_, path) in rolled.into_iter().take(extra) {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// 2024-02-29 10:30:15 UTC, a Thursday.
    const T: u64 = 1_709_202_615;

    #[test]
    fn suffixes_follow_util_logging() {
        assert_eq!(suffix(RollPolicy::Never, T), "2024");
        assert_eq!(suffix(RollPolicy::SigHup, T), "2024");
        assert_eq!(suffix(RollPolicy::Hourly, T), "20240229-10");
        assert_eq!(suffix(RollPolicy::Daily, T), "20240229");
        assert_eq!(suffix(RollPolicy::Weekly(1), T), "20240229");
        assert_eq!(suffix(RollPolicy::MaxSize(10), T), "20240229-103015");
    }

    #[test]
    fn next_rolls_are_on_the_hour_day_or_weekday() {
        assert_eq!(
            next_roll(RollPolicy::Hourly, T),
            Some(T - 30 * 60 - 15 + 3_600)
        );
        let midnight = T - (10 * 3_600 + 30 * 60 + 15);
        assert_eq!(next_roll(RollPolicy::Daily, T), Some(midnight + DAY));
        // Thursday the 29th: the next Sunday (1) is March 3rd, the next
        // Thursday (5) a week later, the next Friday (6) tomorrow.
        assert_eq!(
            next_roll(RollPolicy::Weekly(1), T),
            Some(midnight + 3 * DAY)
        );
        assert_eq!(
            next_roll(RollPolicy::Weekly(5), T),
            Some(midnight + 7 * DAY)
        );
        assert_eq!(next_roll(RollPolicy::Weekly(6), T), Some(midnight + DAY));
        for policy in [
            RollPolicy::Never,
            RollPolicy::SigHup,
            RollPolicy::MaxSize(5),
        ] {
            assert_eq!(next_roll(policy, T), None);
        }
    }

    #[test]
    fn names_split_at_the_last_dot_of_the_file_name() {
        let names = RolledNames::of(Path::new("/var/log.d/access.2.log"));
        assert_eq!(names.dir.as_deref(), Some(Path::new("/var/log.d")));
        assert_eq!(
            (names.stem.as_str(), names.ext.as_str()),
            ("access.2", ".log")
        );
        let names = RolledNames::of(Path::new("access"));
        assert_eq!(names.dir, None);
        assert_eq!((names.stem.as_str(), names.ext.as_str()), ("access", ""));
        let names = RolledNames::of(Path::new("logs/.access"));
        assert_eq!((names.stem.as_str(), names.ext.as_str()), (".access", ""));
    }

    #[test]
    fn only_names_this_log_makes_are_rolled_files() {
        let names = RolledNames::of(Path::new("/l/access.log"));
        assert_eq!(
            names.order("access-20240229.log"),
            Some(("20240229".into(), 0))
        );
        assert_eq!(names.order("access-2024.3.log"), Some(("2024".into(), 3)));
        assert_eq!(
            names.order("access-20240229-103015.log"),
            Some(("20240229-103015".into(), 0))
        );
        for other in [
            "access.log",
            "access-old.log",
            "access-2024.log.gz",
            "accessories.log",
            "access-2024.x.log",
            "error-2024.log",
        ] {
            assert_eq!(names.order(other), None, "{other}");
        }
    }

    #[test]
    fn lines_are_split_only_at_line_ends() {
        let lines = b"aaa\nbb\ncccc\n";
        assert_eq!(whole_lines_within(lines, 0), 0);
        assert_eq!(whole_lines_within(lines, 3), 0);
        assert_eq!(whole_lines_within(lines, 4), 4);
        assert_eq!(whole_lines_within(lines, 8), 7);
        assert_eq!(whole_lines_within(lines, 100), 12);
        assert_eq!(first_line_len(lines), 4);
    }
}
