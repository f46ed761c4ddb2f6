//! Metrics in Linkerd's shape: a tree of scopes (`rt/web/service/svc/web`)
//! holding counters, gauges and stats (histograms), and the admin formats
//! that show it: `/admin/metrics.json` (flat or as a tree), Prometheus
//! text with Linkerd's labels, and InfluxDB line protocol.
//!
//! A component keeps its figures in plain atomics ([`Counter`], [`Stat`])
//! and lists them when asked, through a [`Scope`]. A stat's figures are
//! served per interval (a minute by default, as Linkerd did): every
//! interval the live histogram is summarised and emptied, and what the
//! admin shows is the last full interval.

mod histogram;
pub mod influxdb;
pub mod json;
pub mod prometheus;
pub mod statsd;
mod status;
pub mod telemeters;
pub mod trace;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use histogram::{Histogram, Summary};
pub use status::StatusCounts;

/// How often stats are summarised unless configured otherwise.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The count, and zero from now on.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Whether stats also keep their values for a push telemeter (statsd):
/// set once, when one is configured, so that a process without one pays
/// nothing for it.
static PUSHING: AtomicBool = AtomicBool::new(false);

/// Makes every stat keep its values for [`Scope::pushing`] walks too.
pub fn keep_values_for_push() {
    PUSHING.store(true, Ordering::Relaxed);
}

/// A histogram served per interval.
// The live histogram first: with the counters laid before a stat, what a
// request touches shares cache lines.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Stat {
    live: Histogram,
    /// The values since the last push, when a push telemeter is on.
    pushed: Histogram,
    last: Mutex<Option<Summary>>,
}

impl Stat {
    /// Records one value.
    pub fn add(&self, value: u64) {
        self.live.record(value);
        if PUSHING.load(Ordering::Relaxed) {
            self.pushed.record(value);
        }
    }

    /// Records `value` `n` times.
    pub fn add_many(&self, value: u64, n: u64) {
        self.live.record_many(value, n);
        if PUSHING.load(Ordering::Relaxed) {
            self.pushed.record_many(value, n);
        }
    }

    /// Ends the interval: what was recorded becomes what is served.
    pub fn roll(&self) {
        let summary = self.live.take();
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(summary);
    }

    /// The last full interval's summary; `None` before the first interval
    /// ends.
    pub fn last(&self) -> Option<Summary> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One figure as the admin shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A count that only goes up.
    Counter(u64),
    /// A figure read when asked (connections open, endpoints).
    Gauge(f64),
    /// A stat's last interval.
    Stat(Summary),
    /// A stat's values since the last push, as (value, how many) (only in
    /// [`Scope::pushing`] walks).
    Samples(Vec<(u64, u64)>),
}

/// One figure and where it is in the tree. A segment may hold slashes of
/// its own (`svc/web`, `$/inet/127.1/8080`): it is one scope.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The scopes, then the figure's name split at its slashes (shared:
    /// a scope's segments are not copied for each of its figures).
    pub path: Vec<Arc<str>>,
    /// The figure.
    pub value: Value,
}

/// What a [`Scope`] is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Listing the figures.
    Read,
    /// Ending the interval of every stat.
    Roll,
    /// Listing for a push telemeter: stats give their values since the
    /// last push.
    Push,
}

/// A place in the tree that figures are listed under. Sources list their
/// figures into it and open child scopes with [`Scope::scope`].
pub struct Scope<'a> {
    entries: &'a mut Vec<Entry>,
    path: Vec<Arc<str>>,
    mode: Mode,
}

