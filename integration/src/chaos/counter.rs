//! A counter kept in a dtab, writers that increment it by compare-and-set
//! through namerd's API, and the check of what they were told against
//! what namerd kept.
//!
//! The dtab is `/counter=>/#/n<N>;/writer=>/#/<who>`. A writer reads it
//! and its `ETag`, and puts `N + 1` (and its own name) with `If-Match`:
//! 204 means its increment was stored, 412 that someone else's came
//! first. Every stored increment is a compare-and-set from the value read,
//! so the stored history is 1, 2, …, N with one write per value. Hence:
//!
//! - no value is acknowledged twice (two 204s for one value mean one
//!   increment overwrote another);
//! - no acknowledged value is above the final counter (it would have been
//!   rolled back);
//! - every value up to the final counter was put by a write that was
//!   acknowledged or whose answer was lost (a 412 or a request that was
//!   never sent must have changed nothing), and the final dtab names a
//!   writer that put that value;
//!
//! so the final counter is the number of acknowledged writes plus some of
//! the writes whose answer was lost, never fewer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::client::{self, Client, Failure};

/// The counter's dtab, in the form namerd prints it.
pub fn dtab(value: u64, writer: &str) -> String {
    format!("/counter=>/#/n{value};/writer=>/#/{writer}")
}

/// The counter and the writer of a dtab made by [`dtab`].
pub fn parse(text: &str) -> Option<(u64, String)> {
    let mut value = None;
    let mut writer = None;
    for dentry in text.split(';').map(str::trim) {
        if let Some(n) = dentry.strip_prefix("/counter=>/#/n") {
            value = n.parse().ok();
        } else if let Some(w) = dentry.strip_prefix("/writer=>/#/") {
            writer = Some(w.to_string());
        }
    }
    Some((value?, writer?))
}

