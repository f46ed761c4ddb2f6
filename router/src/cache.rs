//! A bounded, idle-expiring cache that the request path reads without a
//! lock: the map is published through an `ArcSwap`, and only inserting a new
//! key (rare: a name or client seen for the first time) takes a lock and
//! swaps in an updated copy.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

/// Hashing the key is on every request's path: foldhash (seeded per map)
/// is several times cheaper than std's SipHash for these short keys.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// One cached value and when it was last used.
pub struct Entry<V> {
    /// The value.
    pub value: V,
    last_used_ms: AtomicU64,
}

/// Values by key, at most `capacity` of them, dropped after `idle_ttl`
/// unused.
pub struct Cache<K, V> {
    map: ArcSwap<HashMap<K, Arc<Entry<V>>>>,
    insert_lock: Mutex<()>,
    capacity: usize,
    idle_ttl: Duration,
    epoch: Instant,
    misses: AtomicU64,
}

impl<K: Eq + Hash + Clone, V> Cache<K, V> {
    /// An empty cache.
    pub fn new(capacity: usize, idle_ttl: Duration) -> Cache<K, V> {
        Cache {
            map: ArcSwap::from_pointee(HashMap::default()),
            insert_lock: Mutex::new(()),
            capacity: capacity.max(1),
            idle_ttl,
            epoch: Instant::now(),
            misses: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The value for `key`, made by `make` on a miss.
    pub fn get_or_insert_with(&self, key: &K, make: impl FnOnce() -> V) -> Arc<Entry<V>> {
        self.get_or_insert_at(key, Instant::now(), make)
    }

    /// The value for `key`, made by `make` on a miss, counted as used at
    /// `at` (a time the caller has read anyway: reading the clock is a
    /// noticeable part of a lookup).
    pub fn get_or_insert_at(
        &self,
        key: &K,
        at: Instant,
        make: impl FnOnce() -> V,
    ) -> Arc<Entry<V>> {
        let now = self.ms_at(at);
        if let Some(entry) = self.map.load().get(key) {
            // Written only when it changes, so that threads sharing an
            // entry do not keep taking its cache line from each other.
            if entry.last_used_ms.load(Ordering::Relaxed) != now {
                entry.last_used_ms.store(now, Ordering::Relaxed);
            }
            return entry.clone();
        }
        let _guard = self
            .insert_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(entry) = current.get(key) {
            return entry.clone();
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            value: make(),
            last_used_ms: AtomicU64::new(now),
        });
        let mut next: HashMap<K, Arc<Entry<V>>> = current
            .iter()
            .filter(|(_, e)| {
                now.saturating_sub(e.last_used_ms.load(Ordering::Relaxed)) < self.idle_ttl_ms()
            })
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        if next.len() >= self.capacity {
            // Evict the least recently used to make room.
            let mut by_age: Vec<(u64, K)> = next
                .iter()
                .map(|(k, e)| (e.last_used_ms.load(Ordering::Relaxed), k.clone()))
                .collect();
            by_age.sort_by_key(|(t, _)| *t);
            for (_, k) in by_age.into_iter().take(next.len() + 1 - self.capacity) {
                next.remove(&k);
            }
        }
        next.insert(key.clone(), entry.clone());
        self.map.store(Arc::new(next));
        entry
    }

    fn idle_ttl_ms(&self) -> u64 {
        u64::try_from(self.idle_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops entries unused for longer than the idle TTL.
    pub fn expire_idle(&self) {
        let _guard = self
            .insert_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = self.now_ms();
        let current = self.map.load_full();
        let kept: HashMap<K, Arc<Entry<V>>> = current
            .iter()
            .filter(|(_, e)| {
                now.saturating_sub(e.last_used_ms.load(Ordering::Relaxed)) < self.idle_ttl_ms()
            })
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        if kept.len() != current.len() {
            self.map.store(Arc::new(kept));
        }
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many lookups missed (and built a value).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// The cached values, for admin pages.
    pub fn values(&self) -> Vec<(K, Arc<Entry<V>>)> {
        self.map
            .load()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_share_the_value_and_capacity_evicts_the_least_recent() {
        let cache: Cache<u32, String> = Cache::new(2, Duration::from_secs(600));
        let a = cache.get_or_insert_with(&1, || "one".into());
        let again = cache.get_or_insert_with(&1, || unreachable!());
        assert!(Arc::ptr_eq(&a, &again));
        cache.get_or_insert_with(&2, || "two".into());
        std::thread::sleep(Duration::from_millis(2));
        cache.get_or_insert_with(&1, || unreachable!());
        cache.get_or_insert_with(&3, || "three".into());
        assert_eq!(cache.len(), 2);
        let keys: Vec<u32> = cache.values().into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&1) && keys.contains(&3), "{keys:?}");
        assert_eq!(cache.misses(), 3);
    }

    #[test]
    fn idle_entries_expire() {
        let cache: Cache<u32, ()> = Cache::new(10, Duration::from_millis(1));
        cache.get_or_insert_with(&1, || ());
        std::thread::sleep(Duration::from_millis(5));
        cache.expire_idle();
        assert!(cache.is_empty());
    }
}
