//! Sharing one background computation between every watcher of the same
//! thing (e.g. a thousand routers watching one binding), and stopping it when
//! the last watcher leaves.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::{Live, Publisher};

/// Live values keyed by `K`, each kept up to date by one task.
pub struct LiveCache<K, T> {
    entries: Arc<Mutex<HashMap<K, Weak<Publisher<T>>>>>,
}

impl<K, T> Clone for LiveCache<K, T> {
    fn clone(&self) -> Self {
        LiveCache {
            entries: self.entries.clone(),
        }
    }
}

impl<K, T> Default for LiveCache<K, T> {
    fn default() -> Self {
        LiveCache {
            entries: Arc::default(),
        }
    }
}

fn lock<K, T>(
    entries: &Mutex<HashMap<K, Weak<Publisher<T>>>>,
) -> MutexGuard<'_, HashMap<K, Weak<Publisher<T>>>> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K, T> LiveCache<K, T>
where
    K: Eq + Hash + Clone + Send + 'static,
    T: Send + Sync + 'static,
{
    /// Subscribes to the value for `key`, starting `run` for it if nobody
    /// watches it yet. `run` keeps the publisher up to date and returns once
    /// [`Publisher::closed`] completes; if a watcher arrived meanwhile it is
    /// started again.
    pub fn subscribe<F, Fut>(&self, key: K, initial: impl FnOnce() -> T, run: F) -> Live<T>
    where
        F: Fn(Arc<Publisher<T>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut entries = lock(&self.entries);
        if let Some(publisher) = entries.get(&key).and_then(Weak::upgrade)
            && publisher.subscriber_count() > 0
        {
            return publisher.subscribe();
        }
        let publisher = Arc::new(Publisher::new(initial()));
        let live = publisher.subscribe();
        entries.insert(key.clone(), Arc::downgrade(&publisher));
        drop(entries);
        let entries = self.entries.clone();
        tokio::spawn(async move {
            loop {
                run(publisher.clone()).await;
                // Retire under the lock, so nobody can subscribe to a
                // publisher whose task has ended.
                let mut entries = lock(&entries);
                if publisher.subscriber_count() == 0 {
                    if entries
                        .get(&key)
                        .is_some_and(|w| w.ptr_eq(&Arc::downgrade(&publisher)))
                    {
                        entries.remove(&key);
                    }
                    return;
                }
            }
        });
        live
    }

    /// How many values are being kept up to date.
    pub fn len(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Whether nothing is being kept up to date.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn watchers_share_one_task_which_ends_with_the_last() {
        let cache: LiveCache<String, u32> = LiveCache::default();
        let started = Arc::new(AtomicUsize::new(0));
        let start = |cache: &LiveCache<String, u32>| {
            let started = started.clone();
            cache.subscribe(
                "k".to_string(),
                || 0,
                move |p| {
                    started.fetch_add(1, Ordering::SeqCst);
                    async move {
                        p.publish(1);
                        p.closed().await;
                    }
                },
            )
        };
        let mut a = start(&cache);
        let b = start(&cache);
        a.changed().await;
        assert_eq!((*a.load(), *b.load()), (1, 1));
        assert_eq!(started.load(Ordering::SeqCst), 1);
        drop((a, b));
        tokio::time::timeout(Duration::from_secs(5), async {
            while !cache.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        let mut c = start(&cache);
        // A new task starts and publishes for the new watcher.
        c.changed().await;
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }
}
