//! Sharing one background computation between every watcher of the same
//! thing (e.g. a thousand routers watching one binding), and stopping it when
//! the last watcher leaves — or, with a grace period, that long after the
//! last watcher left, so that a name asked for again during an outage of
//! what it depends on still gets its last good value.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::{Live, Publisher};

/// How long a value nobody watches is kept up to date by default: Linkerd's
/// namerd kept inactive bindings for ten minutes too.
pub const DEFAULT_INACTIVE_TTL: Duration = Duration::from_secs(600);

/// namerd's `bindingCache: {idleTtlSecs}` (the key Linkerd's routers use for
/// their binding cache): how long a binding, resolution or address that
/// nobody watches any more is kept up to date, so that it is answered from
/// its last good value when asked again during an outage.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingCacheConfig {
    /// Seconds (default 600; 0 lets go at once).
    #[serde(default = "default_idle_ttl_secs")]
    pub idle_ttl_secs: u64,
}

impl Default for BindingCacheConfig {
    fn default() -> BindingCacheConfig {
        BindingCacheConfig {
            idle_ttl_secs: default_idle_ttl_secs(),
        }
    }
}

fn default_idle_ttl_secs() -> u64 {
    DEFAULT_INACTIVE_TTL.as_secs()
}

impl BindingCacheConfig {
    /// The idle TTL.
    pub fn idle_ttl(&self) -> Duration {
        Duration::from_secs(self.idle_ttl_secs)
    }
}

/// A value could not be started: there is no tokio runtime to run it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no tokio runtime to keep the value up to date on")]
pub struct NoRuntime;

/// How many values nobody watches a cache keeps by default: enough for
/// every name a large fleet asks for, few enough that a client sending a
/// new local dtab with every request cannot grow the cache without bound.
pub const DEFAULT_MAX_LINGERING: usize = 10_000;

/// Live values keyed by `K`, each kept up to date by one task.
pub struct LiveCache<K, T> {
    shared: Arc<Shared<K, T>>,
}

struct Shared<K, T> {
    entries: Mutex<HashMap<K, Entry<T>>>,
    /// How long a value outlives its last watcher (zero: not at all).
    inactive_ttl: Duration,
    /// How many values nobody watches are kept at most: past it, those
    /// idle longest are let go first.
    max_lingering: usize,
    /// Whether the task that lets go of inactive values runs; changed
    /// only under the `entries` lock.
    expiring: AtomicBool,
}

struct Entry<T> {
    publisher: Weak<Publisher<T>>,
    /// The cache's own handle, which keeps the task running while nobody
    /// else watches, until the grace period is over.
    lingering: Option<Live<T>>,
    /// Since when only the cache's own handle is left.
    idle_since: Option<Instant>,
    /// When the value was last asked for: of the values nobody watches,
    /// those asked for longest ago are let go first.
    last_asked: Instant,
}

impl<K, T> Clone for LiveCache<K, T> {
    fn clone(&self) -> Self {
        LiveCache {
            shared: self.shared.clone(),
        }
    }
}

impl<K, T> Default for LiveCache<K, T> {
    /// A cache whose values stop with their last watcher.
    fn default() -> Self {
        LiveCache::with_inactive_ttl(Duration::ZERO)
    }
}

impl<K, T> LiveCache<K, T> {
    /// A cache whose values are kept up to date for `ttl` after their last
    /// watcher leaves.
    pub fn with_inactive_ttl(ttl: Duration) -> Self {
        LiveCache::with_limits(ttl, DEFAULT_MAX_LINGERING)
    }

