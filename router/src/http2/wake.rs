//! How a connection learns which of its streams have something to do.
//!
//! Every stream's future and body is polled by the connection's task with
//! a waker of the stream's own. Waking it queues the stream's id and wakes
//! the task, which then polls only the queued streams. A request body
//! read by someone else hands back the flow-control credit it has used up
//! the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

/// What a connection's streams tell its task.
#[derive(Default)]
pub(crate) struct Signals {
    queued: Mutex<Queued>,
    task: AtomicWaker,
}

#[derive(Default)]
pub(crate) struct Queued {
    /// Streams whose future or body was woken.
    pub(crate) woken: Vec<u32>,
    /// Body bytes read, by stream: window to give back.
    pub(crate) consumed: Vec<(u32, u32)>,
    /// Streams whose body was dropped before its end.
    pub(crate) dropped: Vec<u32>,
}

impl Signals {
    /// The connection's task is polling with `waker`.
    pub(crate) fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// Has the connection's task polled again.
    pub(crate) fn wake_task(&self) {
        self.task.wake();
    }

    /// Takes what has been queued, leaving `spare` (emptied) in its place.
    pub(crate) fn take(&self, spare: &mut Queued) {
        spare.woken.clear();
        spare.consumed.clear();
        spare.dropped.clear();
        std::mem::swap(&mut *self.queued.lock(), spare);
    }

    /// Stream `id`'s body was dropped before its end.
    pub(crate) fn dropped(&self, id: u32) {
        self.queued.lock().dropped.push(id);
        self.task.wake();
    }

    /// `n` bytes of stream `id`'s body have been read.
    pub(crate) fn consumed(&self, id: u32, n: u32) {
        self.queued.lock().consumed.push((id, n));
        self.task.wake();
    }
}

/// The waker of one stream.
pub(crate) struct StreamWake {
    id: u32,
    /// Already in `woken`: a second wake adds nothing.
    queued: AtomicBool,
    signals: Arc<Signals>,
}

impl StreamWake {
    pub(crate) fn new(id: u32, signals: Arc<Signals>) -> Arc<StreamWake> {
        Arc::new(StreamWake {
            id,
            queued: AtomicBool::new(false),
            signals,
        })
    }

    /// About to be polled: a wake from now on queues the stream again.
    pub(crate) fn polling(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl Wake for StreamWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.signals.queued.lock().woken.push(self.id);
            self.signals.task.wake();
        }
    }
}
