//! Name trees: the values dtabs rewrite names into.

use std::fmt;

use crate::Path;
use crate::weight::write_weight;

/// A tree of names, Finagle's `NameTree[T]`.
///
/// Nothing is flattened or de-duplicated implicitly: the tree keeps the shape
/// it was written or built with until [`NameTree::simplified`] is called.
#[derive(Clone, Debug, PartialEq)]
pub enum NameTree<T> {
    /// A single name.
    Leaf(T),
    /// `a | b`: fail-over; the first branch that is not negative wins.
    Alt(Vec<NameTree<T>>),
    /// `w1 * a & w2 * b`: a weighted split of traffic.
    Union(Vec<Weighted<T>>),
    /// `~`: no binding here; try the next alternative.
    Neg,
    /// `!`: binding failed; stop, with no fall-back.
    Fail,
    /// `$`: the name exists but has no endpoints (a positive answer).
    Empty,
}

/// One branch of a [`NameTree::Union`].
#[derive(Clone, Debug, PartialEq)]
pub struct Weighted<T> {
    /// The branch's share relative to its siblings; `1.0` unless written.
    pub weight: f64,
    /// The branch.
    pub tree: NameTree<T>,
}

impl<T> Weighted<T> {
    /// The default weight of a union branch.
    pub const DEFAULT_WEIGHT: f64 = 1.0;

    /// A branch with the given weight.
    pub fn new(weight: f64, tree: NameTree<T>) -> Weighted<T> {
        Weighted { weight, tree }
    }
}

/// How a leaf value prints inside a tree's `show` form.
pub trait ShowLeaf {
    /// Appends the leaf's text to `out`.
    fn write_leaf(&self, out: &mut String);
}

impl ShowLeaf for Path {
    fn write_leaf(&self, out: &mut String) {
        self.write_show(out);
    }
}

impl NameTree<Path> {
    /// Parses Finagle's tree syntax, e.g. `/a | 3 * /b & /c | ~`.
    pub fn read(text: &str) -> Result<NameTree<Path>, crate::ParseError> {
        crate::parse::tree(text)
    }
}

impl<T> NameTree<T> {
    /// Applies `f` to every leaf, keeping the shape.
    pub fn map<U>(&self, f: &mut impl FnMut(&T) -> U) -> NameTree<U> {
        match self {
            NameTree::Leaf(v) => NameTree::Leaf(f(v)),
            NameTree::Alt(trees) => NameTree::Alt(trees.iter().map(|t| t.map(f)).collect()),
            NameTree::Union(ws) => NameTree::Union(
                ws.iter()
                    .map(|w| Weighted::new(w.weight, w.tree.map(f)))
                    .collect(),
            ),
            NameTree::Neg => NameTree::Neg,
            NameTree::Fail => NameTree::Fail,
            NameTree::Empty => NameTree::Empty,
        }
    }

    /// Whether this is `~`.
    pub fn is_neg(&self) -> bool {
        matches!(self, NameTree::Neg)
    }

    /// Finagle's `simplified`: drops negative alternatives, cuts an Alt at the
    /// first `!`, drops `!` and `~` union branches, and unwraps single-child
    /// nodes (dropping their weight). A union with nothing left is `~`.
    pub fn simplified(&self) -> NameTree<T>
    where
        T: Clone,
    {
        match self {
            NameTree::Alt(trees) => match trees.as_slice() {
                [] => NameTree::Neg,
                [only] => only.simplified(),
                _ => {
                    let mut kept = Vec::with_capacity(trees.len());
                    for tree in trees {
                        match tree.simplified() {
                            NameTree::Fail => {
                                kept.push(NameTree::Fail);
                                break;
                            }
                            NameTree::Neg => {}
                            other => kept.push(other),
                        }
                    }
                    match kept.len() {
                        0 => NameTree::Neg,
                        1 => kept.pop().unwrap_or(NameTree::Neg),
                        _ => NameTree::Alt(kept),
                    }
                }
            },
            NameTree::Union(ws) => match ws.as_slice() {
                [] => NameTree::Neg,
                [only] => only.tree.simplified(),
                _ => {
                    let mut kept: Vec<Weighted<T>> = ws
                        .iter()
                        .map(|w| Weighted::new(w.weight, w.tree.simplified()))
                        .filter(|w| !matches!(w.tree, NameTree::Fail | NameTree::Neg))
                        .collect();
                    match kept.len() {
                        0 => NameTree::Neg,
                        1 => kept.pop().map_or(NameTree::Neg, |w| w.tree),
                        _ => NameTree::Union(kept),
                    }
                }
            },
            other => other.clone(),
        }
    }

    /// Finagle's `eval`: the set of leaves this tree stands for, or `None` when
    /// it is negative or failed. Weights are ignored. Repeated leaves appear
    /// once, in first-seen order.
    pub fn eval(&self) -> Option<Vec<&T>>
    where
        T: PartialEq,
    {
        let mut out = Vec::new();
        (self.eval_into(&mut out) == Eval::Found).then_some(out)
    }

