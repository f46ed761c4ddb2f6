//! A bounded, idle-expiring cache that the request path reads without a
//! lock: the map is published through an `ArcSwap`, and only inserting a new
//! key (rare: a name or client seen for the first time) takes a lock and
//! swaps in an updated copy. A value that is slow to make is made outside
//! that lock ([`Cache::get_or_make_at`]).

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
    /// noticeable part of a lookup). `make` runs under the insert lock, so
    /// each key's value is made once; it must be quick.
    pub fn get_or_insert_at(
        &self,
        key: &K,
        at: Instant,
        make: impl FnOnce() -> V,
    ) -> Arc<Entry<V>> {
        let now = self.ms_at(at);
        if let Some(entry) = self.hit(key, now) {
            return entry;
        }
        let _guard = self
            .insert_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(entry) = current.get(key) {
            return entry.clone();
        }
        self.insert_locked(&current, key, now, make())
    }

    /// Like [`Cache::get_or_insert_at`], but `make` runs before the insert
    /// lock is taken, so a slow `make` (binding a name through a large
    /// dtab) holds up no other key. When two callers miss the same key at
    /// once, both make a value; the first stored is kept and returned to
    /// both, and the other is dropped.
    pub fn get_or_make_at(&self, key: &K, at: Instant, make: impl FnOnce() -> V) -> Arc<Entry<V>> {
        let now = self.ms_at(at);
        if let Some(entry) = self.hit(key, now) {
            return entry;
        }
        let made = make();
        let _guard = self
            .insert_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(entry) = current.get(key) {
            return entry.clone();
        }
        self.insert_locked(&current, key, now, made)
    }

    /// The cached entry for `key`, marked as used at `now`.
    fn hit(&self, key: &K, now: u64) -> Option<Arc<Entry<V>>> {
        let map = self.map.load();
        let entry = map.get(key)?;
        // Written only when it changes, so that threads sharing an entry do
        // not keep taking its cache line from each other.
        if entry.last_used_ms.load(Ordering::Relaxed) != now {
            entry.last_used_ms.store(now, Ordering::Relaxed);
        }
        Some(entry.clone())
    }

    /// Publishes `current` plus `key` (made at `now`), dropping idle and,
    /// over capacity, least recently used entries. The insert lock must be
    /// held.
    fn insert_locked(
        &self,
        current: &HashMap<K, Arc<Entry<V>>>,
        key: &K,
        now: u64,
        value: V,
    ) -> Arc<Entry<V>> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            value,
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
    fn a_slow_make_holds_up_no_other_key() {
        let cache: Arc<Cache<u32, &str>> = Arc::new(Cache::new(10, Duration::from_secs(600)));
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let slow = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or_make_at(&1, Instant::now(), || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    "slow"
                });
            })
        };
        started.recv().unwrap();
        // While key 1 is still being made, other keys are made and read.
        let (done_tx, done) = std::sync::mpsc::channel();
        let other = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let entry = cache.get_or_insert_with(&2, || "quick");
                let made = cache.get_or_make_at(&3, Instant::now(), || "also quick");
                done_tx.send((entry.value, made.value)).unwrap();
            })
        };
        let got = done.recv_timeout(Duration::from_secs(10));
        release.send(()).unwrap();
        assert_eq!(got, Ok(("quick", "also quick")), "key 2 waited for key 1");
        slow.join().unwrap();
        other.join().unwrap();
        assert_eq!(
            cache.get_or_make_at(&1, Instant::now(), || "again").value,
            "slow"
        );
        assert_eq!(cache.misses(), 3);
    }

    #[test]
    fn a_race_to_make_one_key_keeps_the_first_value() {
        let cache: Cache<u32, &str> = Cache::new(10, Duration::from_secs(600));
        let entry = cache.get_or_make_at(&1, Instant::now(), || {
            // Another caller stores the key while this one is making it.
            cache.get_or_make_at(&1, Instant::now(), || "first");
            "second"
        });
        assert_eq!(entry.value, "first");
        assert_eq!(cache.len(), 1);
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
