//! Access logs on real files in a temporary directory, with the time set
//! by each test.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Method, Uri, Version};

use super::*;

/// 2024-02-29 10:30:15 UTC, a Thursday.
const T: u64 = 1_709_202_615;

/// A clock the test moves.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn at(secs: u64) -> TestClock {
        TestClock(Arc::new(AtomicU64::new(secs)))
    }

    fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::Relaxed);
    }

    fn clock(&self) -> Clock {
        let secs = self.0.clone();
        Clock::new(move || UNIX_EPOCH + Duration::from_secs(secs.load(Ordering::Relaxed)))
    }
}

fn settings(path: &Path) -> AccessLogSettings {
    AccessLogSettings::new("web", Protocol::Http, path)
}

fn open(settings: &AccessLogSettings, clock: &TestClock) -> AccessLog {
    AccessLog::open_with_clock(settings, clock.clock()).unwrap()
}

/// Records a GET of `target`.
fn get(log: &AccessLog, target: &str) {
    let uri: Uri = target.parse().unwrap();
    log.record(&AccessEntry {
        host: Some(b"web"),
        remote: Some("10.0.0.1".parse().unwrap()),
        method: &Method::GET,
        uri: &uri,
        version: Version::HTTP_11,
        status: 200,
        content_length: Some(2),
        referer: None,
        user_agent: None,
    });
}

/// The targets of the lines in `path`, in order.
fn targets(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(' ').nth(7).unwrap_or("?").to_string())
        .collect()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn lines_are_written_in_linkerd_s_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = open(&settings(&path), &TestClock::at(T));
    get(&log, "/a?b=c");
    log.flush().await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "web 10.0.0.1 - - [29/02/2024:10:30:15 UTC] \"GET /a?b=c HTTP/1.1\" 200 2 \"-\" \"-\"\n"
    );
    assert_eq!((log.written(), log.dropped()), (1, 0));
}

#[tokio::test]
async fn h2_logs_write_the_h2_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h2.log");
    let log = open(
        &AccessLogSettings::new("grpc", Protocol::H2, &path),
        &TestClock::at(T),
    );
    get(&log, "http://svc/pkg.Svc/Call");
    log.flush().await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "web 10.0.0.1 - - [29/02/2024:10:30:15 +0000] \"GET /pkg.Svc/Call HTTP/2\" 200 - \"-\" \"-\"\n"
    );
}

#[tokio::test]
async fn append_keeps_earlier_lines_and_truncate_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/deeper/access.log");
    let clock = TestClock::at(T);
    let first = open(&settings(&path), &clock);
    get(&first, "/1");
    first.flush().await;
    drop(first);

    let again = open(&settings(&path), &clock);
    get(&again, "/2");
    again.flush().await;
    assert_eq!(targets(&path), ["/1", "/2"]);
    drop(again);

    let truncating = open(
        &AccessLogSettings {
            append: false,
            ..settings(&path)
        },
        &clock,
    );
    get(&truncating, "/3");
    truncating.flush().await;
    assert_eq!(targets(&path), ["/3"]);
}

#[tokio::test]
async fn hourly_logs_roll_at_the_first_line_of_a_new_hour() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let clock = TestClock::at(T);
    let log = open(
        &AccessLogSettings {
            roll: RollPolicy::Hourly,
            ..settings(&path)
        },
        &clock,
    );
    get(&log, "/ten");
    log.flush().await;
    clock.set(T + 29 * 60);
    get(&log, "/still-ten");
    log.flush().await;
    assert_eq!(names(dir.path()), ["access.log"]);

    // 11:00:15: the file opened at 10:30 is rolled under its own hour.
    clock.set(T + 30 * 60);
    get(&log, "/eleven");
    log.flush().await;
    assert_eq!(names(dir.path()), ["access-20240229-10.log", "access.log"]);
    assert_eq!(
        targets(&dir.path().join("access-20240229-10.log")),
        ["/ten", "/still-ten"]
    );
    assert_eq!(targets(&path), ["/eleven"]);
}

