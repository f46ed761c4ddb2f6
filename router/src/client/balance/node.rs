//! The endpoints a balancer picks from: per-endpoint state shared with
//! requests in flight, and the snapshot built from one address value.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use namers::Addr;
use tokio::time::Instant;

use super::config::{BalanceConfig, BalancerKind};
use super::ewma::PeakEwma;
use super::round_robin;
use crate::client::accrual::NodeHealth;

/// The clock of one pick or outcome: read at most once, and only if some
/// step needs it (a live endpoint under p2c needs none).
pub(super) struct Clock {
    now: Cell<Option<Instant>>,
}

impl Clock {
    /// The system clock (tokio's, so paused time applies).
    pub(super) fn system() -> Clock {
        Clock {
            now: Cell::new(None),
        }
    }

    /// A fixed instant.
    pub(super) fn at(now: Instant) -> Clock {
        Clock {
            now: Cell::new(Some(now)),
        }
    }

    /// The instant read so far, if any.
    pub(super) fn read(&self) -> Option<Instant> {
        self.now.get()
    }

    pub(super) fn now(&self) -> Instant {
        match self.now.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                self.now.set(Some(now));
                now
            }
        }
    }
}

/// An origin for instants kept as ns in atomics, well before any instant
/// callers will show us.
pub(super) fn epoch() -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
}

/// `at` in ns after `epoch`.
pub(super) fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// What one endpoint keeps across address updates, shared with the
/// requests in flight to it.
#[derive(Debug)]
pub(super) struct NodeShared {
    pub(super) in_flight: AtomicUsize,
    pub(super) health: NodeHealth,
    /// Only `ewma` balancers feed it.
    pub(super) latency: PeakEwma,
    // What picks of this node need from the balancer, kept here so that a
    // pick carries one pointer.
    /// `ewma`'s `decayTimeMs`; `None` for other kinds.
    pub(super) ewma_decay: Option<Duration>,
    pub(super) fail_fast: bool,
    /// The balancer's in-flight count, for `aperture`.
    pub(super) balancer_in_flight: Option<Arc<AtomicUsize>>,
    /// Whose endpoint this is, for the log.
    pub(super) owner: Arc<Owner>,
}

/// The router and bound id a balancer serves, named in the log lines of its
/// endpoints' removals and revivals.
#[derive(Debug, Default)]
pub struct Owner {
    /// The router's label.
    pub router: Arc<str>,
    /// The bound id.
    pub id: Arc<str>,
}

/// One endpoint of a snapshot.
pub(super) struct Node {
    pub(super) addr: SocketAddr,
    pub(super) weight: f64,
    pub(super) shared: Arc<NodeShared>,
}

impl Node {
    /// Requests in flight per unit of weight.
    pub(super) fn load(&self) -> f64 {
        self.in_flight() as f64 / self.weight
    }

    pub(super) fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Whether a request could be let through now (without claiming a
    /// probe).
    pub(super) fn is_open(&self, clock: &Clock) -> bool {
        self.shared.health.is_open(|| clock.now())
    }
}

/// The endpoints built from one address value.
pub(super) struct Snapshot {
    pub(super) source: Arc<Addr>,
    pub(super) nodes: Vec<Node>,
    /// `cumulative[i]` is the weight of nodes `0..=i`.
    cumulative: Vec<f64>,
    /// The weight every node has, when they all have the same: a point
    /// then falls on its node by division, not by a search.
    equal_weight: Option<f64>,
    /// For round robin: node indexes in the order they take turns.
    pub(super) schedule: Vec<u32>,
}

/// Removal, revival and probe counts of endpoints that left.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Retired {
    pub(super) removals: u64,
    pub(super) revivals: u64,
    pub(super) probes: u64,
}

