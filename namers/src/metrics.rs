//! The configured namers' counters as Prometheus metrics, for the admin
//! endpoints of the router and namerd: `namer_<counter>_total` with the
//! namer's prefix as the `namer` label (e.g.
//! `namer_state_changes_total{namer="/#/io.l5d.consul"}`).

use std::fmt;
use std::sync::Arc;

use dtab::Path;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::{Namer, NamerCounter};

/// Reads the namers' counters at each scrape.
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

impl Collector for NamerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let reported: Vec<(&str, Vec<NamerCounter>)> = self
            .namers
            .iter()
            .map(|(prefix, namer)| (prefix.as_str(), namer.counters()))
            .collect();
        // One family per counter name, in the order first reported.
        let mut families: Vec<(&'static str, &'static str)> = Vec::new();
        for counter in reported.iter().flat_map(|(_, counters)| counters) {
            if !families.iter().any(|(name, _)| *name == counter.name) {
                families.push((counter.name, counter.help));
            }
        }
        for (name, help) in families {
            let full_name = format!("namer_{name}");
            let mut family =
                encoder.encode_descriptor(&full_name, help, None, MetricType::Counter)?;
            for (prefix, counters) in &reported {
                for counter in counters.iter().filter(|c| c.name == name) {
                    let labels = [("namer", *prefix)];
                    ConstCounter::new(counter.value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// The namers' counters in the metrics tree, Linkerd's way:
/// `namer/<prefix without its leading slash>/<counter>`
/// (`namer/#/io.l5d.consul/state_changes`).
impl crate::telemetry::Source for NamerMetrics {
    fn list(&self, root: &mut crate::telemetry::Scope<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activity, Live, Lookup};
    use prometheus_client::registry::Registry;

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
    fn every_namer_counter_is_exported_with_its_prefix() {
        let namers: Vec<(Path, Arc<dyn Namer>)> = vec![
            (Path::read("/#/a").unwrap(), Arc::new(Counting(2))),
            (Path::read("/#/b").unwrap(), Arc::new(Counting(5))),
        ];
        let mut registry = Registry::with_prefix("rt");
        registry.register_collector(Box::new(NamerMetrics::new(&namers)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("# TYPE rt_namer_state_changes counter"),
            "{text}"
        );
        assert!(
            text.contains("rt_namer_state_changes_total{namer=\"/#/a\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("rt_namer_state_changes_total{namer=\"/#/b\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("rt_namer_errors_total{namer=\"/#/b\"} 7"),
            "{text}"
        );
    }
}
