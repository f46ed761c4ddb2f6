//! Dentry-level differences between two dtabs, for `dtab diff` and for
//! showing what changed on the server during `dtab edit`.
//!
//! Order matters in a dtab (later dentries win), so this is a sequence
//! diff (longest common subsequence), not a set difference: a moved
//! dentry shows as removed in one place and added in another.

use dtab::{Dentry, Dtab};

/// One line of a diff.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Change<'a> {
    /// In both, at this place.
    Same(&'a Dentry),
    /// Only in the old dtab.
    Removed(&'a Dentry),
    /// Only in the new dtab.
    Added(&'a Dentry),
}

/// The changes turning `old` into `new`, in order. Dentries are compared
/// with Finagle's equivalence (same prefix, same simplified dst).
pub(crate) fn diff<'a>(old: &'a Dtab, new: &'a Dtab) -> Vec<Change<'a>> {
    let (a, b) = (old.dentries(), new.dentries());
    // lcs[i][j]: the length of the longest common subsequence of a[i..]
    // and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i].equiv(&b[j]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i].equiv(&b[j]) {
            out.push(Change::Same(&a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(Change::Added(&b[j]));
            j += 1;
        } else {
            out.push(Change::Removed(&a[i]));
            i += 1;
        }
    }
    // Within each run of changes, list removals before additions, as
    // unified diffs do.
    let mut k = 0;
    while k < out.len() {
        let end = out[k..]
            .iter()
            .position(|c| matches!(c, Change::Same(_)))
            .map_or(out.len(), |p| k + p);
        out[k..end].sort_by_key(|c| matches!(c, Change::Added(_)));
        k = end + 1;
    }
    out
}

/// Whether the diff has any change.
pub(crate) fn has_changes(changes: &[Change<'_>]) -> bool {
    changes.iter().any(|c| !matches!(c, Change::Same(_)))
}

/// A unified-style rendering: `--- old` and `+++ new` headers, then every
/// dentry as `  `, `- ` or `+ ` followed by `prefix => dst`. Empty when
/// nothing changed.
pub(crate) fn render(changes: &[Change<'_>], old_label: &str, new_label: &str) -> String {
    if !has_changes(changes) {
        return String::new();
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    for change in changes {
        let (mark, d) = match change {
            Change::Same(d) => (' ', d),
            Change::Removed(d) => ('-', d),
            Change::Added(d) => ('+', d),
        };
        out.push_str(&format!("{mark} {} => {}\n", d.prefix.show(), d.dst.show()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Dtab {
        Dtab::read(text).unwrap()
    }

    fn marks(changes: &[Change<'_>]) -> String {
        changes
            .iter()
            .map(|c| match c {
                Change::Same(d) => format!(" {}", d.show()),
                Change::Removed(d) => format!("-{}", d.show()),
                Change::Added(d) => format!("+{}", d.show()),
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn equal_dtabs_have_no_changes() {
        let a = d("/a=>/b;/c=>/d");
        // Equivalent spellings are the same dentry.
        let b = d("/a => /b ; /c => (/d)");
        let changes = diff(&a, &b);
        assert!(!has_changes(&changes));
        assert_eq!(render(&changes, "x", "y"), "");
    }

    #[test]
    fn a_changed_dst_is_a_removal_then_an_addition() {
        let a = d("/svc=>/#/io.l5d.fs;/svc/web=>/srv/web;/x=>/y");
        let b = d("/svc=>/#/io.l5d.fs;/svc/web=>/srv/web-v2;/x=>/y;/new=>/n");
        let changes = diff(&a, &b);
        assert_eq!(
            marks(&changes),
            " /svc=>/#/io.l5d.fs;-/svc/web=>/srv/web;+/svc/web=>/srv/web-v2; /x=>/y;+/new=>/n"
        );
        assert_eq!(
            render(&changes, "namerd", "file"),
            "--- namerd\n+++ file\n  /svc => /#/io.l5d.fs\n- /svc/web => /srv/web\n\
             + /svc/web => /srv/web-v2\n  /x => /y\n+ /new => /n\n"
        );
    }

    #[test]
    fn order_matters() {
        let (ab, ba, a, empty) = (
            d("/a=>/1;/b=>/2"),
            d("/b=>/2;/a=>/1"),
            d("/a=>/1"),
            Dtab::empty(),
        );
        let changes = diff(&ab, &ba);
        assert!(has_changes(&changes));
        assert_eq!(changes.len(), 3);
        assert_eq!(marks(&diff(&empty, &a)), "+/a=>/1");
        assert_eq!(marks(&diff(&a, &empty)), "-/a=>/1");
    }
}