impl Snapshot {
    /// The endpoints of `source`, keeping the state of those already in
    /// `previous`; also what the endpoints that left had counted.
    pub(super) fn build(
        source: Arc<Addr>,
        previous: Option<&Snapshot>,
        config: &BalanceConfig,
        rank: &RandomState,
        epoch: Instant,
        balancer_in_flight: Option<&Arc<AtomicUsize>>,
        owner: &Arc<Owner>,
    ) -> (Snapshot, Retired) {
        let ewma_decay = match config.kind {
            BalancerKind::Ewma { decay, .. } => Some(decay),
            _ => None,
        };
        let mut kept: HashMap<SocketAddr, &Arc<NodeShared>> = previous
            .map(|p| p.nodes.iter().map(|n| (n.addr, &n.shared)).collect())
            .unwrap_or_default();
        let mut nodes: Vec<Node> = match &*source {
            Addr::Bound(set) => set
                .endpoints()
                .iter()
                .filter(|e| e.weight > 0.0 && e.weight.is_finite())
                .map(|e| Node {
                    addr: e.addr,
                    weight: e.weight,
                    shared: kept.remove(&e.addr).cloned().unwrap_or_else(|| {
                        Arc::new(NodeShared {
                            in_flight: AtomicUsize::new(0),
                            health: NodeHealth::new(config.accrual.clone()),
                            latency: PeakEwma::new(epoch),
                            ewma_decay,
                            fail_fast: config.fail_fast,
                            balancer_in_flight: balancer_in_flight.cloned(),
                            owner: owner.clone(),
                        })
                    }),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut retired = Retired::default();
        for gone in kept.values() {
            retired.removals += gone.health.removals();
            retired.revivals += gone.health.revivals();
            retired.probes += gone.health.probes();
        }
        if matches!(config.kind, BalancerKind::Aperture { .. }) {
            // Each balancer orders endpoints its own way, so that the
            // windows of many routers spread over the whole set. The order
            // of endpoints that stay does not change.
            nodes.sort_by_key(|n| rank.hash_one(n.addr));
        }
        let cumulative = nodes
            .iter()
            .scan(0.0, |sum, n| {
                *sum += n.weight;
                Some(*sum)
            })
            .collect();
        let equal_weight = nodes
            .first()
            .map(|first| first.weight)
            .filter(|&w| nodes.iter().all(|n| n.weight == w));
        let schedule = if matches!(config.kind, BalancerKind::RoundRobin { .. }) {
            round_robin::schedule(&nodes.iter().map(|n| n.weight).collect::<Vec<_>>())
        } else {
            Vec::new()
        };
        let snapshot = Snapshot {
            source,
            nodes,
            cumulative,
            equal_weight,
            schedule,
        };
        (snapshot, retired)
    }

    /// The weight of nodes `0..end`.
    pub(super) fn weight_before(&self, end: usize) -> f64 {
        match end {
            0 => 0.0,
            _ => self.cumulative[end - 1],
        }
    }

    /// The node among `0..end` that `point` (in `0..weight_before(end)`)
    /// falls on.
    fn index_at(&self, end: usize, point: f64) -> usize {
        node_at(&self.cumulative[..end], self.equal_weight, point)
    }

    /// A node among `0..end` (not empty), drawn in proportion to weight.
    pub(super) fn random_index(&self, end: usize) -> usize {
        self.index_at(end, rand::random::<f64>() * self.weight_before(end))
    }

    /// Two distinct nodes among `0..end` (at least 2), each drawn in
    /// proportion to weight.
    pub(super) fn random_pair(&self, end: usize) -> (usize, usize) {
        let a = self.random_index(end);
        let weight_a = self.nodes[a].weight;
        // Draw over the others' weight, then step over `a`.
        let mut point = rand::random::<f64>() * (self.weight_before(end) - weight_a);
        if point >= self.weight_before(a) {
            point += weight_a;
        }
        let mut b = self.index_at(end, point);
        if b == a {
            // Rounding at a boundary.
            b = (a + 1) % end;
        }
        (a, b)
    }
}

/// The node that `point` falls on, given the running sums of the nodes'
/// weights (not empty) and their one weight if they all have the same.
fn node_at(cumulative: &[f64], equal_weight: Option<f64>, point: f64) -> usize {
    let index = match equal_weight {
        // (`as` saturates: a negative or NaN point gives 0.)
        Some(weight) => (point / weight) as usize,
        None => cumulative.partition_point(|&c| c <= point),
    };
    index.min(cumulative.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::node_at;

    fn running_sums(weights: &[f64]) -> Vec<f64> {
        weights
            .iter()
            .scan(0.0, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect()
    }

    #[test]
    fn equal_weights_find_by_division_the_node_a_search_finds() {
        for (count, weight) in [(1, 1.0), (10, 1.0), (1000, 1.0), (7, 0.3), (1000, 2.5)] {
            let sums = running_sums(&vec![weight; count]);
            let total = sums[count - 1];
            for step in 0..10_000 {
                // Points inside each node's span, away from the edges
                // (where rounding of the sums may tip either way).
                let point = total * (f64::from(step) + 0.5) / 10_000.0;
                let searched = node_at(&sums, None, point);
                let divided = node_at(&sums, Some(weight), point);
                let edge = (point / weight).fract();
                if edge > 1e-9 && edge < 1.0 - 1e-9 {
                    assert_eq!(
                        divided, searched,
                        "{count} nodes of {weight}, point {point}"
                    );
                }
                assert!(divided < count);
            }
            assert_eq!(node_at(&sums, Some(weight), total), count - 1);
            assert_eq!(node_at(&sums, Some(weight), -1.0), 0);
            assert_eq!(node_at(&sums, Some(weight), f64::NAN), 0);
        }
    }

    #[test]
    fn unequal_weights_are_drawn_by_their_spans() {
        let sums = running_sums(&[1.0, 3.0, 0.5]);
        assert_eq!(node_at(&sums, None, 0.0), 0);
        assert_eq!(node_at(&sums, None, 0.99), 0);
        assert_eq!(node_at(&sums, None, 1.0), 1);
        assert_eq!(node_at(&sums, None, 3.99), 1);
        assert_eq!(node_at(&sums, None, 4.2), 2);
        assert_eq!(node_at(&sums, None, 4.5), 2);
    }
}