/// Sets the counter of `ns` to 0 (creating the namespace), retrying for
/// up to `limit` while namerd or its backend is not ready.
pub async fn reset(addr: SocketAddr, ns: &str, limit: Duration) -> Result<(), String> {
    let mut client = Client::new(addr);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let why = match client::put_dtab(&mut client, ns, &dtab(0, "init"), None).await {
            Ok(answer) if answer.status == 204 => return Ok(()),
            Ok(answer) => format!("answered {}: {}", answer.status, answer.body.trim()),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "cannot set the counter of {ns} through {addr}: {why}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the counter of `ns`, retrying for up to `limit` while namerd or
/// its backend is not ready.
pub async fn read(addr: SocketAddr, ns: &str, limit: Duration) -> Result<(u64, String), String> {
    let mut client = Client::new(addr);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let why = match client::get_dtab(&mut client, ns).await {
            Ok(answer) if answer.status == 200 => {
                return parse(&answer.body)
                    .ok_or_else(|| format!("{ns} holds no counter: {:?}", answer.body));
            }
            Ok(answer) => format!("answered {}: {}", answer.status, answer.body.trim()),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "cannot read the counter of {ns} through {addr}: {why}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What became of one increment that was put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 204: it is stored.
    Acked,
    /// The answer was lost or was a server error: it may or may not be.
    Unknown,
}

/// One increment put with `If-Match` and not refused with 412.
#[derive(Clone, Debug)]
pub struct Write {
    /// The value it put.
    pub value: u64,
    /// The name it put as writer.
    pub writer: String,
    /// What it was told.
    pub outcome: Outcome,
}

/// What one writer did.
#[derive(Debug, Default)]
pub struct WriterLog {
    /// Its increments that were acknowledged or whose answer was lost.
    pub writes: Vec<Write>,
    /// Increments refused with 412.
    pub conflicts: u64,
    /// Requests that never reached namerd (it was down).
    pub not_sent: u64,
    /// Reads that failed (no answer, or not 200).
    pub failed_reads: u64,
    /// Answers no correct namerd gives here (e.g. a 400, or a dtab
    /// without a counter).
    pub unexpected: Vec<String>,
}

/// What all writers see while they run.
struct Progress {
    stop: AtomicBool,
    acked: AtomicU64,
    max_acked: AtomicU64,
}

/// Writers incrementing one counter concurrently, until stopped.
pub struct Swarm {
    progress: Arc<Progress>,
    writers: Vec<JoinHandle<WriterLog>>,
}

impl Swarm {
    /// Starts `writers` writers on namespace `ns`, spread over the namerds
    /// at `addrs` (writer `i` uses `addrs[i % addrs.len()]`). The counter
    /// must exist ([`reset`]).
    pub fn start(addrs: &[SocketAddr], ns: &str, writers: usize) -> Swarm {
        let progress = Arc::new(Progress {
            stop: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            max_acked: AtomicU64::new(0),
        });
        let writers = (0..writers)
            .map(|i| {
                let addr = addrs[i % addrs.len()];
                tokio::spawn(writer(i, addr, ns.to_string(), progress.clone()))
            })
            .collect();
        Swarm { progress, writers }
    }

    /// How many increments have been acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.progress.acked.load(Ordering::SeqCst)
    }

    /// The highest value acknowledged so far.
    pub fn max_acked(&self) -> u64 {
        self.progress.max_acked.load(Ordering::SeqCst)
    }

    /// Waits until `more` increments beyond `since` have been acknowledged;
    /// how long it took, or `None` after `limit`.
    pub async fn wait_acked(&self, since: u64, more: u64, limit: Duration) -> Option<Duration> {
        let started = tokio::time::Instant::now();
        while self.acked() < since + more {
            if started.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Some(started.elapsed())
    }

    /// Stops the writers once their current increment is answered, and
    /// returns their logs.
    pub async fn stop(mut self) -> Vec<WriterLog> {
        self.progress.stop.store(true, Ordering::SeqCst);
        let mut logs = Vec::new();
        for writer in std::mem::take(&mut self.writers) {
            match writer.await {
                Ok(log) => logs.push(log),
                Err(e) => logs.push(WriterLog {
                    unexpected: vec![format!("a writer failed: {e}")],
                    ..WriterLog::default()
                }),
            }
        }
        logs
    }
}

impl Drop for Swarm {
    /// Writers left running stop after their current increment.
    fn drop(&mut self) {
        self.progress.stop.store(true, Ordering::SeqCst);
    }
}

/// A small generator for pauses, so that writers do not move in lockstep.
struct Jitter(u64);

impl Jitter {
    fn pause(&mut self, max_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(self.0 % (max_ms * 1000 + 1))
    }
}

async fn writer(index: usize, addr: SocketAddr, ns: String, progress: Arc<Progress>) -> WriterLog {
    let name = format!("w{index}");
    let mut client = Client::new(addr);
    let mut log = WriterLog::default();
    let mut jitter = Jitter((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    while !progress.stop.load(Ordering::SeqCst) {
        let answer = match client::get_dtab(&mut client, &ns).await {
            Ok(answer) if answer.status == 200 => answer,
            Ok(_) | Err(_) => {
                // namerd or its backend is down: try again soon.
                log.failed_reads += 1;
                tokio::time::sleep(Duration::from_millis(20) + jitter.pause(20)).await;
                continue;
            }
        };
        let (Some(etag), Some((value, _))) = (answer.etag.as_deref(), parse(&answer.body)) else {
            log.unexpected.push(format!(
                "a read without a counter or an ETag: {:?} (ETag {:?})",
                answer.body, answer.etag
            ));
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let next = value + 1;
        let put = client::put_dtab(&mut client, &ns, &dtab(next, &name), Some(etag)).await;
        let outcome = match put {
            Ok(answer) if answer.status == 204 => Outcome::Acked,
            Ok(answer) if answer.status == 412 => {
                log.conflicts += 1;
                tokio::time::sleep(jitter.pause(2)).await;
                continue;
            }
            Ok(answer) if answer.status >= 500 => Outcome::Unknown,
            Ok(answer) => {
                log.unexpected.push(format!(
                    "a compare-and-set answered {}: {}",
                    answer.status,
                    answer.body.trim()
                ));
                continue;
            }
            Err(Failure::NotSent(_)) => {
                log.not_sent += 1;
                tokio::time::sleep(Duration::from_millis(20) + jitter.pause(20)).await;
                continue;
            }
            Err(Failure::Lost(_)) => Outcome::Unknown,
        };
        log.writes.push(Write {
            value: next,
            writer: name.clone(),
            outcome,
        });
        match outcome {
            Outcome::Acked => {
                progress.acked.fetch_add(1, Ordering::SeqCst);
                progress.max_acked.fetch_max(next, Ordering::SeqCst);
            }
            Outcome::Unknown => {
                tokio::time::sleep(Duration::from_millis(20) + jitter.pause(20)).await;
            }
        }
    }
    log
}

/// The writers' logs held against the final counter.
#[derive(Debug)]
pub struct Tally {
    /// Increments answered 204.
    pub acked: u64,
    /// Increments whose answer was lost or a server error.
    pub unknown: u64,
    /// Increments refused with 412.
    pub conflicts: u64,
    /// Requests that never reached namerd.
    pub not_sent: u64,
    /// Reads that failed.
    pub failed_reads: u64,
    /// The counter at the end.
    pub final_value: u64,
    /// Who wrote the final value.
    pub final_writer: String,
    /// Distinct values answered 204 that the final counter holds (those
    /// up to it).
    pub acked_kept: u64,
    /// Values answered 204 more than once.
    pub acked_twice: Vec<u64>,
    /// Values answered 204 that are above the final counter.
    pub rolled_back: Vec<u64>,
    /// Values up to the final counter that no acknowledged or lost write
    /// put (the first 20).
    pub unexplained: Vec<u64>,
    /// Whether the final (value, writer) was put by a write that was
    /// acknowledged or whose answer was lost.
    pub final_explained: bool,
    /// Answers no correct namerd gives (the first 20).
    pub unexpected: Vec<String>,
}

impl Tally {
    /// Holds `logs` against the final counter `(value, writer)`.
    pub fn new(logs: &[WriterLog], final_value: u64, final_writer: &str) -> Tally {
        let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
        let mut put: BTreeSet<u64> = BTreeSet::new();
        let mut final_explained = final_value == 0 && final_writer == "init";
        let mut tally = Tally {
            acked: 0,
            unknown: 0,
            conflicts: 0,
            not_sent: 0,
            failed_reads: 0,
            final_value,
            final_writer: final_writer.to_string(),
            acked_kept: 0,
            acked_twice: Vec::new(),
            rolled_back: Vec::new(),
            unexplained: Vec::new(),
            final_explained: false,
            unexpected: Vec::new(),
        };
        for log in logs {
            tally.conflicts += log.conflicts;
            tally.not_sent += log.not_sent;
            tally.failed_reads += log.failed_reads;
            tally
                .unexpected
                .extend(log.unexpected.iter().take(20).cloned());
            for write in &log.writes {
                match write.outcome {
                    Outcome::Acked => {
                        tally.acked += 1;
                        *acked.entry(write.value).or_default() += 1;
                    }
                    Outcome::Unknown => tally.unknown += 1,
                }
                put.insert(write.value);
                if write.value == final_value && write.writer == final_writer {
                    final_explained = true;
                }
            }
        }
        tally.unexpected.truncate(20);
        tally.final_explained = final_explained;
        tally.acked_twice = acked
            .iter()
            .filter(|&(_, &n)| n > 1)
            .map(|(&v, _)| v)
            .collect();
        tally.acked_kept = acked.range(..=final_value).count() as u64;
        tally.rolled_back = acked.range(final_value + 1..).map(|(&v, _)| v).collect();
        tally.unexplained = (1..=final_value)
            .filter(|v| !put.contains(v))
            .take(20)
            .collect();
        tally
    }

    /// Acknowledged increments that the final counter does not hold: the
    /// 204s beyond one per distinct value up to the final counter.
    pub fn lost_increments(&self) -> u64 {
        self.acked - self.acked_kept
    }

    /// `Ok` when every property in the module docs holds.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !self.acked_twice.is_empty() {
            problems.push(format!(
                "values acknowledged more than once: {:?}",
                self.acked_twice
            ));
        }
        if !self.rolled_back.is_empty() {
            problems.push(format!(
                "acknowledged values above the final counter {}: {:?}",
                self.final_value, self.rolled_back
            ));
        }
        if !self.unexplained.is_empty() {
            problems.push(format!(
                "values no acknowledged or lost write put: {:?}",
                self.unexplained
            ));
        }
        if !self.final_explained {
            problems.push(format!(
                "the final counter {} by {} was not put by any write",
                self.final_value, self.final_writer
            ));
        }
        if !self.unexpected.is_empty() {
            problems.push(format!("unexpected answers: {:?}", self.unexpected));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{}; {self:?}", problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(value: u64, writer: &str, outcome: Outcome) -> Write {
        Write {
            value,
            writer: writer.to_string(),
            outcome,
        }
    }

    fn log(writes: Vec<Write>) -> WriterLog {
        WriterLog {
            writes,
            ..WriterLog::default()
        }
    }

    #[test]
    fn the_dtab_reads_back() {
        assert_eq!(parse(&dtab(42, "w7")), Some((42, "w7".to_string())));
        assert_eq!(parse("/counter=>/#/n1"), None);
        assert_eq!(parse("/writer=>/#/w1"), None);
    }

    #[test]
    fn a_clean_history_passes() {
        let logs = [
            log(vec![
                write(1, "w0", Outcome::Acked),
                write(3, "w0", Outcome::Unknown),
            ]),
            log(vec![write(2, "w1", Outcome::Acked)]),
        ];
        let tally = Tally::new(&logs, 3, "w0");
        tally.check().unwrap();
        assert_eq!(tally.lost_increments(), 0);
        // The lost write may also not have happened.
        Tally::new(&logs, 2, "w1").check().unwrap();
    }

    #[test]
    fn each_kind_of_loss_is_caught() {
        // Rolled back: 3 was acknowledged, the store says 2.
        let logs = [log(vec![
            write(1, "w0", Outcome::Acked),
            write(2, "w0", Outcome::Acked),
            write(3, "w0", Outcome::Acked),
        ])];
        let tally = Tally::new(&logs, 2, "w0");
        assert_eq!(tally.rolled_back, [3]);
        assert_eq!(tally.lost_increments(), 1);
        assert!(tally.check().is_err());

        // Acknowledged twice: one increment overwrote the other.
        let logs = [
            log(vec![write(1, "w0", Outcome::Acked)]),
            log(vec![write(1, "w1", Outcome::Acked)]),
        ];
        let tally = Tally::new(&logs, 1, "w1");
        assert_eq!(tally.acked_twice, [1]);
        assert_eq!(tally.lost_increments(), 1);
        assert!(tally.check().is_err());

        // A value nobody put (a refused write that happened anyway).
        let logs = [log(vec![write(1, "w0", Outcome::Acked)])];
        let tally = Tally::new(&logs, 2, "w0");
        assert_eq!(tally.unexplained, [2]);
        assert!(!tally.final_explained);
        assert!(tally.check().is_err());

        // The final value by a writer that did not put it.
        let logs = [log(vec![write(1, "w0", Outcome::Acked)])];
        assert!(Tally::new(&logs, 1, "w1").check().is_err());
    }
}