#[tokio::test]
async fn daily_and_weekly_logs_roll_after_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(T);
    let daily = dir.path().join("daily.log");
    let daily_log = open(
        &AccessLogSettings {
            roll: RollPolicy::Daily,
            ..settings(&daily)
        },
        &clock,
    );
    // Thursday: weekly(6) rolls on Friday, the next day.
    let weekly = dir.path().join("weekly.log");
    let weekly_log = open(
        &AccessLogSettings {
            roll: RollPolicy::Weekly(6),
            ..settings(&weekly)
        },
        &clock,
    );
    for log in [&daily_log, &weekly_log] {
        get(log, "/thursday");
        log.flush().await;
    }
    let midnight = T - (10 * 3_600 + 30 * 60 + 15);
    clock.set(midnight + time::DAY - 1);
    for log in [&daily_log, &weekly_log] {
        get(log, "/still-thursday");
        log.flush().await;
    }
    assert_eq!(names(dir.path()), ["daily.log", "weekly.log"]);
    clock.set(midnight + time::DAY + 5);
    for log in [&daily_log, &weekly_log] {
        get(log, "/friday");
        log.flush().await;
    }
    assert_eq!(
        names(dir.path()),
        [
            "daily-20240229.log",
            "daily.log",
            "weekly-20240229.log",
            "weekly.log"
        ]
    );
    assert_eq!(
        targets(&dir.path().join("weekly-20240229.log")),
        ["/thursday", "/still-thursday"]
    );
    assert_eq!(targets(&weekly), ["/friday"]);

    // Saturday: the daily log rolls again, the weekly one waits a week.
    clock.set(midnight + 2 * time::DAY + 5);
    for log in [&daily_log, &weekly_log] {
        get(log, "/saturday");
        log.flush().await;
    }
    assert_eq!(targets(&dir.path().join("daily-20240301.log")), ["/friday"]);
    assert_eq!(targets(&weekly), ["/friday", "/saturday"]);
}

/// One line of `get(log, "/nn")` is this long.
fn line_len() -> u64 {
    let mut line = Vec::new();
    let uri: Uri = "/00".parse().unwrap();
    format_line(
        &mut line,
        Protocol::Http,
        &AccessEntry {
            host: Some(b"web"),
            remote: Some("10.0.0.1".parse().unwrap()),
            method: &Method::GET,
            uri: &uri,
            version: Version::HTTP_11,
            status: 200,
            content_length: Some(2),
            referer: None,
            user_agent: None,
        },
        T,
    );
    line.len() as u64
}

#[tokio::test]
async fn size_logs_roll_before_a_line_that_would_not_fit_and_never_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let clock = TestClock::at(T);
    // Room for two lines and a half.
    let log = open(
        &AccessLogSettings {
            roll: RollPolicy::MaxSize(line_len() * 5 / 2),
            ..settings(&path)
        },
        &clock,
    );
    // All in one batch, in one second: three files share a suffix.
    for i in 0..7 {
        get(&log, &format!("/{i:02}"));
    }
    log.flush().await;
    assert_eq!(
        names(dir.path()),
        [
            "access-20240229-103015.1.log",
            "access-20240229-103015.2.log",
            "access-20240229-103015.log",
            "access.log"
        ]
    );
    assert_eq!(
        targets(&dir.path().join("access-20240229-103015.log")),
        ["/00", "/01"]
    );
    assert_eq!(
        targets(&dir.path().join("access-20240229-103015.1.log")),
        ["/02", "/03"]
    );
    assert_eq!(
        targets(&dir.path().join("access-20240229-103015.2.log")),
        ["/04", "/05"]
    );
    assert_eq!(targets(&path), ["/06"]);
    assert_eq!(log.written(), 7);

    // A file already near the limit at start counts what it holds.
    drop(log);
    clock.set(T + 1);
    let log = open(
        &AccessLogSettings {
            roll: RollPolicy::MaxSize(line_len() * 3 / 2),
            ..settings(&path)
        },
        &clock,
    );
    get(&log, "/07");
    log.flush().await;
    assert_eq!(targets(&path), ["/07"]);
    assert_eq!(
        targets(&dir.path().join("access-20240229-103016.log")),
        ["/06"]
    );
}

#[tokio::test]
async fn rotate_count_keeps_the_newest_rolled_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let clock = TestClock::at(T);
    // Someone else's files that look alike are left alone.
    for other in ["access.log.1", "access-old.log", "error-2023.log"] {
        std::fs::write(dir.path().join(other), "x").unwrap();
    }
    let log = open(
        &AccessLogSettings {
            roll: RollPolicy::Hourly,
            rotate_count: Some(2),
            ..settings(&path)
        },
        &clock,
    );
    for hour in 0..5 {
        clock.set(T + hour * 3_600);
        get(&log, &format!("/{hour}"));
        log.flush().await;
    }
    assert_eq!(
        names(dir.path()),
        [
            "access-20240229-12.log",
            "access-20240229-13.log",
            "access-old.log",
            "access.log",
            "access.log.1",
            "error-2023.log"
        ]
    );
    assert_eq!(targets(&dir.path().join("access-20240229-13.log")), ["/3"]);
    assert_eq!(targets(&path), ["/4"]);
}

