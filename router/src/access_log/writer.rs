//! The writer: one thread per log that takes every queued line at once,
//! writes them with one `write` (rolling first when the policy says so)
//! and sleeps when the queue is empty.
//!
//! A thread, not a tokio task: file I/O blocks, and tokio's file API would
//! hand each write to its blocking pool anyway. A thread also needs no
//! runtime, so recording works from any thread and a stopping runtime
//! cannot cut a write short.

use std::io;
use std::sync::Arc;

use super::Clock;
use super::file::LogFile;
use super::queue::Queue;

/// Starts the writer of `file`.
pub(super) fn spawn(
    queue: Arc<Queue>,
    file: LogFile,
    clock: Clock,
    router: String,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || run(&queue, file, &clock, &router))
        .map(drop)
}

fn run(queue: &Queue, mut file: LogFile, clock: &Clock, router: &str) {
    let _gone = WriterGone(queue);
    let mut health = Health::default();
    let mut lines = Vec::new();
    loop {
        let work = queue.take(&mut lines);
        let now = clock.unix_secs();
        let split = work.sighup.unwrap_or(lines.len()).min(lines.len());
        let (before, after) = lines.split_at(split);
        let mut written = write(&mut file, before, now);
        if work.sighup.is_some() {
            let reopened = file.on_sighup(now);
            health.report(router, &file, reopened);
        }
        written = written.and(write(&mut file, after, now));
        if work.count > 0 {
            match written {
                Ok(()) => queue.count_written(work.count),
                Err(_) => queue.count_lost(work.count),
            }
            health.report(router, &file, written);
        }
        lines.clear();
        for flushed in work.flushed {
            let _ = flushed.send(());
        }
        if work.closed {
            return;
        }
    }
}

fn write(file: &mut LogFile, lines: &[u8], now: u64) -> io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    file.write(lines, now)
}

/// Marks the queue closed however the writer ends, so that nobody waits
/// for a flush that will not come.
struct WriterGone<'a>(&'a Queue);

impl Drop for WriterGone<'_> {
    fn drop(&mut self) {
        self.0.writer_gone();
    }
}

/// Whether the file is failing: one warning when it starts, one line when
/// it ends, instead of one a batch.
#[derive(Debug, Default)]
struct Health {
    failing: bool,
}

impl Health {
    fn report(&mut self, router: &str, file: &LogFile, result: io::Result<()>) {
        match (result, self.failing) {
            (Err(error), false) => {
                self.failing = true;
                tracing::warn!(
                    router,
                    file = %file.path().display(),
                    %error,
                    "cannot write the access log; dropping its lines until it works again"
                );
            }
            (Ok(()), true) => {
                self.failing = false;
                tracing::info!(
                    router,
                    file = %file.path().display(),
                    "the access log is written again"
                );
            }
            _ => {}
        }
    }
}
