//! The router's figures, in Linkerd's scopes and names: per server
//! (`rt/<router>/server/<ip>/<port>`), per service (the destination path,
//! `rt/<router>/service/svc/web`), per client (the bound id,
//! `rt/<router>/client/#/io.l5d.fs/web`) and per client and service. Each
//! scope is defined by its stage (`server::stats`, `service::stats`,
//! `client::stats`); this module holds what they share: the request
//! figures every scope has, failure kinds, and the registry of live scopes.
//!
//! Every figure is an atomic owned by the scope's own object: a service's
//! by its binding, a client's by its client, so a scope goes when the
//! binding cache lets go of it. Recording takes no lock and allocates
//! nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use namers::telemetry::{Counter, Scope, Stat};

use crate::client::stats::ClientStats;
use crate::service::stats::ServiceStats;
pub(crate) use namers::telemetry::StatusCounts;

/// Whether requests are counted: always, except in the `uncounted` build
/// that measures what counting costs.
pub(crate) const COUNTING: bool = !cfg!(feature = "uncounted");

/// `connects` and `connections` of a server (accepted) or a client
/// (opened to its endpoints).
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    connects: Counter,
    open: AtomicI64,
}

impl ConnectionCounts {
    /// Counts a connection made, and open until the guard is dropped.
    pub fn opened(self: &Arc<ConnectionCounts>) -> OpenConnection {
        self.connects.incr();
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Counts a connection open again, not made again: an upgraded
    /// connection, whose bytes a tunnel now carries after its HTTP task
    /// ended.
    pub fn still_open(self: &Arc<ConnectionCounts>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Lists `connects` and the gauge `connections` into `scope`.
    pub(crate) fn list(&self, scope: &mut Scope<'_>) {
        scope.counter("connects", self.connects.get());
        #[allow(clippy::cast_precision_loss)]
        scope.gauge(
            "connections",
            self.open.load(Ordering::Relaxed).max(0) as f64,
        );
    }
}

/// A connection counted open while this lives.
#[derive(Debug)]
pub struct OpenConnection(Arc<ConnectionCounts>);

impl OpenConnection {
    /// How many connections it is counted with are open now, itself
    /// included.
    pub fn open_now(&self) -> i64 {
        self.0.open.load(Ordering::Relaxed)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a request or an attempt failed, as the `failures/<kind>` scope
/// names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// An answer the response classifier called a failure (Linkerd's name
    /// for it, which dashboards know).
    Classified,
    /// No connection could be had, or the endpoint refused the stream.
    NotSent,
    /// The endpoint failed after the request was sent.
    Upstream,
    /// A time limit passed.
    Timeout,
    /// The name had no endpoints, or binding failed.
    NoEndpoints,
    /// The router refused the request itself.
    Refused,
}

impl FailureKind {
    const ALL: [FailureKind; 6] = [
        FailureKind::Classified,
        FailureKind::NotSent,
        FailureKind::Upstream,
        FailureKind::Timeout,
        FailureKind::NoEndpoints,
        FailureKind::Refused,
    ];

    /// The scope name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FailureKind::Classified => {
                "com.twitter.finagle.service.ResponseClassificationSyntheticException"
            }
            FailureKind::NotSent => "not_sent",
            FailureKind::Upstream => "upstream",
            FailureKind::Timeout => "timeout",
            FailureKind::NoEndpoints => "no_endpoints",
            FailureKind::Refused => "refused",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `requests`, `success`, `failures` (and by kind) and
/// `request_latency_ms` of one scope.
// The counters every request touches, then the histogram's totals and
// bucket pointer: 64 bytes, aligned to one cache line; failures, rarer,
// after it.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct RequestStats {
    requests: Counter,
    success: Counter,
    latency: Stat,
    failures: Counter,
    failure_kinds: [Counter; FailureKind::ALL.len()],
}

impl RequestStats {
    /// A request (or attempt) started.
    pub(crate) fn request(&self) {
        if !COUNTING {
            return;
        }
        self.requests.incr();
    }

    /// It succeeded.
    pub(crate) fn success(&self) {
        if !COUNTING {
            return;
        }
        self.success.incr();
    }

    /// It failed, for a reason not known here (a server sees only the
    /// answer's status).
    pub(crate) fn failure_unexplained(&self) {
        if !COUNTING {
            return;
        }
        self.failures.incr();
    }

    /// It failed.
    pub(crate) fn failure(&self, kind: FailureKind) {
        if !COUNTING {
            return;
        }
        self.failures.incr();
        self.failure_kinds[kind.index()].incr();
    }

    /// Its answer's head came after `elapsed`.
    pub(crate) fn latency(&self, elapsed: Duration) {
        if !COUNTING {
            return;
        }
        self.latency
            .add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }

    pub(crate) fn list(&self, scope: &mut Scope<'_>) {
        scope.counter("requests", self.requests.get());
        scope.counter("success", self.success.get());
        scope.counter("failures", self.failures.get());
        for kind in FailureKind::ALL {
            let count = self.failure_kinds[kind.index()].get();
            if count > 0 {
                scope.counter(&format!("failures/{}", kind.name()), count);
            }
        }
        scope.stat("request_latency_ms", &self.latency);
    }
}

/// Scopes by name, held by whoever uses them: a scope nobody holds any
/// more is forgotten at the next listing.
#[derive(Debug)]
pub(crate) struct Registry<T> {
    scopes: Mutex<HashMap<Arc<str>, Weak<T>>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Registry<T> {
        Registry {
            scopes: Mutex::default(),
        }
    }
}

impl<T> Registry<T> {
    /// The scope named `name`, made by `make` when nobody holds it.
    pub(crate) fn get_or_make(&self, name: &str, make: impl FnOnce(Arc<str>) -> T) -> Arc<T> {
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = scopes.get(name).and_then(Weak::upgrade) {
            return held;
        }
        let name: Arc<str> = name.into();
        let made = Arc::new(make(name.clone()));
        scopes.insert(name, Arc::downgrade(&made));
        made
    }

    /// The scopes still held, by name; forgets the others.
    pub(crate) fn live(&self) -> Vec<(Arc<str>, Arc<T>)> {
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        scopes.retain(|_, weak| weak.strong_count() > 0);
        let mut live: Vec<(Arc<str>, Arc<T>)> = scopes
            .iter()
            .filter_map(|(name, weak)| Some((name.clone(), weak.upgrade()?)))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        live
    }
}

/// The scopes a response classified only by its trailers still has to
/// be counted in.
#[derive(Debug)]
pub struct PendingOutcome {
    pub(crate) service: Arc<ServiceStats>,
    pub(crate) client: Arc<ClientStats>,
    pub(crate) client_service: Arc<RequestStats>,
}

impl PendingOutcome {
    /// Counts the class the trailers gave.
    pub(crate) fn settle(&self, success: bool) {
        for stats in [
            &self.service.requests,
            &self.client.requests,
            &*self.client_service,
        ] {
            if success {
                stats.success();
            } else {
                stats.failure(FailureKind::Classified);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use namers::telemetry::{Entry, Value};

    fn listed(list: impl FnOnce(&mut Scope<'_>)) -> Vec<(String, Value)> {
        let mut entries: Vec<Entry> = Vec::new();
        list(&mut Scope::root(&mut entries));
        entries
            .into_iter()
            .map(|e| (e.path.join("/"), e.value))
            .collect()
    }

    #[test]
    fn what_a_request_touches_fits_one_cache_line() {
        assert_eq!(std::mem::align_of::<RequestStats>(), 64);
        // The live histogram (totals and bucket pointer, 48 bytes) comes
        // first in a stat, after the two counters.
        let live_end = std::mem::offset_of!(RequestStats, latency)
            + std::mem::size_of::<namers::telemetry::Histogram>();
        assert!(live_end <= 64, "{live_end}");
    }

    #[test]
    fn failures_are_counted_by_kind_only_when_seen() {
        let stats = RequestStats::default();
        stats.request();
        stats.request();
        stats.success();
        stats.failure(FailureKind::Classified);
        let figures = listed(|s| stats.list(s));
        let keys: Vec<&str> = figures.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "requests",
                "success",
                "failures",
                "failures/com.twitter.finagle.service.ResponseClassificationSyntheticException"
            ]
        );
    }

    #[test]
    fn a_registry_forgets_scopes_nobody_holds() {
        let registry: Registry<u32> = Registry::default();
        let a = registry.get_or_make("a", |_| 1);
        let again = registry.get_or_make("a", |_| 2);
        assert!(Arc::ptr_eq(&a, &again));
        {
            let _b = registry.get_or_make("b", |_| 3);
            assert_eq!(registry.live().len(), 2);
        }
        let live = registry.live();
        assert_eq!(live.len(), 1);
        assert_eq!(&*live[0].0, "a");
    }
}
