//! Dtabs: ordered lists of dentries, and the one-step lookup that rewrites a
//! path through them.

use std::fmt;
use std::sync::Arc;

use crate::{Dentry, NameTree, Path};

/// A delegation table: dentries in order; later ones take precedence.
///
/// Cloning is cheap (the dentries are shared), which matters because dtabs
/// are used as cache keys and passed to background binding tasks.
#[derive(Clone)]
pub struct Dtab {
    // An `Arc<Vec<_>>` rather than an `Arc<[_]>`: wrapping the parsed `Vec`
    // costs one small allocation instead of a copy of every dentry.
    dentries: Arc<Vec<Dentry>>,
}

impl Dtab {
    /// A dtab of the given dentries, in order.
    pub fn new(mut dentries: Vec<Dentry>) -> Dtab {
        // Dtabs live long and are shared; keep no spare capacity.
        dentries.shrink_to_fit();
        Dtab {
            dentries: Arc::new(dentries),
        }
    }

    /// The dtab with no dentries.
    pub fn empty() -> Dtab {
        // Shared, so the many requests without a dtab of their own do not
        // allocate one.
        static EMPTY: std::sync::LazyLock<Dtab> =
            std::sync::LazyLock::new(|| Dtab::new(Vec::new()));
        EMPTY.clone()
    }

    /// Finagle's `Dtab.fail`: `/=>!`, which fails every name.
    pub fn fail() -> Dtab {
        Dtab::new(vec![Dentry::new(crate::Prefix::default(), NameTree::Fail)])
    }

    /// Parses `;`-separated dentries (one trailing `;` allowed).
    pub fn read(text: &str) -> Result<Dtab, crate::ParseError> {
        crate::parse::dtab(text)
    }

    /// The dentries, in order.
    pub fn dentries(&self) -> &[Dentry] {
        &self.dentries
    }

    /// Iterates over the dentries in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Dentry> {
        self.dentries.iter()
    }

    /// The number of dentries.
    pub fn len(&self) -> usize {
        self.dentries.len()
    }

    /// Whether there are no dentries.
    pub fn is_empty(&self) -> bool {
        self.dentries.is_empty()
    }

    /// One delegation step: every dentry whose prefix matches `path`, last
    /// first, with the unmatched rest of `path` appended to each leaf of its
    /// dst. No match is `~`; one match is its tree as is; several are an Alt.
    pub fn lookup(&self, path: &Path) -> NameTree<Path> {
        let mut matches: Vec<NameTree<Path>> = self
            .dentries
            .iter()
            .rev()
            .filter(|d| d.prefix.matches(path))
            .map(|d| {
                let residual = &path.elems()[d.prefix.len()..];
                d.dst.map(&mut |leaf: &Path| leaf.concat_labels(residual))
            })
            .collect();
        match matches.len() {
            0 => NameTree::Neg,
            1 => matches.pop().unwrap_or(NameTree::Neg),
            _ => NameTree::Alt(matches),
        }
    }

    /// `self ++ other`: this dtab's dentries, then `other`'s (which win).
    pub fn concat(&self, other: &Dtab) -> Dtab {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        Dtab::new(self.iter().chain(other.iter()).cloned().collect())
    }

    /// This dtab with one more dentry at the end.
    pub fn append(&self, dentry: Dentry) -> Dtab {
        Dtab::new(
            self.iter()
                .cloned()
                .chain(std::iter::once(dentry))
                .collect(),
        )
    }

    /// Finagle's `stripPrefix`: when this dtab starts with exactly the
    /// dentries of `prefix`, the rest of it; otherwise this dtab unchanged.
    pub fn strip_prefix(&self, prefix: &Dtab) -> Dtab {
        if Arc::ptr_eq(&self.dentries, &prefix.dentries) || self.is_empty() {
            return Dtab::empty();
        }
        if self.len() < prefix.len() {
            return self.clone();
        }
        if self.dentries[..prefix.len()] == prefix.dentries[..] {
            Dtab::new(self.dentries[prefix.len()..].to_vec())
        } else {
            self.clone()
        }
    }

    /// Every dst simplified, and dentries whose dst became `~` removed.
    pub fn simplified(&self) -> Dtab {
        Dtab::new(
            self.iter()
                .map(|d| Dentry::new(d.prefix.clone(), d.dst.simplified()))
                .filter(|d| !d.dst.is_neg())
                .collect(),
        )
    }

    /// Finagle's `Equiv[Dtab]`: same size, dentries pairwise equivalent.
    pub fn equiv(&self, other: &Dtab) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a.equiv(b))
    }

    /// Dentries joined by `;`, without spaces or a trailing `;`. This is the
    /// wire form of the `l5d-ctx-dtab` header and `application/dtab` bodies.
    pub fn show(&self) -> String {
        let mut out = String::new();
        for (i, d) in self.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            d.write_show(&mut out);
        }
        out
    }

    /// Finagle's `print` form: a `Dtab(N)` line, then one tab-indented
    /// `prefix => dst` line per dentry.
    pub fn print(&self) -> String {
        let mut out = format!("Dtab({})\n", self.len());
        for d in self.iter() {
            out.push('\t');
            d.prefix.write_show(&mut out);
            out.push_str(" => ");
            d.dst.write_show(&mut out);
            out.push('\n');
        }
        out
    }
}