    /// A cache whose values are kept up to date for `ttl` after their last
    /// watcher leaves, at most `max_lingering` of them at a time.
    pub fn with_limits(ttl: Duration, max_lingering: usize) -> Self {
        LiveCache {
            shared: Arc::new(Shared {
                entries: Mutex::default(),
                inactive_ttl: ttl,
                max_lingering: max_lingering.max(1),
                expiring: AtomicBool::new(false),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<T>>> {
        self.shared.lock()
    }
}

impl<K, T> Shared<K, T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<T>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K, T> LiveCache<K, T>
where
    K: Eq + Hash + Clone + Send + 'static,
    T: Send + Sync + 'static,
{
    /// Subscribes to the value for `key`, starting `run` for it if nobody
    /// watches it yet. `run` keeps the publisher up to date and returns once
    /// [`Publisher::closed`] completes; if a watcher arrived meanwhile it is
    /// started again. Starting `run` needs a tokio runtime (it panics
    /// without one, as `tokio::spawn` does).
    pub fn subscribe<F, Fut>(&self, key: K, initial: impl FnOnce() -> T, run: F) -> Live<T>
    where
        F: Fn(Arc<Publisher<T>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let started = self.start(key, initial, run, || Ok::<_, Infallible>(Handle::current()));
        match started {
            Ok(live) => live,
            Err(never) => match never {},
        }
    }

    /// [`LiveCache::subscribe`], but outside a tokio runtime it says so
    /// instead of panicking when `run` would have to be started.
    pub fn try_subscribe<F, Fut>(
        &self,
        key: K,
        initial: impl FnOnce() -> T,
        run: F,
    ) -> Result<Live<T>, NoRuntime>
    where
        F: Fn(Arc<Publisher<T>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.start(key, initial, run, || {
            Handle::try_current().map_err(|_| NoRuntime)
        })
    }

    /// Subscribes, asking `runtime` for a runtime only when a task must be
    /// started.
    fn start<F, Fut, E>(
        &self,
        key: K,
        initial: impl FnOnce() -> T,
        run: F,
        runtime: impl FnOnce() -> Result<Handle, E>,
    ) -> Result<Live<T>, E>
    where
        F: Fn(Arc<Publisher<T>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&key)
            && let Some(publisher) = entry.publisher.upgrade()
            && publisher.subscriber_count() > 0
        {
            entry.idle_since = None;
            entry.last_asked = Instant::now();
            return Ok(publisher.subscribe());
        }
        let runtime = runtime()?;
        // Let go of values nobody watches before a new one comes in, so
        // the cache stays within its bound however many keys are asked for.
        let released =
            if !self.shared.inactive_ttl.is_zero() && entries.len() >= self.shared.max_lingering {
                release_least_recently_asked(&mut entries, self.shared.max_lingering)
            } else {
                Vec::new()
            };
        let publisher = Arc::new(Publisher::new(initial()));
        let live = publisher.subscribe();
        let lingering = (!self.shared.inactive_ttl.is_zero()).then(|| publisher.subscribe());
        entries.insert(
            key.clone(),
            Entry {
                publisher: Arc::downgrade(&publisher),
                lingering,
                idle_since: None,
                last_asked: Instant::now(),
            },
        );
        if !self.shared.inactive_ttl.is_zero() && !self.shared.expiring.swap(true, Ordering::SeqCst)
        {
            runtime.spawn(expire_inactive(Arc::downgrade(&self.shared)));
        }
        drop(entries);
        // Dropped outside the lock: each wakes a task that takes it.
        drop(released);
        let shared = self.shared.clone();
        runtime.spawn(async move {
            loop {
                run(publisher.clone()).await;
                // Retire under the lock, so nobody can subscribe to a
                // publisher whose task has ended.
                let mut entries = shared.lock();
                if publisher.subscriber_count() == 0 {
                    if entries
                        .get(&key)
                        .is_some_and(|e| e.publisher.ptr_eq(&Arc::downgrade(&publisher)))
                    {
                        entries.remove(&key);
                    }
                    return;
                }
            }
        });
        Ok(live)
    }

    /// How many values are being kept up to date.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.publisher.strong_count() > 0)
            .count()
    }

    /// Whether nothing is being kept up to date.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether nobody but the cache itself holds the entry's value.
fn is_idle<T>(entry: &Entry<T>) -> bool {
    let watchers = entry
        .publisher
        .upgrade()
        .map_or(0, |p| p.subscriber_count());
    watchers <= usize::from(entry.lingering.is_some())
}

/// Takes the cache's own handles of the values asked for longest ago, so that at
/// most three quarters of `max` values are kept (a margin, so this runs
/// once per many new keys, not for each); gives them to be dropped
/// outside the lock. Values somebody watches are never let go.
fn release_least_recently_asked<K, T>(
    entries: &mut HashMap<K, Entry<T>>,
    max: usize,
) -> Vec<Live<T>> {
    let keep = max - max / 4;
    let mut kept = entries
        .values()
        .filter(|e| e.lingering.is_some() || !is_idle(e))
        .count();
    let mut idle: Vec<&mut Entry<T>> = entries
        .values_mut()
        .filter(|e| e.lingering.is_some() && is_idle(e))
        .collect();
    idle.sort_by_key(|e| e.last_asked);
    let mut released = Vec::new();
    for entry in idle {
        if kept <= keep {
            break;
        }
        released.extend(entry.lingering.take());
        kept -= 1;
    }
    released
}

/// Lets go of values nobody has watched for the cache's inactive TTL;
/// ends once the cache is empty or gone (the next value starts it again).
async fn expire_inactive<K, T>(shared: Weak<Shared<K, T>>) {
    loop {
        let Some(ttl) = shared.upgrade().map(|s| s.inactive_ttl) else {
            return;
        };
        // Check a few times per TTL: a value lingers at most a quarter
        // longer than asked.
        tokio::time::sleep((ttl / 4).max(Duration::from_millis(10))).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut released = Vec::new();
        let mut entries = shared.lock();
        for entry in entries.values_mut() {
            if !is_idle(entry) {
                entry.idle_since = None;
                continue;
            }
            let idle_since = *entry.idle_since.get_or_insert(now);
            if now.duration_since(idle_since) >= ttl {
                released.extend(entry.lingering.take());
            }
        }
        let empty = entries.is_empty();
        if empty {
            shared.expiring.store(false, Ordering::SeqCst);
        }
        drop(entries);
        // Dropped outside the lock: each wakes a task that takes it.
        drop(released);
        if empty {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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

    /// A cache with a TTL whose tasks publish how often they started.
    fn counting(ttl: Duration) -> (LiveCache<String, u32>, Arc<AtomicUsize>) {
        (
            LiveCache::with_inactive_ttl(ttl),
            Arc::new(AtomicUsize::new(0)),
        )
    }

    fn watch(cache: &LiveCache<String, u32>, started: &Arc<AtomicUsize>) -> Live<u32> {
        let started = started.clone();
        cache.subscribe(
            "k".to_string(),
            || 0,
            move |p| {
                let n = started.fetch_add(1, Ordering::SeqCst) as u32 + 1;
                async move {
                    p.publish(n * 10);
                    p.closed().await;
                }
            },
        )
    }

    /// Lets every runnable task run, under paused time.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Lets `secs` seconds pass in steps, as a running clock would.
    async fn pass(secs: u64) {
        for _ in 0..secs / 5 {
            tokio::time::advance(Duration::from_secs(5)).await;
            settle().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_outlives_its_last_watcher_for_the_inactive_ttl() {
        let ttl = Duration::from_secs(600);
        let (cache, started) = counting(ttl);
        let mut first = watch(&cache, &started);
        first.changed().await;
        assert_eq!(*first.load(), 10);
        drop(first);

        // Nine minutes later the value is still kept, and a new watcher
        // gets it at once from the same task.
        pass(540).await;
        assert_eq!(cache.len(), 1);
        let again = watch(&cache, &started);
        assert_eq!(*again.load(), 10, "the last value, not the initial one");
        assert_eq!(started.load(Ordering::SeqCst), 1);

        // Watched again: the clock starts over when it is let go again.
        pass(540).await;
        drop(again);
        pass(540).await;
        assert_eq!(
            cache.len(),
            1,
            "let go only a full TTL after the last watcher"
        );

        // Past the TTL (and the check that follows it), the task ends.
        pass(60 + 150).await;
        assert!(cache.is_empty());
        let fresh = watch(&cache, &started);
        settle().await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "a new task for a new watcher"
        );
        assert_eq!(*fresh.load(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn values_nobody_watches_are_bounded_and_the_least_recently_asked_go_first() {
        let cache: LiveCache<u32, u32> = LiveCache::with_limits(Duration::from_secs(600), 8);
        let started = Arc::new(AtomicUsize::new(0));
        let watch = |key: u32| {
            let started = started.clone();
            cache.subscribe(
                key,
                || 0,
                move |p| {
                    started.fetch_add(1, Ordering::SeqCst);
                    async move {
                        p.publish(key);
                        p.closed().await;
                    }
                },
            )
        };
        // One value stays watched throughout.
        let held = watch(1000);
        for key in 0..40 {
            drop(watch(key));
            pass(5).await;
        }
        settle().await;
        assert!(cache.len() <= 8, "{} values kept", cache.len());
        assert_eq!(*held.load(), 1000, "a watched value is never let go");
        let before = started.load(Ordering::SeqCst);
        drop(watch(39));
        assert_eq!(
            started.load(Ordering::SeqCst),
            before,
            "the newest idle value was kept"
        );
        drop(watch(0));
        settle().await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            before + 1,
            "the oldest idle value was let go"
        );
    }

    #[test]
    fn outside_a_runtime_try_subscribe_says_so_and_keeps_nothing() {
        let cache: LiveCache<String, u32> = LiveCache::default();
        let started = cache.try_subscribe(
            "k".to_string(),
            || 0,
            |p| async move {
                p.closed().await;
            },
        );
        assert_eq!(started.err(), Some(NoRuntime));
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_ttl_a_value_stops_with_its_last_watcher() {
        let (cache, started) = counting(Duration::ZERO);
        let mut first = watch(&cache, &started);
        first.changed().await;
        drop(first);
        settle().await;
        assert!(cache.is_empty());
    }
}
