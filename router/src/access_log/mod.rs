//! Linkerd 1.x's access logs (`httpAccessLog`, `h2AccessLog` and their
//! roll keys), written off the request path.
//!
//! A request formats its line ([`AccessLog::record`]) and copies it into
//! a bounded queue; it never waits. A writer thread per log writes every
//! queued line with one `write`, rolls the file by policy and prunes old
//! rolled files ([`file`]). A full queue, or a failing disk, drops lines
//! and counts them ([`AccessLog::dropped`]); the request path never feels
//! either.
//!
//! Stopping: [`AccessLog::flush`] waits until every line recorded before
//! it is written; call it when the router stops. Dropping the last handle
//! also lets the writer write what is queued and end, without waiting.

mod file;
mod line;
mod queue;
pub mod settings;
mod time;
mod writer;

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

pub use line::{AccessEntry, RequestHead, content_length, format_line};
pub use settings::{AccessLogSettings, RollPolicy};

use crate::identify::Protocol;
use queue::Queue;

/// An open access log. Clones share one file, queue and writer.
#[derive(Debug, Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Arc<Queue>,
    protocol: Protocol,
    clock: Clock,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// Where log lines and rolls get the time; tests set their own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(Arc::new(SystemTime::now))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    fn unix_secs(&self) -> u64 {
        time::unix_secs((self.0)())
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Every open log, for [`reopen_all`]; entries go when their log does.
static OPEN: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

thread_local! {
    /// Each thread formats its lines here: no allocation per line.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl AccessLog {
    /// Opens (creating it and its directory) the file of `settings` and
    /// starts its writer. The error names the key and the path.
    pub fn open(settings: &AccessLogSettings) -> Result<AccessLog, String> {
        AccessLog::open_with_clock(settings, Clock::system())
    }

    /// [`AccessLog::open`] with the time read from `clock`.
    pub fn open_with_clock(
        settings: &AccessLogSettings,
        clock: Clock,
    ) -> Result<AccessLog, String> {
        let cannot = |e: std::io::Error| {
            format!(
                "{}: cannot open the access log {}: {e}",
                settings.key,
                settings.path.display()
            )
        };
        let file = file::LogFile::open(settings, clock.unix_secs()).map_err(cannot)?;
        let queue = Arc::new(Queue::new(settings.queue_bytes));
        writer::spawn(queue.clone(), file, clock.clone(), settings.router.clone())
            .map_err(cannot)?;
        let shared = Arc::new(Shared {
            queue,
            protocol: settings.protocol,
            clock,
        });
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|log| log.strong_count() > 0);
        open.push(Arc::downgrade(&shared));
        Ok(AccessLog { shared })
    }

    /// Logs one request, timed now. Never blocks: when the queue is full
    /// the line is dropped and counted in [`AccessLog::dropped`].
    pub fn record(&self, entry: &AccessEntry<'_>) {
        let now = self.shared.clock.unix_secs();
        SCRATCH.with_borrow_mut(|line| {
            line.clear();
            format_line(line, self.shared.protocol, entry, now);
            self.shared.queue.push(line);
        });
    }

    /// Lines not written: dropped because the queue was full, or lost
    /// because writing them failed.
    pub fn dropped(&self) -> u64 {
        self.shared.queue.dropped()
    }

    /// Lines written to the file.
    pub fn written(&self) -> u64 {
        self.shared.queue.written()
    }

    /// What `SIGHUP` does to this log: under the `sighup` roll policy,
    /// roll the file; otherwise reopen the file at its path, so that after
    /// logrotate moved it away lines go to a new file there.
    pub fn reopen(&self) {
        self.shared.queue.sighup();
    }

    /// Waits until every line recorded before this call is written (or
    /// dropped after a failed write).
    pub async fn flush(&self) {
        let _ = self.shared.queue.flush().await;
    }
}

/// [`AccessLog::reopen`] on every open access log of the process (on
/// `SIGHUP`); returns how many there are.
pub fn reopen_all() -> usize {
    let logs: Vec<Arc<Shared>> = {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|log| log.strong_count() > 0);
        open.iter().filter_map(Weak::upgrade).collect()
    };
    for log in &logs {
        log.queue.sighup();
    }
    logs.len()
}

#[cfg(test)]
mod tests;
