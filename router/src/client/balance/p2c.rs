//! Power of two choices: draw two distinct endpoints at random, in
//! proportion to weight, and take the better one. Used by `p2c` (cost: in
//! flight per unit of weight), `ewma` (cost: peak EWMA per unit of weight)
//! and `aperture` (within its window).

use super::node::{Clock, Snapshot};

/// Of two distinct nodes among `0..end` (not empty), the cheaper one (the
/// first drawn on a tie). A pair with a node that may not take a request
/// now (removed by failure accrual) is drawn again, a few times: taking its
/// partner whatever its cost would send a removed node's share of the
/// traffic to whichever node it is paired with, a slow one included. When
/// no pair of open nodes turns up, the last open node drawn is used, or
/// the cheaper of the last pair.
pub(super) fn choose(
    snapshot: &Snapshot,
    end: usize,
    clock: &Clock,
    cost: impl Fn(usize) -> f64,
) -> usize {
    if end == 1 {
        return 0;
    }
    let cheaper = |a: usize, b: usize| if cost(b) < cost(a) { b } else { a };
    let mut open_seen = None;
    let mut last = (0, 1);
    for _ in 0..REDRAWS {
        let (a, b) = snapshot.random_pair(end);
        last = (a, b);
        match (
            snapshot.nodes[a].is_open(clock),
            snapshot.nodes[b].is_open(clock),
        ) {
            (true, true) => return cheaper(a, b),
            (true, false) => open_seen = Some(a),
            (false, true) => open_seen = Some(b),
            (false, false) => {}
        }
    }
    open_seen.unwrap_or_else(|| cheaper(last.0, last.1))
}

/// How many pairs are drawn before settling for one with a removed node.
const REDRAWS: usize = 4;