impl Default for Dtab {
    fn default() -> Dtab {
        Dtab::empty()
    }
}

impl PartialEq for Dtab {
    fn eq(&self, other: &Dtab) -> bool {
        self.dentries == other.dentries
    }
}

impl fmt::Debug for Dtab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dtab({})", self.show())
    }
}

impl fmt::Display for Dtab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show())
    }
}

impl std::str::FromStr for Dtab {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> Result<Dtab, Self::Err> {
        Dtab::read(s)
    }
}

impl<'a> IntoIterator for &'a Dtab {
    type Item = &'a Dentry;
    type IntoIter = std::slice::Iter<'a, Dentry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<Dentry> for Dtab {
    fn from_iter<I: IntoIterator<Item = Dentry>>(iter: I) -> Dtab {
        Dtab::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dtab {
        Dtab::read(s).unwrap()
    }

    fn lookup(dtab: &str, path: &str) -> String {
        d(dtab).lookup(&Path::read(path).unwrap()).show()
    }

    #[test]
    fn lookup_tries_later_entries_first_whatever_their_length() {
        assert_eq!(lookup("/a=>/1;/a/b=>/2", "/a/b/c"), "/2/c | /1/b/c");
        assert_eq!(lookup("/a/b=>/2;/a=>/1", "/a/b/c"), "/1/b/c | /2/c");
    }

    #[test]
    fn lookup_appends_the_residual_to_every_leaf() {
        assert_eq!(
            lookup("/s=>/x & 2*/y | ~", "/s/a/b"),
            "/x/a/b & 2.00*/y/a/b | ~"
        );
        assert_eq!(lookup("/s=>/", "/s/a"), "/a");
        assert_eq!(lookup("/s=>/x", "/t"), "~");
    }

    #[test]
    fn strip_prefix_needs_an_exact_match() {
        let base = d("/a=>/b;/c=>/d");
        assert_eq!(d("/a=>/b;/c=>/d;/e=>/f").strip_prefix(&base), d("/e=>/f"));
        assert_eq!(
            d("/a=>/b;/c=>/x;/e=>/f").strip_prefix(&base),
            d("/a=>/b;/c=>/x;/e=>/f")
        );
        assert_eq!(base.strip_prefix(&base), Dtab::empty());
    }

    #[test]
    fn print_lists_dentries() {
        assert_eq!(
            d("/a=>/b;/c=>/d|/e").print(),
            "Dtab(2)\n\t/a => /b\n\t/c => /d | /e\n"
        );
    }
}
