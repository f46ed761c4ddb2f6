//! Certificates reloaded when their files change: the files are looked at
//! every few seconds (a modification time, a size), and a new set that does
//! not load keeps the old one in place, with a warning and a count.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

/// How often watched files are looked at.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// What the files looked like when last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Vec<Option<(SystemTime, u64)>>);

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    // `metadata` follows symbolic links: a Kubernetes secret volume swaps
    // a link to a new directory, which changes the target's times.
    Fingerprint(
        paths
            .iter()
            .map(|p| {
                let meta = std::fs::metadata(p).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect(),
    )
}

/// How reloading has gone, for the metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// New files loaded.
    pub reloads: AtomicU64,
    /// New files that did not load (the old ones stayed).
    pub failures: AtomicU64,
    /// When the certificate in use expires, in seconds since the epoch
    /// (0 when there is none).
    pub expires_at: AtomicU64,
}

/// A value built from files, with when its certificate expires (seconds
/// since the epoch), or why it could not be built.
pub type Built<T> = Result<(Arc<T>, Option<i64>), String>;

/// A value built from files, rebuilt when they change.
pub struct Reloading<T> {
    what: String,
    paths: Vec<PathBuf>,
    build: Box<dyn Fn() -> Built<T> + Send + Sync>,
    current: ArcSwap<T>,
    seen: std::sync::Mutex<Fingerprint>,
    stats: ReloadStats,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Builds the value once (an error is the caller's to report), and
    /// keeps `build` to rebuild it when one of `paths` changes. `build`
    /// also gives when the certificate in use expires.
    pub fn new(
        what: String,
        paths: Vec<PathBuf>,
        build: impl Fn() -> Built<T> + Send + Sync + 'static,
    ) -> Result<Arc<Reloading<T>>, String> {
        let seen = fingerprint(&paths);
        let (value, expires) = build()?;
        let stats = ReloadStats::default();
        stats
            .expires_at
            .store(expires.unwrap_or(0).max(0) as u64, Ordering::Relaxed);
        Ok(Arc::new(Reloading {
            what,
            paths,
            build: Box::new(build),
            current: ArcSwap::new(value),
            seen: std::sync::Mutex::new(seen),
            stats,
        }))
    }

    /// The value in use.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// How reloading has gone.
    pub fn stats(&self) -> &ReloadStats {
        &self.stats
    }

    /// Rebuilds the value if its files changed since they were last read.
    /// Says whether they had.
    pub fn reload_if_changed(&self) -> bool {
        let now = fingerprint(&self.paths);
        {
            let Ok(mut seen) = self.seen.lock() else {
                return false;
            };
            if *seen == now {
                return false;
            }
            // A file that failed to load is not tried again until it
            // changes once more.
            *seen = now;
        }
        match (self.build)() {
            Ok((value, expires)) => {
                self.current.store(value);
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .expires_at
                    .store(expires.unwrap_or(0).max(0) as u64, Ordering::Relaxed);
                tracing::info!(what = %self.what, "TLS files changed; new certificates in use");
            }
            Err(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    what = %self.what,
                    %error,
                    "TLS files changed but do not load; the previous certificates stay in use"
                );
            }
        }
        true
    }

    /// Looks at the files every [`RELOAD_INTERVAL`] while the value is in
    /// use (needs a Tokio runtime).
    pub fn watch(self: &Arc<Self>) {
        self.watch_every(RELOAD_INTERVAL);
    }

    /// As [`Reloading::watch`], at another interval.
    pub fn watch_every(self: &Arc<Self>, interval: Duration) {
        let weak: Weak<Reloading<T>> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(reloading) = weak.upgrade() else {
                    return;
                };
                // Reading files blocks; a few small files are quick.
                let _ = tokio::task::spawn_blocking(move || reloading.reload_if_changed()).await;
            }
        });
    }
}
