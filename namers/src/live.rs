//! Live values: a value that changes over time, read without locks.
//!
//! A [`Publisher`] owns the value and replaces it; any number of [`Live`]
//! handles read the current value through an `ArcSwap` (no lock, no await)
//! and can wait for the next change through a `watch` channel. When the last
//! `Live` is dropped, [`Publisher::closed`] completes, which is how
//! background tasks (file watches, DNS refreshes, bindings) know to stop.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

/// The producing side of a live value.
pub struct Publisher<T> {
    cell: Arc<ArcSwap<T>>,
    version: watch::Sender<u64>,
}

/// A consumer's handle on a live value.
pub struct Live<T> {
    cell: Arc<ArcSwap<T>>,
    version: watch::Receiver<u64>,
}

impl<T> Publisher<T> {
    /// A publisher whose value starts as `initial`.
    pub fn new(initial: T) -> Publisher<T> {
        let (version, _) = watch::channel(0);
        Publisher {
            cell: Arc::new(ArcSwap::from_pointee(initial)),
            version,
        }
    }

    /// Replaces the value and wakes every waiting consumer.
    pub fn publish(&self, value: T) {
        self.cell.store(Arc::new(value));
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Publishes `value` unless it equals the current one; says whether it did.
    pub fn publish_if_changed(&self, value: T) -> bool
    where
        T: PartialEq,
    {
        if *self.cell.load_full() == value {
            return false;
        }
        self.publish(value);
        true
    }

    /// The current value.
    pub fn current(&self) -> Arc<T> {
        self.cell.load_full()
    }

    /// A new consumer handle.
    pub fn subscribe(&self) -> Live<T> {
        Live {
            cell: self.cell.clone(),
            version: self.version.subscribe(),
        }
    }

    /// How many consumer handles exist.
    pub fn subscriber_count(&self) -> usize {
        self.version.receiver_count()
    }

    /// Completes once no consumer handle is left.
    pub async fn closed(&self) {
        self.version.closed().await;
    }
}

impl<T> Live<T> {
    /// A value that never changes.
    pub fn constant(value: T) -> Live<T> {
        Publisher::new(value).subscribe()
    }

    /// The current value (a lock-free read).
    pub fn load(&self) -> Arc<T> {
        self.cell.load_full()
    }

    /// Waits until the value has changed since this handle last saw it. A
    /// value whose publisher is gone never changes again, so this then waits
    /// forever (callers select it against something else).
    pub async fn changed(&mut self) {
        if self.version.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Marks the current value as seen, so [`Live::changed`] waits for a newer one.
    pub fn mark_seen(&mut self) {
        self.version.borrow_and_update();
    }

    /// Whether both handles read the same value cell.
    pub fn same_source(&self, other: &Live<T>) -> bool {
        Arc::ptr_eq(&self.cell, &other.cell)
    }
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Live<T> {
        Live {
            cell: self.cell.clone(),
            version: self.version.clone(),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Live({:?})", self.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn consumers_see_changes_and_closing_is_noticed() {
        let publisher = Publisher::new(1);
        let mut live = publisher.subscribe();
        assert_eq!(*live.load(), 1);
        publisher.publish(2);
        live.changed().await;
        assert_eq!(*live.load(), 2);
        assert!(!publisher.publish_if_changed(2));
        assert_eq!(publisher.subscriber_count(), 1);
        drop(live);
        publisher.closed().await;
        assert_eq!(publisher.subscriber_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_constant_never_reports_a_change() {
        let mut live = Live::constant("x");
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), live.changed()).await;
        assert!(waited.is_err());
        assert_eq!(*live.load(), "x");
    }
}