impl<'a> Scope<'a> {
    /// The root scope, listing into `entries`.
    pub fn root(entries: &'a mut Vec<Entry>) -> Scope<'a> {
        Scope {
            entries,
            path: Vec::new(),
            mode: Mode::Read,
        }
    }

    /// A root scope that ends every stat's interval instead of listing.
    pub fn rolling(entries: &'a mut Vec<Entry>) -> Scope<'a> {
        Scope {
            entries,
            path: Vec::new(),
            mode: Mode::Roll,
        }
    }

    /// A root scope listing for a push telemeter: counters and gauges as
    /// when reading, stats as their values since the last push.
    pub fn pushing(entries: &'a mut Vec<Entry>) -> Scope<'a> {
        Scope {
            entries,
            path: Vec::new(),
            mode: Mode::Push,
        }
    }

    /// Whether this walk only rolls stats: sources may skip work that
    /// lists nothing but gauges and counters.
    pub fn is_rolling(&self) -> bool {
        self.mode == Mode::Roll
    }

    /// A child scope: `segment` is one scope even with slashes in it.
    pub fn scope(&mut self, segment: &str) -> Scope<'_> {
        let mut path = self.path.clone();
        path.push(segment.into());
        Scope {
            entries: self.entries,
            path,
            mode: self.mode,
        }
    }

    /// A counter named `name` (`requests`, `status/200`).
    pub fn counter(&mut self, name: &str, value: u64) {
        self.push(name, Value::Counter(value));
    }

    /// A gauge named `name`.
    pub fn gauge(&mut self, name: &str, value: f64) {
        self.push(name, Value::Gauge(value));
    }

    /// A stat named `name`: its last interval when reading; when rolling,
    /// its interval ends here.
    pub fn stat(&mut self, name: &str, stat: &Stat) {
        match self.mode {
            Mode::Roll => stat.roll(),
            Mode::Read => {
                if let Some(summary) = stat.last() {
                    self.push(name, Value::Stat(summary));
                }
            }
            Mode::Push => {
                let samples = stat.pushed.take_samples();
                if !samples.is_empty() {
                    self.push(name, Value::Samples(samples));
                }
            }
        }
    }

    fn push(&mut self, name: &str, value: Value) {
        if self.mode == Mode::Roll {
            return;
        }
        let mut path = Vec::with_capacity(self.path.len() + 2);
        path.extend(self.path.iter().cloned());
        path.extend(name.split('/').map(Arc::from));
        self.entries.push(Entry { path, value });
    }
}

/// Anything with figures to show: a router, a namer, namerd.
pub trait Source: Send + Sync {
    /// Lists the figures into `scope` (the root).
    fn list(&self, scope: &mut Scope<'_>);
}

/// Every figure of `sources`.
pub fn collect(sources: &[Arc<dyn Source>]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut root = Scope::root(&mut entries);
    for source in sources {
        source.list(&mut root);
    }
    entries
}

/// Ends the interval of every stat of `sources`.
pub fn roll(sources: &[Arc<dyn Source>]) {
    let mut entries = Vec::new();
    let mut root = Scope::rolling(&mut entries);
    for source in sources {
        source.list(&mut root);
    }
}

/// The scope segment of a path or id: its text without the leading slash,
/// as Linkerd named scopes (`/svc/web` → `svc/web`).
pub fn segment_of(path: &dtab::Path) -> String {
    let shown = path.show();
    shown.strip_prefix('/').unwrap_or(&shown).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_keep_slashed_segments_whole_and_split_names() {
        let stat = Stat::default();
        stat.add(4);
        let mut entries = Vec::new();
        let mut root = Scope::root(&mut entries);
        let mut rt = root.scope("rt");
        let mut web = rt.scope("web");
        let mut client = web.scope("client");
        let mut id = client.scope("$/inet/127.1/8080");
        id.counter("status/200", 3);
        id.stat("request_latency_ms", &stat);
        assert_eq!(entries.len(), 1, "a stat shows only after its interval");
        let path: Vec<&str> = entries[0].path.iter().map(|s| &**s).collect();
        assert_eq!(
            path,
            ["rt", "web", "client", "$/inet/127.1/8080", "status", "200"]
        );
        let mut none = Vec::new();
        Scope::rolling(&mut none).stat("x", &stat);
        assert!(none.is_empty());
        assert_eq!(stat.last().map(|s| s.count), Some(1));
    }

    #[test]
    fn a_path_segment_has_no_leading_slash() {
        let path = dtab::Path::read("/#/io.l5d.fs/web").unwrap();
        assert_eq!(segment_of(&path), "#/io.l5d.fs/web");
    }
}
