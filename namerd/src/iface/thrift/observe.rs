//! Stamped observations for long polls, as Linkerd's namerd kept them
//! (its `Observer` and `ObserverCache`): each watched thing (a binding,
//! an address, a dtab) has one current value and the stamp given to it
//! when it last changed. A request with another stamp (or none) is
//! answered with the current value; a request with the current stamp waits
//! for the next one.
//!
//! Observations are shared between every client of the interface and kept
//! in a [`LiveCache`]: one task per watched thing follows namerd's own live
//! value (the binding or address the HTTP API shares too) and gives each
//! change a new stamp. `active` observations have a request waiting on
//! them; there are at most `active_capacity` of them (more fail, as in
//! Linkerd). Those nobody waits on are kept for `inactive_ttl`, at most
//! `inactive_capacity` of them, so that a client's next poll finds the
//! stamp it was given.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use namerd_client::thrift::types::Stamp;
use namers::{Live, LiveCache, Publisher};

/// A value with the stamp it was given; `Err` carries a failure's reason.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observation<V> {
    pub(crate) stamp: Stamp,
    pub(crate) value: Result<V, String>,
}

/// What a follower publishes: `None` until the first value.
type Current<V> = Option<Observation<V>>;

/// Gives out stamps unique to this namerd: a counter that starts at a
/// random value, so that two namerds are unlikely to give the same stamp
/// (a router that moves to another replica gets an answer at once).
#[derive(Debug)]
pub(crate) struct Stamper(AtomicU64);

impl Stamper {
    pub(crate) fn new() -> Arc<Stamper> {
        Arc::new(Stamper(AtomicU64::new(rand::random())))
    }

    pub(crate) fn next(&self) -> Stamp {
        self.0
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes()
            .to_vec()
    }
}

/// The capacities of one kind of observation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Capacity {
    pub(crate) active: usize,
    pub(crate) inactive: usize,
    pub(crate) inactive_ttl: Duration,
}

/// The shared observations of one kind, by key.
pub(crate) struct Observations<K, V> {
    cache: LiveCache<K, Current<V>>,
    active: Arc<Mutex<HashMap<K, usize>>>,
    active_capacity: usize,
}

/// A request's hold on an observation: counts it as active until dropped.
pub(crate) struct Watching<K: Eq + Hash, V> {
    pub(crate) live: Live<Current<V>>,
    key: K,
    active: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Eq + Hash, V> Drop for Watching<K, V> {
    fn drop(&mut self) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = active.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                active.remove(&self.key);
            }
        }
    }
}

impl<K, V> Observations<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Send + Sync + 'static,
{
    pub(crate) fn new(capacity: Capacity) -> Observations<K, V> {
        Observations {
            cache: LiveCache::with_limits(capacity.inactive_ttl, capacity.inactive),
            active: Arc::default(),
            active_capacity: capacity.active,
        }
    }

    /// How many observations are kept (active or not).
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    /// How many observations have a request waiting on them.
    pub(crate) fn active(&self) -> usize {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Watches the observation of `key`, started by `follow` if nobody
    /// watches it; fails when it would be one active observation too many.
    pub(crate) fn watch<F, Fut>(&self, key: K, follow: F) -> Result<Watching<K, V>, String>
    where
        F: Fn(Arc<Publisher<Current<V>>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        {
            let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
            if !active.contains_key(&key) && active.len() >= self.active_capacity {
                return Err(format!(
                    "The maximum number of concurrent observations has been reached ({})",
                    self.active_capacity
                ));
            }
            *active.entry(key.clone()).or_default() += 1;
        }
        // Counted before subscribing, so that the guard undoes it if
        // subscribing panics.
        let live_key = key.clone();
        let active = self.active.clone();
        let guard = |live| Watching {
            live,
            key: live_key,
            active,
        };
        Ok(guard(self.cache.subscribe(key, || None, follow)))
    }
}

impl<K: Eq + Hash, V: Clone> Watching<K, V> {
    /// The current observation once its stamp differs from `stamp`: at
    /// once when it already does, else when the value next changes.
    pub(crate) async fn next(&mut self, stamp: &[u8]) -> Observation<V> {
        loop {
            if let Some(current) = &*self.live.load()
                && current.stamp != stamp
            {
                return current.clone();
            }
            self.live.changed().await;
        }
    }
}

/// Follows `source` into `publisher`: each value `convert` makes of it
/// (`None` while it is pending) that differs from the current one gets a
/// new stamp. Ends when nobody watches any more.
pub(crate) async fn follow<S, V>(
    mut source: Live<S>,
    publisher: Arc<Publisher<Current<V>>>,
    stamper: Arc<Stamper>,
    convert: impl Fn(&S) -> Option<Result<V, String>>,
) where
    V: PartialEq,
{
    loop {
        if let Some(value) = convert(&source.load()) {
            let current = publisher.current();
            if current.as_ref().as_ref().is_none_or(|o| o.value != value) {
                publisher.publish(Some(Observation {
                    stamp: stamper.next(),
                    value,
                }));
            }
        }
        tokio::select! {
            () = publisher.closed() => return,
            () = source.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(active: usize) -> Capacity {
        Capacity {
            active,
            inactive: 10,
            inactive_ttl: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_poll_with_the_current_stamp_waits_for_the_next_value() {
        let source = Publisher::new(Some(1));
        let stamper = Stamper::new();
        let observations: Observations<&str, i32> = Observations::new(capacity(10));
        let live = source.subscribe();
        let start = move |publisher| {
            follow(
                live.clone(),
                publisher,
                stamper.clone(),
                |v: &Option<i32>| v.map(Ok),
            )
        };
        let mut watching = observations.watch("k", start.clone()).unwrap();
        let first = watching.next(&[]).await;
        assert_eq!(first.value, Ok(1));
        // Another request for the same key shares the stamp.
        let mut again = observations.watch("k", start).unwrap();
        assert_eq!(again.next(b"other").await.stamp, first.stamp);
        let first_stamp = first.stamp.clone();
        let waiting = tokio::spawn(async move { watching.next(&first.stamp).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // The same value again is no change.
        source.publish(Some(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        source.publish(Some(2));
        let second = waiting.await.unwrap();
        assert_eq!(second.value, Ok(2));
        assert_ne!(second.stamp, first_stamp);
        assert_eq!(again.next(&first_stamp).await, second);
    }

    #[tokio::test]
    async fn active_observations_are_bounded() {
        let observations: Observations<u32, i32> = Observations::new(capacity(1));
        let start = |_publisher| async {};
        let first = observations.watch(1, start).unwrap();
        let same = observations.watch(1, start).unwrap();
        let e = observations.watch(2, start).err().unwrap();
        assert!(
            e.contains("maximum number of concurrent observations"),
            "{e}"
        );
        drop((first, same));
        assert_eq!(observations.active(), 0);
        assert!(observations.watch(2, start).is_ok());
    }
}
