//! Power of two choices: draw two distinct endpoints at random, in
//! proportion to weight, and take the better one. Used by `p2c` (cost: in
//! flight per unit of weight), `ewma` (cost: peak EWMA per unit of weight)
//! and `aperture` (within its window).

use super::node::{Clock, Snapshot};

/// Of two distinct nodes among `0..end` (not empty), the one a request
/// may go to now, or when both or neither may, the cheaper one (the first
/// drawn on a tie).
pub(super) fn choose(
    snapshot: &Snapshot,
    end: usize,
    clock: &Clock,
    cost: impl Fn(usize) -> f64,
) -> usize {
    if end == 1 {
        return 0;
    }
    let (a, b) = snapshot.random_pair(end);
    match (
        snapshot.nodes[a].is_open(clock),
        snapshot.nodes[b].is_open(clock),
    ) {
        (true, false) => a,
        (false, true) => b,
        _ if cost(b) < cost(a) => b,
        _ => a,
    }
}
