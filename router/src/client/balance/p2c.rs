//! Power of two choices, least loaded: pick two endpoints at random (by
//! weight) and use the one with fewer requests in flight per unit of weight.
//!
//! The endpoint set follows the name's live address. The request path reads
//! it lock-free; it is rebuilt (keeping in-flight counts) only when the
//! address changes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use namers::{Addr, Live};

/// One endpoint and its in-flight count.
struct Node {
    addr: SocketAddr,
    weight: f64,
    in_flight: Arc<AtomicUsize>,
}

/// The endpoints built from one address value.
struct Snapshot {
    source: Arc<Addr>,
    nodes: Vec<Node>,
    total_weight: f64,
}

/// Balances requests over a live endpoint set.
pub struct Balancer {
    addr: Live<Addr>,
    snapshot: ArcSwap<Snapshot>,
}

/// A chosen endpoint; its in-flight count drops when this is dropped.
pub struct Picked {
    /// Where to send the request.
    pub addr: SocketAddr,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    /// A balancer over `addr`.
    pub fn new(addr: Live<Addr>) -> Balancer {
        let source = addr.load();
        let snapshot = Snapshot::build(source, None);
        Balancer {
            addr,
            snapshot: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The current address (for errors and admin pages).
    pub fn addr(&self) -> Arc<Addr> {
        self.addr.load()
    }

    /// The live address, to wait for one that is pending.
    pub fn live_addr(&self) -> Live<Addr> {
        self.addr.clone()
    }

    /// How many endpoints are available now.
    pub fn size(&self) -> usize {
        self.current().nodes.len()
    }

    fn current(&self) -> Arc<Snapshot> {
        let source = self.addr.load();
        let snapshot = self.snapshot.load_full();
        if Arc::ptr_eq(&snapshot.source, &source) {
            return snapshot;
        }
        let rebuilt = Arc::new(Snapshot::build(source, Some(&snapshot)));
        self.snapshot.store(rebuilt.clone());
        rebuilt
    }

    /// Picks an endpoint, or `None` when there is none.
    pub fn pick(&self) -> Option<Picked> {
        let snapshot = self.current();
        let node = match snapshot.nodes.len() {
            0 => return None,
            1 => &snapshot.nodes[0],
            _ => {
                let a = &snapshot.nodes[snapshot.random_index()];
                let b = &snapshot.nodes[snapshot.random_index()];
                if load(b) < load(a) { b } else { a }
            }
        };
        node.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Picked {
            addr: node.addr,
            in_flight: node.in_flight.clone(),
        })
    }
}

fn load(node: &Node) -> f64 {
    node.in_flight.load(Ordering::Relaxed) as f64 / node.weight
}

impl Snapshot {
    fn build(source: Arc<Addr>, previous: Option<&Snapshot>) -> Snapshot {
        let nodes: Vec<Node> = match &*source {
            Addr::Bound(set) => set
                .endpoints()
                .iter()
                .filter(|e| e.weight > 0.0 && e.weight.is_finite())
                .map(|e| {
                    // Keep in-flight counts of endpoints that stay.
                    let in_flight = previous
                        .and_then(|p| p.nodes.iter().find(|n| n.addr == e.addr))
                        .map_or_else(Arc::default, |n| n.in_flight.clone());
                    Node {
                        addr: e.addr,
                        weight: e.weight,
                        in_flight,
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        let total_weight = nodes.iter().map(|n| n.weight).sum();
        Snapshot {
            source,
            nodes,
            total_weight,
        }
    }

    /// An index chosen at random in proportion to weight.
    fn random_index(&self) -> usize {
        let mut point = rand::random::<f64>() * self.total_weight;
        for (i, node) in self.nodes.iter().enumerate() {
            if point < node.weight {
                return i;
            }
            point -= node.weight;
        }
        self.nodes.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use namers::{Endpoint, Publisher};

    fn endpoints(ports: &[(u16, f64)]) -> Addr {
        Addr::bound(
            ports
                .iter()
                .map(|(p, w)| Endpoint::new(([127, 0, 0, 1], *p).into()).with_weight(*w))
                .collect(),
        )
    }

    #[test]
    fn prefers_the_less_loaded_endpoint() {
        let balancer = Balancer::new(Live::constant(endpoints(&[(1, 1.0), (2, 1.0)])));
        let busy: Vec<Picked> = (0..10)
            .filter_map(|_| balancer.pick())
            .filter(|p| p.addr.port() == 1)
            .collect();
        assert!(!busy.is_empty());
        // With port 1 loaded, any pair that includes port 2 picks port 2.
        let picks: Vec<u16> = (0..200)
            .filter_map(|_| balancer.pick().map(|p| p.addr.port()))
            .collect();
        let to_two = picks.iter().filter(|&&p| p == 2).count();
        assert!(to_two > 120, "{to_two} of 200 went to the idle endpoint");
    }

    #[test]
    fn honours_weights_when_idle() {
        let balancer = Balancer::new(Live::constant(endpoints(&[(1, 1.0), (2, 3.0)])));
        let mut to_two = 0;
        for _ in 0..10_000 {
            if balancer.pick().map(|p| p.addr.port()) == Some(2) {
                to_two += 1;
            }
        }
        // Idle picks are two weighted draws where ties go to the first: the
        // heavier endpoint gets the bulk of the traffic.
        assert!(to_two > 7_000, "{to_two}");
    }

    #[test]
    fn follows_the_live_address_and_keeps_in_flight_counts() {
        let publisher = Publisher::new(endpoints(&[(1, 1.0)]));
        let balancer = Balancer::new(publisher.subscribe());
        let held = balancer.pick().unwrap();
        publisher.publish(endpoints(&[(1, 1.0), (2, 1.0)]));
        assert_eq!(balancer.size(), 2);
        // Port 1 still has one request in flight, so port 2 wins every pair
        // that includes it.
        let picks: Vec<u16> = (0..100)
            .filter_map(|_| balancer.pick().map(|p| p.addr.port()))
            .collect();
        assert!(picks.contains(&2));
        drop(held);
        publisher.publish(Addr::Neg);
        assert!(balancer.pick().is_none());
    }
}