#[tokio::test]
async fn under_the_sighup_policy_reopen_rolls_and_counts_past_a_taken_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let clock = TestClock::at(T);
    let log = open(
        &AccessLogSettings {
            roll: RollPolicy::SigHup,
            rotate_count: Some(1),
            ..settings(&path)
        },
        &clock,
    );
    get(&log, "/1");
    // No flush: a line recorded before the SIGHUP goes to the old file.
    log.reopen();
    get(&log, "/2");
    log.flush().await;
    assert_eq!(names(dir.path()), ["access-2024.log", "access.log"]);
    assert_eq!(targets(&dir.path().join("access-2024.log")), ["/1"]);
    assert_eq!(targets(&path), ["/2"]);

    log.reopen();
    get(&log, "/3");
    log.flush().await;
    // rotateCount 1: the newer of the two 2024 files stays.
    assert_eq!(names(dir.path()), ["access-2024.1.log", "access.log"]);
    assert_eq!(targets(&dir.path().join("access-2024.1.log")), ["/2"]);
    assert_eq!(targets(&path), ["/3"]);
}

#[tokio::test]
async fn reopen_after_logrotate_moved_the_file_writes_a_new_one_at_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let moved = dir.path().join("access.log.1");
    let log = open(&settings(&path), &TestClock::at(T));
    get(&log, "/before");
    log.flush().await;

    std::fs::rename(&path, &moved).unwrap();
    get(&log, "/while-moving");
    log.flush().await;
    assert!(
        !path.exists(),
        "without a reopen lines follow the moved file"
    );
    log.reopen();
    get(&log, "/after");
    log.flush().await;
    assert_eq!(targets(&moved), ["/before", "/while-moving"]);
    assert_eq!(targets(&path), ["/after"]);
}

#[tokio::test]
async fn a_full_queue_drops_lines_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    // Too small for any line: every line is dropped, none waits.
    let log = open(
        &AccessLogSettings {
            queue_bytes: 16,
            ..settings(&path)
        },
        &TestClock::at(T),
    );
    let started = Instant::now();
    for i in 0..10_000 {
        get(&log, &format!("/{i}"));
    }
    log.flush().await;
    assert_eq!((log.written(), log.dropped()), (0, 10_000));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(std::fs::read(&path).unwrap().len(), 0);

    // A queue with room for some: every line is written or counted.
    let path = dir.path().join("some.log");
    let log = open(
        &AccessLogSettings {
            queue_bytes: 4 * line_len() as usize,
            ..settings(&path)
        },
        &TestClock::at(T),
    );
    for i in 0..10_000 {
        get(&log, &format!("/{i}"));
    }
    log.flush().await;
    assert_eq!(log.written() + log.dropped(), 10_000);
    assert_eq!(targets(&path).len() as u64, log.written());
}

#[tokio::test]
async fn a_failing_file_drops_lines_and_writes_again_once_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = open(&settings(&path), &TestClock::at(T));
    // A directory where the file was: reopening fails.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    log.reopen();
    get(&log, "/lost");
    log.flush().await;
    assert_eq!((log.written(), log.dropped()), (0, 1));

    std::fs::remove_dir(&path).unwrap();
    get(&log, "/kept");
    log.flush().await;
    assert_eq!((log.written(), log.dropped()), (1, 1));
    assert_eq!(targets(&path), ["/kept"]);
}

#[tokio::test]
async fn the_last_handle_dropped_lets_the_writer_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = open(&settings(&path), &TestClock::at(T));
    for i in 0..100 {
        get(&log, &format!("/{i}"));
    }
    drop(log);
    let deadline = Instant::now() + Duration::from_secs(10);
    while targets(&path).len() < 100 {
        assert!(Instant::now() < deadline, "{} lines", targets(&path).len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_file_that_cannot_be_opened_names_the_key_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("plain-file");
    std::fs::write(&blocker, "").unwrap();
    let path: PathBuf = blocker.join("logs/access.log");
    let settings = AccessLogSettings {
        key: "routers[0].httpAccessLog".into(),
        ..settings(&path)
    };
    let err = AccessLog::open(&settings).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "routers[0].httpAccessLog: cannot open the access log {}: ",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn clocks_before_the_epoch_read_as_the_epoch() {
    let before = Clock::new(|| SystemTime::UNIX_EPOCH - Duration::from_secs(5));
    assert_eq!(before.unix_secs(), 0);
}
