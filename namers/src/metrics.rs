//! The namers' and the interpreter's figures in the metrics tree
//! ([`crate::telemetry`]), for the admin endpoints of the router and
//! namerd: each configured namer's counters under
//! `namer/<prefix without its leading slash>/` as Linkerd scoped them
//! (`namer/#/io.l5d.consul/state_changes`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dtab::Path;

use crate::telemetry::{Scope, Source};
use crate::{InterpreterStats, Namer};

/// Reads the namers' counters at each listing.
pub struct NamerMetrics {
    namers: Vec<(String, Arc<dyn Namer>)>,
}

impl NamerMetrics {
    /// The metrics of `namers`, each under its prefix.
    pub fn new(namers: &[(Path, Arc<dyn Namer>)]) -> NamerMetrics {
        NamerMetrics {
            namers: namers
                .iter()
                .map(|(prefix, namer)| (prefix.show(), namer.clone()))
                .collect(),
        }
    }
}

impl fmt::Debug for NamerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefixes: Vec<&str> = self.namers.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("NamerMetrics")
            .field("namers", &prefixes)
            .finish()
    }
}

/// The namers' counters in the metrics tree, Linkerd's way:
/// `namer/<prefix without its leading slash>/<counter>`
/// (`namer/#/io.l5d.consul/state_changes`).
impl Source for NamerMetrics {
    fn list(&self, root: &mut Scope<'_>) {
        if root.is_rolling() {
            return;
        }
        let mut namers = root.scope("namer");
        for (prefix, namer) in &self.namers {
            let mut scope = namers.scope(prefix.strip_prefix('/').unwrap_or(prefix));
            for counter in namer.counters() {
                scope.counter(counter.name, counter.value);
            }
        }
    }
}

/// An interpreter's counters, listed into `scope` (Linkerd's interpreters
/// had none of these; the names are ours): `bindings/active` (a gauge:
/// bindings whose task runs), `bindings/started`, `bindings/ended`,
/// `recomputations` (a binding bound again after a namer's answer or the
/// dtab changed) and `failures_masked` (a namer failed after answering
/// and its last good answer was kept).
pub fn list_interpreter_stats(stats: &InterpreterStats, scope: &mut Scope<'_>) {
    if scope.is_rolling() {
        return;
    }
    #[allow(clippy::cast_precision_loss)]
    scope.gauge("bindings/active", stats.active_bindings() as f64);
    let started = stats.bindings_started.load(Ordering::Relaxed);
    scope.counter("bindings/started", started);
    scope.counter(
        "bindings/ended",
        stats.bindings_ended.load(Ordering::Relaxed),
    );
    scope.counter(
        "recomputations",
        stats.recomputations.load(Ordering::Relaxed),
    );
    scope.counter(
        "failures_masked",
        stats.failures_masked.load(Ordering::Relaxed),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Value, collect};
    use crate::{Activity, Live, Lookup, NamerCounter};

    struct Counting(u64);

    impl Namer for Counting {
        fn lookup(&self, _: &Path) -> Lookup {
            Live::constant(Activity::Pending)
        }

        fn counters(&self) -> Vec<NamerCounter> {
            vec![NamerCounter::state_changes(self.0), NamerCounter::errors(7)]
        }
    }

    #[test]
    fn every_namer_counter_is_listed_under_its_prefix() {
        let namers: Vec<(Path, Arc<dyn Namer>)> = vec![
            (Path::read("/#/a").unwrap(), Arc::new(Counting(2))),
            (Path::read("/#/b").unwrap(), Arc::new(Counting(5))),
        ];
        let source: Arc<dyn Source> = Arc::new(NamerMetrics::new(&namers));
        let listed: Vec<(String, Value)> = collect(&[source])
            .into_iter()
            .map(|e| (e.path.join("/"), e.value))
            .collect();
        let want = [
            ("namer/#/a/state_changes", 2),
            ("namer/#/a/errors", 7),
            ("namer/#/b/state_changes", 5),
            ("namer/#/b/errors", 7),
        ];
        let want: Vec<(String, Value)> = want
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::Counter(*v)))
            .collect();
        assert_eq!(listed, want);
    }

    #[test]
    fn interpreter_stats_are_listed_with_the_active_bindings() {
        let stats = InterpreterStats::default();
        stats.bindings_started.store(5, Ordering::Relaxed);
        stats.bindings_ended.store(2, Ordering::Relaxed);
        stats.failures_masked.store(1, Ordering::Relaxed);
        let mut entries = Vec::new();
        list_interpreter_stats(&stats, &mut Scope::root(&mut entries));
        let listed: Vec<(String, Value)> = entries
            .into_iter()
            .map(|e| (e.path.join("/"), e.value))
            .collect();
        assert_eq!(
            listed,
            [
                ("bindings/active".to_string(), Value::Gauge(3.0)),
                ("bindings/started".to_string(), Value::Counter(5)),
                ("bindings/ended".to_string(), Value::Counter(2)),
                ("recomputations".to_string(), Value::Counter(0)),
                ("failures_masked".to_string(), Value::Counter(1)),
            ]
        );
    }
}
