//! Least loaded: the endpoint with the fewest requests in flight per unit
//! of weight, the first in address order on a tie. Finagle keeps a heap;
//! a linear scan does the same for the sets a router sees (tens of
//! endpoints) without a lock, at O(n) per pick.

use super::node::{Clock, Snapshot};

/// The least loaded node a request may go to now, or when there is none,
/// the least loaded of all. `nodes` is not empty.
pub(super) fn choose(snapshot: &Snapshot, clock: &Clock) -> usize {
    let mut best_open: Option<(usize, f64)> = None;
    let mut best_any: Option<(usize, f64)> = None;
    for (i, node) in snapshot.nodes.iter().enumerate() {
        let load = node.load();
        if best_any.is_none_or(|(_, best)| load < best) {
            best_any = Some((i, load));
        }
        // Only look at health when it could change the answer.
        if best_open.is_none_or(|(_, best)| load < best) && node.is_open(clock) {
            best_open = Some((i, load));
        }
    }
    best_open.or(best_any).map_or(0, |(i, _)| i)
}
