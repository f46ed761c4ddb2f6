//! Round robin: endpoints take turns, each as often as its weight says.
//!
//! The turns are laid out once per address value (stride scheduling: each
//! endpoint's next turn comes `1 / weight` after its last), and a shared
//! cursor walks them, so a pick is one atomic add. Equal weights give plain
//! rotation. The layout has at most eight turns per endpoint: an endpoint
//! with under an eighth of the average weight may get none.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::node::Snapshot;

/// The most turns per endpoint in one layout.
const TURNS_PER_ENDPOINT: usize = 8;

/// The order of turns for nodes of these weights.
pub(super) fn schedule(weights: &[f64]) -> Vec<u32> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    if weights.iter().all(|&w| w == weights[0]) {
        return (0..n as u32).collect();
    }
    let total: f64 = weights.iter().sum();
    let lightest = weights.iter().copied().fold(f64::INFINITY, f64::min);
    let len = ((total / lightest).ceil() as usize).clamp(n, n * TURNS_PER_ENDPOINT);
    let mut queue: BinaryHeap<Turn> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Turn {
            at: 0.5 / w,
            node: i as u32,
        })
        .collect();
    let mut order = Vec::with_capacity(len);
    while order.len() < len {
        let Some(turn) = queue.pop() else { break };
        order.push(turn.node);
        queue.push(Turn {
            at: turn.at + 1.0 / weights[turn.node as usize],
            node: turn.node,
        });
    }
    order
}

/// The next node in turn. `nodes` is not empty.
pub(super) fn choose(snapshot: &Snapshot, cursor: &AtomicUsize) -> usize {
    let turn = cursor.fetch_add(1, Ordering::Relaxed);
    match snapshot.schedule.len() {
        0 => turn % snapshot.nodes.len(),
        len => snapshot.schedule[turn % len] as usize,
    }
}

/// A node's next turn; the heap yields the earliest, then the lowest index.
struct Turn {
    at: f64,
    node: u32,
}

impl Ord for Turn {
    fn cmp(&self, other: &Turn) -> CmpOrdering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.node.cmp(&self.node))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Turn) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Turn {
    fn eq(&self, other: &Turn) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Turn {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_rotate() {
        assert_eq!(schedule(&[2.0, 2.0, 2.0]), vec![0, 1, 2]);
    }

    #[test]
    fn turns_follow_weight_and_interleave() {
        let order = schedule(&[1.0, 3.0]);
        assert_eq!(order.iter().filter(|&&i| i == 1).count(), 3);
        assert_eq!(order.iter().filter(|&&i| i == 0).count(), 1);
        let order = schedule(&[1.0, 2.0, 1.0]);
        assert_eq!(order.len(), 4);
        // The heavy node's two turns are not back to back.
        let first = order.iter().position(|&i| i == 1).unwrap();
        assert_ne!(order[(first + 1) % 4], 1, "{order:?}");
    }

    #[test]
    fn the_layout_is_bounded() {
        let order = schedule(&[1.0, 1000.0]);
        assert_eq!(order.len(), 16);
    }
}
