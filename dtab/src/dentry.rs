//! Dentries: one `prefix => tree` rewrite rule, and the prefixes they match.

use std::fmt;

use crate::{Label, NameTree, Path};

/// One element of a dentry [`Prefix`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrefixElem {
    /// Matches exactly this label.
    Label(Label),
    /// `*`: matches any one label.
    Any,
}

/// The left side of a dentry: a path whose elements may be the wildcard `*`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Prefix {
    elems: Vec<PrefixElem>,
}

impl Prefix {
    /// A prefix of the given elements.
    pub fn new(elems: Vec<PrefixElem>) -> Prefix {
        Prefix { elems }
    }

    /// Parses a prefix such as `/svc/*/web`.
    pub fn read(text: &str) -> Result<Prefix, crate::ParseError> {
        crate::parse::prefix(text)
    }

    /// The elements of the prefix.
    pub fn elems(&self) -> &[PrefixElem] {
        &self.elems
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Whether this is `/`, which matches every path.
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Whether the prefix matches the start of `path`, element by element,
    /// with `*` matching any one label.
    // Called for every dentry on every lookup; left out of line, the call
    // costs as much as the comparison.
    #[inline]
    pub fn matches(&self, path: &Path) -> bool {
        let labels = path.elems();
        self.elems.len() <= labels.len()
            && self
                .elems
                .iter()
                .zip(labels)
                .all(|(elem, label)| match elem {
                    PrefixElem::Any => true,
                    PrefixElem::Label(l) => l == label,
                })
    }

    /// Like [`Path::show`], with `*` for wildcards.
    pub fn show(&self) -> String {
        let mut out = String::new();
        self.write_show(&mut out);
        out
    }

    /// Appends [`Prefix::show`] to `out`.
    pub fn write_show(&self, out: &mut String) {
        if self.elems.is_empty() {
            out.push('/');
        }
        for elem in &self.elems {
            out.push('/');
            match elem {
                PrefixElem::Any => out.push('*'),
                PrefixElem::Label(l) => l.write_show(out),
            }
        }
    }
}

impl From<Path> for Prefix {
    fn from(path: Path) -> Prefix {
        Prefix::new(
            path.elems()
                .iter()
                .cloned()
                .map(PrefixElem::Label)
                .collect(),
        )
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show())
    }
}

/// A delegation rule `prefix => dst`: a path that starts with `prefix` is
/// rewritten to `dst`, with the rest of the path appended to every leaf.
#[derive(Clone, Debug, PartialEq)]
pub struct Dentry {
    /// What the rule matches.
    pub prefix: Prefix,
    /// What a match is rewritten into.
    pub dst: NameTree<Path>,
}

impl Dentry {
    /// A rule rewriting `prefix` into `dst`.
    pub fn new(prefix: Prefix, dst: NameTree<Path>) -> Dentry {
        Dentry { prefix, dst }
    }

    /// Finagle's `Dentry.nop` (`/\x2f=>~`), which Linkerd uses to mean
    /// "no dentry" in delegation trees.
    pub fn nop() -> Dentry {
        let slash = Label::new(b"/").map(PrefixElem::Label);
        Dentry::new(Prefix::new(slash.into_iter().collect()), NameTree::Neg)
    }

    /// Whether this is (equivalent to) [`Dentry::nop`].
    pub fn is_nop(&self) -> bool {
        self.equiv(&Dentry::nop())
    }

    /// Parses one dentry such as `/svc => /#/io.l5d.fs`.
    pub fn read(text: &str) -> Result<Dentry, crate::ParseError> {
        crate::parse::dentry(text)
    }

    /// Finagle's `Equiv[Dentry]`: equal prefixes and equal simplified dsts.
    pub fn equiv(&self, other: &Dentry) -> bool {
        self.prefix == other.prefix && self.dst.simplified() == other.dst.simplified()
    }

    /// `prefix=>dst`, with no spaces around `=>`.
    pub fn show(&self) -> String {
        let mut out = String::new();
        self.write_show(&mut out);
        out
    }

    /// Appends [`Dentry::show`] to `out`.
    pub fn write_show(&self, out: &mut String) {
        self.prefix.write_show(out);
        out.push_str("=>");
        self.dst.write_show(out);
    }
}

impl fmt::Display for Dentry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show())
    }
}

impl std::str::FromStr for Dentry {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> Result<Dentry, Self::Err> {
        Dentry::read(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let prefix = Prefix::read("/a/*/c").unwrap();
        assert!(prefix.matches(&Path::read("/a/b/c/d").unwrap()));
        assert!(!prefix.matches(&Path::read("/a/b").unwrap()));
        assert!(!prefix.matches(&Path::read("/a/b/x").unwrap()));
        assert!(Prefix::default().matches(&Path::empty()));
    }

    #[test]
    fn escaped_star_is_a_literal_label() {
        let prefix = Prefix::read("/\\x2a").unwrap();
        assert_eq!(prefix.show(), "/\\x2a");
        assert!(!prefix.matches(&Path::read("/a").unwrap()));
    }

    #[test]
    fn nop_round_trips() {
        assert_eq!(Dentry::nop().show(), "/\\x2f=>~");
        assert_eq!(Dentry::read("/\\x2f=>~").unwrap(), Dentry::nop());
        assert!(Dentry::read("/\\x2f=>~ | ~").unwrap().is_nop());
    }
}
