//! The bounded hand-off between requests and the writer thread: a byte
//! buffer of whole lines under a mutex held only for a copy. A request
//! never waits for the writer: when the buffer is full its line is dropped
//! and counted. The writer swaps the whole buffer out, so one `write`
//! carries every line queued since the last.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Lines waiting for the writer, and requests to it.
#[derive(Debug)]
pub(super) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    written: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<u8>,
    count: u64,
    flushed: Vec<oneshot::Sender<()>>,
    /// `SIGHUP` was asked for when this many bytes of `lines` were queued.
    sighup: Option<usize>,
    closed: bool,
    /// Whether the writer sleeps on `wake` (waking it costs a syscall, so
    /// only a push that finds it asleep does).
    writer_idle: bool,
}

/// What the writer has to do, taken in one go.
#[derive(Debug, Default)]
pub(super) struct Work {
    /// How many lines are in the buffer handed over.
    pub(super) count: u64,
    /// Told once those lines are written.
    pub(super) flushed: Vec<oneshot::Sender<()>>,
    /// `SIGHUP` was asked for after this many bytes of the lines handed
    /// over: those go to the file as it was, the rest after the reopen.
    pub(super) sighup: Option<usize>,
    /// Every handle is gone: write what is left and stop.
    pub(super) closed: bool,
}

impl Queue {
    /// A queue holding at most `capacity` bytes of lines.
    pub(super) fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            capacity,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the
        // state is still whole lines and flags.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one whole line; `false` (and counted) when it does not fit.
    pub(super) fn push(&self, line: &[u8]) -> bool {
        let wake = {
            let mut state = self.lock();
            if state.closed || state.lines.len() + line.len() > self.capacity {
                drop(state);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            state.lines.extend_from_slice(line);
            state.count += 1;
            std::mem::replace(&mut state.writer_idle, false)
        };
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Asks the writer to do what `SIGHUP` does.
    pub(super) fn sighup(&self) {
        self.ask(|state| {
            // A second SIGHUP before the writer saw the first is the same.
            if state.sighup.is_none() {
                state.sighup = Some(state.lines.len());
            }
        });
    }

    /// A receiver told once every line queued so far is written (or the
    /// writer is gone).
    pub(super) fn flush(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.ask(|state| {
            if !state.closed {
                state.flushed.push(tx);
            }
        });
        rx
    }

    /// Tells the writer to finish: no more lines are taken.
    pub(super) fn close(&self) {
        self.ask(|state| state.closed = true);
    }

    fn ask(&self, change: impl FnOnce(&mut State)) {
        {
            let mut state = self.lock();
            change(&mut state);
            state.writer_idle = false;
        }
        self.wake.notify_one();
    }

    /// The writer's side: waits until there is something to do, then swaps
    /// the queued lines into `into` (which must be empty) and takes the
    /// requests.
    pub(super) fn take(&self, into: &mut Vec<u8>) -> Work {
        let mut state = self.lock();
        while state.lines.is_empty()
            && state.flushed.is_empty()
            && state.sighup.is_none()
            && !state.closed
        {
            state.writer_idle = true;
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.writer_idle = false;
        std::mem::swap(&mut state.lines, into);
        Work {
            count: std::mem::take(&mut state.count),
            flushed: std::mem::take(&mut state.flushed),
            sighup: std::mem::take(&mut state.sighup),
            closed: state.closed,
        }
    }

    /// The writer is gone: nothing more is taken and nobody waits for it.
    pub(super) fn writer_gone(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.flushed.clear();
    }

    /// Counts lines written to the file.
    pub(super) fn count_written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts lines lost after they were queued (the write failed).
    pub(super) fn count_lost(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Lines dropped, queue full or write failed.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines written.
    pub(super) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let queue = Queue::new(10);
        assert!(queue.push(b"1234\n"));
        assert!(queue.push(b"5678\n"));
        assert!(!queue.push(b"9\n"), "10 bytes are queued already");
        assert_eq!(queue.dropped(), 1);

        let mut lines = Vec::new();
        let work = queue.take(&mut lines);
        assert_eq!(lines, b"1234\n5678\n");
        assert_eq!(work.count, 2);
        assert!(work.sighup.is_none() && !work.closed && work.flushed.is_empty());

        // Taken lines free their room.
        assert!(queue.push(b"9\n"));
        assert_eq!(queue.dropped(), 1);
    }

    #[test]
    fn requests_wake_the_writer_and_closing_refuses_lines() {
        let queue = Queue::new(100);
        assert!(queue.push(b"before\n"));
        queue.sighup();
        assert!(queue.push(b"after\n"));
        queue.sighup();
        let _flushed = queue.flush();
        let mut lines = Vec::new();
        let work = queue.take(&mut lines);
        assert_eq!(work.sighup, Some(7), "after the line queued before it");
        assert_eq!(work.flushed.len(), 1);
        assert_eq!(lines, b"before\nafter\n");
        lines.clear();

        queue.close();
        assert!(!queue.push(b"late\n"));
        assert_eq!(queue.dropped(), 1);
        assert!(queue.take(&mut lines).closed);
    }

    #[test]
    fn the_writer_sleeps_until_a_line_comes() {
        let queue = std::sync::Arc::new(Queue::new(100));
        let writer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut lines = Vec::new();
                queue.take(&mut lines);
                lines
            })
        };
        assert!(queue.push(b"one\n"));
        assert_eq!(writer.join().ok(), Some(b"one\n".to_vec()));
    }
}
