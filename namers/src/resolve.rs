//! Flattening a bound tree to one address, the way namerd's
//! `/api/1/resolve` does: a union picks one branch at random by weight, an
//! alternative takes its first usable branch, and a tree with nothing usable
//! is negative.

use dtab::NameTree;

use crate::Bound;

/// Which part of a bound tree an address comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    /// This bound name's address.
    Leaf(&'a Bound),
    /// `$`: the name exists with no endpoints.
    Empty,
    /// `~` or `!`: no address.
    Neg,
}

/// Chooses the bound name whose address stands for `tree`. `pick` is given
/// union weights and returns an index (random by weight in production).
pub fn choose<'a>(
    tree: &'a NameTree<Bound>,
    pick: &mut dyn FnMut(&[f64]) -> usize,
) -> Resolved<'a> {
    match tree {
        NameTree::Leaf(bound) => Resolved::Leaf(bound),
        NameTree::Empty => Resolved::Empty,
        NameTree::Neg | NameTree::Fail => Resolved::Neg,
        NameTree::Alt(alts) => alts
            .iter()
            .map(|t| choose(t, pick))
            .find(|r| *r != Resolved::Neg)
            .unwrap_or(Resolved::Neg),
        NameTree::Union(branches) => {
            let usable: Vec<_> = branches.iter().filter(|w| w.weight > 0.0).collect();
            if usable.is_empty() {
                return Resolved::Neg;
            }
            let weights: Vec<f64> = usable.iter().map(|w| w.weight).collect();
            let index = pick(&weights).min(usable.len() - 1);
            choose(&usable[index].tree, pick)
        }
    }
}

/// Picks an index at random, each with probability proportional to its weight.
pub fn pick_by_weight(weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return 0;
    }
    let mut point = rand::random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if point < *w {
            return i;
        }
        point -= w;
    }
    weights.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Addr, Live};
    use dtab::Path;

    fn tree(s: &str) -> NameTree<Bound> {
        NameTree::read(s).unwrap().map(&mut |p: &Path| {
            Bound::new(p.clone(), Path::empty(), Live::constant(Addr::Pending))
        })
    }

    fn id(r: Resolved<'_>) -> String {
        match r {
            Resolved::Leaf(b) => b.id.show(),
            Resolved::Empty => "$".into(),
            Resolved::Neg => "~".into(),
        }
    }

    #[test]
    fn alternatives_take_the_first_usable_branch() {
        let t = tree("~ | ! | /a | /b");
        assert_eq!(id(choose(&t, &mut |_| 0)), "/a");
        assert_eq!(id(choose(&tree("~ | !"), &mut |_| 0)), "~");
        assert_eq!(id(choose(&tree("$ | /a"), &mut |_| 0)), "$");
    }

    #[test]
    fn unions_pick_by_weight_and_skip_zero_weights() {
        let t = tree("0 * /a & 1 * /b & 3 * /c");
        assert_eq!(id(choose(&t, &mut |w| w.len() - 1)), "/c");
        assert_eq!(id(choose(&t, &mut |_| 0)), "/b");
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[pick_by_weight(&[1.0, 3.0, 0.0])] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[1] as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }
}