    /// Adds this tree's leaves to `out` and says what the tree evaluated to.
    /// A failure inside an Alt stops it and propagates; a Union skips
    /// failed and negative branches.
    fn eval_into<'a>(&'a self, out: &mut Vec<&'a T>) -> Eval
    where
        T: PartialEq,
    {
        match self {
            NameTree::Leaf(v) => {
                if !out.contains(&v) {
                    out.push(v);
                }
                Eval::Found
            }
            NameTree::Empty => Eval::Found,
            NameTree::Neg => Eval::Neg,
            NameTree::Fail => Eval::Fail,
            NameTree::Alt(trees) => {
                for tree in trees {
                    let mark = out.len();
                    match tree.eval_into(out) {
                        Eval::Neg => out.truncate(mark),
                        decided => return decided,
                    }
                }
                Eval::Neg
            }
            NameTree::Union(ws) => {
                let mut found = false;
                for w in ws {
                    let mark = out.len();
                    if w.tree.eval_into(out) == Eval::Found {
                        found = true;
                    } else {
                        out.truncate(mark);
                    }
                }
                if found { Eval::Found } else { Eval::Neg }
            }
        }
    }
}

/// What a subtree evaluated to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Eval {
    Found,
    Neg,
    Fail,
}

impl<T: ShowLeaf> NameTree<T> {
    /// Finagle's `show`: `" | "` and `" & "` separators, weights other than
    /// exactly 1.0 as `%.2f*`, and parentheses only where precedence needs them.
    pub fn show(&self) -> String {
        let mut out = String::new();
        self.write_show(&mut out);
        out
    }

    /// Appends [`NameTree::show`] to `out`.
    pub fn write_show(&self, out: &mut String) {
        match self {
            NameTree::Union(ws) if ws.len() == 1 => ws[0].tree.write_show(out),
            NameTree::Alt(ts) if ts.len() == 1 => ts[0].write_show(out),
            NameTree::Alt(ts) => {
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" | ");
                    }
                    t.write_show_alt_child(out);
                }
            }
            other => other.write_show_alt_child(out),
        }
    }

    /// Finagle's `showAlt`: how a tree prints as one branch of an Alt.
    fn write_show_alt_child(&self, out: &mut String) {
        match self {
            NameTree::Union(ws) if ws.len() == 1 => ws[0].tree.write_show_alt_child(out),
            NameTree::Alt(ts) if ts.len() == 1 => ts[0].write_show_alt_child(out),
            NameTree::Union(ws) => {
                for (i, w) in ws.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" & ");
                    }
                    // Exactly 1.0 is the default weight and is not printed.
                    #[allow(clippy::float_cmp)]
                    if w.weight != Weighted::<T>::DEFAULT_WEIGHT {
                        write_weight(w.weight, out);
                        out.push('*');
                    }
                    w.tree.write_show_simple(out);
                }
            }
            NameTree::Alt(_) => {
                out.push('(');
                self.write_show(out);
                out.push(')');
            }
            other => other.write_show_simple(out),
        }
    }

    /// Finagle's `showSimple`: how a tree prints as one branch of a Union.
    fn write_show_simple(&self, out: &mut String) {
        match self {
            NameTree::Union(ws) if ws.len() == 1 => ws[0].tree.write_show_simple(out),
            NameTree::Alt(ts) if ts.len() == 1 => ts[0].write_show_simple(out),
            NameTree::Union(_) | NameTree::Alt(_) => {
                out.push('(');
                self.write_show(out);
                out.push(')');
            }
            NameTree::Leaf(v) => v.write_leaf(out),
            NameTree::Fail => out.push('!'),
            NameTree::Neg => out.push('~'),
            NameTree::Empty => out.push('$'),
        }
    }
}

impl<T: ShowLeaf> fmt::Display for NameTree<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NameTree<Path> {
        NameTree::read(s).unwrap()
    }

    #[test]
    fn show_parenthesises_only_where_needed() {
        assert_eq!(t("/a & /b | /c").show(), "/a & /b | /c");
        assert_eq!(t("(/a | /b) | /c").show(), "(/a | /b) | /c");
        assert_eq!(t("(/a & /b) & /c").show(), "(/a & /b) & /c");
        assert_eq!(t("2 * (/a | /b) & /c").show(), "2.00*(/a | /b) & /c");
        assert_eq!(t("((/a))").show(), "/a");
    }

    #[test]
    fn simplify_turns_an_all_dead_union_into_neg() {
        assert_eq!(t("! & !").simplified(), NameTree::Neg);
        assert_eq!(t("~ | /a | ! | /b").simplified(), t("/a | !"));
        assert_eq!(t("2 * /a & ~").simplified(), t("/a"));
    }

    #[test]
    fn eval_follows_alt_and_union_rules() {
        let show = |tree: &NameTree<Path>| {
            tree.eval()
                .map(|v| v.iter().map(|p| p.show()).collect::<Vec<_>>())
        };
        assert_eq!(show(&t("~ | $ | /x")), Some(vec![]));
        assert_eq!(show(&t("! | /x")), None);
        // A failure nested in an Alt propagates through the enclosing Alt.
        assert_eq!(show(&t("(! | /a) | /x")), None);
        assert_eq!(show(&t("(! & ~) | /x")), Some(vec!["/x".to_string()]));
        assert_eq!(show(&t("/x & !")), Some(vec!["/x".to_string()]));
        assert_eq!(
            show(&t("(/a | /b) & (/c | /d)")),
            Some(vec!["/a".to_string(), "/c".to_string()])
        );
    }
}
